"""The four datasets, as integer levels (N, C, H, W) with labels.

shapes        binary 20x20 procedural shapes, labels = shape type
mnist         MNIST 28x28 binarised at value > 127, labels = digit
color_shapes  shapes in colour: 3 channels x 4 levels, one background and one
color_mnist   different foreground colour per image, drawn uniformly from the 64

MNIST is read from a folder holding the four IDX files (gzipped or not), checked
against the SHA-256 of their decompressed content. The folder is `<data_dir>/mnist`,
where data_dir is an argument, else $PIXELCNN_DATA, else ./data. `has_mnist` says
whether they are there; `download_mnist` fetches them on a machine with internet.
"""
import gzip
import hashlib
import math
import os
import urllib.request
import zlib
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import torch

from . import files

NAMES = ("shapes", "mnist", "color_shapes", "color_mnist")
SPLITS = ("train", "test")
COLOR_LEVELS = 4

# name -> (channels, height, width, levels)
SHAPES = {
    "shapes": (1, 20, 20, 2),
    "mnist": (1, 28, 28, 2),
    "color_shapes": (3, 20, 20, COLOR_LEVELS),
    "color_mnist": (3, 28, 28, COLOR_LEVELS),
}

MNIST_FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def shape_of(name):
    """(channels, height, width, levels) of a dataset's images; ValueError for an unknown name."""
    if not isinstance(name, str) or name not in SHAPES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(NAMES)}")
    return SHAPES[name]


def class_names(name):
    """The name of each label: shape types or digits."""
    shape_of(name)
    return SHAPE_TYPES if name.endswith("shapes") else tuple(str(d) for d in range(10))


def classes_of(name):
    """How many labels the dataset has."""
    return len(class_names(name))


def load(name, split="train", data_dir=None, count=None):
    """A dataset's images and labels, on the CPU.

    Args:
        name: one of NAMES.
        split: "train" or "test".
        data_dir: the folder holding mnist/ (default: $PIXELCNN_DATA, else ./data); only the
            MNIST-based sets read it.
        count: how many images the procedural sets (shapes, color_shapes) generate (default
            10,000 train, 2,000 test); a set of any size is drawn from the same generator.

    Returns:
        (images, labels): images a uint8 tensor (N, C, H, W) of levels in [0, K) (K and C from
        shape_of(name)); labels an int64 tensor (N,) in [0, classes_of(name)). Deterministic:
        the same call gives the same tensors. Raises ValueError for an unknown name or split, a
        count given for MNIST, or a corrupt MNIST file; FileNotFoundError, saying how to fix it,
        where the MNIST files are missing.
    """
    shape_of(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    base = name.removeprefix("color_")
    if base == "shapes":
        if count is not None and count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        images, labels = _shapes(split, count or _COUNTS[split])
    elif count is not None:
        raise ValueError(f"{name} is a fixed dataset: count applies only to shapes and color_shapes")
    else:
        images, labels = _mnist(split, str(mnist_dir(data_dir)))
    images = torch.from_numpy(images).unsqueeze(1)  # (N, 1, H, W), 0/1
    if name.startswith("color_"):
        images = colorize(images, seed=_SEEDS[split] + 1)
    return images, torch.from_numpy(labels).long()


def entropy_bound(name):
    """Upper bound on the data's entropy in nats/image: the entropy of the generator's
    discrete choices (a shape type uniformly, then one of its parameter tuples
    uniformly; for colour, an ordered pair of different colours). The image is a
    function of those choices, so its entropy is at most theirs."""
    if name not in ("shapes", "color_shapes"):
        raise ValueError(f"no entropy bound for {name!r}: only procedural datasets have one")
    tuples = _shape_tuples()
    bound = math.log(len(tuples)) + sum(math.log(len(t)) for t in tuples.values()) / len(tuples)
    if name == "color_shapes":
        n = COLOR_LEVELS ** 3
        bound += math.log(n * (n - 1))
    return bound


# ---------------------------------------------------------------- colour

def colorize(binary, seed):
    """(N, 1, H, W) 0/1 -> (N, 3, H, W) levels: per image a background colour and a
    different foreground colour, uniformly among the 64, from `seed`."""
    n = binary.shape[0]
    rng = np.random.default_rng(seed)
    ncol = COLOR_LEVELS ** 3
    bg = rng.integers(0, ncol, n)
    fg = (bg + rng.integers(1, ncol, n)) % ncol  # uniform over the other 63
    digits = lambda c: np.stack([c // 16, c // 4 % 4, c % 4], axis=1)  # noqa: E731
    bg, fg = (torch.from_numpy(digits(c)).to(torch.uint8)[:, :, None, None] for c in (bg, fg))
    return torch.where(binary.bool(), fg, bg)


# ---------------------------------------------------------------- shapes

SIZE = 20
_SEEDS = {"train": 1234, "test": 5678}
_COUNTS = {"train": 10_000, "test": 2_000}
SHAPE_TYPES = ("square", "disc", "triangle", "line", "plus")


@cache
def _shape_tuples():
    """Every parameter tuple each shape type can take: (size, row, col[, orientation])."""
    t = {}
    t["square"] = [(s, r, c) for s in range(4, 13) for r in range(SIZE - s + 1) for c in range(SIZE - s + 1)]
    t["disc"] = [(s, r, c) for s in range(3, 12, 2) for r in range(SIZE - s + 1) for c in range(SIZE - s + 1)]
    t["triangle"] = [(s, r, c, o) for s in range(5, 13) for r in range(SIZE - s + 1)
                     for c in range(SIZE - s + 1) for o in range(4)]
    t["line"] = [(s, r, c, o) for s in range(6, 17) for r in range(SIZE - s + 1)
                 for c in range(SIZE - s + 1) for o in range(4)]
    t["plus"] = [(s, r, c) for s in range(5, 14, 2) for r in range(SIZE - s + 1) for c in range(SIZE - s + 1)]
    return t


def draw_shape(kind, params):
    """A 20x20 uint8 image of one shape."""
    s, r, c, *o = params
    img = np.zeros((SIZE, SIZE), np.uint8)
    yy, xx = np.mgrid[0:s, 0:s]
    if kind == "square":  # outline, 1 pixel thick
        patch = (yy == 0) | (yy == s - 1) | (xx == 0) | (xx == s - 1)
    elif kind == "disc":  # filled
        m = (s - 1) / 2
        patch = (yy - m) ** 2 + (xx - m) ** 2 <= (s / 2) ** 2 - 0.25
    elif kind == "triangle":  # filled right triangle, the right angle in one of 4 corners
        patch = np.rot90(xx <= yy, o[0])
    elif kind == "line":  # horizontal, vertical, or one of the two diagonals
        patch = [yy == s // 2, xx == s // 2, yy == xx, yy == s - 1 - xx][o[0]]
    elif kind == "plus":
        patch = (yy == s // 2) | (xx == s // 2)
    else:
        raise ValueError(f"unknown shape {kind!r}")
    img[r:r + s, c:c + s] = patch
    return img


@cache
def _shapes(split, n):
    rng = np.random.default_rng(_SEEDS[split])
    tuples = _shape_tuples()
    kinds = rng.integers(0, len(SHAPE_TYPES), n)
    images = np.empty((n, SIZE, SIZE), np.uint8)
    for i, k in enumerate(kinds):
        options = tuples[SHAPE_TYPES[k]]
        images[i] = draw_shape(SHAPE_TYPES[k], options[rng.integers(0, len(options))])
    return images, kinds.astype(np.int64)


# ---------------------------------------------------------------- MNIST

def data_root(data_dir=None):
    """The folder that holds mnist/: data_dir, else $PIXELCNN_DATA, else ./data."""
    return Path(data_dir or os.environ.get("PIXELCNN_DATA") or "data")


def mnist_dir(data_dir=None):
    """The folder the MNIST files are read from: <data root>/mnist, or the root itself if it has no mnist/."""
    root = data_root(data_dir)
    return root / "mnist" if (root / "mnist").is_dir() else root


def _mnist_candidates(folder, name):
    """Where one MNIST file may lie, in the order tried: gzipped, then not."""
    return Path(folder) / f"{name}.gz", Path(folder) / name


def has_mnist(data_dir=None):
    """Whether all four MNIST files are in mnist_dir(data_dir) (their hashes are checked when read)."""
    folder = mnist_dir(data_dir)
    return all(any(p.exists() for p in _mnist_candidates(folder, name)) for name in MNIST_FILES)


def read_idx(data: bytes):
    """Parse an IDX file (big-endian header: magic, dims) into a uint8 array."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError("not an IDX file of unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError("IDX file truncated in its header")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    count = math.prod(dims)
    if len(data) != header + count:
        raise ValueError(f"IDX file holds {len(data) - header} bytes of data, its header says {count}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def read_mnist_file(folder, name):
    """The decompressed, hash-checked content of one MNIST file (gzipped or not); a
    ValueError naming the file where it is unreadable, truncated or not the original."""
    for path in _mnist_candidates(folder, name):
        if path.exists():
            data = _read_bytes(path)
            digest = hashlib.sha256(data).hexdigest()
            if digest != MNIST_FILES[name]:
                raise ValueError(f"{path} is corrupt or not the original MNIST file{_idx_problem(data)}: "
                                 f"sha256 {digest}, expected {MNIST_FILES[name]}")
            return data
    raise FileNotFoundError(
        f"MNIST file {name}(.gz) not found in {folder}. Point --data-dir (or $PIXELCNN_DATA) "
        f"at a folder holding the four MNIST IDX files, or fetch them with --download.")


def _read_bytes(path):
    """A file's bytes, gunzipped if its name ends in .gz; a ValueError naming it if that fails."""
    if not path.is_file():  # a folder fails in read_bytes, a FIFO would block it
        raise ValueError(f"{path} is not a regular file")
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix == ".gz" else data
    except (OSError, EOFError, zlib.error) as e:  # cut short: EOFError; not gzip or a bad CRC: BadGzipFile (OSError)
        raise ValueError(f"{path} cannot be read (truncated or corrupt?): {e}") from e


def _idx_problem(data):
    """What is wrong with the structure of IDX bytes, as " (why)", or "" if nothing is."""
    try:
        read_idx(data)
    except ValueError as e:
        return f" ({e})"
    return ""


@lru_cache(maxsize=4)
def _mnist(split, folder):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(read_mnist_file(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(read_mnist_file(folder, f"{prefix}-labels-idx1-ubyte"))
    return (images > 127).astype(np.uint8), labels.astype(np.int64)


def download_mnist(data_dir=None):
    """Fetch the four MNIST files into <data root>/mnist, checking each one's hash."""
    folder = data_root(data_dir) / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        if not (folder / f"{name}.gz").exists():
            data = _fetch_mnist_file(name)
            files.write_atomic(folder / f"{name}.gz", lambda tmp, data=data: tmp.write_bytes(data))
    return folder


def _fetch_mnist_file(name):
    """The gzipped bytes of one MNIST file from the first mirror that serves it intact."""
    for mirror in MNIST_MIRRORS:
        try:
            with urllib.request.urlopen(mirror + name + ".gz", timeout=30) as r:
                data = r.read()
            if hashlib.sha256(gzip.decompress(data)).hexdigest() != MNIST_FILES[name]:
                raise ValueError("hash mismatch")
            return data
        except Exception as e:  # try the next mirror
            print(f"could not fetch {name} from {mirror}: {e}")
    raise RuntimeError(f"could not download {name} from any mirror")

"""The four datasets as integer levels, the entropy bound, and the MNIST file reader."""
import gzip
import math
import os
import shutil
from pathlib import Path

import pytest
import torch

from helpers import marking_mnist
from pixelcnn import datasets

EXPECTED = {  # name -> (train count, test count, (C, H, W), K, number of label classes)
    "shapes": (10_000, 2_000, (1, 20, 20), 2, 5),
    "mnist": (60_000, 10_000, (1, 28, 28), 2, 10),
    "color_shapes": (10_000, 2_000, (3, 20, 20), 4, 5),
    "color_mnist": (60_000, 10_000, (3, 28, 28), 4, 10),
}


def test_names_and_shapes_agree():
    assert datasets.NAMES == ("shapes", "mnist", "color_shapes", "color_mnist")
    for name, (_, _, chw, k, _) in EXPECTED.items():
        assert datasets.shape_of(name) == (*chw, k)


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("name", marking_mnist(EXPECTED))
def test_dataset_shapes_levels_and_labels(name, split):
    n_train, n_test, chw, k, classes = EXPECTED[name]
    x, y = datasets.load(name, split)
    n = n_train if split == "train" else n_test
    assert x.shape == (n, *chw)
    assert not x.is_floating_point() and x.dtype != torch.bool
    assert int(x.min()) == 0 and int(x.max()) == k - 1  # in [0, K), and every extreme used
    assert y.shape == (n,) and y.dtype == torch.int64
    assert int(y.min()) == 0 and int(y.max()) == classes - 1
    # every class occurs
    assert len(torch.unique(y)) == classes


@pytest.mark.parametrize("name", marking_mnist(["shapes", "color_shapes", "mnist"]))
def test_loading_is_deterministic(name):
    a, la = datasets.load(name, "test")
    b, lb = datasets.load(name, "test")
    assert torch.equal(a, b) and torch.equal(la, lb)
    datasets._shapes.cache_clear()
    datasets._mnist.cache_clear()
    c, lc = datasets.load(name, "test")  # generated / read again from scratch
    assert torch.equal(a, c) and torch.equal(la, lc)


def test_train_and_test_differ():
    train, _ = datasets.load("shapes", "train")
    test, _ = datasets.load("shapes", "test")
    assert not torch.equal(train[:2000], test)


def colour_codes(x):
    """(N, 3, H, W) levels in [0, 4) -> (N, H, W) colour index + 1, in [1, 64] (uint8)."""
    return x[:, 0] * 16 + x[:, 1] * 4 + x[:, 2] + 1


@pytest.mark.parametrize("base", marking_mnist(["shapes", "mnist"]))
@pytest.mark.parametrize("split", ["train", "test"])
def test_colour_images_are_the_binary_ones_in_two_different_colours(base, split):
    binary, labels = datasets.load(base, split)
    colour, colour_labels = datasets.load(f"color_{base}", split)
    assert torch.equal(labels, colour_labels)
    ink = binary[:, 0].bool()  # (N, H, W)
    code = colour_codes(colour)
    # Per image: all ink pixels one colour (fg), all background pixels one colour (bg).
    fg_hi = code.masked_fill(~ink, 0).amax(dim=(1, 2))
    fg_lo = code.masked_fill(~ink, 255).amin(dim=(1, 2))
    bg_hi = code.masked_fill(ink, 0).amax(dim=(1, 2))
    bg_lo = code.masked_fill(ink, 255).amin(dim=(1, 2))
    has_ink, has_bg = ink.any(dim=(1, 2)), (~ink).any(dim=(1, 2))
    assert torch.equal(fg_hi[has_ink], fg_lo[has_ink])
    assert torch.equal(bg_hi[has_bg], bg_lo[has_bg])
    both = has_ink & has_bg
    assert both.float().mean() > 0.99
    assert (fg_hi[both] != bg_hi[both]).all(), "background and foreground share a colour"
    # So each image shows exactly as many colours as its binary version has values (<= 2).
    n_colours = 1 + (fg_hi != bg_hi).long() * both.long()
    assert (n_colours == has_ink.long() + has_bg.long()).all()
    # The colours are spread over all 64.
    assert len(torch.unique(bg_hi[has_bg])) == 64 and len(torch.unique(fg_hi[has_ink])) == 64


def test_entropy_bound():
    shapes = datasets.entropy_bound("shapes")
    colour = datasets.entropy_bound("color_shapes")
    assert 0 < shapes < 20 * 20 * math.log(2)  # below the raw capacity of a binary 20x20 image
    assert colour == pytest.approx(shapes + math.log(64 * 63), rel=1e-12)
    for name in ("mnist", "color_mnist", "nope"):
        with pytest.raises(ValueError):
            datasets.entropy_bound(name)


def test_procedural_sets_of_any_size_come_from_the_same_generator():
    big, labels = datasets.load("color_shapes", "train", count=30_000)
    assert big.shape == (30_000, 3, 20, 20) and big.max() == 3
    assert torch.equal(big, datasets.load("color_shapes", "train", count=30_000)[0])  # deterministic
    distinct = lambda x: len({bytes(im.flatten().tolist()) for im in x})  # noqa: E731
    assert distinct(big) > 2.9 * distinct(datasets.load("color_shapes", "train")[0])  # new images, not repeats
    share = torch.bincount(labels, minlength=5) / len(labels)
    assert torch.allclose(share, torch.full((5,), 0.2), atol=0.01)  # shape types uniform, as the bound assumes
    with pytest.raises(ValueError, match="fixed dataset"):
        datasets.load("mnist", "train", count=100)
    with pytest.raises(ValueError, match="at least 1"):
        datasets.load("shapes", "train", count=0)


def test_unknown_dataset_or_split_is_rejected():
    with pytest.raises(ValueError, match="unknown dataset"):
        datasets.load("cifar10")
    with pytest.raises(ValueError, match="unknown split"):
        datasets.load("shapes", "validation")


# ---------------------------------------------------------------- IDX files

def idx(dims, payload, type_byte=0x08):
    header = bytes([0, 0, type_byte, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + bytes(payload)


def test_read_idx_parses_a_hand_made_file():
    a = datasets.read_idx(idx([2, 3], range(6)))
    assert a.dtype.name == "uint8" and a.shape == (2, 3)
    assert a.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert datasets.read_idx(idx([4], [9, 8, 7, 6])).tolist() == [9, 8, 7, 6]


@pytest.mark.parametrize("data,message", [
    (b"", "not an IDX"),
    (b"\x00\x00", "not an IDX"),
    (idx([2], [1, 2], type_byte=0x0D), "not an IDX"),  # floats, not unsigned bytes
    (b"\x01\x00\x08\x01" + (2).to_bytes(4, "big") + b"\x01\x02", "not an IDX"),
    (idx([2, 3], range(6))[:9], "truncated in its header"),
    (idx([2, 3], range(5)), "header says 6"),  # truncated data
    (idx([2, 3], range(7)), "header says 6"),  # trailing bytes
])
def test_read_idx_rejects_bad_bytes(data, message):
    with pytest.raises(ValueError, match=message):
        datasets.read_idx(data)


@pytest.mark.parametrize("gz", [False, True])
def test_read_mnist_file_checks_the_sha256(tmp_path, gz):
    fake = idx([3], [1, 2, 3])
    name = "t10k-labels-idx1-ubyte"
    if gz:
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(fake))
    else:
        (tmp_path / name).write_bytes(fake)
    with pytest.raises(ValueError, match="corrupt.*sha256"):
        datasets.read_mnist_file(tmp_path, name)


def test_read_mnist_file_in_a_missing_folder_says_how_to_fix_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        datasets.read_mnist_file(tmp_path / "nowhere", "train-images-idx3-ubyte")
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        datasets.load("mnist", "test", data_dir=tmp_path / "nowhere")
    assert not datasets.has_mnist(tmp_path / "nowhere")


def test_has_mnist_wants_all_four_files_gzipped_or_not(tmp_path):
    names = list(datasets.MNIST_FILES)
    for name in names[:3]:
        (tmp_path / f"{name}.gz").write_bytes(b"")
    assert not datasets.has_mnist(tmp_path)
    (tmp_path / names[3]).write_bytes(b"")
    assert datasets.has_mnist(tmp_path) and datasets.mnist_dir(tmp_path) == tmp_path


@pytest.mark.mnist
def test_the_shared_mnist_files_pass_their_hash_check():
    folder = datasets.mnist_dir()
    assert folder == Path(os.environ["PIXELCNN_DATA"]) / "mnist"
    for name in datasets.MNIST_FILES:
        data = datasets.read_mnist_file(folder, name)
        assert len(data) > 0


@pytest.mark.mnist
def test_loading_mnist_checks_hashes(tmp_path):
    """A folder with one corrupted file (a flipped label) is refused, not loaded."""
    src = datasets.mnist_dir()
    shutil.copy(src / "t10k-images-idx3-ubyte.gz", tmp_path)
    labels = bytearray(gzip.decompress((src / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    labels[-1] = (labels[-1] + 1) % 10
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes(labels))
    with pytest.raises(ValueError, match="sha256"):
        datasets.load("mnist", "test", data_dir=tmp_path)
    # The same folder with the genuine labels loads, and equals the shared copy.
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(gzip.decompress((src / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    x, y = datasets.load("mnist", "test", data_dir=tmp_path)
    x0, y0 = datasets.load("mnist", "test")
    assert torch.equal(x, x0) and torch.equal(y, y0)


# ---------------------------------------------------------------- damaged MNIST files

def cut_gzip(data):
    return data[: len(data) // 2]


def flip_middle_byte(data):
    data = bytearray(data)
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


DAMAGED = [  # (the damaged file, made from the shared one by, what the error says)
    ("t10k-labels-idx1-ubyte.gz", cut_gzip, "cannot be read (truncated or corrupt?)"),
    ("t10k-images-idx3-ubyte.gz", lambda gz: gz[:10], "cannot be read (truncated or corrupt?)"),
    ("t10k-images-idx3-ubyte.gz", flip_middle_byte, "cannot be read (truncated or corrupt?)"),
    ("t10k-labels-idx1-ubyte.gz", lambda gz: b"", "not an IDX file"),
    ("t10k-labels-idx1-ubyte", lambda gz: gzip.decompress(gz)[:-100], "9900 bytes of data, its header says 10000"),
    ("t10k-labels-idx1-ubyte", lambda gz: gzip.decompress(gz) + b"\0", "its header says 10000"),
    ("t10k-labels-idx1-ubyte", lambda gz: gzip.decompress(gz)[:6], "truncated in its header"),
]


@pytest.mark.mnist
@pytest.mark.parametrize("name, damage, message", DAMAGED, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(DAMAGED)])
def test_a_truncated_or_corrupt_mnist_file_is_a_value_error_naming_it(tmp_path, name, damage, message):
    """Never a zlib or EOFError traceback: the error names the damaged file and says what is wrong."""
    src = datasets.mnist_dir()
    for other in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        if not name.startswith(other):
            shutil.copy(src / f"{other}.gz", tmp_path)
    original = (src / f"{name.removesuffix('.gz')}.gz").read_bytes()
    (tmp_path / name).write_bytes(damage(original))
    with pytest.raises(ValueError) as error:
        datasets.load("mnist", "test", data_dir=tmp_path)
    assert str(tmp_path / name) in str(error.value) and message in str(error.value)


def test_a_cut_short_gzip_or_a_folder_in_place_of_a_file_is_a_value_error_naming_it(tmp_path):
    name = "t10k-labels-idx1-ubyte"
    (tmp_path / f"{name}.gz").write_bytes(cut_gzip(gzip.compress(idx([3], [1, 2, 3]))))
    with pytest.raises(ValueError, match=f"{tmp_path / name}.gz cannot be read"):
        datasets.read_mnist_file(tmp_path, name)
    (tmp_path / f"{name}.gz").unlink()
    (tmp_path / f"{name}.gz").mkdir()
    with pytest.raises(ValueError, match=f"{tmp_path / name}.gz is not a regular file"):
        datasets.read_mnist_file(tmp_path, name)

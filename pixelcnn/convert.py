"""Pictures to levels: drawings and uploaded images as inputs to a model (numpy and PIL only).

A drawing (RGBA, dark ink on a light or transparent canvas) becomes a binary image:
- whole (`whole=True`): the ink is scaled and placed like an MNIST digit, its bounding
  box fitted into the central box (20x20 of 28x28; 16x16 of 20x20) and the image shifted
  so that its centre of mass is at the centre;
- partial (`whole=False`): the canvas stands for that central box, so the beginning of
  a figure stays where and as large as it was drawn.
An image becomes binary (ink = dark, or light on a dark background) or colour levels.
Every function raises ValueError with a message meant for the person who gave the input.
"""
import math
import os
import stat
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 4096 * 4096  # larger uploads are refused before they are decoded
MAX_SIDE = 16384
WORKING_SIDE = 1024  # a larger image is averaged down to this on its longer side as soon as it is decoded
MAX_BYTES = 20 * 1024 * 1024  # larger files are refused before they are read (the app's upload limit too)
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")  # what a person uploads; never Pillow's rarer decoders
THRESHOLD = 0.4  # area-averaged ink above this is a pixel of ink; lower than 0.5 keeps thin strokes
COLOUR_SPREAD = 40  # channels further apart than this (of 255) are a colour: a tinted scan of ink is still grey
NOT_AN_IMAGE = "That file is not an image I can read: upload a PNG or JPEG."
NOT_UPLOADED = "That file was not uploaded to this app: upload the image, or draw it, here."
GONE = "That picture is no longer on the server (uploads are kept 10 minutes after their last use): upload it again."
EMPTY_CANVAS = "The canvas is empty: draw something first."
# what is said of a picture with no ink, or with too little to keep at the model's size
BLANK = {"drawing": EMPTY_CANVAS,
         "image": "The image is blank (one colour all over): upload one with a figure on a plain background."}
FAINT = {"drawing": "The drawing is too faint or too thin: draw with a bolder stroke.",
         "image": "The image's figure is too faint or too thin: upload one with a darker, bolder figure."}
# O_NONBLOCK: opening a FIFO that appeared after the check returns at once instead of waiting for a writer
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def inside(path, folder):
    """Whether the real path `path` lies in `folder` (symbolic links resolved)."""
    folder = os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def open_file(path, folders=None):
    """A regular file, opened for reading in binary, of at most MAX_BYTES: the real path of `path`
    must lie in one of `folders` (None: anywhere). Nothing else is opened: not a FIFO, a device
    or a folder, so no request waits on one."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(NOT_AN_IMAGE)
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError) as e:  # a name with a NUL byte, say
        raise ValueError(NOT_AN_IMAGE) from e
    if folders is not None and not any(inside(real, f) for f in folders):
        raise ValueError(NOT_UPLOADED)
    try:
        if not stat.S_ISREG(os.stat(real).st_mode):
            raise ValueError(NOT_AN_IMAGE)
        fd = os.open(real, OPEN_FLAGS)
    except FileNotFoundError as e:  # never there, or an upload deleted since
        raise ValueError(GONE if folders is not None else NOT_AN_IMAGE) from e
    except OSError as e:  # unreadable
        raise ValueError(NOT_AN_IMAGE) from e
    file = os.fdopen(fd, "rb")
    info = os.fstat(fd)  # the file opened, whatever the name now points to
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
        file.close()
        raise ValueError(NOT_AN_IMAGE if not stat.S_ISREG(info.st_mode) else
                         f"That file is too large: upload one of at most {MAX_BYTES // 2**20} MB.")
    if folders is not None:  # used, so kept: the app deletes its files some minutes after they were last touched
        try:
            os.utime(fd)
        except OSError:  # a read-only folder: nothing deletes it either
            pass
    return file


def open_image(path, folders=None, keep_alpha=False):
    """An image file as an RGB PIL image, transparency composited onto white (keep_alpha: RGBA,
    as it is). With `folders`, only a file inside one of them is opened (open_file); its size in
    pixels is checked from its header, before anything is decoded."""
    with open_file(path, folders) as file:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(file, formats=FORMATS)
        except Image.DecompressionBombError as e:  # Pillow's own limit, far above ours
            raise ValueError(too_large()) from e
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise ValueError(NOT_AN_IMAGE) from e
        w, h = img.size
        if w * h > MAX_PIXELS or max(w, h) > MAX_SIDE:
            raise ValueError(too_large((w, h)))
        try:
            img = shrunk(ImageOps.exif_transpose(img))  # decoded here, while the file is open
            return img.convert("RGBA") if keep_alpha else on_white(img)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise ValueError("That image file is damaged and cannot be read.") from e


def shrunk(img):
    """`img` box-averaged down to at most WORKING_SIDE pixels on its longer side: every use of it
    shrinks it to a model's 28x28 or so anyway, and the largest upload then costs a few MB of
    arrays, not hundreds."""
    factor = math.ceil(max(img.size) / WORKING_SIDE)
    if factor == 1:
        return img
    if img.mode not in ("L", "LA", "RGB", "RGBA"):  # what Image.reduce averages
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    return img.reduce(factor)


def too_large(size=None):
    """What is said of an image of more than MAX_PIXELS, of `size` (width, height) where known."""
    said = f" ({size[0]}x{size[1]} pixels)" if size else ""
    return (f"That image is too large{said}: upload one of at most {MAX_PIXELS // 1_000_000} megapixels "
            "(it is shrunk to 28x28 anyway).")


def uploaded(value, what, folders=None):
    """An RGB PIL image from what the app's page sent for an image or a drawing (`what`): a
    path, {"path": ...}, or a drawing's {"composite": ..., "layers": [...]}; with `folders`,
    only a file inside one of them (where the app's uploads land). (The app's events skip
    Gradio's preprocessing so that a bad file earns a clear message, not a generic error.)"""
    if isinstance(value, dict) and "layers" in value:  # a drawing: its composite, else its first layer
        layers = value["layers"] if isinstance(value["layers"], list) else []
        value = value.get("composite") or next((x for x in layers if x), None)
        if value is None:
            raise ValueError(EMPTY_CANVAS)
    path = value.get("path") if isinstance(value, dict) else value
    if not path:
        raise ValueError(EMPTY_CANVAS if what == "drawing"
                         else "No image yet: upload one or pick an example.")
    return open_image(path, folders)


def marked(value, height, width, folders=None):
    """The pixels of a (height, width) image painted over in the marking canvas (a Sketchpad
    over the picture, the whole canvas the whole image): bool (height, width), True where at
    least a fifth of a pixel's area is painted. `value` is what the page sent: its first layer
    holds the paint alone."""
    layers = value.get("layers") if isinstance(value, dict) else None
    layer = next((x for x in layers if x), None) if isinstance(layers, list) else None
    path = layer.get("path") if isinstance(layer, dict) else layer
    if not path:
        raise ValueError(NOTHING_MARKED)
    paint = _resize(open_layer(path, folders)[..., 3] / 255.0, height, width) > 0.2  # its opacity
    if not paint.any():
        raise ValueError(NOTHING_MARKED)
    return paint


NOTHING_MARKED = "Nothing is marked: paint over the part of the picture to repaint."


def open_layer(path, folders=None):
    """A layer of a drawing (RGBA, as drawn: what is not painted is transparent) as an RGBA array."""
    return np.asarray(open_image(path, folders, keep_alpha=True))


def on_white(img):
    """RGB, with any transparency composited onto white."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img).convert("RGB")
    return img.convert("RGB")


def ink(rgba):
    """Ink in [0, 1] (H, W) of an RGB(A) array: how far from white (its palest channel's
    darkness: grey's, or a coloured stroke's, as a colour model's canvas draws) times opacity.
    A transparent canvas and an opaque white one are both empty."""
    a = np.asarray(rgba)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.size == 0:
        raise ValueError(f"a drawing must be an RGB or RGBA picture, got an array of shape {a.shape}")
    scale = 255 if a.dtype != np.uint8 and a.max() <= 1.0 else 1
    with np.errstate(over="ignore", invalid="ignore"):  # absurd values (inf, 1e308) end up clipped
        a = a.astype(np.float64) * scale
        alpha = a[..., 3] / 255 if a.shape[2] == 4 else 1.0
        return np.clip((255 - a[..., :3].min(axis=-1)) * alpha / 255, 0, 1)


def margin(size):
    """Blank border around the central box: 4 of 28 as in MNIST, 2 of 20."""
    return size // 7


def drawing_to_levels(rgba, height, width, whole=True):
    """A drawing (H0, W0, 3 or 4) as binary levels (1, height, width) uint8."""
    return ink_to_levels(ink(rgba), height, width, whole)


def ink_colours(rgb, levels, share=0.0):
    """The colours of a drawing on white (H0, W0, 3 bytes), rounded to `levels` per channel, the
    commonest first: those of the strokes' cores (not their blended edges), each at least
    `share` of them."""
    a = np.asarray(rgb)[..., :3]
    amount = ink(a)
    strong = a[amount > 0.6 * amount.max()]
    found, counts = np.unique(np.rint(strong / 255.0 * (levels - 1)).astype(np.uint8), axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [found[k] for k in order if counts[k] >= share * counts.sum()]


def colour_drawing_to_levels(rgb, channels, height, width, levels):
    """A drawing in one colour on white (H0, W0, 3 or 4 bytes: RGBA is put onto white) as levels
    (channels, height, width) uint8 of two colours, as colour MNIST's images have: white, and
    the drawing's commonest colour where drawing_to_levels(whole=False) finds ink. Any colour
    off white is ink, however light; each is rounded to the nearest of `levels` per channel."""
    a = np.asarray(on_white(Image.fromarray(np.asarray(rgb, np.uint8))))
    # any colour off white is ink, an anti-aliased edge too (the box average thins it)
    where = ink_to_levels(ink(a) > 0.16, height, width, whole=False)[0].astype(bool)
    colour = ink_colours(a, levels)[0]
    if (colour == levels - 1).all():  # the core rounded to white: too light to tell from the paper
        raise ValueError(FAINT["drawing"])
    out = np.full((channels, height, width), levels - 1, np.uint8)
    out[:, where] = colour[:channels, None]
    return out


def ink_to_levels(amount, height, width, whole=True, what="drawing"):
    """Ink in [0, 1] (H0, W0) as binary levels (1, height, width) uint8; `what` it came from
    ("drawing" or "image") is named if it holds none."""
    amount = np.asarray(amount, np.float64)
    rows, cols = np.nonzero(amount > 0.1)
    if len(rows) == 0:
        raise ValueError(BLANK[what])
    m = margin(min(height, width))
    bh, bw = height - 2 * m, width - 2 * m
    if not whole:
        box = _resize(amount, bh, bw)
        out = np.zeros((height, width))
        out[m:m + bh, m:m + bw] = box
        return _binary(out)
    # whole: crop to the ink, pad to a square so the aspect ratio survives, fit the box
    crop = amount[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    side = max(crop.shape)
    square = np.zeros((side, side))
    r0, c0 = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[r0:r0 + crop.shape[0], c0:c0 + crop.shape[1]] = crop
    box = _resize(square, bh, bw)
    if box.sum() == 0:
        raise ValueError(FAINT[what])
    # place the box so that the centre of mass lands on the image's centre
    yy, xx = np.mgrid[0:bh, 0:bw]
    cy, cx = (box * yy).sum() / box.sum(), (box * xx).sum() / box.sum()
    top = int(np.clip(round((height - 1) / 2 - cy), 0, height - bh))
    left = int(np.clip(round((width - 1) / 2 - cx), 0, width - bw))
    out = np.zeros((height, width))
    out[top:top + bh, left:left + bw] = box
    return _binary(out)


def image_to_levels(img, channels, height, width, levels):
    """A PIL image as levels (channels, height, width) uint8 for a model of that shape.

    Binary models (channels 1, levels 2): ink is what differs from the background, the border's
    median grey (a dark figure on a light background, a light one on a dark one). An image
    of exactly the model's size, or an exact multiple, is taken pixel for pixel; any other is
    treated as a whole drawing.
    Colour models: the centre square, averaged down and rounded to the nearest level."""
    img = on_white(img)
    if channels == 1:
        grey = np.asarray(img.convert("L"), np.float64) / 255
        paper = np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]))
        # how far from the paper towards black, or white, of the way there: on white paper 1 - grey, on
        # black (MNIST's own files) grey
        amount = np.maximum(np.clip(paper - grey, 0, 1) / max(paper, 1e-6),
                            np.clip(grey - paper, 0, 1) / max(1 - paper, 1e-6))
        h0, w0 = amount.shape
        if h0 % height == 0 and w0 % width == 0 and h0 // height == w0 // width:
            return _binary(_resize(amount, height, width))
        return ink_to_levels(amount, height, width, whole=True, what="image")
    w0, h0 = img.size
    side = min(w0, h0)
    img = img.crop(((w0 - side) // 2, (h0 - side) // 2, (w0 - side) // 2 + side, (h0 - side) // 2 + side))
    rgb = np.asarray(img.resize((width, height), Image.Resampling.BOX), np.float64)
    return np.rint(rgb * (levels - 1) / 255).astype(np.uint8).transpose(2, 0, 1)[:channels]


def is_colour(img):
    """Whether a PIL image has colour somewhere, not only greys."""
    return bool(np.ptp(np.asarray(on_white(img), np.int16), axis=2).max() > COLOUR_SPREAD)


def _resize(a, height, width):
    """Area-average a float image to (height, width)."""
    return np.asarray(Image.fromarray(a.astype(np.float32))
                      .resize((width, height), Image.Resampling.BOX), np.float64)


def _binary(amount):
    return (amount > THRESHOLD).astype(np.uint8)[None]

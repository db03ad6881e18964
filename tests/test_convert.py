"""Pictures to levels: drawings placed like MNIST digits, uploads of any kind, examples; and
files that are not what they seem (issue #21)."""
import os
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from helpers import ONE, REPO, SEVEN, canvas
from pixelcnn import convert, datasets

EXAMPLES = REPO / "examples"


def bbox(x):
    rows, cols = np.nonzero(x[0])
    return rows.min(), rows.max(), cols.min(), cols.max()


@pytest.mark.parametrize("size,box", [(28, 20), (20, 16)])
@pytest.mark.parametrize("strokes", [SEVEN, ONE], ids=["seven", "one"])
def test_a_whole_drawing_is_scaled_into_the_box_and_centred_by_mass(size, box, strokes):
    x = convert.drawing_to_levels(canvas(strokes), size, size)
    assert x.shape == (1, size, size) and x.dtype == np.uint8 and set(np.unique(x)) == {0, 1}
    r0, r1, c0, c1 = bbox(x)
    assert max(r1 - r0, c1 - c0) + 1 in (box - 1, box)  # the longer side fills the box
    rows, cols = np.nonzero(x[0])
    assert abs(rows.mean() - (size - 1) / 2) <= 1 and abs(cols.mean() - (size - 1) / 2) <= 1


def test_a_drawing_is_the_same_on_a_white_or_a_transparent_canvas():
    white = canvas(SEVEN, background=(255, 255, 255, 255))
    assert np.array_equal(convert.drawing_to_levels(white, 28, 28), convert.drawing_to_levels(canvas(SEVEN), 28, 28))
    assert np.array_equal(convert.drawing_to_levels(white[..., :3], 28, 28),
                          convert.drawing_to_levels(canvas(SEVEN), 28, 28))


def test_a_partial_drawing_keeps_its_place_the_canvas_standing_for_the_central_box():
    top = [[(0, 10), (279, 10)]]  # a bar along the canvas's top edge
    x = convert.drawing_to_levels(canvas(top, width=20), 28, 28, whole=False)
    r0, r1, c0, c1 = bbox(x)
    assert (r0, c0, c1) == (4, 4, 23) and r1 <= 5  # the top of MNIST's 20x20 box, its full width


def test_a_colour_drawing_is_two_colours_white_and_its_ink_rounded_to_the_levels():
    x = convert.colour_drawing_to_levels(canvas(SEVEN, colour=(170, 0, 255)), 3, 28, 28, 4)
    assert x.shape == (3, 28, 28) and x.dtype == np.uint8
    assert set(map(tuple, x.reshape(3, -1).T)) == {(3, 3, 3), (2, 0, 3)}  # no blend at the stroke's edges
    ink, black = (x != 3).any(axis=0), convert.drawing_to_levels(canvas(SEVEN), 28, 28, whole=False)[0] == 1
    assert (ink ^ black).sum() <= 0.2 * black.sum()  # where a black drawing's ink is, or about
    light = convert.colour_drawing_to_levels(canvas(SEVEN, colour=(255, 170, 255)), 3, 28, 28, 4)
    assert set(map(tuple, light.reshape(3, -1).T)) == {(3, 3, 3), (3, 2, 3)}  # light, and still ink
    white = canvas(SEVEN, colour=(170, 0, 255), background=(255, 255, 255, 255))[..., :3]
    assert np.array_equal(convert.colour_drawing_to_levels(white, 3, 28, 28, 4), x)  # RGB on white: the same
    with pytest.raises(ValueError, match="canvas is empty"):
        convert.colour_drawing_to_levels(canvas(SEVEN, colour=(250, 250, 250)), 3, 28, 28, 4)
    two = canvas(SEVEN, colour=(170, 0, 255)).copy()
    one = canvas(ONE, colour=(255, 85, 0))
    two[one[..., 3] > 0] = one[one[..., 3] > 0]  # an orange stroke over the purple 7
    assert [tuple(c) for c in convert.ink_colours(convert.on_white(Image.fromarray(two)), 4, share=0.05)] == [
        (2, 0, 3), (3, 1, 0)]  # purple, the commonest, then orange
    assert len(convert.ink_colours(white, 4, share=0.05)) == 1
    # for a binary model (a drawing left from a colour one), a coloured stroke is ink as a black one is
    assert np.array_equal(convert.drawing_to_levels(canvas(SEVEN, colour=(170, 0, 255)), 28, 28),
                          convert.drawing_to_levels(canvas(SEVEN), 28, 28))


@pytest.mark.parametrize("whole", [True, False])
def test_an_empty_canvas_is_a_clear_error(whole):
    for empty in (canvas([]), canvas([], background=(255, 255, 255, 255))):
        with pytest.raises(ValueError, match="canvas is empty"):
            convert.drawing_to_levels(empty, 28, 28, whole=whole)


def test_a_blank_upload_is_told_it_is_blank_not_that_the_canvas_is_empty():
    for colour in (255, 0, 90, 200):  # white, black (light on dark), greys: one colour all over is blank
        for size in ((300, 200), (28, 28 * 3)):  # a drawing to place, and not quite the model's size
            with pytest.raises(ValueError, match="The image is blank") as e:
                convert.image_to_levels(Image.new("L", size, colour), 1, 28, 28, 2)
            assert "canvas" not in str(e.value)
    with pytest.raises(ValueError, match="canvas is empty"):
        convert.drawing_to_levels(canvas([]), 28, 28)


def test_an_upload_on_grey_paper_is_read_as_on_white():
    """Ink is what differs from the paper, whatever its grey: a black figure on dark grey (which
    was once taken for light ink on dark paper, the figure lost), a light one on mid grey."""
    def figure(paper, ink):
        img = Image.new("L", (300, 300), paper)
        ImageDraw.Draw(img).line([(150, 60), (150, 240)], fill=ink, width=30)
        return convert.image_to_levels(img, 1, 28, 28, 2)
    on_white = figure(255, 0)
    assert on_white.sum() > 20
    for paper, ink in ((90, 0), (120, 255), (0, 255)):
        assert np.array_equal(figure(paper, ink), on_white), (paper, ink)


@pytest.mark.parametrize("name", ["shapes", "color_shapes", "mnist", "color_mnist"])
def test_the_shipped_examples_are_test_images_pixel_for_pixel(name):
    c, h, w, k = datasets.shape_of(name)
    paths = sorted(EXAMPLES.glob(f"{name}_*.png"))
    assert len(paths) >= 3
    for path in paths:
        x = convert.image_to_levels(convert.open_image(path), c, h, w, k)
        assert x.shape == (c, h, w) and x.max() < k
        if "mnist" not in name:  # shapes need no files; MNIST is checked below where present
            label = int(path.stem.rsplit("_", 1)[1])
            images, labels = datasets.load(name, "test")
            assert torch.equal(torch.from_numpy(x), images[int(torch.nonzero(labels == label)[0])])


@pytest.mark.mnist
def test_the_mnist_examples_match_the_test_set():
    images, labels = datasets.load("mnist", "test")
    for path in sorted(EXAMPLES.glob("mnist_*.png")):
        x = convert.image_to_levels(convert.open_image(path), 1, 28, 28, 2)
        assert torch.equal(torch.from_numpy(x), images[int(torch.nonzero(labels == int(path.stem[-1]))[0])])


def test_a_colour_image_for_a_binary_model_becomes_black_and_white(tmp_path):
    img = Image.new("RGB", (200, 120), (250, 240, 200))  # a pale yellow photo with a red bar
    ImageDraw.Draw(img).rectangle((60, 20, 90, 100), fill=(200, 30, 30))
    x = convert.image_to_levels(img, 1, 28, 28, 2)
    r0, r1, c0, c1 = bbox(x)
    assert r1 - r0 + 1 in (19, 20) and c1 - c0 + 1 < 10  # a tall bar, placed like a digit


def test_light_ink_on_a_dark_background_is_ink():
    img = Image.new("L", (56, 56), 0)
    ImageDraw.Draw(img).rectangle((20, 8, 27, 47), fill=255)
    x = convert.image_to_levels(img, 1, 28, 28, 2)  # an exact multiple: pixel for pixel
    assert x[0, 4:24, 10:14].all() and x.sum() == 20 * 4


def test_a_transparent_png_is_composited_on_white(tmp_path):
    img = Image.new("RGBA", (28, 28), (0, 0, 0, 0))  # transparent black: white once composited
    ImageDraw.Draw(img).rectangle((10, 5, 13, 20), fill=(0, 0, 0, 255))
    img.save(tmp_path / "t.png")
    x = convert.image_to_levels(convert.open_image(tmp_path / "t.png"), 1, 28, 28, 2)
    assert x.sum() == 4 * 16 and x[0, 5:21, 10:14].all()
    rgb = convert.image_to_levels(convert.open_image(tmp_path / "t.png"), 3, 28, 28, 4)
    assert (rgb[:, 0, 0] == 3).all() and (rgb[:, 10, 11] == 0).all()


def test_a_colour_image_is_cropped_square_and_rounded_to_levels():
    img = Image.new("RGB", (120, 80), (255, 0, 0))
    ImageDraw.Draw(img).rectangle((40, 8, 79, 39), fill=(0, 85, 170))  # in the centre square's top half
    x = convert.image_to_levels(img, 3, 20, 20, 4)  # the centre square, 80x80, shrunk 4 times
    assert x.shape == (3, 20, 20)
    assert (x[:, 2:10, 5:15] == np.array([0, 1, 2])[:, None, None]).all()
    assert (x[:, 0, 0] == [3, 0, 0]).all() and (x[:, 10:] == 3 * (np.arange(3) == 0)[:, None, None]).all()


def test_files_that_are_not_images_or_too_large_are_refused(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match="not an image"):
        convert.open_image(tmp_path / "notes.png")
    Image.new("1", (5000, 4000)).save(tmp_path / "huge.png")  # tiny file, 20 megapixels
    with pytest.raises(ValueError, match="too large"):
        convert.open_image(tmp_path / "huge.png")
    with pytest.raises(ValueError, match="not an image"):
        convert.open_image(tmp_path / "missing.png")


def test_a_large_image_is_averaged_down_as_it_is_opened(tmp_path):
    wide = Image.new("L", (16384, 1024), 255)
    ImageDraw.Draw(wide).rectangle((4000, 200, 9000, 800), fill=0)
    wide.save(tmp_path / "wide.png")
    img = convert.open_image(tmp_path / "wide.png")
    assert img.mode == "RGB" and max(img.size) <= convert.WORKING_SIDE and img.size == (1024, 64)
    assert img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((400, 30)) == (0, 0, 0)


def test_thin_strokes_survive_the_averaging(tmp_path):
    side = 2400  # averaged down 3 times
    big = Image.new("L", (side, side), 255)
    for points in SEVEN:  # the seven, ten times larger than on the sketchpad but its strokes no wider
        ImageDraw.Draw(big).line([(x * side / 280, y * side / 280) for x, y in points], fill=0, width=40)
    big.save(tmp_path / "big.png")
    x = convert.image_to_levels(convert.open_image(tmp_path / "big.png"), 1, 28, 28, 2)
    assert x.sum() > 0 and np.array_equal(x, convert.image_to_levels(big, 1, 28, 28, 2))  # as if never shrunk


@pytest.mark.parametrize("mode", ["P", "1", "I;16"])
def test_a_large_image_of_any_mode_is_averaged_down(tmp_path, mode):
    """Modes Image.reduce does not average are converted first: a palette's transparency is kept."""
    img = Image.new(mode, (2048, 1024), {"P": 0, "1": 1, "I;16": 65535}[mode])
    ImageDraw.Draw(img).rectangle((100, 100, 400, 900), fill={"P": 1, "1": 0, "I;16": 0}[mode])
    if mode == "P":
        img.putpalette([255, 0, 0, 0, 0, 0])  # index 0 red, but transparent: white once composited
    img.save(tmp_path / "a.png", **({"transparency": 0} if mode == "P" else {}))
    opened = convert.open_image(tmp_path / "a.png")
    assert opened.mode == "RGB" and opened.size == (1024, 512)
    assert opened.getpixel((0, 0)) == (255, 255, 255) and opened.getpixel((100, 200)) == (0, 0, 0)


def test_what_the_page_sends_is_opened_as_an_image(tmp_path):
    Image.fromarray(canvas(SEVEN)).save(tmp_path / "seven.png")
    path = str(tmp_path / "seven.png")
    for sent in (path, {"path": path}, {"layers": [{"path": path}], "composite": None},
                 {"layers": [None, {"path": path}], "composite": {"path": path}}):
        img = convert.uploaded(sent, "drawing")
        assert img.mode == "RGB" and img.size == (280, 280)
    with pytest.raises(ValueError, match="canvas is empty"):
        convert.uploaded({"layers": [], "composite": None}, "drawing")
    with pytest.raises(ValueError, match="canvas is empty"):
        convert.uploaded(None, "drawing")
    with pytest.raises(ValueError, match="No image yet"):
        convert.uploaded({"path": None}, "image")


def test_colour_is_told_from_greys():
    grey = Image.new("RGB", (20, 20), (250, 250, 245))
    ImageDraw.Draw(grey).line((0, 0, 19, 19), fill=(20, 30, 25), width=3)
    assert not convert.is_colour(grey) and not convert.is_colour(grey.convert("L"))
    ImageDraw.Draw(grey).point((5, 15), fill=(200, 30, 30))
    assert convert.is_colour(grey)
    assert not convert.is_colour(Image.new("RGBA", (4, 4), (255, 0, 0, 0)))  # transparent: white


# ---------------------------------------------------------------- hostile files (issue #21)

def test_only_a_file_inside_the_folders_given_is_opened(tmp_path):
    uploads, elsewhere = tmp_path / "uploads", tmp_path / "elsewhere"
    uploads.mkdir(), elsewhere.mkdir()
    for folder in (uploads, elsewhere):
        Image.new("L", (28, 28), 255).save(folder / "a.png")
    (uploads / "link.png").symlink_to(elsewhere / "a.png")
    assert convert.open_image(uploads / "a.png", [uploads]).size == (28, 28)
    assert convert.uploaded({"path": str(uploads / "a.png")}, "image", [str(uploads)]).size == (28, 28)
    for path in (elsewhere / "a.png", uploads / "link.png", f"{uploads}/../elsewhere/a.png", "/etc/passwd"):
        with pytest.raises(ValueError, match="not uploaded to this app"):
            convert.open_image(path, [uploads])
        with pytest.raises(ValueError, match="not uploaded to this app"):
            convert.uploaded({"layers": [{"path": str(path)}], "composite": None}, "drawing", [uploads])


def opened_within(seconds, *args):
    """convert.open_image(*args) in a thread, its ValueError's message, or a failure after `seconds`."""
    pool = ThreadPoolExecutor(1)
    try:
        with pytest.raises(ValueError) as e:
            pool.submit(convert.open_image, *args).result(timeout=seconds)
        return str(e.value)
    finally:
        pool.shutdown(wait=False)  # what is stuck ends when `fifos` lets go of the FIFO


def test_nothing_but_a_regular_file_is_opened(tmp_path, fifos):
    """A FIFO would hold the worker that opens it until someone writes to it."""
    for path in (fifos(tmp_path), tmp_path, "/dev/zero", "/dev/null"):
        assert "not an image" in opened_within(30, path)
    assert "not an image" in opened_within(30, fifos(tmp_path), [tmp_path])  # allowed, and still refused


def test_a_fifo_in_place_of_the_file_checked_is_not_waited_on(tmp_path, fifos, monkeypatch):
    """The name may point to a FIFO by the time the file is opened: it is opened without waiting
    and refused. (Here the check is told a regular file's status to stand for that moment.)"""
    Image.new("L", (28, 28), 255).save(tmp_path / "a.png")
    seen_before = os.stat(tmp_path / "a.png")
    lying = SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
    lying.stat = lambda path: seen_before
    monkeypatch.setattr(convert, "os", lying)
    assert "not an image" in opened_within(30, fifos(tmp_path))


def test_a_file_over_the_byte_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    Image.new("RGB", (64, 64), (10, 200, 30)).save(tmp_path / "a.png")
    monkeypatch.setattr(convert, "MAX_BYTES", (tmp_path / "a.png").stat().st_size - 1)
    with pytest.raises(ValueError, match="That file is too large"):
        convert.open_image(tmp_path / "a.png")


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, png_claiming):
    """Headers claiming more pixels than MAX_PIXELS, and more than Pillow's own limit."""
    for side in (4097, 50000):
        with pytest.raises(ValueError, match="too large"):
            convert.open_image(png_claiming(tmp_path / "bomb.png", side, side))


def test_only_the_common_image_formats_are_decoded(tmp_path):
    """Pillow reads many rarer formats (its EPS reader runs Ghostscript): none is tried on uploads."""
    (tmp_path / "a.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n")
    Image.new("L", (28, 28), 255).save(tmp_path / "a.ppm")
    Image.new("L", (28, 28), 255).save(tmp_path / "a.tga")
    for name in ("a.eps", "a.ppm", "a.tga"):
        with pytest.raises(ValueError, match="not an image I can read"):
            convert.open_image(tmp_path / name)
    for kind in ("PNG", "JPEG", "WEBP", "GIF", "BMP"):
        Image.new("RGB", (28, 28), (255, 255, 255)).save(tmp_path / "a.img", kind)
        assert convert.open_image(tmp_path / "a.img").size == (28, 28)


def test_an_upload_used_is_kept_and_one_deleted_is_named(tmp_path):
    """Opening an upload touches it (the app deletes its files minutes after their last touch),
    and an upload deleted since is told as such, not as a file that is not an image."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    Image.new("L", (28, 28), 255).save(uploads / "a.png")
    os.utime(uploads / "a.png", (1e9, 1e9))
    convert.open_image(uploads / "a.png", [uploads]).close()
    assert (uploads / "a.png").stat().st_mtime > 1e9 + 1
    (uploads / "a.png").unlink()
    with pytest.raises(ValueError, match="no longer on the server"):
        convert.open_image(uploads / "a.png", [uploads])

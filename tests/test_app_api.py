"""The app's endpoints, /sample, /complete and /score, through gradio_client against the app
served in this process, with tiny weights. (What is behind them, pixelcnn/studio.py, is
tested without a server in test_studio.py.)"""
import asyncio
import json
import math
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from helpers import REPO, SEVEN, canvas, next_pixel_shown
from pixelcnn import convert, images, studio
from pixelcnn.studio import ROWS

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def cells(path, n, nrow, h, w):
    """The colour at the centre of every pixel of every image in a grid picture: (n, h, w, 3)."""
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    scale = img.shape[1] // (nrow * (w + 1) + 1)
    assert img.shape[1] == (nrow * (w + 1) + 1) * scale and img.shape[0] == (math.ceil(n / nrow) * (h + 1) + 1) * scale
    ii = (np.arange(h) * scale + scale // 2)[:, None]
    jj = (np.arange(w) * scale + scale // 2)[None, :]
    out = []
    for k in range(n):
        r, c = divmod(k, nrow)
        out.append(img[(1 + r * (h + 1)) * scale + ii, (1 + c * (w + 1)) * scale + jj])
    return np.stack(out)


def is_ink(rgb):
    return rgb.mean(axis=-1) < 128


def is_tinted(rgb):
    return rgb[..., 2] - rgb[..., 0] > 40


def drawing(path, strokes=SEVEN):
    Image.fromarray(canvas(strokes)).save(path)
    return {"background": None, "layers": [handle_file(str(path))], "composite": handle_file(str(path))}


def complete(client, model="pixelcnn/mnist", source="Draw", draw=None, image=None, keep_rows=14,
             keep=studio.ROWS, temperature=1.0, seed=0):
    job = client.submit(model, source, draw, image, keep_rows, keep, temperature, seed, api_name="/complete")
    frames = list(job)
    return frames, job.outputs()[-1]


# ---------------------------------------------------------------- /sample

def sample(client, *args):
    """The finished grid of /sample (its first output; the second is the next-pixel probabilities)."""
    return client.predict(*args, api_name="/sample")[0]


def test_sample_streams_the_grid_as_it_fills_then_the_finished_grid(client):
    job = client.submit("pixelcnn/mnist", 4, 1.0, 7, api_name="/sample")
    arrivals = []
    for frame, probs in job:
        assert not probs  # not asked for
        arrivals.append((time.monotonic(), frame))
    assert len(arrivals) >= 10, "the grid should arrive in many steps, not at once"
    assert arrivals[-1][0] - arrivals[0][0] > 1.0  # paced: a person can watch it fill
    first, last = cells(arrivals[0][1], 4, 2, 28, 28), cells(arrivals[-1][1], 4, 2, 28, 28)
    assert is_ink(first).sum() < is_ink(last).sum() or not np.array_equal(first, last)
    assert not is_ink(first[:, -1]).any()  # the bottom rows are still blank at first
    # the last picture is the finished grid: only black and white, no red marker
    assert set(map(tuple, last.reshape(-1, 3))) <= {(0, 0, 0), (255, 255, 255)}
    assert Image.open(job.outputs()[-1][0]).size == Image.open(arrivals[-1][1]).size == (472, 472)  # 2x2 of 28, 8x
    assert open(job.outputs()[-1][0], "rb").read(8) == b"\x89PNG\r\n\x1a\n"  # what the download button saves


def test_sample_is_reproducible_from_its_seed_and_changes_with_temperature(client, unpaced):
    def final(seed, temperature=1.0):
        return np.asarray(Image.open(sample(client, "pixelcnn/shapes", 2, temperature, seed)))
    a = final(3)
    assert np.array_equal(a, final(3))
    assert not np.array_equal(a, final(4))
    assert not np.array_equal(final(5, 0.2), final(5, 2.0))


def test_sample_grid_sizes(client, unpaced):
    img = Image.open(sample(client, "pixelrcnn/color_shapes", 1, 0.8, 0))
    assert img.size == (21 * 22, 21 * 22) and img.mode == "RGB"  # one 20x20 image, 22x, with its border


def test_stopping_a_sample_stops_the_sampler_on_the_server(client, sampler_spy, monkeypatch):
    """A cancelled job closes the app's generator, and with it the sampler: no more pixels.
    (Each picture made slow, so that the sampler is still at work when Stop comes.)"""
    seen, picture = sampler_spy, studio.picture
    monkeypatch.setattr(studio, "picture", lambda *a, **k: time.sleep(0.05) or picture(*a, **k))
    job = client.submit("pixelcnn/mnist", 16, 1.0, 1, api_name="/sample")
    while len(job.outputs()) < 3:
        time.sleep(0.02)
    job.cancel()
    deadline = time.monotonic() + 10
    while not seen["closed"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen["closed"] and not seen["finished"]
    steps = seen["steps"]
    time.sleep(0.5)
    assert seen["steps"] == steps < 30


# ---------------------------------------------------------------- /complete

def test_complete_keeps_the_given_rows_exactly_and_fills_the_rest(client, tmp_path):
    frames, final = complete(client, draw=drawing(tmp_path / "seven.png"), keep_rows=14, seed=2)
    assert len(frames) >= 5  # streamed as the completions form
    given = convert.drawing_to_levels(canvas(SEVEN), 28, 28, whole=False)[0].astype(bool)
    got = cells(final, 4, 2, 28, 28)  # four completions, two by two
    assert is_tinted(got[:, :14]).all() and not is_tinted(got[:, 14:]).any()  # the kept part is marked
    assert (is_ink(got[:, :14]) == given[None, :14]).all()  # kept exactly
    rest = got[:, 14:].reshape(-1, 3)
    assert set(map(tuple, rest)) <= {(0, 0, 0), (255, 255, 255)}  # filled in black and white
    assert len({is_ink(got[k, 14:]).tobytes() for k in range(4)}) > 1  # four different completions


def test_complete_keeps_what_was_drawn_wherever_it_is(client, tmp_path, unpaced):
    bottom = [[(60, 230), (220, 230)]]  # a bar at the bottom of the canvas
    _, final = complete(client, draw=drawing(tmp_path / "bottom.png", bottom), keep=studio.DRAWN)
    given = convert.drawing_to_levels(canvas(bottom), 28, 28, whole=False)[0].astype(bool)
    assert given[20:].any() and not given[:18].any()
    got = cells(final, 4, 2, 28, 28)
    assert (is_tinted(got) == given[None]).all()  # the ink, and only the ink, is known
    assert (is_ink(got[:, given])).all()


def test_complete_repaints_what_is_painted_over(client, tmp_path, unpaced):
    """The marking canvas's first layer, sent as the page sends it: every pixel but those
    painted over is kept."""
    paint = Image.new("RGBA", (studio.MARKING_SIDE,) * 2, (0, 0, 0, 0))
    ImageDraw.Draw(paint).rectangle((0, 80, 279, 119), fill=(255, 45, 149, 255))  # rows 8 to 11 of 28
    paint.save(tmp_path / "paint.png")
    marks = {"background": None, "layers": [handle_file(str(tmp_path / "paint.png"))], "composite": None}
    example = handle_file(str(REPO / "examples" / "mnist_7.png"))
    job = client.submit("pixelcnn/mnist", "Image", None, example, 0, studio.MARKED, 1.0, 0, 0, marks,
                        api_name="/complete")
    job.result()
    got = cells(job.outputs()[-1], 4, 2, 28, 28)
    painted = np.zeros((28, 28), bool)
    painted[8:12] = True
    assert is_tinted(got[:, ~painted]).all() and not is_tinted(got[:, painted]).any()


def test_complete_an_example_on_a_colour_model(client, unpaced):
    example = str(REPO / "examples" / "color_shapes_1.png")
    frames, final = complete(client, model="pixelrcnn/color_shapes", source="Image", image=handle_file(example),
                             keep_rows=10)
    got = cells(final, 4, 2, 20, 20)
    given = convert.image_to_levels(convert.open_image(example), 3, 20, 20, 4)
    untinted = (got[:, :10] - 0.4 * np.array(images.TINT)) / 0.6  # images.grid's tint, undone
    assert (np.rint(untinted * 3 / 255) == given.transpose(1, 2, 0)[None, :10]).all()


@pytest.mark.parametrize("kind", ["transparent", "colour"])
def test_complete_converts_unusual_uploads_for_a_binary_model(client, tmp_path, kind, unpaced):
    if kind == "transparent":
        img = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
        ImageDraw.Draw(img).ellipse((20, 10, 80, 90), outline=(0, 0, 0, 255), width=8)
    else:
        img = Image.new("RGB", (160, 100), (255, 230, 120))
        ImageDraw.Draw(img).ellipse((50, 10, 110, 90), outline=(180, 0, 60), width=8)
    img.save(tmp_path / "up.png")
    _, final = complete(client, source="Image", image=handle_file(str(tmp_path / "up.png")), keep_rows=14)
    got = cells(final, 4, 2, 28, 28)  # four completions, two by two
    ring = is_ink(got[0, :14])
    assert ring.sum() > 10 and not ring[:3].any()  # a ring's top, placed like a digit, on white


# ---------------------------------------------------------------- bad input

def error_of(client, api_name, *args):
    with pytest.raises(AppError) as e:
        client.predict(*args, api_name=api_name)
    return str(e.value)


def test_bad_input_is_a_message_not_a_crash(client, tmp_path, unpaced, capfd):
    Image.fromarray(canvas([])).save(tmp_path / "empty.png")
    empty = {"background": None, "layers": [handle_file(str(tmp_path / "empty.png"))],
             "composite": handle_file(str(tmp_path / "empty.png"))}
    (tmp_path / "notes.png").write_text("this is not a picture")
    Image.new("1", (6000, 4000)).save(tmp_path / "huge.png")
    seven = drawing(tmp_path / "seven.png")
    c = ("pixelcnn/mnist", "Draw")
    cases = [
        ("/complete", (*c, empty, None, 14, ROWS, 1.0, 0), "canvas is empty"),
        ("/complete", (*c, None, None, 14, studio.DRAWN, 1.0, 0), "canvas is empty"),
        ("/complete", ("pixelcnn/mnist", "Image", None, handle_file(str(tmp_path / "notes.png")), 14, ROWS, 1.0, 0),
         "not an image"),
        ("/complete", ("pixelcnn/mnist", "Image", None, handle_file(str(tmp_path / "huge.png")), 14, ROWS, 1.0, 0),
         "too large"),
        ("/complete", ("pixelcnn/mnist", "Image", None, None, 14, ROWS, 1.0, 0), "upload one or pick an example"),
        ("/complete", ("pixelrcnn/color_mnist", "Draw", empty, None, 14, ROWS, 1.0, 0), "canvas is empty"),
        ("/complete", (*c, seven, None, 99, ROWS, 1.0, 0), "rows to keep"),
        ("/complete", (*c, seven, None, 14, False, 0.0, 0), "temperature"),
        ("/complete", ("gpt/mnist", "Draw", seven, None, 14, ROWS, 1.0, 0), "Pick a model"),
        ("/sample", ("pixelcnn/mnist", 0, 1.0, 0), "number of samples must be a whole number from 1 to 16"),
        ("/sample", ("pixelcnn/mnist", 2.5, 1.0, 0), "number of samples"),
        ("/sample", ("pixelcnn/mnist", 4, 1.0, -1), "from 0 to 4294967295: -1 is too small"),
        ("/sample", ("pixelcnn/mnist", 4, 0.0, 0), "temperature must be a number above 0"),
        ("/sample", (None, 4, 1.0, 0), "Pick a model"),
        ("/sample", ("gated_cond/mnist", 4, 1.0, 0, 10), "class must be a whole number from 0 to 9"),
        ("/score", ("pixelcnn/mnist", "Draw", empty, None), "canvas is empty"),
        ("/score", ("pixelcnn/mnist", "Image", None, handle_file(str(tmp_path / "notes.png"))), "not an image"),
    ]
    capfd.readouterr()
    for api_name, args, message in cases:
        assert message in error_of(client, api_name, *args), (api_name, args)
    assert "Traceback" not in capfd.readouterr().err  # nothing for the server's log but a request served
    # and the server still answers
    assert Image.open(sample(client, "pixelcnn/shapes", 1, 1.0, 0)).size == (462, 462)


def test_weights_gone_since_start_are_a_clear_message(client, tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELCNN_WEIGHTS", str(tmp_path))  # an empty folder
    studio.loaded.cache_clear()
    try:
        message = error_of(client, "/sample", "pixelcnn/shapes", 1, 1.0, 0)
    finally:
        studio.loaded.cache_clear()
    assert "no trained weights for pixelcnn on shapes" in message and "python train.py" in message


def test_everything_kept_returns_the_picture_itself(client, tmp_path, unpaced):
    _, final = complete(client, draw=drawing(tmp_path / "seven.png"), keep_rows=28)
    got = cells(final, 4, 2, 28, 28)  # four completions, two by two
    assert is_tinted(got).all()
    given = convert.drawing_to_levels(canvas(SEVEN), 28, 28, whole=False)[0].astype(bool)
    assert (is_ink(got) == given[None]).all()


def test_the_endpoints_are_named(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == \
        {"/sample", "/complete", "/score"}


@pytest.mark.slow
def test_python_app_py_on_port_0_serves_on_a_free_port_and_prints_its_url(tiny_weights):
    """How scripts/ (loadtest, screenshot) start the app in a process of its own."""
    import runpy

    running_app = runpy.run_path(str(REPO / "scripts" / "app_server.py"))["running_app"]
    with running_app() as (proc, url):
        assert url.startswith("http://127.0.0.1:")
        assert Image.open(sample(Client(url, verbose=False), "pixelcnn/shapes", 1, 1.0, 0)).size == (462, 462)
    assert proc.returncode is not None  # stopped on leaving


# ---------------------------------------------------------------- beyond the reference

@pytest.mark.parametrize("model,expected", [
    ("pixelcnn/mnist", {(0, "ink"), (0, "paper")}),
    ("pixelrcnn/color_shapes", {(c, str(k)) for c in range(3) for k in range(4)})])
def test_sample_can_show_the_next_pixel_probabilities(client, model, expected):
    """While the grid is drawn, a bar for each level of each channel (with its probability in
    the page's HTML); once it is finished, none (no pixel is being drawn)."""
    job = client.submit(model, 2, 1.0, 3, 0, True, api_name="/sample")
    job.result()
    shown = [next_pixel_shown(probs) for _, probs in job.outputs()]
    assert not shown[-1]
    got = next(p for p in shown if p)
    assert set(got) == expected
    for c in {c for c, _ in expected}:  # a distribution for each channel
        assert sum(p for (channel, _), p in got.items() if channel == c) == pytest.approx(1, abs=1e-5)
    assert all(0 <= p <= 1 for p in got.values())


def test_a_conditional_model_draws_the_class_asked_for(client, unpaced):
    """Different classes, same seed: different images (the tiny model knows little else)."""
    a, b = (np.asarray(Image.open(sample(client, "gated_cond/mnist", 2, 1.0, 5, k))) for k in (3, 7))
    assert a.shape == b.shape and not np.array_equal(a, b)
    assert np.array_equal(a, np.asarray(Image.open(sample(client, "gated_cond/mnist", 2, 1.0, 5, 3))))


@pytest.mark.mnist
def test_score_gives_bits_per_dim_the_test_range_and_a_heat_map(client, tmp_path):
    import pixelcnn
    from pixelcnn import analysis

    heat, text = client.predict("pixelcnn/mnist", "Draw", drawing(tmp_path / "seven.png"), None, api_name="/score")
    net = pixelcnn.load("pixelcnn", "mnist")
    x = convert.drawing_to_levels(canvas(SEVEN), 28, 28, whole=False)
    bpd = analysis.bits_per_dim(net, __import__("torch").from_numpy(x).long()[None]).item()
    assert f"**{bpd:.3f} bits/dim**" in text
    assert "Test images:" in text and "percentile" in text  # the shared MNIST test set is readable
    img = np.asarray(Image.open(heat).convert("RGB")).astype(int)
    assert img.shape == (28 * 5, 2 * 28 * 5 + 8, 3)  # the picture, then its heat map
    assert (img[..., 2] < 200).any()  # some pixel is warm: yellow to red


def test_score_without_the_dataset_takes_the_range_from_the_facts_file(tiny_weights, tmp_path, monkeypatch):
    import app
    from pixelcnn import datasets

    facts = tiny_weights / "pixelcnn_shapes.json"
    saved = facts.read_text()
    known = {**json.loads(saved), "test_bits_per_dim_percentiles": {"5": 0.1, "25": 0.2, "50": 0.3, "75": 0.4,
                                                                    "95": 0.5}}
    facts.write_text(json.dumps(known))

    def unreadable(*args, **kwargs):
        raise FileNotFoundError("no dataset here")

    monkeypatch.setattr(datasets, "load", unreadable)
    studio.range_on_test_images.cache_clear()
    try:
        _, text = asyncio.run(app.score("pixelcnn/shapes", "Image", None,
                                        {"path": str(REPO / "examples" / "shapes_1.png")}))
    finally:
        facts.write_text(saved)
        studio.range_on_test_images.cache_clear()
    assert "0.100 to 0.500 bits/dim" in text and "median 0.300" in text

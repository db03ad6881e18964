"""What the app does, without a server (pixelcnn/studio.py): each action from the page's raw
inputs to pictures and text, its refusals, and the global random state left as it was."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import pixelcnn
from helpers import ONE, REPO, SEVEN, canvas, make_tiny, next_pixel_shown
from pixelcnn import analysis, convert, datasets, evaluate, files, images, studio, weights

EXAMPLE = {"path": str(REPO / "examples" / "shapes_1.png")}
EXAMPLE_MNIST = str(REPO / "examples" / "mnist_7.png")


pytestmark = pytest.mark.usefixtures("fresh_caches")  # app_fixtures: no model cached by another test


def drawing(tmp_path, strokes=SEVEN, colour=(0, 0, 0)):
    """The sketchpad's payload for a drawing."""
    Image.fromarray(canvas(strokes, colour=colour)).save(tmp_path / "drawn.png")
    return {"background": None, "layers": [{"path": str(tmp_path / "drawn.png")}],
            "composite": {"path": str(tmp_path / "drawn.png")}}


def refusal(call, *args, **kwargs):
    with pytest.raises(studio.Refused) as e:
        out = call(*args, **kwargs)
        if hasattr(out, "__next__"):  # a stream refuses at its first picture
            next(out)
    assert isinstance(e.value, ValueError)
    return e.value


# ---------------------------------------------------------------- names, models, numbers

def test_a_name_is_a_model_and_a_dataset_else_a_message():
    assert studio.split("gated_cond/mnist") == ("gated_cond", "mnist")
    for bad in ("gpt/mnist", "pixelcnn", "pixelcnn/cifar", None, ""):
        assert "Pick a model first" in str(refusal(studio.split, bad))


def test_missing_weights_are_a_message_titled_no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELCNN_WEIGHTS", str(tmp_path))
    e = refusal(studio.get_model, "pixelcnn/shapes")
    assert e.title == "No weights" and "no trained weights for pixelcnn on shapes" in str(e)


@pytest.mark.parametrize("model", pixelcnn.MODELS)
def test_is_conditional_says_whether_the_model_takes_a_class(model):
    assert pixelcnn.is_conditional(model) == bool(make_tiny(model, "mnist", warm=False).config.classes)


def test_numbers_from_the_page_are_checked():
    assert studio.whole_number("3", 1, 16, "number of samples") == 3
    assert studio.whole_number(16.0, 1, 16, "number of samples") == 16
    said = {}
    for bad in (2.5, 0, 17, "many", None, "", " ", float("nan"), float("inf"), True, "+-3", "9" * 5000, 10**20):
        said[repr(bad)] = str(refusal(studio.whole_number, bad, 1, 16, "number of samples"))
        assert said[repr(bad)].startswith("The number of samples ")
        assert "a whole number from 1 to 16" in said[repr(bad)]
    assert said["None"] == said["''"] == "The number of samples is empty: give a whole number from 1 to 16."
    assert said["17"].endswith(": 17 is too large.") and said["0"].endswith(": 0 is too small.")
    assert said["2.5"].endswith(", not 2.5.") and said["100000000000000000000"].endswith(" is too large.")
    assert studio.temperature_of("0.5") == 0.5
    for bad in (0, -1, 10.5, "hot", None, float("nan")):
        assert "temperature must be a number above 0" in str(refusal(studio.temperature_of, bad))


def test_every_seed_up_to_the_largest_is_taken_exactly():
    top = studio.MAX_SEED
    for seed in (0, 1, 2**31, top - 1, top):
        assert studio.whole_number(seed, 0, top, "seed") == seed
        assert studio.whole_number(str(seed), 0, top, "seed") == seed
        assert studio.whole_number(float(seed), 0, top, "seed") == seed
    big = 2**53 + 1  # a float would make it 2**53
    assert studio.whole_number(big, 0, 2**63, "seed") == studio.whole_number(str(big), 0, 2**63, "seed") == big
    for bad in (-1, top + 1, 2**63 - 1, float(2**53), 1e300, "1e30"):
        assert f"seed must be a whole number from 0 to {top}" in str(refusal(studio.whole_number, bad, 0, top, "seed"))


def test_seeds_near_the_top_draw_their_own_images(tiny_models):
    def drawn(seed):
        return np.asarray(list(studio.sample("pixelcnn/shapes", 2, 1.0, seed))[-1][0].image())

    top = studio.MAX_SEED
    assert np.array_equal(drawn(top), drawn(str(top)))
    assert not np.array_equal(drawn(top), drawn(top - 1))
    assert "from 0 to 4294967295" in str(refusal(studio.sample, "pixelcnn/shapes", 1, 1.0, top + 1))


def test_the_controls_follow_the_model():
    mnist = studio.controls("pixelcnn/mnist")
    assert mnist.rows == 28 and not mnist.classes["visible"]
    assert mnist.examples == sorted(str(p) for p in (REPO / "examples").glob("mnist_*.png")) != []
    conditional = studio.controls("gated_cond/mnist").classes
    assert conditional["visible"] and conditional["choices"] == [(str(k), k) for k in range(10)]
    colour = studio.controls("pixelrcnn/color_shapes")
    assert colour.rows == 20 and colour.colour and not mnist.colour
    assert all("color_shapes_" in p for p in colour.examples)
    nothing = studio.controls(None)
    assert nothing.examples == [] and not nothing.classes["visible"]
    assert "Pick a model first" in str(refusal(studio.controls, "gpt/mnist"))


# ---------------------------------------------------------------- sample and complete

def test_sample_streams_the_grid_and_ends_with_the_models_own_sample(tiny_models):
    frames = list(studio.sample("pixelcnn/shapes", "2", 1.0, 3.0, show_probs=True))
    shown = [next_pixel_shown(probs) for _, probs in frames]
    assert len(frames) > 10 and all(set(p) == {(0, "paper"), (0, "ink")} for p in shown[:-1])
    assert all(sum(p.values()) == pytest.approx(1, abs=1e-5) for p in shown[:-1])
    assert frames[-1][1] == studio.FINISHED  # no pixel is being drawn
    net = tiny_models("pixelcnn", "shapes")
    expected = studio.picture(net.sample(2, seed=3), net.levels, 2)
    assert np.array_equal(np.asarray(frames[-1][0].image()), np.asarray(expected.image()))
    assert all(probs is None for _, probs in studio.sample("pixelcnn/shapes", 1, 1.0, 3))  # not asked for


def test_pixels_not_drawn_yet_show_as_a_checkerboard_not_black(tiny_models):
    """A colour grid being drawn: every pixel after the one being drawn is the light
    checkerboard (in black, it looked finished and dark), every pixel before it the image's
    own colour; the finished grid has no checkerboard."""
    frames = list(studio.sample("pixelrcnn_ar/color_shapes", 1, 1.0, 0))
    grid = frames[len(frames) // 2][0]
    (i, j), (h, w) = grid.mark, grid.x.shape[-2:]
    scale = max(3, studio.WIDTH // (w + 2))
    pic = np.asarray(grid.image()).astype(int)[1 * scale + scale // 2::scale, 1 * scale + scale // 2::scale][:h, :w]
    own = np.asarray(images.grid(grid.x, 4, scale=1, pad=0)).astype(int)
    after = np.arange(h * w).reshape(h, w) > i * w + j
    checker = np.where((np.arange(h)[:, None] + np.arange(w)) % 2, 212, 238)
    assert after.any() and (~after).any()
    assert (pic[after] == checker[after][:, None]).all()
    assert (pic[~after] == own[~after]).all()  # the red square outlines the pixel drawn, its centre its own
    done = np.asarray(frames[-1][0].image()).astype(int)
    assert frames[-1][0].blank() is None and not (done == 212).all(axis=-1).any()


def test_completions_leave_the_kept_rows_and_checker_the_rest(tiny_models):
    grid = studio.picture(torch.zeros(4, 1, 6, 5, dtype=torch.long), 2, 2, mark=(3, 1),
                          known=torch.arange(6)[:, None].expand(6, 5) < 2, drawn=3 * 5 + 2)
    expected = np.zeros((6, 5), bool)
    expected.flat[3 * 5 + 2:] = True
    assert np.array_equal(grid.blank(), expected)


def test_the_next_pixel_shows_each_channel_as_bars_of_its_colours(tiny_models):
    """A colour model's next pixel: the colour drawn, a bar per level of each channel that sums
    to 1, red, then green given the red, then blue given both for an R→G→B model; the colours
    said to mix for one that draws its channels apart."""
    for model, ar in (("pixelrcnn_ar", True), ("pixelrcnn", False)):
        frames = list(studio.sample(f"{model}/color_shapes", 1, 1.0, 0, show_probs=True))
        html = frames[3][1]
        shown = next_pixel_shown(html)
        assert set(shown) == {(c, str(k)) for c in range(3) for k in range(4)}
        for c in range(3):
            assert sum(shown[c, str(k)] for k in range(4)) == pytest.approx(1, abs=1e-5)
        assert ("given the red and green drawn" in html) is ar and ("colours mix" in html) is not ar
        assert html.count("<div class=\"level\"") == 12 and "Drawn: " in html


def test_the_picker_puts_the_best_model_of_each_dataset_first(monkeypatch):
    """By dataset; within one, the lowest test NLL first, class-conditional models last; each
    named the reference design, the best or improved; a line about each with its NLL."""
    nll = {"pixelcnn/mnist": 80.0, "gated/mnist": 60.0, "gated_cond/mnist": 50.0, "pixelcnn/shapes": 9.0,
           "pixelrcnn/color_mnist": 200.0, "pixelrcnn_ar/color_mnist": 85.0}
    monkeypatch.setattr(studio, "test_nll", nll.get)
    got = studio.ranked(list(nll))
    assert got == [("Shapes · PixelCNN — reference design", "pixelcnn/shapes"),
                   ("MNIST · Gated PixelCNN — best", "gated/mnist"),
                   ("MNIST · PixelCNN — reference design", "pixelcnn/mnist"),
                   ("MNIST · Gated PixelCNN, class-conditional — improved", "gated_cond/mnist"),
                   ("Colour MNIST · PixelRCNN, R→G→B — best", "pixelrcnn_ar/color_mnist"),
                   ("Colour MNIST · PixelRCNN — reference design", "pixelrcnn/color_mnist")]
    assert "**60.0 nats** per test image (lower is better; PixelCNN, the reference: 80.0)" in studio.about(
        "gated/mnist")
    assert "given its class" in studio.about("gated_cond/mnist")
    assert "so its colours mix" in studio.about("pixelrcnn/color_mnist")


def test_the_line_about_a_model_says_what_its_options_show_it(monkeypatch, tmp_path):
    """same_as_first: shown which colours match the first pixel's; summary: the rows above."""
    monkeypatch.setenv("PIXELCNN_WEIGHTS", str(tmp_path))
    (tmp_path / "gated_color_mnist.json").write_text('{"config": {"same_as_first": true}}')
    (tmp_path / "gated_mnist.json").write_text('{"config": {"summary": true}}')
    (tmp_path / "gated_color_shapes.json").write_text('{"config": "not a dict"}')
    assert "is the first pixel's" in studio.about("gated/color_mnist")
    assert "summary of every row above" in studio.about("gated/mnist")
    for name in ("gated/color_shapes", "pixelrcnn_ar/color_mnist"):
        assert "is the first pixel's" not in studio.about(name) and "summary" not in studio.about(name)
    assert "summary" not in studio.about("gated/color_mnist") and "first pixel" not in studio.about("gated/mnist")


def test_only_a_colour_model_with_independent_channels_says_under_its_samples_why_its_colours_mix():
    assert studio.samples_note("pixelrcnn/color_mnist").startswith("PixelRCNN, the reference design: it draws")
    assert "so its colours mix" in studio.samples_note("pixelrcnn/color_shapes")
    assert [studio.samples_note(n) for n in ("pixelrcnn_ar/color_mnist", "gated/color_shapes", "pixelcnn/mnist",
                                             "gated/mnist", None)] == [""] * 5


def test_sample_refuses_bad_input_before_drawing(tiny_models):
    assert "number of samples" in str(refusal(studio.sample, "pixelcnn/shapes", 0, 1.0, 0))
    assert "seed" in str(refusal(studio.sample, "pixelcnn/shapes", 1, 1.0, -1))
    assert "temperature" in str(refusal(studio.sample, "pixelcnn/shapes", 1, 0, 0))
    assert "class must be a whole number from 0 to 9" in str(refusal(studio.sample, "gated_cond/mnist", 1, 1.0, 0, 10))


def test_complete_keeps_the_top_rows_and_samples_the_rest(tiny_models, tmp_path):
    said = []
    frames = list(studio.complete("pixelcnn/mnist", studio.DRAW, drawing(tmp_path), None, 14, studio.ROWS, 1.0, 2,
                                  tell=lambda *a: said.append(a)))
    net = tiny_models("pixelcnn", "mnist")
    x = torch.from_numpy(convert.drawing_to_levels(canvas(SEVEN), 28, 28, whole=False)).long()
    mask = torch.zeros(28, 28, dtype=torch.bool)
    mask[:14] = True
    done = net.sample(studio.COMPLETIONS, seed=2, prefix=x, prefix_mask=mask)
    expected = studio.picture(done, net.levels, studio.COMPLETIONS_ROW, known=mask)
    assert len(frames) > 5 and said == []
    assert np.array_equal(np.asarray(frames[-1].image()), np.asarray(expected.image()))
    assert np.array_equal(frames[0].blank(), ~mask.numpy())  # at once: what is kept, the rest to draw


def test_a_drawing_is_completed_and_scored_where_it_was_drawn(tiny_models, tmp_path):
    """The top bar of a 7 stays at the top, as large as drawn (the canvas is the central box),
    in what is completed, what is scored and what is shown as given: not centred like a digit."""
    bar = drawing(tmp_path, [[(60, 30), (220, 30)]])
    x = convert.drawing_to_levels(canvas([[(60, 30), (220, 30)]]), 28, 28, whole=False)
    assert set(np.nonzero(x[0].any(axis=1))[0]) <= {4, 5, 6}  # the canvas's top rows: the box's
    net = tiny_models("pixelcnn", "mnist")
    _, text = studio.score("pixelcnn/mnist", studio.DRAW, bar, None)
    assert f"**{analysis.bits_per_dim(net, torch.from_numpy(x).long()[None]).item():.3f} bits/dim**" in text
    frames = list(studio.complete("pixelcnn/mnist", studio.DRAW, bar, None, 28, studio.ROWS, 1.0, 0))
    assert np.array_equal(np.asarray(frames[-1].image()), np.asarray(studio.picture(
        torch.from_numpy(x).long().expand(4, -1, -1, -1), 2, 2, known=torch.ones(28, 28, dtype=torch.bool)).image()))
    shown = studio.seen("pixelcnn/mnist", studio.DRAW, bar, None)
    assert np.array_equal(np.asarray(shown), np.asarray(images.grid(x[None], 2, scale=studio.SEE_SCALE // 2)))
    assert studio.seen("pixelcnn/mnist", studio.DRAW, None, None) is None  # nothing drawn: nothing shown


def test_keeping_what_was_drawn_applies_to_drawings_only(tiny_models):
    e = refusal(studio.complete, "pixelcnn/shapes", studio.IMAGE, None, EXAMPLE, 5, studio.DRAWN, 1.0, 0)
    assert "Only a drawing keeps what you drew" in str(e)
    e = refusal(studio.complete, "pixelcnn/shapes", studio.IMAGE, None, EXAMPLE, 5, False, 1.0, 0)
    assert "What to keep must be one of" in str(e)


def test_complete_keeps_what_was_drawn_and_fills_in_the_rest_given_all_of_it(tiny_models, tmp_path):
    """The drawing's ink is known, wherever it is; the rest is model.inpaint's, seeded."""
    frames = list(studio.complete("pixelcnn/mnist", studio.DRAW, drawing(tmp_path), None, 0, studio.DRAWN, 1.0, 2))
    net = tiny_models("pixelcnn", "mnist")
    x = torch.from_numpy(convert.drawing_to_levels(canvas(SEVEN), 28, 28, whole=False)).long()
    known = x[0] != 0
    done = net.inpaint(x, known, studio.COMPLETIONS, seed=2, particles=studio.PARTICLES)
    expected = studio.picture(done, net.levels, studio.COMPLETIONS_ROW, known=known)
    assert len(frames) > 3 and np.array_equal(np.asarray(frames[-1].image()), np.asarray(expected.image()))


def test_a_colour_model_completes_a_drawing_in_colour_keeping_its_ink(tiny_models, tmp_path):
    """A purple stroke on white: the two colours kept where drawn; the rest is model.inpaint's."""
    purple = drawing(tmp_path, SEVEN, colour=(170, 0, 255))
    frames = list(studio.complete("pixelrcnn/color_mnist", studio.DRAW, purple, None, 0, studio.DRAWN, 1.0, 2))
    net = tiny_models("pixelrcnn", "color_mnist")
    x = torch.from_numpy(convert.colour_drawing_to_levels(canvas(SEVEN, colour=(170, 0, 255)), 3, 28, 28, 4)).long()
    known = (x != 3).any(dim=0)
    assert (x[:, known] == torch.tensor([2, 0, 3])[:, None]).all() and known.sum() > 30
    done = net.inpaint(x, known, studio.COMPLETIONS, seed=2, particles=studio.PARTICLES)
    expected = studio.picture(done, net.levels, studio.COMPLETIONS_ROW, known=known)
    assert len(frames) > 3 and np.array_equal(np.asarray(frames[-1].image()), np.asarray(expected.image()))
    said = []
    _, text = studio.score("pixelrcnn/color_mnist", studio.DRAW, purple, None, tell=lambda *a: said.append(a))
    assert "bits/dim" in text and said == []  # one colour: nothing to say
    two = canvas(SEVEN, colour=(170, 0, 255)).copy()
    one = canvas(ONE, colour=(255, 85, 0))
    two[one[..., 3] > 0] = one[one[..., 3] > 0]
    Image.fromarray(two).save(tmp_path / "two.png")
    given = studio.given("color_mnist", studio.DRAW, {"path": str(tmp_path / "two.png")}, None,
                         tell=lambda *a: said.append(a))
    assert said == [("info", "This model draws in one colour on a background: your drawing is taken in its "
                             "commonest colour.")]
    assert set(map(tuple, given.reshape(3, -1).T)) == {(3, 3, 3), (2, 0, 3)}  # the orange stroke in purple


def test_what_the_model_is_given_to_complete_is_the_part_kept(tmp_path):
    """The preview, given the way to keep: the kept part tinted blue, the rest not given (the
    checkerboard of what is not drawn yet); without it, the whole picture (to score)."""
    seven = drawing(tmp_path)
    x = convert.drawing_to_levels(canvas(SEVEN), 28, 28, whole=False)
    shown = studio.seen("pixelcnn/mnist", studio.DRAW, seven, None, keep=studio.DRAWN)
    ink = x[0] != 0
    expected = images.grid(x[None], 2, scale=studio.SEE_SCALE // 2, known=ink, blank=~ink)
    assert np.array_equal(np.asarray(shown), np.asarray(expected))
    rows = studio.seen("pixelcnn/mnist", studio.DRAW, seven, None, keep=studio.ROWS, keep_rows=9)
    top = np.arange(28)[:, None].repeat(28, 1) < 9
    assert np.array_equal(np.asarray(rows), np.asarray(images.grid(x[None], 2, scale=5, known=top, blank=~top)))
    assert studio.seen("pixelcnn/mnist", studio.IMAGE, None, EXAMPLE_MNIST, keep=studio.DRAWN) is None  # refused


def test_complete_repaints_what_is_painted_over(tiny_models, tmp_path):
    """The marking canvas's paint, a band across the middle: every pixel but those kept."""
    paint = Image.new("RGBA", (studio.MARKING_SIDE,) * 2, (0, 0, 0, 0))
    ImageDraw.Draw(paint).rectangle((0, 100, 279, 139), fill=(255, 45, 149, 255))  # rows 10 to 13 of 28
    paint.save(tmp_path / "paint.png")
    marks = {"background": None, "layers": [{"path": str(tmp_path / "paint.png")}], "composite": None}
    frames = list(studio.complete("pixelcnn/mnist", studio.IMAGE, None, EXAMPLE_MNIST, 0, studio.MARKED, 1.0, 3,
                                  marks=marks))
    net = tiny_models("pixelcnn", "mnist")
    x = torch.from_numpy(convert.image_to_levels(convert.open_image(EXAMPLE_MNIST), 1, 28, 28, 2)).long()
    known = torch.ones(28, 28, dtype=torch.bool)
    known[10:14] = False
    done = net.inpaint(x, known, studio.COMPLETIONS, seed=3, particles=studio.PARTICLES)
    expected = studio.picture(done, net.levels, studio.COMPLETIONS_ROW, known=known)
    assert np.array_equal(np.asarray(frames[-1].image()), np.asarray(expected.image()))
    nothing = {"background": None, "layers": [], "composite": None}
    e = refusal(studio.complete, "pixelcnn/mnist", studio.IMAGE, None, EXAMPLE_MNIST, 0, studio.MARKED, 1.0, 3,
                marks=nothing)
    assert e.title == "Nothing to repaint" and "paint over the part" in str(e)
    backdrop = studio.backdrop("pixelcnn/mnist", studio.IMAGE, None, EXAMPLE_MNIST)
    assert backdrop.size == (studio.MARKING_SIDE,) * 2
    assert np.array_equal(np.asarray(backdrop)[5::10, 5::10, 0] < 128, x[0].numpy() == 1)  # the picture, filling it


def test_complete_with_every_row_kept_warns_and_shows_the_picture(tiny_models, tmp_path):
    said = []
    frames = list(studio.complete("pixelcnn/mnist", studio.DRAW, drawing(tmp_path), None, 28, studio.ROWS, 1.0, 0,
                                  tell=lambda *a: said.append(a)))
    assert len(frames) == 1 and said == [("warning", "Every row is kept, so there is nothing left to complete: "
                                                     "keep fewer rows.")]


def test_complete_refuses_pictures_it_cannot_use(tiny_models, tmp_path):
    faint = drawing(tmp_path, [[(140, 100), (141, 100)]])  # ink, too little to make a pixel
    e = refusal(studio.complete, "pixelcnn/mnist", studio.DRAW, faint, None, 0, studio.DRAWN, 1.0, 0)
    assert str(e) == "There is nothing drawn to keep."
    pale = drawing(tmp_path, colour=(250, 250, 250))  # on white, too pale to be told from it
    e = refusal(studio.complete, "pixelrcnn/color_shapes", studio.DRAW, pale, None, 5, studio.ROWS, 1.0, 0)
    assert e.title == "Cannot use that picture" and "canvas is empty" in str(e)
    e = refusal(studio.complete, "pixelcnn/mnist", studio.IMAGE, None, None, 5, studio.ROWS, 1.0, 0)
    assert e.title == "Cannot use that picture" and "No image yet" in str(e)


# ---------------------------------------------------------------- how likely

def test_score_gives_bits_per_dim_the_test_range_and_a_heat_map(tiny_models):
    heat, text = studio.score("pixelcnn/shapes", studio.IMAGE, None, EXAMPLE)
    net = tiny_models("pixelcnn", "shapes")
    x = torch.from_numpy(convert.image_to_levels(convert.open_image(EXAMPLE["path"]), 1, 20, 20, 2)).long()[None]
    assert f"**{analysis.bits_per_dim(net, x).item():.3f} bits/dim**" in text
    q = studio.range_on_test_images("pixelcnn/shapes")  # as recorded beside the weights
    assert f"Test images: {q['5']:.3f} to {q['95']:.3f} bits/dim" in text and f"median {q['50']:.3f}" in text
    assert heat.size == (2 * 20 * 5 + 8, 20 * 5)  # the picture, then its heat map
    assert np.array_equal(np.asarray(heat)[:, :100], np.asarray(images.grid(x, 2, scale=5, pad=0)))
    bits = analysis.surprise(net, x)[0]  # on a square-root scale: a pixel of a quarter of the top bits half-way
    assert np.array_equal(np.asarray(heat)[:, -100:], np.asarray(images.heatmap(bits.sqrt().numpy(), scale=5,
                                                                                 from_white=True)))
    assert f"dark red at {bits.max().item():.1f} bits, on a square-root scale" in text


def test_score_names_the_class_and_tells_of_a_colour_image_made_black_and_white(tiny_models, tmp_path):
    Image.new("RGB", (60, 60), (255, 230, 120)).save(tmp_path / "yellow.png")
    ring = Image.open(tmp_path / "yellow.png")
    ring.paste((180, 0, 60), (20, 10, 40, 50))
    ring.save(tmp_path / "yellow.png")
    said = []
    _, text = studio.score("gated_cond/mnist", studio.IMAGE, None, {"path": str(tmp_path / "yellow.png")}, 7,
                           tell=lambda *a: said.append(a))
    assert "given the class 7)." in text
    assert said == [("info", "This model draws black and white: your colour image was turned into black and white.")]


def test_the_test_range_comes_from_the_dataset_else_the_facts_file(tmp_path, monkeypatch):
    net, first = make_tiny("pixelcnn", "shapes"), slice(0, evaluate.RANGE_IMAGES)
    x, y = datasets.load("shapes", "test")
    assert evaluate.range_on_test_images(net) == evaluate.bits_range(net, x[first], y[first])

    def unreadable(*args, **kwargs):
        raise FileNotFoundError("no dataset here")

    monkeypatch.setattr(datasets, "load", unreadable)
    assert evaluate.range_on_test_images(net, weights_dir=tmp_path) is None
    q = {"5": 0.1, "25": 0.2, "50": 0.3, "75": 0.4, "95": 0.5}
    files.write_facts(weights.weights_path("pixelcnn", "shapes", tmp_path), {"test_bits_per_dim_percentiles": q})
    assert evaluate.range_on_test_images(net, weights_dir=tmp_path) == q


# ---------------------------------------------------------------- what the model sees

def test_what_the_model_sees_shows_the_blind_spot(monkeypatch):
    """With the default architectures untrained (the tiny test weights are too shallow to
    have a blind spot within Gated PixelCNN's reach): the maps' counts are those of
    analysis.influence, and PixelCNN's blind spot (light blue) lies above and to the right
    of the pixel."""
    def no_weights(model, dataset):
        raise FileNotFoundError("none")

    monkeypatch.setattr(studio, "loaded", no_weights)
    i, j = 14, 10
    source, ref, gated, text, titles = studio.see("pixelcnn/mnist", i, j)
    assert titles == ("PixelCNN", "Gated PixelCNN")
    assert text.count("untrained") == 2
    x = torch.from_numpy(studio.see_image("mnist")).long()
    counts = [analysis.influence(pixelcnn.build(m, "mnist").eval(), x, i, j) > 0 for m in ("pixelcnn", "gated")]
    assert f"looks at **{counts[0].sum()}** pixels" in text and f"at **{counts[1].sum()}** pixels" in text
    assert "itself" not in text  # one channel: no pixel sees itself
    blind = counts[1] & ~counts[0]
    assert blind.any() and f"**{blind.sum()}** pixels" in text
    s = studio.SEE_SCALE
    pic = np.asarray(ref.convert("RGB")).astype(int)
    centres = pic[s // 2::s, s // 2::s]  # one colour per image pixel
    light_blue = (centres == (150, 200, 255)).all(axis=-1)
    assert np.array_equal(light_blue, blind.numpy())
    rows, cols = np.nonzero(light_blue)
    assert (rows < i).all() and (cols > j).all()
    assert source.size == ref.size == gated.size == (28 * s, 28 * s)


def test_what_the_model_sees_compares_the_model_picked(tiny_models):
    """The model picked is one of the two, trained; the other is the dataset's of the other
    kind: in colour, PixelRCNN (the reference) beside Gated PixelCNN."""
    *_, text, titles = studio.see("pixelrcnn_ar/color_shapes", 5, 5)
    assert titles == ("PixelRCNN, R→G→B", "Gated PixelCNN")
    assert "PixelRCNN, R→G→B (the model picked) looks at" in text and "untrained" not in text
    *_, text, _ = studio.see("pixelrcnn_ar/color_shapes", 0, 0)  # the first pixel: only its own earlier colours
    assert "looks at **1** pixel," in text and "at **1** pixel." in text and "blind spot" not in text
    assert "PixelRCNN, R→G→B and Gated PixelCNN see the pixel itself" in text
    *_, text, _ = studio.see("gated/color_mnist", 0, 0)  # beside PixelRCNN, whose colours are drawn apart
    assert "looks at **0** pixels," in text and "Gated PixelCNN sees the pixel itself" in text
    assert "blind spot" not in text  # the pixel itself is no blind spot
    *_, text, titles = studio.see("gated/color_mnist", 5, 5)
    assert titles == ("PixelRCNN", "Gated PixelCNN") and "Gated PixelCNN (the model picked)" in text
    assert studio.see("gated_cond/mnist")[-1] == ("PixelCNN", "Gated PixelCNN, class-conditional")


def test_see_starts_at_the_centre_and_keeps_the_pixel_inside_the_image(tiny_models):
    assert "Predicting pixel **(10, 10)**" in studio.see("pixelcnn/shapes")[3]
    assert "Predicting pixel **(0, 19)**" in studio.see("pixelcnn/shapes", -5, 99)[3]
    assert "Pick a model first" in str(refusal(studio.see, "gpt/shapes", 1, 1))


def test_the_influence_map_is_drawn_on_a_log_scale():
    pic = np.asarray(images.log_heatmap(np.array([[0, 1e-9, 1e-2, 1.0]]), scale=1)).astype(int)
    assert tuple(pic[0, 0]) == (255, 255, 255)  # unseen: the (absent) picture, white
    assert tuple(pic[0, 3]) == tuple(images.YLORRD[-1])  # the largest: dark red
    assert pic[0, 1, 1] > pic[0, 2, 1] > pic[0, 3, 1]  # yellow, orange, red: less green as the value grows
    assert tuple(pic[0, 1]) != (255, 255, 255)  # far below: faint, but coloured
    assert (np.asarray(images.log_heatmap(np.zeros((2, 2)), scale=1)) == 255).all()


def test_no_action_changes_the_global_random_state(tmp_path, monkeypatch):
    """A server's handlers share one process: building or loading a model for one person
    must not reset or advance the generator another relies on."""
    monkeypatch.setenv("PIXELCNN_WEIGHTS", str(tmp_path))
    weights.save(make_tiny("pixelcnn", "shapes"), weights.weights_path("pixelcnn", "shapes", tmp_path))
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    list(studio.sample("pixelcnn/shapes", 1, 1.0, 0))
    _, _, _, text, _ = studio.see("pixelcnn/shapes", 5, 5)  # PixelCNN trained, Gated PixelCNN built untrained
    assert text.count("untrained") == 1
    assert torch.equal(torch.random.get_rng_state(), state)
    untrained = studio.seeing_model("gated", "shapes")[0].state_dict()
    studio.seeing_model.cache_clear()
    again = studio.seeing_model("gated", "shapes")[0].state_dict()
    assert all(torch.equal(untrained[k], again[k]) for k in untrained)  # seeded: the same map every time

"""Property-based tests (hypothesis) of what the app's endpoints and handlers receive: any
JSON-like value for any parameter of pixelcnn/studio.py's actions, called in this process with
tiny models. Each action works or raises studio.Refused (a message for the person), never
another exception; a file is opened only from the uploads folder or the examples."""
import os

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from helpers import REPO, SEVEN, canvas, next_pixel_shown
from pixelcnn import studio

# function-scoped fixtures (tiny models, files) serve every example of a test alike
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
NAMES = ["pixelcnn/shapes", "gated_cond/mnist", "pixelrcnn_ar/color_shapes", "pixelcnn/mnist"]
SEEDS = [0, -1, studio.MAX_SEED, studio.MAX_SEED + 1, 2**53 + 1, float(2**53), 2**63 - 1, 2**63, str(studio.MAX_SEED)]
EXAMPLE = str((REPO / "examples" / "shapes_1.png").resolve())


def json_like():
    """What a client can send for one parameter: any JSON value, small."""
    leaves = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
              | st.text(max_size=12))
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                           max_size=3), max_leaves=6)


def near(values, *valid):
    """A parameter: three times in four a value that could be right (of `values` or `valid`, a
    strategy), else any JSON value."""
    return st.integers(0, 3).flatmap(lambda k: st.one_of(st.sampled_from(values), *valid) if k else json_like())


@pytest.fixture
def files(tmp_path, fifos, png_claiming):
    """(uploads folder, paths a client might name): inside it a drawing, a colour picture, a text
    file, a FIFO and a bomb's header; outside it a picture, /etc/passwd and an example."""
    uploads, elsewhere = tmp_path / "uploads", tmp_path / "elsewhere"
    uploads.mkdir(), elsewhere.mkdir()
    Image.fromarray(canvas(SEVEN)).save(uploads / "seven.png")
    Image.new("RGB", (40, 30), (200, 30, 30)).save(uploads / "red.png")
    (uploads / "notes.png").write_text("not a picture")
    Image.fromarray(canvas(SEVEN)).save(elsewhere / "private.png")
    paths = [uploads / "seven.png", uploads / "red.png", uploads / "notes.png", fifos(uploads),
             png_claiming(uploads / "bomb.png", 50000, 50000), elsewhere / "private.png", "/etc/passwd", EXAMPLE]
    return str(uploads), [str(p) for p in paths]


def pictures(paths):
    """What a client can send for the image or the drawing: a path, bare or in a file object, a
    drawing's layers and composite, or anything."""
    path = st.sampled_from(paths)
    one = st.one_of(path, path.map(lambda p: {"path": p}),
                    path.map(lambda p: {"path": p, "meta": {"_type": "gradio.FileData"}}), json_like())
    drawing = st.fixed_dictionaries({"background": st.none(), "layers": st.lists(one, max_size=2) | json_like(),
                                     "composite": one})
    return st.one_of(one, drawing)


def outcome(run):
    """What an action gives when run to its end, or None where it refuses (studio.Refused, with a
    message); any other exception fails the test."""
    try:
        result = run()
    except studio.Refused as e:
        assert str(e) and isinstance(e.title, str)
        event("refused")
        return None
    event("done")
    return result


@SETTINGS
@given(data=st.data())
def test_sample_works_or_refuses_whatever_it_is_sent(tiny_models, unpaced, data):
    args = [data.draw(near(NAMES)), data.draw(near([1, 2, 16, 0, 17, 2.5], st.integers(-2, 20))),
            data.draw(near([1.0, 0.5, 0, -1, 11], st.floats(-1, 12))), data.draw(near(SEEDS, st.integers())),
            data.draw(near([0, 9, 10, -1])), data.draw(near([True, False]))]
    for grid, probs in outcome(lambda: list(studio.sample(*args))) or []:
        assert isinstance(grid.image(), Image.Image) and all(0 <= p <= 1 for p in next_pixel_shown(probs).values())


@SETTINGS
@given(data=st.data())
def test_complete_and_score_work_or_refuse_whatever_they_are_sent(tiny_models, unpaced, files, monkeypatch, data):
    folder, paths = files
    uploads = data.draw(st.sampled_from([folder, None]))
    name, source = data.draw(near(NAMES)), data.draw(near([studio.DRAW, studio.IMAGE]))
    drawing, image, klass = data.draw(pictures(paths)), data.draw(pictures(paths)), data.draw(near([0, 3, 10]))
    rows, keep = data.draw(near([0, 14, 28, -1, 29])), data.draw(near([studio.ROWS, studio.DRAWN, studio.MARKED]))
    marks = data.draw(pictures(paths))  # the marking canvas: its first layer is the paint
    temperature, seed = data.draw(near([1.0, 0])), data.draw(near(SEEDS))
    opened, real = [], studio.convert.open_file

    def watched(path, folders=None):
        file = real(path, folders)
        opened.append(os.path.realpath(path))
        return file

    monkeypatch.setattr(studio.convert, "open_file", watched)
    for grid in outcome(lambda: list(studio.complete(name, source, drawing, image, rows, keep, temperature, seed,
                                                     klass, marks, uploads=uploads))) or []:
        assert isinstance(grid.image(), Image.Image)
    heat, text = outcome(lambda: studio.score(name, source, drawing, image, klass, uploads=uploads)) or (None, "")
    assert heat is None or (isinstance(heat, Image.Image) and "bits/dim" in text)
    if uploads is not None:  # nothing opened but uploads and examples
        assert all(p.startswith(os.path.realpath(folder) + os.sep) or p == EXAMPLE for p in opened), opened


@SETTINGS
@given(data=st.data())
def test_what_the_model_sees_works_or_refuses_whatever_it_is_sent(tiny_models, data):
    name, i, j = data.draw(near(NAMES[:2])), data.draw(near([None, 0, 5, -3, 99])), data.draw(near([None, 4]))
    index = data.draw(near([[35, 72], [0, 0], [1e9, -1e9]]))
    for seen in (outcome(lambda: studio.see(name, i, j)), outcome(lambda: studio.see_at(name, index))):
        assert seen is None or (all(isinstance(pic, Image.Image) for pic in seen[:3]) and "Predicting" in seen[3])


@SETTINGS
@given(name=near(NAMES + [None]), index=near([0, 1, 2, 99, -1]))
def test_an_example_is_one_offered_or_a_refusal(name, index):
    path = outcome(lambda: studio.example(name, index))
    assert path is None or path in studio.controls(name).examples


@SETTINGS
@given(whole=st.integers(0, 2**64), as_text=st.booleans())
def test_a_whole_number_is_taken_exactly_however_large(whole, as_text):
    assert studio.whole_number(str(whole) if as_text else whole, 0, 2**64, "seed") == whole

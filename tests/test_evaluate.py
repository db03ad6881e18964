"""pixelcnn.evaluate's two-colour figures (issue #16): how many samples have exactly two colours,
as every real colour image has, and how many pixels are in a third."""
import json
import runpy

import numpy as np
import pytest
import torch

import pixelcnn
from helpers import REPO, make_tiny
from pixelcnn import datasets, evaluate, weights


def test_two_colours_counts_images_and_pixels_exactly():
    x = torch.zeros(3, 3, 4, 5, dtype=torch.long)  # three 4x5 colour images, all black
    x[0, 0, :2] = 3  # red top half: two colours
    x[1, 2, 0, :3] = 1  # a dark blue stroke of 3 pixels: two colours
    x[2, 1, :, :2] = 2  # green left columns (8 pixels), black right (12), and 2 pixels of a third colour
    x[2, :, 3, 3:] = 3
    two, third = evaluate.two_colours(x)
    assert two == pytest.approx(2 / 3) and third == pytest.approx(2 / 60)
    assert evaluate.two_colours(torch.zeros(2, 3, 4, 4, dtype=torch.long)) == (0.0, 0.0)  # one colour: not two


def test_real_colour_images_have_two_colours():
    for dataset in ("color_shapes",) + (("color_mnist",) if datasets.has_mnist() else ()):
        assert evaluate.two_colours(datasets.load(dataset, "test")[0][:200]) == (1.0, 0.0)


def test_evaluate_writes_the_samples_two_colour_figures_into_the_facts(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(evaluate, "RANGE_IMAGES", 16)
    net = make_tiny("pixelrcnn_ar", "color_shapes")
    weights.save(net, weights.weights_path("pixelrcnn_ar", "color_shapes", tmp_path))
    evaluate.main(["--model", "pixelrcnn_ar", "--dataset", "color_shapes", "--weights-dir", str(tmp_path),
                   "--samples", "8", "--update-facts"])
    facts = json.loads(weights.weights_path("pixelrcnn_ar", "color_shapes", tmp_path).with_suffix(".json").read_text())
    figures = facts["samples_two_colours"]
    loaded = pixelcnn.load("pixelrcnn_ar", "color_shapes", tmp_path)
    two, third = evaluate.two_colours(loaded.sample(8, seed=0))
    assert figures == {"samples": 8, "seed": 0, "images_with_two_colours": round(two, 4),
                       "pixels_in_a_third_colour": round(third, 5)}
    assert "8 samples:" in capsys.readouterr().out


def test_a_conditional_model_is_also_scored_told_another_class(tmp_path, capsys):
    labels = torch.arange(1000) % 10
    other = evaluate.other_labels(labels, 10)
    assert (other != labels).all() and torch.equal(other, evaluate.other_labels(labels, 10))
    assert set(((other - labels) % 10).tolist()) == set(range(1, 10))  # every other class, not one shift
    net = make_tiny("gated_cond", "shapes")
    weights.save(net, weights.weights_path("gated_cond", "shapes", tmp_path))
    own = evaluate.main(["--model", "gated_cond", "--dataset", "shapes", "--weights-dir", str(tmp_path)])
    test, labels = datasets.load("shapes", "test")
    wrong = evaluate.nll(pixelcnn.load("gated_cond", "shapes", tmp_path), test, evaluate.other_labels(labels, 5))
    assert wrong != own
    assert f"told another class at random (seed 0): {wrong * 400:.2f} nats/image" in capsys.readouterr().out


def test_third_colours_are_told_apart_by_where_they_are():
    """scripts/third_colours.py: a stroke that changes colour, strokes apart in different
    colours, and the channels an extra colour differs in (colour codes of 4 levels, 3 channels)."""
    kinds = runpy.run_path(str(REPO / "scripts" / "third_colours.py"), run_name="third")["kinds"]
    bg, fg, near, far = 0, 21, 22, 42  # 22 differs from 21 in blue only; 42 in all three channels
    two = np.full((6, 6), bg)
    two[1, 1:4] = fg
    changes, apart = two.copy(), two.copy()
    changes[2, 4] = near  # touches the stroke diagonally
    apart[4:6, 0] = far
    samples, pixels, rows = kinds(np.stack([two, changes, apart]), 4, 3)
    assert samples == {"two colours": 1, "a stroke changes colour": 1, "strokes apart differ": 1}
    assert pixels == {1: 1, 3: 2} and rows == {2: 1, 4: 1}

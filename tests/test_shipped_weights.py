"""The weights in weights/, as shipped: each loads, agrees with its facts file, and the
claims README makes of them hold on test images (MNIST from the shared copy). Every load
names weights/ itself: other tests point $PIXELCNN_WEIGHTS at tiny weights."""
import json

import pytest
import torch

import pixelcnn
from helpers import marking_mnist
from pixelcnn import datasets, weights
from pixelcnn.evaluate import nll

SHIPPED = sorted(p.stem for p in weights.WEIGHTS_DIR.glob("*.safetensors"))


def pair(stem):
    for d in sorted(datasets.NAMES, key=len, reverse=True):  # color_mnist before mnist
        if stem.endswith("_" + d):
            return stem[: -len(d) - 1], d
    raise AssertionError(stem)


@pytest.mark.parametrize("stem", SHIPPED)
def test_each_shipped_model_loads_agrees_with_its_facts_and_samples(stem):
    model, dataset = pair(stem)
    net = pixelcnn.load(model, dataset, weights.WEIGHTS_DIR)
    facts = json.loads((weights.WEIGHTS_DIR / f"{stem}.json").read_text())
    assert (facts["model"], facts["dataset"]) == (model, dataset)
    assert pixelcnn.from_config(facts["config"]).config == net.config
    assert (weights.WEIGHTS_DIR / f"{stem}_samples.png").exists()
    label = 0 if net.config.classes else None
    x = net.sample(1, seed=0, label=label)
    assert x.shape == (1, *net.image_shape)


def test_shipped_pairs_cover_the_reference_and_the_new_models():
    assert {"pixelcnn_shapes", "pixelcnn_mnist", "pixelrcnn_color_shapes", "pixelrcnn_color_mnist",
            "pixelrcnn_ar_color_shapes", "pixelrcnn_ar_color_mnist", "gated_color_shapes", "gated_mnist",
            "gated_cond_mnist"} <= set(SHIPPED)


@pytest.mark.slow
def test_gated_beats_autoregressive_pixelrcnn_on_colour_shapes():
    test, _ = datasets.load("color_shapes", "test")
    gated, ar = (nll(pixelcnn.load(m, "color_shapes", weights.WEIGHTS_DIR), test[:500])
                 for m in ("gated", "pixelrcnn_ar"))
    assert gated < ar


@pytest.mark.parametrize("dataset", marking_mnist(["color_shapes", "color_mnist"]))
@pytest.mark.slow
def test_autoregressive_colour_beats_independent_channels(dataset):
    test, _ = datasets.load(dataset, "test")
    ar, ref = (nll(pixelcnn.load(m, dataset, weights.WEIGHTS_DIR), test[:300]) for m in ("pixelrcnn_ar", "pixelrcnn"))
    assert ar < 0.6 * ref


@pytest.mark.slow
@pytest.mark.mnist
def test_the_conditional_model_given_the_right_digit_beats_the_unconditional_one_which_beats_pixelcnn():
    test, labels = datasets.load("mnist", "test")
    test, labels = test[:500], labels[:500]
    cond, gated, ref = (pixelcnn.load(m, "mnist", weights.WEIGHTS_DIR) for m in ("gated_cond", "gated", "pixelcnn"))
    right = nll(cond, test, labels)
    other = torch.randint(0, 9, labels.shape, generator=torch.Generator().manual_seed(0))
    wrong = nll(cond, test, (labels + 1 + other) % 10)  # any other digit
    assert right < nll(gated, test) < nll(ref, test) and right < wrong

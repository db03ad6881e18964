"""Class-conditional models: the label is an input, checked like the image."""
import pytest
import torch

import pixelcnn
from helpers import make_tiny, random_levels


@pytest.fixture(scope="module")
def cond():
    return make_tiny("gated_cond", "shapes").double()


def test_a_conditional_model_has_one_class_per_label_of_its_dataset():
    assert make_tiny("gated_cond", "shapes").config.classes == 5  # shape types
    assert pixelcnn.build("gated_cond", "mnist", filters=4, layers=1, kernel=3).config.classes == 10
    assert make_tiny("gated", "shapes").config.classes == 0


def test_only_gated_models_can_be_conditional():
    with pytest.raises(ValueError, match="use gated_cond"):
        pixelcnn.build("pixelcnn", "shapes", classes=3)


@pytest.mark.parametrize("label,message", [
    (None, "is class-conditional: give a label"),
    (5, r"lie in \[0, 5\)"),
    (-1, r"lie in \[0, 5\)"),
    (torch.tensor([0, 1, 2]), r"shape \(2,\)"),
    (torch.tensor([0.5, 1.0]), "integer tensor"),
    (1.0, "int or an integer tensor"),
    (True, "int or an integer tensor"),
    ("3", "int or an integer tensor"),
])
def test_bad_labels_are_rejected(cond, label, message):
    x = random_levels(cond, 2)
    with pytest.raises(ValueError, match=message):
        cond.log_prob(x, label)
    with pytest.raises(ValueError, match=message):
        cond.sample(2, seed=0, label=label)


def test_an_unconditional_model_refuses_a_label():
    net = make_tiny("gated", "shapes")
    with pytest.raises(ValueError, match="not class-conditional"):
        net.log_prob(random_levels(net, 1), 3)
    with pytest.raises(ValueError, match="not class-conditional"):
        net.sample(1, label=0)


def test_the_label_changes_the_distribution_and_an_int_is_every_image_s_label(cond):
    x = random_levels(cond, 3, seed=1)
    by_int = cond.log_prob(x, 2)
    assert torch.equal(by_int, cond.log_prob(x, torch.tensor([2, 2, 2])))
    assert torch.equal(by_int, cond.log_prob(x, torch.tensor(2)))
    other = cond.log_prob(x, torch.tensor([2, 0, 2]))
    assert torch.equal(other[[0, 2]], by_int[[0, 2]]) and not torch.equal(other[1], by_int[1])
    assert cond.sample(2, seed=3, label=1).equal(cond.sample(2, seed=3, label=torch.tensor([1, 1])))
    assert not cond.sample(2, seed=3, label=1).equal(cond.sample(2, seed=3, label=4))


def test_the_label_keeps_bf16_training_in_bf16():
    """The label's embedding is added in the activations' dtype: an fp32 embedding
    added to bf16 activations would turn every gate after it into fp32 (20% slower)."""
    net = make_tiny("gated_cond", "shapes")
    seen = []
    for layer in net.layers:
        layer.out.register_forward_hook(lambda m, inp, out: seen.append(inp[0].dtype))
    x = random_levels(net, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(x, torch.tensor([0, 3]))
    assert seen == [torch.bfloat16] * len(net.layers)

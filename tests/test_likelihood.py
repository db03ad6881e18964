"""log_prob: per-sub-pixel log-probabilities that form proper distributions."""
import math

import pytest
import torch
import torch.nn.functional as F

import pixelcnn
from helpers import labels_for, make_tiny, random_levels

CONFIGS = [(m, d) for m in pixelcnn.MODELS for d in ("shapes", "color_shapes")]


@pytest.mark.parametrize("model,dataset", CONFIGS)
def test_log_prob_is_float_nonpositive_and_image_shaped(model, dataset):
    net = make_tiny(model, dataset)
    x = random_levels(net, 3)
    logp = net.log_prob(x, labels_for(net, 3))
    assert logp.shape == x.shape == (3, *net.image_shape)
    assert logp.dtype == torch.float32
    assert torch.isfinite(logp).all()
    assert (logp <= 0).all()


@pytest.mark.parametrize("model,dataset", CONFIGS)
def test_each_subpixel_distribution_sums_to_one(model, dataset):
    """Fix everything but one sub-pixel, run it through its K levels: the K
    probabilities log_prob gives it sum to 1 (binary K=2, colour K=4)."""
    net = make_tiny(model, dataset)
    C, H, W = net.image_shape
    K = net.levels
    assert K == (2 if dataset == "shapes" else 4)
    x = random_levels(net, 1, seed=5)[0]
    label = labels_for(net, 1)
    for i, j in [(0, 0), (H // 2, W // 3), (H - 1, W - 1), (3, 0)]:
        for c in range(C):
            batch = x.repeat(K, 1, 1, 1)
            batch[:, c, i, j] = torch.arange(K)
            with torch.no_grad():
                p = net.log_prob(batch, label)[:, c, i, j].double().exp()
            assert p.sum().item() == pytest.approx(1.0, abs=1e-5), f"sub-pixel {(c, i, j)}"
            assert (p > 0).all()


def test_an_image_log_prob_is_the_sum_of_its_subpixels_and_matches_the_training_loss():
    """The nats of an image are -sum(log_prob); over a batch they equal the summed
    cross-entropy that train.py minimises and evaluates."""
    net = make_tiny("pixelrcnn", "color_shapes")
    x = random_levels(net, 4, seed=6)
    logp = net.log_prob(x)
    with torch.no_grad():
        ce = F.cross_entropy(net(x).float(), x, reduction="none")  # (B, C, H, W)
    torch.testing.assert_close(-logp, ce, rtol=1e-5, atol=1e-5)
    per_image = logp.sum(dim=(1, 2, 3))
    assert per_image.shape == (4,)
    torch.testing.assert_close(-per_image, ce.sum(dim=(1, 2, 3)), rtol=1e-5, atol=1e-3)


def test_an_untrained_model_is_near_uniform_but_not_exactly(tiny_shapes):
    """Sanity on scale: ~log 2 nats per binary sub-pixel for a fresh model."""
    x = random_levels(tiny_shapes, 2)
    nats = -tiny_shapes.log_prob(x).mean().item()
    assert 0.3 < nats < 3 * math.log(2)


def test_log_prob_accepts_bool_and_small_integer_dtypes(tiny_shapes):
    x = random_levels(tiny_shapes, 2)
    ref = tiny_shapes.log_prob(x)
    for dtype in (torch.uint8, torch.int32, torch.bool):
        torch.testing.assert_close(tiny_shapes.log_prob(x.to(dtype)), ref, rtol=0, atol=0)


def test_log_prob_does_not_track_batch_statistics_in_eval_mode(tiny_shapes):
    """Eval mode: one image's log_prob does not depend on the rest of the batch."""
    x = random_levels(tiny_shapes, 4, seed=8)
    alone = tiny_shapes.log_prob(x[:1])
    together = tiny_shapes.log_prob(x)[:1]
    torch.testing.assert_close(alone, together, rtol=1e-5, atol=1e-6)

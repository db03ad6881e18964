"""Causality: the distribution of a sub-pixel depends only on the pixels strictly
before it in raster order. The channels of one pixel are independent given that
past, so they do not see each other either.

Models are in eval mode: BatchNorm in training mode would mix the batch."""
import pytest
import torch

import pixelcnn
from conftest import make_tiny, random_levels

DATASETS = ("shapes", "color_shapes")  # binary (1 channel, K=2) and colour (3 channels, K=4)
CONFIGS = [(m, d) for m in pixelcnn.MODELS for d in DATASETS]


def positions(h, w):
    """Corners, the middle, and the starts/ends of rows next to a corner."""
    return sorted({(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, w // 2),
                   (1, 0), (0, 1), (h // 2, w - 1)})


def raster_le(h, w, i, j):
    """(H, W) bool: pixels at or before (i, j) in raster order."""
    idx = torch.arange(h * w).view(h, w)
    return idx <= i * w + j


@pytest.mark.parametrize("split", [True, False], ids=["split", "plain"])
@pytest.mark.parametrize("model,dataset", CONFIGS)
def test_changing_a_subpixel_changes_nothing_at_or_before_its_pixel(model, dataset, split):
    net = make_tiny(model, dataset, split=split).double()
    C, H, W = net.image_shape
    K = net.levels
    x = random_levels(net, 1, seed=1)[0]
    edits = [(c, i, j) for (i, j) in positions(H, W) for c in range(C)]
    batch = x.repeat(len(edits) + 1, 1, 1, 1)
    for n, (c, i, j) in enumerate(edits, start=1):
        batch[n, c, i, j] = (batch[n, c, i, j] + 1 + n % (K - 1)) % K  # any other level
    with torch.no_grad():
        logp_all = torch.log_softmax(net(batch), dim=1)  # (B, K, C, H, W)
        logp = net.log_prob(batch)  # (B, C, H, W)
    base_all, base = logp_all[0], logp[0]
    for n, (c, i, j) in enumerate(edits, start=1):
        past = raster_le(H, W, i, j)
        # Every channel's whole distribution at this pixel and every pixel before it.
        torch.testing.assert_close(logp_all[n][..., past], base_all[..., past], rtol=0, atol=1e-12,
                                   msg=f"editing channel {c} at {(i, j)} changed the past")
        # Hence the log_prob of every sub-pixel before it, and of the other channels here.
        same = past.clone()
        same[i, j] = False
        torch.testing.assert_close(logp[n][:, same], base[:, same], rtol=0, atol=1e-12)
        others = [d for d in range(C) if d != c]
        torch.testing.assert_close(logp[n][others, i, j], base[others, i, j], rtol=0, atol=1e-12)
        # The edited sub-pixel's own log_prob is read at another level, so it changes.
        assert logp[n][c, i, j] != base[c, i, j]
        # Sanity: the test can fail: the future does react to the edit.
        if (i, j) != (H - 1, W - 1):
            assert (logp_all[n][..., ~past] - base_all[..., ~past]).abs().max() > 1e-6, \
                f"editing {(c, i, j)} changed no later pixel: the test would be vacuous"


@pytest.mark.parametrize("split", [True, False], ids=["split", "plain"])
@pytest.mark.parametrize("model,dataset", CONFIGS)
def test_gradient_of_each_pixel_vanishes_on_it_and_after_it(model, dataset, split):
    """For every pixel p at once (one batch element per pixel): the gradient of p's
    logits with respect to a real-valued input is exactly zero at p and after p."""
    net = make_tiny(model, dataset, split=split).double()
    C, H, W = net.image_shape
    n = H * W
    x = net.inputs(random_levels(net, 1, seed=2)).repeat(n, 1, 1, 1).requires_grad_(True)
    out = net.net(x)  # (n, K*C, H, W) logits on the network's input scale
    weights = torch.randn(out.shape[1], dtype=out.dtype, generator=torch.Generator().manual_seed(0))
    rows, cols = torch.arange(n) // W, torch.arange(n) % W
    picked = out[torch.arange(n), :, rows, cols]  # element k: the logits at pixel k
    (picked * weights).sum().backward()
    grad = x.grad.abs().sum(dim=1).view(n, H * W)  # per element, per input pixel
    future = torch.arange(H * W)[None, :] >= torch.arange(n)[:, None]
    assert grad[future].max() == 0, "some pixel's logits depend on itself or a later pixel"
    # Sanity: gradients do flow from the past (the test could fail).
    seen_past = (grad * ~future).sum(dim=1) > 0
    assert not seen_past[0]  # the first pixel has no past
    assert seen_past[1:].float().mean() > 0.9


@pytest.mark.parametrize("model,dataset", CONFIGS)
def test_first_pixel_distribution_is_the_same_for_every_image(model, dataset):
    net = make_tiny(model, dataset)
    with torch.no_grad():
        first = net(random_levels(net, 6, seed=3))[:, :, :, 0, 0]
    assert torch.allclose(first, first[:1].expand_as(first), rtol=0, atol=1e-5)

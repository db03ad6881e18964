"""Causality: the distribution of a sub-pixel depends only on the sub-pixels before it:
the pixels before it in raster order and, for models with autoregressive colour
(model.ar), the channels before it in the same pixel (R, then G, then B). Without it,
the channels of one pixel do not see each other.

Models are in eval mode: BatchNorm in training mode would mix the batch."""
import pytest
import torch

import pixelcnn
from helpers import labels_for, make_tiny, random_levels

DATASETS = ("shapes", "color_shapes")  # binary (1 channel, K=2) and colour (3 channels, K=4)
CONFIGS = [(m, d) for m in pixelcnn.MODELS for d in DATASETS]
# and with the input that says which levels equal the first pixel's (same_as_first), one-hot and scaled;
# 16 filters, as 8 (a few per colour) leave some pixels' later colours dead by chance
FIRST = [(m, d, dict(same_as_first=True, filters=16))
         for m, d in [("gated", "color_shapes"), ("pixelrcnn_ar", "color_shapes"), ("pixelcnn", "shapes")]]
# and with a running max over the rows above in every gated layer (GatedLayer's summary)
SUMMARY = [(m, d, dict(summary=True, filters=16)) for m, d in [("gated", "color_shapes"), ("gated_cond", "shapes")]]
WITH_FIRST = [(m, d, {}) for m, d in CONFIGS] + FIRST + SUMMARY


def positions(h, w):
    """Corners, the middle, and the starts/ends of rows next to a corner."""
    return sorted({(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, w // 2),
                   (1, 0), (0, 1), (h // 2, w - 1)})


def sees(net, c, i, j):
    """(C, H, W) bool: the sub-pixels whose distribution may depend on sub-pixel (c, i, j):
    those after it in (raster, channel) order, or (independent channels) in later pixels."""
    C, H, W = net.image_shape
    idx = torch.arange(H * W).view(1, H, W).expand(C, H, W)
    later = idx > i * W + j
    if net.ar:
        later = later | (idx == i * W + j) & (torch.arange(C).view(C, 1, 1) > c)
    return later


def test_the_colour_models_with_ar_channels_are_the_ar_ones():
    assert [m for m in pixelcnn.MODELS if make_tiny(m, "color_shapes").ar] == ["pixelrcnn_ar", "gated", "gated_cond"]
    assert not any(make_tiny(m, "shapes").ar for m in pixelcnn.MODELS)


@pytest.mark.parametrize("split", [True, False], ids=["split", "plain"])
@pytest.mark.parametrize("model,dataset,options", WITH_FIRST)
def test_changing_a_subpixel_changes_only_what_may_see_it(model, dataset, options, split):
    net = make_tiny(model, dataset, split=split, **options).double()
    C, H, W = net.image_shape
    K = net.levels
    x = random_levels(net, 1, seed=1)[0]
    edits = [(c, i, j) for (i, j) in positions(H, W) for c in range(C)]
    batch = x.repeat(len(edits) + 1, 1, 1, 1)
    for n, (c, i, j) in enumerate(edits, start=1):
        batch[n, c, i, j] = (batch[n, c, i, j] + 1 + n % (K - 1)) % K  # any other level
    label = labels_for(net, 1).expand(len(batch)) if net.config.classes else None
    with torch.no_grad():
        logp_all = torch.log_softmax(net(batch, label), dim=1)  # (B, K, C, H, W)
        logp = net.log_prob(batch, label)  # (B, C, H, W)
    base_all, base = logp_all[0], logp[0]
    for n, (c, i, j) in enumerate(edits, start=1):
        later = sees(net, c, i, j)
        # Every sub-pixel's whole distribution that may not see the edit is unchanged.
        torch.testing.assert_close(logp_all[n][:, ~later], base_all[:, ~later], rtol=0, atol=1e-12,
                                   msg=f"editing channel {c} at {(i, j)} changed the past")
        # Hence the log_prob of every sub-pixel before it.
        keep = ~later
        keep[c, i, j] = False
        torch.testing.assert_close(logp[n][keep], base[keep], rtol=0, atol=1e-12)
        # The edited sub-pixel's own log_prob is read at another level, so it changes.
        assert logp[n][c, i, j] != base[c, i, j]
        # Sanity: the test can fail: what follows does react to the edit.
        if later.any():
            assert (logp_all[n][:, later] - base_all[:, later]).abs().max() > 1e-6, \
                f"editing {(c, i, j)} changed nothing later: the test would be vacuous"


@pytest.mark.parametrize("split", [True, False], ids=["split", "plain"])
@pytest.mark.parametrize("model,dataset,options", WITH_FIRST)
def test_gradient_of_each_subpixel_vanishes_on_what_it_may_not_see(model, dataset, options, split):
    """For every pixel p at once (one batch element per pixel) and each channel c: the
    gradient of (c, p)'s logits with respect to a real-valued input is exactly zero at
    every later pixel, at p itself (independent channels), or at p's channels >= c (ar)."""
    net = make_tiny(model, dataset, split=split, **{"filters": 16, **options}).double()
    C, H, W = net.image_shape
    n = H * W
    x = net.inputs(random_levels(net, 1, seed=2)).repeat(n, 1, 1, 1).requires_grad_(True)
    colour = torch.arange(x.shape[1]) * C // x.shape[1]  # of each input channel (one-hot: c * K + k)
    out = net.net_forward(x, labels_for(net, 1).expand(n) if net.config.classes else None)
    out = out.view(n, net.levels, C, H, W)
    rows, cols = torch.arange(n) // W, torch.arange(n) % W
    w = torch.randn(net.levels, dtype=out.dtype, generator=torch.Generator().manual_seed(0))
    seen_past = torch.zeros(n, dtype=torch.bool)
    for c in range(C):
        x.grad = None
        (out[torch.arange(n), :, c, rows, cols] * w).sum().backward(retain_graph=True)
        grad = x.grad.abs().view(n, -1, H * W)  # per element: (input channel, input pixel)
        future = torch.arange(H * W)[None, :] > torch.arange(n)[:, None]
        assert grad.permute(0, 2, 1)[future].max() == 0, "some pixel's logits depend on a later pixel"
        here = grad[torch.arange(n), :, torch.arange(n)]  # (n, input channels) at the pixel itself
        allowed = colour < c if net.ar else torch.zeros_like(colour, dtype=torch.bool)
        assert here[:, ~allowed].max() == 0, f"channel {c} sees itself or a later channel"
        if allowed.any():  # sanity: it does see the earlier channels
            assert here[:, allowed].sum() > 0
        past = torch.arange(H * W)[None, :] < torch.arange(n)[:, None]
        seen_past |= (grad.sum(dim=1) * past).sum(dim=1) > 0
    # Sanity: gradients do flow from the past (the test could fail).
    assert not seen_past[0]  # the first pixel has no past
    assert seen_past[1:].float().mean() > 0.9


@pytest.mark.parametrize("model,dataset,options", WITH_FIRST)
def test_first_pixel_distribution_is_the_same_for_every_image(model, dataset, options):
    net = make_tiny(model, dataset, **options)
    label = torch.zeros(6, dtype=torch.long) if net.config.classes else None
    with torch.no_grad():
        first = net(random_levels(net, 6, seed=3), label)[:, :, :, 0, 0]
    if net.ar:  # only the first channel is the same; the others see it
        first = first[:, :, :1]
    assert torch.allclose(first, first[:1].expand_as(first), rtol=0, atol=1e-5)


def influence(net, i, j):
    """(H, W) bool: the pixels that the logits at (i, j) depend on, from gradients."""
    from pixelcnn.analysis import influence
    return influence(net, random_levels(net, 1, seed=4), i, j, labels_for(net, 1)) > 0


@pytest.mark.parametrize("layers,kernel", [(2, 5), (3, 3)])
def test_gated_pixelcnn_sees_its_whole_receptive_field_and_pixelcnn_has_a_blind_spot(layers, kernel):
    """Both reach R = (layers + 1) * p up, left and right (k = 2p + 1): the reference
    PixelCNN with its type-A stem and `layers` hidden layers, Gated PixelCNN with
    layers + 1 layers. Gated PixelCNN at (i, j) sees exactly the rows i - R .. i - 1
    between columns j - R and j + R, and row i from j - R to j - 1: no blind spot.
    PixelCNN sees part of that only: it misses pixels above and to the right."""
    ref = make_tiny("pixelcnn", "mnist", layers=layers, kernel=kernel, filters=16).double()
    gated = make_tiny("gated", "mnist", layers=layers + 1, kernel=kernel, filters=16).double()
    H, W = 28, 28
    i, j = 20, 14
    reach = (layers + 1) * (kernel // 2)
    rows, cols = torch.arange(H)[:, None], torch.arange(W)[None, :]
    expected = ((rows >= i - reach) & (rows < i) & ((cols - j).abs() <= reach)
                | (rows == i) & (cols >= j - reach) & (cols < j))
    assert torch.equal(influence(gated, i, j), expected)
    seen = influence(ref, i, j)
    assert not (seen & ~expected).any()
    blind = expected & ~seen
    assert blind.sum() >= kernel // 2 * (kernel // 2 + 1)  # a triangle at least
    assert not (blind & ((cols <= j) | (rows >= i))).any(), "the blind spot is above and to the right"


@pytest.mark.parametrize("summary", [False, True])
def test_a_summary_reaches_every_row_below(summary):
    """With a running max over the rows above (GatedLayer's summary), a pixel in the first row
    changes the last row's distributions, far beyond the vertical stack's reach (2 layers of
    kernel 5: 4 rows); without one, it does not."""
    net = make_tiny("gated", "color_shapes", summary=summary, filters=16).double()
    H = net.image_shape[1]
    x = torch.zeros((2, *net.image_shape), dtype=torch.long)  # a blank image: a max the edit can move
    x[1, :, 0, 3] = 1
    with torch.no_grad():
        last = net(x)[:, :, :, H - 1]
    assert (last[0] - last[1]).abs().max() > 1e-6 if summary else torch.equal(last[0], last[1])

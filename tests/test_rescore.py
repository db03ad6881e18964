"""Re-scoring after pixels change gives model.log_prob of the changed images, for every model."""
import pytest
import torch

from helpers import labels_for, make_tiny
from pixelcnn.rescore import Rescorer

CASES = [("pixelcnn", "shapes"), ("pixelrcnn", "color_shapes"), ("pixelrcnn_ar", "color_shapes"),
         ("gated", "color_shapes"), ("gated_cond", "shapes"), ("gated", "color_shapes", "same_as_first"),
         ("pixelcnn", "shapes", "same_as_first"), ("gated", "color_shapes", "summary")]


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_rescoring_after_pixel_changes_equals_log_prob(case):
    model, dataset, *switches = case
    net = make_tiny(model, dataset, **dict.fromkeys(switches, True)).double()
    C, H, W = net.image_shape
    label = labels_for(net, 2)
    x = net.sample(2, seed=0, label=label)
    r = Rescorer(net, x, label)
    torch.testing.assert_close(r.log_prob(), net.log_prob(x, label), rtol=0, atol=1e-6)  # log_prob is float32
    g = torch.Generator().manual_seed(1)
    for i, j in [(0, 0), (H // 2, W - 1), (H - 1, 3), (5, 5), (H - 1, W - 1)]:
        levels = torch.randint(0, net.levels, (2, C), generator=g)
        x[:, :, i, j] = levels
        r.set(i, j, levels)
        torch.testing.assert_close(r.log_prob(), net.log_prob(x, label), rtol=0, atol=1e-6)  # log_prob is float32
    assert not torch.equal(net.log_prob(x, label), Rescorer(net, net.sample(2, seed=3, label=label), label).log_prob())

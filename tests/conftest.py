"""Shared test set-up: the MNIST data root, few threads, and tiny models.

The suite must stay small and fast: every model here is a few hundred parameters.
(The app tests' fixtures live in app_fixtures.py.)
"""
import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).absolute().parents[1]
sys.path.insert(0, str(REPO))  # `import pixelcnn, train, app` under a bare `pytest` too
# The shared MNIST IDX files live in shared/data/mnist next to the repository
# (../shared/data from the repo root), in a dev checkout and in CI alike.
DATA_ROOT = REPO.parent / "shared" / "data"
os.environ["PIXELCNN_DATA"] = str(DATA_ROOT)
# Never read or fetch weights through an inherited environment (weights dir, Hub repo).
for var in ("PIXELCNN_WEIGHTS", "PIXELCNN_HUB_REPO"):
    os.environ.pop(var, None)

torch.set_num_threads(1)

import pixelcnn  # noqa: E402  (after the environment is set)

TINY = dict(filters=8, layers=2, kernel=5)


def make_tiny(model, dataset, seed=0, warm=True, **overrides):
    """A tiny untrained model in eval mode, deterministic from `seed`.

    warm: first run one training-mode forward pass on random levels, so the
    BatchNorm running statistics are not the trivial (0, 1) of a fresh model."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = pixelcnn.build(model, dataset, **{**TINY, **overrides})
        if warm:
            c, h, w = net.image_shape
            net.train()
            label = torch.randint(0, net.config.classes, (8,)) if net.config.classes else None
            with torch.no_grad():
                net(torch.randint(0, net.levels, (8, c, h, w)), label)
    return net.eval()


@pytest.fixture
def tiny():
    """Factory: tiny(model, dataset, **overrides) -> tiny eval-mode model."""
    return make_tiny


@pytest.fixture
def tiny_shapes():
    return make_tiny("pixelcnn", "shapes")


def labels_for(net, n, seed=0):
    """n random labels for a class-conditional net, else None."""
    if not net.config.classes:
        return None
    return torch.randint(0, net.config.classes, (n,), generator=torch.Generator().manual_seed(seed))


def random_levels(net, n, seed=0):
    """n random images (n, C, H, W) of levels for `net`."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, net.levels, (n, *net.image_shape), generator=g)

"""Shared test set-up: the MNIST data root, no inherited weights or Hub repo, one thread,
the `mnist` marker's skip, and the fixtures. Helpers that tests import live in helpers.py;
the app tests' fixtures in app_fixtures.py, registered here as a plugin."""
import os

import pytest
import torch

from helpers import REPO, make_tiny
from pixelcnn import datasets

# The shared MNIST IDX files live in shared/data/mnist next to the repository, in a dev
# checkout and in CI alike; a $PIXELCNN_DATA set by whoever runs the tests wins.
os.environ.setdefault("PIXELCNN_DATA", str(REPO.parent / "shared" / "data"))
# Never read or fetch weights through an inherited environment (weights dir, Hub repo).
for var in ("PIXELCNN_WEIGHTS", "PIXELCNN_HUB_REPO"):
    os.environ.pop(var, None)

torch.set_num_threads(1)

pytest_plugins = ["app_fixtures"]


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked `mnist`, saying why, where the MNIST files are not found."""
    needs = [item for item in items if item.get_closest_marker("mnist")]
    if needs and not datasets.has_mnist():
        skip = pytest.mark.skip(reason=f"MNIST files not found in {os.environ['PIXELCNN_DATA']}/mnist")
        for item in needs:
            item.add_marker(skip)


@pytest.fixture
def tiny_shapes():
    """A tiny eval-mode PixelCNN for shapes (helpers.make_tiny)."""
    return make_tiny("pixelcnn", "shapes")

"""Helpers shared by the test modules: tiny models, random inputs for them, and where things are.

The suite must stay small and fast: every model here is a few hundred parameters.
"""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import pixelcnn

REPO = Path(__file__).absolute().parents[1]
TINY = dict(filters=8, layers=2, kernel=5)


def make_tiny(model, dataset, seed=0, warm=True, **overrides):
    """A tiny untrained model in eval mode, deterministic from `seed`.

    warm: first run one training-mode forward pass on random levels, so the
    BatchNorm running statistics are not the trivial (0, 1) of a fresh model."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = pixelcnn.build(model, dataset, **{**TINY, **overrides})
        for m in net.modules():  # a summary's output conv starts at zero (GatedLayer): made live, as training makes it
            if getattr(m, "summary_out", None) is not None:
                torch.nn.init.normal_(m.summary_out.weight, std=0.3)
                torch.nn.init.normal_(m.summary_out.bias, std=0.1)
        if warm:
            c, h, w = net.image_shape
            net.train()
            label = torch.randint(0, net.config.classes, (8,)) if net.config.classes else None
            with torch.no_grad():
                net(torch.randint(0, net.levels, (8, c, h, w)), label)
    return net.eval()


def labels_for(net, n, seed=0):
    """n random labels for a class-conditional net, else None."""
    if not net.config.classes:
        return None
    return torch.randint(0, net.config.classes, (n,), generator=torch.Generator().manual_seed(seed))


def random_levels(net, n, seed=0):
    """n random images (n, C, H, W) of levels for `net`."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, net.levels, (n, *net.image_shape), generator=g)


def marking_mnist(names):
    """Dataset names as parameters, those read from the MNIST files marked `mnist`."""
    return [pytest.param(n, marks=pytest.mark.mnist) if "mnist" in n else n for n in names]


def canvas(strokes, size=280, width=22, background=(0, 0, 0, 0), colour=(0, 0, 0)):
    """An RGBA drawing like the sketchpad's: black (or `colour`) strokes on a transparent (or white) canvas."""
    img = Image.new("RGBA", (size, size), background)
    draw = ImageDraw.Draw(img)
    for points in strokes:
        draw.line(points, fill=(*colour, 255), width=width, joint="curve")
    return np.asarray(img)


SEVEN = [[(60, 50), (220, 50), (130, 250)]]  # strokes on the 280x280 canvas
ONE = [[(140, 60), (150, 230)]]


def next_pixel_shown(html):
    """{(channel, level): probability} of studio.next_pixel's HTML ({} for none)."""
    found = re.findall(r'data-channel="(\d+)" data-level="([^"]+)" data-p="([0-9.]+)"', html or "")
    return {(int(c), level): float(p) for c, level, p in found}

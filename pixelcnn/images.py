"""Levels to pictures: RGB arrays and crisp (nearest-neighbour) sample grids."""
import math

import numpy as np
import torch
from PIL import Image

TINT = (60, 120, 255)


def to_rgb(x, levels):
    """Levels (N, C, H, W) -> uint8 RGB (N, H, W, 3). Binary images: ink (1) is black."""
    x = torch.as_tensor(x).long().cpu()
    if x.shape[1] == 1:
        return (255 * (1 - x[:, 0].clamp(0, 1))).to(torch.uint8)[..., None].expand(-1, -1, -1, 3).numpy()
    v = (x.float() * 255 / (levels - 1)).round().to(torch.uint8)
    return v.permute(0, 2, 3, 1).numpy()


def grid(x, levels, nrow=None, scale=4, pad=1, mark=None, known=None):
    """A PIL image of the images side by side, each pixel a scale x scale block.
    mark=(row, col) outlines that pixel in every image (the one being drawn).
    known, a boolean (H, W) or (N, H, W), tints those pixels blue (the given part of a completion)."""
    rgb = to_rgb(x, levels)
    if known is not None:
        k = np.broadcast_to(np.asarray(known, bool), rgb.shape[:3])
        rgb = rgb.copy()
        rgb[k] = (0.6 * rgb[k] + 0.4 * np.array(TINT)).astype(np.uint8)
    n, h, w, _ = rgb.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    out = np.full((ncol * (h + pad) + pad, nrow * (w + pad) + pad, 3), 128, np.uint8)
    for k in range(n):
        r, c = divmod(k, nrow)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = rgb[k]
    out = out.repeat(scale, 0).repeat(scale, 1)
    if mark is not None and scale >= 3:
        i, j = mark
        for k in range(n):
            r, c = divmod(k, nrow)
            y0, x0 = (pad + r * (h + pad) + i) * scale, (pad + c * (w + pad) + j) * scale
            box = out[y0: y0 + scale, x0: x0 + scale]
            box[[0, -1], :] = (255, 0, 0)
            box[:, [0, -1]] = (255, 0, 0)
    return Image.fromarray(out)

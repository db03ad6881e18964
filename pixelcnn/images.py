"""Levels to pictures: RGB arrays and crisp (nearest-neighbour) sample grids."""
import math

import numpy as np
import torch
from PIL import Image

TINT = (60, 120, 255)
YLORRD = np.array([(255, 237, 160), (253, 141, 60), (189, 0, 38)], float)  # heat: low .. high


def to_rgb(x, levels):
    """Levels (N, C, H, W) -> uint8 RGB (N, H, W, 3). Binary images: ink (1) is black."""
    x = torch.as_tensor(x).long().cpu()
    if x.shape[1] == 1:
        return (255 * (1 - x[:, 0].clamp(0, 1))).to(torch.uint8)[..., None].expand(-1, -1, -1, 3).numpy()
    v = (x.float() * 255 / (levels - 1)).round().to(torch.uint8)
    return v.permute(0, 2, 3, 1).numpy()


def grid(x, levels, nrow=None, scale=4, pad=1, mark=None, known=None, mark_colour=(255, 0, 0), blank=None):
    """A PIL image of the images side by side, each pixel a scale x scale block.
    mark=(row, col) outlines that pixel in every image (the one being drawn).
    known, a boolean (H, W) or (N, H, W), tints those pixels blue (the given part of a completion).
    blank, likewise, shows those pixels as a light checkerboard, as a picture editor shows
    transparency: not drawn yet (in black, a colour image would look finished and dark)."""
    rgb = to_rgb(x, levels).copy()
    if known is not None:
        k = np.broadcast_to(np.asarray(known, bool), rgb.shape[:3])
        rgb[k] = (0.6 * rgb[k] + 0.4 * np.array(TINT)).astype(np.uint8)
    if blank is not None:
        h, w = rgb.shape[1:3]
        checker = np.where((np.arange(h)[:, None] + np.arange(w)) % 2, 212, 238).astype(np.uint8)
        b = np.broadcast_to(np.asarray(blank, bool), rgb.shape[:3])
        rgb[b] = np.broadcast_to(checker, rgb.shape[:3])[b][:, None]
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
            outline(out, pad + r * (h + pad) + i, pad + c * (w + pad) + j, scale, mark_colour)
    return Image.fromarray(out)


def beside(*pictures, gap=8):
    """PIL pictures side by side on white, `gap` pixels apart, aligned at the top."""
    out = Image.new("RGB", (sum(p.width for p in pictures) + gap * (len(pictures) - 1),
                            max(p.height for p in pictures)), (255, 255, 255))
    x = 0
    for p in pictures:
        out.paste(p, (x, 0))
        x += p.width + gap
    return out


def stacked(*pictures):
    """PIL pictures one above the other on white, aligned at the left."""
    out = Image.new("RGB", (max(p.width for p in pictures), sum(p.height for p in pictures)), (255, 255, 255))
    y = 0
    for p in pictures:
        out.paste(p, (0, y))
        y += p.height
    return out


def outline(out, i, j, scale, colour):
    """Outline pixel (i, j) of a picture `out` drawn at `scale`, in place."""
    box = out[i * scale: (i + 1) * scale, j * scale: (j + 1) * scale]
    box[[0, -1], :] = colour
    box[:, [0, -1]] = colour


def heatmap(values, scale=8, base=None, vmax=None, mark=None, from_white=False, flag=None):
    """A picture of non-negative values (H, W): zero shows `base` (RGB (H, W, 3), faded)
    or white; above zero runs from yellow (or white) through orange to red at vmax
    (default: the largest value). mark=(i, j) outlines that pixel in blue; flag, a
    boolean (H, W), paints those pixels light blue."""
    stops = np.vstack([(255, 255, 255), YLORRD]) if from_white else YLORRD
    v = np.asarray(values, float)
    vmax = vmax or v.max() or 1.0
    t = np.clip(v / vmax, 0, 1) * (len(stops) - 1)
    lo = np.minimum(t.astype(int), len(stops) - 2)
    f = (t - lo)[..., None]
    heat = stops[lo] * (1 - f) + stops[lo + 1] * f
    bg = np.full((*v.shape, 3), 255.0) if base is None else 255 - 0.3 * (255 - np.asarray(base, float))
    out = np.where((v > 0)[..., None], heat, bg)
    if flag is not None:
        out[np.asarray(flag, bool)] = (150, 200, 255)
    out = out.round().astype(np.uint8).repeat(scale, 0).repeat(scale, 1)
    if mark is not None:
        outline(out, *mark, scale, (0, 90, 255))
    return Image.fromarray(out)


def log_heatmap(values, decades=4, **options):
    """heatmap() of non-negative values (H, W) on a log scale: the largest value dark red,
    `decades` orders of magnitude below it faintly warm (never white), zero not coloured."""
    v = np.asarray(values, float)
    with np.errstate(divide="ignore", invalid="ignore"):  # all zero: nothing is coloured
        t = np.where(v > 0, np.maximum(np.log10(np.maximum(v, 1e-30) / v.max()) + decades, 0.05), 0)
    return heatmap(t, vmax=decades, **options)


def plot_curve(history, steps, path, title):
    """The training loss (smoothed) and the test NLL against the step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if steps:
        s, loss = zip(*steps)
        k = max(1, len(loss) // 100)  # smooth the per-step loss into ~100 points
        ax.plot([s[i] for i in range(k - 1, len(s), k)],
                [sum(loss[i - k + 1:i + 1]) / k for i in range(k - 1, len(loss), k)], label="train")
    if history:  # the first steps' loss dwarfs the rest: zoom in on the test curve
        test = [h["test_nats_per_dim"] for h in history]
        ax.plot([h["step"] for h in history], test, "o-", label="test")
        ax.set_ylim(min(test) * 0.95, max(test) * 1.3)
    ax.set(xlabel="step", ylabel="NLL (nats/dim)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

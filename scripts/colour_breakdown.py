"""Where a colour model's extra nats go, against the binary model on the same images.

    python scripts/colour_breakdown.py [--images 300] [--data-dir ../shared/data]

color_shapes and color_mnist are shapes and mnist with a background and a foreground
colour per image, so the colour model could in principle pay the binary model's NLL plus
log 64 for the first pixel's colour and log 63 for the first foreground pixel's. This
prints, per pair, the mean nats per image each model pays at the first pixel, at the first
foreground pixel, and at the other foreground and background pixels (binary masks from the
binary images; `pixelrcnn_ar` and, where shipped, `gated` for colour, `pixelcnn` for binary;
the shipped weights).
"""
import argparse
import math

import torch

import pixelcnn
from pixelcnn import datasets, weights


def parts(net, x, ink):
    """Mean nats per image at: the first pixel, the first ink pixel, other ink, other paper."""
    with torch.no_grad():
        cost = -net.log_prob(x).sum(dim=1).flatten(1)  # (B, H*W): nats per pixel, all channels
    ink = ink.flatten(1)
    rows = torch.arange(len(x))
    first = ink.float().argmax(dim=1)  # the first ink pixel in raster order
    rest = torch.ones_like(ink)
    rest[rows, first] = False
    rest[:, 0] = False
    return [cost[:, 0].mean(), cost[rows, first].mean(),
            (cost * (ink & rest)).sum(1).mean(), (cost * (~ink & rest)).sum(1).mean()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=300, help="the first N test images")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    names = ("first pixel", "first foreground pixel", "other foreground", "other background", "total")
    widths = [len(n) + 2 for n in names]
    row = lambda label, cells: print(f"{label:<32}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths)))  # noqa: E731
    row("", names)
    for binary in ("shapes", "mnist"):
        colour = "color_" + binary
        xb, _ = datasets.load(binary, "test", args.data_dir)
        xc, _ = datasets.load(colour, "test", args.data_dir)
        xb, xc = xb[:args.images], xc[:args.images]
        ink = xb[:, 0].bool()
        b = parts(pixelcnn.load("pixelcnn", binary), xb, ink)
        row(f"pixelcnn on {binary}", [f"{float(t):.2f}" for t in [*b, sum(b)]])
        for model in ("pixelrcnn_ar", "gated"):
            if not weights.weights_path(model, colour).exists():
                continue
            c = parts(pixelcnn.load(model, colour), xc, ink)
            row(f"{model} on {colour}", [f"{float(t):.2f}" for t in [*c, sum(c)]])
            row("  extra in colour", [f"{float(y - x):+.2f}" for x, y in zip([*b, sum(b)], [*c, sum(c)])])
    print(f"for comparison: log 64 = {math.log(64):.2f}, log 63 = {math.log(63):.2f} nats")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()

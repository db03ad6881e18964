"""Do colour models keep a digit's two colours when they complete it (issue #16)?

    python scripts/colour_completions.py --data-dir ../shared/data            # the first 100 test digits
    python scripts/colour_completions.py --models pixelrcnn_ar gated --images 200

For the first N colour-MNIST test digits, the top half kept, each shipped colour model completes
each digit once (seeded). Printed per model: the share of completions whose every pixel is in
one of the digit's own two colours, and the share of completed pixels in another colour. A grid
of the first 8 is written to --grid: the originals, what is kept (tinted), then each model's
completions, a row each.
"""
import argparse

import torch

import pixelcnn
from pixelcnn import datasets, images
from pixelcnn.evaluate import colour_codes


def kept_colours(x, done):
    """(share of completions all in their original's colours, share of pixels in another colour)
    of originals x and completions `done`, both levels (N, C, H, W)."""
    own, got = colour_codes(x, 4), colour_codes(done, 4)
    inside = (got[:, :, None] == own[:, None, :]).any(-1)  # the pixel's colour is one of the original's
    return inside.all(1).double().mean().item(), 1 - inside.double().mean().item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, help="default: every colour model with weights")
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--grid", default="docs/colour_complete.png")
    args = p.parse_args(argv)
    models = args.models or [m for m, d in pixelcnn.available() if d == "color_mnist"]
    x = datasets.load("color_mnist", "test", args.data_dir)[0][:args.images].long()
    known = torch.zeros(28, 28, dtype=torch.bool)
    known[:14] = True
    strips = [images.grid(x[:8], 4, nrow=8, scale=3),  # the originals, what is kept (the rest: not drawn)
              images.grid(x[:8], 4, nrow=8, scale=3, known=known, blank=~known)]
    print(f"first {len(x)} colour-MNIST test digits, the top 14 rows kept, one completion each")
    print(f"{'model':14} {'all in its two colours':>22} {'pixels in another colour':>25}")
    for model in models:
        net = pixelcnn.load(model, "color_mnist")
        done = net.sample(len(x), seed=0, prefix=x, prefix_mask=known)
        whole, other = kept_colours(x, done)
        print(f"{model:14} {whole:>22.1%} {other:>25.2%}")
        strips.append(images.grid(done[:8], 4, nrow=8, scale=3, known=known))
    images.stacked(*strips).save(args.grid)
    print("wrote", args.grid, "(rows: originals, what is kept, then", ", ".join(models) + ")")


if __name__ == "__main__":
    main()

"""How well completions respect what is known: the prefix sampler against inpainting (issue #18).

    python scripts/inpaint_quality.py                        # pixelcnn/mnist, 200 test digits
    python scripts/inpaint_quality.py --model gated --images 100 --particles 32

For the first N binary MNIST test digits with the bottom half known, then the left half, each
digit is completed once by the prefix sampler (model.sample with a prefix_mask: each unknown
pixel sees the known pixels before it only) and once by model.inpaint (every known pixel). The
original digit is one completion the model could give, so printed per way: how often the
completed pixels agree with the original's, and the NLL of the whole completed image (nats,
median and 90th percentile) beside the test digits' own. A grid of the first 8 (original,
what is known, prefix sampler, inpainting) is written to --grid.
"""
import argparse
import time

import torch

import pixelcnn
from pixelcnn import datasets, images


def masks(h, w):
    bottom = torch.zeros(h, w, dtype=torch.bool)
    bottom[h // 2:] = True
    left = torch.zeros(h, w, dtype=torch.bool)
    left[:, : w // 2] = True
    return {"bottom half known": bottom, "left half known": left}


def nll(net, x):
    with torch.no_grad():
        return -net.log_prob(x).sum((1, 2, 3))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="pixelcnn")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--particles", type=int, default=16)
    p.add_argument("--grid", default="docs/inpaint.png")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    net = pixelcnn.load(args.model, "mnist")
    x = datasets.load("mnist", "test", args.data_dir)[0][: args.images].long()
    own = nll(net, x)
    print(f"{args.model}/mnist, first {len(x)} test digits: their own NLL median {own.median():.1f}, "
          f"90th percentile {own.quantile(0.9):.1f} nats\n")
    print(f"{'known':<18} {'way':<26} {'agree':>6} {'NLL median':>11} {'NLL p90':>8} {'seconds':>8}")
    rows = []
    for name, known in masks(*x.shape[2:]).items():
        for way in ("prefix sampler", f"inpaint, {args.particles} particles"):
            t = time.perf_counter()
            y = (net.sample(len(x), seed=0, prefix=x, prefix_mask=known) if way == "prefix sampler"
                 else net.inpaint(x, known, len(x), seed=0, particles=args.particles))
            seconds = time.perf_counter() - t
            agree = (y == x)[:, 0][:, ~known].float().mean()
            cost = nll(net, y)
            print(f"{name:<18} {way:<26} {agree:>6.1%} {cost.median():>11.1f} {cost.quantile(0.9):>8.1f} "
                  f"{seconds:>8.1f}", flush=True)
            rows.append((known, y[:8]))
    first = x[:8]
    pictures = [first]
    for k in range(0, len(rows), 2):
        pictures += [first * rows[k][0], rows[k][1], rows[k + 1][1]]
    knowns = [None] + [m for m, _ in rows[::2] for m in (m, m, m)]
    images.stacked(*(images.grid(pic, 2, nrow=8, scale=3, known=kn) for pic, kn in zip(pictures, knowns))).save(
        args.grid)
    print(f"\nwrote {args.grid}: rows the originals, then per mask what is known (tinted), the prefix "
          "sampler's completions, inpainting's")


if __name__ == "__main__":
    main()

"""Where a colour model's third colours come from (issue #16), in its seeded samples:

    python scripts/third_colours.py                                  # gated / color_mnist, 200 samples
    python scripts/third_colours.py --model pixelrcnn_ar --weights-dir checkpoints/run

Per sample that is not two colours: whether a stroke changes colour (a connected group of
foreground pixels, 8 neighbours, holding more than one colour), or strokes apart from each
other take different colours, or both. The background is the commonest colour and the
foreground the next. Then the pixels of the other colours, by how many of their channels
differ from the foreground's, and the row in which each such sample's third colour appears.
"""
import argparse
from collections import Counter

import numpy as np

import pixelcnn
from pixelcnn.evaluate import colour_codes


def strokes(mask):
    """Connected groups of the True pixels of a 2-D mask, 8 neighbours: (labels 1..k, k)."""
    lab, k = np.zeros(mask.shape, int), 0
    for start in zip(*np.nonzero(mask)):
        if lab[start]:
            continue
        k += 1
        lab[start], todo = k, [start]
        while todo:
            i, j = todo.pop()
            for a in range(max(i - 1, 0), min(i + 2, mask.shape[0])):
                for b in range(max(j - 1, 0), min(j + 2, mask.shape[1])):
                    if mask[a, b] and not lab[a, b]:
                        lab[a, b] = k
                        todo.append((a, b))
    return lab, k


def levels_of(code, levels, channels):
    """A colour's channel levels from its code (pixelcnn.evaluate.colour_codes)."""
    return np.array([code // levels ** (channels - 1 - ch) % levels for ch in range(channels)])


def kinds(codes, levels, channels):
    """Counters of the samples' kinds, of their extra pixels by channels differing from the
    foreground, and of the row where each sample's third colour first appears."""
    samples, pixels, rows = Counter(), Counter(), Counter()
    for c in codes:
        values, counts = np.unique(c, return_counts=True)
        if len(values) <= 2:
            samples["two colours"] += 1
            continue
        bg, fg = values[np.argsort(-counts)][:2]
        lab, k = strokes(c != bg)
        each = [set(np.unique(c[lab == s])) for s in range(1, k + 1)]
        changes = any(len(s) > 1 for s in each)
        apart = len(set().union(*each)) > max(map(len, each))
        samples[{(True, False): "a stroke changes colour", (False, True): "strokes apart differ",
                 (True, True): "both"}[changes, apart]] += 1
        for v, n in zip(values, counts):
            if v not in (bg, fg):
                pixels[int((levels_of(v, levels, channels) != levels_of(fg, levels, channels)).sum())] += int(n)
        first = list(dict.fromkeys(c.flatten()))[2]  # colours in order of appearance
        rows[int(np.argmax(c.flatten() == first)) // c.shape[1]] += 1
    return samples, pixels, rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gated")
    p.add_argument("--dataset", default="color_mnist", choices=["color_mnist", "color_shapes"])
    p.add_argument("--weights-dir", default=None, help="default weights/")
    p.add_argument("--samples", type=int, default=200)
    args = p.parse_args(argv)
    net = pixelcnn.load(args.model, args.dataset, args.weights_dir)
    x = net.sample(args.samples, seed=0)
    C, H, W = net.image_shape
    samples, pixels, rows = kinds(colour_codes(x, net.levels).view(-1, H, W).numpy(), net.levels, C)
    print(f"{args.model} / {args.dataset}, {args.samples} samples (seed 0, temperature 1):")
    for kind in ("two colours", "a stroke changes colour", "strokes apart differ", "both"):
        print(f"  {kind:<24} {samples[kind]:>4}")
    total = sum(pixels.values())
    print(f"pixels in neither of a sample's two commonest colours: {total} ({total / x[:, 0].numel():.2%}); "
          "by channels differing from the foreground's: "
          + ", ".join(f"{k}: {pixels[k] / max(total, 1):.0%}" for k in range(1, C + 1)))
    print("row where a sample's third colour appears:", " ".join(str(rows[i]) for i in range(H)))


if __name__ == "__main__":
    main()

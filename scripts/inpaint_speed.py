"""How fast the app's Complete tab completes a drawing given all of it (issue #18): four
completions of a 28x28 MNIST digit, the pixels known wherever they are, as the app asks for
them (studio.complete's call of model.inpaint_stream, one thread, as each of the app's
sampler workers runs), for a few numbers of proposals per completion.

    python scripts/inpaint_speed.py                      # pixelcnn and gated on MNIST
    python scripts/inpaint_speed.py --particles 4 8 16 --repeats 3

Printed per model, way of keeping and particles: seconds to the first picture and to the
last (the median of --repeats runs), and the raster prefix sampler's time for the same four
completions, in the same run, for scale. Run it alone: anything else on the cores slows it.
"""
import argparse
import statistics
import time

import torch

import pixelcnn
from pixelcnn import convert, studio

EXAMPLE = studio.EXAMPLES / "mnist_7.png"


def knowns(x):
    """The ways of keeping part of the example: its ink (What I drew), all but a band across it
    (All but what I paint over), its top half (the prefix sampler's case)."""
    band = torch.ones(28, 28, dtype=torch.bool)
    band[10:16] = False
    top = torch.zeros(28, 28, dtype=torch.bool)
    top[:14] = True
    return {"what I drew": x[0] != 0, "all but a band": band, "top rows": top}


def timed(stream):
    """(seconds to the first progress report, to the last)."""
    t0 = time.perf_counter()
    first = None
    for _ in stream:
        first = first or time.perf_counter() - t0
    return first, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["pixelcnn", "gated"])
    p.add_argument("--particles", nargs="+", type=int, default=[4, 8, 16])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # as each of the app's sampler workers
    x = torch.from_numpy(convert.image_to_levels(convert.open_image(EXAMPLE), 1, 28, 28, 2)).long()
    print(f"{'model':8} {'kept':16} {'particles':>9} {'first picture':>14} {'four completions':>17}")
    for model in args.models:
        net = pixelcnn.load(model, "mnist")
        every = studio.every(net)
        for kept, known in knowns(x).items():
            runs = {}
            if kept == "top rows":
                runs["prefix"] = [timed(net.sample_stream(studio.COMPLETIONS, seed=s, prefix=x, prefix_mask=known,
                                                          every=every)) for s in range(args.repeats)]
            for particles in args.particles:
                runs[particles] = [timed(net.inpaint_stream(x, known, studio.COMPLETIONS, seed=s, particles=particles,
                                                            every=every)) for s in range(args.repeats)]
            for particles, times in runs.items():
                first, last = (statistics.median(t) for t in zip(*times))
                print(f"{model:8} {kept:16} {particles:>9} {first:>12.3f} s {last:>15.2f} s")


if __name__ == "__main__":
    main()

"""How fast the app's Complete tab completes a picture given all that is kept (issue #18): four
completions of the 28x28 example 7, by studio.complete as the app calls it, on one thread (as
each of the app's sampler workers runs), for a few numbers of proposals per completion.

    python scripts/inpaint_speed.py                      # pixelcnn and gated on MNIST
    python scripts/inpaint_speed.py --particles 4 8 16 --repeats 3

The ways to keep: its ink ("what I drew", the example standing in for a drawing), all but a
band of rows 10 to 15 painted over ("all but what I paint over"), its top half ("the top rows":
the raster sampler, no particles). Printed for each: seconds to the first picture (what is kept,
shown before sampling starts), to the first one the sampler drew, and to the four completions,
the median of --repeats seeds. Run it alone: anything else on the cores slows it.
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from pixelcnn import studio

EXAMPLE = str(studio.EXAMPLES / "mnist_7.png")


def ways(folder):
    """(name, keep, drawing, image, marks) of each way of keeping part of the example."""
    drawing = {"background": None, "layers": [], "composite": {"path": EXAMPLE}}
    paint = Image.new("RGBA", (studio.MARKING_SIDE,) * 2, (0, 0, 0, 0))
    ImageDraw.Draw(paint).rectangle((0, 100, 279, 159), fill=(255, 45, 149, 255))  # rows 10 to 15 of 28
    paint.save(Path(folder) / "paint.png")
    marks = {"background": None, "layers": [{"path": str(Path(folder) / "paint.png")}], "composite": None}
    return [("what I drew", studio.DRAWN, studio.DRAW, drawing, None, None),
            ("all but a band", studio.MARKED, studio.IMAGE, None, EXAMPLE, marks),
            ("top rows", studio.ROWS, studio.IMAGE, None, EXAMPLE, None)]


def timed(frames):
    """Seconds to the first frame, to the second (the sampler's first), to the last."""
    t0, at = time.perf_counter(), []
    for _ in frames:
        at.append(time.perf_counter() - t0)
    return at[0], at[1] if len(at) > 2 else at[-1], at[-1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["pixelcnn", "gated"])
    p.add_argument("--particles", nargs="+", type=int, default=[4, 8, 16])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # as each of the app's sampler workers
    print(f"{'model':8} {'kept':15} {'particles':>9} {'first picture':>14} {'first drawn':>12} "
          f"{'four completions':>17}")
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models:
            name = f"{model}/mnist"
            studio.get_model(name)  # loaded before the clock starts, as the app's workers have it
            for kept, keep, source, drawing, image, marks in ways(folder):
                for particles in args.particles if keep != studio.ROWS else ["-"]:
                    studio.PARTICLES = particles if keep != studio.ROWS else studio.PARTICLES
                    times = [timed(studio.complete(name, source, drawing, image, 14, keep, 1.0, seed, marks=marks))
                             for seed in range(args.repeats)]
                    first, drawn, last = (statistics.median(t) for t in zip(*times))
                    print(f"{model:8} {kept:15} {particles:>9} {first:>12.3f} s {drawn:>10.3f} s {last:>15.2f} s",
                          flush=True)


if __name__ == "__main__":
    main()

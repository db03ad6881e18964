"""Sampling speed, measured side by side in one run:

    python -m pixelcnn.bench            # full reference loops (a few minutes)
    python -m pixelcnn.bench --quick    # reference loops timed on their first 2 rows, scaled up

For each model (as shipped, where weights/ holds it): one forward pass, the reference
sampler (a full forward pass per pixel) and the cached sampler, compiled (numba) and pure
NumPy, at batch 1 and 16; the ratios; whether the samplers drew identical images; the cost
of streaming the progress; and the cost of re-scoring the images after one pixel changes
(pixelcnn.rescore), against a forward pass.

    python -m pixelcnn.bench --device cuda --quick    # on a GPU

On a GPU: one forward pass, eager and replayed from a CUDA graph; the reference loop; the
sampler (sampling.GraphStepper); and how many of its images differ from the CPU's for the
same seed, with cuDNN's default (TF32 convolutions) and with exact float32 ("ieee").
"""
import argparse
import copy
import dataclasses
import importlib.util
import math
import sys
import time
from pathlib import Path

import torch

import pixelcnn
from pixelcnn import kernels, sampling
from pixelcnn.rescore import Rescorer

PAIRS = (("pixelcnn", "mnist"), ("pixelrcnn", "color_mnist"), ("pixelrcnn_ar", "color_mnist"),
         ("gated", "mnist"), ("gated", "color_mnist"), ("gated_cond", "mnist"))


def best_of(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def reference_time(net, n, rows, label=None):
    """Seconds for the reference loop; with rows, timed on that many rows and scaled up."""
    H = net.image_shape[1]
    if rows is None:
        t = time.perf_counter()
        out = net.sample(n, seed=0, cached=False, label=label)
        return time.perf_counter() - t, out
    it = net.sample_stream(n, seed=0, cached=False, every=net.image_shape[2], label=label)
    t = time.perf_counter()
    for _ in range(rows):
        next(it)
    it.close()
    return (time.perf_counter() - t) * H / rows, None


def import_against(folder):
    """The pixelcnn package in `folder` (another checkout, say the commit before: `git archive
    COMMIT pixelcnn | tar -x -C FOLDER`) under the name pixelcnn_against, beside this one."""
    init = Path(folder) / "pixelcnn" / "__init__.py"
    spec = importlib.util.spec_from_file_location("pixelcnn_against", init,
                                                  submodule_search_locations=[str(init.parent)])
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def against_time(other, net, n, repeat, label):
    """Seconds for the cached sampler of the package `other` (import_against), same weights;
    nan where that version cannot build the model (an option it lacks, and turned on)."""
    known = {f.name for f in dataclasses.fields(other.Config)}
    try:
        twin = other.from_config({k: v for k, v in net.config.to_dict().items() if k in known or v is not False})
    except ValueError:
        return float("nan")
    twin.load_state_dict(net.state_dict())
    twin.eval()
    return best_of(lambda: twin.sample(n, seed=0, label=label), repeat)


def pure_time(net, n, repeat, label):
    """Seconds for the cached sampler's pure NumPy path, as on a machine without numba."""
    was, kernels.AVAILABLE = kernels.AVAILABLE, False
    try:
        return best_of(lambda: net.sample(n, seed=0, label=label), repeat)
    finally:
        kernels.AVAILABLE = was


def rescore_time(net, x, label, repeat):
    """Seconds to re-score the images x after one pixel changes, averaged over pixels in every row."""
    r = Rescorer(net, x, label)
    H, W = net.image_shape[1:]
    pixels = [(i, (7 * i) % W) for i in range(H)]
    return best_of(lambda: [r.set(i, j, x[:, :, i, j]) for i, j in pixels], repeat) / len(pixels)


def batch(net, n):
    """The labels (n,) to time a class-conditional model with (else None), and a batch of
    n blank images on the model's device."""
    label = torch.arange(n) % net.config.classes if net.config.classes else None
    return label, torch.zeros((n,) + net.image_shape, dtype=torch.long, device=net.device)


def row(net, n, repeat, rows, other=None):
    """The table's row for `net` at batch n (reference loop: see reference_time; other: a
    package to time the cached sampler of too, see import_against)."""
    label, x = batch(net, n)
    with torch.no_grad():
        fwd = best_of(lambda: net(x, label), repeat)
    net.sample(n, seed=0, label=label)  # compiles the kernels, or loads them from numba's cache
    cached = best_of(lambda: net.sample(n, seed=0, label=label), repeat)
    pure = pure_time(net, n, repeat, label) if kernels.AVAILABLE else float("nan")
    before = against_time(other, net, n, repeat, label) / fwd if other else None
    before = "" if before is None else f"{'n/a':>10}" if math.isnan(before) else f"{before:>9.1f}x"
    stream = best_of(lambda: [None for _ in net.sample_stream(n, seed=0, every=net.image_shape[2], label=label)],
                     repeat)
    rescore = rescore_time(net, net.sample(n, seed=0, label=label), label, repeat)
    ref, ref_out = reference_time(net, n, rows, label)
    same = "n/a" if ref_out is None else ("yes" if torch.equal(ref_out, net.sample(n, seed=0, label=label)) else "NO")
    name = f"{net.config.model} / {net.config.dataset}"
    return (f"{name:<24}{n:>6}{fwd * 1e3:>8.1f}ms{ref:>11.2f}s{cached * 1e3:>8.0f}ms{pure * 1e3:>8.0f}ms"
            f"{ref / cached:>11.0f}x{cached / fwd:>11.1f}x{pure / fwd:>10.1f}x{stream / cached:>8.2f}x"
            f"{rescore / fwd:>9.2f}x{same:>11}{before}")


def gpu_row(net, n, repeat, rows):
    """The table's row on a GPU for `net` (there) at batch n; see the module's docstring. (On the
    CPU, as the tests try it, the sampler is the cached one and the CPU's images are its own.)"""
    label, x = batch(net, n)
    on = None if label is None else label.to(net.device)

    def timed(f):
        return best_of(lambda: (f(), net.device.type == "cuda" and torch.cuda.synchronize()), repeat)
    with torch.no_grad():
        fwd = timed(lambda: net(x, on))
        graph = timed(sampling.graphed(lambda: net(x, on), net.device))
    net.sample(n, seed=0, label=label)  # warm: cuDNN's choices, the memory pool
    fast = best_of(lambda: net.sample(n, seed=0, label=label), repeat)  # (its images come back: synchronised)
    ref, _ = reference_time(net, n, rows, label)
    cpu = copy.deepcopy(net).cpu().sample(n, seed=0, label=label)
    differ = []
    precision = torch.backends.cudnn.conv.fp32_precision
    for conv in (precision, "ieee"):
        torch.backends.cudnn.conv.fp32_precision = conv
        try:
            differ.append(int((net.sample(n, seed=0, label=label) != cpu).flatten(1).any(1).sum()))
        finally:
            torch.backends.cudnn.conv.fp32_precision = precision
    name = f"{net.config.model} / {net.config.dataset}"
    per_pixel = fast / (net.image_shape[1] * net.image_shape[2])
    return (f"{name:<24}{n:>6}{fwd * 1e3:>8.2f}ms{graph * 1e3:>8.2f}ms{ref:>11.2f}s{fast * 1e3:>8.0f}ms"
            f"{per_pixel * 1e6:>8.0f}us{ref / fast:>11.1f}x{fast / fwd:>11.1f}x"
            + "".join(f"{f'{d}/{n}':>10}" for d in differ))


def network(model, dataset, tiny=False):
    """The model to time: as shipped (its weights, and so its options: the summary, say) where
    weights/ has it, else as build() makes it; tiny: filters 8, 2 layers."""
    if not tiny and (model, dataset) in pixelcnn.available():
        return pixelcnn.load(model, dataset)
    return pixelcnn.build(model, dataset, **(dict(filters=8, layers=2) if tiny else {})).eval()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="time the reference loops on 2 rows and scale up")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeat", type=int, default=3, help="best of this many runs for the fast measurements")
    p.add_argument("--pairs", nargs="*", default=[f"{m}/{d}" for m, d in PAIRS], metavar="MODEL/DATASET",
                   help="which models to time (default: %(default)s)")
    p.add_argument("--tiny", action="store_true", help="tiny models (filters 8, 2 layers), as the tests run it")
    p.add_argument("--against", metavar="FOLDER", help="also time the cached sampler of the pixelcnn package in "
                   "FOLDER (another commit's: git archive COMMIT pixelcnn | tar -x -C FOLDER), in forward passes")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to time the samplers")
    args = p.parse_args(argv)
    other = import_against(args.against) if args.against else None
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        return gpu(args)
    quick = ", 2 rows scaled up" if args.quick else ""
    print(f"torch {torch.__version__}, {args.threads} threads, numba {'on' if kernels.AVAILABLE else 'off'}; "
          f"times are the best of {args.repeat} (reference loops: one run{quick})\n")
    head = (f"{'model':<24}{'batch':>6}{'forward':>10}{'reference':>12}{'cached':>10}{'pure':>10}"
            f"{'ref/cached':>12}{'cached/fwd':>12}{'pure/fwd':>10}{'stream':>9}{'rescore':>9}{'identical':>11}"
            + (f"{'against':>10}" if other else ""))
    print(head)
    print("-" * len(head))
    for model, dataset in (pair.split("/") for pair in args.pairs):
        net = network(model, dataset, args.tiny)
        for n in (1, 16):
            print(row(net, n, args.repeat, 2 if args.quick else None, other), flush=True)
    print("\nreference/cached: speed-up of the cached sampler; cached/fwd: its cost in single forward "
          "passes of the same batch; pure: the cached sampler without numba (its NumPy path); stream: time "
          "with progress streamed every row / without; rescore: re-scoring the images after one pixel "
          "changes (pixelcnn.rescore), in forward passes, the mean over a pixel in each row; against: the cached "
          "sampler of --against's package, in forward passes.")


def gpu(args):
    if not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}; times are the best of {args.repeat} "
          f"(reference loops: one run{', 2 rows scaled up' if args.quick else ''})\n")
    head = (f"{'model':<24}{'batch':>6}{'forward':>10}{'graphed':>10}{'reference':>12}{'sampler':>10}"
            f"{'a pixel':>10}{'ref/sampler':>12}{'sampler/fwd':>12}{'!= CPU':>10}{'ieee':>10}")
    print(head)
    print("-" * len(head))
    for model, dataset in (pair.split("/") for pair in args.pairs):
        net = network(model, dataset, args.tiny).cuda()
        for n in (1, 16):
            print(gpu_row(net, n, args.repeat, 2 if args.quick else None), flush=True)
    print("\ngraphed: a forward pass replayed from a CUDA graph; sampler: sampling.GraphStepper's images, "
          "a pixel: its time per pixel; sampler/fwd: its cost in eager forward passes of the same batch; "
          "!= CPU: images that differ from the CPU's sampler's for the same seed, cuDNN as it is set "
          "(by default TF32 convolutions) and with exact float32 convolutions (ieee).")


if __name__ == "__main__":
    main()

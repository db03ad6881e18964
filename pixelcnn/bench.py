"""Sampling speed, measured side by side in one run:

    python -m pixelcnn.bench            # full reference loops (a few minutes)
    python -m pixelcnn.bench --quick    # reference loops timed on their first 2 rows, scaled up

For each model: one forward pass, the reference sampler (a full forward pass per pixel)
and the cached sampler, at batch 1 and 16; the ratios; whether both samplers drew
identical images; and the cost of streaming the progress.
"""
import argparse
import time

import torch

import pixelcnn

PAIRS = (("pixelcnn", "mnist"), ("pixelrcnn", "color_mnist"), ("pixelrcnn_ar", "color_mnist"),
         ("gated", "mnist"), ("gated", "color_mnist"))


def best_of(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def reference_time(net, n, rows):
    """Seconds for the reference loop; with rows, timed on that many rows and scaled up."""
    H = net.image_shape[1]
    if rows is None:
        t = time.perf_counter()
        out = net.sample(n, seed=0, cached=False)
        return time.perf_counter() - t, out
    it = net.sample_stream(n, seed=0, cached=False, every=net.image_shape[2])
    t = time.perf_counter()
    for _ in range(rows):
        next(it)
    it.close()
    return (time.perf_counter() - t) * H / rows, None


def row(net, n, repeat, rows):
    """The table's row for `net` at batch n (reference loop: see reference_time)."""
    x = torch.zeros((n,) + net.image_shape, dtype=torch.long)
    with torch.no_grad():
        fwd = best_of(lambda: net(x), repeat)
    cached = best_of(lambda: net.sample(n, seed=0), repeat)
    stream = best_of(lambda: [None for _ in net.sample_stream(n, seed=0, every=net.image_shape[2])], repeat)
    ref, ref_out = reference_time(net, n, rows)
    same = "n/a" if ref_out is None else ("yes" if torch.equal(ref_out, net.sample(n, seed=0)) else "NO")
    name = f"{net.config.model} / {net.config.dataset}"
    return (f"{name:<22}{n:>6}{fwd * 1e3:>8.1f}ms{ref:>11.2f}s{cached * 1e3:>8.0f}ms"
            f"{ref / cached:>11.0f}x{cached / fwd:>11.1f}x{stream / cached:>8.2f}x{same:>11}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="time the reference loops on 2 rows and scale up")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeat", type=int, default=3, help="best of this many runs for the fast measurements")
    p.add_argument("--pairs", nargs="*", default=[f"{m}/{d}" for m, d in PAIRS], metavar="MODEL/DATASET",
                   help="which models to time (default: %(default)s)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads; times are the best of {args.repeat} "
          f"(reference loops: one run{', 2 rows scaled up' if args.quick else ''})\n")
    head = f"{'model':<22}{'batch':>6}{'forward':>10}{'reference':>12}{'cached':>10}" \
           f"{'ref/cached':>12}{'cached/fwd':>12}{'stream':>9}{'identical':>11}"
    print(head)
    print("-" * len(head))
    for model, dataset in (pair.split("/") for pair in args.pairs):
        net = pixelcnn.build(model, dataset).eval()
        for n in (1, 16):
            print(row(net, n, args.repeat, 2 if args.quick else None), flush=True)
    print("\nreference/cached: speed-up of the cached sampler; cached/fwd: its cost in single forward "
          "passes of the same batch; stream: time with progress streamed every row / without.")


if __name__ == "__main__":
    main()

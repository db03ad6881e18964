"""How many threads each of the server's samplers should use, measured: for 1 and 2 threads
per sampler (torch's and OpenBLAS's: numpy's products in the cached sampler use the latter),
one sampler alone and two at once (the server's two workers), each drawing 16-image grids
with the shipped weights, as the app draws them (the last picture drawn, no pacing). Printed
side by side: seconds per grid (wall) and CPU seconds per grid. Then the app's engine with
two workers, threads or processes (app.py's $PIXELCNN_WORKERS), drawing 8 grids at once:
seconds per grid.

    python scripts/threads.py                      # pixelcnn/mnist and gated/mnist, 4 grids each
    python scripts/threads.py --pairs pixelcnn/mnist --grids 8

Each setting runs in a fresh process (torch's thread pools are fixed once used), one after
the other; nothing else should run meanwhile.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(name, threads, samplers, grids):
    """(wall seconds, CPU seconds) per grid, in this process."""
    import torch

    sys.path.insert(0, str(REPO))
    from pixelcnn import studio

    torch.set_num_threads(threads)
    list(studio.sample(name, 1, 1.0, 0))  # loaded and warm

    def draw(k):
        for g in range(grids):
            *_, (grid, _) = studio.sample(name, 16, 1.0, k * 1000 + g)
            grid.image()

    workers = [threading.Thread(target=draw, args=(k,)) for k in range(samplers)]
    wall, cpu = time.perf_counter(), time.process_time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done = samplers * grids
    return (time.perf_counter() - wall) * samplers / done, (time.process_time() - cpu) / done


def measure_engine(name, processes, grids):
    """Wall seconds per grid on the app's engine, two workers, `grids` requests at once."""
    import asyncio

    sys.path.insert(0, str(REPO))
    from pixelcnn import engine, studio

    e = engine.Engine(workers=2, processes=processes)
    e.everywhere(studio.warm, name)

    async def draw(job):
        *_, (grid, _) = [value async for value in e.shown(job, 0)]
        grid.image()

    async def all_at_once():
        await asyncio.gather(*(draw(e.submit(studio.sample, name, 16, 1.0, g)) for g in range(grids)))

    wall = time.perf_counter()
    asyncio.run(all_at_once())
    wall = time.perf_counter() - wall
    e.close()
    return wall / grids


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", nargs="*", default=["pixelcnn/mnist", "gated/mnist"])
    p.add_argument("--grids", type=int, default=4, help="grids each sampler draws")
    p.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # name threads samplers: a single measurement
    p.add_argument("--engine", nargs=2, help=argparse.SUPPRESS)  # name threads|processes
    args = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy and torch load
        os.environ[var] = args.one[1] if args.one else "1"
    if args.engine:
        print(json.dumps(measure_engine(args.engine[0], args.engine[1] == "processes", 2 * args.grids)))
        return
    if args.one:
        name, threads, samplers = args.one
        print(json.dumps(measure(name, int(threads), int(samplers), args.grids)))
        return
    print(f"{'model':<16} {'samplers':>8} | {'s/grid, 1 thread':>16} {'2 threads':>10} | "
          f"{'CPU s/grid, 1 thread':>20} {'2 threads':>10}")
    for name in args.pairs:
        for samplers in (1, 2):
            got = [json.loads(run("--one", name, str(t), str(samplers), "--grids", str(args.grids))) for t in (1, 2)]
            print(f"{name:<16} {samplers:>8} | {got[0][0]:>16.2f} {got[1][0]:>10.2f} | "
                  f"{got[0][1]:>20.2f} {got[1][1]:>10.2f}", flush=True)
    print(f"\n{'model':<16} {'grids at once':>13} | {'s/grid, 2 worker threads':>24} {'2 worker processes':>18}")
    for name in args.pairs:
        got = [json.loads(run("--engine", name, kind, "--grids", str(args.grids))) for kind in ("threads", "processes")]
        print(f"{name:<16} {2 * args.grids:>13} | {got[0]:>24.2f} {got[1]:>18.2f}", flush=True)


def run(*args):
    """The last line this script prints, run with `args` in a fresh process."""
    return subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True,
                          cwd=REPO).stdout.splitlines()[-1]


if __name__ == "__main__":
    main()

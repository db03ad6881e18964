"""Load test: the app on loopback, N concurrent gradio_client users for a bounded time.

    python scripts/loadtest.py                       # N = 1, 4, 16; 30 s each
    python scripts/loadtest.py --users 16 --seconds 60 --model gated/mnist

Each user asks /sample for a grid (16 images by default) again and again, reading the
stream to its end; with --abandon, a quarter of the users drop every other request after
its first picture. Printed per N: requests served, errors, the time to the first picture
and to the last (p50, p95), and the server's memory (resident now, and its peak).
Everything runs on this machine: the app is started with `python app.py --port 0` (a free
loopback port), in a process of its own so that its memory is its own (app_server.py).
"""
import argparse
import threading
import time
from pathlib import Path

from app_server import running_app


def memory_mb(pid):
    """(resident now, peak resident) of a process, in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def user(url, args, k, stop_at, results, abandon):
    from gradio_client import Client

    client = Client(url, verbose=False)
    r = 0
    while time.monotonic() < stop_at:
        t0, first = time.monotonic(), None
        try:
            job = client.submit(args.model, args.samples, 1.0, k * 1000 + r, api_name="/sample")
            for _ in job:
                if first is None:
                    first = time.monotonic() - t0
                    if abandon and r % 2:
                        job.cancel()
                        break
            if not (abandon and r % 2):
                job.result()
                results.append(("served", first, time.monotonic() - t0))
            else:
                results.append(("abandoned", first, None))
        except Exception as e:  # noqa: BLE001  any failure counts as an error
            results.append(("error", f"{type(e).__name__}: {e}"[:200], None))
        r += 1


def pct(values, p):
    values = sorted(v for v in values if v is not None)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, nargs="*", default=[1, 4, 16])
    p.add_argument("--seconds", type=float, default=30, help="how long each round of users keeps asking")
    p.add_argument("--model", default="pixelcnn/mnist")
    p.add_argument("--samples", type=int, default=16, help="images per request")
    p.add_argument("--abandon", action="store_true", help="a quarter of the users drop every other stream")
    args = p.parse_args(argv)
    with running_app() as (proc, url):
        print(f"app at {url} (pid {proc.pid}); model {args.model}, {args.samples} images a request, "
              f"{args.seconds:g} s per round; memory at start {memory_mb(proc.pid)[0]:.0f} MB\n")
        print(f"{'users':>5} {'served':>7} {'dropped':>8} {'errors':>7} {'first p50':>10} {'first p95':>10} "
              f"{'last p50':>9} {'last p95':>9} {'RSS MB':>7} {'peak MB':>8}")
        for n in args.users:
            results, stop_at = [], time.monotonic() + args.seconds
            threads = [threading.Thread(target=user, args=(url, args, k, stop_at, results,
                                                           args.abandon and k % 4 == 3)) for k in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            served = [r for r in results if r[0] == "served"]
            errors = [r for r in results if r[0] == "error"]
            rss, peak = memory_mb(proc.pid)
            firsts = [r[1] for r in results if r[0] != "error"]
            print(f"{n:>5} {len(served):>7} {len(results) - len(served) - len(errors):>8} {len(errors):>7} "
                  f"{pct(firsts, 50):>9.2f}s {pct(firsts, 95):>9.2f}s {pct([r[2] for r in served], 50):>8.2f}s "
                  f"{pct([r[2] for r in served], 95):>8.2f}s {rss:>7.0f} {peak:>8.0f}", flush=True)
            for e in errors[:3]:
                print("   error:", e[1])


if __name__ == "__main__":
    main()

"""Load test: the app on loopback, N concurrent gradio_client users for a bounded time.

    python scripts/loadtest.py                       # N = 1, 4, 16; 30 s each
    python scripts/loadtest.py --users 16 --seconds 60 --model gated/mnist

Each user asks /sample for a grid (16 images by default) again and again, following each
request to its end; with --abandon, a quarter of the users drop every other request after
its first picture. Every wait is bounded: a request not finished --timeout seconds after it
was sent is cancelled and counted as timed out; a full queue or an error ends it at once as
an error (and its user waits a moment before asking again); a user still busy when its
round's time and one more --timeout are over is counted as hung and left behind.
Printed per N: requests served, dropped, failed and timed out, hung users, the time to the
first picture and to the last (p50, p95), the server's memory (resident now, its peak) and its
CPU use over the round (% of all cores).
Everything runs on this machine: the app is started with `python app.py --port 0` (a free
loopback port), in a process of its own so that its memory is its own (app_server.py).
"""
import argparse
import os
import threading
import time

from app_server import process_stats, running_app
from gradio_client import Client
from gradio_client.utils import QueueError, Status

POLL = 0.02  # s between looks at a job
BACKOFF = 0.5  # s a user waits after an error (a full queue) before asking again
GRACE = 10  # s beyond a round's last deadline for its users to return


def follow(job, t0, timeout, drop=False):
    """Watch a submitted gradio_client job until it ends, never past t0 + timeout (polling
    its status, not iterating it: iteration waits for a "finished" status that a failed or
    refused job never gets). Returns (outcome, time to the first picture or None, detail):
    ("served", first, time to the end), ("abandoned", first, None) after the first picture
    when `drop`, ("error", first, the exception) as soon as it fails or the queue is full,
    or ("timed out", first, None), the job cancelled."""
    first = None
    while (now := time.monotonic()) < t0 + timeout:
        done = job.done()  # before outputs: a job's outputs are in place before it is done
        if first is None and job.outputs():
            first = now - t0
            if drop:
                job.cancel()
                return "abandoned", first, None
        if job.status().code == Status.QUEUE_FULL:
            job.cancel()
            return "error", first, QueueError("Queue is full! Please try again.")
        if done:
            try:
                job.result(timeout=0)
            except Exception as e:  # noqa: BLE001  any failure is this request's outcome
                return "error", first, e
            return "served", first, now - t0
        time.sleep(POLL)
    job.cancel()
    return "timed out", first, None


def user(client, model, samples, seed, stop_at, timeout, results, abandon=False):
    """Ask /sample for `samples` images until stop_at, one request at a time (seeds seed,
    seed + 1, ...), adding each one's outcome (follow's) to results; with `abandon`, every
    other request is dropped after its first picture."""
    r = 0
    while (t0 := time.monotonic()) < stop_at:
        try:
            job = client.submit(model, samples, 1.0, seed + r, api_name="/sample")
        except Exception as e:  # noqa: BLE001
            results.append(("error", None, e))
        else:
            results.append(follow(job, t0, timeout, drop=abandon and r % 2 == 1))
        if results[-1][0] == "error":
            time.sleep(max(0.0, min(BACKOFF, stop_at - time.monotonic())))
        r += 1


def run_round(url, n, args, connect=lambda url: Client(url, verbose=False)):
    """n users, each with a client of its own (connect(url)), for args.seconds. Returns (the
    outcomes of every request, how many users were still busy at the round's last deadline)."""
    results, stop_at = [], time.monotonic() + args.seconds

    def run(k):
        try:
            client = connect(url)
        except Exception as e:  # noqa: BLE001
            results.append(("error", None, e))
            return
        try:
            user(client, args.model, args.samples, k * 1000, stop_at, args.timeout, results,
                 abandon=args.abandon and k % 4 == 3)
        finally:
            getattr(client, "close", lambda: None)()

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    last = stop_at + args.timeout + GRACE
    for t in threads:
        t.join(max(0.0, last - time.monotonic()))
    return results, sum(t.is_alive() for t in threads)


def busy(cpu_seconds, seconds):
    """The server's CPU use over a round, in % of all the machine's cores."""
    return 100 * cpu_seconds / seconds / (os.cpu_count() or 1)


def pct(values, p):
    values = sorted(v for v in values if v is not None)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, nargs="*", default=[1, 4, 16])
    p.add_argument("--seconds", type=float, default=30, help="how long each round of users keeps asking")
    p.add_argument("--timeout", type=float, default=120, help="seconds a request may take before it is cancelled")
    p.add_argument("--model", default="pixelcnn/mnist")
    p.add_argument("--samples", type=int, default=16, help="images per request")
    p.add_argument("--abandon", action="store_true", help="a quarter of the users drop every other stream")
    args = p.parse_args(argv)
    with running_app() as (proc, url):
        print(f"app at {url} (pid {proc.pid}); model {args.model}, {args.samples} images a request, "
              f"{args.seconds:g} s per round, {args.timeout:g} s timeout; "
              f"memory at start {process_stats(proc.pid)['resident MB']:.0f} MB\n")
        print(f"{'users':>5} {'served':>7} {'dropped':>8} {'errors':>7} {'timed out':>10} {'hung':>5} "
              f"{'first p50':>10} {'first p95':>10} {'last p50':>9} {'last p95':>9} {'RSS MB':>7} {'peak MB':>8} "
              f"{'CPU %':>6}")
        for n in args.users:
            cpu, wall = process_stats(proc.pid)["CPU s"], time.monotonic()
            results, hung = run_round(url, n, args)
            count = {o: [r for r in results if r[0] == o] for o in ("served", "abandoned", "error", "timed out")}
            lasts, stats = [r[2] for r in count["served"]], process_stats(proc.pid)
            firsts = [r[1] for r in results if r[0] != "error"]
            print(f"{n:>5} {len(count['served']):>7} {len(count['abandoned']):>8} {len(count['error']):>7} "
                  f"{len(count['timed out']):>10} {hung:>5} {pct(firsts, 50):>9.2f}s {pct(firsts, 95):>9.2f}s "
                  f"{pct(lasts, 50):>8.2f}s {pct(lasts, 95):>8.2f}s {stats['resident MB']:>7.0f} "
                  f"{stats['peak MB']:>8.0f} {busy(stats['CPU s'] - cpu, time.monotonic() - wall):>6.0f}", flush=True)
            for e in count["error"][:3]:
                print("   error:", f"{type(e[2]).__name__}: {e[2]}"[:200])


if __name__ == "__main__":
    main()

"""Load test: the app on loopback, N concurrent users for a bounded time, each a browser tab.

    python scripts/loadtest.py                       # N = 1, 4, 16, 64; 30 s each, /sample
    python scripts/loadtest.py --users 16 --seconds 60 --mix

Each user asks for a grid (16 images by default) again and again, as the page asks: it joins
the queue (POST /queue/join), reads its session's stream of messages (GET /queue/data) to the
request's end, and fetches each picture the stream names, as the page shows it (--no-fetch:
not). With --mix, users take turns over /sample of three models (--model, Gated PixelCNN and
PixelRCNN R->G->B on colour MNIST, where offered), /complete and /score (an example picture);
each kind is asked once before the first round (a model's first use loads it). With --abandon,
a quarter of the users drop every other request after its first picture, as Stop does.
Every wait is bounded: a request not finished --timeout seconds after it was sent is
cancelled and counted as timed out; a full queue ends it at once (its user waits a moment
before asking again), an error too; a user still busy when its round's time and one more
--timeout are over is counted as hung and left behind. All users run on one thread, an
asyncio loop, so that they take little of the machine from the server they measure.
Printed per N (and per kind of request, with --mix): requests served, dropped, refused by a
full queue, failed and timed out, hung users, the time to the first picture and to the last
(p50, p95), the server's memory (its processes together, app_server.process_stats:
resident now, the sum of their peaks) and its CPU use over the round (% of all cores).
The app is started with `python app.py --port 0` (a free loopback port), in a process of its
own (app_server.py).
"""
import argparse
import asyncio
import json
import os
import re
import time
import uuid

import httpx
from app_server import REPO, process_stats, running_app

BACKOFF = 0.5  # s a user waits after a full queue or an error before asking again
GRACE = 10  # s beyond a round's last deadline for its users to return
FILE_URL = re.compile(r'"url":\s*"([^"]+/file=[^"]+)"')
MIXED = ("gated/mnist", "pixelrcnn_ar/color_mnist")  # with --mix, sampled beside --model
OUTCOMES = ("served", "abandoned", "queue full", "error", "timed out")


def example(name):
    """An example picture of the model's dataset, as the page sends one picked from its gallery."""
    path = sorted((REPO / "examples").glob(f"{name.split('/')[1]}_*.png"))[0]
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


def requests(models, samples, mix):
    """The requests users take turns over: (kind, a function of the seed giving the data)."""
    first = models[0]
    if not mix:
        return [(f"sample {first}", lambda seed: ["sample", [first, samples, 1.0, seed, 0, False]])]
    made = [(f"sample {name}", lambda seed, name=name: ["sample", [name, samples, 1.0, seed, 0, False]])
            for name in models]
    made += [(f"complete {first}", lambda seed: ["complete", [first, "Image", None, example(first), 14,
                                                              "The top rows", 1.0, seed, 0, None]]),
             (f"score {first}", lambda seed: ["score", [first, "Image", None, example(first), 0]])]
    return made


async def ask(http, base, dep, data, session, timeout, fetch=True, drop=False):
    """One request as the page makes it. Returns (outcome, time to the first picture or None,
    time to the end or None, detail): "served", "abandoned" after the first picture when
    `drop`, "queue full", "error" (with the message), or "timed out"; cancelled (as Stop
    cancels) where it did not end by itself."""
    t0, first = time.monotonic(), None
    body = json.dumps({"data": data, "event_data": None, "fn_index": dep["id"],
                       "trigger_id": dep["targets"][0][0], "session_hash": session})
    try:
        async with asyncio.timeout(timeout):
            joined = await http.post(f"{base}/queue/join", content=body, headers={"Content-Type": "application/json"})
            if joined.status_code != 200:
                return ("queue full" if joined.status_code == 503 else "error"), None, None, joined.text[:200]
            async with http.stream("GET", f"{base}/queue/data", params={"session_hash": session}) as stream:
                async for line in stream.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    message = json.loads(line[5:])
                    if (url := FILE_URL.search(line)) and message.get("msg") in ("process_generating",
                                                                                 "process_completed"):
                        first = first or time.monotonic() - t0
                        if fetch:
                            (await http.get(url.group(1))).raise_for_status()
                        if drop:
                            await cancel(http, base, dep, session)
                            return "abandoned", first, None, None
                    if message.get("msg") == "process_completed":
                        if message.get("success"):
                            return "served", first, time.monotonic() - t0, None
                        return "error", first, None, (message.get("output") or {}).get("error")
            return "error", first, None, "the stream ended before the request did"
    except TimeoutError:
        await cancel(http, base, dep, session)
        return "timed out", first, None, None
    except (httpx.HTTPError, ValueError) as e:
        return "error", first, None, e


async def cancel(http, base, dep, session):
    """What Stop sends."""
    try:
        await http.post(f"{base}/cancel", json={"session_hash": session, "fn_index": dep["id"], "event_id": None},
                        timeout=10)
    except httpx.HTTPError:
        pass


async def user(k, base, deps, asked, stop_at, args, results):
    """Requests one at a time, taking turns over `asked`, until stop_at; each one's (kind,
    outcome, first, last, detail) added to results. A tab of its own: a session, connections."""
    session, r = uuid.uuid4().hex, 0
    async with httpx.AsyncClient(timeout=args.timeout) as http:
        while time.monotonic() < stop_at:
            kind, make = asked[(k + r) % len(asked)]
            endpoint, data = make(k * 1000 + r)
            got = await ask(http, base, deps[endpoint], data, session, args.timeout, args.fetch,
                            drop=args.abandon and k % 4 == 3 and r % 2 == 1)
            results.append((kind, *got))
            if got[0] in ("queue full", "error"):
                await asyncio.sleep(max(0.0, min(BACKOFF, stop_at - time.monotonic())))
            r += 1


async def run_round(base, deps, asked, n, args):
    """n users for args.seconds. Returns (the outcomes of every request, how many users were
    still busy at the round's last deadline)."""
    results, stop_at = [], time.monotonic() + args.seconds
    tasks = [asyncio.create_task(user(k, base, deps, asked, stop_at, args, results)) for k in range(n)]
    _, busy = await asyncio.wait(tasks, timeout=stop_at + args.timeout + GRACE - time.monotonic())
    for t in busy:
        t.cancel()
    return results, len(busy)


def warm_up(base, deps, asked, args):
    """Each kind of request once, so that no round's times are those of a model's first use."""
    async def each():
        async with httpx.AsyncClient(timeout=args.timeout) as http:
            for _, make in asked:
                endpoint, data = make(0)
                await ask(http, base, deps[endpoint], data, uuid.uuid4().hex, args.timeout, drop=True)

    asyncio.run(each())


def page(url):
    """From the app's /config: the API's base URL, its endpoints by name, the models offered."""
    config = httpx.get(f"{url}config", timeout=60).json()
    deps = {d["api_name"]: d for d in config["dependencies"] if d.get("api_name")}
    models = next(c["props"]["choices"] for c in config["components"] if c["props"].get("elem_id") == "model")
    return url.rstrip("/") + config["api_prefix"], deps, [value for _, value in models]


def busy(cpu_seconds, seconds):
    """The server's CPU use over a round, in % of all the machine's cores."""
    return 100 * cpu_seconds / seconds / (os.cpu_count() or 1)


def pct(values, p):
    values = sorted(v for v in values if v is not None)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


def row(label, results, hung="", stats=None, cpu=""):
    count = {o: [r for r in results if r[1] == o] for o in OUTCOMES}
    firsts, lasts = [r[2] for r in results if r[1] != "queue full"], [r[3] for r in count["served"]]
    memory = f"{stats['resident MB']:>7.0f} {stats['peak MB']:>8.0f}" if stats else f"{'':>7} {'':>8}"
    return (f"{label:>24} {len(count['served']):>7} {len(count['abandoned']):>8} {len(count['queue full']):>6} "
            f"{len(count['error']):>7} {len(count['timed out']):>10} {hung:>5} {pct(firsts, 50):>9.2f}s "
            f"{pct(firsts, 95):>9.2f}s {pct(lasts, 50):>8.2f}s {pct(lasts, 95):>8.2f}s {memory} {cpu:>6}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, nargs="*", default=[1, 4, 16, 64])
    p.add_argument("--seconds", type=float, default=30, help="how long each round of users keeps asking")
    p.add_argument("--timeout", type=float, default=120, help="seconds a request may take before it is cancelled")
    p.add_argument("--model", default="pixelcnn/mnist", help="the model asked (with --mix: first)")
    p.add_argument("--samples", type=int, default=16, help="images per /sample request")
    p.add_argument("--mix", action="store_true", help="/sample of three models, /complete and /score, in turns")
    p.add_argument("--abandon", action="store_true", help="a quarter of the users drop every other request")
    p.add_argument("--no-fetch", dest="fetch", action="store_false", help="do not fetch the pictures")
    args = p.parse_args(argv)
    with running_app() as (proc, url):
        base, deps, models = page(url)
        models = [args.model] + [m for m in MIXED if m in models and m != args.model]
        asked = requests(models, args.samples, args.mix)
        warm_up(base, deps, asked, args)
        print(f"app at {url} (pid {proc.pid}); {', '.join(kind for kind, _ in asked)}; {args.samples} images a "
              f"sample, {args.seconds:g} s per round, {args.timeout:g} s timeout; "
              f"memory at start {process_stats(proc.pid)['resident MB']:.0f} MB\n")
        print(f"{'users':>24} {'served':>7} {'dropped':>8} {'full':>6} {'errors':>7} {'timed out':>10} {'hung':>5} "
              f"{'first p50':>10} {'first p95':>10} {'last p50':>9} {'last p95':>9} {'RSS MB':>7} {'peak MB':>8} "
              f"{'CPU %':>6}")
        for n in args.users:
            cpu, wall = process_stats(proc.pid)["CPU s"], time.monotonic()
            results, hung = asyncio.run(run_round(base, deps, asked, n, args))
            stats = process_stats(proc.pid)
            print(row(str(n), results, hung, stats, f"{busy(stats['CPU s'] - cpu, time.monotonic() - wall):.0f}"))
            for kind, _ in asked if args.mix else ():
                print(row(kind, [r for r in results if r[0] == kind]))
            for e in [r for r in results if r[1] == "error"][:3]:
                print("   error:", str(e[4])[:200])
            print(flush=True)


if __name__ == "__main__":
    main()

"""Soak test: the app on loopback for --minutes under a mix of users on every endpoint and model.

    python scripts/soak.py                          # 10 minutes, 6 users
    python scripts/soak.py --minutes 1 --users 3

Each user, until the time is up, picks a model the app offers and one of: /sample, /complete
and /score through gradio_client, or one of the page's own events, which are not in the API
(the model picker's change, a click on an example, the "What the model sees" tab and a click
on its picture), sent over raw HTTP as the browser sends them. A share of the requests (--bad)
carry bad input, which must be refused with a message (bad seeds, a NaN temperature, an
unknown model, a file that is not an image, a click off the examples), or huge input (a 19 KB
all-white PNG of 16384x1024 pixels, a 4096x4096 drawing), which may be served or refused.
Every wait is bounded: a request is given up after --timeout seconds, a user after its last.

Reported at the start (after a warm-up that loads every model), the middle and the end: the
server's resident memory, threads, open files and Gradio cache folder (GRADIO_TEMP_DIR, a fresh
folder; the app's log goes to a file in the temporary folder), and for each half of the run
the requests served, refused as expected, met by a full queue, timed out or failed otherwise
(unexpected), and the p95 time to the first picture; then a verdict per quantity, the end
against the middle, with the tolerances of RULES.
"""
import argparse
import json
import random
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
from app_server import REPO, folder_stats, process_stats, running_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError, Status
from loadtest import pct
from PIL import Image, ImageDraw

POLL = 0.02  # s between looks at a gradio_client job
KINDS = {"sample": 3, "complete": 2, "score": 2, "model change": 1, "examples select": 1, "see-tab select": 1,
         "see-image select": 1}  # how often each is asked, relatively
API = ("sample", "complete", "score")
PAUSE = 2.0  # s: a user waits up to this long between requests
GRACE = 15  # s beyond the last deadline for the users to return
# quantity: (+1 when more is worse, -1 when less is, relative and absolute slack): the end may be
# that much worse than the middle and still count as flat
RULES = {"resident MB": (+1, 0.10, 0), "threads": (+1, 0.10, 2), "open files": (+1, 0.10, 4),
         "cache files": (+1, 0.10, 20), "cache MB": (+1, 0.10, 0.5), "served": (-1, 0.25, 2),
         "queue full": (+1, 0.50, 5), "timed out": (+1, 0, 0), "unexpected": (+1, 0, 0),
         "p95 first picture s": (+1, 0.25, 1.0)}
GAUGES = ("resident MB", "threads", "open files", "cache files", "cache MB")
COUNTS = ("served", "refused", "queue full", "timed out", "unexpected")


def make_files(folder):
    """The pictures and non-pictures users send: {name: path}."""
    paths = {name: folder / f"{name.replace(' ', '_')}.png"
             for name in ("drawing", "huge drawing", "white 16384x1024", "not an image")}
    for name, size in (("drawing", 280), ("huge drawing", 4096)):
        img = Image.new("RGBA", (size, size), (0, 0, 0, 0))  # the sketchpad's: black on transparent
        ImageDraw.Draw(img).line([(size * .2, size * .2), (size * .8, size * .2), (size * .45, size * .9)],
                                 fill=(0, 0, 0, 255), width=size // 12)
        img.save(paths[name])
    Image.new("L", (16384, 1024), 255).save(paths["white 16384x1024"])  # 19 KB
    paths["not an image"].write_text("this is not a picture")
    return paths


def examples(name):
    """The example pictures of a model's dataset (the app's examples/)."""
    return sorted((REPO / "examples").glob(f"{name.split('/')[1]}_*.png"))


def warm_up(url, base, deps, models, timeout):
    """Each model loaded before the start, so that the first half's times are not those of a cold
    start: per model, a sample (dropped at its first picture), a score of an example (which
    reads the test set's range) and the "What the model sees" tab."""
    client, t0 = Client(url, verbose=False, download_files=False, analytics_enabled=False), time.monotonic()
    with httpx.Client(timeout=timeout) as http:
        for name in models:
            follow(client.submit(name, 1, 1.0, 0, 0, False, api_name="/sample"), time.monotonic(), timeout, drop=True)
            ask_api(client, "score", [name, "Image", None, handle_file(str(examples(name)[0])), 0], timeout)
            ask_page(http, base, uuid.uuid4().hex, deps["see-tab select"], [name], None, timeout)
    client.close()
    print(f"warmed up in {time.monotonic() - t0:.0f} s", flush=True)


def pick(rng, models, files, bad):
    """One request: (what it is, where it goes: an endpoint or a page event, data, event data,
    the outcomes expected), with good input or, when `bad`, bad or huge input."""
    name = rng.choice(models)
    klass = rng.randrange(10) if "_cond/" in name else 0
    kind = rng.choices(list(KINDS), list(KINDS.values()))[0]
    example = handle_file(str(rng.choice(examples(name))))
    drawing = {"background": None, "layers": [handle_file(str(files["drawing"]))],
               "composite": handle_file(str(files["drawing"]))}
    picture = ["Draw", drawing, None] if rng.random() < 0.5 else ["Image", None, example]
    good = {"sample": [name, rng.randint(1, 16), 1.0, rng.randrange(2**32), klass, False],
            "complete": [name, *picture, 10, rng.choice(["The top rows", "What I drew"] if picture[0] == "Draw"
                                                        else ["The top rows"]), 1.0, rng.randrange(2**32), klass],
            "score": [name, *picture, klass], "model change": [name, 14, klass], "examples select": [name],
            "see-tab select": [name], "see-image select": [name]}
    event = {"examples select": {"index": rng.randrange(4), "value": None},
             "see-tab select": {"index": 2, "value": "What the model sees", "selected": True},
             "see-image select": {"index": [rng.randrange(200), rng.randrange(200)], "value": None}}.get(kind)
    if not bad:
        return kind, kind, good[kind], event, {"served"}
    data, expect, route = list(good[kind]), {"refused"}, kind
    if kind in ("model change", "see-tab select") or rng.random() < 0.25:  # only the model is checked by these two
        how, data[0] = "unknown model", "gpt/mnist"
    elif kind == "sample":
        how = rng.choice(["seed -1", "seed 2**64", "NaN temperature"])  # (2.5 is no bad seed: Gradio rounds it)
        if how == "NaN temperature":  # gradio_client cannot send NaN (JSON has none): sent raw, to the queue
            data[2], route = float("nan"), "start click"
        else:
            data[3] = -1 if how == "seed -1" else 2**64
    elif kind in ("complete", "score"):
        how = rng.choice(["not an image", "white 16384x1024", "huge drawing"])
        sent = handle_file(str(files[how]))
        data[1:4] = (["Draw", {"background": None, "layers": [sent], "composite": sent}, None]
                     if how == "huge drawing" else ["Image", None, sent])
        expect = {"refused"} if how == "not an image" else {"served", "refused"}
    elif kind == "examples select":
        how, event = "example 99", {"index": 99, "value": None}
    else:
        how, event = "not a pixel", {"index": ["here", "there"], "value": None}
    return f"{kind}: {how}", route, data, event, expect


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


def ask_api(client, kind, data, timeout):
    """An endpoint through gradio_client: (outcome, time to the first picture, detail)."""
    t0 = time.monotonic()
    try:
        outcome, first, detail = follow(client.submit(*data, api_name=f"/{kind}"), t0, timeout)
    except Exception as e:  # noqa: BLE001
        outcome, first, detail = "error", None, e
    if outcome == "error" and isinstance(detail, QueueError):
        return "queue full", first, detail
    if outcome == "error" and isinstance(detail, AppError) and "verbose error reporting" not in str(detail):
        return "refused", first, detail  # a message for the person (gr.Error), not a server error
    return outcome, first, detail


def ask_page(http, base, session, dep, data, event, timeout):
    """One of the page's events as the browser sends it (Gradio's JS client): a queue=False event
    by POST <api>/run/predict, answered at once; a queued one by POST <api>/queue/join, then its
    messages read from GET <api>/queue/data to its process_completed. (outcome, None, detail)."""
    deadline = time.monotonic() + timeout
    body = json.dumps({"data": data, "event_data": event, "fn_index": dep["id"], "trigger_id": dep["targets"][0][0],
                       "session_hash": session})  # json.dumps: unlike httpx's json=, it writes a NaN
    headers = {"Content-Type": "application/json"}
    try:
        if not dep["queue"]:
            answer = http.post(f"{base}/run/predict", content=body, headers=headers)
            return told(answer.status_code == 200, answer.json())
        joined = http.post(f"{base}/queue/join", content=body, headers=headers)
        if joined.status_code != 200:
            return ("queue full" if joined.status_code == 503 else "error"), None, joined.text[:200]
        with http.stream("GET", f"{base}/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():  # a heartbeat at least every 15 s: the deadline is looked at
                if time.monotonic() > deadline:
                    return "timed out", None, None
                if line.startswith("data:") and (message := json.loads(line[5:]))["msg"] == "process_completed":
                    return told(message["success"], message["output"])
        return "error", None, "the stream ended without the event's result"
    except httpx.TimeoutException:
        return "timed out", None, None
    except (httpx.HTTPError, ValueError) as e:
        return "error", None, e


def told(success, output):
    """What an answer of Gradio's was: served; refused with a message (a gr.Error, shown on
    the page); or an error without one (an exception in the app)."""
    if success:
        return "served", None, None
    message = output.get("error") if isinstance(output, dict) else None
    return ("refused" if message else "error"), None, message or str(output)[:200]


def user(k, url, base, deps, models, files, stop_at, args, results):
    """One user's requests, one at a time with a pause between, until stop_at; each one's
    (start, kind, expected, outcome, time to the first picture, detail) added to results."""
    rng, session = random.Random(k), uuid.uuid4().hex  # a session of its own, as a browser tab has
    try:
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    except Exception as e:  # noqa: BLE001
        results.append((time.monotonic(), "connect", {"served"}, "error", None, e))
        return
    try:
        with httpx.Client(timeout=args.timeout) as http:
            while (t0 := time.monotonic()) < stop_at:
                kind, route, data, event, expect = pick(rng, models, files, rng.random() < args.bad)
                if route in API:
                    outcome, first, detail = ask_api(client, route, data, args.timeout)
                else:
                    outcome, first, detail = ask_page(http, base, session, deps[route], data, event, args.timeout)
                results.append((t0, kind, expect, outcome, first, detail))
                time.sleep(min(rng.uniform(0, PAUSE), max(0.0, stop_at - time.monotonic())))
    finally:
        client.close()


def tally(results):
    """Counts by outcome, and the p95 time to the first picture of good endpoint requests."""
    unexpected = [r for r in results if r[3] in ("served", "refused", "error") and r[3] not in r[2]]
    count = {o: sum(r[3] == o and r[3] in r[2] for r in results) for o in ("served", "refused")}
    count.update({o: sum(r[3] == o for r in results) for o in ("queue full", "timed out")}, unexpected=len(unexpected))
    count["p95 first picture s"] = pct([r[4] for r in results if r[1] in API and r[3] == "served"], 95)
    return count, unexpected


def verdict(name, middle, end):
    """'flat', or 'growing' / 'falling', with the numbers and the tolerance."""
    sign, rel, slack = RULES[name]
    worse = (end - middle) * sign > abs(middle) * rel + slack
    word = ("growing" if sign > 0 else "falling") if worse else "flat"
    return f"{name}: {word} (middle {middle:.4g}, end {end:.4g}; tolerance {rel:.0%} + {slack:g})"


def page(url):
    """From the app's /config: the API's base URL, the page's events by '<elem_id> <event>'
    (e.g. 'model change', each with its fn id and whether it is queued), and the models offered."""
    config = httpx.get(f"{url}config", timeout=60).json()
    elem = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    deps = {f"{elem.get(t)} {event}": d for d in config["dependencies"] for t, event in d["targets"]}
    # a new model runs several events (its streams stopped, what the model is given), and so does a click on
    # Start (made ready, scrolled to, then sampled): the one that does the work, by its API name
    for event, api in [("model change", "choose_model"), ("start click", "sample")]:
        deps[event] = next(d for d in config["dependencies"] if d.get("api_name") == api)
    models = next(c["props"]["choices"] for c in config["components"] if c["props"].get("elem_id") == "model")
    return url.rstrip("/") + config["api_prefix"], deps, [value for _, value in models]


def soak(proc, url, cache, files, args):
    """The users for args.minutes. Returns (the gauges at the start, middle and end, every
    request's outcome, the middle's time, how many users did not come back)."""
    base, deps, models = page(url)
    print(f"app at {url} (pid {proc.pid}); {args.users} users for {args.minutes:g} min on {', '.join(models)}; "
          f"queued page events: {[k for k in KINDS if k in deps and deps[k]['queue']]}", flush=True)
    warm_up(url, base, deps, models, args.timeout)
    results, t_start = [], time.monotonic()
    stop_at, middle = t_start + 60 * args.minutes, t_start + 30 * args.minutes

    def snapshot(when):
        gauges = {**process_stats(proc.pid), **folder_stats(cache)}
        print(f"{when:>6} at {time.monotonic() - t_start:4.0f} s: " + ", ".join(f"{g} {gauges[g]:.0f}" for g in GAUGES),
              flush=True)
        return gauges

    seen = {"start": snapshot("start")}
    threads = [threading.Thread(target=user, args=(k, url, base, deps, models, files, stop_at, args, results),
                                daemon=True) for k in range(args.users)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, middle - time.monotonic()))
    seen["middle"] = snapshot("middle")
    for t in threads:
        t.join(max(0.0, stop_at + args.timeout + GRACE - time.monotonic()))
    seen["end"] = snapshot("end")
    return seen, results, middle, sum(t.is_alive() for t in threads)


def report(seen, results, middle, hung):
    """The table, a verdict per quantity, the unexpected outcomes, and one verdict for all."""
    (first, odd1), (second, odd2) = (tally([r for r in results if (r[0] < middle) == early]) for early in (True, False))
    seen["middle"].update(first)
    seen["end"].update(second)
    print(f"\n{'':22}{'start':>10}{'middle':>10}{'end':>10}   (counts: of the requests begun in each half)")
    for q in (*GAUGES, *COUNTS, "p95 first picture s"):
        print(f"{q:22}" + "".join(f"{seen[w][q]:>10.4g}" if q in seen[w] else f"{'-':>10}" for w in seen))
    lines = [verdict(q, seen["middle"][q], seen["end"][q]) for q in RULES]
    print("", *lines, sep="\n")
    print(f"refused as expected (bad input, a message): {first['refused']} + {second['refused']}, counted apart")
    print("requests:", ", ".join(f"{kind} {n}" for kind, n in sorted(Counter(r[1] for r in results).items())))
    for r in (odd1 + odd2)[:5]:
        print(f"unexpected: {r[1]} -> {r[3]}: {r[5]}"[:300])
    ok = all(": flat" in line for line in lines) and not hung and not odd1 + odd2
    print(f"verdict: {'all flat' if ok else 'NOT all flat'}; {len(results)} requests, {len(odd1 + odd2)} unexpected "
          f"outcomes, {hung} users hung")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--users", type=int, default=6)
    p.add_argument("--bad", type=float, default=0.15, help="the share of requests with bad or huge input")
    p.add_argument("--timeout", type=float, default=120, help="seconds a request may take before it is given up")
    args = p.parse_args(argv)
    log = Path(tempfile.gettempdir()) / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.log"
    print(f"the app's log: {log}")
    with (tempfile.TemporaryDirectory() as tmp, open(log, "w") as stderr,
          running_app(env={"GRADIO_TEMP_DIR": f"{tmp}/cache"}, stderr=stderr) as (proc, url)):
        report(*soak(proc, url, Path(tmp, "cache"), make_files(Path(tmp)), args))


if __name__ == "__main__":
    main()

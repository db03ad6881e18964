"""scripts/loadtest.py: every wait bounded, every request counted. A request against a server
that serves it, refuses it (a full queue, an error) or never answers ends by its deadline or at
once, with its outcome (a stand-in server: httpx's MockTransport); a user stuck past the round is
left behind and counted; and, slow, a round against the real app with a queue too short for its
users ends with every user back and every request counted. scripts/soak.py's follow(), which
watches gradio_client jobs, likewise."""
import asyncio
import dataclasses
import json
import threading
from collections import Counter
from concurrent.futures import Future
from types import SimpleNamespace

import httpx
import pytest
from gradio_client.client import Job
from gradio_client.utils import Communicator, JobStatus, QueueError, Status, create_initial_status_update

from helpers import REPO

DEP = {"id": 3, "targets": [[7, "click"]]}
PICTURE = {"path": "/tmp/a.png", "url": "http://app/gradio_api/file=/tmp/a.png"}


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import loadtest
    import soak

    return SimpleNamespace(loadtest=loadtest, soak=soak)


def server(kind, seen):
    """A stand-in for the app's queue: it serves ('served': a picture streamed, then the end),
    says the queue is full, fails the request ('error'), never answers ('never'), or cannot be
    reached ('refused'); `seen` lists the paths asked."""
    async def forever():
        await asyncio.sleep(3600)
        yield b""

    def handle(request):
        seen.append(request.url.path)
        if kind == "refused":
            raise httpx.ConnectError("connection refused")
        if request.url.path.endswith("/queue/join"):
            return httpx.Response(503 if kind == "queue full" else 200, json={"event_id": "e"})
        if request.url.path.endswith("/queue/data"):
            if kind == "never":
                return httpx.Response(200, content=forever())
            messages = [{"msg": "estimation", "rank": 0}]
            if kind == "served":
                messages += [{"msg": "process_generating", "output": {"data": [PICTURE, None]}},
                             {"msg": "process_completed", "success": True, "output": {"data": [PICTURE, None]}}]
            else:
                messages.append({"msg": "process_completed", "success": False, "output": {"error": "No, not that."}})
            return httpx.Response(200, text="".join(f"data: {json.dumps(m)}\n\n" for m in messages))
        return httpx.Response(200, content=b"\x89PNG")  # a picture, or /cancel

    return httpx.MockTransport(handle)


@pytest.mark.parametrize("kind,outcome", [("served", "served"), ("queue full", "queue full"), ("error", "error"),
                                          ("never", "timed out"), ("refused", "error")])
def test_a_request_ends_by_its_deadline_with_its_outcome(scripts, kind, outcome):
    seen = []

    async def one():
        async with httpx.AsyncClient(transport=server(kind, seen)) as http:
            return await asyncio.wait_for(scripts.loadtest.ask(http, "http://app/gradio_api", DEP, [], "s", 0.5), 30)

    got, first, last, detail = asyncio.run(one())
    assert got == outcome
    assert (first is not None and last >= first) if kind == "served" else last is None
    if kind == "served":
        assert "/gradio_api/file=/tmp/a.png" in seen  # the picture fetched, as the page shows it
    if kind == "error":
        assert detail == "No, not that."
    if kind == "never":
        assert seen[-1].endswith("/cancel")  # given up as Stop gives up: the server told


def test_a_dropped_request_is_cancelled_after_its_first_picture(scripts):
    seen = []

    async def one():
        async with httpx.AsyncClient(transport=server("served", seen)) as http:
            return await scripts.loadtest.ask(http, "http://app/gradio_api", DEP, [], "s", 5, drop=True)

    assert asyncio.run(one())[0] == "abandoned" and seen[-1].endswith("/cancel")


def test_a_user_stuck_past_the_round_is_left_behind_and_counted(scripts, monkeypatch):
    async def stuck(*args, **kwargs):
        await asyncio.sleep(3600)

    monkeypatch.setattr(scripts.loadtest, "ask", stuck)
    monkeypatch.setattr(scripts.loadtest, "GRACE", 0.1)
    args = SimpleNamespace(seconds=2, timeout=0.5, fetch=False, abandon=False)  # time for both to start asking
    asked = scripts.loadtest.requests(["pixelcnn/mnist"], 4, mix=False)
    results, hung = asyncio.run(scripts.loadtest.run_round("http://app", {"sample": DEP}, asked, 2, args))
    assert hung == 2 and results == []


@pytest.mark.slow
def test_a_round_against_the_app_with_a_full_queue_ends_every_user_and_counts_every_request(scripts, tiny_weights):
    """Eight users for 5 s against the app with room for two running and two waiting: the others
    meet a full queue, again and again; every user comes back, every request is counted."""
    loadtest = scripts.loadtest
    args = SimpleNamespace(seconds=5, timeout=60, fetch=True, abandon=False)
    with loadtest.running_app(queue_size=2) as (_, url):
        base, deps, models = loadtest.page(url)
        results, hung = asyncio.run(loadtest.run_round(base, deps, loadtest.requests(models, 4, False), 8, args))
    outcomes = Counter(r[1] for r in results)
    assert hung == 0 and outcomes["served"] >= 2 and outcomes["queue full"] >= 1
    assert outcomes["timed out"] == outcomes["error"] == 0, results


# ---------------------------------------------------------------- soak.py's gradio_client jobs

def job(kind):
    """A gradio_client Job as Client.submit makes it, whose server the test plays: it is 'served'
    (a picture, then finished), or 'never' answers, or the request 'fails' before any message
    (a refused connection), or the queue is full: the 503 that Client.send_data raises as a
    QueueError ('queue full'), or the queue_full message of the older protocol ('queue full
    status'), which sets the status first."""
    future, talk = Future(), Communicator(threading.Lock(), JobStatus(), lambda *a: a, reset_url="")
    if kind == "served":
        talk.job.outputs.append(("grid.png", None))
        talk.job.latest_status = dataclasses.replace(talk.job.latest_status, code=Status.FINISHED)
        future.set_result(("grid.png", None))
    elif kind == "fails":
        future.set_exception(ConnectionRefusedError("connection refused"))
    elif kind == "queue full":
        future.set_exception(QueueError("Queue is full! Please try again."))
    elif kind == "queue full status":
        talk.job.latest_status = dataclasses.replace(create_initial_status_update(), code=Status.QUEUE_FULL)
    return Job(future, communicator=talk, verbose=False)


@pytest.mark.parametrize("kind,outcome", [("served", "served"), ("never", "timed out"), ("fails", "error"),
                                          ("queue full", "error"), ("queue full status", "error")])
def test_the_soak_follows_a_job_to_its_deadline_and_no_further(scripts, kind, outcome):
    j = job(kind)
    got, _, detail = scripts.soak.follow(j, scripts.soak.time.monotonic(), 0.5)
    assert got == outcome
    if kind.startswith("queue full"):
        assert isinstance(detail, QueueError)
    assert j.done() or j.status().code == Status.CANCELLED  # none left in the queue


def test_the_soak_sends_page_events_to_the_handlers_that_do_the_work(scripts, app_url):
    """A click on Start runs three events (made ready, scrolled to, sampled), a new model several:
    the soak sends its page events to the one that samples and the one that offers the model's
    controls, so a NaN temperature is refused with a message, and a model's controls come back."""
    base, deps, models = scripts.soak.page(app_url)
    sample = [models[0], 1, float("nan"), 0, 0, False]
    with httpx.Client(timeout=60) as http:
        nan = scripts.soak.ask_page(http, base, "soak-1", deps["start click"], sample, None, 60)
        change = scripts.soak.ask_page(http, base, "soak-2", deps["model change"], [models[0], 10, 0], None, 60)
    assert nan[0] == "refused" and "temperature" in nan[2], nan
    assert change[0] == "served", change

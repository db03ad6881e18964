"""scripts/loadtest.py: every wait bounded. A user against gradio_client jobs that never finish,
fail before the server says anything, or meet a full queue ends each request by its deadline or
at once and counts it; a user stuck past the round's end is left behind and counted; and, slow,
a round against the real app with a queue too short for its users ends with every user back
and every request counted."""
import dataclasses
import threading
from collections import Counter
from concurrent.futures import Future
from types import SimpleNamespace

import pytest
from gradio_client import Client
from gradio_client.client import Job
from gradio_client.utils import Communicator, JobStatus, QueueError, Status, create_initial_status_update

from helpers import REPO

HANG = 60  # s: a user not back by then waits for ever (the old loadtest did)


@pytest.fixture
def loadtest(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import loadtest

    return loadtest


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


class StubClient:
    """Client.submit's stand-in: every job it hands out is job(kind); `jobs` lists them."""

    def __init__(self, kind):
        self.kind, self.jobs = kind, []

    def submit(self, *args, api_name):
        self.jobs.append(job(self.kind))
        return self.jobs[-1]


@pytest.mark.parametrize("kind,outcome", [("served", "served"), ("never", "timed out"), ("fails", "error"),
                                          ("queue full", "error"), ("queue full status", "error")])
def test_a_user_ends_every_request_by_its_deadline_and_counts_it(loadtest, kind, outcome):
    client, results = StubClient(kind), []
    stop_at, timeout = loadtest.time.monotonic() + 0.3, 1.0  # asks for 0.3 s; a request may take 1 s
    user = threading.Thread(target=loadtest.user, args=(client, "pixelcnn/mnist", 4, 0, stop_at, timeout, results),
                            daemon=True)
    user.start()
    user.join(HANG)
    assert not user.is_alive(), f"the user still waits on a job that is '{kind}'"
    assert len(results) == len(client.jobs) >= 1  # every request counted, once
    assert {r[0] for r in results} == {outcome}
    if kind.startswith("queue full"):
        assert all(isinstance(r[2], QueueError) for r in results)
    assert all(j.done() or j.status().code == Status.CANCELLED for j in client.jobs)  # none left in the queue


def test_a_user_stuck_past_the_round_is_left_behind_and_counted(loadtest, monkeypatch):
    """A client that never returns from submit (a connection that hangs): the round still ends."""
    monkeypatch.setattr(loadtest, "GRACE", 0.1)
    let_go = threading.Event()

    class Stuck:
        def submit(self, *args, api_name):
            let_go.wait(HANG)
            return job("served")

    args = SimpleNamespace(seconds=0.2, timeout=0.5, model="pixelcnn/mnist", samples=4, abandon=False)
    try:
        _, hung = loadtest.run_round("http://stub/", 2, args, connect=lambda url: Stuck())
        assert hung == 2
    finally:
        let_go.set()


@pytest.mark.slow
def test_a_round_against_the_app_with_a_full_queue_ends_every_user_and_counts_every_request(loadtest, tiny_weights):
    """Eight users for 5 s against the app with room for two running and two waiting: the other
    four meet a full queue, again and again; every user comes back and every request sent is
    counted, served or refused."""
    sent = []

    def connect(url):
        client = Client(url, verbose=False)
        submit = client.submit
        client.submit = lambda *args, **kwargs: sent.append(args) or submit(*args, **kwargs)
        return client

    args = SimpleNamespace(seconds=5, timeout=60, model="pixelcnn/mnist", samples=4, abandon=False)
    with loadtest.running_app(queue_size=2) as (_, url):
        results, hung = loadtest.run_round(url, 8, args, connect)
    assert hung == 0
    assert len(results) == len(sent)
    outcomes = Counter(r[0] for r in results)
    assert outcomes["served"] >= 2 and outcomes["timed out"] == 0
    assert any(isinstance(r[2], QueueError) for r in results if r[0] == "error")

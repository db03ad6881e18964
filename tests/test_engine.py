"""The engine that runs the app's samplers (pixelcnn/engine.py): round robin, exact, closed when
cancelled, its failures raised to the viewer, and what a viewer sees paced apart; with worker
threads and with worker processes (as the app is served)."""
import asyncio
import os
import pickle
import threading
import time
from pathlib import Path

import pytest
import torch

from helpers import make_tiny
from pixelcnn import engine, studio


@pytest.fixture
def processes():
    """An engine of two worker processes, closed afterwards."""
    e = engine.Engine(workers=2, processes=True)
    yield e
    e.close()


def until_ended(e, job, seconds=30):
    """`job`'s values as a viewer sees them, unpaced."""
    async def watch():
        return [v async for v in e.shown(job, 0.001)]
    return asyncio.run(asyncio.wait_for(watch(), seconds))


def counting(name, log, steps, closed=None):
    try:
        for k in range(steps):
            log.append(name)
            yield k
    finally:
        if closed is not None:
            closed.set()


def held(gate):
    gate.wait()
    yield


def test_jobs_take_turns():
    """On one worker, two jobs submitted together alternate a step each: the second's first
    step comes long before the first's last."""
    log, gate = [], threading.Event()
    e = engine.Engine(workers=1)
    blocker = e.submit(held, gate)  # holds the one worker until both jobs are in
    a, b = e.submit(counting, "a", log, 5), e.submit(counting, "b", log, 5)
    gate.set()
    until_ended(e, a), until_ended(e, b), until_ended(e, blocker)
    assert log == ["a", "b"] * 5


@pytest.mark.parametrize("model,dataset", [("pixelcnn", "shapes"), ("gated", "color_shapes")])
def test_the_engine_draws_what_the_sampler_draws_alone(model, dataset):
    """Three samplers stepped on two workers, round robin: each draws exactly its images alone."""
    net = make_tiny(model, dataset)
    alone = [net.sample(3, seed=s) for s in range(3)]
    e = engine.Engine(workers=2)
    jobs = [e.submit(net.sample_stream, 3, seed=s, every=7) for s in range(3)]
    for job, expected in zip(jobs, alone):
        assert torch.equal(until_ended(e, job)[-1].images, expected)


def test_a_viewer_sees_the_last_value_whatever_its_pace():
    e = engine.Engine(workers=1)
    seen = until_ended(e, e.submit(iter, range(1000)))
    assert seen[-1] == 999 and seen == sorted(seen)


def test_a_cancelled_job_is_closed_at_its_next_step():
    log, closed = [], threading.Event()
    e = engine.Engine(workers=1)
    job = e.submit(counting, "x", log, 10**6, closed)
    while job.count == 0:
        time.sleep(0.001)
    job.cancel()
    assert closed.wait(10) and job.ended and len(log) < 10**6
    gate = threading.Event()
    e.submit(held, gate)
    never = e.submit(counting, "y", log, 10)
    never.cancel()  # before its first step: it never runs
    gate.set()
    until_ended(e, never)
    assert "y" not in log


def test_a_viewer_gone_cancels_its_job():
    """Leaving `shown` early (Stop, a closed tab) closes the generator on the engine."""
    closed = threading.Event()
    e = engine.Engine(workers=1)
    job = e.submit(counting, "x", [], 10**6, closed)

    async def first_only():
        async for _ in e.shown(job, 0.001):
            break

    asyncio.run(first_only())
    assert closed.wait(10) and job.ended


def test_a_failure_reaches_the_viewer():
    def fails():
        yield 1
        raise ValueError("refused")

    e = engine.Engine(workers=1)
    with pytest.raises(ValueError, match="refused"):
        until_ended(e, e.submit(fails))


def test_a_crowd_is_shown_fewer_pictures_each():
    """With a budget of 10 a second, one viewer is shown one every 0.1 s at most, and forty
    viewers one every 4 s each: together never more than the budget."""
    e = engine.Engine(workers=1, shows=10)
    assert e.pace(0.08) == 0.08  # no viewer yet
    e.viewers = 1
    assert e.pace(0.08) == 0.1
    e.viewers = 40
    assert e.pace(0.08) == 4.0


def test_a_viewer_sees_every_value_kept_in_order_however_fast_they_came():
    e = engine.Engine(workers=1)
    assert until_ended(e, e.submit(iter, range(100), keep=100)) == list(range(100))
    behind = until_ended(e, e.submit(iter, range(100), keep=10))  # the oldest dropped, the last kept
    assert behind == sorted(behind) and behind[-10:] == list(range(90, 100))


# ---------------------------------------------------------------- worker processes
# (their jobs: module-level functions, which a worker imports by name)

def tiny_samples(model, dataset, seed):
    yield from make_tiny(model, dataset).sample_stream(3, seed=seed, every=7)


def counting_till_closed(path):
    try:
        yield from range(10**9)
    finally:
        Path(path).write_text("closed")


def saying(n, tell):
    tell("warning", f"said {n}")
    yield n


def refusing():
    yield 1
    raise studio.Refused("No, not that.", title="Bad picture")


def failing_strangely():
    yield 1
    raise ValueError(lambda: None)  # which cannot be pickled


def dying():
    os._exit(3)
    yield


@pytest.mark.parametrize("model,dataset", [("pixelcnn", "shapes"), ("gated", "color_shapes")])
def test_worker_processes_draw_what_the_sampler_draws_alone(processes, model, dataset):
    net = make_tiny(model, dataset)
    jobs = [processes.submit(tiny_samples, model, dataset, s) for s in range(3)]
    for s, job in enumerate(jobs):
        assert torch.equal(until_ended(processes, job)[-1].images, net.sample(3, seed=s))


def test_each_worker_process_runs_what_is_asked_everywhere(processes):
    pids = processes.everywhere(os.getpid)
    assert len(set(pids)) == 2 and os.getpid() not in pids


def test_a_cancelled_job_is_closed_in_its_worker_process(processes, tmp_path):
    job = processes.submit(counting_till_closed, tmp_path / "closed")
    while job.count == 0:
        time.sleep(0.001)
    job.cancel()
    deadline = time.monotonic() + 10
    while not job.ended and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.ended and (tmp_path / "closed").read_text() == "closed"


def test_a_worker_process_sends_asides_and_refusals_whole(processes):
    job = processes.submit(saying, 7, tell=True)
    assert until_ended(processes, job) == [7] and job.said == [("warning", "said 7")]
    with pytest.raises(studio.Refused, match="No, not that.") as refused:
        until_ended(processes, processes.submit(refusing))
    assert refused.value.title == "Bad picture"
    with pytest.raises(RuntimeError, match="ValueError"):  # named, where it could not travel whole
        until_ended(processes, processes.submit(failing_strangely))


def test_a_job_that_cannot_travel_is_refused_and_the_workers_go_on(processes):
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        processes.submit(saying, lambda: None, tell=True)
    assert [until_ended(processes, processes.submit(saying, k, tell=True)) for k in range(2)] == [[0], [1]]


def test_a_worker_process_that_dies_fails_its_jobs_and_is_replaced(processes):
    with pytest.raises(RuntimeError, match="exit status 3"):
        until_ended(processes, processes.submit(dying))
    assert [until_ended(processes, processes.submit(saying, k, tell=True)) for k in range(4)] == [[0], [1], [2], [3]]

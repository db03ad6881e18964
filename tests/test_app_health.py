"""A server that stays healthy over days (issue #23): a burst of the page's own events runs on a
few threads, and the files the app writes (every streamed frame) are deleted with the folders
Gradio makes for them. (Memory: tests/test_server_memory.py; the long run: scripts/soak.py.)"""
import asyncio
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

import app
from pixelcnn import studio

gradio_client = pytest.importorskip("gradio_client")

WAIT = 60


def fn_ids(url):
    return {d["api_name"]: d["id"] for d in httpx.get(f"{url}config", timeout=WAIT).json()["dependencies"]}


def test_a_burst_of_page_events_runs_on_a_few_threads(app_url, monkeypatch):
    """Forty "choose a model" events at once, sent as the page sends an unqueued event: each is
    answered, and no more of them run at once than the app has threads for its handlers."""
    real, lock, now = studio.controls, threading.Lock(), {"running": 0, "most": 0}

    def slow_controls(name):  # long enough that forty calls overlap if nothing holds them back
        with lock:
            now["running"] += 1
            now["most"] = max(now["most"], now["running"])
        time.sleep(0.3)
        with lock:
            now["running"] -= 1
        return real(name)

    monkeypatch.setattr(studio, "controls", slow_controls)
    body = {"data": ["pixelcnn/shapes", 10, 0], "fn_index": fn_ids(app_url)["choose_model"],
            "session_hash": "burst"}  # the model, and the rows and class chosen before
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda _: httpx.post(f"{app_url}gradio_api/run/predict", json=body, timeout=WAIT),
                                range(40)))
    assert [a.status_code for a in answers] == [200] * 40
    assert 1 < now["most"] <= app.MAX_THREADS


def test_sweep_deletes_what_is_untouched_for_the_age(tmp_path):
    """Files and empty folders untouched for the age go, the rest stay: young ones, what the page
    starts with, a folder being filled; and Gradio's note of the files gone is dropped."""
    def made(path, age, folder=False):
        path.mkdir() if folder else path.parent.mkdir(exist_ok=True) or path.write_bytes(b"png")
        os.utime(path, (time.time() - age, time.time() - age))
        return str(path)

    old, young, kept = (made(tmp_path / name / "image.png", age) for name, age in (("a", 100), ("b", 1), ("c", 100)))
    made(tmp_path / "empty", 100, folder=True), made(tmp_path / "new", 1, folder=True)
    demo = SimpleNamespace(blocks={0: SimpleNamespace(keep_in_cache={kept})}, temp_file_sets=[{old, young}])
    app.sweep(demo, tmp_path, age=50)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "a", "b", "b/image.png", "c", "c/image.png", "new"]  # "a" emptied now, so touched: the next sweep's
    assert demo.temp_file_sets == [{young}]


@pytest.fixture
def short_lived_cache(tiny_weights, monkeypatch):
    """A second app on a free port whose files live about a second (the first app's stay)."""
    monkeypatch.setattr(app, "CACHE_SWEEP", (1, 1))
    demo, url = app.serve(port=0, quiet=True)
    yield url
    demo.close()


def frames_of_a_sample(url, seed):
    """The files on the server of every picture streamed for one /sample, as its event stream names them."""
    with httpx.Client(base_url=f"{url}gradio_api/", timeout=WAIT) as http:
        asked = http.post("call/sample", json={"data": ["pixelcnn/shapes", 4, 1.0, seed, 0, False]})
        event_id = asked.json()["event_id"]
        with http.stream("GET", f"call/sample/{event_id}") as lines:
            return {Path(m) for m in re.findall(r'"path": ?"([^"]+)"', "\n".join(lines.iter_lines()))}


def test_streamed_frames_are_deleted_with_their_folders(short_lived_cache, unpaced, monkeypatch):
    """Every frame of a sample is a file in Gradio's cache: a minute's requests once left
    thousands. Here, from three samples at once (Gradio's own delete_cache stops when a file
    is added while it looks), they are gone, folders and all, a few seconds after they were sent."""
    monkeypatch.setattr(studio, "FRAMES", 6)
    with ThreadPoolExecutor(3) as pool:
        written = set().union(*pool.map(frames_of_a_sample, [short_lived_cache] * 3, range(3)))
    assert len(written) >= 3 and all(p.is_relative_to(app.uploads()) for p in written)  # the last of each, at least
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(p.parent.exists() for p in written):
        time.sleep(0.5)
    assert not [p for p in written if p.exists()]
    assert not [p.parent for p in written if p.parent.exists()]


def test_the_examples_are_served_from_where_they_are(app_url):
    """Picking an example sends its own file: nothing is copied to the cache, so nothing there
    to delete or to lose while the page still shows it."""
    answer = httpx.post(f"{app_url}gradio_api/run/predict", timeout=WAIT, json={
        "data": ["pixelcnn/mnist"], "fn_index": fn_ids(app_url)["pick_example"], "session_hash": "examples",
        "event_data": {"index": 0, "value": None}})
    picked = answer.raise_for_status().json()["data"][0]
    assert Path(picked["path"]).parent == studio.EXAMPLES
    assert httpx.get(picked["url"], timeout=WAIT).status_code == 200


def test_stop_forgets_streams_armed_that_never_ran(monkeypatch):
    """Start arms its stream's Stop before the stream is queued; a stream that never runs (a
    full queue, a tab closed at once) leaves its Run behind, dropped by a later Start after
    app.UNCLAIMED seconds. A stream that ran keeps its own (it deletes it as it ends)."""
    monkeypatch.setattr(app, "STOPS", {})
    arm = app.arm("sample")
    asyncio.run(arm(SimpleNamespace(session_hash="gone")))
    asyncio.run(arm(SimpleNamespace(session_hash="running")))
    app.STOPS["running", "sample"].claimed = True
    asyncio.run(arm(SimpleNamespace(session_hash="new")))
    assert len(app.STOPS) == 3  # none old yet
    for run in app.STOPS.values():
        run.made -= app.UNCLAIMED + 1
    asyncio.run(arm(SimpleNamespace(session_hash="newer")))
    assert set(app.STOPS) == {("running", "sample"), ("newer", "sample")}

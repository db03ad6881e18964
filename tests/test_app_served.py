"""The app as it is served (`python app.py`, its samplers in worker processes, issue #15), with
the shipped weights: requests drawn at once, interleaved on the workers, draw exactly what each
draws alone; Stop frees the workers at once."""
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import REPO
from pixelcnn import studio

gradio_client = pytest.importorskip("gradio_client")
sys.path.insert(0, str(REPO / "scripts"))
from app_server import process_stats, running_app  # noqa: E402

pytestmark = pytest.mark.slow
WAIT = 120


@pytest.fixture(scope="module")
def served(monkeypatch_module):
    """(the app's process, its URL), serving weights/."""
    monkeypatch_module.delenv("PIXELCNN_WEIGHTS", raising=False)
    with running_app() as (proc, url):
        yield proc, url


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def workers_cpu(proc):
    """CPU seconds used so far by the app's worker processes."""
    return process_stats(proc.pid)["CPU s"] - process_stats(proc.pid, children=False)["CPU s"]


def test_requests_at_once_draw_what_each_draws_alone(served, monkeypatch):
    _, url = served
    seeds = [3, 1, 4, 1, 5]

    def ask(seed):
        return gradio_client.Client(url, verbose=False).predict("pixelcnn/mnist", 16, 1.0, seed, 0, False,
                                                                api_name="/sample")[0]

    with ThreadPoolExecutor(len(seeds)) as pool:
        got = list(pool.map(ask, seeds))
    monkeypatch.setattr(studio, "loaded", studio.loaded.__wrapped__)  # this process's own, uncached
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers draw: one thread each
    try:
        for seed, path in zip(seeds, got):
            *_, (alone, _) = studio.sample("pixelcnn/mnist", 16, 1.0, seed)
            assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), np.asarray(alone.image())), seed
    finally:
        torch.set_num_threads(threads)


def test_stop_frees_the_workers_at_once(served):
    """Twelve long requests (16 colour images each, about ten seconds of work for the two cores
    together), stopped after their first picture: the workers, busy till then, do nothing more."""
    proc, url = served
    model = next(m for m in ("gated/color_mnist", "pixelrcnn_ar/color_mnist", "gated/mnist")
                 if Path(REPO / "weights" / f"{m.replace('/', '_')}.safetensors").exists())
    clients = [gradio_client.Client(url, verbose=False) for _ in range(12)]
    clients[0].predict(model, 1, 1.0, 0, 0, False, api_name="/sample")  # loaded on one worker at least
    jobs = [c.submit(model, 16, 1.0, k, 0, False, api_name="/sample") for k, c in enumerate(clients)]
    deadline = time.monotonic() + WAIT
    while not all(j.outputs() for j in jobs) and time.monotonic() < deadline:
        time.sleep(0.05)
    busy = workers_cpu(proc)
    time.sleep(1.0)
    busy = workers_cpu(proc) - busy
    for j in jobs:
        j.cancel()
    time.sleep(1.0)  # the cancel reaches the workers, which close the samplers at their next step
    idle = workers_cpu(proc)
    time.sleep(2.0)
    idle = workers_cpu(proc) - idle
    # at work, two cores' worth (1 s a second) when nothing else runs; after Stop, a clock tick at most
    assert busy > 0.1 and idle <= 0.02, f"workers' CPU: {busy:.2f} s in 1 s at work, {idle:.2f} s in 2 s after Stop"

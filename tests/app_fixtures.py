"""Fixtures of the app tests: tiny weights for every dataset, the app served on a free loopback
port (app.serve, as scripts/ start it), tiny models in place of studio's, no pacing, a spy on the
samplers it starts, and hostile files (FIFOs that let go of their readers, PNGs whose header
lies). A pytest plugin (conftest.py's pytest_plugins), so test modules ask for them by name
without importing them."""
import os
import struct
import tempfile
import uuid
import zlib
from pathlib import Path

import pytest

# before anything imports gradio or huggingface_hub: no analytics threads, no Hub calls
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
# the app in this process runs its samplers on threads of this process: those the fixtures patch
# (tiny models, a spy); the app as served runs them in worker processes (tests/test_engine.py)
os.environ["PIXELCNN_WORKERS"] = "threads"
os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / "pixelcnn-tests-gradio"))

TINY = ["--set", "filters=8", "layers=1", "--max-steps", "10", "--epochs", "1", "--batch-size", "32",
        "--train-limit", "320", "--test-limit", "64", "--threads", "1", "--samples", "0", "--device", "cpu"]
CHROMIUM = "/usr/bin/chromium"  # Debian's; never `playwright install`
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAIRS = [("pixelcnn", "mnist"), ("pixelcnn", "shapes"), ("pixelrcnn", "color_shapes"), ("pixelrcnn", "color_mnist"),
         ("gated", "mnist"), ("gated_cond", "mnist")]


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A weights folder, set as $PIXELCNN_WEIGHTS, with a tiny model for each dataset trained
    a few steps by train.py (MNIST ones left untrained where the MNIST files are absent)."""
    out = make_weights(tmp_path_factory.mktemp("weights"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIXELCNN_WEIGHTS", str(out))
        mp.delenv("PIXELCNN_HUB_REPO", raising=False)
        yield out


def make_weights(out):
    import pixelcnn
    import train
    from pixelcnn import datasets, weights

    mnist = datasets.has_mnist()
    for model, dataset in PAIRS:
        if "mnist" in dataset and not mnist:
            weights.save(pixelcnn.build(model, dataset, filters=8, layers=1), weights.weights_path(model, dataset, out))
        else:
            train.main(["--model", model, "--dataset", dataset, "--out", str(out),
                        "--checkpoint-dir", str(out / "checkpoints"), *TINY])
    return out


@pytest.fixture(scope="session")
def app_url(tiny_weights):
    """The app launched in this process as `python app.py --port 0` launches it."""
    import app

    demo, url = app.serve(port=0, quiet=True)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser():
    """Chromium, through Playwright's sync API (the tests using it skip where either is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):
    """The app in a new desktop-sized tab (1280x1000), loaded."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(app_url)
    page.locator("#start").wait_for()
    yield page
    page.close()


@pytest.fixture
def fresh_caches():
    """No model cached by one test (or by the app tests) is seen by another."""
    from pixelcnn import studio

    caches = (studio.loaded, studio.range_on_test_images, studio.seeing_model)
    for c in caches:
        c.cache_clear()
    yield
    for c in caches:
        c.cache_clear()


@pytest.fixture
def tiny_models(monkeypatch, fresh_caches):
    """studio's models, in this process, are tiny untrained ones, whatever the weights on disk;
    no pacing. Returns studio.loaded, which gives them."""
    from helpers import make_tiny
    from pixelcnn import studio

    made = {}
    monkeypatch.setattr(studio, "loaded", lambda m, d: made.setdefault((m, d), make_tiny(m, d)))
    monkeypatch.setattr(studio, "FRAME_SECONDS", 0.0)
    return studio.loaded


@pytest.fixture
def unpaced(monkeypatch):
    """Only the finished picture, at once, for tests not about watching it being drawn."""
    from pixelcnn import studio

    monkeypatch.setattr(studio, "FRAMES", 1)
    monkeypatch.setattr(studio, "FRAME_SECONDS", 0.0)


@pytest.fixture
def sampler_spy(monkeypatch):
    """Watch every sampler the app starts: progress reports seen, and whether it ran to
    its end or was closed (Stop, or the client going away). Each report comes 0.05 s after
    the last, at the earliest: a tiny model would otherwise finish before a person can stop it."""
    import time

    import pixelcnn.sampling

    real, state = pixelcnn.sampling.sample_stream, {"steps": 0, "closed": False, "finished": False}

    def spy(*args, **kwargs):
        try:
            for progress in real(*args, **kwargs):
                time.sleep(0.05)
                state["steps"] += 1
                yield progress
            state["finished"] = True
        finally:
            state["closed"] = True

    monkeypatch.setattr(pixelcnn.sampling, "sample_stream", spy)
    return state


@pytest.fixture
def fifos():
    """make(folder): a new FIFO there (a path). Afterwards, any reader stuck opening or reading
    one (code that opens what it should not) is let go, and the FIFOs are removed."""
    made = []

    def make(folder):
        folder.mkdir(parents=True, exist_ok=True)
        made.append(folder / f"{uuid.uuid4().hex}.png")
        os.mkfifo(made[-1])
        return made[-1]

    yield make
    for path in made:
        writer = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # never blocks; wakes readers blocked in open()
        os.unlink(path)
        os.close(writer)  # readers now read the end of the file


@pytest.fixture
def png_claiming():
    """write(path, width, height): a PNG of a few bytes whose header claims width x height
    one-bit pixels (a decompression bomb's header); returns the path."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def write(path, width, height):
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                         + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
        return path

    return write

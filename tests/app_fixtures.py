"""Fixtures of the app tests: tiny weights for every dataset, the app served on a free loopback
port (app.serve, as scripts/ start it), and a spy on the samplers it starts. A pytest plugin
(conftest.py's pytest_plugins), so test modules ask for them by name without importing them."""
import os
import tempfile
from pathlib import Path

import pytest

# before anything imports gradio or huggingface_hub: no analytics threads, no Hub calls
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / "pixelcnn-tests-gradio"))

TINY = ["--set", "filters=8", "layers=1", "--max-steps", "10", "--epochs", "1", "--batch-size", "32",
        "--train-limit", "320", "--test-limit", "64", "--threads", "1", "--samples", "0", "--device", "cpu"]
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


@pytest.fixture
def sampler_spy(monkeypatch):
    """Watch every sampler the app starts: progress reports seen, and whether it ran to
    its end or was closed (Stop, or the client going away)."""
    import pixelcnn.sampling

    real, state = pixelcnn.sampling.sample_stream, {"steps": 0, "closed": False, "finished": False}

    def spy(*args, **kwargs):
        try:
            for progress in real(*args, **kwargs):
                state["steps"] += 1
                yield progress
            state["finished"] = True
        finally:
            state["closed"] = True

    monkeypatch.setattr(pixelcnn.sampling, "sample_stream", spy)
    return state

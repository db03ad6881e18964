"""A server that stays healthy over days (issue #23): after a run of bad and huge requests, the
app's memory goes back to what it was. The app runs as `python app.py --port 0` in a process of
its own (scripts/app_server.py), so that its resident memory, and its worker processes', is its
own."""
import sys
import time

import pytest
from PIL import Image, ImageDraw

from helpers import REPO

gradio_client = pytest.importorskip("gradio_client")
sys.path.insert(0, str(REPO / "scripts"))
from app_server import process_stats, running_app  # noqa: E402

pytestmark = pytest.mark.slow
ROUNDS = 5
SETTLE = 5  # seconds memory is given to come back once the requests are answered


def resident_mb(pid):
    """The app's resident memory (VmRSS), its worker processes' included, in MB."""
    return process_stats(pid)["resident MB"]


def huge_pngs(folder):
    """(all white, with a black rectangle): 16384x1024 pixels, about 19 KB each, within the limits."""
    white = Image.new("L", (16384, 1024), 255)
    white.save(folder / "white.png", optimize=True)
    ImageDraw.Draw(white).rectangle((4000, 200, 9000, 800), fill=0)
    white.save(folder / "marked.png", optimize=True)
    return str(folder / "white.png"), str(folder / "marked.png")


def test_memory_comes_back_after_bad_and_huge_requests(tiny_weights, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    white, marked = huge_pngs(tmp_path)
    image = ("pixelcnn/mnist", "Image", None)
    drawing = {"background": None, "layers": [handle_file(marked)], "composite": handle_file(marked)}
    requests = [("/score", (*image, handle_file(white))),  # refused: the image is blank
                ("/score", (*image, handle_file(marked))),
                ("/score", ("pixelcnn/mnist", "Draw", drawing, None)),
                ("/complete", (*image, handle_file(white), 14, "The top rows", 1.0, 0)),  # refused
                ("/complete", ("pixelcnn/mnist", "Draw", drawing, None, 14, "The top rows", 1.0, 0))]
    with running_app() as (proc, url):
        client = Client(url, verbose=False)
        example = handle_file(str(REPO / "examples" / "mnist_7.png"))
        client.predict(*image, example, api_name="/score")  # warm-up: the model loaded, the test images scored
        baseline = resident_mb(proc.pid)
        for _ in range(ROUNDS):
            for api_name, args in requests:
                try:
                    client.predict(*args, api_name=api_name)
                except AppError:  # a refusal, as the page shows it
                    pass
        peak, now, settled = resident_mb(proc.pid), resident_mb(proc.pid), time.monotonic() + SETTLE
        while now > 1.1 * baseline and time.monotonic() < settled:
            time.sleep(0.25)
            now = resident_mb(proc.pid)
    said = f"resident memory {baseline:.0f} MB before, {peak:.0f} MB after, {now:.0f} MB settled"
    print(said)
    assert now <= 1.1 * baseline, said

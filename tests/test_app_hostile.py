"""Hostile input to the running app (issue #21), sent through gradio_client and through raw HTTP:
paths on the server that no one uploaded, a FIFO, huge and non-image files, and calls that would
skip the queue. Each is refused at once with a message, and the server keeps serving others."""
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

WAIT = 60  # seconds: an answer later than this means a worker is held hostage (a failure, not a hang)
NOT_UPLOADED = "not uploaded to this app"
MODEL = "pixelcnn/mnist"


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def args_of(endpoint, source, drawing, image):
    """Every input of /complete or /score (raw HTTP sends them all)."""
    if endpoint == "complete":
        return [MODEL, source, drawing, image, 14, "The top rows", 1.0, 0, 0, None]
    return [MODEL, source, drawing, image, 0]


def through_client(client, endpoint, args):
    """("complete" | "error", the last output or the error's message) from gradio_client."""
    job = client.submit(*args, api_name=f"/{endpoint}")
    try:
        return "complete", job.result(timeout=WAIT)
    except AppError as e:
        return "error", str(e)


def through_http(url, endpoint, args):
    """("complete" | "error", the last data line) from POST /gradio_api/call/<endpoint> and its
    event stream: a client of the queue with nothing but HTTP."""
    with httpx.Client(base_url=f"{url}gradio_api/", timeout=WAIT) as http:
        event_id = http.post(f"call/{endpoint}", json={"data": args}).raise_for_status().json()["event_id"]
        event = None
        with http.stream("GET", f"call/{endpoint}/{event_id}") as lines:
            for line in lines.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event in ("complete", "error"):
                    return event, line[6:]
    raise AssertionError("the event stream ended without a result")


def send(how, url, client, endpoint, args):
    return through_client(client, endpoint, args) if how == "client" else through_http(url, endpoint, args)


def upload(how, url, path):
    """A file as the page sends it: uploaded first (to Gradio's upload folder), then named."""
    if how == "client":
        return handle_file(str(path))
    with open(path, "rb") as f:
        names = httpx.post(f"{url}gradio_api/upload", files=[("files", (path.name, f, "image/png"))],
                           timeout=WAIT).raise_for_status().json()
    return {"path": names[0], "meta": {"_type": "gradio.FileData"}}


def served(url):
    """A sample drawn for another client, to the end: the server still serves others."""
    job = Client(url, verbose=False).submit("pixelcnn/shapes", 1, 1.0, 0, api_name="/sample")
    grid, _ = job.result(timeout=WAIT)
    return Image.open(grid).size == (462, 462)


HOW = ["client", "http"]


# ---------------------------------------------------------------- files the client did not send

@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("endpoint", ["complete", "score"])
def test_a_file_on_the_server_that_no_one_uploaded_is_refused(app_url, client, tmp_path, unpaced, how, endpoint):
    """{"path": ...} of an image elsewhere on the server (tmp_path is outside Gradio's upload
    folder) and of /etc/passwd: the app opens neither."""
    Image.new("L", (28, 28), 0).save(tmp_path / "private.png")
    for path in (str(tmp_path / "private.png"), "/etc/passwd"):
        event, said = send(how, app_url, client, endpoint, args_of(endpoint, "Image", None, {"path": path}))
        assert event == "error" and NOT_UPLOADED in said, (path, said)
    assert served(app_url)


@pytest.mark.parametrize("how", HOW)
def test_a_path_sent_in_any_other_shape_is_refused_too(app_url, client, tmp_path, unpaced, how):
    """A bare string, or a path inside a drawing's layers or composite, with or without Gradio's
    file marker: refused (by Gradio's own checks of what it received, or by the app)."""
    Image.new("L", (28, 28), 0).save(tmp_path / "private.png")
    path = str(tmp_path / "private.png")
    marked = {"path": path, "meta": {"_type": "gradio.FileData"}}  # gradio_client would upload it: raw only
    drawings = [{"background": None, "layers": [p], "composite": None} for p in (path, {"path": path})]
    drawings += [{"background": None, "layers": [], "composite": p} for p in (path, {"path": path})]
    cases = [("Image", None, path)] + [("Draw", d, None) for d in drawings]
    if how == "http":
        cases += [("Image", None, marked), ("Draw", {"background": None, "layers": [marked], "composite": marked},
                                            None)]
    for source, drawing, image in cases:
        assert send(how, app_url, client, "score", args_of("score", source, drawing, image))[0] == "error", \
            (source, drawing, image)
    assert served(app_url)


# ---------------------------------------------------------------- a FIFO holds no worker

@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("where", ["elsewhere", "in Gradio's upload folder"])
def test_a_fifo_is_refused_at_once_and_holds_no_worker(app_url, client, tmp_path, unpaced, fifos, how, where):
    """Two requests naming a FIFO (as many as the sampler's workers) and a third person's sample:
    the FIFOs are refused and the sample is drawn, each within WAIT (a regression fails, not hangs)."""
    import gradio

    folder = tmp_path if where == "elsewhere" else Path(gradio.utils.get_upload_folder()) / "hostile-tests"
    fifo, pool = fifos(folder), ThreadPoolExecutor(3)  # not `with`: it would wait for a stuck request
    sent = [pool.submit(send, how, app_url, client, endpoint, args_of(endpoint, "Image", None, {"path": str(fifo)}))
            for endpoint in ("complete", "score")]
    other = pool.submit(served, app_url)
    try:
        for answer in sent:
            event, said = answer.result(timeout=WAIT)
            assert event == "error" and (NOT_UPLOADED if where == "elsewhere" else "not an image") in said
        assert other.result(timeout=WAIT)
    finally:
        pool.shutdown(wait=False)  # what is stuck ends when `fifos` lets go of the FIFOs


# ---------------------------------------------------------------- huge and non-image files

@pytest.mark.parametrize("how", HOW)
def test_huge_and_non_image_files_are_refused_before_they_are_decoded(app_url, client, tmp_path, unpaced,
                                                                      png_claiming, how):
    """Uploads within the upload limit: a PNG whose header claims 16384x16384 pixels, a
    decompression bomb's header (50000x50000, past Pillow's own limit), and a text file."""
    png_claiming(tmp_path / "huge.png", 16384, 16384)
    png_claiming(tmp_path / "bomb.png", 50000, 50000)
    (tmp_path / "notes.png").write_text("this is not a picture")
    for name, message in (("huge.png", "too large"), ("bomb.png", "too large"), ("notes.png", "not an image")):
        for endpoint in ("complete", "score"):
            image = upload(how, app_url, tmp_path / name)
            event, said = send(how, app_url, client, endpoint, args_of(endpoint, "Image", None, image))
            assert event == "error" and message in said, (name, endpoint, said)
    assert served(app_url)


# ---------------------------------------------------------------- the queue and its limits

def test_no_event_that_computes_runs_past_the_queue(app_url, sampler_spy):
    """POST /gradio_api/run/... would run an event at once, past the queue and its concurrency
    limits: refused for the endpoints and for "What the model sees" (gradients through two
    models), which the page now runs through the queue too."""
    config = httpx.get(f"{app_url}config", timeout=WAIT).json()
    ids = {d["api_name"]: d["id"] for d in config["dependencies"]}
    calls = {"sample": ["pixelcnn/shapes", 1, 1.0, 0, 0, False], "see_centre": ["pixelcnn/shapes"],
             "complete": args_of("complete", "Image", None, None), "score": args_of("score", "Image", None, None)}
    for name, data in calls.items():
        for route, body in ((f"run/{name}", {"data": data}),
                            ("run/predict", {"data": data, "fn_index": ids[name], "session_hash": "hostile"})):
            answer = httpx.post(f"{app_url}gradio_api/{route}", json=body, timeout=WAIT)
            assert answer.status_code == 404 and "join the queue" in answer.text, (route, name, answer.text)
    queued = {d["api_name"]: d["queue"] for d in config["dependencies"]}
    assert all(queued[name] for name in [*calls, "see_click"])
    assert sampler_spy["steps"] == 0  # nothing was drawn

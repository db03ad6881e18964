"""The app in a process of its own, for the scripts that drive it (loadtest.py, screenshot.py):

    from app_server import running_app
    with running_app() as (proc, url):
        ...

It runs `python app.py --port 0`, which serves the app as app.serve(port=0) does in the tests
(a free loopback port) and prints the URL first, once the server answers.
"""
import os
import queue
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def running_app(timeout=300):
    """(process, URL) of `python app.py --port 0` started from the repository's root, stopped
    on leaving. Offline (HF_HUB_OFFLINE=1) unless the environment says otherwise."""
    env = {"HF_HUB_OFFLINE": "1", **os.environ}
    proc = subprocess.Popen([sys.executable, "app.py", "--port", "0"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, text=True)
    lines = queue.Queue()

    def read():  # to the end, so that a full pipe never stalls the app
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        yield proc, first_url(lines, proc, timeout)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def first_url(lines, proc, timeout):
    """The first line of the app's output that is a URL."""
    try:
        while (line := lines.get(timeout=timeout)) is not None and not line.startswith("http"):
            pass
    except queue.Empty:
        raise SystemExit(f"the app did not start within {timeout} s") from None
    if line is None:
        raise SystemExit(f"the app exited with status {proc.wait()} before serving")
    return line.strip()

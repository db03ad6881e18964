"""The app in a process of its own, for the scripts that drive it (loadtest.py, soak.py, screenshot.py):

    from app_server import running_app
    with running_app() as (proc, url):
        ...

It runs `python app.py --port 0`, which serves the app as app.serve(port=0) does in the tests
(a free loopback port) and prints the URL first, once the server answers. process_stats and
folder_stats read what the scripts report of it.
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
def running_app(timeout=300, env=None, queue_size=None, stderr=None):
    """(process, URL) of `python app.py --port 0` started from the repository's root, stopped
    on leaving. Offline (HF_HUB_OFFLINE=1) unless the environment says otherwise; `env` adds
    to the environment; `queue_size` replaces app.QUEUE's max_size (a queue a test can fill);
    `stderr`, a file, takes what the app logs (by default, this process's stderr)."""
    # served as `python app.py` serves it: its samplers in worker processes, whatever a test's own app does
    inherited = {k: v for k, v in os.environ.items() if k != "PIXELCNN_WORKERS"}
    env = {"HF_HUB_OFFLINE": "1", **inherited, **(env or {})}
    command = [sys.executable, "app.py", "--port", "0"]
    if queue_size is not None:
        command[1:2] = ["-c", f"import sys, app; app.QUEUE['max_size'] = {int(queue_size)}; app.main(sys.argv[1:])"]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
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


def process_stats(pid, children=True):
    """A running process's resident memory now and at its peak (MB), its threads, its open
    files and the CPU seconds it has used, from /proc (Linux), added up with its children's
    (the app's worker processes; the peak: the sum of each one's) unless not `children`."""
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split() if children else []
    stats = [one_process(pid)] + [s for c in kids if (s := one_process(c, missing_ok=True))]
    return {key: sum(s[key] for s in stats) for key in stats[0]}


def one_process(pid, missing_ok=False):
    """process_stats of the process alone; None where it is gone and missing_ok."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        utime, stime = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]
        files = len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        if missing_ok:
            return None
        raise
    status = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {"resident MB": int(status["VmRSS"].split()[0]) / 1024, "peak MB": int(status["VmHWM"].split()[0]) / 1024,
            "threads": int(status["Threads"]), "open files": files,
            "CPU s": (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")}


def folder_stats(folder):
    """The files under a folder, and their size in MB (files deleted while counting left out)."""
    sizes = [size for top, _, names in os.walk(folder) for name in names
             if (size := file_size(Path(top) / name)) is not None]
    return {"cache files": len(sizes), "cache MB": sum(sizes) / 2**20}


def file_size(path):
    """Its size in bytes, or None where it is gone."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None

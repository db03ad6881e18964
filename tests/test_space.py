"""The app as a Hugging Face Space: the repository's binary files are marked for LFS/Xet (the Hub
refuses them as plain git objects), scripts/deploy_space.py publishes what a Space needs (checked
against a stand-in for huggingface_hub's HfApi, never the network), and the Space starts and
serves: a fresh venv from requirements.txt alone, only the files deploy_space.py uploads (no
../shared data, no .venv), offline, on 0.0.0.0, every tab used through gradio_client and in
Chromium. The Space listens on 0.0.0.0:7860; the test takes a free port instead, so that it
runs beside another app."""
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from helpers import REPO

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "test-artifacts"
SPACE_ID = "alice/pixelcnn-studio"


def load_deploy():
    """scripts/deploy_space.py as a module, so that a test can swap its HfApi."""
    spec = importlib.util.spec_from_file_location("deploy_space", REPO / "scripts" / "deploy_space.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


deploy = load_deploy()


def git(*args, cwd=REPO):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


# ---------------------------------------------------------------- binary files through LFS/Xet

def test_every_binary_file_git_tracks_is_marked_for_lfs():
    """A file is binary as git judges it (a NUL byte in its first 8000); each must be LFS/Xet's."""
    binary = [p for p in git("ls-files", "-z").split("\0")
              if p and (REPO / p).is_file() and b"\0" in (REPO / p).read_bytes()[:8000]]
    assert any(p.endswith(".safetensors") for p in binary) and any(p.endswith(".png") for p in binary)
    attrs = git("check-attr", "filter", "diff", "merge", "text", "--", *binary)
    plain = sorted({line.split(":")[0] for line in attrs.splitlines()
                    if not line.endswith(("filter: lfs", "diff: lfs", "merge: lfs", "text: unset"))})
    assert not plain, f"binary files not marked for LFS/Xet in .gitattributes: {plain}"


# ---------------------------------------------------------------- scripts/deploy_space.py

class FakeHub:
    """A stand-in for huggingface_hub.HfApi that records the calls, and for upload_folder the
    files it would send: those under folder_path that huggingface_hub's own pattern filter
    lets through (upload_folder walks the whole folder, then filters)."""
    calls = []

    def __init__(self, token=None):
        self.calls.append(("HfApi", {"token": token}))

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/spaces/{repo_id}"

    def upload_folder(self, *, folder_path, allow_patterns=None, ignore_patterns=None, **kwargs):
        from huggingface_hub.utils import filter_repo_objects

        folder = Path(folder_path)
        every = [p.relative_to(folder).as_posix() for p in folder.rglob("*")
                 if p.is_file() and ".git" not in p.relative_to(folder).parts]
        sent = set(filter_repo_objects(every, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns))
        self.calls.append(("upload_folder", {"folder_path": folder, "sent": sent, **kwargs}))


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setattr(FakeHub, "calls", [])
    monkeypatch.setattr(deploy, "HfApi", FakeHub)
    return FakeHub.calls


def test_deploy_creates_a_gradio_space_and_uploads_what_it_runs(hub):
    deploy.main([SPACE_ID, "--token", "hf_test"])
    (api, made), (create, repo), (upload, up) = hub
    assert (api, made) == ("HfApi", {"token": "hf_test"})
    assert create == "create_repo" and repo["repo_id"] == SPACE_ID
    assert repo["repo_type"] == "space" and repo["space_sdk"] == "gradio" and repo["exist_ok"] is True
    assert repo["private"] is False
    assert upload == "upload_folder" and up["repo_id"] == SPACE_ID and up["repo_type"] == "space"
    sent = up["sent"]
    tracked = set(git("ls-files").splitlines())
    assert {"app.py", "requirements.txt", "README.md", ".gitattributes", "weights/pixelcnn_mnist.safetensors",
            "weights/pixelcnn_mnist.json", "examples/mnist_7.png"} <= sent
    assert {p for p in tracked if p.startswith("pixelcnn/")} <= sent, "the whole package goes"
    assert sent <= tracked, f"only tracked files go, not {sorted(sent - tracked)[:5]}"
    assert not [p for p in sent if p.startswith(("tests/", "scripts/", ".venv/", "test-artifacts/", "checkpoints/"))
                or "__pycache__" in p]


def test_deploy_private(hub):
    deploy.main([SPACE_ID, "--private"])
    assert hub[1][1]["private"] is True


def test_dry_run_lists_the_files_and_calls_nothing(hub, capsys):
    deploy.main([SPACE_ID, "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert "app.py" in out and "weights/pixelcnn_mnist.safetensors" in out and "tests/helpers.py" not in out
    assert out[-1].endswith(f"would go to the Space {SPACE_ID}")
    assert hub == []


@pytest.mark.parametrize("readme, message", [
    ("# PixelCNN Studio\n\nNo front matter.\n", "has no Space front matter"),
    ("---\ntitle: x\nsdk: streamlit\napp_file: app.py\n---\n", "has no Space front matter"),
    ("---\nsdk: gradio\nsdk_version: 5.0.0\napp_file: app.py\n---\n", "sdk_version: 5.0.0"),
    ("---\nsdk: gradio\nsdk_version: 6.31.0\napp_file: main.py\n---\n", "app_file: main.py"),
])
def test_deploy_refuses_a_readme_the_hub_could_not_run(hub, tmp_path, readme, message):
    (tmp_path / "README.md").write_text(readme)
    (tmp_path / "requirements.txt").write_text("torch==2.13.0\ngradio==6.31.0\n")
    (tmp_path / "app.py").write_text("print('hello')\n")
    git("init", "-q", cwd=tmp_path)
    git("add", ".", cwd=tmp_path)
    with pytest.raises(SystemExit) as refused:
        deploy.main([SPACE_ID], root=tmp_path)
    assert message in str(refused.value)
    assert hub == [], "nothing is sent when refused"


# ---------------------------------------------------------------- the Space, started as the Hub starts it

@pytest.fixture(scope="session")
def space_python(tmp_path_factory):
    """A fresh venv with requirements.txt alone installed, as the Space builds it (one per
    session: pip takes a few minutes)."""
    venv = tmp_path_factory.mktemp("space-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r",
                          str(REPO / "requirements.txt")], capture_output=True, text=True, timeout=1200)
    assert pip.returncode == 0, f"pip install -r requirements.txt failed:\n{pip.stdout[-3000:]}{pip.stderr[-3000:]}"
    return venv / "bin" / "python"


def free_port():
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def listens_on_every_address(port):
    """True if a socket listens on 0.0.0.0:port (not only on loopback): /proc/net/tcp's view."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return any(r[1] == f"00000000:{port:04X}" and r[3] == "0A" for r in rows)


class Space:
    """The app started from a folder of the files deploy_space.py uploads; its output in app.log."""

    def __init__(self, python, folder):
        for f in deploy.space_files(REPO):
            (folder / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, folder / f)
        self.port, self.log = free_port(), folder / "app.log"
        self.url = f"http://127.0.0.1:{self.port}/"
        # The Space's runtime sets GRADIO_SERVER_NAME/PORT (0.0.0.0:7860) and SYSTEM=spaces; the latter is
        # left out: with it Gradio starts its Spaces hot-reloader, which needs the `spaces` package that
        # the Hub installs beside requirements.txt (without it: a RuntimeError traceback at start-up).
        env = {"PATH": os.environ["PATH"], "HOME": str(folder / "home"), "PYTHONUNBUFFERED": "1",
               "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": str(self.port),
               # offline, and no data or weights but the folder's own
               "HF_HUB_OFFLINE": "1", "HF_HOME": str(folder / "hf"), "PIXELCNN_DATA": str(folder / "nowhere")}
        with open(self.log, "w") as log:
            self.process = subprocess.Popen([str(python), "app.py"], cwd=folder, env=env, stdout=log,
                                            stderr=subprocess.STDOUT)

    def wait_up(self, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the app exited ({self.process.returncode}):\n{self.output()}"
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"the app did not answer in {timeout} s:\n{self.output()}")

    def output(self):
        return self.log.read_text(errors="replace")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def space(space_python, tmp_path_factory):
    app = Space(space_python, tmp_path_factory.mktemp("space"))
    try:
        app.wait_up()
        yield app
    finally:
        app.stop()


@pytest.mark.slow
def test_the_space_serves_every_endpoint(space):
    from gradio_client import Client, handle_file

    assert listens_on_every_address(space.port), "the app should listen on 0.0.0.0, as a Space must"
    client = Client(space.url, verbose=False)

    grid, _ = client.predict("pixelcnn/mnist", 4, 1.0, 0, api_name="/sample")
    width, height = Image.open(grid).size
    assert width == height > 2 * 28, "four digits, two by two"

    example = handle_file(str(REPO / "examples" / "mnist_7.png"))
    job = client.submit("pixelcnn/mnist", "Image", None, example, 14, "The top rows", 1.0, 0, api_name="/complete")
    assert len(list(job)) > 1, "completions stream as they form"
    width, height = Image.open(job.outputs()[-1]).size
    assert width == height > 2 * 28, "four completions, two by two"

    heat, text = client.predict("pixelcnn/mnist", "Image", None, example, api_name="/score")
    assert Image.open(heat).size[0] > 0
    assert "bits/dim" in text and "Test images" in text, "the range comes from the weights' facts file, no data"
    assert "Traceback" not in space.output()


def shows_its_picture(page, elem_id, timeout=60):
    """Wait until the output `elem_id` is idle (no progress tracker) and its picture has loaded."""
    page.wait_for_function("""id => {
        const el = document.getElementById(id), img = el && el.querySelector('img');
        const tracker = el && el.querySelector('[data-testid=status-tracker]');
        return (!tracker || tracker.classList.contains('hide')) && !!img && img.complete && img.naturalWidth > 0;
    }""", arg=elem_id, timeout=timeout * 1000)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no browser at {CHROMIUM}")
def test_the_space_in_a_browser(space):
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(space.url)
        page.locator("#start").click()
        sync_api.expect(page.locator("#samples img").first).to_be_visible(timeout=30_000)
        shows_its_picture(page, "samples")
        page.screenshot(path=str(ARTIFACTS / "space_sample.png"), full_page=True)

        page.get_by_role("tab", name="What the model sees").click()
        sync_api.expect(page.locator("#see-text")).to_contain_text("Predicting pixel", timeout=30_000)
        for elem_id in ("see-image", "see-pixelcnn", "see-gated"):
            shows_its_picture(page, elem_id)
        page.screenshot(path=str(ARTIFACTS / "space_see.png"), full_page=True)
        browser.close()
    assert "Traceback" not in space.output()


def test_no_tracked_file_is_a_git_lfs_pointer():
    """.gitattributes marks binaries for LFS, but this repository keeps them as plain blobs (no
    git-lfs on its machines): a file committed from a machine with git-lfs would arrive as a
    pointer, and the app would find a few lines of text where its weights or examples were."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    pointers = [p for p in listed.split("\0") if p and (REPO / p).is_file()
                and (REPO / p).read_bytes()[:40].startswith(b"version https://git-lfs")]
    assert pointers == []

"""Weights missing from weights/ come from the Hub repo $PIXELCNN_HUB_REPO, here offline:
HF_HUB_OFFLINE=1 and a Hugging Face cache laid out as a download would leave it."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pixelcnn
from helpers import REPO, make_tiny
from pixelcnn import weights

REPO_ID = "pixelcnn-studio/weights"


def fill_cache(cache, files):
    """The Hub cache layout: blobs/<sha256>, snapshots/<commit>/<name> -> blob, refs/main."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{REPO_ID.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    (root / "blobs").mkdir()
    (root / "snapshots" / commit).mkdir(parents=True)
    for name, data in files.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, root / "snapshots" / commit), root / "snapshots" / commit / name)


def run(code, tmp_path, **env):
    """Python code in a fresh process, offline, with an empty weights folder; its JSON output."""
    (tmp_path / "empty").mkdir(exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache"),
           "PIXELCNN_WEIGHTS": str(tmp_path / "empty"), "OMP_NUM_THREADS": "1", **env}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_missing_weights_come_from_the_hub_cache_offline(tmp_path):
    net = make_tiny("pixelcnn", "shapes")
    weights.save(net, tmp_path / "w.safetensors")
    fill_cache(tmp_path / "cache", {"pixelcnn_shapes.safetensors": (tmp_path / "w.safetensors").read_bytes()})
    out = run("""
import json, pixelcnn
from pixelcnn import weights
net = pixelcnn.load("pixelcnn", "shapes")
print(json.dumps({"available": pixelcnn.available(), "path": str(weights.fetch("pixelcnn", "shapes")),
                  "config": net.config.to_dict(), "training": net.training}))
""", tmp_path, PIXELCNN_HUB_REPO=REPO_ID)
    assert out["available"] == [["pixelcnn", "shapes"]]
    assert Path(out["path"]).read_bytes() == (tmp_path / "w.safetensors").read_bytes()
    assert out["config"] == net.config.to_dict() and not out["training"]


def test_weights_on_disk_win_over_the_hub(tmp_path):
    """The local file is used as it is; the Hub is not asked (its cache is empty)."""
    (tmp_path / "cache").mkdir()
    weights.save(make_tiny("pixelcnn", "shapes", seed=1), tmp_path / "local" / "pixelcnn_shapes.safetensors")
    out = run("""
import json, pixelcnn
print(json.dumps({"available": pixelcnn.available(), "filters": pixelcnn.load("pixelcnn", "shapes").config.filters}))
""", tmp_path, PIXELCNN_HUB_REPO=REPO_ID, PIXELCNN_WEIGHTS=str(tmp_path / "local"))
    assert out == {"available": [["pixelcnn", "shapes"]], "filters": 8}


def test_neither_on_disk_nor_on_the_hub_is_a_clear_error(tmp_path):
    fill_cache(tmp_path / "cache", {"README.md": b"no weights here"})
    code = """
import json, pixelcnn
try:
    pixelcnn.load("pixelcnn", "mnist")
except FileNotFoundError as e:
    print(json.dumps({"available": pixelcnn.available(), "error": str(e)}))
"""
    out = run(code, tmp_path, PIXELCNN_HUB_REPO=REPO_ID)
    assert out["available"] == []
    assert "no trained weights for pixelcnn on mnist" in out["error"]
    assert f"could not fetch pixelcnn_mnist.safetensors from the Hub repo {REPO_ID}" in out["error"]
    assert "python train.py --model pixelcnn --dataset mnist" in out["error"]
    out = run(code, tmp_path, PIXELCNN_HUB_REPO="")
    assert "set $PIXELCNN_HUB_REPO" in out["error"]


def test_without_a_hub_repo_available_lists_only_the_disk(tmp_path, monkeypatch):
    monkeypatch.delenv("PIXELCNN_HUB_REPO", raising=False)
    weights.save(make_tiny("pixelrcnn", "color_shapes"), weights.weights_path("pixelrcnn", "color_shapes", tmp_path))
    assert pixelcnn.available(tmp_path) == [("pixelrcnn", "color_shapes")]


class FakeHub:
    """Stands in for huggingface_hub.HfApi, never the network: a commit writes its files
    into a local folder, as the repo would hold them."""

    def __init__(self, folder):
        self.folder, self.commits = folder, []
        folder.mkdir(parents=True, exist_ok=True)

    def create_repo(self, repo, exist_ok=False):
        assert exist_ok

    def create_commit(self, repo, operations, commit_message):
        for op in operations:
            with op.as_file() as f:
                (self.folder / op.path_in_repo).write_bytes(f.read())
        self.commits.append((repo, commit_message, sorted(op.path_in_repo for op in operations)))


def test_train_push_to_hub_uploads_what_the_app_then_loads(tmp_path, monkeypatch):
    import huggingface_hub

    import train

    hub = FakeHub(tmp_path / "repo")
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: hub)
    train.main(["--model", "gated", "--dataset", "shapes", "--set", "filters=8", "layers=1", "kernel=3",
                "--max-steps", "3", "--train-limit", "128", "--test-limit", "32", "--batch-size", "32",
                "--samples", "2", "--threads", "1", "--out", str(tmp_path / "w"),
                "--checkpoint-dir", str(tmp_path / "ck"), "--push-to-hub", REPO_ID])
    names = ["README.md", "gated_shapes.json", "gated_shapes.safetensors", "gated_shapes_samples.png"]
    assert hub.commits == [(REPO_ID, "gated on shapes", names)]
    card = (tmp_path / "repo" / "README.md").read_text()
    assert "| gated | shapes |" in card and "![](gated_shapes_samples.png)" in card and "--push-to-hub" in card
    # The app's Hub fallback, offline, finds and loads exactly what was pushed.
    fill_cache(tmp_path / "cache", {n: (tmp_path / "repo" / n).read_bytes() for n in names})
    out = run("""
import json, pixelcnn
net = pixelcnn.load("gated", "shapes")
print(json.dumps({"available": pixelcnn.available(), "config": net.config.to_dict()}))
""", tmp_path, PIXELCNN_HUB_REPO=REPO_ID)
    assert out["available"] == [["gated", "shapes"]]
    assert out["config"] == pixelcnn.load("gated", "shapes", tmp_path / "w").config.to_dict()


def test_pushing_missing_or_corrupt_weights_uploads_nothing(tmp_path):
    hub = FakeHub(tmp_path / "repo")
    import pytest
    with pytest.raises(FileNotFoundError, match="train them first"):
        weights.push("gated", "shapes", REPO_ID, tmp_path, api=hub)
    (tmp_path / "gated_shapes.safetensors").write_bytes(b"not weights")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        weights.push("gated", "shapes", REPO_ID, tmp_path, api=hub)
    assert hub.commits == [] and not list((tmp_path / "repo").iterdir())

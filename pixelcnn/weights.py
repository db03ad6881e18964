"""Weights on disk: safetensors (fp16) with the model's config in the metadata. No pickle.
Weights missing from disk can come from a Hugging Face Hub repo named by $PIXELCNN_HUB_REPO."""
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from . import files

FORMAT = "pixelcnn-studio/1"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
HUB_REPO_ENV = "PIXELCNN_HUB_REPO"


def filename(model, dataset):
    """The weights file's name: <model>_<dataset>.safetensors."""
    return f"{model}_{dataset}.safetensors"


def weights_path(model, dataset, weights_dir=None):
    """Where the pair's weights lie: in weights_dir, else $PIXELCNN_WEIGHTS, else the repository's weights/."""
    return Path(weights_dir or os.environ.get("PIXELCNN_WEIGHTS") or WEIGHTS_DIR) / filename(model, dataset)


def hub_repo():
    """The Hub repo that weights missing from disk come from ($PIXELCNN_HUB_REPO), or None."""
    return os.environ.get(HUB_REPO_ENV) or None


def fetch(model, dataset, repo=None):
    """The local path of <model>_<dataset>.safetensors from the Hub repo (default
    $PIXELCNN_HUB_REPO), downloaded into the Hugging Face cache or found there when
    offline (HF_HUB_OFFLINE=1); FileNotFoundError saying why when neither works."""
    from huggingface_hub import hf_hub_download

    repo = repo or hub_repo()
    if repo is None:
        raise FileNotFoundError(f"no Hub repo to fetch {filename(model, dataset)} from: set ${HUB_REPO_ENV}")
    try:
        return Path(hf_hub_download(repo, filename(model, dataset)))
    except Exception as e:  # offline and not cached, no network, no such repo or file: all say the same
        raise FileNotFoundError(f"could not fetch {filename(model, dataset)} from the Hub repo {repo}: "
                                f"{type(e).__name__}: {str(e).rstrip('.')}") from e


def on_hub(names, repo=None):
    """Which of the file `names` the Hub repo holds: those in the local Hugging Face cache,
    and the others if the repo lists them (skipped offline: HF_HUB_OFFLINE=1)."""
    from huggingface_hub import list_repo_files, try_to_load_from_cache

    repo = repo or hub_repo()
    if repo is None:
        return set()
    cached = {n for n in names if isinstance(try_to_load_from_cache(repo, n), str)}
    if cached == set(names):
        return cached
    try:
        return cached | (set(names) & set(list_repo_files(repo)))
    except Exception:  # offline, no network, no such repo: only what is cached
        return cached


def save(net, path, dtype=torch.float16):
    """Write the model's state (floats as `dtype`) and config, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous().cpu()
             for k, v in net.state_dict().items()}
    meta = {"format": FORMAT, "config": json.dumps(net.config.to_dict())}

    def write(tmp):
        save_file(state, str(tmp), metadata=meta)
        os.chmod(tmp, 0o644)  # safetensors writes 0600: an app running as another user could not read it

    files.write_atomic(path, write)


def read(path):
    """(config dict, state dict) from a weights file, or a ValueError saying what is wrong."""
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable safetensors file (corrupt or truncated?): {e}") from e
    if meta.get("format") != FORMAT or "config" not in meta:
        raise ValueError(f"{path} is not a PixelCNN Studio weights file (no config in its metadata)")
    return json.loads(meta["config"]), state


def load_into(net, state, path):
    """Copy `state` into `net`, in the net's dtype; a clear error if they do not fit."""
    own = net.state_dict()
    missing, extra = own.keys() - state.keys(), state.keys() - own.keys()
    bad = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or extra or bad:
        raise ValueError(f"{path} holds weights of another model: missing {sorted(missing)[:3]}, "
                         f"unexpected {sorted(extra)[:3]}, wrong shape {bad[:3]}")
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return net


def push(model, dataset, repo, weights_dir=None, api=None):
    """Upload the pair's weights, facts (.json) and sample grid, with a model card
    (README.md) for every pair in weights_dir, to the Hub repo in one commit; the app
    then loads them with PIXELCNN_HUB_REPO=repo. api: a huggingface_hub.HfApi (default:
    a new one, with the token of `huggingface-cli login` or $HF_TOKEN)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    path = weights_path(model, dataset, weights_dir)
    if not path.exists():
        raise FileNotFoundError(f"no weights to push at {path}: train them first")
    read(path)  # a valid weights file, or a ValueError before anything is uploaded
    stem = path.with_suffix("")
    found = [p for p in (path, files.facts_path(path), Path(f"{stem}_samples.png")) if p.exists()]
    ops = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in found]
    ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=model_card(path.parent).encode()))
    api = api or HfApi()
    api.create_repo(repo, exist_ok=True)
    return api.create_commit(repo, ops, commit_message=f"{model} on {dataset}")


def model_card(folder):
    """A Hub model card for the weights in `folder`: one row per pair, from its facts file."""
    rows = []
    for path in sorted(Path(folder).glob("*.safetensors")):
        f = files.read_facts(path)
        if not {"model", "dataset", "test_nats_per_image"} <= f.keys():
            continue
        name = f"{f['model']}_{f['dataset']}"
        bound = f.get("entropy_bound_nats_per_image")  # procedural datasets only
        bound = "" if bound is None else f" (entropy bound {bound:.2f})"
        rows.append(f"| {f['model']} | {f['dataset']} | {f['test_nats_per_image']:.2f}{bound} | "
                    f"{f['test_bits_per_dim']:.4f} | {f['epoch']:g} | `{f['command']}` | ![]({name}_samples.png) |")
    return "\n".join([
        "---", "library_name: pytorch", "tags:", "- pixelcnn", "- autoregressive", "- image-generation", "---", "",
        "# PixelCNN Studio weights", "",
        "Trained with `train.py` of PixelCNN Studio: safetensors (fp16), the model config in each file's "
        "metadata. Load one with `pixelcnn.load(model, dataset)` and `PIXELCNN_HUB_REPO` set to this repo, "
        "or run the app with it: `PIXELCNN_HUB_REPO=<this repo> python app.py`.", "",
        "| model | dataset | test NLL (nats/image) | bits/dim | epochs | command | samples |",
        "| --- | --- | --- | --- | --- | --- | --- |", *rows, ""])

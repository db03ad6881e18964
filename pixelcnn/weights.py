"""Weights on disk: safetensors (fp16) with the model's config and a SHA-256 of the tensors
in the metadata, checked on reading. No pickle. Weights missing from disk can come from a
Hugging Face Hub repo named by $PIXELCNN_HUB_REPO."""
import hashlib
import json
import os
import reprlib
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from . import files

FORMAT = "pixelcnn-studio/1"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
HUB_REPO_ENV = "PIXELCNN_HUB_REPO"
HASH_KEY = "tensors_sha256"  # the metadata key of content_hash(state)
_noted_unhashed = set()  # the files without a hash already warned of: once each


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
    """Write the model's state (floats as `dtype`), config and content hash, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous().cpu()
             for k, v in net.state_dict().items()}
    write_state(state, net.config.to_dict(), path)


def write_state(state, config, path):
    """Write a state dict and its config, with the state's content hash, atomically."""
    meta = {"format": FORMAT, "config": json.dumps(config), HASH_KEY: content_hash(state)}

    def write_tmp(tmp):
        save_file(state, str(tmp), metadata=meta)
        os.chmod(tmp, 0o644)  # safetensors writes 0600: an app running as another user could not read it

    files.write_atomic(path, write_tmp)


def content_hash(state):
    """The SHA-256 (hex) of a state dict's tensors in a canonical form: for each name in sorted
    order, the name, dtype, shape and byte count, then the raw bytes. Any flipped byte in the
    data changes it; the order and alignment safetensors lays the tensors out in do not."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape), t.numel() * t.element_size()]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def read(path):
    """(config dict, state dict) from a weights file; a ValueError naming the file and saying
    what is wrong where it is unreadable, not ours, its config not a JSON object, its tensors
    unlike the hash in its metadata, or not finite. A file without a hash (written before
    there was one) is read with a warning, once per file."""
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable safetensors file (corrupt or truncated?): {e}") from e
    if meta.get("format") != FORMAT or "config" not in meta:
        raise ValueError(f"{path} is not a PixelCNN Studio weights file (no config in its metadata)")
    config = _config(meta["config"], path)
    _check_hash(state, meta.get(HASH_KEY), path)
    bad = non_finite(state)
    if bad is not None:
        n = int((~state[bad].isfinite()).sum())
        raise ValueError(f"{path} is corrupt: its weights are not all finite ({n} of the {state[bad].numel()} "
                         f"values of {bad} are NaN or infinite)")
    return config, state


def _config(text, path):
    """The config JSON object in a file's metadata, or a ValueError naming the file."""
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{path} is corrupt: the config in its metadata is not JSON ({e})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} is corrupt: the config in its metadata is {reprlib.repr(config)}, "
                         "not a JSON object of model options")
    return config


def _check_hash(state, expected, path):
    """A ValueError naming the file if its tensors do not match the hash in its metadata; a
    warning, the first time, for a file without one."""
    if expected is None:
        if str(Path(path).resolve()) not in _noted_unhashed:
            _noted_unhashed.add(str(Path(path).resolve()))
            warnings.warn(f"{path} has no content hash in its metadata (it was written before weights "
                          "had one), so flipped bytes in it would go unnoticed; saving it again adds one",
                          stacklevel=3)
    elif content_hash(state) != expected:
        raise ValueError(f"{path} is corrupt: its tensor data does not match the SHA-256 in its metadata "
                         "(flipped or damaged bytes); fetch or train the weights again")


def check_fits(net, state, path, grow=False):
    """A ValueError naming the file unless `state` has exactly the net's tensor names and shapes
    (grow: or some of them, the net being one grown from those weights)."""
    own = net.state_dict()
    missing, extra = set() if grow else own.keys() - state.keys(), state.keys() - own.keys()
    bad = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or extra or bad:
        raise ValueError(f"{path} holds weights of another model: missing {sorted(missing)[:3]}, "
                         f"unexpected {sorted(extra)[:3]}, wrong shape {bad[:3]}")


def load_into(net, state, path, grow=False):
    """Copy `state` into `net`, in the net's dtype; a clear error if they do not fit. grow: the
    net may have parts the weights lack (say a Gated PixelCNN given a summary), which keep
    their initialisation."""
    check_fits(net, state, path, grow)
    own = net.state_dict()
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=not grow)
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


def non_finite(state):
    """The first name (in sorted order) of a floating tensor in `state` holding NaN or infinity, else None."""
    return next((k for k in sorted(state) if state[k].is_floating_point() and not state[k].isfinite().all()), None)

"""Weights on disk: safetensors (fp16) with the model's config in the metadata. No pickle."""
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file, safe_open

FORMAT = "pixelcnn-studio/1"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def weights_path(model, dataset, weights_dir=None):
    return Path(weights_dir or os.environ.get("PIXELCNN_WEIGHTS") or WEIGHTS_DIR) / f"{model}_{dataset}.safetensors"


def save(net, path, dtype=torch.float16):
    """Write the model's state (floats as `dtype`) and config, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous().cpu()
             for k, v in net.state_dict().items()}
    meta = {"format": FORMAT, "config": json.dumps(net.config.to_dict())}
    tmp = path.with_suffix(path.suffix + ".part")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, path)


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

"""Add the content hash to weights files written before weights had one (by default every
file in weights/), so that loading them checks their tensors and warns no more.

Each file without a hash is rewritten with the same tensors and config and the hash in its
metadata; the tensors and config read back are compared bit for bit with the originals, and
the original bytes are put back if they differ. A file that has a hash is only checked.

    python scripts/rehash_weights.py [FILE ...]
"""
import argparse
import sys
import warnings
from pathlib import Path

import torch
from safetensors import safe_open

from pixelcnn import files, weights


def raw_bytes(t):
    """A tensor's dtype, shape and bytes: equal only if the tensors are identical bit for bit."""
    return t.dtype, tuple(t.shape), t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def metadata(path):
    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}


def rehash(path):
    """Give one weights file its hash (see the module's docstring); True if it was rewritten.
    A ValueError (from weights.read) if the file is corrupt, or if the rewrite changed it."""
    if weights.HASH_KEY in metadata(path):
        weights.read(path)  # the hash, the config and finiteness checked
        return False
    original, config_text = path.read_bytes(), metadata(path).get("config")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the note that it has no hash: this adds one
        config, state = weights.read(path)
    weights.write_state(state, config, path)
    config_back, state_back = weights.read(path)
    same = (metadata(path)["config"] == config_text and config_back == config and state_back.keys() == state.keys()
            and all(raw_bytes(state[k]) == raw_bytes(state_back[k]) for k in state))
    if not same:
        files.write_atomic(path, lambda tmp: tmp.write_bytes(original))
        raise ValueError(f"{path}: rewriting it changed its tensors or config; the original is put back")
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="weights files (default: weights/*.safetensors)")
    paths = parser.parse_args(argv).paths or sorted(weights.WEIGHTS_DIR.glob("*.safetensors"))
    for path in paths:
        try:
            print(f"{path}: {'hash added' if rehash(path) else 'has its hash'}")
        except (OSError, ValueError) as e:
            sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()

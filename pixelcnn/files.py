"""Files on disk: atomic writes, and the facts file that sits beside each weights file.

A facts file (`<model>_<dataset>.json`) records what train.py measured of the weights
beside it: test NLL, epochs, images/s, the command, the test curve, and later additions
such as the bits/dim percentiles of test images (`python -m pixelcnn.evaluate --update-facts`).
"""
import json
import os
from pathlib import Path


def write_atomic(path, write):
    """Call write(tmp) to write a temporary file beside `path`, then move it into place, so
    that a full disk or an interrupt leaves the old file and no half-written one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        write(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def facts_path(weights_file):
    """The facts file beside a weights file."""
    return Path(weights_file).with_suffix(".json")


def read_facts(weights_file):
    """The facts recorded beside a weights file ({} if there are none or they are unreadable)."""
    try:
        facts = json.loads(facts_path(weights_file).read_text())
    except (OSError, ValueError):
        return {}
    return facts if isinstance(facts, dict) else {}


def write_facts(weights_file, facts):
    """Write the facts beside a weights file, atomically."""
    return write_atomic(facts_path(weights_file), lambda tmp: tmp.write_text(json.dumps(facts, indent=2) + "\n"))


def make_folders(files):
    """Make the folders of the files a run will write ({what: file}); a ValueError naming the
    first folder that cannot be made or written in, or a file that is a folder."""
    for what, file in files.items():
        folder = Path(file).parent
        if folder.is_file():
            raise ValueError(f"{what} {folder} is a file, not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"{what} {folder} cannot be made ({e.strerror or e})") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"{what} {folder} is read-only")
        if Path(file).is_dir():
            raise ValueError(f"{file} is a folder, where the run would write a file")

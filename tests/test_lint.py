"""The code passes the linter configured in pyproject.toml (pyflakes, pycodestyle, import order, bugbear, pyupgrade)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

RUFF = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")


@pytest.mark.skipif(not Path(RUFF).exists(), reason="ruff is not installed (pip install -r requirements-dev.txt)")
def test_ruff_finds_nothing():
    done = subprocess.run([RUFF, "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

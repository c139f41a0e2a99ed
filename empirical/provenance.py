"""Where a result came from: the git commit and the library versions, recorded beside every output."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numpy
import torch


def git_commit() -> str | None:
    """The checkout's HEAD commit, or None outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def versions() -> dict[str, str]:
    """Python, torch and numpy versions."""
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}

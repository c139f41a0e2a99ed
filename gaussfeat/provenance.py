"""Where a result came from: the git commit and the library versions, recorded beside every output."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numpy
import scipy


def git_commit() -> str | None:
    """The checkout's HEAD commit, with "-dirty" appended when tracked files differ from it; None outside git."""
    try:
        head = _git("rev-parse", "HEAD").stdout.strip()
        changed = _git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if changed else head


def _git(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *arguments], capture_output=True, text=True, check=True, cwd=Path(__file__).parent)


def versions() -> dict[str, str]:
    """Python, gaussfeat, numpy and scipy versions, and the machine's architecture."""
    from . import __version__

    return {"python": platform.python_version(), "gaussfeat": __version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "machine": platform.machine()}

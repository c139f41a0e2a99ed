"""Where a result came from: the git commit and the library versions, recorded beside every output."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numpy
import scipy


def git_commit(where: str | Path = Path(__file__).parent) -> str | None:
    """The HEAD commit of the checkout holding ``where``, with "-dirty" appended when a tracked file
    outside ``results/`` differs from it; None outside git. The results a run writes (and commits)
    there are its outputs, not its code: a run resumed over sittings is not dirty by its own records."""
    try:
        head = _git(where, "rev-parse", "HEAD").stdout.strip()
        changed = _git(where, "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)results").stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if changed else head


def _git(where: str | Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *arguments], capture_output=True, text=True, check=True, cwd=where)


def versions() -> dict[str, str]:
    """Python, gaussfeat, numpy and scipy versions, and the machine's architecture."""
    from . import __version__

    return {"python": platform.python_version(), "gaussfeat": __version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "machine": platform.machine()}

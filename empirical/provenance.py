"""Where a result came from: gaussfeat's provenance (git commit, versions) with torch's version added."""

from __future__ import annotations

import torch

from gaussfeat.provenance import git_commit
from gaussfeat.provenance import versions as _base_versions

__all__ = ["git_commit", "versions"]


def versions() -> dict[str, str]:
    """Python, gaussfeat, numpy, scipy and torch versions, and the machine's architecture."""
    return {**_base_versions(), "torch": torch.__version__}

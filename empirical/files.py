"""Files that a kill never leaves half-written."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path: str | Path, value, *, indent: int | None = None) -> Path:
    """Write ``value`` as JSON to ``path`` atomically: into ``path.tmp``, then renamed over ``path``,
    so a reader (or a resumed run) finds the old file or the new one, never a part of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=indent) + "\n")
    temporary.replace(path)
    return path

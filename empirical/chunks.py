"""Long constructions in chunks that survive being killed: each finished chunk is saved, a rerun loads it.

A construction maps its input rows (images, starts, targets, ...) to output rows one image at a time, so
it can run over consecutive chunks of rows. :func:`chunked` saves each chunk's output under a folder as
soon as it is done (atomically, with its sha256: :func:`empirical.train.save_checkpoint`) and, when run
again on the same folder, loads the chunks it finds instead of computing them. A chunk is finished
only once its file and checksum are both written, so a kill at any moment (SIGKILL included) loses at
most the chunk in progress. Chunks start at multiples of the chunk size, which callers make a multiple
of their batch size: the batches, and so the results, are then those of an uninterrupted run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .distributed import is_main
from .train import load_checkpoint, save_checkpoint

SETTINGS = "settings.json"


def chunked(work: Callable[..., tuple[Tensor, ...]], tensors: tuple[Tensor, ...], *, chunk: int,
            folder: str | Path | None, settings: dict, progress: bool = False, desc: str = "chunks") -> tuple[Tensor, ...]:
    """``work(*rows, positions)`` over consecutive chunks of ``chunk`` rows of the equally long ``tensors``
    (``positions``: the rows' indices in the whole), concatenated. With ``folder``, each chunk's outputs are
    saved there as it finishes and reused by a rerun; ``settings`` (JSON) must then match the folder's,
    so that chunks of another construction are never mixed in."""
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError(f"the tensors to chunk differ in length: {[len(t) for t in tensors]}")
    folder = None if folder is None else Path(folder)
    if folder is not None:
        _claim(folder, {**settings, "rows": n, "chunk": chunk})
    parts = []
    for index, start in enumerate(tqdm(range(0, n, chunk), desc=desc, disable=not progress, leave=False)):
        path = None if folder is None else folder / f"chunk-{index:05d}.pt"
        saved = _finished(path)
        if saved is None:
            stop = min(start + chunk, n)
            outputs = work(*(t[start:stop] for t in tensors), torch.arange(start, stop))
            saved = list(outputs)
            if path is not None and is_main():
                save_checkpoint(path, {"outputs": saved})
        parts.append(saved)
    return tuple(torch.cat(column) for column in zip(*parts))


def _claim(folder: Path, settings: dict) -> None:
    """Record the construction's settings in ``folder``, or check they are the ones recorded."""
    recorded = folder / SETTINGS
    text = json.dumps(settings, sort_keys=True)
    if recorded.is_file():
        if recorded.read_text() != text:
            raise ValueError(f"{folder} holds chunks of another construction ({recorded.read_text()}); "
                             f"this one is {text}: use another folder")
        return
    if is_main():
        folder.mkdir(parents=True, exist_ok=True)
        recorded.write_text(text)


def _finished(path: Path | None) -> list[Tensor] | None:
    """A chunk's saved outputs, or None if it is not (verifiably) finished."""
    if path is None or not path.is_file() or not path.with_suffix(".pt.sha256").is_file():
        return None
    try:
        return load_checkpoint(path)["outputs"]
    except ValueError:  # the checksum of a chunk cut short by a kill: compute it again
        return None

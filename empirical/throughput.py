"""Measured throughputs per device and model, and what a run's plan costs in seconds.

The table (``throughput.json`` beside this module) holds one row per (device, model, operation,
precision): images per second of a ``train`` step, an ``attack`` or ``inversion`` step (a forward
and backward pass to the input: one step of PGD or of representation inversion), or a ``forward``
pass, in the hot loops' precision ("bf16" or "fp32", :mod:`empirical.device`), measured by
benchmarks/throughput.py through the library's own entry points (one row per 32x32 RGB image, the
mlp's at its own size). A row with ``measured: false`` is an estimate (its ``source`` says from
what); the dry-run reports which rows it used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch


def device_kind(device: torch.device | str) -> str:
    """The table's name for a device: "cpu" or the GPU's name in lower case with dashes, e.g. "nvidia-h200"."""
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    return "-".join(torch.cuda.get_device_name(device).lower().split())


def model_key(name: str, options: dict | None = None) -> str:
    """The table's name for an architecture and its build options, e.g. "fast(width=16)" or "resnet18"."""
    options = options or {}
    return name + ("(" + ", ".join(f"{k}={options[k]}" for k in sorted(options)) + ")" if options else "")


OPERATIONS = ("train", "attack", "inversion", "forward")
TABLE = Path(__file__).with_name("throughput.json")


@dataclass(frozen=True)
class Estimate:
    """Seconds of a list of work items on a device, and the table rows behind them.

    ``seconds`` is None when a row is missing (``missing`` names them); ``estimated`` names the
    rows used that were not measured.
    """

    seconds: float | None
    missing: tuple[str, ...]
    estimated: tuple[str, ...]


PRECISIONS = ("bf16", "fp32")


def table(path: str | Path = TABLE) -> list[dict]:
    """The throughput rows: device, model, operation, precision, images_per_s, measured, source."""
    rows = json.loads(Path(path).read_text())
    for row in rows:
        if row.get("operation") not in OPERATIONS or row.get("precision") not in PRECISIONS or not row.get("images_per_s", 0) > 0:
            raise ValueError(f"{path}: bad throughput row {row!r} (operation in {OPERATIONS}, precision in {PRECISIONS}, "
                             "images_per_s > 0)")
    return rows


def estimate(work: list[tuple[str, str, int]], device: str, precision: str, rows: list[dict] | None = None) -> Estimate:
    """Seconds for ``work``, items (model key, operation, image passes), at ``device``'s rows of the
    table in ``precision`` ("bf16" or "fp32").

    A measured row is preferred to an estimated one for the same (device, model, operation, precision).
    """
    if not isinstance(device, str):
        raise TypeError(f"device must be a device kind such as 'cpu' or 'nvidia-h200', got {device!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    chosen: dict[tuple[str, str], dict] = {}
    for row in table() if rows is None else rows:
        key = (row["model"], row["operation"])
        if row["device"] == device and row["precision"] == precision and (
                key not in chosen or row["measured"] and not chosen[key]["measured"]):
            chosen[key] = row
    seconds, missing, estimated = 0.0, set(), set()
    for model, operation, passes in work:
        if operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {OPERATIONS}, got {operation!r}")
        row = chosen.get((model, operation))
        if row is None:
            missing.add(f"{model} {operation} ({precision})")
            continue
        if not row["measured"]:
            estimated.add(f"{model} {operation}")
        seconds += passes / row["images_per_s"]
    return Estimate(None if missing else seconds, tuple(sorted(missing)), tuple(sorted(estimated)))

"""Shared helpers for the benchmark scripts: thread pinning, timing, tables, results JSON.

This module must not import numpy at import time: :func:`pin_threads` only works if it runs
before numpy (and torch) are first imported, so each script parses its arguments, pins, and
only then imports numpy and gaussfeat.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
_LOAD_AT_START = os.getloadavg()  # other processes' load skews wall times on a shared machine
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def parser(description: str, *, threads: int) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny smoke run; writes JSON only if --out is given")
    p.add_argument("--out", type=Path, default=None, help="results JSON path (default: benchmarks/results/<name>.json)")
    p.add_argument("--threads", type=int, default=threads, help="BLAS/OpenMP/torch threads, pinned before numpy is imported")
    p.add_argument("--seed", type=int, default=0, help="instance and sample seed")
    return p


def pin_threads(threads: int) -> None:
    """Set the BLAS/OpenMP thread variables; fails if numpy is already imported (too late)."""
    if "numpy" in sys.modules:
        raise RuntimeError("pin_threads must run before numpy is imported")
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)


def timed(fn):
    """(wall seconds, process CPU seconds, result) of one call.

    On a shared machine the wall time includes waiting for a core; at one thread the CPU time
    (all of this process's threads) is close to what the wall time would be on an idle machine.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def best_of(fn, repeat: int):
    """(best wall s, best CPU s, all wall s, result of the last call) over ``repeat`` calls."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu, result = timed(fn)
        walls.append(wall)
        cpus.append(cpu)
    return min(walls), min(cpus), walls, result


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-markdown table; floats are shown with 3 significant digits."""
    cell = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def matmul_ceiling_tflops(precision: str, threads: int, size: int = 2048, repeat: int = 5) -> float:
    """The best rate of a ``size``^3 matrix product in ``precision`` ("bf16" or "fp32") on
    ``threads`` CPU threads, in TFLOP/s, run by oneDNN as the nets' convolutions are (a 1x1
    convolution of ``size`` channels over ``size`` channels_last pixels): the ceiling a convolution
    can hope for. Measured, not counted from the vendor's units and the clock: a VM reports a
    nominal clock, not the one it runs at (on an AMD EPYC Zen 4 VM at a reported 2.6 GHz, bf16 ran
    above the 0.33 TFLOP/s such a count gave); and not by torch.matmul, whose fp32 path (MKL) runs
    far below oneDNN's on AMD CPUs."""
    import torch

    torch.set_num_threads(threads)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[precision]
    generator = torch.Generator().manual_seed(0)
    pixels = torch.rand(1, size, 32, size // 32, generator=generator).to(dtype).contiguous(memory_format=torch.channels_last)
    weight = torch.rand(size, size, 1, 1, generator=generator).to(dtype).contiguous(memory_format=torch.channels_last)
    product = lambda: torch.nn.functional.conv2d(pixels, weight)  # noqa: E731
    with torch.no_grad():
        product()  # warm-up
        best = min(timed(product)[0] for _ in range(repeat))
    return 2 * size ** 3 / best / 1e12


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=RESULTS.parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info(threads: int) -> dict:
    """Where and with what the numbers were taken."""
    return {
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "load_average_1_5_15_min": {"start": list(_LOAD_AT_START), "end": list(os.getloadavg())},
        "thread_env": {name: os.environ.get(name) for name in _THREAD_VARIABLES},
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "torch": _version("torch"),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "gaussfeat", "empirical")),
    }


def results_path(name: str, args: argparse.Namespace) -> Path | None:
    """Where :func:`write_results` writes: --out, else benchmarks/results/<name>.json for a full run and
    nowhere for a --quick one, so that quick runs never overwrite the committed results."""
    return args.out if args.out is not None else (None if args.quick else RESULTS / f"{name}.json")


def write_results(name: str, args: argparse.Namespace, results: dict) -> Path | None:
    """Write {"benchmark", "command", "machine", "parameters", "results"} as JSON to :func:`results_path`."""
    path = results_path(name, args)
    if path is None:
        print("\n(--quick without --out: results not written)")
        return None
    parameters = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    document = {
        "benchmark": name,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": machine_info(args.threads),
        "parameters": parameters,
        "results": results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {path}")
    return path

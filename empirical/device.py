"""How the hot loops use a device: precision, memory layout and batch size.

The hot loops (training, the attacks of construction and adversarial training, representation
inversion, bulk predictions) run their forward and backward passes in bf16 autocast wherever the
hardware multiplies bf16 natively, with images channels_last like the weights; losses, steps and
projections stay fp32. That is every CUDA GPU, and a CPU with bf16 matrix instructions
(:func:`native_bf16`: AMX tiles or AVX-512 BF16, on which oneDNN runs its bf16 kernels, measured at
2-3x fp32 on the project's nets with 2 threads). Other CPUs keep fp32 with NCHW images, measured
fastest there (benchmarks/bench_cpu_cifar.py). Per-image work goes in batches of thousands on CUDA
(cuDNN autotunes its kernels) and in the batches measured fastest on the CPU.

The evaluation of record is not a hot loop: :func:`empirical.evaluate.evaluate` runs under
``policy(precision="fp32")``, so robust accuracy never rests on bf16 arithmetic, on any device.

:func:`policy` overrides these defaults inside a block (``precision`` "bf16", "fp32" or "auto"
for the device's default): ``--precision`` of the command line, the tests that walk the CUDA code
paths on the CPU, and a user trading batch size for memory all go through it.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace

import torch
from torch import Tensor

# CPU attack batch 128, measured by benchmarks/bench_cpu_cifar.py on 2 cores: the fast net's input gradients
# in images/s at batch 128 vs 256, bf16 channels_last: width 32 1,977 vs 1,731, width 64 677 vs 647; fp32
# NCHW: width 32 766 vs 658, width 64 313 vs 225
BATCH = {"cpu": {"attack": 128, "forward": 512}, "cuda": {"attack": 4096, "forward": 8192}}
PRECISIONS = ("auto", "bf16", "fp32")


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively: AMX tiles (Intel Sapphire Rapids and later) or
    AVX-512 BF16 dot products (Intel Cooper Lake, AMD Zen 4 and later), as torch's cpuinfo reports
    them (``torch.cpu._is_amx_tile_supported``, ``torch.cpu._is_avx512_bf16_supported``). oneDNN
    then dispatches bf16 kernels (``ONEDNN_VERBOSE=1`` names ``avx10_1_512_amx`` or
    ``avx512_core_bf16``); without them it would only convert to and from fp32."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return torch.backends.mkldnn.is_available() and any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def resolve(precision: str, device: torch.device | str) -> str:
    """``precision`` ("auto", "bf16" or "fp32") as "bf16" or "fp32" on ``device``: "auto" is bf16 on
    CUDA and on a CPU with :func:`native_bf16`, else fp32. ``device`` may also be a throughput
    table's device kind (:func:`empirical.throughput.device_kind`: "cpu" or a GPU's name)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if _type(device) == "cuda" or native_bf16() else "fp32"


@dataclass(frozen=True)
class Policy:
    """Overrides of the device defaults; None keeps the default."""

    precision: str | None = None
    channels_last: bool | None = None
    batch: dict[str, int] | None = None


_current: contextvars.ContextVar[Policy] = contextvars.ContextVar("empirical_device_policy", default=Policy())


@contextmanager
def policy(*, precision: str | None = None, channels_last: bool | None = None, attack_batch: int | None = None,
           forward_batch: int | None = None) -> Iterator[Policy]:
    """Within the block, override the precision ("auto", "bf16", "fp32"), the layout or the batch
    sizes (None: keep the current setting)."""
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS} or None, got {precision!r}")
    if channels_last is not None and not isinstance(channels_last, bool):
        raise TypeError(f"channels_last must be True, False or None, got {channels_last!r}")
    batches = {kind: size for kind, size in (("attack", attack_batch), ("forward", forward_batch)) if size is not None}
    for kind, size in batches.items():
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{kind}_batch must be an integer >= 1, got {size!r}")
    current = _current.get()
    changes = {name: value for name, value in (("precision", precision), ("channels_last", channels_last)) if value is not None}
    if batches:
        changes["batch"] = {**(current.batch or {}), **batches}
    token = _current.set(replace(current, **changes))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def _type(device: torch.device | str) -> str:
    """"cpu" for the CPU, "cuda" for a GPU (a torch device, its name, or a throughput table's device kind)."""
    name = device.type if isinstance(device, torch.device) else str(device).split(":")[0]
    return "cpu" if name == "cpu" else "cuda"


def precision(device: torch.device | str) -> str:
    """The hot loops' precision on ``device`` now: "bf16" or "fp32" (the policy's, else the device's default)."""
    return resolve(_current.get().precision or "auto", device)


def uses_bf16(device: torch.device | str) -> bool:
    """Whether forward and backward passes on ``device`` run in bf16 autocast."""
    return precision(device) == "bf16"


def autocast(device: torch.device | str):
    """bf16 autocast for ``device`` where :func:`uses_bf16`, else a context that does nothing."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if uses_bf16(device) else nullcontext()


def batch_size(device: torch.device | str, kind: str = "attack") -> int:
    """Images per batch of per-image work: ``"attack"`` (input gradients: attacks, inversion) or ``"forward"``."""
    if kind not in BATCH["cpu"]:
        raise ValueError(f"kind must be one of {tuple(BATCH['cpu'])}, got {kind!r}")
    chosen = (_current.get().batch or {}).get(kind)
    return BATCH[_type(device)][kind] if chosen is None else chosen


def layout(x: Tensor) -> Tensor:
    """``x`` in the hot loops' memory layout: image batches channels_last on CUDA and wherever they run
    in bf16 (or when the policy asks), else as they are."""
    chosen = _current.get().channels_last
    wanted = (x.is_cuda or uses_bf16(x.device)) if chosen is None else chosen
    return x.contiguous(memory_format=torch.channels_last) if wanted and x.dim() == 4 else x


def configure(device: torch.device | str) -> torch.device:
    """Set the device's global switches once (cuDNN autotuning on CUDA) and return it as a torch.device."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device

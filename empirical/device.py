"""How the hot loops use a device: precision, memory layout and batch size.

On CUDA the forward and backward passes of training, attacks and inversion run in bf16 autocast
(losses, steps and projections stay fp32), images are channels_last like the weights, and
per-image work goes in batches of thousands; cuDNN autotunes its kernels. On the CPU everything
stays fp32, NCHW and in the batches measured fastest there (benchmarks/bench_cpu_cifar.py:
larger batches and channels_last images do not pay on 2 cores), so CPU runs are unchanged and
resume bit-exactly.

The evaluation of record is not a hot loop: :func:`empirical.evaluate.evaluate` runs under
``policy(bf16=False)``, so robust accuracy never rests on bf16 arithmetic.

:func:`policy` overrides these defaults inside a block: the tests walk the CUDA code paths on the
CPU with it (bf16 autocast, channels_last, small batches that force chunking), and a user can
trade batch size for memory.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace

import torch
from torch import Tensor

BATCH = {"cpu": {"attack": 256, "forward": 512}, "cuda": {"attack": 4096, "forward": 8192}}


@dataclass(frozen=True)
class Policy:
    """Overrides of the device defaults; None keeps the default."""

    bf16: bool | None = None
    channels_last: bool | None = None
    batch: dict[str, int] | None = None


_current: contextvars.ContextVar[Policy] = contextvars.ContextVar("empirical_device_policy", default=Policy())


@contextmanager
def policy(*, bf16: bool | None = None, channels_last: bool | None = None, attack_batch: int | None = None,
           forward_batch: int | None = None) -> Iterator[Policy]:
    """Within the block, override the precision, layout or batch sizes (None: keep the current setting)."""
    batches = {kind: size for kind, size in (("attack", attack_batch), ("forward", forward_batch)) if size is not None}
    for kind, size in batches.items():
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{kind}_batch must be an integer >= 1, got {size!r}")
    for name, value in (("bf16", bf16), ("channels_last", channels_last)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"{name} must be True, False or None, got {value!r}")
    current = _current.get()
    changes = {name: value for name, value in (("bf16", bf16), ("channels_last", channels_last)) if value is not None}
    if batches:
        changes["batch"] = {**(current.batch or {}), **batches}
    token = _current.set(replace(current, **changes))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def _type(device: torch.device | str) -> str:
    return "cuda" if torch.device(device).type == "cuda" else "cpu"


def uses_bf16(device: torch.device | str) -> bool:
    """Whether forward and backward passes on ``device`` run in bf16 autocast."""
    chosen = _current.get().bf16
    return _type(device) == "cuda" if chosen is None else chosen


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
    """``x`` in the hot loops' memory layout: channels_last for image batches on CUDA (or when asked)."""
    chosen = _current.get().channels_last
    wanted = x.is_cuda if chosen is None else chosen
    return x.contiguous(memory_format=torch.channels_last) if wanted and x.dim() == 4 else x


def configure(device: torch.device | str) -> torch.device:
    """Set the device's global switches once (cuDNN autotuning on CUDA) and return it as a torch.device."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device

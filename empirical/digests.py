"""SHA-256 digests of tensors: what a kept result (a constructed set, a memoised measurement) depends on."""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn


def tensor_sha256(*parts: Tensor | str) -> str:
    """The SHA-256 (hex) of ``parts`` in order: a tensor by its raw bytes in memory order (any dtype,
    bf16 included; no copy when it is contiguous on the CPU), a string by its UTF-8 bytes.

    The bytes are those of ``tensor.numpy().tobytes()`` wherever numpy has the dtype, so digests that
    were recorded that way are unchanged."""
    hashed = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            hashed.update(part.encode())
        elif isinstance(part, Tensor):
            hashed.update(part.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
        else:
            raise TypeError(f"tensor_sha256 takes tensors and strings, got {type(part).__name__}")
    return hashed.hexdigest()


def model_sha256(model: nn.Module) -> str:
    """The SHA-256 of ``model``'s state: each entry's name, then its tensor, in sorted order of names."""
    return tensor_sha256(*(part for name, tensor in sorted(model.state_dict().items()) for part in (name, tensor)))

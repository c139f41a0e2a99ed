"""The labelled images every loader returns (:class:`ImageData`), and the checks the loaders share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..digests import tensor_sha256

SPLITS = ("train", "test")


@dataclass(frozen=True, eq=False)
class ImageData:
    """Labelled images, validated on construction.

    images : (N, C, H, W) float32 in [0, 1], N >= 1.
    labels : (N,) int64 in [0, len(classes)), on the images' device.
    classes : the class names, in label order.
    name : what the data is, e.g. "CIFAR-10 (JPEG q75 re-encode)".
    source : where it came from (a path, or a description of a synthetic generator).
    source_indices : (N,) int64 on the CPU, the position of each image in the full source split
        (defaults to 0..N-1); subsets keep it, so every image can be traced back.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str
    source: str = ""
    source_indices: torch.Tensor | None = None

    def __post_init__(self) -> None:
        _check_images(self.images, "images")
        n = self.images.shape[0]
        classes = tuple(self.classes) if isinstance(self.classes, (list, tuple)) else self.classes
        if not isinstance(classes, tuple) or not classes or not all(isinstance(c, str) and c for c in classes):
            raise ValueError(f"classes must be a non-empty tuple of non-empty names, got {self.classes!r}")
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes must be distinct, got {classes!r}")
        object.__setattr__(self, "classes", classes)
        _check_labels(self.labels, n, len(classes), self.images.device)
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        indices = torch.arange(n) if self.source_indices is None else self.source_indices
        if not isinstance(indices, torch.Tensor) or indices.dtype != torch.int64 or indices.shape != (n,):
            raise ValueError(
                f"source_indices must be an int64 tensor of shape ({n},), got {_describe(self.source_indices)}"
            )
        object.__setattr__(self, "source_indices", indices.cpu())

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        c, h, w = self.shape
        return (
            f"ImageData({self.name!r}: {len(self)} images {c}x{h}x{w}, {self.num_classes} classes, "
            f"device={self.device})"
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's shape (C, H, W)."""
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def digest(self) -> str:
        """The sha256 (hex) of the images' float32 bytes and the labels' int64 bytes: equal sets, equal digests."""
        return tensor_sha256(self.images, self.labels)

    def to(self, device: torch.device | str) -> ImageData:
        """The same data on ``device`` (source_indices stay on the CPU)."""
        return replace(self, images=self.images.to(device), labels=self.labels.to(device))

    def subset(self, which: int | Sequence[int] | torch.Tensor) -> ImageData:
        """The first ``which`` images (an int), or the images at the given indices (repeats allowed)."""
        n = len(self)
        if isinstance(which, int) and not isinstance(which, bool):
            if not 1 <= which <= n:
                raise ValueError(f"subset size must be in [1, {n}], got {which}")
            index: torch.Tensor | slice = slice(0, which)
            picked = self.source_indices[:which]
        else:
            cpu_index = _as_index_tensor(which, n)
            index, picked = cpu_index.to(self.device), self.source_indices[cpu_index]
        return replace(self, images=self.images[index], labels=self.labels[index], source_indices=picked)


def _describe(value: object) -> str:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"{type(value).__name__} of dtype {value.dtype} and shape {tuple(value.shape)}"
    return repr(value)


def _check_images(images: object, what: str) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[0] == 0 or 0 in images.shape:
        raise ValueError(f"{what} must have shape (N, C, H, W) with N, C, H, W >= 1, got {tuple(images.shape)}")
    if images.dtype != torch.float32:
        raise ValueError(f"{what} must be float32 in [0, 1], got {images.dtype} (uint8 pixels: x.float() / 255)")
    lo, hi = torch.stack(torch.aminmax(images)).tolist()  # one device sync
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"{what} must lie in [0, 1], got nan")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{what} must lie in [0, 1], got values from {lo:.6g} to {hi:.6g}")


def _check_labels(labels: object, n: int, num_classes: int, device: torch.device) -> None:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype != torch.int64:
        raise ValueError(f"labels must be int64, got {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the images, got {tuple(labels.shape)}")
    if labels.device != device:
        raise ValueError(f"labels must be on the images' device {device}, got {labels.device}")
    lo, hi = torch.stack(torch.aminmax(labels)).tolist()
    bad = lo if lo < 0 else hi
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes}) for {num_classes} classes, got {bad}")


def _as_index_tensor(which: object, n: int) -> torch.Tensor:
    """Integer indices into n items as a CPU int64 tensor; out-of-range indices are named."""
    try:
        index = torch.as_tensor(which).cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"indices must be integers, got {which!r}") from err
    if index.ndim != 1 or index.numel() == 0:
        raise ValueError(f"indices must be a non-empty 1-D sequence, got shape {tuple(index.shape)}")
    if index.dtype in (torch.bool, torch.uint8) or index.is_floating_point() or index.is_complex():
        raise ValueError(f"indices must be integers, got dtype {index.dtype}")
    index = index.to(torch.int64)
    bad = index[(index < 0) | (index >= n)]
    if bad.numel():
        raise ValueError(f"indices must be in [0, {n}), got {bad[0].item()}")
    return index


def _check_split(split: object) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def _from_uint8(pixels: np.ndarray) -> torch.Tensor:
    """(N, C, H, W) uint8 -> float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).to(torch.float32).div_(255)


def _require(path: Path, hint: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; {hint}")
    return path

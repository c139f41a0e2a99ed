"""Fashion-MNIST from its four official idx files (Xiao, Rasul, Vollgraf, 2017)."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import torch

from .image_data import ImageData, _check_split, _from_uint8

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
)

_IDX_IMAGES, _IDX_LABELS = 2051, 2049  # idx magic: 0x0000 08 (uint8) 03 / 01 (dimensions)


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """An idx file (gzipped if it ends in .gz) -> uint8 array; the header is checked against ``magic``."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        raw = f.read()
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an idx header of {header} bytes")
    found = struct.unpack(">I", raw[:4])[0]
    if found != magic:
        raise ValueError(f"{path}: idx magic number {found} (0x{found:08x}), expected {magic} (0x{magic:08x})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != math.prod(dims):
        raise ValueError(f"{path}: header says {dims} = {math.prod(dims)} bytes of data, found {len(raw) - header}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()  # writable, for torch


def _idx_file(root: Path, name: str) -> Path:
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"{root / name}(.gz) does not exist; install the Debian package dataset-fashion-mnist or pass root"
    )


def fashion_mnist(split: str, root: str | Path = FASHION_MNIST) -> ImageData:
    """Fashion-MNIST from the four official idx files (``.gz`` or not) in ``root``; 1 x 28 x 28."""
    split = _check_split(split)
    prefix = "train" if split == "train" else "t10k"
    image_file = _idx_file(Path(root), f"{prefix}-images-idx3-ubyte")
    label_file = _idx_file(Path(root), f"{prefix}-labels-idx1-ubyte")
    images, labels = _read_idx(image_file, _IDX_IMAGES), _read_idx(label_file, _IDX_LABELS)
    if images.shape[1:] != (28, 28) or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{image_file}: images {images.shape} must be (N, 28, 28) with N = {labels.shape[0]} labels"
        )
    return ImageData(
        _from_uint8(images[:, None]),
        torch.from_numpy(labels.astype(np.int64)),
        FASHION_MNIST_CLASSES,
        "Fashion-MNIST",
        str(image_file.parent),
    )

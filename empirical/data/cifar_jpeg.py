"""All 60,000 CIFAR-10 images re-encoded as quality-75 JPEG (the offline stand-in), decoded once and cached."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .cifar import CIFAR10_CLASSES, SHARED_DATA
from .image_data import ImageData, _as_index_tensor, _check_split, _from_uint8, _require

log = logging.getLogger(__name__)

CIFAR10_JPEG = SHARED_DATA / "cifar10" / "jpeg_q75" / "cifar10_jpeg_q75.npz"
CIFAR10_JPEG_NAME = "CIFAR-10 (JPEG q75 re-encode)"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/featuresnotbugs``, else ``~/.cache/featuresnotbugs``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "featuresnotbugs"


def _decode_jpegs(blob: np.ndarray, offsets: np.ndarray, index: np.ndarray) -> np.ndarray:
    """JPEGs ``blob[offsets[i]:offsets[i + 1]]`` for i in ``index`` -> (len(index), 3, 32, 32) uint8."""
    try:
        from PIL import Image
    except ImportError as err:
        raise ModuleNotFoundError("decoding the CIFAR-10 JPEGs needs Pillow (pip install pillow)") from err
    out = np.empty((len(index), 32, 32, 3), np.uint8)
    for j, i in enumerate(index):
        with Image.open(io.BytesIO(blob[offsets[i] : offsets[i + 1]].tobytes())) as image:
            rgb = image.convert("RGB")
        if rgb.size != (32, 32):
            raise ValueError(f"JPEG {i} is {rgb.size[0]}x{rgb.size[1]}, expected 32x32")
        out[j] = np.asarray(rgb)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _cache_file(path: Path, split: str, cache_dir: Path) -> Path:
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return cache_dir / f"{path.stem}-{digest[:16]}-{split}.npy"


def _load_cached(file: Path, n: int) -> np.ndarray | None:
    try:
        pixels = np.load(file, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return pixels if pixels.dtype == np.uint8 and pixels.shape == (n, 3, 32, 32) else None


def _save_cached(file: Path, pixels: np.ndarray) -> None:
    """Write atomically; a cache that cannot be written is skipped with a log message."""
    tmp = file.with_name(f".{file.stem}.{os.getpid()}.tmp.npy")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.save(f, pixels)
        os.replace(tmp, file)
    except OSError as err:
        log.warning("could not cache decoded JPEGs at %s: %s", file, err)
        tmp.unlink(missing_ok=True)


def cifar10_jpeg(
    split: str,
    path: str | Path = CIFAR10_JPEG,
    *,
    indices: Sequence[int] | torch.Tensor | None = None,
    cache_dir: str | Path | None = None,
    cache: bool = True,
) -> ImageData:
    """All CIFAR-10 images in the official order, re-encoded as quality-75 JPEG (named as such).

    The npz (shared/data/cifar10/SOURCE.md) holds ``<split>_jpeg`` (the JPEG files end to end),
    ``<split>_offsets`` (n + 1) and ``<split>_labels``; image i is ``jpeg[o[i]:o[i + 1]]``, decoded
    with Pillow to RGB. Against the 6,187 exact originals the mean absolute pixel error is 5.8/255
    overall and at most 13/255 for any one image (single pixels differ by up to 141/255).

    Decoding a split takes seconds, so the decoded uint8 pixels are cached as ``.npy`` in
    ``cache_dir`` (default :func:`default_cache_dir`), keyed by the npz's sha256; ``cache=False``
    neither reads nor writes it. ``indices`` loads only those images (through the same decoder,
    or from the cache when it exists) and is never cached.
    """
    split = _check_split(split)
    path = _require(Path(path), "see shared/data/cifar10/SOURCE.md")
    with np.load(path) as npz:
        blob, offsets, labels = npz[f"{split}_jpeg"], npz[f"{split}_offsets"], npz[f"{split}_labels"]
    n = labels.shape[0]
    if offsets.shape != (n + 1,) or offsets[0] != 0 or offsets[-1] != blob.size or np.any(np.diff(offsets) <= 0):
        raise ValueError(f"{path}: {split}_offsets must rise from 0 to {blob.size} in {n + 1} steps")
    index = np.arange(n) if indices is None else _as_index_tensor(indices, n).numpy()
    file = None
    if cache:
        file = _cache_file(path, split, default_cache_dir() if cache_dir is None else Path(cache_dir))
    pixels = _load_cached(file, n) if file is not None else None
    if pixels is not None:
        pixels = pixels if indices is None else pixels[index]
    else:
        start = time.perf_counter()
        pixels = _decode_jpegs(blob, offsets, index)
        log.info("decoded %d %s JPEGs from %s in %.1f s", len(index), split, path, time.perf_counter() - start)
        if file is not None and indices is None:
            _save_cached(file, pixels)
    return ImageData(
        _from_uint8(pixels),
        torch.from_numpy(labels[index].astype(np.int64)),
        CIFAR10_CLASSES,
        CIFAR10_JPEG_NAME,
        str(path),
        torch.from_numpy(index),
    )

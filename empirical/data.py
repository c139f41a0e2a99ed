"""Image data sets as tensors, and batching that keeps them on their device.

Conventions (used throughout empirical):

* Images are float32 tensors in [0, 1], shape (N, C, H, W); labels are int64 in [0, K).
  Normalisation, if any, belongs inside the model (as in the paper's robustness library).
* Every data set is an :class:`ImageData` whose ``name`` says exactly what it is: the JPEG copy of
  CIFAR-10 is "CIFAR-10 (JPEG q75 re-encode)", never "CIFAR-10", in every output.
* Loaders take ``split`` ("train" or "test") first and never download unless asked to.

Data sets (``load(name, split, **kwargs)`` picks one by name):

* ``cifar10``: the official ``cifar-10-batches-py`` folder (Krizhevsky, 2009).
* ``cifar10-jpeg``: all 60,000 CIFAR-10 images re-encoded as quality-75 JPEG (offline stand-in).
* ``cifar10-exact-prefix``: 6,187 pixel-exact CIFAR-10 images (prefixes of the official batches).
* ``fashion-mnist``: the four official idx files (Xiao, Rasul, Vollgraf, 2017).
* ``planted``: synthetic images with planted robust and non-robust features and their ground truth.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import math
import os
import pickle
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data from the repo root
CIFAR10_JPEG = SHARED_DATA / "cifar10" / "jpeg_q75" / "cifar10_jpeg_q75.npz"
CIFAR10_EXACT_PREFIX = SHARED_DATA / "cifar10" / "partial_exact" / "cifar10_exact_prefix.npz"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
)
CIFAR10_JPEG_NAME = "CIFAR-10 (JPEG q75 re-encode)"
_CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_CIFAR_BATCH_SIZE = 10_000


# --- the data container ------------------------------------------------------------------------


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


# --- CIFAR-10: the official python batches -----------------------------------------------------


def _cifar_rows_to_images(rows: np.ndarray) -> np.ndarray:
    """CIFAR-10 rows (N, 3072) uint8 -> (N, 3, 32, 32) uint8.

    Each row is the red plane, then green, then blue, each 32 x 32 in row-major order.
    """
    if not isinstance(rows, np.ndarray) or rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != 3072:
        raise ValueError(f"CIFAR-10 rows must be a uint8 array of shape (N, 3072), got {_describe(rows)}")
    return rows.reshape(-1, 3, 32, 32)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles the official CIFAR-10 batches and refuses anything else.

    A pickle can run arbitrary code through the globals it loads; the official batches need only
    numpy's array constructors, so every other global is refused.
    """

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),  # the official files (numpy 1 names)
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),  # pickle protocol 5 re-saves
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # bytes under protocol 2 written by Python 3
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of the official CIFAR-10 format")
        return super().find_class(module, name)


def _read_cifar_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            content = _CifarUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(f"{path} is not an official CIFAR-10 python batch: {err}") from err
    if not isinstance(content, dict):
        raise ValueError(f"{path} is not an official CIFAR-10 python batch: holds a {type(content).__name__}")
    return content


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One official batch -> (rows (N, 3072) uint8, labels (N,) int64)."""
    batch = _read_cifar_pickle(path)
    if b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path} lacks b'data' or b'labels' (keys: {sorted(batch)})")
    rows, labels = batch[b"data"], np.asarray(batch[b"labels"])
    _cifar_rows_to_images(rows)  # validates the layout
    if labels.shape != (rows.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: b'labels' must be {rows.shape[0]} integers, got {_describe(labels)}")
    return rows, labels.astype(np.int64)


def _cifar_folder(root: Path) -> Path:
    return root if root.name == "cifar-10-batches-py" else root / "cifar-10-batches-py"


def cifar10(split: str, root: str | Path, *, download: bool = False) -> ImageData:
    """CIFAR-10 from the official ``cifar-10-batches-py`` folder (what torchvision downloads).

    ``root`` is that folder or its parent. Reads the official format only: each batch is a pickled
    dict with b"data" (10000, 3072) uint8 rows (R, G, B planes of 32 x 32) and b"labels", and
    ``batches.meta`` holds b"label_names"; unpickling may load numpy's array constructors and
    nothing else, so a foreign pickle is refused (ValueError), never executed.

    ``download=True`` fetches and md5-checks the archive with torchvision (which must be installed)
    into ``root``; nothing is ever downloaded otherwise.
    """
    split = _check_split(split)
    folder = _cifar_folder(Path(root))
    if download:
        try:
            from torchvision.datasets import CIFAR10
        except ImportError as err:
            raise ModuleNotFoundError(
                "cifar10(download=True) needs torchvision (pip install torchvision); or fetch "
                "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract it"
                f" into {folder.parent}"
            ) from err
        CIFAR10(root=str(folder.parent), train=split == "train", download=True)
    hint = "pass the official cifar-10-batches-py folder (or its parent), or download=True"
    meta = _read_cifar_pickle(_require(folder / "batches.meta", hint))
    names = meta.get(b"label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise ValueError(f"{folder / 'batches.meta'}: b'label_names' must list 10 names, got {names!r}")
    parts = [_read_cifar_batch(_require(folder / batch, hint)) for batch in _CIFAR_BATCHES[split]]
    rows = np.concatenate([rows for rows, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return ImageData(
        _from_uint8(_cifar_rows_to_images(rows)),
        torch.from_numpy(labels),
        tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names),
        "CIFAR-10",
        str(folder),
    )


def cifar10_exact_prefix(split: str, path: str | Path = CIFAR10_EXACT_PREFIX) -> ImageData:
    """The 6,187 pixel-exact CIFAR-10 images: the first 1102 of data_batch_1, 1017 of each other batch.

    Read from the npz described in shared/data/cifar10/SOURCE.md (keys ``<batch>_data``, N x 3072 in
    the official row layout, and ``<batch>_labels``, all 10,000 labels of the batch). 5,170 train and
    1,017 test images; ``source_indices`` are their positions in the full official split.
    """
    split = _check_split(split)
    path = _require(Path(path), "see shared/data/cifar10/SOURCE.md")
    images, labels, indices = [], [], []
    with np.load(path) as npz:
        for b, batch in enumerate(_CIFAR_BATCHES[split]):
            rows = npz[f"{batch}_data"]
            n = rows.shape[0]
            images.append(_cifar_rows_to_images(rows))
            labels.append(npz[f"{batch}_labels"][:n].astype(np.int64))
            indices.append(b * _CIFAR_BATCH_SIZE + np.arange(n))
    total = _CIFAR_BATCH_SIZE * len(_CIFAR_BATCHES[split])
    n = sum(len(i) for i in indices)
    return ImageData(
        _from_uint8(np.concatenate(images)),
        torch.from_numpy(np.concatenate(labels)),
        CIFAR10_CLASSES,
        f"CIFAR-10 exact prefix ({n} of {total} {split} images)",
        str(path),
        torch.from_numpy(np.concatenate(indices)),
    )


# --- CIFAR-10 as quality-75 JPEGs --------------------------------------------------------------


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


# --- Fashion-MNIST -----------------------------------------------------------------------------

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


# --- planted features: synthetic data with ground truth ----------------------------------------


@dataclass(frozen=True)
class PlantedConfig:
    """Parameters of :func:`planted`; the defaults give 10 classes of 3 x 16 x 16 images.

    10 classes as in CIFAR-10, so chance (10%) and the paper's relabelled "non-robust" data sets
    (target t = y + 1 mod 10, or t uniform) mean what they mean there; 16 x 16 keeps it fast on a CPU.
    """

    num_classes: int = 10
    channels: int = 3
    size: int = 16
    n_train: int = 10_000
    n_test: int = 2_000
    robust_norm: float = 2.0  # a: 4x an l2 budget of 0.5
    robust_noise: float = 0.75  # s_r: robust part alone ~84% accurate
    nonrobust_norm: float = 0.2  # b: well inside an l2 budget of 0.5
    nonrobust_noise: float = 0.02  # s_n: non-robust part alone > 99.99% accurate
    pixel_noise: float = 0.01  # sigma, per pixel: small enough that a standard conv net learns the fine templates
    background: float = 0.5  # g, mid grey
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                low = 0 if f.name == "seed" else 2 if f.name == "num_classes" else 8 if f.name == "size" else 1
                if not isinstance(value, int) or isinstance(value, bool) or value < low:
                    raise ValueError(f"PlantedConfig.{f.name} must be an integer >= {low}, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"PlantedConfig.{f.name} must be a finite number >= 0, got {value!r}")
        if not 0 < self.background < 1:
            raise ValueError(f"PlantedConfig.background must be in (0, 1), got {self.background!r}")
        for kind in ("robust", "nonrobust"):
            dim = self.channels * int(_band_mask(self.size, kind).sum())
            if dim < self.num_classes:
                raise ValueError(
                    f"the {kind} band of {self.channels} x {self.size} x {self.size} images has {dim} dimensions, "
                    f"fewer than num_classes = {self.num_classes}; use larger images or fewer classes"
                )

    def accuracy(self, part: str) -> float:
        """Closed-form accuracy of argmax over one part's coefficients ("robust" or "nonrobust").

        That is the Bayes rule from that part alone: P(correct) = int phi(z) Phi(z + m/s)^(K-1) dz,
        with m the template norm and s^2 = (coefficient noise)^2 + sigma^2 (clipping ignored).
        """
        if part not in ("robust", "nonrobust"):
            raise ValueError(f"part must be 'robust' or 'nonrobust', got {part!r}")
        m, s = getattr(self, f"{part}_norm"), getattr(self, f"{part}_noise")
        scale = math.hypot(s, self.pixel_noise)
        if scale == 0:
            return 1.0 if m > 0 else 1.0 / self.num_classes
        z = torch.linspace(-12, 12, 24_001, dtype=torch.float64)
        density = torch.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        return torch.trapezoid(density * torch.special.ndtr(z + m / scale) ** (self.num_classes - 1), z).item()


def _band_mask(size: int, kind: str) -> np.ndarray:
    """(size, size) bool mask of the 2-D DFT frequencies (kx, ky), in cycles per image, of a band.

    robust: 0 < max(|kx|, |ky|) <= size/8 (smooth; the constant is excluded).
    nonrobust: min(|kx|, |ky|) >= size/4 (fast in both directions).
    """
    k = np.abs(np.fft.fftfreq(size) * size)
    kx, ky = k[:, None], k[None, :]
    if kind == "robust":
        return (np.maximum(kx, ky) > 0) & (np.maximum(kx, ky) <= size / 8)
    return np.minimum(kx, ky) >= size / 4


def _band_frame(rng: np.random.Generator, count: int, channels: int, size: int, kind: str) -> np.ndarray:
    """``count`` orthonormal random images (count, C, H, W) whose spectra lie in the band."""
    noise = rng.standard_normal((count, channels, size, size))
    # The mask is symmetric under k -> -k, so the filtered images are real (the .real drops ~1e-16).
    band = np.fft.ifft2(np.fft.fft2(noise) * _band_mask(size, kind)).real
    q, _ = np.linalg.qr(band.reshape(count, -1).T)  # orthonormal columns spanning the filtered images
    return q.T.reshape(count, channels, size, size)


@dataclass(frozen=True, eq=False)
class TemplateContent:
    """Per image, the coefficient on each class's template: ``robust`` and ``nonrobust``, (N, K) each."""

    robust: torch.Tensor
    nonrobust: torch.Tensor

    @property
    def robust_class(self) -> torch.Tensor:
        """(N,) the class the robust part points to (argmax of its coefficients)."""
        return self.robust.argmax(1)

    @property
    def nonrobust_class(self) -> torch.Tensor:
        """(N,) the class the non-robust part points to."""
        return self.nonrobust.argmax(1)


@dataclass(frozen=True, eq=False)
class PlantedFeatures:
    """The ground truth of a planted data set: its templates and how to read them off images.

    robust, nonrobust : (K, C, H, W) float32 on the CPU; each set orthonormal, the two sets in
        disjoint DFT bands (so mutually orthogonal) and both orthogonal to constant images.
    """

    config: PlantedConfig
    robust: torch.Tensor
    nonrobust: torch.Tensor

    def content(self, images: torch.Tensor | ImageData) -> TemplateContent:
        """Projections <x, r_c> and <x, n_c> for every image x (the grey background projects to 0).

        Linear, so it also reads perturbations: ``content(x + d) = content(x) + content(d)``.
        """
        x = images.images if isinstance(images, ImageData) else images
        cfg = self.config
        shape = (cfg.channels, cfg.size, cfg.size)
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4 or x.shape[1:] != shape:
            raise ValueError(
                f"images must be a float tensor (N, {cfg.channels}, {cfg.size}, {cfg.size}), got {_describe(x)}"
            )
        flat = x.reshape(x.shape[0], -1)
        r, n = (t.reshape(cfg.num_classes, -1).to(x.device) for t in (self.robust, self.nonrobust))
        return TemplateContent(flat @ r.T.to(flat.dtype), flat @ n.T.to(flat.dtype))

    def agreement(self, images: torch.Tensor | ImageData, labels: torch.Tensor) -> dict[str, float]:
        """How much each planted part of ``images`` speaks for ``labels`` (the paper's usefulness of a feature).

        ``{robust,nonrobust}_points_to_label``: the fraction of images whose part points to their label
        (argmax of its coefficients); ``{robust,nonrobust}_coefficient``: the mean coefficient on the
        label's template (a, b in the natural images).
        """
        content = self.content(images)
        labels = torch.as_tensor(labels).to(content.robust.device)
        if labels.shape != content.robust.shape[:1]:
            raise ValueError(f"labels must have shape ({len(content.robust)},), got {tuple(labels.shape)}")
        result = {}
        for part, coefficients in (("robust", content.robust), ("nonrobust", content.nonrobust)):
            result[f"{part}_points_to_label"] = float((coefficients.argmax(1) == labels).float().mean())
            result[f"{part}_coefficient"] = float(coefficients.gather(1, labels[:, None]).mean())
        return result

    def sample(self, split: str) -> tuple[ImageData, TemplateContent]:
        """The ``split`` images and their planted coefficients (before pixel noise and clipping)."""
        split = _check_split(split)
        cfg = self.config
        k, n = cfg.num_classes, cfg.n_train if split == "train" else cfg.n_test
        rng = np.random.default_rng([cfg.seed, SPLITS.index(split) + 1])
        labels = rng.permutation(np.arange(n) % k)  # balanced classes
        onehot = np.eye(k)[labels]
        robust = cfg.robust_norm * onehot + cfg.robust_noise * rng.standard_normal((n, k))
        nonrobust = cfg.nonrobust_norm * onehot + cfg.nonrobust_noise * rng.standard_normal((n, k))
        r, u = (t.reshape(k, -1).double().numpy() for t in (self.robust, self.nonrobust))
        x = cfg.background + robust @ r + nonrobust @ u + cfg.pixel_noise * rng.standard_normal((n, r.shape[1]))
        images = torch.from_numpy(np.clip(x, 0, 1).reshape(n, cfg.channels, cfg.size, cfg.size)).float()
        data = ImageData(
            images,
            torch.from_numpy(labels.astype(np.int64)),
            tuple(f"class{c}" for c in range(k)),
            f"planted features (seed {cfg.seed}, {k} classes, {cfg.channels}x{cfg.size}x{cfg.size})",
            f"synthetic: {cfg!r}",
        )
        return data, TemplateContent(torch.from_numpy(robust).float(), torch.from_numpy(nonrobust).float())


def _planted_config(config: PlantedConfig | None, overrides: dict) -> PlantedConfig:
    names = {f.name for f in fields(PlantedConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown planted-features parameter(s) {unknown}; known: {sorted(names)}")
    return replace(config or PlantedConfig(), **overrides)


def planted_features(config: PlantedConfig | None = None, **overrides: object) -> PlantedFeatures:
    """The templates of the planted data set with ``config`` (fields may be overridden by keyword)."""
    cfg = _planted_config(config, overrides)
    rng = np.random.default_rng([cfg.seed, 0])  # the templates; the splits use streams 1 and 2
    robust, nonrobust = (
        torch.from_numpy(_band_frame(rng, cfg.num_classes, cfg.channels, cfg.size, kind)).float()
        for kind in ("robust", "nonrobust")
    )
    return PlantedFeatures(cfg, robust, nonrobust)


def planted(split: str, config: PlantedConfig | None = None, **overrides: object) -> ImageData:
    """Synthetic images with a planted robust and a planted non-robust feature per class.

    For label y (balanced over K classes), with orthonormal templates r_1..r_K (smooth: DFT band
    0 < max|k| <= size/8) and n_1..n_K (fine: min|k| >= size/4), the image is

        x = clip(g + sum_c (a [c = y] + s_r xi_c) r_c + sum_c (b [c = y] + s_n eta_c) n_c + sigma eps, 0, 1)

    with xi, eta ~ N(0, I_K), eps ~ N(0, I_(C H W)). Defaults (PlantedConfig): g = 0.5, a = 2,
    s_r = 0.75, b = 0.2, s_n = 0.02, sigma = 0.01. The robust part (norm a = 2, four times an l2
    budget of 0.5) alone gives about 84% accuracy; the non-robust part (norm b = 0.2, an l2 attack
    of 0.25 can swap it) alone over 99.99%; clipping touches about 0.01% of the pixels. With
    sigma = 0.02 the fast net learns the robust part and little of the fine one: the standard
    model's reliance on the non-robust templates needs them to stand out of the pixel noise.
    Deterministic given ``seed``: the templates and each split come from their own numpy streams.
    Ground truth: :func:`planted_features` (same arguments). Train without crop/flip augmentation:
    shifts scramble the fine templates.
    """
    return planted_features(config, **overrides).sample(split)[0]


# --- registry ----------------------------------------------------------------------------------

LOADERS: dict[str, Callable[..., ImageData]] = {
    "cifar10": cifar10,
    "cifar10-jpeg": cifar10_jpeg,
    "cifar10-exact-prefix": cifar10_exact_prefix,
    "fashion-mnist": fashion_mnist,
    "planted": planted,
}


def load(name: str, split: str, **kwargs: object) -> ImageData:
    """The data set called ``name`` (a key of :data:`LOADERS`), ``split`` "train" or "test"."""
    if name not in LOADERS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(LOADERS)}")
    return LOADERS[name](_check_split(split), **kwargs)


# --- batching ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augment:
    """Random crop with padding and horizontal flip, for a whole batch at once on its device.

    Output pixel (i, j) of image b is ``padded[b, :, dy_b + i, dx_b + j']`` with j' = W - 1 - j if
    image b is flipped, else j; dy, dx are uniform on 0..2 * padding. The defaults (padding 4 with
    zeros, flip) are RandomCrop(32, padding=4) + RandomHorizontalFlip of the paper's robustness
    library (its ColorJitter and 2-degree rotation are not reproduced). ``pad_mode``: "zeros" or "reflect".
    """

    padding: int = 4
    pad_mode: str = "zeros"
    flip: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.padding, int) or isinstance(self.padding, bool) or self.padding < 0:
            raise ValueError(f"padding must be an integer >= 0, got {self.padding!r}")
        if self.pad_mode not in ("zeros", "reflect"):
            raise ValueError(f"pad_mode must be 'zeros' or 'reflect', got {self.pad_mode!r}")
        if not isinstance(self.flip, bool):
            raise ValueError(f"flip must be a bool, got {self.flip!r}")

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random (dy, dx, flip) for n images from ``generator`` (on its device)."""
        device = generator.device
        dy = torch.randint(0, 2 * self.padding + 1, (n,), generator=generator, device=device)
        dx = torch.randint(0, 2 * self.padding + 1, (n,), generator=generator, device=device)
        flip = torch.rand(n, generator=generator, device=device) < 0.5
        if not self.flip:
            flip.zero_()  # drawn all the same, so the stream does not depend on the setting
        return dy, dx, flip

    def apply(self, images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """Crop at offsets (dy, dx) of the padded images and flip where ``flip``: one gather, no loop."""
        n, c, h, w = images.shape
        p = self.padding
        if self.pad_mode == "reflect" and p >= min(h, w):
            raise ValueError(f"reflect padding {p} must be smaller than the image size {h}x{w}")
        padded = F.pad(images, (p, p, p, p), mode="constant" if self.pad_mode == "zeros" else "reflect")
        device = images.device
        rows = dy.to(device)[:, None] + torch.arange(h, device=device)  # (n, h)
        cols = torch.arange(w, device=device).expand(n, w)
        cols = torch.where(flip.to(device)[:, None], w - 1 - cols, cols) + dx.to(device)[:, None]  # (n, w)
        return padded[
            torch.arange(n, device=device)[:, None, None, None],
            torch.arange(c, device=device)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(images, *self.draw(images.shape[0], generator))


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0])


class Batches:
    """Mini-batches ``(images, labels)`` of an ImageData, made on the data's device (GPU-resident on CUDA).

    ``shuffle``: a fresh permutation every epoch; ``augment``: an :class:`Augment` applied per
    batch; ``drop_last``: skip a final short batch. Without shuffle or augment the batches are
    views of the data in order (the evaluation path).

    Reproducible: all randomness of epoch e (permutation, crops, flips) is drawn at its start from a
    CPU ``torch.Generator`` seeded from (seed, e), then moved to the data's device, so the same
    seed gives the same batches in every run and on every device. Iterating runs epochs 0, 1, 2, ...
    in turn; :meth:`epoch` replays any one of them.
    """

    def __init__(
        self,
        data: ImageData,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: Augment | None = None,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        if not isinstance(data, ImageData):
            raise TypeError(f"data must be an ImageData, got {type(data).__name__}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if augment is not None and not isinstance(augment, Augment):
            raise TypeError(f"augment must be an Augment or None, got {type(augment).__name__}")
        if drop_last and batch_size > len(data):
            raise ValueError(f"batch_size {batch_size} exceeds the {len(data)} images, and drop_last leaves no batch")
        self.data, self.batch_size, self.shuffle, self.augment = data, batch_size, shuffle, augment
        self.drop_last, self.seed = drop_last, seed
        self._next_epoch = 0

    def __len__(self) -> int:
        n, b = len(self.data), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self._next_epoch += 1
        return self.epoch(self._next_epoch - 1)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of epoch ``epoch`` (the same every time it is asked for)."""
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        return self._batches(torch.Generator().manual_seed(_epoch_seed(self.seed, epoch)))

    def _batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, b, device = len(self.data), self.batch_size, self.data.device
        order = torch.randperm(n, generator=generator).to(device) if self.shuffle else None
        draws = [t.to(device) for t in self.augment.draw(n, generator)] if self.augment else None
        for start in range(0, len(self) * b, b):
            part = slice(start, start + b)
            index = order[part] if order is not None else part
            images, labels = self.data.images[index], self.data.labels[index]
            if draws is not None:
                images = self.augment.apply(images, *(d[part] for d in draws))
            yield images, labels

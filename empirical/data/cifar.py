"""CIFAR-10 from the official python batches (Krizhevsky, 2009), and its 6,187 pixel-exact images in ../shared/data."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from .image_data import ImageData, _check_split, _describe, _from_uint8, _require

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # ../shared/data from the repo root
CIFAR10_EXACT_PREFIX = SHARED_DATA / "cifar10" / "partial_exact" / "cifar10_exact_prefix.npz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_CIFAR_BATCH_SIZE = 10_000


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

"""Image data sets as tensors, and batching that keeps them on their device.

Conventions (used throughout empirical):

* Images are float32 tensors in [0, 1], shape (N, C, H, W); labels are int64 in [0, K).
  Normalisation, if any, belongs inside the model (as in the paper's robustness library).
* Every data set is an :class:`ImageData` whose ``name`` says exactly what it is: the JPEG copy of
  CIFAR-10 is "CIFAR-10 (JPEG q75 re-encode)", never "CIFAR-10", in every output.
* Loaders take ``split`` ("train" or "test") first and never download unless asked to.

Data sets (``load(name, split, **kwargs)`` picks one by name), one module per source:

* ``cifar10`` (:mod:`.cifar`): the official ``cifar-10-batches-py`` folder (Krizhevsky, 2009).
* ``cifar10-jpeg`` (:mod:`.cifar_jpeg`): all 60,000 CIFAR-10 images re-encoded as quality-75 JPEG
  (offline stand-in).
* ``cifar10-exact-prefix`` (:mod:`.cifar`): 6,187 pixel-exact CIFAR-10 images (prefixes of the
  official batches).
* ``fashion-mnist`` (:mod:`.fashion`): the four official idx files (Xiao, Rasul, Vollgraf, 2017).
* ``planted`` (:mod:`.synthetic`): synthetic images with planted robust and non-robust features and
  their ground truth.

:mod:`.image_data` holds :class:`ImageData` and the checks the loaders share; :mod:`.batching`
holds :class:`Augment` and :class:`Batches`.
"""

from __future__ import annotations

from collections.abc import Callable

from .batching import Augment, Batches
from .cifar import CIFAR10_CLASSES, CIFAR10_EXACT_PREFIX, SHARED_DATA, cifar10, cifar10_exact_prefix
from .cifar_jpeg import CIFAR10_JPEG, CIFAR10_JPEG_NAME, cifar10_jpeg, default_cache_dir
from .fashion import FASHION_MNIST, FASHION_MNIST_CLASSES, fashion_mnist
from .image_data import SPLITS, ImageData, _check_split
from .synthetic import PlantedConfig, PlantedFeatures, TemplateContent, planted, planted_features

# Private names tests/test_data.py reads through the package, as it did when it was one module.
from .cifar import _CIFAR_BATCHES
from .synthetic import _band_mask

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

"""empirical: the deep-network engine for the paper's experiments (torch; CPU and CUDA).

* :mod:`empirical.data` — images as float tensors in [0, 1] (NCHW) with labels: CIFAR-10 (official
  batches, the JPEG q75 re-encode, the exact prefix), Fashion-MNIST, and the planted-features set
  with ground truth; batching with augmentation on the data's device.
* :mod:`empirical.models` — ResNet-18/50, VGG-16, DenseNet-121, an Inception-style net and a fast
  net, normalisation inside, ``features(x)`` for the penultimate layer; ``build(name)``.
* :mod:`empirical.attacks` — l2/linf PGD with batched fresh restarts, targeted mode and a loss hook.
* :mod:`empirical.train` — standard and adversarial training; checkpoints that resume exactly.
* :mod:`empirical.evaluate` — clean and robust accuracy, the attack-strength sweep, transfer.
"""

from .attacks import Attack, pgd
from .data import Augment, Batches, ImageData, load, planted, planted_features
from .evaluate import accuracy, robust_accuracy, sweep, transfer
from .models import available, build
from .train import TrainConfig, load_model, train

__all__ = [
    "Attack",
    "Augment",
    "Batches",
    "ImageData",
    "TrainConfig",
    "accuracy",
    "available",
    "build",
    "load",
    "load_model",
    "pgd",
    "planted",
    "planted_features",
    "robust_accuracy",
    "sweep",
    "train",
    "transfer",
]

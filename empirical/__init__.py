"""empirical: the deep-network engine for the paper's experiments (torch; CPU and CUDA).

* :mod:`empirical.data` — images as float tensors in [0, 1] (NCHW) with labels: CIFAR-10 (official
  batches, the JPEG q75 re-encode, the exact prefix), Fashion-MNIST, and the planted-features set
  with ground truth; batching with augmentation on the data's device.
* :mod:`empirical.models` — ResNet-18/50, VGG-16, DenseNet-121, an Inception-style net, a fast
  net and an MLP, normalisation inside, ``features(x)`` for the penultimate layer; ``build(name)``.
* :mod:`empirical.attacks` — l2/linf PGD with batched fresh restarts, targeted mode and a loss hook;
  the project's multi-targeted margin PGD and the paper's convention.
* :mod:`empirical.evaluation_of_record` — AutoAttack (the authors' package), the evaluation of record.
* :mod:`empirical.sanity` — the flags that say when a robust accuracy should not be trusted.
* :mod:`empirical.train` — standard and adversarial training; checkpoints that resume exactly.
* :mod:`empirical.evaluate` — clean and robust accuracy, the evaluation of record (three attacks and
  the flags), the attack-strength sweep, transfer.
* :mod:`empirical.construct` — D_R/D_NR by representation inversion, D_rand/D_det by targeted PGD.
* :mod:`empirical.suite` — the Section 3 experiments as cached, resumable stages (named in
  :mod:`empirical.stages`; the discussion's run by :mod:`empirical.discussion_stages`).
* :mod:`empirical.presets` — the suite's presets: every setting of a run, with the reasons for it.
* :mod:`empirical.report` — Table 1, Figures 2 and 3 and report.md beside the paper's numbers.
* :mod:`empirical.bridge` — the theory's metrics (alignment, Mahalanobis ratio) on trained networks.
* :mod:`empirical.distributed` — torchrun: DDP training and work sharded by image.
"""

from .attacks import Attack, pgd
from .data import Augment, Batches, ImageData, load, planted, planted_features
from .evaluation_of_record import autoattack
from .evaluate import Evaluation, accuracy, evaluate, robust_accuracy, sweep, transfer
from .models import available, build
from .train import TrainConfig, load_model, train

__all__ = [
    "Attack",
    "Augment",
    "Batches",
    "Evaluation",
    "ImageData",
    "TrainConfig",
    "accuracy",
    "autoattack",
    "available",
    "build",
    "evaluate",
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

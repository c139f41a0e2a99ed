"""The two-Gaussian model fitted to CIFAR-10 pixels, beside networks trained on the same class pair.

Section 4's theorems are about x ~ N(y mu, Sigma). Here they meet real images: two CIFAR-10
classes (cat and dog by default, the pair standard models confuse most), each image a vector in
[0, 1]^3072, labelled -1 / +1.

* Theory (:func:`gaussfeat.curve.eps_curve`): the pair centred at the midpoint of its class means
  and fitted by the standard MLE (the class means and the shared within-class covariance Sigma);
  per l2 radius eps, Theorem 2's closed-form classifier Sigma_r(eps)^-1 mu and the exact robust MLE,
  each with its alignment cos(w, mu), its misalignment w^T Sigma^-1 w / ||w||^2 and its test
  accuracy, clean and robust (exact for a linear classifier).
* Networks: the fast net trained on the same pair, standard (eps 0) and with PGD adversarial
  training at each eps > 0, measured on test images as :mod:`empirical.bridge` measures: gradient
  alignment cos(grad_x (logit_y - logit_t), mu_y - mu_t) with the training pair's class means,
  the Mahalanobis/l2 ratio of its adversarial perturbations under the same fitted Sigma, and its
  robustness (the evaluation of record: AutoAttack beside both PGDs).

Everything goes to ``pixels.json`` and a figure puts theory and networks on the same axes against eps.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from gaussfeat.curve import eps_curve
from gaussfeat.linear import centre
from gaussfeat.metrics import shrinkage_covariance
from gaussfeat.model import mle_parameters

from .attacks import Attack
from .bridge import _distribution, alignment, class_means, perturbation_ratios
from .data import ImageData
from .evaluate import Evaluation, evaluate
from .provenance import git_commit, versions
from .train import TrainConfig, train

CAT, DOG = 3, 5


@dataclass(frozen=True)
class PixelSettings:
    """The pixel study: the class pair, the eps grid, the exact fits' tolerance, the networks' training."""

    classes: tuple[int, int] = (CAT, DOG)
    eps: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    train_images: int | None = None  # of the pair's 10,000 (None: all)
    test_images: int = 2000  # of the pair's 2,000: the linear classifiers' test set
    exact: bool = True
    exact_tol: float = 1e-5
    exact_max_iter: int = 60
    shrinkage: bool | None = None  # Sigma by Ledoit-Wolf shrinkage (None: only when n <= d; see eps_curve)
    network: TrainConfig = field(default_factory=lambda: TrainConfig(
        model="fast", model_options={"width": 16}, epochs=10, batch_size=128, lr=0.1, nesterov=True,
        schedule="triangle", label_smoothing=0.1))
    training_attack_steps: int = 3  # PGD steps of adversarial training (the paper's convention, Attack.paper)
    measure_eps: float = 0.5  # the radius of the perturbations whose Mahalanobis/l2 ratio is measured
    evaluation: Evaluation = field(default_factory=lambda: Evaluation("l2", 0.25, images=500, paper_steps=20))

    def __post_init__(self) -> None:
        a, b = self.classes
        if a == b or not all(isinstance(c, int) and 0 <= c < 10 for c in self.classes):
            raise ValueError(f"classes must be two different CIFAR-10 labels in 0..9, got {self.classes!r}")
        if not self.eps or any(not e >= 0 for e in self.eps):
            raise ValueError(f"eps must be a non-empty list of radii >= 0, got {self.eps!r}")
        object.__setattr__(self, "eps", tuple(float(e) for e in self.eps))

    def to_dict(self) -> dict:
        return {**asdict(self), "network": self.network.to_dict(), "evaluation": self.evaluation.to_dict()}


def class_pair(data: ImageData, classes: tuple[int, int]) -> ImageData:
    """The images of the two classes, relabelled 0 (the first) and 1 (the second)."""
    first, second = classes
    for label in classes:
        if not 0 <= label < data.num_classes:
            raise ValueError(f"class {label} is not a label of {data.name} (0..{data.num_classes - 1})")
    keep = torch.nonzero((data.labels == first) | (data.labels == second)).flatten().cpu()
    pair = data.subset(keep)
    return replace(pair, labels=(pair.labels == second).long(), classes=(data.classes[first], data.classes[second]),
                   name=f"{data.name}: {data.classes[first]} vs {data.classes[second]}")


def pixels(data: ImageData) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): the images flattened to float64 rows and the labels as -1 (class 0) and +1 (class 1)."""
    return data.images.flatten(1).double().cpu().numpy(), np.where(data.labels.cpu().numpy() == 1, 1.0, -1.0)


def pixel_study(settings: PixelSettings, train_data: ImageData, test_data: ImageData, out: Path, *,
                device: str = "cpu", progress: bool = True, log=print) -> dict:
    """Run the study on the two splits (all CIFAR-10 classes), write ``out``/pixels.json and figures; return the record."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train_pair, test_pair = (class_pair(d, settings.classes) for d in (train_data, test_data))
    if settings.train_images is not None:
        train_pair = train_pair.subset(min(settings.train_images, len(train_pair)))
    test_pair = test_pair.subset(min(settings.test_images, len(test_pair)))
    (x, y), (x_test, y_test) = pixels(train_pair), pixels(test_pair)
    seconds = {}
    begun = time.perf_counter()
    theory = eps_curve(x, y, x_test, y_test, settings.eps, exact=settings.exact, tol=settings.exact_tol,
                       max_iter=settings.exact_max_iter, evaluation_eps=settings.evaluation.eps,
                       shrinkage=settings.shrinkage, progress=log)
    seconds["theory"] = time.perf_counter() - begun
    centred = centre(x, y)[0]  # the Sigma theory fitted (without its eigensolve)
    covariance = (shrinkage_covariance(y[:, None] * centred)[0] if theory["fit"]["covariance"] == "ledoit-wolf"
                  else mle_parameters(centred, y)[1])
    networks = []
    measured = test_pair.subset(min(settings.evaluation.images or len(test_pair), len(test_pair)))
    means = class_means(train_pair)
    for eps in settings.eps:
        begun = time.perf_counter()
        config = settings.network if eps == 0 else replace(
            settings.network, adversary=Attack.paper("l2", eps, steps=settings.training_attack_steps))
        model = train(config, train_pair, out=out / "models" / f"eps-{eps:g}", device=device, progress=progress).model
        trained = time.perf_counter() - begun
        cosines = alignment(model, measured, means, device=device)
        ratios = perturbation_ratios(model, measured, Attack("l2", settings.measure_eps, steps=10, loss="ce", targets=0),
                                     covariance, device=device)
        robustness = evaluate(model, measured.images, measured.labels, settings.evaluation, device=device,
                              state=out / "models" / f"eps-{eps:g}", progress=progress)
        aligned, misaligned = _distribution(cosines), _distribution(ratios)
        networks.append({"eps": eps, "alignment": aligned["median"], "misalignment": misaligned["median"],
                         "alignment_quartiles": [aligned["q25"], aligned["q75"]],
                         "misalignment_quartiles": [misaligned["q25"], misaligned["q75"]],
                         "robustness": robustness, "seconds": time.perf_counter() - begun, "training_seconds": trained})
        log(f"network eps {eps:g}: alignment {networks[-1]['alignment']:.3f}, misalignment {networks[-1]['misalignment']:.3g}, "
            f"clean {100 * robustness['clean']:.1f}%, robust {100 * robustness['autoattack']['robust']:.1f}% (AutoAttack)")
        seconds[f"network eps {eps:g}"] = time.perf_counter() - begun
    record = {
        "settings": settings.to_dict(),
        "data": {"train": train_pair.name, "train_images": len(train_pair), "test_images": len(test_pair),
                 "measured_images": len(measured)},
        "random_direction_misalignment": theory["rows"][0]["closed_form"]["random_misalignment"],  # tr(Sigma^-1)/d
        "theory": theory,
        "networks": networks,
        "device": device, "git": git_commit(), "versions": versions(),
        "seconds": {**seconds, "total": time.perf_counter() - started},
    }
    (out / "pixels.json").write_text(json.dumps(record, indent=1) + "\n")
    from .bridge_plots import pixels_figure, save

    save(pixels_figure(record), out / "pixels")
    return record


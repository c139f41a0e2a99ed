"""Section 3 on a CIFAR-10 class pair, beside what the two-Gaussian model fitted to its pixels predicts.

* Prediction (:mod:`gaussfeat.relabelled`): the pair's pixels centred at the midpoint of the class
  means and fitted by the standard MLE (x ~ N(y mu, Sigma), d = 3072); its D_det threshold eps* and,
  at each eps, the accuracy of the standard MLE of D_rand and D_det on the fitted model, in the
  population limit and for sets of the pair's size (mean and spread over ``draws``).
* Measurement: a network trained on the pair (the source); binary D_rand and D_det built from all of
  its training images by targeted l2 PGD at each eps (:func:`empirical.construct.relabelled_dataset`,
  ``steps`` steps of 2.5 eps / steps); a network of the same recipe trained on each set alone, and its
  accuracy on the pair's original test images.

Where does the network's D_det turn above 50%? The model predicts it in two forms: in pixels, at eps*
(the fitted linear source's median margin); free of the pixels' scale, at the radius where the
relabelling moves half the points across the source's boundary (its success rate crosses 1/2), which
is eps* for the model's standard source whatever Sigma (proofs/relabelled.py). The model's relabelled
features are exactly its linear source's direction; a network's are whatever its perturbations plant,
so the answer is measured, not assumed: ``crossings`` holds eps* and both measured radii. Every model,
set and row is cached under ``out`` (rerunning resumes), and ``pair_relabelling.json`` and a figure
are written at the end.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gaussfeat.linear import centre
from gaussfeat.model import TwoGaussian, mle
from gaussfeat.relabelled import d_det, d_det_threshold, d_rand

from .construct import relabelled_dataset
from .data import ImageData
from .evaluate import accuracy
from .pixels import class_pair, pixels
from .provenance import git_commit, versions
from .train import TrainConfig, train

AIRPLANE, FROG = 0, 6


@dataclass(frozen=True)
class PairRelabelSettings:
    """The class pair, the radii, the relabelling attack's steps, the networks' recipe and the model's draws."""

    classes: tuple[int, int] = (AIRPLANE, FROG)
    eps: tuple[float, ...] = (0.002, 0.005, 0.01, 0.02, 0.05, 0.5)  # around the fitted model's eps* (0.0055), and the paper's
    steps: int = 12
    network: TrainConfig = field(default_factory=lambda: TrainConfig(
        model="resnet9", model_options={"width": 16}, epochs=12, batch_size=256, lr=0.2, nesterov=True,
        schedule="triangle", peak=0.2))
    draws: int = 2  # sampled sets of the pair's size per eps and kind (a few seconds each at d = 3072)

    def __post_init__(self) -> None:
        a, b = self.classes
        if a == b or not all(isinstance(c, int) and 0 <= c < 10 for c in self.classes):
            raise ValueError(f"classes must be two different CIFAR-10 labels in 0..9, got {self.classes!r}")
        if not self.eps or any(not e > 0 for e in self.eps):
            raise ValueError(f"eps must be a non-empty list of radii > 0, got {self.eps!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        object.__setattr__(self, "eps", tuple(sorted(float(e) for e in self.eps)))

    def to_dict(self) -> dict:
        return {**asdict(self), "network": self.network.to_dict()}


def fitted_model(pair: ImageData) -> TwoGaussian:
    """The two-Gaussian model of the pair's pixels: centred at the midpoint of the class means, standard MLE."""
    x, y = pixels(pair)
    return mle(centre(x, y)[0], y)


def prediction(model: TwoGaussian, settings: PairRelabelSettings, n: int) -> dict:
    """eps*, and per eps the D_rand and D_det accuracies of the model, in the population limit and at n points."""
    rows = []
    for eps in settings.eps:
        row = {"eps": eps}
        for name, fit in (("d_rand", d_rand), ("d_det", d_det)):
            sampled = fit(model, eps, n=n, seed=0, draws=settings.draws)
            row[name] = {"population": fit(model, eps).accuracy, "sampled": [sampled.accuracy, sampled.accuracy_spread]}
        rows.append(row)
    return {"d_det_threshold": d_det_threshold(model), "model_accuracy": model.accuracy(), "n": n, "rows": rows}


def crossing(eps: Sequence[float], values: Sequence[float], level: float = 0.5) -> float | None:
    """The smallest eps at which ``values`` (measured on the increasing grid ``eps``) rise through ``level``,
    interpolated linearly in log eps between the grid points around it; None if they never reach it."""
    if len(eps) != len(values) or any(b <= a for a, b in zip(eps, eps[1:])) or not eps or eps[0] <= 0:
        raise ValueError(f"eps must be an increasing grid of radii > 0 as long as values, got {eps!r} and {values!r}")
    for index, value in enumerate(values):
        if value >= level:
            if index == 0:
                return float(eps[0])
            low, high, before = math.log(eps[index - 1]), math.log(eps[index]), values[index - 1]
            return float(math.exp(low + (high - low) * (level - before) / (value - before)))
    return None


def pair_relabelling(settings: PairRelabelSettings, train_data: ImageData, test_data: ImageData, out: Path, *,
                     device: str = "cpu", progress: bool = True, log=print) -> dict:
    """Run the prediction and the measurement on the pair of ``settings.classes``; write ``out``/pair_relabelling.json."""
    out.mkdir(parents=True, exist_ok=True)
    started, seconds = time.perf_counter(), {}
    train_pair, test_pair = (class_pair(d, settings.classes) for d in (train_data, test_data))
    begun = time.perf_counter()
    predicted = prediction(fitted_model(train_pair), settings, len(train_pair))
    seconds["prediction"] = time.perf_counter() - begun
    log(f"predicted D_det threshold {predicted['d_det_threshold']:.4g}")
    begun = time.perf_counter()
    source = train(settings.network, train_pair, out=out / "models" / "source", device=device, progress=progress).model
    seconds["source"] = time.perf_counter() - begun
    measured = []
    for eps in settings.eps:
        row = {"eps": eps}
        for mode in ("rand", "det"):
            begun = time.perf_counter()
            name = f"{mode}-{eps:g}"
            built, stats = relabelled_dataset(source, train_pair, mode=mode, eps=eps, steps=settings.steps,
                                              step_size=2.5 * eps / settings.steps, checkpoint=out / "sets" / name,
                                              device=device, progress=progress)
            retrained = train(settings.network, built, out=out / "models" / name, device=device, progress=progress).model
            row[f"d_{mode}"] = {"success_rate": stats["success_rate"], "test_accuracy": accuracy(
                retrained, test_pair.images, test_pair.labels, device=device), "seconds": time.perf_counter() - begun}
            log(f"eps {eps:g} D_{mode}: success {100 * stats['success_rate']:.1f}%, test accuracy "
                f"{100 * row[f'd_{mode}']['test_accuracy']:.1f}%")
        measured.append(row)
    crossings = {"model_threshold": predicted["d_det_threshold"],
                 "success_rate": crossing(settings.eps, [row["d_det"]["success_rate"] for row in measured]),
                 "d_det_accuracy": crossing(settings.eps, [row["d_det"]["test_accuracy"] for row in measured])}
    record = {"settings": settings.to_dict(), "pair": train_pair.name, "train_images": len(train_pair),
              "test_images": len(test_pair), "source_test_accuracy": accuracy(source, test_pair.images, test_pair.labels,
                                                                             device=device),
              "prediction": predicted, "measured": measured, "crossings": crossings,
              "device": device, "git": git_commit(), "versions": versions(),
              "seconds": {**seconds, "total": time.perf_counter() - started}}
    (out / "pair_relabelling.json").write_text(json.dumps(record, indent=1) + "\n")
    from .bridge_plots import pair_relabelling_figure, save

    save(pair_relabelling_figure(record), out / "pair_relabelling")
    return record

"""Clean and robust accuracy, the evaluation of record, the attack-strength sweep, and transfer.

Under torchrun, every function here splits the images across the processes
(:func:`empirical.distributed.sharded`) and returns the whole result on each.

Robust accuracy is the fraction of examples still classified correctly after an attack
(:class:`empirical.attacks.Attack`). A weak attack overstates robustness, so :func:`evaluate`
measures a model three ways on the same images: the paper's PGD convention, the project's PGD,
and AutoAttack (:mod:`empirical.evaluation_of_record`), the number of record; with the sanity flags of
:mod:`empirical.sanity`. :func:`sweep` runs the project's PGD with more steps and restarts and
reports where its accuracy stops falling, and how far that is from AutoAttack's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from .attacks import Attack
from .device import autocast, batch_size as device_batch_size, policy
from .digests import model_sha256, tensor_sha256
from .evaluation_of_record import VERSIONS, autoattack
from .distributed import is_main, process_seed, sharded
from .files import write_json
from .models import evaluating
from .sanity import flags, zero_gradient_count


def _batches(*tensors: Tensor, batch_size: int | None, device, kind: str):
    """Aligned slices of equally long tensors, on ``device`` (each tensor moved there once, whole).

    ``batch_size`` None: the device's for ``kind`` (:func:`empirical.device.batch_size`).
    """
    batch_size = device_batch_size(device, kind) if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if len({len(t) for t in tensors}) != 1:
        raise ValueError(f"images and labels differ in length: {[len(t) for t in tensors]}")
    tensors = tuple(t.to(device) for t in tensors)
    for start in range(0, len(tensors[0]), batch_size):
        yield tuple(t[start:start + batch_size] for t in tensors)


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, *, batch_size: int | None = None, device=None) -> Tensor:
    """The model's predicted class per image (on the CPU), in eval mode (restored after), in the device's precision."""
    device = device or next(model.parameters()).device

    def classify(part: Tensor) -> Tensor:
        with autocast(device):
            found = [model(x).argmax(dim=1) for (x,) in _batches(part, batch_size=batch_size, device=device, kind="forward")]
        return torch.cat([torch.empty(0, dtype=torch.long, device=device), *found]).cpu()

    with evaluating(model):
        return sharded(classify, images)


def accuracy(model: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int | None = None, device=None) -> float:
    """Fraction of images the model classifies as their label."""
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}")
    return float((predict(model, images, batch_size=batch_size, device=device) == labels.cpu()).float().mean())


def adversarial_examples(model: nn.Module, images: Tensor, labels: Tensor, attack: Attack, *, batch_size: int | None = None,
                         seed: int = 0, device=None, **options) -> Tensor:
    """Attack every image in batches; returns the adversarial images on the CPU. Seeded per call (and process)."""
    device = torch.device(device or next(model.parameters()).device)
    generator = torch.Generator(device=device).manual_seed(process_seed(seed))

    def attack_part(x_part: Tensor, y_part: Tensor) -> Tensor:
        found = [attack.run(model, x, y, generator, **options)
                 for x, y in _batches(x_part, y_part, batch_size=batch_size, device=device, kind="attack")]
        return torch.cat([x_part[:0].to(device), *found]).cpu().contiguous()

    return sharded(attack_part, images, labels)


def robust_accuracy(model: nn.Module, images: Tensor, labels: Tensor, attack: Attack, *, batch_size: int | None = None,
                    seed: int = 0, device=None) -> float:
    """Fraction of images still classified correctly after the untargeted attack."""
    adversarial = adversarial_examples(model, images, labels, attack, batch_size=batch_size, seed=seed, device=device)
    return accuracy(model, adversarial, labels, batch_size=batch_size, device=device)


def sweep(model: nn.Module, images: Tensor, labels: Tensor, *, norm: str, eps: float, steps=(10, 25, 100),
          restarts=(1, 2), tolerance: float = 0.005, reference: float | None = None, batch_size: int | None = None, seed: int = 0,
          device=None, measure: Callable[[Attack], float] | None = None) -> dict:
    """Robust accuracy under the project's PGD (:class:`Attack` defaults) for every (steps, restarts)
    pair, and where it plateaus.

    The plateau is the cheapest setting (fewest steps x restarts) whose accuracy is within
    ``tolerance`` of the lowest accuracy found; ``converged`` says whether the strongest setting
    itself is within ``tolerance`` of the one before it in cost, i.e. whether more attack would
    likely change the number. ``reference`` (e.g. AutoAttack's robust accuracy on the same images)
    adds ``gap``: the plateau's accuracy minus the reference. ``measure(attack)``: the robust accuracy
    under ``attack`` (default: :func:`robust_accuracy` on the images), e.g. one that remembers.
    """
    if measure is None:
        def measure(attack: Attack) -> float:
            return robust_accuracy(model, images, labels, attack, batch_size=batch_size, seed=seed, device=device)
    rows = []
    for step_count in sorted(steps):
        for restart_count in sorted(restarts):
            attack = Attack(norm, eps, step_count, restart_count)
            rows.append({**attack.to_dict(), "accuracy": measure(attack)})
    rows.sort(key=lambda row: (row["steps"] * row["restarts"], row["steps"]))
    lowest = min(row["accuracy"] for row in rows)
    plateau = next(row for row in rows if row["accuracy"] <= lowest + tolerance)
    converged = len(rows) < 2 or abs(rows[-1]["accuracy"] - rows[-2]["accuracy"]) <= tolerance
    result = {"norm": norm, "eps": eps, "rows": rows, "lowest_accuracy": lowest, "plateau": plateau,
              "tolerance": tolerance, "converged": converged}
    if reference is not None:
        result.update(reference=reference, gap=plateau["accuracy"] - reference)
    return result


def transfer(source: nn.Module, target: nn.Module, images: Tensor, labels: Tensor, attack: Attack, *,
             batch_size: int | None = None, seed: int = 0, device=None, adversarial: Tensor | None = None) -> dict:
    """How often adversarial examples made on ``source`` fool ``target``.

    Success rate = the fraction of the images that ``target`` classifies correctly when clean
    but misclassifies after the attack on ``source``; the counts behind it are returned too.
    ``adversarial``: the source's adversarial examples for these images, attack and seed, when
    already made (several targets share them); None makes them.
    """
    if adversarial is None:
        adversarial = adversarial_examples(source, images, labels, attack, batch_size=batch_size, seed=seed, device=device)
    elif adversarial.shape != images.shape:
        raise ValueError(f"adversarial must have the images' shape {tuple(images.shape)}, got {tuple(adversarial.shape)}")
    clean_right = predict(target, images, batch_size=batch_size, device=device) == labels.cpu()
    fooled = predict(target, adversarial, batch_size=batch_size, device=device) != labels.cpu()
    source_fooled = predict(source, adversarial, batch_size=batch_size, device=device) != labels.cpu()
    eligible = int(clean_right.sum())
    return {"attack": attack.to_dict(), "images": len(images), "target_clean_correct": eligible,
            "transferred": int((clean_right & fooled).sum()),
            "success_rate": float((clean_right & fooled).sum() / max(eligible, 1)),
            "source_success_rate": float(source_fooled.float().mean())}


@dataclass(frozen=True)
class Evaluation:
    """How a model's robustness is measured: three attacks at ``norm`` radius ``eps``, on the same images.

    * the paper's PGD convention (:meth:`Attack.paper`, ``paper_steps`` steps), for comparison with
      its numbers;
    * the project's PGD (:class:`Attack` defaults with ``pgd_steps`` steps), cheap and close to
      AutoAttack, also run at ``eps_factors`` x eps for the check that accuracy falls with eps;
    * AutoAttack (``autoattack``: its version), the evaluation of record.

    ``images``: the first this many test images (None: all of them); ``sweep``: the (steps,
    restarts) grid of :func:`sweep` ({"steps": (...), "restarts": (...)}), or None for no sweep.
    """

    norm: str
    eps: float
    images: int | None = None
    paper_steps: int = 20
    pgd_steps: int = 25
    autoattack: str = "standard"
    eps_factors: tuple[float, ...] = (0.5, 2.0)
    sweep: dict | None = None

    def __post_init__(self) -> None:
        _ = self.pgd, self.paper  # building them validates norm, eps and the step counts
        if self.autoattack not in VERSIONS or self.autoattack == "custom":
            raise ValueError(f"autoattack must be one of {VERSIONS[:-1]}, got {self.autoattack!r}")
        if self.images is not None and (isinstance(self.images, bool) or not isinstance(self.images, int) or self.images < 1):
            raise ValueError(f"images must be a positive integer or None, got {self.images!r}")
        object.__setattr__(self, "eps_factors", tuple(self.eps_factors))
        if any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < math.inf for f in self.eps_factors):
            raise ValueError(f"eps_factors must be positive numbers, got {self.eps_factors!r}")

    @property
    def paper(self) -> Attack:
        return Attack.paper(self.norm, self.eps, self.paper_steps)

    @property
    def pgd(self) -> Attack:
        return Attack(self.norm, self.eps, self.pgd_steps)

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(model: nn.Module, images: Tensor, labels: Tensor, evaluation: Evaluation, *, seed: int = 0, device=None,
             state: str | Path | None = None, progress: bool = False) -> dict:
    """Clean accuracy, the three robust accuracies of ``evaluation`` and the sanity flags, on the
    first ``evaluation.images`` images. Every attack and prediction runs in fp32, on any device
    (:mod:`empirical.device`).

    ``state``: a folder where the evaluation keeps what it has measured, so that a rerun after a kill
    resumes: AutoAttack's state (``autoattack.json``, :func:`autoattack`) and each PGD accuracy
    (``pgd.json``, for this model, these images and this seed; one made for others is refused).

    Returns a JSON-ready dict: ``images``, ``clean``, ``paper_pgd``, ``pgd`` (each with its attack's
    settings and ``accuracy``), ``autoattack`` (:meth:`AutoAttackResult.to_dict`), ``eps_curve``
    ([eps, accuracy] of the project's PGD, from eps 0), ``zero_gradients``, ``sweep`` (if asked
    for) and ``flags`` (name and message of each).
    """
    if not isinstance(evaluation, Evaluation):
        raise TypeError(f"evaluation must be an Evaluation, got {type(evaluation).__name__}")
    with policy(precision="fp32"):  # robust accuracy never rests on bf16 arithmetic (empirical.device)
        count = len(images) if evaluation.images is None else min(evaluation.images, len(images))
        x, y = images[:count], labels[:count]
        state = None if state is None else Path(state)
        measure = _remembered(lambda attack: robust_accuracy(model, x, y, attack, seed=seed, device=device),
                              None if state is None else state / "pgd.json", _fingerprint(model, x, y, seed))
        clean = accuracy(model, x, y, device=device)
        paper, pgd = measure(evaluation.paper), measure(evaluation.pgd)
        record = autoattack(model, x, y, norm=evaluation.norm, eps=evaluation.eps, version=evaluation.autoattack, seed=seed,
                            device=device, state=None if state is None else state / "autoattack.json",
                            progress=progress).to_dict()
        curve = [(0.0, clean), (evaluation.eps, pgd)] + [
            (factor * evaluation.eps, measure(replace(evaluation.pgd, eps=factor * evaluation.eps)))
            for factor in evaluation.eps_factors if factor != 1]
        zeros = zero_gradient_count(model, x, y, device=device)
        result = {"images": count, "clean": clean,
                  "paper_pgd": {"attack": evaluation.paper.to_dict(), "accuracy": paper},
                  "pgd": {"attack": evaluation.pgd.to_dict(), "accuracy": pgd},
                  "autoattack": record, "eps_curve": sorted(curve), "zero_gradients": zeros}
        if evaluation.sweep:
            result["sweep"] = sweep(model, x, y, norm=evaluation.norm, eps=evaluation.eps, reference=record["robust"],
                                    measure=measure, **evaluation.sweep)
        raised = flags(clean=clean, robust={"paper PGD": paper, "PGD": pgd, "AutoAttack": record["robust"]},
                       eps_curve=curve, autoattack=record, zero_gradients=zeros, images=count)
        result["flags"] = [flag.to_dict() for flag in raised]
        return result


def _remembered(measure: Callable[[Attack], float], path: Path | None, fingerprint: dict) -> Callable[[Attack], float]:
    """``measure`` with each attack's accuracy kept in the JSON file ``path`` (None: kept nowhere) as it
    is measured; a file whose ``fingerprint`` (model, images, seed) differs is refused."""
    kept = {"fingerprint": fingerprint, "accuracy": {}}
    if path is not None and path.is_file():
        kept = json.loads(path.read_text())
        if kept.get("fingerprint") != fingerprint:
            differing = sorted(k for k in fingerprint if kept.get("fingerprint", {}).get(k) != fingerprint[k])
            raise ValueError(f"the PGD measurements in {path} were made for another model, other images or another "
                             f"seed (differing: {differing}); delete the file or pass another state folder")

    def remembered(attack: Attack) -> float:
        key = json.dumps(attack.to_dict(), sort_keys=True)
        if key not in kept["accuracy"]:
            kept["accuracy"][key] = measure(attack)
            if path is not None and is_main():
                write_json(path, kept)
        return kept["accuracy"][key]

    return remembered


def _fingerprint(model: nn.Module, images: Tensor, labels: Tensor, seed: int) -> dict:
    """What a kept measurement depends on besides its attack: SHA-256 digests of the model's state and of
    the images and labels, and the seed."""
    return {"model": model_sha256(model), "images": tensor_sha256(images, labels), "count": len(images),
            "seed": seed}

"""Clean and robust accuracy, the attack-strength sweep, and transfer between models.

Under torchrun, every function here splits the images across the processes
(:func:`empirical.distributed.sharded`) and returns the whole result on each.

Robust accuracy is the fraction of examples still classified correctly after an untargeted PGD
attack (:func:`empirical.attacks.pgd`). Because a weak attack overstates robustness, :func:`sweep`
runs the attack with more steps and restarts and reports where the accuracy stops falling.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .attacks import Attack
from .distributed import process_seed, sharded
from .models import evaluating


def _batches(*tensors: Tensor, batch_size: int, device):
    """Aligned slices of equally long tensors, moved to ``device``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if len({len(t) for t in tensors}) != 1:
        raise ValueError(f"images and labels differ in length: {[len(t) for t in tensors]}")
    for start in range(0, len(tensors[0]), batch_size):
        yield tuple(t[start:start + batch_size].to(device) for t in tensors)


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, *, batch_size: int = 512, device=None) -> Tensor:
    """The model's predicted class per image, in eval mode (restored after)."""
    device = device or next(model.parameters()).device

    def classify(part: Tensor) -> Tensor:
        return torch.cat([torch.empty(0, dtype=torch.long)] +
                         [model(x).argmax(dim=1).cpu() for (x,) in _batches(part, batch_size=batch_size, device=device)])

    with evaluating(model):
        return sharded(classify, images)


def accuracy(model: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int = 512, device=None) -> float:
    """Fraction of images the model classifies as their label."""
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}")
    return float((predict(model, images, batch_size=batch_size, device=device) == labels.cpu()).float().mean())


def adversarial_examples(model: nn.Module, images: Tensor, labels: Tensor, attack: Attack, *, batch_size: int = 256,
                         seed: int = 0, device=None, **options) -> Tensor:
    """Attack every image in batches; returns the adversarial images on the CPU. Seeded per call (and process)."""
    device = torch.device(device or next(model.parameters()).device)
    generator = torch.Generator(device=device).manual_seed(process_seed(seed))

    def attack_part(x_part: Tensor, y_part: Tensor) -> Tensor:
        return torch.cat([x_part[:0].cpu()] + [attack.run(model, x, y, generator, **options).cpu()
                                               for x, y in _batches(x_part, y_part, batch_size=batch_size, device=device)])

    return sharded(attack_part, images, labels)


def robust_accuracy(model: nn.Module, images: Tensor, labels: Tensor, attack: Attack, *, batch_size: int = 256,
                    seed: int = 0, device=None) -> float:
    """Fraction of images still classified correctly after the untargeted attack."""
    adversarial = adversarial_examples(model, images, labels, attack, batch_size=batch_size, seed=seed, device=device)
    return accuracy(model, adversarial, labels, batch_size=batch_size, device=device)


def sweep(model: nn.Module, images: Tensor, labels: Tensor, *, norm: str, eps: float, steps=(10, 20, 50, 100),
          restarts=(1, 4), tolerance: float = 0.005, batch_size: int = 256, seed: int = 0, device=None) -> dict:
    """Robust accuracy for every (steps, restarts) pair, and where it plateaus.

    The plateau is the cheapest setting (fewest steps x restarts) whose accuracy is within
    ``tolerance`` of the lowest accuracy found; ``converged`` says whether the strongest setting
    itself is within ``tolerance`` of the one before it in cost, i.e. whether more attack would
    likely change the number.
    """
    rows = []
    for step_count in sorted(steps):
        for restart_count in sorted(restarts):
            attack = Attack(norm, eps, step_count, restart_count)
            rows.append({**attack.to_dict(), "accuracy": robust_accuracy(model, images, labels, attack, batch_size=batch_size,
                                                                         seed=seed, device=device)})
    rows.sort(key=lambda row: (row["steps"] * row["restarts"], row["steps"]))
    lowest = min(row["accuracy"] for row in rows)
    plateau = next(row for row in rows if row["accuracy"] <= lowest + tolerance)
    converged = len(rows) < 2 or abs(rows[-1]["accuracy"] - rows[-2]["accuracy"]) <= tolerance
    return {"norm": norm, "eps": eps, "rows": rows, "lowest_accuracy": lowest, "plateau": plateau,
            "tolerance": tolerance, "converged": converged}


def transfer(source: nn.Module, target: nn.Module, images: Tensor, labels: Tensor, attack: Attack, *,
             batch_size: int = 256, seed: int = 0, device=None) -> dict:
    """How often adversarial examples made on ``source`` fool ``target``.

    Success rate = the fraction of the images that ``target`` classifies correctly when clean
    but misclassifies after the attack on ``source``; the counts behind it are returned too.
    """
    adversarial = adversarial_examples(source, images, labels, attack, batch_size=batch_size, seed=seed, device=device)
    clean_right = predict(target, images, batch_size=batch_size, device=device) == labels.cpu()
    fooled = predict(target, adversarial, batch_size=batch_size, device=device) != labels.cpu()
    source_fooled = predict(source, adversarial, batch_size=batch_size, device=device) != labels.cpu()
    eligible = int(clean_right.sum())
    return {"attack": attack.to_dict(), "images": len(images), "target_clean_correct": eligible,
            "transferred": int((clean_right & fooled).sum()),
            "success_rate": float((clean_right & fooled).sum() / max(eligible, 1)),
            "source_success_rate": float(source_fooled.float().mean())}

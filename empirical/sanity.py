"""Sanity flags on a robustness evaluation: the warnings AutoAttack's users expect.

A flag does not change a number; it says why the number may not be trusted. Each has a stable
name (results.json, report.md) and a message with the numbers behind it. The checks follow
AutoAttack's own (its flags_doc.md) and Carlini et al., "On evaluating adversarial robustness"
(2019): robust accuracy must not exceed clean accuracy or rise with eps, a black-box attack must
not beat the white-box ones, and gradient-based attacks need nonzero gradients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .distributed import sharded
from .models import evaluating

SLACK = 0.002  # accuracy differences up to this are noise (AutoAttack's threshold for its Square check)
PGD_GAP = 0.01  # the project's PGD may leave at most this much more than AutoAttack

FLAGS = {
    "robust_above_clean": "a robust accuracy exceeds the clean accuracy on the same images",
    "rises_with_eps": "robust accuracy rises with eps: the attack fails at a larger radius (masking, or a bug)",
    "square_beats_white_box": "the black-box Square attack fooled images the white-box attacks did not: "
                              "the gradients mislead (gradient masking)",
    "zero_gradients": "some images have an exactly zero input gradient, where gradient-based attacks stall",
    "pgd_weaker_than_autoattack": f"the project's PGD leaves more than {100 * PGD_GAP:g} point more robust accuracy "
                                  "than AutoAttack: use AutoAttack's number for this model",
    "randomized_defense": "the model's outputs vary between identical calls (AutoAttack: use version='rand')",
    "probability_output": "the model seems to output probabilities, not logits (AutoAttack's check)",
    "dynamic_defense": "the model's forward pass computes gradients (AutoAttack: may be insufficient)",
    "too_few_classes": "too few classes for AutoAttack's targeted attacks",
    "autoattack_warning": "another warning from AutoAttack",
}
_AUTOATTACK = (("randomized defense", "randomized_defense"), ("probability distribution", "probability_output"),
               ("dynamic defense", "dynamic_defense"), ("zero gradient", "zero_gradients"),
               ("Square Attack has decreased", "square_beats_white_box"), ("classes", "too_few_classes"))


@dataclass(frozen=True)
class Flag:
    """A named warning about an evaluation."""

    name: str
    message: str

    def __post_init__(self) -> None:
        if self.name not in FLAGS:
            raise ValueError(f"unknown flag {self.name!r}; the flags are {sorted(FLAGS)}")

    def to_dict(self) -> dict:
        return asdict(self)


def flags(*, clean: float, robust: Mapping[str, float], eps_curve: Sequence[tuple[float, float]] = (),
          autoattack: Mapping | None = None, zero_gradients: int = 0, images: int = 0) -> list[Flag]:
    """The flags an evaluation raises.

    ``robust``: robust accuracy per evaluation name (e.g. "PGD", "AutoAttack") on the same images
    as ``clean``; ``eps_curve``: (eps, robust accuracy) pairs of one attack; ``autoattack``: an
    :class:`empirical.autoattack.AutoAttackResult` as a dict (with ``after``, ``warnings``);
    ``zero_gradients``: how many of the ``images`` have an exactly zero input gradient.
    """
    found: dict[str, Flag] = {}

    def add(name: str, message: str) -> None:
        found.setdefault(name, Flag(name, message))

    for name, value in robust.items():
        if value > clean:
            add("robust_above_clean", f"{name}: robust {100 * value:.1f}% > clean {100 * clean:.1f}%")
    curve = sorted(eps_curve)
    for (eps_a, a), (eps_b, b) in zip(curve, curve[1:]):
        if b > a + SLACK:
            add("rises_with_eps", f"robust accuracy {100 * a:.1f}% at eps {eps_a:g} but {100 * b:.1f}% at eps {eps_b:g}")
    if autoattack is not None:
        steps = list(autoattack["after"].items())
        for (_, before), (name, after) in zip(steps, steps[1:]):
            if name == "square" and before - after > SLACK:
                add("square_beats_white_box", f"Square lowered robust accuracy from {100 * before:.1f}% to "
                                              f"{100 * after:.1f}% after the white-box attacks")
        for message in autoattack.get("warnings", ()):
            name = next((flag for text, flag in _AUTOATTACK if text in message), "autoattack_warning")
            add(name, f"AutoAttack: {message}")
        pgd = robust.get("PGD")
        if pgd is not None and pgd > autoattack["robust"] + PGD_GAP:
            add("pgd_weaker_than_autoattack", f"PGD {100 * pgd:.1f}% vs AutoAttack {100 * autoattack['robust']:.1f}%")
    if zero_gradients:
        add("zero_gradients", f"{zero_gradients} of {images} images have a zero input gradient of the cross-entropy")
    return list(found.values())


def zero_gradient_count(model: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int = 256, device=None) -> int:
    """How many images have an exactly zero gradient of the cross-entropy with respect to the input."""
    device = torch.device(device or next(model.parameters()).device)

    def zero(x_part: Tensor, y_part: Tensor) -> Tensor:
        found = [torch.zeros(0, dtype=torch.bool)]
        with evaluating(model):
            for start in range(0, len(x_part), batch_size):
                x = x_part[start:start + batch_size].to(device).requires_grad_(True)
                y = y_part[start:start + batch_size].to(device)
                (gradient,) = torch.autograd.grad(F.cross_entropy(model(x).float(), y, reduction="sum"), x)
                found.append((gradient.flatten(1).abs().sum(dim=1) == 0).cpu())
        return torch.cat(found)

    return int(sharded(zero, images, labels).sum())

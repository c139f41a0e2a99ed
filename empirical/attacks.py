"""Projected gradient descent in l2 and linf balls, for images in [0, 1].

pgd maximises a per-example objective J(x') over the set {x': ||x' - x|| <= eps, 0 <= x' <= 1}
(for ``targeted=True`` it minimises it). J is the cross-entropy of the model's logits against
``y`` unless a ``loss(model, x_adv, y) -> (N,)`` is given (e.g. a representation distance for
inversion). Each step moves by ``step_size`` along the steepest ascent direction of the norm
(g / ||g||_2 for l2, sign(g) for linf), then projects onto the ball and clips to [0, 1]. With
``schedule="cosine"`` step t of T moves by step_size (1 + cos(pi t / T)) / 2 instead: large
steps first, to cross the ball, then ever smaller ones, to settle on the best point.

Restarts run as one batch, each from a fresh uniform draw in the ball, and the best iterate of
every example over all steps and restarts is returned (best = largest J, or smallest if targeted).

:class:`Attack` holds an attack's settings. Its defaults are the project's PGD evaluation: the
margin loss toward each of the 9 classes the model ranks highest after the label, in turn (the
multi-targeted attack of Gowal et al. 2019, the white-box half of AutoAttack), 25 steps whose
length falls from 2 eps to 0 along a cosine. The path, (T + 1) eps for T steps, grows with the
step count, and the last steps are fine. The paper's convention (Madry et al.; its robustness
library), cross-entropy with constant steps of 2.5 eps / steps, is :meth:`Attack.paper`: its path
is 2.5 eps whatever the step count, so more steps never help it. benchmarks/evaluation_of_record.py
measures both against AutoAttack.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .device import autocast, layout
from .models import evaluating

NORMS = ("l2", "linf")
LOSSES = ("ce", "margin")
SCHEDULES = ("constant", "cosine")
Loss = Callable[[nn.Module, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Attack:
    """A PGD attack's settings: the threat model (norm, eps), its objective and its strength.

    ``loss``: "ce" (cross-entropy of the label) or "margin" (max_{j != y} z_j - z_y on the logits z,
    Carlini and Wagner). ``targets`` = k > 0 runs the attack once per target class t, the k classes
    the model ranks highest after y on the clean image, each run ascending the targeted loss
    (z_t - z_y, or -cross-entropy of t) on the images no earlier run misclassified; k = 0 is the
    untargeted attack. ``step_size`` None: steps falling from 2 eps to 0 along a cosine (measured on
    Fashion-MNIST's standard fast net: 21.6% left after 25 steps, AutoAttack 21.4%, where constant
    steps of eps / 4 left 25.4%); a number: that constant step.
    """

    norm: str
    eps: float
    steps: int = 25
    restarts: int = 1
    step_size: float | None = None
    random_start: bool = True
    loss: str = "margin"
    targets: int = 9

    def __post_init__(self) -> None:
        _check_settings(self.norm, self.eps, self.steps, self.step_size or 0.0, self.restarts, self.random_start)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if isinstance(self.targets, bool) or not isinstance(self.targets, int) or self.targets < 0:
            raise ValueError(f"targets must be an integer >= 0, got {self.targets!r}")

    @classmethod
    def paper(cls, norm: str, eps: float, steps: int = 20, restarts: int = 1, random_start: bool = True) -> Attack:
        """The paper's PGD: untargeted cross-entropy, steps of 2.5 eps / steps (Madry et al.; robustness library)."""
        step_size = 2.5 * eps / max(steps, 1) if isinstance(steps, int) and isinstance(eps, (int, float)) else None
        return cls(norm, eps, steps, restarts, step_size, random_start, loss="ce", targets=0)

    @property
    def step(self) -> tuple[float, str]:
        """pgd's (step_size, schedule): (2 eps, "cosine") by default, else (``step_size``, "constant")."""
        return (2 * self.eps, "cosine") if self.step_size is None else (self.step_size, "constant")

    def run(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator | None = None, **options) -> Tensor:
        """Adversarial examples for ``x`` with these settings; ``options`` (targeted, loss, box) pass to pgd.

        With ``targets`` > 0 an example's result is its first run's that the model misclassifies, else
        the one with the largest margin max_{j != y} z_j - z_y. Targets choose their own classes, so
        they take neither ``targeted`` nor a ``loss`` hook.
        """
        step_size, schedule = self.step
        settings = {"norm": self.norm, "eps": self.eps, "steps": self.steps, "step_size": step_size, "schedule": schedule,
                    "restarts": self.restarts, "random_start": self.random_start, "generator": generator}
        if self.targets == 0:
            loss = options.pop("loss", None) or (cross_entropy if self.loss == "ce" else margin)
            return pgd(model, x, y, loss=loss, **settings, **options)
        if {"targeted", "loss"} & set(options):
            raise ValueError(f"an Attack with targets={self.targets} picks its own target classes; "
                             "use targets=0 for a targeted attack or a loss hook")
        _validate(x, y, **{k: v for k, v in settings.items() if k not in ("generator", "schedule")},
                  box=options.get("box", (0.0, 1.0)))
        with torch.no_grad(), evaluating(model), autocast(x.device):
            order = _others(model(x).float(), y).argsort(dim=1, descending=True)
            best, best_margin = x.detach().clone(), margin(model, x, y)
        toward = targeted_cross_entropy if self.loss == "ce" else targeted_margin
        for rank in range(min(self.targets, order.shape[1] - 1)):
            left = best_margin <= 0  # not yet misclassified
            if not left.any():
                break
            pair = torch.stack([y[left], order[left, rank]], dim=1)
            found = pgd(model, x[left], pair, loss=toward, **settings, **options)
            with torch.no_grad(), evaluating(model), autocast(x.device):
                found_margin = margin(model, found, y[left])
            better = found_margin > best_margin[left]
            index = left.nonzero()[:, 0][better]
            best[index], best_margin[index] = found[better], found_margin[better]
        return best

    def to_dict(self) -> dict:
        return asdict(self)


def cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Per-example cross-entropy of ``model(x)`` against labels ``y``."""
    return F.cross_entropy(model(x).float(), y, reduction="none")


def margin(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """max_{j != y} z_j - z_y on the logits z = model(x): positive exactly when x is misclassified."""
    logits = model(x).float()
    return _others(logits, y).amax(dim=1) - logits.gather(1, y[:, None])[:, 0]


def targeted_margin(model: nn.Module, x: Tensor, pair: Tensor) -> Tensor:
    """z_t - z_y for rows (y, t) of ``pair``: ascending it moves x from class y toward t."""
    logits = model(x).float()
    return logits.gather(1, pair[:, 1:2])[:, 0] - logits.gather(1, pair[:, :1])[:, 0]


def targeted_cross_entropy(model: nn.Module, x: Tensor, pair: Tensor) -> Tensor:
    """-cross-entropy of t for rows (y, t) of ``pair``."""
    return -F.cross_entropy(model(x).float(), pair[:, 1], reduction="none")


def _others(logits: Tensor, y: Tensor) -> Tensor:
    """The logits with each row's label entry set to -inf."""
    return logits.scatter(1, y[:, None], -torch.inf)


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: str,
    eps: float,
    steps: int,
    step_size: float,
    schedule: str = "constant",
    targeted: bool = False,
    restarts: int = 1,
    random_start: bool = True,
    loss: Loss | None = None,
    generator: torch.Generator | None = None,
    box: tuple[float, float] | None = (0.0, 1.0),
) -> Tensor:
    """Adversarial examples for ``x`` (N, C, H, W in [0, 1]) within ``norm`` distance ``eps``.

    The model is put in eval mode for the attack and restored after; its parameter gradients are
    left untouched. Forward and backward passes run in the device's precision and layout
    (:mod:`empirical.device`: bf16 autocast and channels_last where the device multiplies bf16
    natively); J and the steps are fp32.
    ``generator`` (on x's device) seeds the random starts. Returns x_adv, detached,
    with x_adv in ``box`` (default [0, 1], images; None for unbounded inputs such as Gaussian
    samples) and ||x_adv - x|| <= eps per example.
    """
    _validate(x, y, norm, eps, steps, step_size, restarts, random_start, box)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    low, high = box or (-torch.inf, torch.inf)
    loss = cross_entropy if loss is None else loss
    sign = -1.0 if targeted else 1.0  # ascend sign * J
    n = len(x)
    origin = layout(x.detach().repeat(restarts, *([1] * (x.dim() - 1))))
    labels = y.repeat(restarts) if y.dim() == 1 else y.repeat(restarts, *([1] * (y.dim() - 1)))
    # one draw per restart, in turn: restart 0 starts where a single-restart attack would
    start = origin + torch.cat([_uniform_in_ball(x, norm, eps, generator) for _ in range(restarts)]) if random_start else origin
    current = start.clamp(low, high)
    best = current.clone()
    best_value = torch.full((len(origin),), -torch.inf, device=x.device)
    with evaluating(model):
        for step in range(steps + 1):  # no host synchronisation inside: masks select with torch.where
            current.requires_grad_(True)
            with autocast(x.device):
                value = sign * loss(model, current, labels).float()
            improved = value.detach() > best_value
            best = torch.where(improved.view(-1, *([1] * (x.dim() - 1))), current.detach(), best)
            best_value = torch.where(improved, value.detach(), best_value)
            if step == steps:
                break
            (gradient,) = torch.autograd.grad(value.sum(), current)
            with torch.no_grad():
                size = step_size if schedule == "constant" else step_size * (1 + math.cos(math.pi * step / steps)) / 2
                current = _project(current + size * _steepest(gradient, norm), origin, norm, eps).clamp(low, high)
    choice = best_value.view(restarts, n).argmax(dim=0)
    return best.view(restarts, n, *x.shape[1:])[choice, torch.arange(n, device=x.device)].detach()


def distance(a: Tensor, b: Tensor, norm: str) -> Tensor:
    """Per-example ||a - b|| in the given norm, shape (N,)."""
    difference = (a - b).flatten(1)
    return difference.norm(dim=1) if norm == "l2" else difference.abs().amax(dim=1)


def _steepest(gradient: Tensor, norm: str) -> Tensor:
    if norm == "linf":
        return gradient.sign()
    scale = gradient.flatten(1).norm(dim=1).clamp_min(1e-12)
    return gradient / scale.view(-1, *([1] * (gradient.dim() - 1)))


def _project(x: Tensor, origin: Tensor, norm: str, eps: float) -> Tensor:
    """Onto the eps-ball around origin. The caller then clips into the box, which keeps it in the
    ball: the box contains origin and clipping coordinate-wise toward it never lengthens the difference."""
    delta = x - origin
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        length = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        delta = delta * (eps / length).clamp(max=1.0).view(-1, *([1] * (delta.dim() - 1)))
    return origin + delta


def _uniform_in_ball(x: Tensor, norm: str, eps: float, generator: torch.Generator | None) -> Tensor:
    """A draw uniform in the eps-ball of the norm, one per example."""
    if norm == "linf":
        return (2 * torch.rand(x.shape, generator=generator, device=x.device) - 1) * eps
    direction = torch.randn(x.shape, generator=generator, device=x.device)
    direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
    dim = x[0].numel()
    radius = eps * torch.rand(len(x), generator=generator, device=x.device) ** (1 / dim)
    return direction * radius.view(-1, *([1] * (x.dim() - 1)))


def _validate(x, y, norm, eps, steps, step_size, restarts, random_start, box) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise ValueError(f"x must be a floating-point tensor of shape (N, ...), e.g. images (N, C, H, W), got {_shape(x)}")
    if not isinstance(y, Tensor) or len(y) != len(x):
        raise ValueError(f"y must be a tensor with one entry per image ({len(x)}), got {_shape(y)}")
    if box is not None and x.numel() and (x.min() < box[0] or x.max() > box[1]):
        raise ValueError(f"x must lie in [{box[0]:g}, {box[1]:g}], got values in [{x.min().item():.4g}, {x.max().item():.4g}]")
    _check_settings(norm, eps, steps, step_size, restarts, random_start)


def _check_settings(norm, eps, steps, step_size, restarts, random_start) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    for name, value in (("eps", eps), ("step_size", step_size)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    for name, value, low in (("steps", steps, 0), ("restarts", restarts, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if restarts > 1 and not random_start:
        raise ValueError(f"restarts={restarts} without random_start would repeat the same attack; pass random_start=True")


def _shape(value) -> str:
    return f"shape {tuple(value.shape)} dtype {value.dtype}" if isinstance(value, Tensor) else repr(type(value).__name__)

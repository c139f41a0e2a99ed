"""Projected gradient descent in l2 and linf balls, for images in [0, 1].

pgd maximises a per-example objective J(x') over the set {x': ||x' - x|| <= eps, 0 <= x' <= 1}
(for ``targeted=True`` it minimises it). J is the cross-entropy of the model's logits against
``y`` unless a ``loss(model, x_adv, y) -> (N,)`` is given (e.g. a representation distance for
inversion). Each step moves by ``step_size`` along the steepest ascent direction of the norm
(g / ||g||_2 for l2, sign(g) for linf), then projects onto the ball and clips to [0, 1].

Restarts run as one batch, each from a fresh uniform draw in the ball, and the best iterate of
every example over all steps and restarts is returned (best = largest J, or smallest if targeted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models import evaluating

NORMS = ("l2", "linf")
Loss = Callable[[nn.Module, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Attack:
    """A PGD attack's settings: the threat model (norm, eps) and its strength (steps, restarts).

    ``step_size`` defaults to 2.5 eps / steps, so the iterates can cross the ball (Madry et al.).
    """

    norm: str
    eps: float
    steps: int = 20
    restarts: int = 1
    step_size: float | None = None
    random_start: bool = True

    def __post_init__(self) -> None:
        _check_settings(self.norm, self.eps, self.steps, self.step_size or 0.0, self.restarts, self.random_start)

    def run(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator | None = None, **options) -> Tensor:
        """pgd with these settings; ``options`` (targeted, loss) pass through."""
        step = 2.5 * self.eps / max(self.steps, 1) if self.step_size is None else self.step_size
        return pgd(model, x, y, norm=self.norm, eps=self.eps, steps=self.steps, step_size=step, restarts=self.restarts,
                   random_start=self.random_start, generator=generator, **options)

    def to_dict(self) -> dict:
        return asdict(self)


def cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Per-example cross-entropy of ``model(x)`` against labels ``y``."""
    return F.cross_entropy(model(x).float(), y, reduction="none")


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: str,
    eps: float,
    steps: int,
    step_size: float,
    targeted: bool = False,
    restarts: int = 1,
    random_start: bool = True,
    loss: Loss | None = None,
    generator: torch.Generator | None = None,
    box: tuple[float, float] | None = (0.0, 1.0),
) -> Tensor:
    """Adversarial examples for ``x`` (N, C, H, W in [0, 1]) within ``norm`` distance ``eps``.

    The model is put in eval mode for the attack and restored after; its parameter gradients are
    left untouched. ``generator`` (on x's device) seeds the random starts. Returns x_adv, detached,
    with x_adv in ``box`` (default [0, 1], images; None for unbounded inputs such as Gaussian
    samples) and ||x_adv - x|| <= eps per example.
    """
    _validate(x, y, norm, eps, steps, step_size, restarts, random_start, box)
    low, high = box or (-torch.inf, torch.inf)
    loss = cross_entropy if loss is None else loss
    sign = -1.0 if targeted else 1.0  # ascend sign * J
    n = len(x)
    origin = x.detach().repeat(restarts, *([1] * (x.dim() - 1)))
    labels = y.repeat(restarts) if y.dim() == 1 else y.repeat(restarts, *([1] * (y.dim() - 1)))
    # one draw per restart, in turn: restart 0 starts where a single-restart attack would
    start = origin + torch.cat([_uniform_in_ball(x, norm, eps, generator) for _ in range(restarts)]) if random_start else origin
    current = start.clamp(low, high)
    best = current.clone()
    best_value = torch.full((len(origin),), -torch.inf, device=x.device)
    with evaluating(model):
        for step in range(steps + 1):
            current.requires_grad_(True)
            value = sign * loss(model, current, labels).float()
            improved = value.detach() > best_value
            best[improved] = current.detach()[improved]
            best_value = torch.where(improved, value.detach(), best_value)
            if step == steps:
                break
            (gradient,) = torch.autograd.grad(value.sum(), current)
            with torch.no_grad():
                current = _project(current + step_size * _steepest(gradient, norm), origin, norm, eps).clamp(low, high)
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

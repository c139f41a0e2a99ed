"""The paper's constructed training sets (Section 3; Appendix C.1).

* Robust / non-robust features, D_R and D_NR (eq. 5-6): for each training pair (x, y), start from
  an independent random training image x0 (or noise, Appendix D.1) and minimise
  ||g(x_r) - g(x)||_2 over x_r in [0, 1] by normalised l2 gradient descent, g the penultimate
  layer of a robust model (D_R) or a standard one (D_NR); the pair is (x_r, y).
* Non-robust features only, D_rand and D_det (Section 3.2): targeted l2 PGD from x toward t
  against a standard model, t uniform over the classes (D_rand) or t = y + 1 mod C (D_det),
  no random start (the paper's library); the pair is (x_adv, t).

Both are deterministic given ``seed`` and return the images as float tensors (never rounded to
uint8, which changes results) with statistics: representation distances, or the attack success.
Under torchrun the images are split across the processes (:func:`empirical.distributed.sharded`)
after the random choices (starts, targets) are made for the whole set, so a sharded construction
equals a single-process one.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .attacks import distance, pgd
from .data import ImageData
from .device import autocast, batch_size as device_batch_size
from .distributed import sharded
from .evaluate import predict
from .models import evaluating

STARTS = ("image", "noise")
MODES = ("rand", "det")
FLAG_SUCCESS_BELOW = 0.9  # a relabelled set whose attack reached fewer targets is flagged


def representation_distance(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """||g(x) - target||_2 per example, g = model.features (a ``loss`` for :func:`empirical.attacks.pgd`)."""
    return (model.features(x).float() - target).flatten(1).norm(dim=1)


def invert(model: nn.Module, images: Tensor, starts: Tensor, *, steps: int, step_size: float, schedule: str = "constant",
           batch_size: int | None = None, device=None, progress: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Images x_r in [0, 1] whose representations match those of ``images``, from ``starts``.

    Normalised l2 descent on ||g(x_r) - g(x)||_2 with no budget (the ball is the whole unit box);
    the best iterate is kept. ``schedule``: "constant" steps (the paper's) or "cosine" (from
    ``step_size`` down to 0). Returns x_r (on the CPU), the final distances and the distances
    relative to ||g(x)||. ``batch_size`` None: the device's (:func:`empirical.device.batch_size`);
    the images stay on the device for the whole construction.
    """
    if images.shape != starts.shape:
        raise ValueError(f"images and starts must have the same shape, got {tuple(images.shape)} and {tuple(starts.shape)}")
    device = torch.device(device or next(model.parameters()).device)
    unbounded = math.sqrt(images[0].numel())  # the diameter of [0, 1]^d: no constraint

    size = device_batch_size(device, "attack") if batch_size is None else batch_size

    def invert_part(images_part: Tensor, starts_part: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        images_part, starts_part = images_part.to(device), starts_part.to(device)
        results, distances, relative = [images_part[:0]], [images_part.new_zeros(0)], [images_part.new_zeros(0)]
        for start in tqdm(range(0, len(images_part), size), desc="invert", disable=not progress, leave=False):
            x, x0 = images_part[start:start + size], starts_part[start:start + size]
            with torch.no_grad(), autocast(device):
                target = model.features(x).float()
            found = pgd(model, x0, target, norm="l2", eps=unbounded, steps=steps, step_size=step_size, schedule=schedule,
                        targeted=True, random_start=False, loss=representation_distance)
            with torch.no_grad(), autocast(device):
                gap = representation_distance(model, found, target)
            results.append(found)
            distances.append(gap)
            relative.append(gap / target.flatten(1).norm(dim=1).clamp_min(1e-12))
        return tuple(torch.cat(parts).cpu().contiguous() for parts in (results, distances, relative))

    with evaluating(model):
        return sharded(invert_part, images.cpu(), starts.cpu())


def features_dataset(model: nn.Module, data: ImageData, *, name: str, steps: int = 1000, step_size: float = 0.1,
                     schedule: str = "constant", start: str = "image", seed: int = 0, batch_size: int | None = None,
                     device=None, progress: bool = True) -> tuple[ImageData, dict]:
    """D_R (``model`` robust) or D_NR (``model`` standard): (x_r, y) with g(x_r) ~ g(x) (eq. 5-6).

    ``steps`` of ``step_size`` on a ``schedule`` (:func:`invert`); the paper: 1000 constant steps of 0.1.
    """
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    generator = torch.Generator().manual_seed(seed)
    n = len(data)
    if start == "image":  # an independent training image: a random permutation without fixed points
        order = torch.randperm(n, generator=generator)
        fixed = order == torch.arange(n)
        order[fixed] = (order[fixed] + 1) % n
        starts = data.images.cpu()[order]
    else:  # Appendix D.1: Gaussian noise around mid grey
        starts = (0.5 + torch.randn(data.images.shape, generator=generator) / 20).clamp(0, 1)
    images, distances, relative = invert(model, data.images.cpu(), starts, steps=steps, step_size=step_size,
                                         schedule=schedule, batch_size=batch_size, device=device, progress=progress)
    steps_text = f"{steps} steps of {step_size}" + (f" falling to 0 ({schedule})" if schedule != "constant" else "")
    constructed = ImageData(images, data.labels.cpu(), data.classes, f"{name} of {data.name}",
                            f"representation inversion ({steps_text}, start={start}, seed={seed})")
    stats = {"representation_distance": _summary(distances), "relative_distance": _summary(relative)}
    return constructed, stats


def relabelled_dataset(model: nn.Module, data: ImageData, *, mode: str, eps: float = 0.5, steps: int = 100,
                       step_size: float = 0.1, seed: int = 0, batch_size: int | None = None, device=None,
                       progress: bool = True) -> tuple[ImageData, dict]:
    """D_rand (``mode="rand"``: t uniform over the classes) or D_det (t = y + 1 mod C): (x_adv, t).

    ``batch_size`` None: the device's (:func:`empirical.device.batch_size`); the images stay on the
    device for the whole construction.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    classes = data.num_classes
    labels = data.labels.cpu()
    if mode == "rand":
        targets = torch.randint(0, classes, (len(data),), generator=torch.Generator().manual_seed(seed))
    else:
        targets = (labels + 1) % classes
    device = torch.device(device or next(model.parameters()).device)

    size = device_batch_size(device, "attack") if batch_size is None else batch_size

    def attack_part(images_part: Tensor, targets_part: Tensor) -> Tensor:
        images_part, targets_part = images_part.to(device), targets_part.to(device)
        adversarial = [images_part[:0]]
        for start in tqdm(range(0, len(images_part), size), desc=f"D_{mode}", disable=not progress, leave=False):
            x, t = images_part[start:start + size], targets_part[start:start + size]
            adversarial.append(pgd(model, x, t, norm="l2", eps=eps, steps=steps, step_size=step_size, targeted=True,
                                   random_start=False))  # pgd attacks in eval mode
        return torch.cat(adversarial).cpu().contiguous()

    images = sharded(attack_part, data.images.cpu(), targets)
    reached = predict(model, images, device=device) == targets
    success = float(reached.float().mean())
    constructed = ImageData(images, targets, data.classes, f"D_{mode} of {data.name}",
                            f"targeted l2 PGD (eps {eps}, {steps} steps of {step_size}, seed={seed})")
    stats = {"success_rate": success, "flagged": success < FLAG_SUCCESS_BELOW,
             "perturbation_norm": _summary(distance(images, data.images.cpu(), "l2")),
             "labels_changed": float((targets != labels).float().mean())}
    return constructed, stats


def _summary(values: Tensor) -> dict:
    values = values.double()
    return {"mean": float(values.mean()), "median": float(values.median()), "max": float(values.max())}

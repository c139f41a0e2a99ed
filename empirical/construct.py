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
from .distributed import sharded
from .evaluate import predict
from .models import evaluating

STARTS = ("image", "noise")
MODES = ("rand", "det")
FLAG_SUCCESS_BELOW = 0.9  # a relabelled set whose attack reached fewer targets is flagged


def representation_distance(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """||g(x) - target||_2 per example, g = model.features (a ``loss`` for :func:`empirical.attacks.pgd`)."""
    return (model.features(x).float() - target).flatten(1).norm(dim=1)


def invert(model: nn.Module, images: Tensor, starts: Tensor, *, steps: int, step_size: float, batch_size: int = 256,
           device=None, progress: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Images x_r in [0, 1] whose representations match those of ``images``, from ``starts``.

    Normalised l2 descent on ||g(x_r) - g(x)||_2 with no budget (the ball is the whole unit box);
    the best iterate is kept. Returns x_r (on the CPU), the final distances and the distances
    relative to ||g(x)||.
    """
    if images.shape != starts.shape:
        raise ValueError(f"images and starts must have the same shape, got {tuple(images.shape)} and {tuple(starts.shape)}")
    device = torch.device(device or next(model.parameters()).device)
    unbounded = math.sqrt(images[0].numel())  # the diameter of [0, 1]^d: no constraint

    def invert_part(images_part: Tensor, starts_part: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        results, distances, relative = [images_part[:0]], [images_part.new_zeros(0)], [images_part.new_zeros(0)]
        for start in tqdm(range(0, len(images_part), batch_size), desc="invert", disable=not progress, leave=False):
            x, x0 = images_part[start:start + batch_size].to(device), starts_part[start:start + batch_size].to(device)
            with torch.no_grad():
                target = model.features(x).float()
            found = pgd(model, x0, target, norm="l2", eps=unbounded, steps=steps, step_size=step_size, targeted=True,
                        random_start=False, loss=representation_distance)
            with torch.no_grad():
                gap = representation_distance(model, found, target)
            results.append(found.cpu())
            distances.append(gap.cpu())
            relative.append((gap / target.flatten(1).norm(dim=1).clamp_min(1e-12)).cpu())
        return torch.cat(results), torch.cat(distances), torch.cat(relative)

    with evaluating(model):
        return sharded(invert_part, images.cpu(), starts.cpu())


def features_dataset(model: nn.Module, data: ImageData, *, name: str, steps: int = 1000, step_size: float = 0.1,
                     start: str = "image", seed: int = 0, batch_size: int = 256, device=None,
                     progress: bool = True) -> tuple[ImageData, dict]:
    """D_R (``model`` robust) or D_NR (``model`` standard): (x_r, y) with g(x_r) ~ g(x) (eq. 5-6)."""
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
                                         batch_size=batch_size, device=device, progress=progress)
    constructed = ImageData(images, data.labels.cpu(), data.classes, f"{name} of {data.name}",
                            f"representation inversion ({steps} steps of {step_size}, start={start}, seed={seed})")
    stats = {"representation_distance": _summary(distances), "relative_distance": _summary(relative)}
    return constructed, stats


def relabelled_dataset(model: nn.Module, data: ImageData, *, mode: str, eps: float = 0.5, steps: int = 100,
                       step_size: float = 0.1, seed: int = 0, batch_size: int = 256, device=None,
                       progress: bool = True) -> tuple[ImageData, dict]:
    """D_rand (``mode="rand"``: t uniform over the classes) or D_det (t = y + 1 mod C): (x_adv, t)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    classes = data.num_classes
    labels = data.labels.cpu()
    if mode == "rand":
        targets = torch.randint(0, classes, (len(data),), generator=torch.Generator().manual_seed(seed))
    else:
        targets = (labels + 1) % classes
    device = torch.device(device or next(model.parameters()).device)

    def attack_part(images_part: Tensor, targets_part: Tensor) -> Tensor:
        adversarial = [images_part[:0]]
        for start in tqdm(range(0, len(images_part), batch_size), desc=f"D_{mode}", disable=not progress, leave=False):
            x = images_part[start:start + batch_size].to(device)
            t = targets_part[start:start + batch_size].to(device)
            adversarial.append(pgd(model, x, t, norm="l2", eps=eps, steps=steps, step_size=step_size, targeted=True,
                                   random_start=False).cpu())  # pgd attacks in eval mode
        return torch.cat(adversarial)

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

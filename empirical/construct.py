"""The paper's constructed training sets (Section 3; Appendix C.1).

* Robust / non-robust features, D_R and D_NR (eq. 5-6): for each training pair (x, y), start from
  an independent random training image x0 (or noise, Appendix D.1) and minimise
  ||g(x_r) - g(x)||_2 over x_r in [0, 1] by normalised l2 gradient descent, g the penultimate
  layer of a robust model (D_R) or a standard one (D_NR); the pair is (x_r, y).
* Non-robust features only, D_rand and D_det (Section 3.2): targeted l2 PGD from x toward t
  against a standard model, t uniform over the classes (D_rand) or t = y + 1 mod C (D_det),
  no random start (the paper's library); the pair is (x_adv, t). Optionally each step averages the
  loss over augmented copies of the image (the training augmentation's crops and flips; Athalye et
  al.'s expectation over transformation), so the perturbation survives the retraining's augmentation.

Both are deterministic given ``seed`` and return the images as float tensors (never rounded to
uint8, which changes results) with statistics: representation distances, or the attack success.
Under torchrun the images are split across the processes (:func:`empirical.distributed.sharded`)
after the random choices (starts, targets) are made for the whole set, so a sharded construction
equals a single-process one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .attacks import distance, pgd
from .chunks import chunked
from .data import Augment, ImageData
from .device import autocast, batch_size as device_batch_size
from .distributed import sharded
from .evaluate import predict
from .models import evaluating

STARTS = ("image", "noise")
MODES = ("rand", "det")
LAYERS = ("features", "logits")
FLAG_SUCCESS_BELOW = 0.9  # a relabelled set whose attack reached fewer targets is flagged
CHUNK_BATCHES = 16  # batches per saved chunk of a construction with a checkpoint folder (2,048 images on a CPU)


def representation(model: nn.Module, x: Tensor, layer: str = "features") -> Tensor:
    """g(x): the penultimate layer (``"features"``, the paper's) or the logits (``"logits"``), in fp32."""
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")
    return (model.features(x) if layer == "features" else model(x)).float()


def representation_distance(model: nn.Module, x: Tensor, target: Tensor, layer: str = "features") -> Tensor:
    """||g(x) - target||_2 per example (a ``loss`` for :func:`empirical.attacks.pgd`)."""
    return (representation(model, x, layer) - target).flatten(1).norm(dim=1)


def invert(model: nn.Module, images: Tensor, starts: Tensor, *, steps: int, step_size: float, schedule: str = "constant",
           layer: str = "features", batch_size: int | None = None, checkpoint: str | Path | None = None,
           chunk_batches: int | None = None, device=None, progress: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Images x_r in [0, 1] whose representations match those of ``images``, from ``starts``.

    Normalised l2 descent on ||g(x_r) - g(x)||_2 with no budget (the ball is the whole unit box);
    the best iterate is kept. ``schedule``: "constant" steps (the paper's) or "cosine" (from
    ``step_size`` down to 0); ``layer``: g (:func:`representation`). Returns x_r (on the CPU), the
    final distances and the distances relative to ||g(x)||. ``batch_size`` None: the device's
    (:func:`empirical.device.batch_size`); the images stay on the device for the whole construction.
    ``checkpoint``: a folder where each finished chunk of ``chunk_batches`` batches (None:
    :data:`CHUNK_BATCHES`) is saved, so that a rerun after a kill resumes at the chunk it was in
    (:mod:`empirical.chunks`).
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
                target = representation(model, x, layer)
            found = pgd(model, x0, target, norm="l2", eps=unbounded, steps=steps, step_size=step_size, schedule=schedule,
                        targeted=True, random_start=False, loss=lambda m, z, g: representation_distance(m, z, g, layer))
            with torch.no_grad(), autocast(device):
                gap = representation_distance(model, found, target, layer)
            results.append(found)
            distances.append(gap)
            relative.append(gap / target.flatten(1).norm(dim=1).clamp_min(1e-12))
        return tuple(torch.cat(parts).cpu().contiguous() for parts in (results, distances, relative))

    settings = {"construction": "inversion", "steps": steps, "step_size": step_size, "schedule": schedule, "layer": layer,
                "batch_size": size}
    with evaluating(model):
        return chunked(lambda x, x0, positions: sharded(invert_part, x, x0), (images.cpu(), starts.cpu()),
                       chunk=_chunk(size, chunk_batches), folder=checkpoint, settings=settings, progress=progress, desc="inversion")


def inversion_starts(data: ImageData, start: str = "image", seed: int = 0) -> Tensor:
    """The start x0 of each image's inversion (on the CPU): another training image drawn by a random
    permutation without fixed points (``"image"``), or Gaussian noise around mid grey (``"noise"``,
    Appendix D.1); a function of ``seed``."""
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    generator = torch.Generator().manual_seed(seed)
    n = len(data)
    if start == "image":
        order = torch.randperm(n, generator=generator)
        fixed = order == torch.arange(n)
        order[fixed] = (order[fixed] + 1) % n
        return data.images.cpu()[order]
    return (0.5 + torch.randn(data.images.shape, generator=generator) / 20).clamp(0, 1)


def features_dataset(model: nn.Module, data: ImageData, *, name: str, steps: int = 1000, step_size: float = 0.1,
                     schedule: str = "constant", start: str = "image", layer: str = "features", seed: int = 0,
                     batch_size: int | None = None, checkpoint: str | Path | None = None, device=None,
                     progress: bool = True) -> tuple[ImageData, dict]:
    """D_R (``model`` robust) or D_NR (``model`` standard): (x_r, y) with g(x_r) ~ g(x) (eq. 5-6).

    ``steps`` of ``step_size`` on a ``schedule`` from :func:`inversion_starts` (``start``, ``seed``),
    matching the ``layer`` (:func:`invert`); the paper: 1000 constant steps of 0.1 from an image,
    on the penultimate layer. ``checkpoint``: a folder for the finished chunks (:func:`invert`).
    """
    starts = inversion_starts(data, start, seed)
    images, distances, relative = invert(model, data.images.cpu(), starts, steps=steps, step_size=step_size,
                                         schedule=schedule, layer=layer, batch_size=batch_size, checkpoint=checkpoint,
                                         device=device, progress=progress)
    steps_text = f"{steps} steps of {step_size}" + (f" falling to 0 ({schedule})" if schedule != "constant" else "")
    where = "" if layer == "features" else f", matching the {layer}"
    constructed = ImageData(images, data.labels.cpu(), data.classes, f"{name} of {data.name}",
                            f"representation inversion ({steps_text}, start={start}, seed={seed}{where})")
    stats = {"representation_distance": _summary(distances), "relative_distance": _summary(relative)}
    return constructed, stats


def relabelling_targets(labels: Tensor, classes: int, mode: str, seed: int = 0) -> Tensor:
    """The new label t of each image (on the CPU): uniform over the classes (``"rand"``, a function of
    ``seed``) or y + 1 mod C (``"det"``)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    labels = labels.cpu()
    if mode == "rand":
        return torch.randint(0, classes, (len(labels),), generator=torch.Generator().manual_seed(seed))
    return (labels + 1) % classes


def augmented_cross_entropy(augment: Augment, copies: int, generator: torch.Generator) -> Callable:
    """A PGD loss: the mean of CE(model(x), t) and CE(model(a_k(x)), t) over ``copies`` augmentations a_k
    drawn afresh at each call from ``generator``; the copies run as one batch."""
    def loss(model: nn.Module, x: Tensor, t: Tensor) -> Tensor:
        views = [x] + [augment.apply(x, *augment.draw(len(x), generator)) for _ in range(copies)]
        values = F.cross_entropy(model(torch.cat(views)).float(), t.repeat(copies + 1), reduction="none")
        return values.view(copies + 1, len(x)).mean(dim=0)
    return loss


def relabelled_dataset(model: nn.Module, data: ImageData, *, mode: str, eps: float = 0.5, steps: int = 100,
                       step_size: float = 0.1, seed: int = 0, augmented_copies: int = 0, augment: Augment = Augment(),
                       guard: nn.Module | None = None, guard_weight: float = 1.0, batch_size: int | None = None,
                       checkpoint: str | Path | None = None, chunk_batches: int | None = None, device=None,
                       progress: bool = True) -> tuple[ImageData, dict]:
    """D_rand (``mode="rand"``: t uniform over the classes) or D_det (t = y + 1 mod C): (x_adv, t).

    ``augmented_copies`` k > 0: each step descends the mean of the target's cross-entropy on the image
    and on k copies under ``augment`` (fresh crops and flips per step, drawn per batch from ``seed`` and
    the batch's first image index, so a construction in pieces that start at batch boundaries draws
    what one in a piece does); KellerJordan/features-not-bugs reports D_det about 35% on CIFAR-10 with
    k = 4 and much worse without. Costs k + 1 forward and backward passes per step.
    With a ``guard`` model, the non-transferable variant (Nakkiran 2019, "adversarial examples are
    just bugs, too"): the attack minimises CE(model(x'), t) + ``guard_weight`` CE(guard(x'), y), so
    x' moves ``model`` to t while keeping the guard's prediction at y; the stats add the share of
    images the guard labels t (``guard_transfer_rate``). ``batch_size`` None: the device's
    (:func:`empirical.device.batch_size`); the images stay on the device for the whole construction.
    ``checkpoint``: a folder where each finished chunk of ``chunk_batches`` batches (None:
    :data:`CHUNK_BATCHES`) is saved, so that a rerun after a kill resumes at the chunk it was in
    (:mod:`empirical.chunks`).
    """
    targets = relabelling_targets(data.labels, data.num_classes, mode, seed)
    labels = data.labels.cpu()
    device = torch.device(device or next(model.parameters()).device)
    if guard is not None and (isinstance(guard_weight, bool) or not isinstance(guard_weight, (int, float))
                              or not 0 < guard_weight < math.inf):
        raise ValueError(f"guard_weight must be a positive finite number, got {guard_weight!r}")
    if isinstance(augmented_copies, bool) or not isinstance(augmented_copies, int) or augmented_copies < 0:
        raise ValueError(f"augmented_copies must be an integer >= 0, got {augmented_copies!r}")
    if augmented_copies and guard is not None:
        raise ValueError("augmented_copies and a guard do not combine: pass one of them")
    if not isinstance(augment, Augment):
        raise TypeError(f"augment must be an Augment, got {type(augment).__name__}")

    def guarded(source: nn.Module, x: Tensor, pair: Tensor) -> Tensor:
        return (F.cross_entropy(source(x).float(), pair[:, 1], reduction="none")
                + guard_weight * F.cross_entropy(guard(x).float(), pair[:, 0], reduction="none"))

    size = device_batch_size(device, "attack") if batch_size is None else batch_size

    def attack_part(images_part: Tensor, labels_part: Tensor, targets_part: Tensor, positions: Tensor) -> Tensor:
        images_part, labels_part, targets_part = images_part.to(device), labels_part.to(device), targets_part.to(device)
        adversarial = [images_part[:0]]
        for start in tqdm(range(0, len(images_part), size), desc=f"D_{mode}", disable=not progress, leave=False):
            x, t = images_part[start:start + size], targets_part[start:start + size]
            if guard is not None:
                pair = torch.stack([labels_part[start:start + size], t], dim=1)
                t, loss = pair, guarded
            elif augmented_copies:
                draws = torch.Generator(device).manual_seed(seed * 1_000_003 + int(positions[start]))
                loss = augmented_cross_entropy(augment, augmented_copies, draws)
            else:
                loss = None
            adversarial.append(pgd(model, x, t, norm="l2", eps=eps, steps=steps, step_size=step_size, targeted=True,
                                   random_start=False, loss=loss))  # pgd attacks in eval mode
        return torch.cat(adversarial).cpu().contiguous()

    settings = {"construction": f"D_{mode}", "eps": eps, "steps": steps, "step_size": step_size, "seed": seed,
                "augmented_copies": augmented_copies, "augment": repr(augment), "guard": guard is not None,
                "guard_weight": guard_weight, "batch_size": size}
    with nullcontext() if guard is None else evaluating(guard):
        (images,) = chunked(lambda *rows: (sharded(attack_part, *rows),), (data.images.cpu(), labels, targets),
                            chunk=_chunk(size, chunk_batches), folder=checkpoint, settings=settings, progress=progress,
                            desc=f"D_{mode}")
    success = float((predict(model, images, device=device) == targets).float().mean())
    kind = "" if guard is None else f", penalising transfer to a guard model (weight {guard_weight:g})"
    kind += f", each step's loss averaged with {augmented_copies} augmented copies ({augment})" if augmented_copies else ""
    constructed = ImageData(images, targets, data.classes, f"D_{mode} of {data.name}",
                            f"targeted l2 PGD (eps {eps}, {steps} steps of {step_size}, seed={seed}{kind})")
    stats = {"success_rate": success, "flagged": success < FLAG_SUCCESS_BELOW,
             "perturbation_norm": _summary(distance(images, data.images.cpu(), "l2")),
             "labels_changed": float((targets != labels).float().mean())}
    if guard is not None:
        stats["guard_transfer_rate"] = float((predict(guard, images, device=device) == targets).float().mean())
    return constructed, stats


def _chunk(batch_size: int, chunk_batches: int | None) -> int:
    """Rows per saved chunk: a whole number of batches, so a resumed construction runs the same batches."""
    chunk_batches = CHUNK_BATCHES if chunk_batches is None else chunk_batches
    if isinstance(chunk_batches, bool) or not isinstance(chunk_batches, int) or chunk_batches < 1:
        raise ValueError(f"chunk_batches must be a positive integer, got {chunk_batches!r}")
    return batch_size * chunk_batches


def _summary(values: Tensor) -> dict:
    values = values.double()
    return {"mean": float(values.mean()), "median": float(values.median()), "max": float(values.max())}

"""Measurements for the paper's published discussion (Distill, 2019) and its reviewers' questions.

* Robust-feature leakage (Goh): could D_rand / D_det generalise through robust features that leak
  into the perturbations? :func:`linear_probe` (a linear classifier on pixels, trained on a set or
  on the perturbations alone, scored on the original test set) and :func:`gradient_alignment`
  (|cos| between each perturbation and a model's input gradient toward its target: the robust
  model's gradient is where robust features change the prediction).
* Non-transferable adversarial examples (Nakkiran): :func:`empirical.construct.relabelled_dataset`
  with a ``guard`` model.
* Distillation control (Wallace): :func:`other_images`, images that carry none of the data's
  features, to be labelled by the source model.
* Do D_R / D_NR images look like their start x0 or their target x? :func:`likeness`: :func:`ssim`
  beside the pixel distance.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attacks import distance
from .data import ImageData, PlantedFeatures
from .device import batch_size as device_batch_size
from .models import evaluating

SOURCES = ("noise", "shuffled")


def linear_probe(train: ImageData, test: ImageData, *, inputs: Tensor | None = None, steps: int = 100,
                 weight_decay: float = 1e-3) -> float:
    """Test accuracy of multinomial logistic regression on pixels, trained on ``train``.

    The pixels are centred by the training inputs' mean and divided by their overall standard
    deviation (one number, so directions are kept); the weights minimise the mean cross-entropy +
    ``weight_decay``/2 ||W||^2 by full-batch L-BFGS from zero, deterministic. ``inputs``: train on
    these instead of ``train.images`` (same length; e.g. the perturbations x_adv - x) with
    ``train.labels``.
    """
    x = (train.images if inputs is None else inputs).detach().cpu().flatten(1).double()
    if len(x) != len(train):
        raise ValueError(f"inputs must have one row per training image ({len(train)}), got {len(x)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    mean, scale = x.mean(dim=0), x.std().clamp_min(1e-12)
    x = (x - mean) / scale
    y, classes = train.labels.cpu(), train.num_classes
    weight = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def objective() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + weight_decay / 2 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    with torch.no_grad():
        z = (test.images.cpu().flatten(1).double() - mean) / scale
        return float(((z @ weight + bias).argmax(1) == test.labels.cpu()).double().mean())


def gradient_alignment(model: nn.Module, images: Tensor, labels: Tensor, targets: Tensor, perturbations: Tensor, *,
                       device=None) -> Tensor:
    """|cos(delta_i, grad_x (z_t - z_y)(x_i))| per image: how much of each perturbation lies along
    ``model``'s steepest direction from the label y toward the target t (in eval mode, fp32)."""
    if not (len(images) == len(labels) == len(targets) == len(perturbations)):
        raise ValueError(f"images, labels, targets and perturbations differ in length: "
                         f"{[len(t) for t in (images, labels, targets, perturbations)]}")
    device = torch.device(device or next(model.parameters()).device)
    size = device_batch_size(device, "attack")
    found = []
    with evaluating(model):
        for start in range(0, len(images), size):
            x = images[start:start + size].to(device).requires_grad_(True)
            y, t = labels[start:start + size].to(device), targets[start:start + size].to(device)
            logits = model(x).float()
            margin = logits.gather(1, t[:, None]) - logits.gather(1, y[:, None])
            (gradient,) = torch.autograd.grad(margin.sum(), x)
            delta = perturbations[start:start + size].to(device)
            found.append(F.cosine_similarity(gradient.flatten(1), delta.flatten(1), dim=1, eps=1e-12).abs().detach().cpu())
    return torch.cat([torch.empty(0), *found])


def other_images(data: ImageData, source: str, seed: int = 0) -> Tensor:
    """Images with none of ``data``'s features, shaped like its images (on the CPU).

    ``"noise"``: uniform pixels in [0, 1]; ``"shuffled"``: each training image with its values
    (every channel, row and column) permuted at random, so its colour histogram survives and every
    spatial feature is gone.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    generator = torch.Generator().manual_seed(seed)
    images = data.images.cpu()
    if source == "noise":
        return torch.rand(images.shape, generator=generator)
    flat = images.flatten(1)
    order = torch.rand(flat.shape, generator=generator).argsort(dim=1)
    return flat.gather(1, order).view_as(images).contiguous()


def ssim(a: Tensor, b: Tensor, *, window: int = 7, data_range: float = 1.0, batch_size: int = 1024) -> Tensor:
    """The structural similarity (Wang et al. 2004) of each pair of images, (N,), in [-1, 1].

    Local means, variances and covariance over a ``window`` x ``window`` uniform window (valid
    positions only, per channel), SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)
    (s_a^2 + s_b^2 + C2)) with C1 = (0.01 L)^2, C2 = (0.03 L)^2, averaged over positions and
    channels. 1 exactly when a = b. Computed in float64, ``batch_size`` pairs at a time, so memory
    stays bounded for a whole training set (all of CIFAR-10 at once would take over 20 GiB).
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"a and b must be image batches (N, C, H, W) of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if not 1 <= window <= min(a.shape[-2:]):
        raise ValueError(f"window must be between 1 and the image side {min(a.shape[-2:])}, got {window}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    channels = a.shape[1]
    kernel = torch.full((channels, 1, window, window), 1 / window**2, dtype=torch.float64, device=a.device)
    local = lambda z: F.conv2d(z, kernel, groups=channels)  # noqa: E731
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def pairs(a: Tensor, b: Tensor) -> Tensor:
        a, b = a.double(), b.double()
        mu_a, mu_b = local(a), local(b)
        var_a, var_b = local(a * a) - mu_a**2, local(b * b) - mu_b**2
        covariance = local(a * b) - mu_a * mu_b
        index = ((2 * mu_a * mu_b + c1) * (2 * covariance + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        return index.flatten(1).mean(dim=1).float()

    return torch.cat([pairs(x, y) for x, y in zip(a.split(batch_size), b.split(batch_size))])


def planted_shares(features: PlantedFeatures, perturbations: Tensor, targets: Tensor) -> dict:
    """How perturbations sit in the planted spans: the mean share of ||delta||^2 in the robust and the
    non-robust templates' spans, and the mean coefficient on the target's template of each."""
    content = features.content(perturbations)
    energy = perturbations.flatten(1).double().square().sum(dim=1).clamp_min(1e-30)
    share = lambda c: float((c.double().square().sum(dim=1) / energy).mean())  # noqa: E731
    target = lambda c: float(c.gather(1, targets[:, None].to(c.device)).mean())  # noqa: E731
    return {"robust_share": share(content.robust), "nonrobust_share": share(content.nonrobust),
            "robust_target_coefficient": target(content.robust), "nonrobust_target_coefficient": target(content.nonrobust)}


def likeness(images: Tensor, starts: Tensor, targets: Tensor) -> dict:
    """Median pixel l2 and SSIM of ``images`` to their inversions' starts x0 and targets x."""
    window = min(7, *images.shape[-2:])
    return {"l2_to_start": float(distance(images, starts, "l2").median()),
            "l2_to_target": float(distance(images, targets, "l2").median()),
            "ssim_to_start": float(ssim(images, starts, window=window).median()),
            "ssim_to_target": float(ssim(images, targets, window=window).median())}


def random_alignment(dim: int) -> float:
    """The median |cos| between two independent random directions in ``dim`` dimensions, for large dim:
    the median of |N(0, 1)|, 0.674, over sqrt(dim)."""
    return 0.6744897501960817 / math.sqrt(dim)

"""The bridge: Section 4's quantities measured on trained networks.

* Gradient alignment (Theorem 3): per example, the cosine between the input gradient of the
  margin logit_y - logit_t (t: the strongest other class) and the difference of the class means
  mu_y - mu_t in input space. For the linear model x^T Sigma^-1 mu it is gaussfeat's
  gradient_alignment(mu, Sigma); robust training should raise it.
* Misalignment (Theorem 1): for an adversarial perturbation delta, delta^T Sigma^-1 delta / ||delta||^2
  with Sigma the data's covariance (Ledoit-Wolf shrinkage, so it is invertible in pixel space),
  beside tr(Sigma^-1)/d, its value for a random direction. Perturbations that fool a standard model
  should lie where the data varies least: a high ratio.
* On the two-Gaussian model itself (:func:`two_gaussian_study`), in image-like dimension, linear
  models and a small network trained with standard and adversarial training at several eps, held
  against the closed-form prediction cos(mu*, Sigma_r(eps)^-1 mu*).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import gaussfeat as gf
from gaussfeat.metrics import (
    gradient_alignment_per_example,
    mahalanobis_ratio,
    random_direction_ratio,
    ratio_range,
    shrinkage_covariance,
)

from .attacks import Attack
from .data import ImageData
from .evaluate import Evaluation, adversarial_examples
from .models import evaluating
from .train import TrainConfig


def margin_gradients(model: nn.Module, x: Tensor, y: Tensor, t: Tensor) -> Tensor:
    """grad_x (logit_y - logit_t) per example, flattened to (N, d); the model in eval mode."""
    x = x.detach().clone().requires_grad_(True)
    with evaluating(model):
        logits = model(x).float()
    margin = logits.gather(1, y[:, None]) - logits.gather(1, t[:, None])
    (gradient,) = torch.autograd.grad(margin.sum(), x)
    return gradient.flatten(1)


@torch.no_grad()
def strongest_other_class(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """argmax over t != y of logit_t."""
    logits = model(x).float()
    logits.scatter_(1, y[:, None], -torch.inf)
    return logits.argmax(dim=1)


def class_means(data: ImageData) -> np.ndarray:
    """(K, d) mean image of each class, flattened."""
    x, y = data.images.flatten(1).double().cpu(), data.labels.cpu()
    return torch.stack([x[y == k].mean(dim=0) for k in range(data.num_classes)]).numpy()


def alignment(model: nn.Module, data: ImageData, means: np.ndarray, *, batch_size: int = 256, device=None) -> np.ndarray:
    """Per-example cos(grad_x (logit_y - logit_t), mu_y - mu_t), t the strongest other class."""
    device = device or next(model.parameters()).device
    cosines = []
    for start in range(0, len(data), batch_size):
        x, y = data.images[start:start + batch_size].to(device), data.labels[start:start + batch_size].to(device)
        t = strongest_other_class(model, x, y)
        gradients = margin_gradients(model, x, y, t).double().cpu().numpy()
        differences = means[y.cpu().numpy()] - means[t.cpu().numpy()]
        cosines.append(gradient_alignment_per_example(gradients, differences))
    return np.concatenate(cosines)


def perturbation_ratios(model: nn.Module, data: ImageData, attack: Attack, covariance: np.ndarray, *,
                        batch_size: int = 256, seed: int = 0, device=None) -> np.ndarray:
    """delta^T Sigma^-1 delta / ||delta||^2 for the attack's perturbation of each image (nonzero ones)."""
    adversarial = adversarial_examples(model, data.images, data.labels, attack, batch_size=batch_size, seed=seed, device=device)
    deltas = (adversarial - data.images.cpu()).flatten(1).double().numpy()
    moved = np.linalg.norm(deltas, axis=1) > 1e-9
    return mahalanobis_ratio(deltas[moved], covariance)


def measure(models: dict[str, nn.Module], train: ImageData, test: ImageData, attack: Attack, *,
            covariance_images: int = 10_000, shrinkage: float | None = None, device=None) -> dict:
    """Alignment and misalignment distributions of each model on ``test``; the metric from ``train``."""
    means = class_means(train)
    pixels = train.images[:covariance_images].flatten(1).double().cpu().numpy()
    covariance, used_shrinkage = shrinkage_covariance(pixels, shrinkage)
    low, high = ratio_range(covariance)
    result = {"attack": attack.to_dict(), "examples": len(test), "shrinkage": used_shrinkage,
              "random_direction_ratio": random_direction_ratio(covariance), "ratio_range": [low, high], "models": {}}
    for name, model in models.items():
        model = model.to(device or next(model.parameters()).device)
        cosines = alignment(model, test, means, device=device)
        ratios = perturbation_ratios(model, test, attack, covariance, device=device)
        result["models"][name] = {"alignment": _distribution(cosines), "ratio": _distribution(ratios),
                                  "alignment_values": cosines.tolist(), "ratio_values": ratios.tolist()}
    return result


def _distribution(values: np.ndarray) -> dict:
    quartiles = np.quantile(values, [0.25, 0.5, 0.75])
    return {"mean": float(np.mean(values)), "q25": float(quartiles[0]), "median": float(quartiles[1]),
            "q75": float(quartiles[2]), "count": int(values.size)}


# --- the two-Gaussian model in image-like dimension ---------------------------------------------


def image_like_instance(dim: int = 256, *, separation: float = 2.0, seed: int = 0) -> gf.TwoGaussian:
    """x ~ N(y mu*, Sigma*) with Sigma* = diag(s), s_k proportional to 1/k (the 1/f^2 power spectrum of
    natural images, indexed by frequency rank), tr Sigma* = d, and mu* a random direction scaled to
    Mahalanobis separation sqrt(mu*^T Sigma*^-1 mu*) = ``separation`` (accuracy Phi(separation))."""
    spectrum = 1 / np.arange(1, dim + 1)
    spectrum *= dim / spectrum.sum()
    mu = np.random.default_rng(seed).standard_normal(dim)
    mu *= separation / np.sqrt(mu @ (mu / spectrum))
    return gf.TwoGaussian(mu, np.diag(spectrum))


@dataclass(frozen=True)
class StudySettings:
    """The two-Gaussian study: data size, the eps grid, and the small network's training."""

    dim: int = 256
    samples: int = 20_000
    eps: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)
    hidden: int = 64
    epochs: int = 30
    batch_size: int = 500
    lr: float = 3e-3
    pgd_steps: int = 5
    seed: int = 0


def two_gaussian_study(settings: StudySettings = StudySettings()) -> dict:
    """Alignment against eps: the closed form, gaussfeat's adversarially trained Gaussian MLE (a linear
    model), logistic regression trained against its exact worst case, and a small ReLU network trained
    with PGD; alignment measured as cos(grad_x margin, m_+ - m_-) with m the sample class means."""
    truth, x, y, difference = _study_data(settings)
    rows = []
    for eps in settings.eps:
        sigma_r = truth.sigma if eps == 0 else gf.robust_covariance(truth.sigma, gf.robust_lambda(truth.sigma, eps))
        fitted = gf.mle(x, y) if eps == 0 else gf.robust_mle(x, y, eps, adversary="l2", tol=1e-6, max_iter=100).model
        w_logistic = _logistic(x, y, eps, settings)
        network = _network_alignment(x, y, eps, difference, settings)
        rows.append({
            "eps": eps,
            "closed_form": gf.gradient_alignment(truth.mu, sigma_r),
            "worst_case": gf.worst_case_alignment(sigma_r),
            "closed_form_condition": float(np.linalg.cond(sigma_r)),
            "gaussian_mle": float(_cosine(fitted.weights, difference)),
            "gaussian_mle_condition": float(np.linalg.cond(fitted.sigma)),
            "logistic": None if not np.any(w_logistic) else float(_cosine(w_logistic, difference)),
            "network": network,
        })
    return {"settings": settings.__dict__ | {"eps": list(settings.eps)}, "rows": rows,
            "standard_accuracy": truth.accuracy()}


def _study_data(settings: StudySettings) -> tuple[gf.TwoGaussian, np.ndarray, np.ndarray, np.ndarray]:
    """The studies' truth, its sample and the sample's class-mean difference m_+ - m_-."""
    truth = image_like_instance(settings.dim, seed=settings.seed)
    x, y = truth.sample(settings.samples, settings.seed + 1)
    return truth, x, y, x[y > 0].mean(axis=0) - x[y < 0].mean(axis=0)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _logistic(x: np.ndarray, y: np.ndarray, eps: float, settings: StudySettings) -> np.ndarray:
    """min_w,b mean softplus(-(y (w.x + b) - eps ||w||)): the exact l2-robust logistic loss (L-BFGS)."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=500, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.softplus(-(yt * (xt @ w + b) - eps * w.norm())).mean() + 1e-6 * w.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    w = w.detach().numpy()
    return np.zeros_like(w) if np.linalg.norm(w) < 1e-6 else w  # at large eps the robust optimum is w = 0


def capacity_study(settings: StudySettings = StudySettings(), widths: tuple[int, ...] = (0, 64, 1024)) -> dict:
    """Where theory predicts a network: gradient alignment as capacity shrinks to linear, on the study's data.

    For each hidden width (0: a linear model, logits W x + b) a ReLU net is trained with standard
    training as in :func:`two_gaussian_study`; beside it the theory's alignment cos(mu*, Sigma*^-1 mu*),
    the Bayes direction's, which logistic regression attains in the limit of data and training.
    Standard training only: with eps > 0 a discriminative model's robust optimum is the robust
    logistic regression's, not Theorem 2's generative Sigma_r(eps)^-1 mu*.
    """
    if not widths or any(not isinstance(w, int) or w < 0 for w in widths):
        raise ValueError(f"widths must be hidden widths >= 0 (0: linear), got {widths}")
    truth, x, y, difference = _study_data(settings)
    theory = gf.gradient_alignment(truth.mu, truth.sigma)
    networks = {w: _network_alignment(x, y, 0.0, difference, replace(settings, hidden=w)) for w in widths}
    return {"settings": settings.__dict__ | {"eps": [0.0]}, "closed_form": theory,
            "widths": [{"width": w, "gap": abs(n["median"] - theory), "alignment": n} for w, n in networks.items()]}


def _network_alignment(x: np.ndarray, y: np.ndarray, eps: float, difference: np.ndarray, settings: StudySettings) -> dict:
    """Train a one-hidden-layer ReLU net (2 logits; hidden = 0: linear) with PGD adversarial training; its
    per-example alignment."""
    torch.manual_seed(settings.seed)
    xt, labels = torch.from_numpy(x).float(), torch.from_numpy((y > 0).astype(np.int64))
    if settings.hidden == 0:
        model = nn.Linear(x.shape[1], 2)
    else:
        model = nn.Sequential(nn.Linear(x.shape[1], settings.hidden), nn.ReLU(), nn.Linear(settings.hidden, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    attack = Attack.paper("l2", eps, steps=settings.pgd_steps) if eps > 0 else None
    for _ in range(settings.epochs):
        for index in torch.randperm(len(xt), generator=generator).split(settings.batch_size):
            batch, target = xt[index], labels[index]
            if attack is not None:
                batch = attack.run(model, batch, target, generator, box=None)
            loss = F.cross_entropy(model(batch), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    test = xt[:2000]
    y_test = labels[:2000]
    gradients = margin_gradients(model, test, y_test, 1 - y_test).double().numpy()
    signed = np.where(y_test.numpy()[:, None] == 1, difference, -difference)  # mu_y - mu_t
    cosines = gradient_alignment_per_example(gradients, signed)
    return _distribution(cosines)


@dataclass(frozen=True)
class BridgePreset:
    """What `empirical bridge` trains and measures on: data, the two models, the attack whose
    perturbations are measured (the loss-maximising adversary of Theorem 1: untargeted cross-entropy),
    and the evaluation of each model's robustness (on the first ``evaluation.images`` of the same
    ``examples`` test images; all of them when None)."""

    name: str
    data: str
    data_options: dict
    standard: TrainConfig
    attack: Attack
    evaluation: Evaluation
    examples: int = 500
    train_images: int | None = None  # train on the first this many (None: all)
    inversion_images: int = 2000  # D_R and D_NR are built from this many training images
    inversion_steps: int = 100  # the paper: 1000 steps of 0.1
    inversion_step_size: float = 0.1

    @property
    def robust(self) -> TrainConfig:
        """The standard config with PGD adversarial training at the attack's radius."""
        return replace(self.standard, adversary=Attack.paper(self.attack.norm, self.attack.eps, steps=3))


PRESETS = {
    "smoke": BridgePreset(
        name="smoke", data="planted", data_options={"n_train": 4000, "n_test": 1000},
        standard=TrainConfig(model="fast", model_options={"width": 16}, epochs=10, batch_size=128, lr=0.1, nesterov=True,
                             schedule="triangle", augment=None),
        # robust accuracy of record on 32 images (binomial standard error <= 9 points) and D_R, D_NR from 1000 images,
        # for a default command under 2 minutes on 2 CPU cores: on 500 images AutoAttack took 220 s on the robust
        # model alone (Intel VM); on 100 images 127 s on the four models, of a 213 s run; on 50 images 67 s, of a
        # 132 s run (AMD EPYC VM, bf16), 59 s of it FAB-T and Square on the images the robust model and D_R's keep
        attack=Attack("l2", 0.25, steps=10, loss="ce", targets=0), evaluation=Evaluation("l2", 0.25, images=32, paper_steps=10),
        inversion_images=1000),
    "fashion": BridgePreset(
        name="fashion", data="fashion-mnist", data_options={}, train_images=20_000,
        standard=TrainConfig(model="fast", model_options={"width": 16}, epochs=3, batch_size=128, lr=0.1, nesterov=True,
                             schedule="triangle", augment=None, label_smoothing=0.1),
        attack=Attack("l2", 1.0, steps=10, loss="ce", targets=0), evaluation=Evaluation("l2", 1.0, paper_steps=10)),
    "cifar10-cpu": BridgePreset(  # the suite preset cifar10-cpu's data and models: run it with --suite
        name="cifar10-cpu", data="cifar10-jpeg", data_options={}, train_images=10_000,
        standard=TrainConfig(model="fast", model_options={"width": 16}, epochs=10, batch_size=128, lr=0.1, nesterov=True,
                             schedule="triangle", label_smoothing=0.1),
        attack=Attack("l2", 0.5, steps=10, loss="ce", targets=0), evaluation=Evaluation("l2", 0.25, images=500, paper_steps=20),
        inversion_images=10_000),
    "cifar10": BridgePreset(
        name="cifar10", data="cifar10-jpeg", data_options={},
        standard=TrainConfig(model="resnet18", epochs=30, batch_size=512, lr=0.2, nesterov=True, schedule="triangle",
                             label_smoothing=0.1),
        attack=Attack("l2", 0.5, steps=10, loss="ce", targets=0), evaluation=Evaluation("l2", 0.5, paper_steps=20),
        examples=1000, inversion_images=50_000, inversion_steps=1000),
}


def report_section(record: dict) -> str:
    """Markdown for a report: per model, the medians beside the random-direction value; the study's rows."""
    measured = record["measured"]
    lines = ["## Bridge: Section 4's metrics on the trained models", "",
             f"Data: {record['data']}; attack {measured['attack']['norm']} eps {measured['attack']['eps']}, "
             f"{measured['examples']} test images; Sigma: pixel covariance, Ledoit-Wolf shrinkage {measured['shrinkage']:.3g}.", "",
             "| model | alignment median (IQR) | Mahalanobis/l2 median | random direction |", "|---|---|---|---|"]
    for name, m in measured["models"].items():
        a, r = m["alignment"], m["ratio"]
        lines.append(f"| {name} | {a['median']:.3f} ({a['q25']:.3f}-{a['q75']:.3f}) | {r['median']:.4g} | "
                     f"{measured['random_direction_ratio']:.4g} |")
    robustness = record.get("robustness") or {}
    if robustness:
        first = next(iter(robustness.values()))
        source = "; from the suite's evaluate stage" if (record.get("suite") or {}).get("robustness_from_suite") else ""
        lines += ["", f"Robustness of the same models on the first {first['images']} test images ("
                  f"{first['autoattack']['norm']} eps {first['autoattack']['eps']:g}; AutoAttack is the number of record{source}):", "",
                  "| model | clean | paper's PGD | PGD | AutoAttack | flags |", "|---|---|---|---|---|---|"]
        for name, r in robustness.items():
            names = ", ".join(f"`{flag['name']}`" for flag in r["flags"]) or "none"
            lines.append(f"| {name} | {100 * r['clean']:.1f} | {100 * r['paper_pgd']['accuracy']:.1f} | "
                         f"{100 * r['pgd']['accuracy']:.1f} | {100 * r['autoattack']['robust']:.1f} | {names} |")
    study = record.get("two_gaussian_study")
    if study:
        lines += ["", "Two-Gaussian study (alignment with m+ - m-):", "",
                  "| eps | closed form | Gaussian MLE | logistic | network median |", "|---|---|---|---|---|"]
        for row in study["rows"]:
            logistic = "w = 0" if row["logistic"] is None else f"{row['logistic']:.3f}"
            lines.append(f"| {row['eps']:g} | {row['closed_form']:.3f} | {row['gaussian_mle']:.3f} | {logistic} | "
                         f"{row['network']['median']:.3f} |")
    return "\n".join(lines) + "\n"

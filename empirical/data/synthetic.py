"""Synthetic images with a planted robust and a planted non-robust feature per class, and their ground truth."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from .image_data import SPLITS, ImageData, _check_split, _describe


@dataclass(frozen=True)
class PlantedConfig:
    """Parameters of :func:`planted`; the defaults give 10 classes of 3 x 16 x 16 images.

    10 classes as in CIFAR-10, so chance (10%) and the paper's relabelled "non-robust" data sets
    (target t = y + 1 mod 10, or t uniform) mean what they mean there; 16 x 16 keeps it fast on a CPU.
    """

    num_classes: int = 10
    channels: int = 3
    size: int = 16
    n_train: int = 10_000
    n_test: int = 2_000
    robust_norm: float = 2.0  # a: 4x an l2 budget of 0.5
    robust_noise: float = 0.75  # s_r: robust part alone ~84% accurate
    nonrobust_norm: float = 0.2  # b: well inside an l2 budget of 0.5
    nonrobust_noise: float = 0.02  # s_n: non-robust part alone > 99.99% accurate
    pixel_noise: float = 0.01  # sigma, per pixel: small enough that a standard conv net learns the fine templates
    background: float = 0.5  # g, mid grey
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                low = 0 if f.name == "seed" else 2 if f.name == "num_classes" else 8 if f.name == "size" else 1
                if not isinstance(value, int) or isinstance(value, bool) or value < low:
                    raise ValueError(f"PlantedConfig.{f.name} must be an integer >= {low}, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"PlantedConfig.{f.name} must be a finite number >= 0, got {value!r}")
        if not 0 < self.background < 1:
            raise ValueError(f"PlantedConfig.background must be in (0, 1), got {self.background!r}")
        for kind in ("robust", "nonrobust"):
            dim = self.channels * int(_band_mask(self.size, kind).sum())
            if dim < self.num_classes:
                raise ValueError(
                    f"the {kind} band of {self.channels} x {self.size} x {self.size} images has {dim} dimensions, "
                    f"fewer than num_classes = {self.num_classes}; use larger images or fewer classes"
                )

    def accuracy(self, part: str) -> float:
        """Closed-form accuracy of argmax over one part's coefficients ("robust" or "nonrobust").

        That is the Bayes rule from that part alone: P(correct) = int phi(z) Phi(z + m/s)^(K-1) dz,
        with m the template norm and s^2 = (coefficient noise)^2 + sigma^2 (clipping ignored).
        """
        if part not in ("robust", "nonrobust"):
            raise ValueError(f"part must be 'robust' or 'nonrobust', got {part!r}")
        m, s = getattr(self, f"{part}_norm"), getattr(self, f"{part}_noise")
        scale = math.hypot(s, self.pixel_noise)
        if scale == 0:
            return 1.0 if m > 0 else 1.0 / self.num_classes
        z = torch.linspace(-12, 12, 24_001, dtype=torch.float64)
        density = torch.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        return torch.trapezoid(density * torch.special.ndtr(z + m / scale) ** (self.num_classes - 1), z).item()


def _band_mask(size: int, kind: str) -> np.ndarray:
    """(size, size) bool mask of the 2-D DFT frequencies (kx, ky), in cycles per image, of a band.

    robust: 0 < max(|kx|, |ky|) <= size/8 (smooth; the constant is excluded).
    nonrobust: min(|kx|, |ky|) >= size/4 (fast in both directions).
    """
    k = np.abs(np.fft.fftfreq(size) * size)
    kx, ky = k[:, None], k[None, :]
    if kind == "robust":
        return (np.maximum(kx, ky) > 0) & (np.maximum(kx, ky) <= size / 8)
    return np.minimum(kx, ky) >= size / 4


def _band_frame(rng: np.random.Generator, count: int, channels: int, size: int, kind: str) -> np.ndarray:
    """``count`` orthonormal random images (count, C, H, W) whose spectra lie in the band."""
    noise = rng.standard_normal((count, channels, size, size))
    # The mask is symmetric under k -> -k, so the filtered images are real (the .real drops ~1e-16).
    band = np.fft.ifft2(np.fft.fft2(noise) * _band_mask(size, kind)).real
    q, _ = np.linalg.qr(band.reshape(count, -1).T)  # orthonormal columns spanning the filtered images
    return q.T.reshape(count, channels, size, size)


@dataclass(frozen=True, eq=False)
class TemplateContent:
    """Per image, the coefficient on each class's template: ``robust`` and ``nonrobust``, (N, K) each."""

    robust: torch.Tensor
    nonrobust: torch.Tensor

    @property
    def robust_class(self) -> torch.Tensor:
        """(N,) the class the robust part points to (argmax of its coefficients)."""
        return self.robust.argmax(1)

    @property
    def nonrobust_class(self) -> torch.Tensor:
        """(N,) the class the non-robust part points to."""
        return self.nonrobust.argmax(1)


@dataclass(frozen=True, eq=False)
class PlantedFeatures:
    """The ground truth of a planted data set: its templates and how to read them off images.

    robust, nonrobust : (K, C, H, W) float32 on the CPU; each set orthonormal, the two sets in
        disjoint DFT bands (so mutually orthogonal) and both orthogonal to constant images.
    """

    config: PlantedConfig
    robust: torch.Tensor
    nonrobust: torch.Tensor

    def content(self, images: torch.Tensor | ImageData) -> TemplateContent:
        """Projections <x, r_c> and <x, n_c> for every image x (the grey background projects to 0).

        Linear, so it also reads perturbations: ``content(x + d) = content(x) + content(d)``.
        """
        x = images.images if isinstance(images, ImageData) else images
        cfg = self.config
        shape = (cfg.channels, cfg.size, cfg.size)
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4 or x.shape[1:] != shape:
            raise ValueError(
                f"images must be a float tensor (N, {cfg.channels}, {cfg.size}, {cfg.size}), got {_describe(x)}"
            )
        flat = x.reshape(x.shape[0], -1)
        r, n = (t.reshape(cfg.num_classes, -1).to(x.device) for t in (self.robust, self.nonrobust))
        return TemplateContent(flat @ r.T.to(flat.dtype), flat @ n.T.to(flat.dtype))

    def agreement(self, images: torch.Tensor | ImageData, labels: torch.Tensor) -> dict[str, float]:
        """How much each planted part of ``images`` speaks for ``labels`` (the paper's usefulness of a feature).

        ``{robust,nonrobust}_points_to_label``: the fraction of images whose part points to their label
        (argmax of its coefficients); ``{robust,nonrobust}_coefficient``: the mean coefficient on the
        label's template (a, b in the natural images).
        """
        content = self.content(images)
        labels = torch.as_tensor(labels).to(content.robust.device)
        if labels.shape != content.robust.shape[:1]:
            raise ValueError(f"labels must have shape ({len(content.robust)},), got {tuple(labels.shape)}")
        result = {}
        for part, coefficients in (("robust", content.robust), ("nonrobust", content.nonrobust)):
            result[f"{part}_points_to_label"] = float((coefficients.argmax(1) == labels).float().mean())
            result[f"{part}_coefficient"] = float(coefficients.gather(1, labels[:, None]).mean())
        return result

    def sample(self, split: str) -> tuple[ImageData, TemplateContent]:
        """The ``split`` images and their planted coefficients (before pixel noise and clipping)."""
        split = _check_split(split)
        cfg = self.config
        k, n = cfg.num_classes, cfg.n_train if split == "train" else cfg.n_test
        rng = np.random.default_rng([cfg.seed, SPLITS.index(split) + 1])
        labels = rng.permutation(np.arange(n) % k)  # balanced classes
        onehot = np.eye(k)[labels]
        robust = cfg.robust_norm * onehot + cfg.robust_noise * rng.standard_normal((n, k))
        nonrobust = cfg.nonrobust_norm * onehot + cfg.nonrobust_noise * rng.standard_normal((n, k))
        r, u = (t.reshape(k, -1).double().numpy() for t in (self.robust, self.nonrobust))
        x = cfg.background + robust @ r + nonrobust @ u + cfg.pixel_noise * rng.standard_normal((n, r.shape[1]))
        images = torch.from_numpy(np.clip(x, 0, 1).reshape(n, cfg.channels, cfg.size, cfg.size)).float()
        data = ImageData(
            images,
            torch.from_numpy(labels.astype(np.int64)),
            tuple(f"class{c}" for c in range(k)),
            f"planted features (seed {cfg.seed}, {k} classes, {cfg.channels}x{cfg.size}x{cfg.size})",
            f"synthetic: {cfg!r}",
        )
        return data, TemplateContent(torch.from_numpy(robust).float(), torch.from_numpy(nonrobust).float())


def _planted_config(config: PlantedConfig | None, overrides: dict) -> PlantedConfig:
    names = {f.name for f in fields(PlantedConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown planted-features parameter(s) {unknown}; known: {sorted(names)}")
    return replace(config or PlantedConfig(), **overrides)


def planted_features(config: PlantedConfig | None = None, **overrides: object) -> PlantedFeatures:
    """The templates of the planted data set with ``config`` (fields may be overridden by keyword)."""
    cfg = _planted_config(config, overrides)
    rng = np.random.default_rng([cfg.seed, 0])  # the templates; the splits use streams 1 and 2
    robust, nonrobust = (
        torch.from_numpy(_band_frame(rng, cfg.num_classes, cfg.channels, cfg.size, kind)).float()
        for kind in ("robust", "nonrobust")
    )
    return PlantedFeatures(cfg, robust, nonrobust)


def planted(split: str, config: PlantedConfig | None = None, **overrides: object) -> ImageData:
    """Synthetic images with a planted robust and a planted non-robust feature per class.

    For label y (balanced over K classes), with orthonormal templates r_1..r_K (smooth: DFT band
    0 < max|k| <= size/8) and n_1..n_K (fine: min|k| >= size/4), the image is

        x = clip(g + sum_c (a [c = y] + s_r xi_c) r_c + sum_c (b [c = y] + s_n eta_c) n_c + sigma eps, 0, 1)

    with xi, eta ~ N(0, I_K), eps ~ N(0, I_(C H W)). Defaults (PlantedConfig): g = 0.5, a = 2,
    s_r = 0.75, b = 0.2, s_n = 0.02, sigma = 0.01. The robust part (norm a = 2, four times an l2
    budget of 0.5) alone gives about 84% accuracy; the non-robust part (norm b = 0.2, an l2 attack
    of 0.25 can swap it) alone over 99.99%; clipping touches about 0.01% of the pixels. With
    sigma = 0.02 the fast net learns the robust part and little of the fine one: the standard
    model's reliance on the non-robust templates needs them to stand out of the pixel noise.
    Deterministic given ``seed``: the templates and each split come from their own numpy streams.
    Ground truth: :func:`planted_features` (same arguments). Train without crop/flip augmentation:
    shifts scramble the fine templates.
    """
    return planted_features(config, **overrides).sample(split)[0]

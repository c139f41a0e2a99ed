"""Embedded problem instances: the defaults of ``gaussfeat check`` and the figures."""

from __future__ import annotations

import numpy as np

from ._checks import as_count, as_positive
from .model import TwoGaussian


def figure4() -> TwoGaussian:
    """A 2-D instance in the spirit of the paper's Figure 4.

    Axis 1 has high variance and carries most of the mean; axis 2 has low variance (sd 0.1)
    and a small mean (0.2): a non-robust feature, predictive but flipped by perturbations
    far smaller than the data's spread. The standard classifier w = Sigma^-1 mu = (1, 20) leans
    on it; robust training turns w toward mu.
    """
    return TwoGaussian(np.array([1.0, 0.2]), np.diag([1.0, 0.01]))


def random_instance(dim: int, seed: int = 0, *, condition: float = 100.0) -> TwoGaussian:
    """A random instance: eigenvalues log-uniform with ratio ``condition`` and mean eigenvalue 1,
    a Haar-random eigenbasis, and mu uniform on the sphere of radius 1."""
    rng = np.random.default_rng(seed)
    sigma = random_covariance(dim, rng, condition=condition)
    mu = rng.standard_normal(len(sigma))
    return TwoGaussian(mu / np.linalg.norm(mu), sigma)


def random_covariance(dim: int, rng: np.random.Generator, *, condition: float = 100.0) -> np.ndarray:
    """Q diag(s) Q^T: s log-uniform with ratio ``condition`` (exactly 1 and ``condition`` for d <= 2), mean
    eigenvalue 1, and Q a Haar-random rotation (QR of a Gaussian matrix, signs fixed)."""
    dim = as_count(dim, "dim")
    condition = as_positive(condition, "condition")
    spectrum = np.exp(rng.uniform(0, np.log(condition), dim)) if dim > 2 else np.array([1.0, condition])[:dim]
    spectrum /= spectrum.mean()
    basis, upper = np.linalg.qr(rng.standard_normal((dim, dim)))
    basis *= np.sign(np.diag(upper))
    return (basis * spectrum) @ basis.T

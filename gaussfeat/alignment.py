"""Theorem 3: alignment of a linear model's input gradient with the mean direction.

For f(x) = x^T Sigma^-1 mu the gradient is Sigma^-1 mu everywhere, and its cosine with mu is
cos(mu, Sigma^-1 mu). Over all nonzero mu the smallest cosine is, by the Kantorovich inequality,

    min_mu cos(mu, Sigma^-1 mu) = 2 sqrt(k) / (1 + k),   k = cond(Sigma),

attained at mu = sqrt(s_min) e_min + sqrt(s_max) e_max (e: eigenvectors of Sigma). It falls as k
grows, and robust training lowers k (Theorem 2), so the worst-case alignment rises with eps.
"""

from __future__ import annotations

import numpy as np

from ._checks import GaussfeatError, as_float_array, as_spd


def gradient_alignment(mu, sigma) -> float:
    """cos(mu, Sigma^-1 mu): the cosine between mu and the gradient of x^T Sigma^-1 mu."""
    mu = as_float_array(mu, "mu", 1)
    sigma = as_spd(sigma, "sigma")
    if sigma.shape != (mu.size, mu.size):
        raise GaussfeatError(f"sigma must have shape ({mu.size}, {mu.size}) to match mu, got {sigma.shape}")
    if not np.any(mu):
        raise GaussfeatError("mu must be nonzero for its alignment to be defined")
    gradient = np.linalg.solve(sigma, mu)
    return float(mu @ gradient / (np.linalg.norm(mu) * np.linalg.norm(gradient)))


def worst_case_alignment(sigma) -> float:
    """min over mu of cos(mu, Sigma^-1 mu) = 2 sqrt(k) / (1 + k), k = cond(Sigma) (Kantorovich)."""
    s = np.linalg.eigvalsh(as_spd(sigma, "sigma"))
    k = s[-1] / s[0]
    return float(2 * np.sqrt(k) / (1 + k))


def worst_case_mean(sigma) -> np.ndarray:
    """A unit mu attaining the minimum: sqrt(s_min) e_min + sqrt(s_max) e_max, normalised."""
    s, basis = np.linalg.eigh(as_spd(sigma, "sigma"))
    mu = np.sqrt(s[0]) * basis[:, 0] + np.sqrt(s[-1]) * basis[:, -1]
    return mu / np.linalg.norm(mu)

"""A k-class Gaussian mixture with a shared covariance, and its robust maximum likelihood.

The class c is uniform on {0, ..., k-1} and x ~ N(mu_c, Sigma). A labelled point is scored with the
1/2-weighted NLL of :mod:`gaussfeat.model`,

    l(x; mu_c, Sigma) = 1/2 (x - mu_c)^T Sigma^-1 (x - mu_c) + 1/2 log det Sigma + d/2 log 2 pi,

the two-Gaussian model with its tie mu_{-1} = -mu_{+1} dropped. Robust MLE minimises

    R(mu, Sigma) = mean_i max_{||delta||_2 <= eps} l(x_i + delta; mu_{c_i}, Sigma)       (eps: an l2 radius)

with the class known. The inner max sees only the residual x - mu_c, so it is
:func:`gaussfeat.adversary.ball_maximiser` on the residuals in Sigma's eigenbasis, exactly.

Theorem 2 for k classes (relaxed adversary, penalty (lam/2)||delta||^2 shared by all points):
delta = (lam Sigma - I)^-1 (x - mu_c) and R_lam = lam/2 tr[(lam Sigma - I)^-1 M(mu)] + 1/2 log det Sigma,
M(mu) = mean (x - mu_c)(x - mu_c)^T. As (lam Sigma - I)^-1 > 0, the class means minimise
tr[(lam Sigma - I)^-1 M(mu)] whatever Sigma, leaving M = S_W, the pooled within-class covariance, and
Theorem 2's objective with Sigma* = S_W:

    mu_c = xbar_c,   Sigma_r = robust_covariance(S_W, lam),   lam = robust_lambda(S_W, eps).

Theorem 3 per pair, and per mean (relaxed adversary): for every nonzero m and SPD S,
a(eps) = cos(m, Sigma_r(lam(eps))^-1 m) is non-decreasing in eps, and strictly increasing unless m lies in one
eigenspace of S. Proof: with t an eigenvalue of S, s of Sigma_r, sqrt(lam s) = sqrt(1 + lam t/4) + sqrt(lam t/4),
so x = log(1/s) = L - phi(log t + L), L = log lam, phi(v) = 2 asinh(e^(v/2)/2), 0 < phi' < 1, phi' increasing.
With z_i the weights of m on the eigenvectors, cos^2 = (E_z e^x)^2 / E_z e^(2x), and
d log cos^2 / dL = 2 (E_p x' - E_q x'), p ~ z e^x, q ~ z e^(2x): q is p tilted toward large x, and
x' = 1 - phi'(log t + L) is increasing in x (both fall as t grows), so by Chebyshev's association inequality
E_q x' >= E_p x': the cosine falls with L, and L = log lam(eps) falls strictly with eps. Each pairwise Bayes
classifier Sigma_r^-1 (mu_c - mu_c') therefore turns toward its mean difference as eps grows (the class means do
not move), which is stronger than Theorem 3's worst case over m, 2 sqrt(k)/(1 + k) at k = cond(Sigma_r).

With the exact l2 adversary neither statement has a closed form: :mod:`gaussfeat.beyond` measures them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ._checks import (
    GaussfeatError,
    as_count,
    as_float_array,
    as_points,
    as_positive,
    as_symmetric,
    require_positive_spectrum,
)
from .descent import Attack, RobustFit, descend
from .instances import random_covariance
from .robust import resolve_budget, robust_covariance, robust_lambda

ADVERSARIES = ("l2", "lagrangian")


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """Class-conditional Gaussians N(mu_c, Sigma), c uniform on {0, ..., k-1}, one shared covariance.

    means : (k, d) array, row c the mean of class c (k >= 2).
    sigma : (d, d) symmetric positive-definite covariance.
    """

    means: np.ndarray
    sigma: np.ndarray
    _eigenvalues: np.ndarray = field(init=False, repr=False)
    _basis: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        means = as_float_array(self.means, "means", 2).copy()
        if len(means) < 2:
            raise GaussfeatError(f"means must have at least 2 rows (classes), got shape {means.shape}")
        sigma = as_symmetric(self.sigma, "sigma")
        if sigma.shape != (means.shape[1],) * 2:
            raise GaussfeatError(f"sigma must have shape {(means.shape[1],) * 2} to match means, got {sigma.shape}")
        eigenvalues, basis = np.linalg.eigh(sigma)
        require_positive_spectrum(eigenvalues[0], "sigma")
        for name, value in [("means", means), ("sigma", sigma), ("_eigenvalues", eigenvalues), ("_basis", basis)]:
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def classes(self) -> int:
        return len(self.means)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of Sigma, ascending."""
        return self._eigenvalues

    @property
    def basis(self) -> np.ndarray:
        """Orthonormal eigenvectors of Sigma (columns), matching :attr:`eigenvalues`."""
        return self._basis

    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """n labelled points: c uniform on {0, ..., k-1} (int64), x = mu_c + Sigma^(1/2) z."""
        n = as_count(n, "n")
        rng = np.random.default_rng(seed)
        c = rng.integers(0, self.classes, n)
        z = rng.standard_normal((n, self.dim))
        return self.means[c] + (z * np.sqrt(self._eigenvalues)) @ self._basis.T, c

    def nll(self, x, c) -> np.ndarray:
        """Per-point NLL l(x; mu_c, Sigma), shape (n,)."""
        x = as_points(x, self.dim)
        c = as_classes(c, len(x), self.classes, require_all=False)
        whitened = ((x - self.means[c]) @ self._basis) / np.sqrt(self._eigenvalues)
        return 0.5 * np.sum(whitened**2, axis=1) + 0.5 * np.sum(np.log(self._eigenvalues)) + 0.5 * self.dim * np.log(2 * np.pi)

    def pairwise_alignments(self) -> np.ndarray:
        """cos(m, Sigma^-1 m) for m = mu_c - mu_c', c < c' in lexicographic order: shape (k (k - 1) / 2,).

        Sigma^-1 (mu_c - mu_c') is the gradient of the Bayes log-odds of class c against c'.
        """
        return pairwise_alignments(self.means, self.sigma)


def pairwise_alignments(means, sigma) -> np.ndarray:
    """cos(mu_c - mu_c', Sigma^-1 (mu_c - mu_c')) for every pair c < c', lexicographic order (Theorem 3 per pair)."""
    means = as_float_array(means, "means", 2)
    sigma = as_symmetric(sigma, "sigma")
    if sigma.shape != (means.shape[1],) * 2:
        raise GaussfeatError(f"sigma must have shape {(means.shape[1],) * 2} to match means, got {sigma.shape}")
    pairs = np.array([means[a] - means[b] for a, b in combinations(range(len(means)), 2)]).reshape(-1, means.shape[1])
    norms = np.linalg.norm(pairs, axis=1)
    if np.any(norms == 0):
        a, b = list(combinations(range(len(means)), 2))[int(np.argmin(norms))]
        raise GaussfeatError(f"means of classes {a} and {b} are equal: their alignment is undefined")
    s, q = np.linalg.eigh(sigma)
    require_positive_spectrum(s[0], "sigma")
    coordinates = pairs @ q
    gradients = coordinates / s
    return np.sum(coordinates * gradients, axis=1) / (norms * np.linalg.norm(gradients, axis=1))


def random_mixture(dim: int, classes: int, seed: int = 0, *, condition: float = 100.0, radius: float = 1.0) -> GaussianMixture:
    """Eigenvalues log-uniform with ratio ``condition`` and mean 1 (as :func:`gaussfeat.random_instance`), a Haar
    eigenbasis, and k means drawn uniformly on the sphere of radius ``radius``."""
    classes = as_count(classes, "classes", minimum=2)
    radius = as_positive(radius, "radius")
    rng = np.random.default_rng(seed)
    sigma = random_covariance(dim, rng, condition=condition)
    means = rng.standard_normal((classes, len(sigma)))
    means *= radius / np.linalg.norm(means, axis=1, keepdims=True)
    return GaussianMixture(means, sigma)


def as_classes(c, n: int, classes: int, *, require_all: bool = True, name: str = "c") -> np.ndarray:
    """Class labels as int64, shape (n,), each in {0, ..., classes - 1} (and, with ``require_all``, each present)."""
    labels = as_float_array(np.atleast_1d(c), name, 1)
    if labels.shape != (n,):
        raise GaussfeatError(f"{name} must have shape ({n},) to match x, got {labels.shape}")
    bad = labels[(labels != np.round(labels)) | (labels < 0) | (labels >= classes)]
    if bad.size:
        raise GaussfeatError(f"{name} must contain only integers 0..{classes - 1}, got {np.unique(bad)[:4]}")
    labels = labels.astype(np.int64)
    if require_all:
        missing = np.setdiff1d(np.arange(classes), labels)
        if missing.size:
            raise GaussfeatError(f"every class needs a point, but class {missing[0]} of 0..{classes - 1} has none in {name}")
    return labels


def mixture_mle(x, c, classes: int | None = None) -> GaussianMixture:
    """Standard MLE: mu_c = mean of class c, Sigma = S_W = mean (x - mu_c)(x - mu_c)^T (divides by n)."""
    x, c, classes = _data(x, c, classes)
    means, pooled = _class_means_and_pooled(x, c, classes)
    return GaussianMixture(means, pooled)


def robust_mixture_mle(
    x,
    c,
    eps: float | None = None,
    *,
    classes: int | None = None,
    adversary: str = "l2",
    lam: float | None = None,
    tol: float = 1e-9,
    max_iter: int = 1000,
) -> RobustFit[GaussianMixture]:
    """Adversarial training of (mu_1..mu_k, Sigma) by natural-gradient descent with Danskin's theorem.

    Each step attacks every point (exact inner max), then moves toward the MLE of the attacked points,
    mu_c + a ubar_c and Sigma + a (M - Sigma) with u = x + delta - mu_c, ubar_c its class means and
    M = mean u u^T, scaled per eigen-direction by Newton's factors and line-searched on R: the descent
    of :mod:`gaussfeat.descent`, shared with :func:`gaussfeat.robust_mle` (its k = 1 case). Stops when the
    stationarity is below ``tol`` (``converged``), after ``max_iter`` steps, or on a stall (kinks of the
    exact adversary, as in :func:`gaussfeat.robust_mle`).

    adversary: "l2" (exact, ||delta||_2 <= eps) or "lagrangian" (penalty (lam/2)||delta||^2; pass ``lam``, or
    ``eps`` for lam = robust_lambda(S_W, eps)), whose optimum is robust_covariance(S_W, lam) with the class means.
    ``classes`` defaults to max(c) + 1; every class needs a point.
    """
    if adversary not in ADVERSARIES:
        raise GaussfeatError(f"adversary must be one of {ADVERSARIES}, got {adversary!r}")
    x, c, classes = _data(x, c, classes)
    tol = as_positive(tol, "tol")
    max_iter = as_count(max_iter, "max_iter")
    means, sigma = _class_means_and_pooled(x, c, classes)
    eps, lam = resolve_budget(adversary, eps, lam, sigma)
    if adversary == "lagrangian":
        sigma = sigma + np.eye(len(sigma)) / lam  # feasible: lam Sigma > I
    attack = Attack(x, c, classes, adversary, eps, lam)
    current, trace = descend(attack, attack(means, sigma), tol=tol, max_iter=max_iter)
    sigma = (current.basis * current.eigenvalues) @ current.basis.T
    return RobustFit(
        model=GaussianMixture(current.means, (sigma + sigma.T) / 2),
        adversary=adversary,
        eps=eps,
        lam=lam,
        trace=trace,
        converged=current.stationarity <= tol,
    )


def relaxed_mixture_covariance(x, c, eps: float, classes: int | None = None) -> tuple[np.ndarray, float]:
    """(robust_covariance(S_W, lam), lam) with lam = robust_lambda(S_W, eps): Theorem 2 for k classes."""
    x, c, classes = _data(x, c, classes)
    pooled = _class_means_and_pooled(x, c, classes)[1]
    lam = robust_lambda(pooled, eps)
    return robust_covariance(pooled, lam), lam


def _data(x, c, classes):
    x = as_float_array(x, "x", 2)
    labels = as_float_array(np.atleast_1d(c), "c", 1)
    if classes is None:
        classes = int(labels.max()) + 1 if labels.size else 0
    classes = as_count(classes, "classes", minimum=2)
    c = as_classes(c, len(x), classes)
    if len(x) < x.shape[1] + classes:
        raise GaussfeatError(f"the pooled covariance needs n >= d + k points, got n={len(x)} for d={x.shape[1]}, k={classes}")
    return x, c, classes


def _class_means_and_pooled(x: np.ndarray, c: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(c, minlength=classes)
    means = np.zeros((classes, x.shape[1]))
    np.add.at(means, c, x)
    means /= counts[:, None]
    residual = x - means[c]
    pooled = residual.T @ residual / len(x)
    pooled = (pooled + pooled.T) / 2
    smallest = np.linalg.eigvalsh(pooled)[0]
    if not smallest > 1e-12 * max(np.trace(pooled), np.finfo(float).tiny):
        raise GaussfeatError(f"the pooled within-class covariance of x (shape {x.shape}) is singular "
                             f"(smallest eigenvalue {smallest:.3g}): x has a constant or repeated direction")
    return means, pooled


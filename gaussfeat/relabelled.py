"""Section 3's relabelled sets inside Section 4's model: D_rand and D_det for two Gaussians, exactly.

The data: y uniform on {-1, +1}, x ~ N(y mu, Sigma) (:class:`TwoGaussian`). The source is a linear
classifier sign(x^T w_s), by default the model's standard one, w_s = w = Sigma^-1 mu (the population
MLE: the truth's own classifier). Its exact targeted l2 adversary within eps toward a label t moves x to

    x' = x + t eps u,   u = w_s / ||w_s||,

for any loss that falls as the target's margin t x^T w_s grows (the posterior's cross-entropy,
-log sigmoid(2 t x^T w), among them), and the point is relabelled t:

* D_rand: t uniform on {-1, +1}, independent of (x, y);
* D_det: t = -y (the paper's y + 1 mod C with two classes).

The standard MLE of the relabelled set (:func:`gaussfeat.mle`) has, with m = mu^T Sigma^-1 mu,

* D_rand: mu' = eps u, Sigma' = Sigma + mu mu^T, so w' = eps (Sigma + mu mu^T)^-1 u and, by
  Sherman-Morrison, w'^T mu = eps u^T w / (1 + m). On the original distribution its accuracy
  Phi(w'^T mu / sqrt(w'^T Sigma w')) is above 1/2 exactly when u^T w > 0 (always for the standard
  source, u^T w = ||w||), and does not depend on eps (w' is linear in eps).
* D_det: mu' = eps u - mu, Sigma' = Sigma, so w' = eps Sigma^-1 u - w and w'^T mu = eps u^T w - m:
  accuracy below 1/2 for eps < eps* = m / u^T w, 1/2 at eps*, above it beyond (:func:`d_det_threshold`).

With n points the fit is the sample MLE: its mean carries D_rand's signal eps u under a noise of
covariance (Sigma + mu mu^T) / n, so D_rand falls to chance as eps shrinks at fixed n, where the
population limit does not. proofs/relabelled.py derives every step; ``n=None`` gives the population
limit, ``n`` the mean and spread over ``draws`` sampled sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from ._checks import GaussfeatError, as_count, as_float_array, as_positive
from .model import TwoGaussian, linear_robust_accuracy, mle_parameters

KINDS = ("D_rand", "D_det")


@dataclass(frozen=True, eq=False)
class RelabelledFit:
    """The standard MLE of a relabelled set (D_rand or D_det), judged on the original distribution.

    ``mu`` and ``sigma`` are the fitted parameters (the population limit's when ``n`` is None, else
    the first draw's); ``weights`` holds each draw's classifier Sigma'^-1 mu' (one row in the
    population limit); ``source`` is the unit direction u of the source's perturbations.
    """

    kind: str
    eps: float
    n: int | None
    truth: TwoGaussian
    source: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    weights: np.ndarray

    @cached_property
    def accuracies(self) -> np.ndarray:
        """Each draw's exact accuracy on the original distribution."""
        return np.array([linear_robust_accuracy(w, self.truth, 0.0) for w in self.weights])

    @property
    def accuracy(self) -> float:
        """The exact accuracy on the original distribution (the mean over draws)."""
        return float(np.mean(self.accuracies))

    @property
    def accuracy_spread(self) -> float:
        """The standard deviation of the accuracy over draws (0 in the population limit)."""
        return float(np.std(self.accuracies, ddof=1)) if len(self.weights) > 1 else 0.0

    def robust_accuracy(self, radius: float) -> float:
        """The exact accuracy on the original distribution under l2 perturbations of norm <= radius (mean over draws)."""
        return float(np.mean([linear_robust_accuracy(w, self.truth, radius) for w in self.weights]))

    @property
    def alignment_with_mu(self) -> float:
        """cos(w', mu), the mean over draws."""
        return _mean_cosine(self.weights, self.truth.mu)

    @property
    def alignment_with_source(self) -> float:
        """cos(w', u), the mean over draws."""
        return _mean_cosine(self.weights, self.source)


def d_rand(model: TwoGaussian, eps: float, n: int | None = None, seed: int = 0, *, draws: int = 8,
           source=None) -> RelabelledFit:
    """D_rand: every point moved by eps toward a uniform label t and relabelled t; the standard MLE of
    that set (the population limit when ``n`` is None, else ``draws`` sets of n points from ``seed``)."""
    return _relabelled("D_rand", model, eps, n, seed, draws, source)


def d_det(model: TwoGaussian, eps: float, n: int | None = None, seed: int = 0, *, draws: int = 8,
          source=None) -> RelabelledFit:
    """D_det: every point moved by eps toward t = -y and relabelled t; the standard MLE of that set
    (the population limit when ``n`` is None, else ``draws`` sets of n points from ``seed``)."""
    return _relabelled("D_det", model, eps, n, seed, draws, source)


def d_det_threshold(model: TwoGaussian, source=None) -> float:
    """eps* = mu^T Sigma^-1 mu / u^T Sigma^-1 mu: D_det's population accuracy is 1/2 at eps*, above
    it beyond (inf when u^T Sigma^-1 mu <= 0: never).

    For the standard source (u = w / ||w||, w = Sigma^-1 mu) eps* = w^T mu / ||w||: the l2 distance
    from the class mean mu to the source's decision boundary w^T x = 0, i.e. ||mu|| cos(mu, w),
    Theorem 3's alignment times ||mu||, and the source's median margin: its exact robust accuracy is 1/2 at
    eps*, so D_det generalises exactly where the relabelling moves more than half the points across the
    source's boundary, a statement free of the pixels' scale. It is also sqrt(m) sd_u, m = mu^T Sigma^-1 mu (the
    Mahalanobis distance of mu to that boundary, squared) and sd_u = sqrt(u^T Sigma u) the data's
    spread along the perturbation, so by Cauchy-Schwarz eps*^2 >= m / M(u), M(u) = u^T Sigma^-1 u
    being Theorem 1's misalignment of the source's perturbation (equality when u is an eigenvector).
    Among all sources the standard one has the smallest eps* (u^T w <= ||w||): a robust source
    (Theorem 2's Sigma_r^-1 mu, better aligned with mu) needs a larger eps for D_det to generalise.
    """
    if not isinstance(model, TwoGaussian):
        raise TypeError(f"model must be a TwoGaussian, got {type(model).__name__}")
    u = _source_direction(model, source)
    reach = float(u @ model.weights)
    return float(model.mu @ model.weights / reach) if reach > 0 else float("inf")


def _relabelled(kind: str, model: TwoGaussian, eps, n, seed, draws, source) -> RelabelledFit:
    if not isinstance(model, TwoGaussian):
        raise TypeError(f"model must be a TwoGaussian, got {type(model).__name__}")
    eps = as_positive(eps, "eps", allow_zero=True)
    u = _source_direction(model, source)
    if n is None:
        mu, sigma = _population(kind, model, eps, u)
        weights = _population_weights(kind, model, eps, u)[None, :]
        return RelabelledFit(kind, eps, None, model, u, mu, sigma, weights)
    n = as_count(n, "n", minimum=2)
    if n <= model.dim:
        raise GaussfeatError(f"n must exceed the dimension {model.dim} for the MLE's covariance to be invertible, got n={n}")
    draws = as_count(draws, "draws")
    rng = np.random.default_rng(seed)
    fits = [_sampled_fit(kind, model, eps, u, n, rng) for _ in range(draws)]
    weights = np.array([_solve(sigma, mu, kind, n) for mu, sigma in fits])
    return RelabelledFit(kind, eps, n, model, u, fits[0][0], fits[0][1], weights)


def _population(kind: str, model: TwoGaussian, eps: float, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu', Sigma') of the relabelled set's population MLE."""
    if kind == "D_rand":
        return eps * u, model.sigma + np.outer(model.mu, model.mu)
    return eps * u - model.mu, model.sigma.copy()


def _population_weights(kind: str, model: TwoGaussian, eps: float, u: np.ndarray) -> np.ndarray:
    """Sigma'^-1 mu' in closed form, in Sigma's eigenbasis (O(d^2): no solve at image dimension)."""
    inverse = lambda v: model.basis @ ((model.basis.T @ v) / model.eigenvalues)  # noqa: E731  Sigma^-1 v
    w, m = model.weights, float(model.mu @ model.weights)
    if kind == "D_rand":  # Sherman-Morrison: (Sigma + mu mu^T)^-1 u = Sigma^-1 u - w (w^T u) / (1 + m)
        return eps * (inverse(u) - w * float(w @ u) / (1 + m))
    toward = eps * inverse(u)
    weights = toward - w
    cancelled = np.linalg.norm(weights) <= 64 * np.finfo(float).eps * (np.linalg.norm(toward) + np.linalg.norm(w))
    return np.zeros_like(weights) if cancelled else weights  # mu' = 0 (u along mu, eps = eps*): no classifier, chance


def _sampled_fit(kind: str, model: TwoGaussian, eps: float, u: np.ndarray, n: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x, y = model.sample(n, rng)
    t = rng.choice(np.array([-1.0, 1.0]), size=n) if kind == "D_rand" else -y
    return mle_parameters(x + eps * t[:, None] * u, t)


def _solve(sigma: np.ndarray, mu: np.ndarray, kind: str, n: int) -> np.ndarray:
    try:
        return cho_solve(cho_factor(sigma), mu)
    except LinAlgError:
        raise GaussfeatError(f"the MLE of the sampled {kind} set (n={n}) has a singular covariance; "
                             f"draw more points") from None


def _source_direction(model: TwoGaussian, source) -> np.ndarray:
    """u = w_s / ||w_s|| for the source's weights (default: the model's standard classifier Sigma^-1 mu)."""
    w = model.weights if source is None else as_float_array(source, "source", 1)
    if w.size != model.dim:
        raise GaussfeatError(f"source must have {model.dim} entries to match the model, got {w.size}")
    norm = np.linalg.norm(w)
    if norm == 0:
        raise GaussfeatError("source must be nonzero: a zero classifier has no adversarial direction")
    return w / norm


def _mean_cosine(weights: np.ndarray, direction: np.ndarray) -> float:
    norms = np.linalg.norm(weights, axis=1) * np.linalg.norm(direction)
    return float(np.mean(np.divide(weights @ direction, norms, out=np.zeros(len(weights)), where=norms > 0)))

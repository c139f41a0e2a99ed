"""The paper's two-Gaussian model (Section 4): y uniform on {-1, +1}, x ~ N(y mu, Sigma).

Conventions (used throughout gaussfeat):

* NLL (the usual Gaussian one, with the 1/2):
  l(x; mu, Sigma) = 1/2 (x - mu)^T Sigma^-1 (x - mu) + 1/2 log det Sigma + d/2 log 2 pi.
  The paper's Appendix E writes twice this without the constant; minimisers are the same.
* A labelled point (x, y) is scored with l(x; y mu, Sigma), and the maximum-likelihood
  classifier is sign(x^T Sigma^-1 mu) (the paper prints "argmax" of an NLL; it is an argmin).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from ._checks import (
    GaussfeatError,
    as_count,
    as_float_array,
    as_labels,
    as_points,
    as_positive,
    as_symmetric,
    require_positive_spectrum,
)


@dataclass(frozen=True, eq=False)
class TwoGaussian:
    """Class-conditional Gaussians N(+mu, Sigma) and N(-mu, Sigma) with equal priors.

    Parameters
    ----------
    mu : (d,) array, the mean of class +1.
    sigma : (d, d) symmetric positive-definite covariance shared by both classes.
    """

    mu: np.ndarray
    sigma: np.ndarray
    _eigenvalues: np.ndarray = field(init=False, repr=False)
    _basis: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        mu = as_float_array(self.mu, "mu", 1).copy()  # never freeze the caller's array
        sigma = as_symmetric(self.sigma, "sigma")
        if sigma.shape != (mu.size, mu.size):
            raise GaussfeatError(
                f"sigma must have shape ({mu.size}, {mu.size}) to match mu, got {sigma.shape}"
            )
        eigenvalues, basis = np.linalg.eigh(sigma)  # the one eigensolve: it also checks definiteness
        require_positive_spectrum(eigenvalues[0], "sigma")
        self._freeze(mu, sigma, eigenvalues, basis)

    @classmethod
    def from_spectrum(cls, mu, eigenvalues, basis) -> TwoGaussian:
        """The model with Sigma = Q diag(eigenvalues) Q^T, Q = ``basis`` (orthonormal columns), without
        an eigensolve: the way to build models at image dimension (d in the thousands), where
        each eigensolve costs seconds. Q's orthonormality is checked on a random vector (O(d^2)).
        """
        mu = as_float_array(mu, "mu", 1).copy()
        eigenvalues = as_float_array(eigenvalues, "eigenvalues", 1)
        basis = as_float_array(basis, "basis", 2)
        if eigenvalues.shape != mu.shape or basis.shape != (mu.size, mu.size):
            raise GaussfeatError(
                f"eigenvalues must have shape {mu.shape} and basis {(mu.size, mu.size)} to match mu, "
                f"got {eigenvalues.shape} and {basis.shape}"
            )
        order = np.argsort(eigenvalues, kind="stable")
        eigenvalues, basis = eigenvalues[order], basis[:, order]
        require_positive_spectrum(eigenvalues[0], "sigma")
        probe = np.random.default_rng(0).standard_normal(mu.size)
        drift = np.linalg.norm(basis.T @ (basis @ probe) - probe) / np.linalg.norm(probe)
        if drift > 1e-8:
            raise GaussfeatError(f"basis must have orthonormal columns, but |Q^T Q v - v| / |v| = {drift:.3g} for a random v")
        model = object.__new__(cls)
        sigma = (basis * eigenvalues) @ basis.T
        model._freeze(mu, (sigma + sigma.T) / 2, eigenvalues, basis)
        return model

    def _freeze(self, mu: np.ndarray, sigma: np.ndarray, eigenvalues: np.ndarray, basis: np.ndarray) -> None:
        """Set the fields to these arrays, which the model owns (no caller holds them), read-only."""
        for name, value in [("mu", mu), ("sigma", sigma), ("_eigenvalues", eigenvalues), ("_basis", basis)]:
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def dim(self) -> int:
        """The dimension d."""
        return self.mu.size

    @property
    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of Sigma, ascending."""
        return self._eigenvalues

    @property
    def basis(self) -> np.ndarray:
        """Orthonormal eigenvectors of Sigma (columns), matching :attr:`eigenvalues`."""
        return self._basis

    @property
    def precision(self) -> np.ndarray:
        """Sigma^-1."""
        return (self._basis / self._eigenvalues) @ self._basis.T

    @property
    def weights(self) -> np.ndarray:
        """w = Sigma^-1 mu: the classifier is sign(x^T w), and w is grad_x of x^T Sigma^-1 mu."""
        return self._basis @ ((self._basis.T @ self.mu) / self._eigenvalues)

    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw n labelled points: y uniform on {-1, +1}, x = y mu + Sigma^(1/2) z."""
        n = as_count(n, "n")
        rng = np.random.default_rng(seed)
        y = rng.choice(np.array([-1.0, 1.0]), size=n)
        z = rng.standard_normal((n, self.dim))
        x = y[:, None] * self.mu + (z * np.sqrt(self._eigenvalues)) @ self._basis.T
        return x, y

    def nll(self, x, y) -> np.ndarray:
        """Per-point NLL l(x; y mu, Sigma), shape (n,)."""
        x = as_points(x, self.dim)
        y = as_labels(y, len(x))
        return self._nll(x - y[:, None] * self.mu)

    def _nll(self, residual: np.ndarray) -> np.ndarray:
        whitened = (residual @ self._basis) / np.sqrt(self._eigenvalues)
        log_det = np.sum(np.log(self._eigenvalues))
        return 0.5 * np.sum(whitened**2, axis=1) + 0.5 * log_det + 0.5 * self.dim * np.log(2 * np.pi)

    def predict(self, x) -> np.ndarray:
        """sign(x^T Sigma^-1 mu) in {-1, +1} (ties go to +1), shape (n,)."""
        x = as_points(x, self.dim)
        return np.where(x @ self.weights >= 0, 1.0, -1.0)

    def accuracy(self, truth: TwoGaussian | None = None) -> float:
        """Exact accuracy of sign(x^T w) on ``truth`` (default: this model).

        With x ~ N(y mu*, Sigma*), y x^T w ~ N(w^T mu*, w^T Sigma* w), so the accuracy is
        Phi(w^T mu* / sqrt(w^T Sigma* w)).
        """
        return self.robust_accuracy(0.0, truth)

    def robust_accuracy(self, eps: float, truth: TwoGaussian | None = None) -> float:
        """Exact accuracy of sign(x^T w) on ``truth`` under any l2 perturbation of norm <= eps.

        The worst perturbation is -y eps w / ||w||, which lowers the margin y x^T w by
        eps ||w||: accuracy = Phi((w^T mu* - eps ||w||) / sqrt(w^T Sigma* w)).
        """
        truth = self if truth is None else truth
        if not isinstance(truth, TwoGaussian):
            raise TypeError(f"truth must be a TwoGaussian, got {type(truth).__name__}")
        if truth.dim != self.dim:
            raise GaussfeatError(f"truth has dimension {truth.dim}, but this model has {self.dim}")
        return linear_robust_accuracy(self.weights, truth, eps)


def linear_robust_accuracy(w: np.ndarray, truth: TwoGaussian, eps: float) -> float:
    """Phi((w^T mu* - eps ||w||) / sqrt(w^T Sigma* w)): the exact accuracy of sign(x^T w) on ``truth``
    under any l2 perturbation of norm <= eps (w = 0 classifies every x as +1: one half)."""
    eps = as_positive(eps, "eps", allow_zero=True)
    if not np.any(w):
        return 0.5
    coordinates = truth.basis.T @ w
    spread = np.sqrt(np.sum(coordinates**2 * truth.eigenvalues))  # sqrt(w^T Sigma* w) in O(d^2)
    return float(norm.cdf((w @ truth.mu - eps * np.linalg.norm(w)) / spread))


def mle(x, y) -> TwoGaussian:
    """Standard maximum likelihood: mu = mean(y x), Sigma = mean((x - y mu)(x - y mu)^T).

    The covariance divides by n (the MLE), and needs n > d points for Sigma to be invertible.
    """
    return TwoGaussian(*mle_parameters(x, y))


def mle_parameters(x, y) -> tuple[np.ndarray, np.ndarray]:
    """(mu, Sigma) of :func:`mle`, validated but without the model's eigensolve."""
    x = as_float_array(x, "x", 2)
    y = as_labels(y, len(x))
    if len(x) <= x.shape[1]:
        raise GaussfeatError(f"mle needs more points than dimensions, got n={len(x)} for d={x.shape[1]}")
    mu = y @ x / len(x)
    residual = x - y[:, None] * mu
    return mu, residual.T @ residual / len(x)

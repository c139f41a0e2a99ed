"""Linear classifiers on a two-Gaussian model of data: Section 4's quantities for any weights w.

Data modelled as x ~ N(y mu, Sigma), y = +-1 (for real images: :func:`centre` them, then fit
:func:`gaussfeat.mle`), and a classifier sign(x^T w), whose input gradient is w everywhere:

* alignment cos(w, mu): Theorem 3's gradient alignment (for w = Sigma^-1 mu it is
  :func:`gaussfeat.gradient_alignment`);
* misalignment w^T Sigma^-1 w / ||w||^2: Theorem 1's metric (:func:`gaussfeat.metrics.mahalanobis_ratio`)
  of the classifier's optimal l2 perturbation -y eps w / ||w||, beside tr(Sigma^-1) / d for a
  random direction; between 1 / s_max and 1 / s_min;
* accuracy and robust accuracy at radius eps under the model, exactly:
  Phi((w^T mu - eps ||w||) / sqrt(w^T Sigma w)) (:func:`gaussfeat.model.linear_robust_accuracy`);
* the same on labelled points: the share with y x^T w > eps ||w|| (exact too, as the worst
  perturbation of a linear classifier is known).

Every function works in the model's eigenbasis, O(d^2): no eigensolve at image dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import GaussfeatError, as_float_array, as_labels, as_positive
from .model import TwoGaussian, linear_robust_accuracy
from .robust import robust_eigenvalues, robust_lambda_of_spectrum


@dataclass(frozen=True)
class LinearSummary:
    """Section 4's quantities for one linear classifier w on a model of the data, at radius eps."""

    eps: float
    alignment: float  # cos(w, mu)
    misalignment: float  # w^T Sigma^-1 w / ||w||^2
    random_misalignment: float  # tr(Sigma^-1) / d
    accuracy: float  # under the model, exact
    robust_accuracy: float  # under the model at radius eps, exact


def centre(x, y) -> tuple[np.ndarray, np.ndarray]:
    """(x - c, c), c the midpoint of the two class means: the model's classes are centred at +-mu."""
    x = as_float_array(x, "x", 2)
    y = as_labels(y, len(x))
    if not (np.any(y > 0) and np.any(y < 0)):
        raise GaussfeatError(f"centre needs points of both classes, got only y = {y[0]:+.0f}")
    midpoint = (x[y > 0].mean(axis=0) + x[y < 0].mean(axis=0)) / 2
    return x - midpoint, midpoint


def closed_form_weights(model: TwoGaussian, eps: float) -> tuple[np.ndarray, float]:
    """(Sigma_r(eps)^-1 mu, lam(eps)): Theorem 2's robust classifier for the model, from its spectrum.

    Sigma_r shares Sigma's eigenvectors, with eigenvalues :func:`gaussfeat.robust_eigenvalues`;
    eps = 0 gives the standard classifier Sigma^-1 mu and lam = inf.
    """
    eps = as_positive(eps, "eps", allow_zero=True)
    if eps == 0:
        return model.weights, float("inf")
    lam = robust_lambda_of_spectrum(model.eigenvalues, eps)
    coordinates = model.basis.T @ model.mu
    return model.basis @ (coordinates / robust_eigenvalues(model.eigenvalues, lam)), lam


def summary(w, model: TwoGaussian, eps: float) -> LinearSummary:
    """:class:`LinearSummary` of sign(x^T w) on ``model`` at radius ``eps``."""
    w = _weights(w, model.dim)
    eps = as_positive(eps, "eps", allow_zero=True)
    coordinates = model.basis.T @ w
    norm = np.linalg.norm(w)
    return LinearSummary(
        eps=eps,
        alignment=float(w @ model.mu / (norm * np.linalg.norm(model.mu))),
        misalignment=float(np.sum(coordinates**2 / model.eigenvalues) / norm**2),
        random_misalignment=float(np.mean(1 / model.eigenvalues)),
        accuracy=linear_robust_accuracy(w, model, 0.0),
        robust_accuracy=linear_robust_accuracy(w, model, eps),
    )


def point_accuracies(w, x, y, eps: float) -> tuple[float, float]:
    """(accuracy, robust accuracy at l2 radius eps) of sign(x^T w) on the points: y x^T w > 0 and
    y x^T w > eps ||w||. Ties (y x^T w = 0) count as errors."""
    x = as_float_array(x, "x", 2)
    w = _weights(w, x.shape[1])
    y = as_labels(y, len(x))
    eps = as_positive(eps, "eps", allow_zero=True)
    margins = y * (x @ w)
    return float(np.mean(margins > 0)), float(np.mean(margins > eps * np.linalg.norm(w)))


def _weights(w, dim: int) -> np.ndarray:
    w = as_float_array(w, "w", 1)
    if w.size != dim:
        raise GaussfeatError(f"w must have {dim} entries to match the model, got {w.size}")
    if not np.any(w):
        raise GaussfeatError("w must be nonzero: sign(x^T 0) classifies nothing")
    return w

"""Theory's predictions across eps for a two-Gaussian model fitted to a labelled sample.

The sample is centred at the midpoint of its class means (:func:`gaussfeat.linear.centre`) and
fitted by the standard MLE (mu, Sigma). Then, for each l2 radius eps:

* Theorem 2's closed form: lam(eps), Sigma_r(eps) (Sigma's eigenvectors, eigenvalues
  :func:`gaussfeat.robust_eigenvalues`) and its classifier w_r = Sigma_r^-1 mu;
* the exact robust MLE (:func:`gaussfeat.robust_mle`, l2 adversary, started at the closed form) and
  its classifier (it needs n > d: its fixed point is the second moment of the data's own
  adversarial examples, whatever estimator the closed form used);
* for each classifier, :func:`gaussfeat.linear.summary` on the fitted model (alignment with mu,
  misalignment under Sigma, exact accuracy and robust accuracy at eps) and
  :func:`gaussfeat.linear.point_accuracies` on held-out points (centred at the same midpoint).

eps = 0 is the standard classifier Sigma^-1 mu. Where n is small against d the sample covariance is
singular (n <= d) or noisy in its small eigen-directions, exactly the ones Theorem 2 moves most:
``shrinkage=True`` (the default when n <= d) fits Sigma by Ledoit and Wolf's (2004) shrinkage
toward (tr S / d) I (:func:`gaussfeat.metrics.shrinkage_covariance` of the points y x, whose
covariance is the MLE's S); the record says which estimator ran and its weight a. Costs: one
eigensolve for the fit; each exact robust MLE one eigensolve per step (seconds at d = 3072; see
benchmarks/bench_robust_mle_image.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np

from ._checks import GaussfeatError, as_float_array, as_labels, as_positive
from .linear import centre, closed_form_weights, point_accuracies, summary
from .metrics import shrinkage_covariance
from .model import TwoGaussian, mle
from .robust import robust_eigenvalues, robust_mle


def eps_curve(
    x,
    y,
    x_test,
    y_test,
    eps: Sequence[float],
    *,
    exact: bool = True,
    tol: float = 1e-6,
    max_iter: int = 200,
    evaluation_eps: float | None = None,
    shrinkage: bool | None = None,
    progress=None,
) -> dict:
    """The fitted model and, per eps, the closed-form and (``exact``) robust-MLE classifiers' numbers.

    Returns {"d", "n", "midpoint_norm", "fit": {...}, "rows": [{"eps", "lam", "closed_form",
    "exact"}]}: JSON-ready. With ``evaluation_eps``, each classifier's test robust accuracy at that
    one radius as well (``test_robust_accuracy_at_evaluation_eps``), to set beside other models'.
    ``progress(message)`` (e.g. print) hears of each exact fit.
    """
    x_test = as_float_array(x_test, "x_test", 2)
    y_test = as_labels(y_test, len(x_test))
    radii = [as_positive(e, "eps", allow_zero=True) for e in eps]
    common = None if evaluation_eps is None else as_positive(evaluation_eps, "evaluation_eps", allow_zero=True)
    if not radii:
        raise GaussfeatError("eps must hold at least one radius")
    centred, midpoint = centre(x, y)
    y = as_labels(y, len(centred))
    if x_test.shape[1] != centred.shape[1]:
        raise GaussfeatError(f"x_test must have {centred.shape[1]} columns like x, got shape {x_test.shape}")
    test = x_test - midpoint
    n, d = centred.shape
    shrinkage = n <= d if shrinkage is None else shrinkage
    if shrinkage:
        if exact and any(radius > 0 for radius in radii) and n <= d:
            raise GaussfeatError(f"the exact robust MLE needs more points than dimensions, got n = {n} <= d = {d}; "
                                 f"pass exact=False for the closed form alone")
        sigma, weight = shrinkage_covariance(y[:, None] * centred)
        fitted = TwoGaussian(y @ centred / n, sigma)
    else:
        fitted, weight = mle(centred, y), 0.0
    rows = []
    for radius in radii:
        w, lam = closed_form_weights(fitted, radius)
        row = {"eps": radius, "lam": lam, "closed_form": _classifier(w, fitted, radius, test, y_test, common)}
        if exact and radius > 0:
            started = time.perf_counter()
            fit = robust_mle(centred, y, radius, adversary="l2", tol=tol, max_iter=max_iter, start="closed-form")
            seconds = time.perf_counter() - started
            row["exact"] = {
                **_classifier(fit.model.weights, fitted, radius, test, y_test, common),
                "iterations": fit.iterations,
                "converged": fit.converged,
                "stationarity": fit.trace[-1].stationarity,
                "seconds": seconds,
                "fisher_distance_to_closed_form": _fisher_distance(fit.model, fitted, lam),
                "condition": float(fit.model.eigenvalues[-1] / fit.model.eigenvalues[0]),
            }
            if progress is not None:
                progress(f"eps {radius:g}: exact robust MLE in {fit.iterations} steps, {seconds:.1f} s")
        rows.append(row)
    return {
        "n": len(centred),
        "d": fitted.dim,
        "midpoint_norm": float(np.linalg.norm(midpoint)),
        "fit": {
            "covariance": "ledoit-wolf" if shrinkage else "sample",
            "shrinkage": weight,
            "mu_norm": float(np.linalg.norm(fitted.mu)),
            "trace": float(np.sum(fitted.eigenvalues)),
            "eigenvalue_range": [float(fitted.eigenvalues[0]), float(fitted.eigenvalues[-1])],
            "condition": float(fitted.eigenvalues[-1] / fitted.eigenvalues[0]),
            "eigenvalue_quantiles": np.quantile(fitted.eigenvalues, [0.01, 0.1, 0.5, 0.9, 0.99]).tolist(),
        },
        "rows": rows,
    }


def _classifier(w: np.ndarray, fitted: TwoGaussian, eps: float, test: np.ndarray, y_test: np.ndarray,
                common: float | None) -> dict:
    clean, robust = point_accuracies(w, test, y_test, eps)
    numbers = {**asdict(summary(w, fitted, eps)), "test_accuracy": clean, "test_robust_accuracy": robust}
    if common is not None:
        numbers["test_robust_accuracy_at_evaluation_eps"] = point_accuracies(w, test, y_test, common)[1]
    return numbers


def _fisher_distance(model: TwoGaussian, fitted: TwoGaussian, lam: float) -> float:
    """||S_r^-1/2 (Sigma - S_r) S_r^-1/2||_F / sqrt(d), S_r the closed form: how far the exact robust MLE
    is from Theorem 2's relaxation, in the metric the likelihood uses (0: the relaxation is exact)."""
    s_r = robust_eigenvalues(fitted.eigenvalues, lam)
    q = fitted.basis
    scaled = q.T @ model.sigma @ q / np.sqrt(np.outer(s_r, s_r)) - np.eye(fitted.dim)
    return float(np.linalg.norm(scaled) / np.sqrt(fitted.dim))

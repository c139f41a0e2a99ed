"""The numbers behind each figure, as plain JSON-ready dicts (no plotting here).

Every function is deterministic given its ``seed``; ``eps`` is an l2 radius throughout, and the
robust fits are adversarial training with the exact l2 adversary (:func:`gaussfeat.robust_mle`),
drawn beside Theorem 2's closed form at the true Sigma* with lam = robust_lambda(Sigma*, eps).
"""

from __future__ import annotations

import numpy as np

from .._checks import GaussfeatError, as_count, as_positive
from ..adversary import lagrangian_adversary
from ..alignment import gradient_alignment, worst_case_alignment
from ..instances import figure4, random_instance
from ..linalg import condition_number, relative_frobenius
from ..model import TwoGaussian, mle
from ..relabelled import d_det, d_det_threshold, d_rand
from ..robust import robust_covariance, robust_lambda, robust_mle
from ..vulnerability import misalignment_gap, penalized_gap

FIT_TOL = 1e-6  # whitened stationarity at which a robust fit counts as converged
FIT_MAX_ITER = 200


def _radii(eps, name: str = "eps", allow_zero: bool = False) -> list[float]:
    radii = [as_positive(e, name, allow_zero=allow_zero) for e in np.atleast_1d(eps)]
    if not radii or sorted(radii) != radii or len(set(radii)) != len(radii):
        raise GaussfeatError(f"{name} must be a nonempty strictly increasing sequence, got {list(np.atleast_1d(eps))}")
    return radii


def _robust_model(truth: TwoGaussian, eps: float) -> TwoGaussian:
    """Theorem 2 at the truth: (mu*, Sigma_r(lam(eps))); eps = 0 is the standard model."""
    if eps == 0:
        return truth
    return TwoGaussian(truth.mu, robust_covariance(truth.sigma, robust_lambda(truth.sigma, eps)))


def _fit(x: np.ndarray, y: np.ndarray, eps: float) -> tuple[TwoGaussian, dict]:
    """Adversarial training at radius eps (the standard MLE at eps = 0) and how it went."""
    if eps == 0:
        return mle(x, y), {"iterations": 0, "converged": True}
    fit = robust_mle(x, y, eps, adversary="l2", tol=FIT_TOL, max_iter=FIT_MAX_ITER)
    return fit.model, {"iterations": fit.iterations, "converged": fit.converged}


def _describe(model: TwoGaussian) -> dict:
    w = model.weights
    angle = np.degrees(np.arccos(np.clip(gradient_alignment(model.mu, model.sigma), -1, 1)))
    return {"mu": model.mu.tolist(), "sigma": model.sigma.tolist(), "weights": w.tolist(),
            "alignment": gradient_alignment(model.mu, model.sigma), "angle_degrees": float(angle),
            "eigenvalues": model.eigenvalues.tolist(), "condition": condition_number(model.sigma)}


def blending(eps=(0.0, 0.1, 0.3, 1.0), *, samples: int = 4000, seed: int = 0, shown: int = 600) -> dict:
    """Figure 4 of the paper on :func:`gaussfeat.figure4`: for each eps, the closed-form robust model
    at the truth and the model adversarial training learns from ``samples`` points.

    Theorem 2 predicts mu_r = mu* at every eps, while Sigma_r blends Sigma* with the identity, so the
    gradient w = Sigma_r^-1 mu* turns toward mu* and the boundary {x: x^T w = 0} turns with it.
    """
    radii = _radii(eps, allow_zero=True)
    samples, shown = as_count(samples, "samples", 3), as_count(shown, "shown")
    truth = figure4()
    x, y = truth.sample(samples, seed)
    panels = []
    for e in radii:
        fitted, run = _fit(x, y, e)
        closed = _robust_model(truth, e)
        panels.append({"eps": e, "lam": None if e == 0 else robust_lambda(truth.sigma, e),
                       "closed_form": _describe(closed), "fit": {**_describe(fitted), **run},
                       "fit_vs_closed_form": relative_frobenius(fitted.sigma, closed.sigma)})
    return {"instance": _describe(truth), "samples": samples, "seed": seed,
            "points": {"x": x[:shown].tolist(), "y": y[:shown].tolist()}, "panels": panels}


def geometric_spectrum(dim: int, condition: float, trace: float) -> np.ndarray:
    """Eigenvalues spaced geometrically from s to condition * s, summing to ``trace``."""
    spectrum = condition ** (np.arange(dim) / max(dim - 1, 1))
    return trace * spectrum / spectrum.sum()


def misalignment(dims=(2, 16), *, C: float = 8.0, points: int = 80, checked: int = 4, samples: int = 20_000,
                 random_spectra: int = 300, seed: int = 0) -> dict:
    """Theorem 1: both gaps per dimension against cond(Sigma*) at tr(Sigma*) = d, the adversary's C fixed.

    Each family has a geometric spectrum; it stops where C sigma_min reaches 1.05 (beyond C sigma_min = 1
    the adversary's gain is infinite). ``checked`` conditions per family get a Monte Carlo estimate from
    :func:`gaussfeat.lagrangian_adversary` on ``samples`` points (mean and standard error), and
    ``random_spectra`` Dirichlet spectra of trace d (the largest dimension; concentration log-uniform in
    0.3..300, so from spiky to nearly isotropic) scatter above the isotropic value.
    """
    C = as_positive(C, "C")
    if not C > 1:
        raise GaussfeatError(f"C must exceed 1 so that the isotropic Sigma* = I has a bounded adversary, got C = {C}")
    points, checked = as_count(points, "points", 2), as_count(checked, "checked")
    samples, random_spectra = as_count(samples, "samples", 2), as_count(random_spectra, "random_spectra")
    rng = np.random.default_rng(seed)
    families = []
    for d in (as_count(d, "dims") for d in dims):
        top = _largest_condition(d, C)
        conditions = np.geomspace(1, top, points)
        gaps = [_gaps(np.diag(geometric_spectrum(d, k, d)), C) for k in conditions]
        monte_carlo = []
        for k in np.geomspace(1, top, checked + 1)[:-1]:
            truth = TwoGaussian(np.eye(d)[0], np.diag(geometric_spectrum(d, k, d)))
            x, y = truth.sample(samples, rng)
            delta = lagrangian_adversary(truth, x, y, C)
            increase = 2 * (truth.nll(x + delta, y) - truth.nll(x, y)) / d
            penalized = increase - C * np.sum(delta**2, axis=1) / d
            monte_carlo.append({"condition": float(k), **{name: [float(np.mean(v)), float(np.std(v, ddof=1) / np.sqrt(samples))]
                                                          for name, v in (("gap", increase), ("penalized", penalized))}})
        families.append({"dim": d, "largest_condition": top, "conditions": conditions.tolist(),
                         "gap": [g[0] for g in gaps], "penalized": [g[1] for g in gaps], "monte_carlo": monte_carlo})
    d = max(f["dim"] for f in families)
    floor = 1.05 / C
    scatter = []
    for _ in range(random_spectra):
        spectrum = floor + (d - d * floor) * rng.dirichlet(np.full(d, np.exp(rng.uniform(np.log(0.3), np.log(300)))))
        scatter.append([condition_number(np.diag(spectrum)), *_gaps(np.diag(spectrum), C)])
    isotropic = _gaps(np.eye(1), C)
    return {"C": C, "trace_per_dim": 1.0, "isotropic": {"gap": isotropic[0], "penalized": isotropic[1]},
            "families": families, "random": {"dim": d, "condition_gap_penalized": scatter}}


def _largest_condition(d: int, C: float) -> float:
    """The condition number at which the geometric family of trace d has C sigma_min = 1.05."""
    lo, hi = 1.0, 2.0
    while C * geometric_spectrum(d, hi, d)[0] > 1.05:
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if C * geometric_spectrum(d, mid, d)[0] > 1.05 else (lo, mid)
    return float(lo)


def _gaps(sigma: np.ndarray, C: float) -> tuple[float, float]:
    """(paper's gap, penalised gap), each per dimension."""
    return misalignment_gap(sigma, C) / len(sigma), penalized_gap(sigma, C) / len(sigma)


def robust_spectrum(eps=tuple(np.geomspace(0.01, 10, 61)), fit_eps=(0.03, 0.1, 0.3, 1.0, 3.0), *, dim: int = 8,
                    condition: float = 100.0, samples: int = 20_000, seed: int = 0) -> dict:
    """Theorems 2 and 3 on :func:`gaussfeat.random_instance` (dim, condition): along an eps grid, the
    closed form's eigenvalues, condition number and gradient alignments; at ``fit_eps``, the same for
    adversarial training on ``samples`` points.

    Alignment (Theorem 3): worst case over mu, 2 sqrt(k)/(1 + k) with k = cond(Sigma); for the
    instance's own mu*, cos(mu*, Sigma^-1 mu*); and typical, the mean of cos(u, Sigma^-1 u) over 4096
    directions u uniform on the sphere (its 10% and 90% quantiles beside it).
    """
    grid, fit_grid = _radii(eps), _radii(fit_eps, "fit_eps")
    samples = as_count(samples, "samples", 2)
    truth = random_instance(as_count(dim, "dim", 2), seed, condition=as_positive(condition, "condition"))
    directions = np.random.default_rng(seed).standard_normal((4096, truth.dim))

    def summary(model: TwoGaussian) -> dict:
        typical = _cosines(directions, model.sigma)
        return {"eigenvalues": model.eigenvalues.tolist(), "condition": condition_number(model.sigma),
                "worst_case_alignment": worst_case_alignment(model.sigma),
                "alignment": gradient_alignment(model.mu, model.sigma),
                "typical_alignment": [float(np.mean(typical)), *np.quantile(typical, [0.1, 0.9]).tolist()]}

    x, y = truth.sample(samples, seed + 1)
    fits = []
    for e in fit_grid:
        fitted, run = _fit(x, y, e)
        fits.append({"eps": e, **summary(fitted), **run})
    return {"dim": truth.dim, "condition": condition, "samples": samples, "seed": seed,
            "standard": summary(truth), "sample_standard": summary(mle(x, y)),
            "closed_form": [{"eps": e, "lam": robust_lambda(truth.sigma, e), **summary(_robust_model(truth, e))} for e in grid],
            "fits": fits}


def _cosines(directions: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """cos(u, Sigma^-1 u) for each row u."""
    gradients = np.linalg.solve(sigma, directions.T).T
    return np.sum(directions * gradients, axis=1) / (np.linalg.norm(directions, axis=1) * np.linalg.norm(gradients, axis=1))


def relaxation_gap(dims=(2, 4, 8, 16, 32, 64), budgets=(0.01, 0.1, 1.0), *, condition: float = 100.0,
                   samples: int = 4000, repeats: int = 3, seed: int = 0) -> dict:
    """How far adversarial training with the exact l2 adversary lands from Theorem 2's closed form.

    Per dimension d and budget b = eps^2 / tr(Sigma*): on ``repeats`` random instances, the relative
    Frobenius distance between the exact-l2 fit and the closed form at the sample covariance (so
    sampling error largely cancels; what is left of it makes these upper bounds), and the relative
    error of cond(Sigma). The paper says the relaxation becomes exact as d grows.
    """
    dims = [as_count(d, "dims") for d in dims]
    budgets = [as_positive(b, "budgets") for b in budgets]
    samples, repeats = as_count(samples, "samples", 2), as_count(repeats, "repeats")
    cells = []
    for d in dims:
        if samples <= d:
            raise GaussfeatError(f"samples must exceed every dimension, got samples={samples} for d={d}")
        for b in budgets:
            gaps, condition_errors, converged = [], [], []
            for r in range(repeats):
                truth = random_instance(d, seed + r, condition=condition)
                x, y = truth.sample(samples, seed + 1000 + r)
                sample = mle(x, y)
                eps = float(np.sqrt(b * np.trace(truth.sigma)))
                closed = robust_covariance(sample.sigma, robust_lambda(sample.sigma, eps))
                fitted, run = _fit(x, y, eps)
                gaps.append(relative_frobenius(fitted.sigma, closed))
                condition_errors.append(abs(condition_number(fitted.sigma) / condition_number(closed) - 1))
                converged.append(run["converged"])
            cells.append({"dim": d, "budget": b, "gap": gaps, "condition_error": condition_errors, "converged": converged})
    return {"condition": condition, "samples": samples, "repeats": repeats, "seed": seed, "cells": cells}


def relabelled(conditions=(1.0, 10.0, 100.0, 1000.0), *, dim: int = 16, n: int = 200, draws: int = 16,
               points: int = 41, sampled_points: int = 9, seed: int = 0) -> dict:
    """D_rand and D_det (:mod:`gaussfeat.relabelled`) on random instances of each condition number (|mu| = 1):
    the population accuracy on a grid of eps from eps*/10 to 10 eps*, and the mean and spread over ``draws``
    sampled sets of ``n`` points on a coarser grid."""
    dim, n, draws = as_count(dim, "dim"), as_count(n, "n", minimum=dim + 1), as_count(draws, "draws", minimum=2)
    ratios = np.geomspace(0.1, 10.0, as_count(points, "points", minimum=2))
    sampled_ratios = np.geomspace(0.1, 10.0, as_count(sampled_points, "sampled_points", minimum=2))
    rows = []
    for condition in conditions:
        model = random_instance(dim, seed, condition=as_positive(condition, "condition"))
        threshold = d_det_threshold(model)
        row = {"condition": float(condition), "d_det_threshold": threshold, "bayes_accuracy": model.accuracy(),
               "alignment": gradient_alignment(model.mu, model.sigma),
               "eps": (ratios * threshold).tolist(), "sampled_eps": (sampled_ratios * threshold).tolist()}
        for name, fit in (("d_rand", d_rand), ("d_det", d_det)):
            row[name] = [fit(model, e).accuracy for e in ratios * threshold]
            sampled = [fit(model, e, n=n, seed=seed, draws=draws) for e in sampled_ratios * threshold]
            row[f"{name}_sampled"] = [[f.accuracy, f.accuracy_spread] for f in sampled]
        rows.append(row)
    return {"dim": dim, "n": n, "draws": draws, "seed": seed, "rows": rows}

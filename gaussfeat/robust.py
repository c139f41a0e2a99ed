"""Robust maximum likelihood (Section 4, eq. 11; Theorem 2; Appendix E).

Robust MLE minimises E[ max_{||delta||_2 <= eps} l(x + delta; y mu, Sigma) ] over (mu, Sigma).
Theorem 2 relaxes the per-point constraint into a penalty (lam/2) ||delta||^2 shared by all
points; with the 1/2-weighted NLL of :mod:`gaussfeat.model` the relaxed objective is

    F(Sigma) = lam/2 tr[(lam Sigma - I)^-1 Sigma*] + 1/2 log det Sigma   (+ const),

finite for lam Sigma > I, and its minimiser is, exactly,

    Sigma_r = 1/2 Sigma* + I/lam + (Sigma*/lam + Sigma*^2/4)^(1/2),     mu_r = mu*.

The tie between lam and the l2 radius eps (our definition; the paper leaves it implicit) is
complementary slackness of the average constraint E||delta*||^2 <= eps^2:

    eps^2 = E||delta*||^2 = tr[Sigma* (lam Sigma_r - I)^-2] = tr(Sigma_r^-1) / lam^2,

the last step by stationarity, (lam s - 1)^2 = lam^2 s t per eigenvalue pair (s of Sigma_r,
t of Sigma*). Hence lam ~ sqrt(tr Sigma*^-1) / eps as eps -> 0 and lam ~ d / eps^2 as
eps -> infinity. The paper's bounds, Omega((1 + e^1/2) / (e^1/2 + e^3/2)) <= lam <=
O((1 + e^1/2) / e^1/2), have these rates only if e is a budget on the *squared* norm, e = eps^2;
:func:`paper_lambda_bound_shapes` takes that reading.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import brentq

from ._checks import GaussfeatError, as_count, as_float_array, as_labels, as_positive, as_spd
from .descent import ADVERSARIES, Attack, Iteration, RobustFit, descend
from .linalg import spectral_map
from .model import TwoGaussian, mle_parameters

STARTS = ("mle", "closed-form")


def robust_eigenvalues(t: np.ndarray, lam: float) -> np.ndarray:
    """s(t) = t/2 + 1/lam + sqrt(t/lam + t^2/4): Theorem 2 applied to each eigenvalue t of Sigma*.

    It is the larger root of lam^2 s^2 - (2 lam + lam^2 t) s + 1 = 0, the first-order condition
    (lam s - 1)^2 = lam^2 s t; the smaller root has lam s < 1, where the relaxed objective is +inf.
    """
    t = np.asarray(t, dtype=float)
    return t / 2 + 1 / lam + np.sqrt(t / lam + t**2 / 4)


def robust_covariance(sigma_star, lam: float) -> np.ndarray:
    """Sigma_r(lam) = 1/2 Sigma* + I/lam + (Sigma*/lam + Sigma*^2/4)^(1/2) (Theorem 2)."""
    sigma_star = as_spd(sigma_star, "sigma_star")
    lam = as_positive(lam, "lam")
    return spectral_map(sigma_star, lambda t: robust_eigenvalues(t, lam))


def relaxed_budget(sigma_star, lam: float) -> float:
    """E||delta*||^2 = tr(Sigma_r^-1) / lam^2 at the relaxed optimum: the eps^2 that lam enforces."""
    sigma_star = as_spd(sigma_star, "sigma_star")
    lam = as_positive(lam, "lam")
    return _budget(np.linalg.eigvalsh(sigma_star), lam)


def _budget(t: np.ndarray, lam: float) -> float:
    return float(np.sum(1 / robust_eigenvalues(t, lam)) / lam**2)


def robust_lambda(sigma_star, eps: float) -> float:
    """The multiplier lam(eps) with E||delta*||^2 = eps^2 at Sigma_r(lam); eps is an l2 radius.

    The budget tr(Sigma_r^-1)/lam^2 falls strictly from +inf to 0 as lam grows, so the root
    is unique; it is found by Brent's method on log lam.
    """
    return robust_lambda_of_spectrum(np.linalg.eigvalsh(as_spd(sigma_star, "sigma_star")), eps)


def robust_lambda_of_spectrum(eigenvalues, eps: float) -> float:
    """:func:`robust_lambda` from the eigenvalues of Sigma* (all positive), without an eigensolve."""
    t = as_float_array(eigenvalues, "eigenvalues", 1)
    if not t.min() > 0:
        raise GaussfeatError(f"eigenvalues must all be positive, got smallest {t.min():.6g}")
    eps = as_positive(eps, "eps")
    guesses = (np.sqrt(np.sum(1 / t)) / eps, t.size / eps**2)
    lo, hi = np.log(min(guesses)) - 2, np.log(max(guesses)) + 2
    excess = lambda log_lam: np.log(_budget(t, np.exp(log_lam))) - 2 * np.log(eps)
    while excess(lo) < 0:
        lo -= 4
    while excess(hi) > 0:
        hi += 4
    return float(np.exp(brentq(excess, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps)))


def paper_lambda_bound_shapes(budget: float) -> tuple[float, float]:
    """The shapes of Theorem 2's bounds on lam, (lower, upper), up to constants.

    lower = (1 + b^1/2) / (b^1/2 + b^3/2), upper = (1 + b^1/2) / b^1/2, where b is the paper's
    eps. They match lam(eps)'s rates only when b = eps^2 (a squared-norm budget).
    """
    b = as_positive(budget, "budget")
    return (1 + b**0.5) / (b**0.5 + b**1.5), (1 + b**0.5) / b**0.5


def relaxed_objective(sigma, sigma_star, lam: float) -> float:
    """F(Sigma) = lam/2 tr[(lam Sigma - I)^-1 Sigma*] + 1/2 log det Sigma; +inf unless lam Sigma > I.

    This is E[max_delta l(x + delta) - (lam/2)||delta||^2] at mu = mu*, without the constant d/2 log 2 pi.
    """
    sigma = as_spd(sigma, "sigma")
    sigma_star = as_spd(sigma_star, "sigma_star")
    lam = as_positive(lam, "lam")
    try:  # lam Sigma - I positive definite, by its Cholesky factor
        factor = cho_factor(lam * sigma - np.eye(len(sigma)))
    except np.linalg.LinAlgError:
        return np.inf
    return float(lam / 2 * np.trace(cho_solve(factor, sigma_star)) + np.linalg.slogdet(sigma)[1] / 2)


def relaxed_gradient(sigma, sigma_star, lam: float) -> np.ndarray:
    """dF/dSigma = 1/2 Sigma^-1 - lam^2/2 (lam Sigma - I)^-1 Sigma* (lam Sigma - I)^-1."""
    sigma = as_spd(sigma, "sigma")
    sigma_star = as_spd(sigma_star, "sigma_star")
    lam = as_positive(lam, "lam")
    a_inv = np.linalg.inv(lam * sigma - np.eye(len(sigma)))
    return np.linalg.inv(sigma) / 2 - lam**2 / 2 * a_inv @ sigma_star @ a_inv


def resolve_budget(adversary: str, eps, lam, sample_sigma: np.ndarray) -> tuple[float | None, float | None]:
    """(eps, lam) checked for the adversary: the Lagrangian one takes exactly one of them (eps gives
    lam = robust_lambda(sample_sigma, eps)); the others take eps >= 0 and no lam."""
    if adversary == "lagrangian":
        if (eps is None) == (lam is None):
            raise GaussfeatError(f"the Lagrangian adversary needs exactly one of eps and lam, got eps={eps}, lam={lam}")
        return eps, robust_lambda(sample_sigma, eps) if lam is None else as_positive(lam, "lam")
    if lam is not None:
        raise GaussfeatError(f"lam applies only to the Lagrangian adversary, got lam={lam} with {adversary!r}")
    if eps is None:
        raise GaussfeatError(f"the {adversary!r} adversary needs eps")
    return as_positive(eps, "eps", allow_zero=True), None


def robust_mle(
    x,
    y,
    eps: float | None = None,
    *,
    adversary: str = "l2",
    lam: float | None = None,
    tol: float = 1e-9,
    max_iter: int = 500,
    pgd_steps: int = 50,
    start: str = "mle",
    callback: Callable[[Iteration], None] | None = None,
) -> RobustFit[TwoGaussian]:
    """Adversarial training of (mu, Sigma) by natural-gradient descent with Danskin's theorem.

    Each step attacks every point with the current model (the inner max), then moves toward the
    MLE of the attacked points, mu + a (m - mu) and Sigma + a (M - Sigma) with m = mean y (x + delta)
    and M = mean (x + delta - y mu)(x + delta - y mu)^T, scaled per eigen-direction by Newton's
    factors and line-searched on the robust objective (:mod:`gaussfeat.descent`, where the model is
    one class of the points y x). At the fixed point Sigma is the second moment of its own
    adversarial examples. The descent stops when the stationarity is below ``tol``
    (``converged``), after ``max_iter`` steps, or when the objective stalls. It stalls at kinks:
    with the exact l2 adversary a point whose residual is nearly orthogonal to Sigma's bottom
    eigenvector has two maximisers (the trust-region hard case), so when eps is large next to the
    smallest standard deviation the optimum can sit where the stationarity cannot vanish; the
    trace shows it.

    adversary: "l2" (exact, ||delta|| <= eps), "pgd" (``pgd_steps`` of projected ascent), or
    "lagrangian" (penalty (lam/2)||delta||^2; pass ``lam``, or ``eps`` to use
    lam = robust_lambda(Sigma_hat, eps) of the standard MLE Sigma_hat). For the Lagrangian
    adversary the optimum is the closed form robust_covariance(Sigma_hat, lam) with
    mu = mean(y x), i.e. Theorem 2 applied to the sample.

    start: "mle" (the standard MLE, or Sigma_hat + I/lam for the Lagrangian adversary) or
    "closed-form" (Theorem 2's Sigma_r(lam(eps)) of the sample, mu = mean(y x)): the relaxation's
    optimum, close to the exact one: at image dimension (CIFAR-10 pixels, d = 3072) a step costs
    seconds, and from there a few steps reach the exact fit. ``callback(iteration)`` hears of each
    accepted step (a progress report).
    """
    if adversary not in ADVERSARIES:
        raise GaussfeatError(f"adversary must be one of {ADVERSARIES}, got {adversary!r}")
    x = as_float_array(x, "x", 2)
    y = as_labels(y, len(x))
    tol = as_positive(tol, "tol")
    max_iter = as_count(max_iter, "max_iter")
    mu, sample_sigma = mle_parameters(x, y)
    sigma = sample_sigma
    eps, lam = resolve_budget(adversary, eps, lam, sample_sigma)
    if adversary == "lagrangian":
        sigma = sample_sigma + np.eye(len(mu)) / lam  # feasible: lam Sigma > I
    pgd_steps = as_count(pgd_steps, "pgd_steps")
    if start not in STARTS:
        raise GaussfeatError(f"start must be one of {STARTS}, got {start!r}")
    if start == "closed-form" and (adversary == "lagrangian" or eps > 0):
        t, basis = np.linalg.eigh(sample_sigma)
        relaxed_lam = lam if adversary == "lagrangian" else robust_lambda_of_spectrum(t, eps)
        spectrum = (robust_eigenvalues(t, relaxed_lam), basis)
        sigma = (basis * spectrum[0]) @ basis.T
    else:
        spectrum = None
    attack = Attack(y[:, None] * x, np.zeros(len(x), dtype=np.int64), 1, adversary, eps, lam, pgd_steps)
    start_point = attack(mu[None], sigma, spectrum)
    if not np.isfinite(start_point.objective):
        raise GaussfeatError(f"the sample covariance of x (shape {x.shape}) is singular (its smallest eigenvalue is "
                             f"{start_point.eigenvalues[0]:.3g}): x has a constant or repeated direction")
    current, trace = descend(attack, start_point, tol=tol, max_iter=max_iter, callback=callback)
    return RobustFit(
        model=TwoGaussian.from_spectrum(current.means[0], current.eigenvalues, current.basis),
        adversary=adversary,
        eps=eps,
        lam=lam,
        trace=trace,
        converged=current.stationarity <= tol,
    )


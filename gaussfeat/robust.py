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

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from ._checks import GaussfeatError, as_count, as_float_array, as_labels, as_positive, as_spd
from .adversary import ball_maximiser, pgd_in_eigenbasis
from .linalg import spectral_map
from .model import TwoGaussian, mle_parameters

ADVERSARIES = ("l2", "lagrangian", "pgd")
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
    a = lam * sigma - np.eye(len(sigma))
    if np.linalg.eigvalsh(a)[0] <= 0:
        return np.inf
    return float(lam / 2 * np.trace(np.linalg.solve(a, sigma_star)) + np.linalg.slogdet(sigma)[1] / 2)


def relaxed_gradient(sigma, sigma_star, lam: float) -> np.ndarray:
    """dF/dSigma = 1/2 Sigma^-1 - lam^2/2 (lam Sigma - I)^-1 Sigma* (lam Sigma - I)^-1."""
    sigma = as_spd(sigma, "sigma")
    sigma_star = as_spd(sigma_star, "sigma_star")
    lam = as_positive(lam, "lam")
    a_inv = np.linalg.inv(lam * sigma - np.eye(len(sigma)))
    return np.linalg.inv(sigma) / 2 - lam**2 / 2 * a_inv @ sigma_star @ a_inv


@dataclass(frozen=True)
class Iteration:
    """One accepted step of :func:`robust_mle`."""

    objective: float  # mean adversarial NLL (minus the penalty for the Lagrangian adversary)
    stationarity: float  # (||S^-1/2 (M - S) S^-1/2||_F + ||S^-1/2 (m - mu)||) / sqrt(d): 0 at the optimum
    step: float  # the natural-gradient step length taken to reach this point
    accelerated: bool  # reached by an Anderson-accelerated step instead


@dataclass(frozen=True)
class RobustFit:
    """The result of :func:`robust_mle`: the fitted model and how the descent went."""

    model: TwoGaussian
    adversary: str
    eps: float | None
    lam: float | None
    trace: tuple[Iteration, ...]
    converged: bool

    @property
    def iterations(self) -> int:
        return len(self.trace) - 1


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
) -> RobustFit:
    """Adversarial training of (mu, Sigma) by natural-gradient descent with Danskin's theorem.

    Each step attacks every point with the current model (the inner max), then moves along the
    gradient of the NLL at the attacked points, which by Danskin's theorem is a (sub)gradient of
    the robust objective. Preconditioned by the Fisher metric, the step is

        mu <- mu + a (m - mu),   Sigma <- Sigma + a (M - Sigma),   0 < a <= 1,

    with m = mean y (x + delta), M = mean (x + delta - y mu)(x + delta - y mu)^T: a convex
    combination, so Sigma stays SPD. The step a halves until the robust objective decreases.
    At the fixed point Sigma is the second moment of its own adversarial examples. Anderson
    acceleration proposes steps from the last few iterates; they are kept only if they lower the
    objective. The descent stops when the stationarity is below ``tol`` (``converged``), after
    ``max_iter`` steps, or when the objective stalls. It stalls at kinks: with the exact l2
    adversary a point whose residual is nearly orthogonal to Sigma's bottom eigenvector has two
    maximisers (the trust-region hard case), so when eps is large next to the smallest standard
    deviation the optimum can sit where the stationarity measure cannot vanish; the trace shows it.
    Known limit: when lam sigma_min(Sigma_hat) << 1 (budgets far beyond the data's scale, e.g.
    eps = 100 sqrt(tr Sigma)) only tiny steps are stable and 500 steps stop short; check ``converged``.

    adversary: "l2" (exact, ||delta|| <= eps), "pgd" (``pgd_steps`` of projected ascent), or
    "lagrangian" (penalty (lam/2)||delta||^2; pass ``lam``, or ``eps`` to use
    lam = robust_lambda(Sigma_hat, eps) of the standard MLE Sigma_hat). For the Lagrangian
    adversary the optimum is the closed form robust_covariance(Sigma_hat, lam) with
    mu = mean(y x), i.e. Theorem 2 applied to the sample.

    start: "mle" (the standard MLE, or Sigma_hat + I/lam for the Lagrangian adversary) or
    "closed-form" (Theorem 2's Sigma_r(lam(eps)) of the sample, mu = mean(y x)): the relaxation's
    optimum, close to the exact one, which matters when lam sigma_min(Sigma_hat) << 1 (images:
    CIFAR-10 pixels have sigma_min ~ 1e-6 and eps = 0.5 gives lam ~ 3e4), where the descent from
    the MLE takes many small steps. ``callback(iteration)`` hears of each accepted step (at image
    dimension a step takes seconds: a progress report).
    """
    if adversary not in ADVERSARIES:
        raise GaussfeatError(f"adversary must be one of {ADVERSARIES}, got {adversary!r}")
    x = as_float_array(x, "x", 2)
    y = as_labels(y, len(x))
    tol = as_positive(tol, "tol")
    max_iter = as_count(max_iter, "max_iter")
    mu, sample_sigma = mle_parameters(x, y)
    sigma = sample_sigma
    if adversary == "lagrangian":
        if (eps is None) == (lam is None):
            raise GaussfeatError(f"the Lagrangian adversary needs exactly one of eps and lam, got eps={eps}, lam={lam}")
        lam = robust_lambda(sample_sigma, eps) if lam is None else as_positive(lam, "lam")
        sigma = sample_sigma + np.eye(len(mu)) / lam  # feasible: lam Sigma > I
    else:
        if lam is not None:
            raise GaussfeatError(f"lam applies only to the Lagrangian adversary, got lam={lam} with {adversary!r}")
        if eps is None:
            raise GaussfeatError(f"the {adversary!r} adversary needs eps")
        eps = as_positive(eps, "eps", allow_zero=True)
    pgd_steps = as_count(pgd_steps, "pgd_steps")
    if start not in STARTS:
        raise GaussfeatError(f"start must be one of {STARTS}, got {start!r}")
    if start == "closed-form" and (adversary == "lagrangian" or eps > 0):
        t, basis = np.linalg.eigh(sample_sigma)
        relaxed_lam = lam if adversary == "lagrangian" else robust_lambda_of_spectrum(t, eps)
        sigma = (basis * robust_eigenvalues(t, relaxed_lam)) @ basis.T
    attack = _Attack(x, y, adversary, eps, lam, pgd_steps)

    current = attack(mu, sigma)
    if not np.isfinite(current.objective):
        raise GaussfeatError(f"the sample covariance of x (shape {x.shape}) is singular (its smallest eigenvalue is "
                             f"{current.eigenvalues[0]:.3g}): x has a constant or repeated direction")
    trace = [Iteration(current.objective, current.stationarity, 0.0, False)]
    history: deque[_Point] = deque(maxlen=_ANDERSON_MEMORY)
    exact = adversary != "pgd"  # PGD's objective is a noisy lower bound: no line search on it
    step = 1.0
    tried_anderson = False  # at the current iterate
    while current.stationarity > tol and len(trace) <= max_iter and step > 1e-12:
        accelerated = False
        if exact and not tried_anderson:
            tried_anderson = True
            proposal = _anderson([*history, current])
            if proposal is not None:
                trial = attack(*proposal)
                accelerated = trial.objective <= current.objective
        if not accelerated:
            trial = attack(current.mu + step * current.mu_direction, current.sigma + step * current.sigma_direction)
            if exact and not trial.objective <= current.objective + 1e-13 * abs(current.objective):
                step /= 2
                continue
        history.append(current)
        current, tried_anderson = trial, False
        trace.append(Iteration(current.objective, current.stationarity, 1.0 if accelerated else step, accelerated))
        if callback is not None:
            callback(trace[-1])
        step = min(1.0, 2 * step)
        if _stalled(trace):
            break
    return RobustFit(
        model=TwoGaussian.from_spectrum(current.mu, current.eigenvalues, current.basis),
        adversary=adversary,
        eps=eps,
        lam=lam,
        trace=tuple(trace),
        converged=current.stationarity <= tol,
    )


_ANDERSON_MEMORY = 5
_STALL = 20


def _stalled(trace: list[Iteration]) -> bool:
    """Neither a new best objective (by 1e-12, relative) nor a halved best stationarity in _STALL steps.

    Happens at kinks, where the chosen subgradient cannot vanish, and at the noise floor of PGD;
    a smooth descent below the objective's rounding level still lowers the stationarity.
    """
    if len(trace) <= _STALL:
        return False
    recent, before = trace[-_STALL:], trace[:-_STALL]
    best = min(i.objective for i in before)
    no_gain = min(i.objective for i in recent) >= best - 1e-12 * abs(best)
    return no_gain and min(i.stationarity for i in recent) >= 0.5 * min(i.stationarity for i in before)


def _anderson(points: list[_Point]) -> tuple[np.ndarray, np.ndarray] | None:
    """Anderson-accelerated guess of the fixed point of (mu, Sigma) -> (m, M), or None.

    Type II: the combination of the last iterates whose residuals (m - mu, M - Sigma) best
    cancel in least squares, moved by its combined residual.
    """
    if len(points) < 2:
        return None
    thetas = np.stack([np.concatenate([p.mu, p.sigma.ravel()]) for p in points], axis=1)
    residuals = np.stack([np.concatenate([p.mu_direction, p.sigma_direction.ravel()]) for p in points], axis=1)
    d_theta, d_residual = np.diff(thetas, axis=1), np.diff(residuals, axis=1)
    gamma = np.linalg.lstsq(d_residual, residuals[:, -1], rcond=None)[0]
    theta = thetas[:, -1] + residuals[:, -1] - (d_theta + d_residual) @ gamma
    dim = points[0].mu.size
    return theta[:dim], theta[dim:].reshape(dim, dim)


@dataclass(frozen=True)
class _Point:
    mu: np.ndarray
    sigma: np.ndarray
    objective: float
    stationarity: float
    mu_direction: np.ndarray
    sigma_direction: np.ndarray
    eigenvalues: np.ndarray  # of sigma, ascending
    basis: np.ndarray


class _Attack:
    """The robust objective and its natural gradient at (mu, Sigma), attacking the sample."""

    def __init__(self, x, y, adversary, eps, lam, pgd_steps):
        self.x, self.y = x, y
        self.adversary, self.eps, self.lam, self.pgd_steps = adversary, eps, lam, pgd_steps
        self.mean_yx = y @ x / len(x)
        self.multipliers = None  # the last l2 multipliers: warm starts for the next solve

    def __call__(self, mu: np.ndarray, sigma: np.ndarray) -> _Point:
        n, d = self.x.shape
        s, q = np.linalg.eigh((sigma + sigma.T) / 2)
        infinite = _Point(mu, sigma, np.inf, np.inf, mu, sigma, s, q)
        if s[0] <= 0:
            return infinite
        w = self.x @ q - np.outer(self.y, q.T @ mu)  # residuals x - y mu in the eigenbasis
        penalty = 0.0
        if self.adversary == "lagrangian":
            if self.lam * s[0] <= 1:
                return infinite
            delta = w / (self.lam * s - 1)
            penalty = self.lam / 2 * np.mean(np.sum(delta**2, axis=1))
        elif self.adversary == "l2":
            delta, self.multipliers = ball_maximiser(w, 1 / s, self.eps, self.multipliers)
        else:
            delta = pgd_in_eigenbasis(w, 1 / s, self.eps, self.pgd_steps)
        u = w + delta
        second = u.T @ u / n
        objective = 0.5 * np.sum(np.diag(second) / s) + 0.5 * np.sum(np.log(s)) + 0.5 * d * np.log(2 * np.pi) - penalty
        m_shift = q.T @ (self.mean_yx - mu) + self.y @ delta / n  # eigen-coordinates of m - mu
        root = np.sqrt(s)
        stationarity = (np.linalg.norm(second / np.outer(root, root) - np.eye(d)) + np.linalg.norm(m_shift / root)) / np.sqrt(d)
        return _Point(
            mu=mu,
            sigma=sigma,
            objective=float(objective),
            stationarity=float(stationarity),
            mu_direction=q @ m_shift,
            sigma_direction=q @ (second - np.diag(s)) @ q.T,
            eigenvalues=s,
            basis=q,
        )

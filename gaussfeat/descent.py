"""Robust maximum likelihood for class-conditional Gaussians with a shared covariance: the descent.

Class c of k has mean mu_c and every class the covariance Sigma. The robust objective is

    R(mu, Sigma) = mean_i max_{delta_i} l(x_i + delta_i; mu_{c_i}, Sigma)        (minus a penalty, see below)

with l the 1/2-weighted Gaussian NLL of :mod:`gaussfeat.model`. The inner max sees only the residual
w = x - mu_c, and every adversary here is odd in it, so the two-Gaussian model (x ~ N(y mu, Sigma))
is the case k = 1 on the points y x: y (x - y mu) = y x - mu. Adversaries, in Sigma's eigenbasis:
"l2" (exact, ||delta|| <= eps: :func:`gaussfeat.adversary.ball_maximiser`), "pgd" (projected
ascent: a lower bound, so no line search on it) and "lagrangian" (penalty (lam/2)||delta||^2,
delta = w / (lam s - 1), R minus the penalty: Theorem 2's relaxation).

By Danskin's theorem the NLL's gradient at the attacked points is a (sub)gradient of R. With
u = w + delta, M = mean u u^T and ubar_c the mean of u over class c, the Fisher-preconditioned step
would be mu_c + a ubar_c, Sigma + a (M - Sigma); at the fixed point Sigma is the second moment of its
own adversarial examples. In Sigma's eigenbasis (eigenvalues s_i) the step taken is

    (mu_c)_i += a (ubar_c)_i / (1 + h_i),      Sigma_ik += a (M - Sigma)_ik / (1 + h_i + h_k),    0 < a <= 1,

with h_i >= 0 the adversary's sensitivity to s_i (:meth:`Attack.sensitivity`): for the
Lagrangian adversary h_i = 1 / (lam s_i - 1) makes it Newton's step at Theorem 2's optimum, so
budgets far beyond the data's scale (lam s_i << 1), where plain steps must be tiny, take a few
steps. The scaling is a Hadamard product with the Cauchy matrix 1 / (1 + h_i + h_k), positive
semidefinite, so Sigma stays SPD for a <= 1 and the step stays a descent direction. The step a
halves until R falls; Anderson acceleration proposes steps from the last few iterates, kept under
the same rule.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Generic, TypeVar

import numpy as np

from .adversary import ball_maximiser, pgd_in_eigenbasis

ADVERSARIES = ("l2", "lagrangian", "pgd")
Model = TypeVar("Model")

_ANDERSON_MEMORY = 5
_STALL = 20
_ROUNDING = 1e-13  # relative: changes of R below this are rounding
_SENSITIVITY_ROWS = 256  # rows per block of the n x d sensitivity sums: cache-resident


@dataclass(frozen=True)
class Iteration:
    """One accepted step of the descent."""

    objective: float  # mean adversarial NLL (minus the penalty for the Lagrangian adversary)
    stationarity: float  # (||S^-1/2 (M - S) S^-1/2||_F + (sum_c pi_c ||S^-1/2 ubar_c||^2)^1/2) / sqrt(d): 0 at the optimum
    step: float  # the step length a taken to reach this point
    accelerated: bool  # reached by an Anderson-accelerated step instead


@dataclass(frozen=True)
class RobustFit(Generic[Model]):
    """The result of a robust fit: the fitted model, its budget, and how the descent went."""

    model: Model
    adversary: str
    eps: float | None
    lam: float | None
    trace: tuple[Iteration, ...]
    converged: bool

    @property
    def iterations(self) -> int:
        return len(self.trace) - 1


@dataclass(frozen=True)
class Point:
    """(means, Sigma) with R there and the scaled step; the steps are in Sigma's eigenbasis."""

    means: np.ndarray  # (k, d)
    sigma: np.ndarray
    objective: float
    stationarity: float
    eigenvalues: np.ndarray  # of sigma, ascending
    basis: np.ndarray
    means_step: np.ndarray  # (k, d), eigen-coordinates
    sigma_step: np.ndarray  # (d, d), eigen-coordinates

    @cached_property
    def means_direction(self) -> np.ndarray:
        return self.means_step @ self.basis.T

    @cached_property
    def sigma_direction(self) -> np.ndarray:  # two d^3 products: only for the points that are kept
        return self.basis @ self.sigma_step @ self.basis.T


class Attack:
    """R and the scaled step at (means, Sigma), attacking a sample of points with classes 0..k-1.

    The n x d rotation of the points lands in one buffer reused by every call; memory O(n d + d^2).
    """

    def __init__(self, points: np.ndarray, classes: np.ndarray, k: int, adversary: str, eps, lam, pgd_steps: int = 50):
        self.points, self.classes = points, classes
        self.adversary, self.eps, self.lam, self.pgd_steps = adversary, eps, lam, pgd_steps
        counts = np.bincount(classes, minlength=k)
        self.weights = counts / len(points)  # pi_c
        self.class_means = (np.arange(k)[:, None] == classes) / counts[:, None] if k > 1 else None  # (k, n)
        self.residuals = np.empty_like(points)
        self.multipliers = None  # the last l2 multipliers: warm starts for the next solve

    def __call__(self, means: np.ndarray, sigma: np.ndarray, spectrum: tuple[np.ndarray, np.ndarray] | None = None) -> Point:
        """The point (means, Sigma); ``spectrum``, Sigma's (eigenvalues, basis) if known, saves an eigensolve."""
        n, d = self.points.shape
        s, q = np.linalg.eigh((sigma + sigma.T) / 2) if spectrum is None else spectrum
        if s[0] <= 0 or (self.adversary == "lagrangian" and self.lam * s[0] <= 1):
            return Point(means, sigma, np.inf, np.inf, s, q, np.zeros_like(means), np.zeros((d, d)))
        w = np.matmul(self.points, q, out=self.residuals)
        rotated_means = means @ q
        w -= rotated_means[0] if self.class_means is None else rotated_means[self.classes]  # x - mu_c
        penalty = 0.0
        if self.adversary == "lagrangian":
            delta = w / (self.lam * s - 1)
            penalty = self.lam / 2 * np.mean(np.sum(delta**2, axis=1))
        elif self.adversary == "l2":
            delta, self.multipliers = ball_maximiser(w, 1 / s, self.eps, self.multipliers)
        else:
            delta = pgd_in_eigenbasis(w, 1 / s, self.eps, self.pgd_steps)
        u = np.add(w, delta, out=w)
        second = u.T @ u / n
        objective = 0.5 * np.sum(np.diag(second) / s) + 0.5 * np.sum(np.log(s)) + 0.5 * d * np.log(2 * np.pi) - penalty
        shifts = u.mean(axis=0, keepdims=True) if self.class_means is None else self.class_means @ u  # ubar_c
        root = np.sqrt(s)
        mean_term = np.sqrt(np.sum(self.weights * np.sum((shifts / root) ** 2, axis=1)))
        stationarity = (np.linalg.norm(second / np.outer(root, root) - np.eye(d)) + mean_term) / np.sqrt(d)
        h = self.sensitivity(s, delta)
        second[np.diag_indices(d)] -= s
        second /= 1 + h[:, None] + h
        return Point(means, sigma, float(objective), float(stationarity), s, q, shifts / (1 + h), second)

    def sensitivity(self, s: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """h with -(h_i + h_k) approximating the (i, k) entry of the Jacobian of Sigma -> M in Sigma's eigenbasis.

        Dividing M - Sigma by 1 + h_i + h_k (and ubar_c by 1 + h_i) is then Newton's step for the
        fixed point in a diagonal approximation. Lagrangian adversary: delta = w / (lam s - 1) and
        h_i = 1 / (lam s_i - 1), exact at Theorem 2's optimum. Exact l2 adversary: each point has
        its own multiplier eta, delta = w / (eta s - 1), and eta moves to keep ||delta|| = eps, so
        h_i = mean over points of (1 - g_i / c) / (eta s_i - 1), with g_i = s_i delta_i^2 / (eta s_i - 1)
        and c = sum_i g_i: the factor is the multiplier's reply, and a point whose budget sits on
        direction i (the trust-region hard case, eta s_i -> 1) cannot answer a change there.
        PGD has no multipliers: h = 0, the plain step.
        """
        if self.adversary == "pgd":
            return np.zeros_like(s)
        if self.adversary == "lagrangian":
            return 1 / (self.lam * s - 1)
        total = np.zeros_like(s)
        for start in range(0, len(delta), _SENSITIVITY_ROWS):
            rows = slice(start, start + _SENSITIVITY_ROWS)
            gap = np.maximum(self.multipliers[rows, None] * s - 1, 0.0)  # eta s - 1; 0 in the hard case
            with np.errstate(divide="ignore", invalid="ignore"):
                g = s * delta[rows] ** 2 / gap  # inf in the hard case, nan where delta_i = 0 there too
                g[np.isnan(g)] = 0.0
                share = 1 - g / np.sum(g, axis=1, keepdims=True)  # nan on rows with c = inf or c = 0
                share[np.isnan(share)] = 1.0
                share[gap == 0] = 0.0
                total += np.sum(np.where(share > 0, share / gap, 0.0), axis=0)
        return total / len(delta)


def descend(
    attack: Attack,
    start: Point,
    *,
    tol: float,
    max_iter: int,
    callback: Callable[[Iteration], None] | None = None,
) -> tuple[Point, tuple[Iteration, ...]]:
    """Run the descent from ``start`` (an attacked point); return the last point and the trace.

    Stops when the stationarity is below ``tol``, after ``max_iter`` accepted steps, or when R
    stalls: at kinks of the exact l2 adversary (a point whose residual is nearly orthogonal to
    Sigma's bottom eigenvector has two maximisers, the trust-region hard case) the optimum can sit
    where the stationarity cannot vanish, and PGD has a noise floor. ``callback`` hears of each
    accepted step.
    """
    current = start
    trace = [Iteration(current.objective, current.stationarity, 0.0, False)]
    history: deque[Point] = deque(maxlen=_ANDERSON_MEMORY)
    exact = attack.adversary != "pgd"  # PGD's R is a noisy lower bound: no line search on it
    step, tried_anderson = 1.0, False
    while current.stationarity > tol and len(trace) <= max_iter and step > 1e-12:
        accelerated = False
        if exact and not tried_anderson:
            tried_anderson = True
            proposal = _anderson([*history, current])
            if proposal is not None:
                trial = attack(*proposal)
                accelerated = _better(trial, current)
        if not accelerated:
            trial = attack(current.means + step * current.means_direction, current.sigma + step * current.sigma_direction)
            if exact and not _better(trial, current):
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
    return current, tuple(trace)


def _better(trial: Point, current: Point) -> bool:
    """R lower beyond rounding, or equal within rounding and the stationarity lower (near the optimum R's
    changes fall below its rounding before the stationarity reaches the tolerance)."""
    noise = _ROUNDING * abs(current.objective)
    if trial.objective < current.objective - noise:
        return True
    return trial.objective <= current.objective + noise and trial.stationarity < current.stationarity


def _stalled(trace: list[Iteration]) -> bool:
    """Neither a new best R (by 1e-12, relative) nor a halved best stationarity in _STALL steps."""
    if len(trace) <= _STALL:
        return False
    recent, before = trace[-_STALL:], trace[:-_STALL]
    best = min(i.objective for i in before)
    no_gain = min(i.objective for i in recent) >= best - 1e-12 * abs(best)
    return no_gain and min(i.stationarity for i in recent) >= 0.5 * min(i.stationarity for i in before)


def _anderson(points: list[Point]) -> tuple[np.ndarray, np.ndarray] | None:
    """Anderson-accelerated guess of the fixed point of the scaled step map, or None.

    Type II: the combination of the last iterates whose steps r best cancel in least squares,
    moved by its combined step. The least-squares problem is solved from the Gram matrix of the
    steps (a few inner products), so no copy of the d x d iterates is stacked.
    """
    if len(points) < 2:
        return None
    gram = np.array([[_inner(a, b) for b in points] for a in points])
    # differences dr_i = r_{i+1} - r_i: <dr_i, dr_j> and <dr_i, r_last> from the Gram matrix of the r's
    diff = np.diff(np.eye(len(points)), axis=0)  # rows: the combinations r_{i+1} - r_i
    gamma = np.linalg.lstsq(diff @ gram @ diff.T, diff @ gram[:, -1], rcond=1e-12)[0]
    weights = np.zeros(len(points))  # theta = theta_last + r_last - sum_i gamma_i (d theta_i + d r_i)
    weights[-1] = 1.0
    weights -= gamma @ diff
    means = sum(w * (p.means + p.means_direction) for w, p in zip(weights, points))
    sigma = np.zeros_like(points[-1].sigma)
    for w, p in zip(weights, points):
        sigma += w * p.sigma
        sigma += w * p.sigma_direction
    return means, sigma


def _inner(a: Point, b: Point) -> float:
    """<r_a, r_b>, r the step (means, Sigma) flattened."""
    return float(np.vdot(a.means_direction, b.means_direction) + np.vdot(a.sigma_direction, b.sigma_direction))

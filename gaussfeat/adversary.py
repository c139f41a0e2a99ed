"""Adversaries against the NLL of a :class:`~gaussfeat.model.TwoGaussian`, over batches.

Each returns the perturbations delta, shape (n, d), for points x with labels y, writing
v = x - y mu for the residual, P = Sigma^-1, and l the NLL (see :mod:`gaussfeat.model`).

* :func:`lagrangian_adversary`: max_delta l(x + delta) - (C/2) ||delta||^2 (Theorem 1).
* :func:`l2_adversary`: the exact max of l(x + delta) over ||delta||_2 <= eps (eq. 11).
* :func:`pgd_adversary`: projected normalised gradient ascent over the same ball.
"""

from __future__ import annotations

import numpy as np

from ._checks import GaussfeatError, as_count, as_labels, as_points, as_positive
from .model import TwoGaussian

_BLOCK_ROWS = 128  # 128 x d doubles per array: cache-resident for d in the hundreds
_MAX_NEWTON = 100


def _residuals(model: TwoGaussian, x, y) -> np.ndarray:
    if not isinstance(model, TwoGaussian):
        raise TypeError(f"model must be a TwoGaussian, got {type(model).__name__}")
    x = as_points(x, model.dim)
    return x - as_labels(y, len(x))[:, None] * model.mu


def lagrangian_adversary(model: TwoGaussian, x, y, C: float) -> np.ndarray:
    """delta* = (C Sigma - I)^-1 (x - y mu), the maximiser of l(x + delta) - (C/2)||delta||^2.

    The objective is strictly concave, and its maximum finite, iff C > 1/sigma_min(Sigma);
    at C = 1/sigma_min it is unbounded along the bottom eigenvector (Theorem 1 states
    C >= 1/sigma_min and a penalty C ||delta||_2; both need the strict, squared form).
    """
    v = _residuals(model, x, y)
    C = as_positive(C, "C")
    s = model.eigenvalues
    if not C * s[0] > 1:
        raise GaussfeatError(
            f"C must exceed 1/sigma_min(Sigma) = {1 / s[0]:.6g} for the Lagrangian adversary "
            f"to be bounded, got C = {C:.6g}"
        )
    q = model.basis
    return ((v @ q) / (C * s - 1)) @ q.T


def l2_adversary(model: TwoGaussian, x, y, eps: float) -> np.ndarray:
    """The exact maximiser of l(x + delta; y mu, Sigma) over ||delta||_2 <= eps, per point.

    A convex quadratic is maximised on the sphere ||delta|| = eps; the KKT conditions give
    delta = (eta Sigma - I)^-1 v with a multiplier eta >= 1/sigma_min chosen so that
    ||delta|| = eps (the secular equation, solved per point by safeguarded Newton on
    1/||delta(eta)|| - 1/eps, which is concave and increasing in eta). When v has no component
    along the bottom eigenvector of Sigma and the rest cannot fill the ball (the trust-region
    "hard case"), eta = 1/sigma_min and the remaining norm goes along that eigenvector.
    """
    v = _residuals(model, x, y)
    eps = as_positive(eps, "eps", allow_zero=True)
    q = model.basis
    delta, _ = ball_maximiser(v @ q, 1 / model.eigenvalues, eps)
    return delta @ q.T


def ball_maximiser(
    w: np.ndarray, p: np.ndarray, eps: float, eta0: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Maximise sum_i p_i (w_i + d_i)^2 over ||d||_2 <= eps for each row w of a batch.

    Works in the eigenbasis: p (d,) are the positive eigenvalues of the precision, w (n, d)
    the residuals' coordinates. Returns the maximisers d (n, d), each of norm eps, and their
    multipliers eta (n,) with d_i = p_i w_i / (eta - p_i) and eta >= max(p). ``eta0``, guesses of
    the multipliers (from a nearby problem), only speed the solve up. Memory is O(n d), and rows
    are processed in blocks small enough to stay in cache.
    """
    n = len(w)
    if eps == 0:
        return np.zeros_like(w), np.full(n, np.inf)
    p_max = p.max()
    gap = p_max - p
    delta = np.empty_like(w)
    eta = np.empty(n)
    for start in range(0, n, _BLOCK_ROWS):
        rows = slice(start, start + _BLOCK_ROWS)
        guess = None if eta0 is None else eta0[rows] - p_max
        delta[rows], t = _solve_block(p * w[rows], gap, eps, guess)
        eta[rows] = p_max + t
    return delta, eta


def _solve_block(
    b: np.ndarray, gap: np.ndarray, eps: float, guess: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ||d(t)|| = eps for d(t)_i = b_i / (t + gap_i), t >= 0, row by row."""
    b2 = b * b
    b2[b2 < np.finfo(float).tiny] = 0.0  # subnormal squares carry no precision: treat them as 0
    top = gap == 0
    # ||d(t)|| >= |b_i| / (t + gap_i) for every i, so the root lies above this bound.
    lower = np.maximum(0.0, np.max(np.sqrt(b2) / eps - gap, axis=1))
    t = lower.copy()
    generic = lower > 0  # b is nonzero on the bottom eigenspace or large elsewhere
    start = lower if guess is None else np.maximum(lower, np.nan_to_num(guess, posinf=0.0))
    t[generic] = _newton(b2[generic], gap, start[generic], lower[generic], eps)
    rest = np.flatnonzero(~generic)
    if rest.size:
        inner = b2[np.ix_(rest, ~top)]
        fills = np.sum(inner / gap[~top] ** 2, axis=1) < eps**2  # the hard case: t = 0
        easy, hard = rest[~fills], rest[fills]
        zero = np.zeros(easy.size)
        t[easy] = _newton(inner[~fills], gap[~top], zero, zero, eps)
        generic[easy] = True
        delta_hard = np.zeros((hard.size, b.shape[1]))
        delta_hard[:, ~top] = b[np.ix_(hard, ~top)] / gap[~top]
        remaining = eps**2 - np.sum(delta_hard**2, axis=1)
        bottom = np.flatnonzero(top)[0]
        delta_hard[:, bottom] = np.copysign(np.sqrt(np.maximum(remaining, 0.0)), b[hard, bottom])
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 only on hard-case rows, set next
        delta = b / (t[:, None] + gap)
    if rest.size:
        delta[hard] = delta_hard
    delta[generic] *= (eps / np.linalg.norm(delta[generic], axis=1))[:, None]
    return delta, t


def _newton(b2: np.ndarray, gap: np.ndarray, t: np.ndarray, lower: np.ndarray, eps: float) -> np.ndarray:
    """Newton on psi(t) = 1/||d(t)|| - 1/eps from any start t >= ``lower``, a bound below the root.

    psi is concave and increasing in t, so its tangent lies above it: from below the root the
    iterates rise monotonically to it (Moré and Sorensen's argument for trust-region
    subproblems), and a step from above lands below it, where it is clamped to ``lower``.
    """
    t = t.copy()
    active = np.arange(len(t))
    for _ in range(_MAX_NEWTON):
        if not active.size:
            return t
        tt = t[active]
        r = 1.0 / (tt[:, None] + gap)
        q = b2[active] * r * r
        norm2 = q.sum(axis=1)
        new = np.maximum(tt + norm2 * (np.sqrt(norm2) / eps - 1.0) / np.einsum("ij,ij->i", q, r), lower[active])
        t[active] = new
        active = active[np.abs(new - tt) > 1e-9 * new]  # quadratic convergence: the error left is ~1e-18
    raise RuntimeError(f"secular equation did not converge for {active.size} points in {_MAX_NEWTON} iterations")


def pgd_adversary(
    model: TwoGaussian,
    x,
    y,
    eps: float,
    *,
    steps: int = 20,
    step_size: float | None = None,
    random_start: bool = False,
    seed: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Projected gradient ascent on l(x + delta) over ||delta||_2 <= eps, for comparison.

    Each step moves along the normalised gradient Sigma^-1 (v + delta) by ``step_size``
    (default eps / 4, whatever ``steps``) and projects back onto the ball; the best iterate per
    point is returned. ``random_start`` draws the start uniformly in the ball (with ``seed``).

    Because the default step does not shrink with ``steps``, a longer run continues a shorter
    one's trajectory and never ends worse, and it converges to :func:`l2_adversary`'s maximum
    (mean relative shortfall 5e-9 after 100 steps at eps = 3, d = 8, cond 100). The paper's
    library convention, 2.5 eps / steps, caps the path at 2.5 eps and stalls (3% short there,
    however many steps); pass ``step_size=2.5 * eps / steps`` to reproduce it.
    """
    v = _residuals(model, x, y)
    eps = as_positive(eps, "eps", allow_zero=True)
    steps = as_count(steps, "steps")
    step_size = None if step_size is None else as_positive(step_size, "step_size")
    q = model.basis
    start = _uniform_in_ball(v.shape, eps, np.random.default_rng(seed)) @ q if random_start else None
    return pgd_in_eigenbasis(v @ q, 1 / model.eigenvalues, eps, steps, step_size, start) @ q.T


def pgd_in_eigenbasis(
    w: np.ndarray,
    p: np.ndarray,
    eps: float,
    steps: int,
    step_size: float | None = None,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """PGD for max sum_i p_i (w_i + d_i)^2 over ||d|| <= eps, in the precision's eigenbasis (step eps / 4 by default)."""
    step_size = eps / 4 if step_size is None else step_size
    delta = np.zeros_like(w) if start is None else start.copy()

    def value(d):
        return np.sum(p * (w + d) ** 2, axis=1)

    best, best_value = delta.copy(), value(delta)
    for _ in range(steps):
        grad = p * (w + delta)
        delta += step_size * grad / _safe_norm(grad)
        delta *= np.minimum(1.0, eps / _safe_norm(delta))
        current = value(delta)
        better = current > best_value
        best[better], best_value[better] = delta[better], current[better]
    return best


def _safe_norm(a: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return np.where(norms > 0, norms, 1.0)


def _uniform_in_ball(shape: tuple[int, int], eps: float, rng: np.random.Generator) -> np.ndarray:
    direction = rng.standard_normal(shape)
    direction /= _safe_norm(direction)
    return direction * eps * rng.random((shape[0], 1)) ** (1 / shape[1])

"""A two-class product-Laplace model and its robust maximum likelihood: a non-Gaussian model with a closed form.

y is uniform on {-1, +1} and x = y mu + z, z_j ~ Laplace(0, b_j) independent (density exp(-|z_j| / b_j) / (2 b_j)).
A labelled point is scored with the Laplace NLL (it has no 1/2):

    l(x; y mu, b) = sum_j |x_j - y mu_j| / b_j + sum_j log(2 b_j).

A model x = y mu + Q z with a known orthogonal Q is this one for Q^T x (the l2 ball is rotation invariant).

Exact inner max (eps an l2 radius). With a = 1/b and w = x - y mu, for ||delta||_2 <= eps,

    sum_j a_j |w_j + delta_j| <= sum_j a_j |w_j| + sum_j a_j |delta_j| <= sum_j a_j |w_j| + eps ||a||_2

(triangle inequality, then Cauchy-Schwarz), with equality at delta = eps sign(w) a / ||a||_2: so
max_delta l(x + delta) = l(x) + eps ||1/b||_2 for every point. The maximiser is unique when no w_j = 0; at
w_j = 0 both signs of delta_j tie (we take +).

Robust MLE, R(mu, b) = mean_i sum_j |y_i x_ij - mu_j| / b_j + eps ||1/b||_2 + sum_j log(2 b_j):

* mu: the eps term does not involve mu, so mu_j = median_i(y_i x_ij) for every eps (the mean never moves).
* b: with r_j = mean_i |y_i x_ij - mu_j| (the standard MLE scale), R is strictly convex in a = 1/b and
  stationary where b_j = r_j + eps (1/b_j) / ||1/b||_2, i.e. b is the MLE scale (mean absolute residual) of its
  own adversarial examples. With c = eps / ||1/b||_2 each coordinate solves a quadratic:

      b_j = r_j / 2 + sqrt(r_j^2 / 4 + c),   c the unique root of sum_j (c / b_j(c))^2 = eps^2,

  (c / b_j(c) rises strictly from 0 to infinity in c); equivalently b - r = c / b and ||b - r||_2 = eps.
* Blending (Theorem 2's analogue, exact for the l2 adversary): log b_j = 1/2 log c + asinh(r_j / (2 sqrt c)), and
  asinh(e^v) has slope e^v / sqrt(1 + e^(2v)), rising in v; so each ratio b_j / b_i with r_j > r_i falls strictly
  toward 1 as eps grows, and the increment b_j - r_j = c / b_j is largest where the scale is smallest.
* The relaxation is exact here: the Lagrangian adversary (penalty (lam/2)||delta||^2) plays delta = sign(w) a / lam,
  of norm ||a||_2 / lam at every point, and its optimum is the formula above with c = 1/lam; at
  lam = ||1/b||_2 / eps the two fits coincide.

Alignment (Theorem 3's analogue, measured, not proved). The Bayes log-odds
LLR(x) = sum_j (|x_j + mu_j| - |x_j - mu_j|) / b_j is 2 sign(mu_j) clip(x_j, -|mu_j|, |mu_j|) / b_j per coordinate:
its gradient is 2 sign(mu_j) / b_j inside the window |x_j| < |mu_j| and 0 outside. We measure cos(g, mu) for
g = E_x grad LLR(x) = 2 sign(mu) kappa / b, kappa_j = P(|x_j| < |mu_j|) under the data-generating model. mu and
kappa do not move with eps while b blends; by the tilting argument of :mod:`gaussfeat.mixture` the cosine rises
when kappa_j / |mu_j| is non-decreasing in 1/r_j (e.g. |mu_j| << b_j, where kappa_j ~ |mu_j| / b_j), but not in
general: means with kappa / (|mu| b) constant make g parallel to mu at eps = 0, and blending can only lower it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from ._checks import (
    GaussfeatError,
    as_count,
    as_float_array,
    as_labels,
    as_points,
    as_positive,
)
from .descent import Iteration


@dataclass(frozen=True, eq=False)
class ProductLaplace:
    """x = y mu + z, y uniform on {-1, +1}, z_j ~ Laplace(0, b_j) independent.

    mu : (d,) array, the mean of class +1.   scales : (d,) array of positive Laplace scales b (sd = sqrt(2) b).
    """

    mu: np.ndarray
    scales: np.ndarray

    def __post_init__(self) -> None:
        mu = as_float_array(self.mu, "mu", 1).copy()
        scales = as_float_array(self.scales, "scales", 1).copy()
        if scales.shape != mu.shape:
            raise GaussfeatError(f"scales must have shape {mu.shape} to match mu, got {scales.shape}")
        if not scales.min() > 0:
            raise GaussfeatError(f"scales must all be positive, got smallest {scales.min():.6g} at coordinate {int(np.argmin(scales))}")
        for name, value in [("mu", mu), ("scales", scales)]:
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def dim(self) -> int:
        return self.mu.size

    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """n labelled points: y uniform on {-1, +1}, x = y mu + z."""
        n = as_count(n, "n")
        rng = np.random.default_rng(seed)
        y = rng.choice(np.array([-1.0, 1.0]), size=n)
        return y[:, None] * self.mu + rng.laplace(0.0, self.scales, (n, self.dim)), y

    def nll(self, x, y) -> np.ndarray:
        """Per-point NLL l(x; y mu, b) = sum_j |x_j - y mu_j| / b_j + sum_j log(2 b_j), shape (n,)."""
        x = as_points(x, self.dim)
        y = as_labels(y, len(x))
        return np.sum(np.abs(x - y[:, None] * self.mu) / self.scales, axis=1) + np.sum(np.log(2 * self.scales))

    def llr_gradient(self, x) -> np.ndarray:
        """grad_x of LLR(x) = sum_j (|x_j + mu_j| - |x_j - mu_j|) / b_j: 2 sign(mu_j) / b_j where |x_j| < |mu_j|, else 0."""
        x = as_points(x, self.dim)
        return np.where(np.abs(x) < np.abs(self.mu), 2 * np.sign(self.mu) / self.scales, 0.0)


def random_laplace(dim: int, seed: int = 0, *, spread: float = 10.0, radius: float = 1.0) -> ProductLaplace:
    """Scales log-uniform with ratio ``spread`` (variance 2 b_j^2 averaging 1) and mu uniform on the sphere of ``radius``."""
    dim = as_count(dim, "dim")
    spread = as_positive(spread, "spread")
    radius = as_positive(radius, "radius")
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.uniform(0, np.log(spread), dim)) if dim > 2 else np.array([1.0, spread])[:dim]
    scales /= np.sqrt(np.mean(2 * scales**2))
    mu = rng.standard_normal(dim)
    return ProductLaplace(mu * radius / np.linalg.norm(mu), scales)


def aligned_laplace(scales, seed: int = 0, *, level: float = 0.5) -> ProductLaplace:
    """A model whose expected LLR gradient is parallel to its mean: |mu_j| solves kappa_j / (|mu_j| b_j) = C.

    kappa_j = (1 - exp(-2 |mu_j| / b_j)) / 2 under the model itself, and kappa_j / (|mu_j| b_j) falls from 1/b_j^2
    (|mu_j| -> 0) to 0, so C = level / max(b)^2 (0 < level < 1) has one root per coordinate; signs are random.
    At eps = 0 the population alignment is 1, so blending the scales can only lower it: the counterexample to a
    Theorem 3 analogue for Laplace noise.
    """
    scales = as_float_array(scales, "scales", 1)
    if not scales.min() > 0:
        raise GaussfeatError(f"scales must all be positive, got smallest {scales.min():.6g}")
    level = as_positive(level, "level")
    if not level < 1:
        raise GaussfeatError(f"level must be < 1 for every coordinate to have a mean, got {level}")
    target = level / scales.max() ** 2

    def gap(m, b):
        return -np.expm1(-2 * m / b) / (2 * m * b) - target

    means = np.array([brentq(gap, 1e-12 * b, 1e3 * b, args=(b,), xtol=1e-14) for b in scales])
    signs = np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), size=scales.size)
    return ProductLaplace(signs * means, scales)


def laplace_ball_maximiser(w: np.ndarray, scales: np.ndarray, eps: float) -> np.ndarray:
    """argmax of sum_j |w_j + delta_j| / b_j over ||delta||_2 <= eps, per row of w: eps sign(w) (1/b) / ||1/b||_2.

    Ties (w_j = 0) take the + sign. The maximum is sum_j |w_j| / b_j + eps ||1/b||_2.
    """
    a = 1 / scales
    return eps * np.where(w < 0, -1.0, 1.0) * (a / np.linalg.norm(a))


def laplace_adversary(model: ProductLaplace, x, y, eps: float) -> np.ndarray:
    """The exact maximiser of l(x + delta; y mu, b) over ||delta||_2 <= eps, shape (n, d)."""
    if not isinstance(model, ProductLaplace):
        raise TypeError(f"model must be a ProductLaplace, got {type(model).__name__}")
    x = as_points(x, model.dim)
    y = as_labels(y, len(x))
    eps = as_positive(eps, "eps", allow_zero=True)
    return laplace_ball_maximiser(x - y[:, None] * model.mu, model.scales, eps)


def robust_laplace_objective(model: ProductLaplace, x, y, eps: float) -> float:
    """R = mean_i max_{||delta|| <= eps} l(x_i + delta) = mean_i l(x_i) + eps ||1/b||_2 (the closed-form inner max)."""
    eps = as_positive(eps, "eps", allow_zero=True)
    return float(np.mean(model.nll(x, y)) + eps * np.linalg.norm(1 / model.scales))


def laplace_mle(x, y) -> ProductLaplace:
    """Standard MLE: mu_j = median(y x_j), b_j = mean |y x_j - mu_j|."""
    mu, r = _median_and_spread(x, y)
    return ProductLaplace(mu, r)


def robust_laplace_scales(spread, eps: float) -> np.ndarray:
    """b_j = r_j / 2 + sqrt(r_j^2 / 4 + c) with sum_j (c / b_j)^2 = eps^2: the robust MLE scales from r = ``spread``.

    c is found by Brent's method on log c (the left side rises strictly in c; c = 0 at eps = 0, where b = r).
    """
    r = as_float_array(spread, "spread", 1)
    if not r.min() > 0:
        raise GaussfeatError(f"spread must be positive, got smallest {r.min():.6g} at coordinate {int(np.argmin(r))}")
    eps = as_positive(eps, "eps", allow_zero=True)
    if eps == 0:
        return r.copy()
    return _scales(r, _robust_c(r, eps))


def _scales(r: np.ndarray, c: float) -> np.ndarray:
    return r / 2 + np.sqrt(r**2 / 4 + c)


def _robust_c(r: np.ndarray, eps: float) -> float:
    def excess(log_c):
        c = np.exp(log_c)
        return 0.5 * np.log(np.sum((c / _scales(r, c)) ** 2)) - np.log(eps)

    lo = np.log(eps**2 / r.size)  # c / b_j <= sqrt(c): the sum is <= d c = eps^2 here
    hi = lo + 4
    while excess(hi) < 0:
        hi += 4
    return float(np.exp(brentq(excess, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps)))


_STEP = 2 / 3  # the damping that maps the Jacobian's [-1, 0] onto [-1/3, 1/3]


@dataclass(frozen=True)
class LaplaceFit:
    """The result of :func:`robust_laplace_mle`: the fitted model and the descent's trace."""

    model: ProductLaplace
    eps: float
    trace: tuple[Iteration, ...]
    converged: bool

    @property
    def iterations(self) -> int:
        return len(self.trace) - 1


def robust_laplace_mle(x, y, eps: float, *, tol: float = 1e-12, max_iter: int = 1000) -> LaplaceFit:
    """Adversarial training of (mu, b) with the exact l2 adversary, by Danskin fixed-point descent.

    mu = median(y x) (the robust objective's minimiser in mu for every eps; see the module docstring). Each step
    attacks every point with :func:`laplace_ball_maximiser` and moves b toward the MLE scale of the attacked
    points, b <- b + a (B - b), B_j = mean_i |w_ij + delta_ij|: a descent direction, since Danskin's gradient is
    dR/db_j = (b_j - B_j) / b_j^2. The map b -> B has Jacobian eigenvalues in [-1, 0] (-c / b_j^2 at the optimum,
    near -1 when eps >> r, where full steps oscillate), so the step is a = 2/3, contracting by 1/3 or better; it
    halves until R falls (or, within R's rounding, the stationarity does). Stops when the stationarity
    ||(B - b) / b||_2 / sqrt(d) <= ``tol`` (``converged``) or after ``max_iter`` steps. The fixed point is
    :func:`robust_laplace_scales` of the standard scales.
    """
    mu, r = _median_and_spread(x, y)
    x = as_float_array(x, "x", 2)
    y = as_labels(y, len(x))
    eps = as_positive(eps, "eps", allow_zero=True)
    tol = as_positive(tol, "tol")
    max_iter = as_count(max_iter, "max_iter")
    w = x - y[:, None] * mu
    d = len(mu)

    def attack(b):
        u = w + laplace_ball_maximiser(w, b, eps)
        target = np.mean(np.abs(u), axis=0)
        objective = float(np.mean(np.sum(np.abs(u) / b, axis=1)) + np.sum(np.log(2 * b)))
        return b, objective, float(np.linalg.norm((target - b) / b) / np.sqrt(d)), target - b

    current = attack(r)
    trace = [Iteration(current[1], current[2], 0.0, False)]
    step = _STEP
    while current[2] > tol and len(trace) <= max_iter and step > 1e-12:
        trial = attack(current[0] + step * current[3])
        noise = 1e-13 * abs(current[1])  # R's rounding: below it only the stationarity still tells
        if not (trial[1] < current[1] - noise or (trial[1] <= current[1] + noise and trial[2] < current[2])):
            step /= 2
            continue
        current = trial
        trace.append(Iteration(current[1], current[2], step, False))
        step = min(_STEP, 2 * step)
    return LaplaceFit(ProductLaplace(mu, current[0]), eps, tuple(trace), converged=current[2] <= tol)


def expected_llr_gradient(model: ProductLaplace, truth: ProductLaplace) -> np.ndarray:
    """E_x grad LLR(x) = 2 sign(mu_j) kappa_j / b_j, kappa_j = P(|x_j| < |mu_j|) for x drawn from ``truth``.

    kappa_j = F(m_j - mu*_j) - F(-m_j - mu*_j), m_j = |mu_j|, F the Laplace(0, b*_j) CDF (either class gives it).
    """
    for name, value in [("model", model), ("truth", truth)]:
        if not isinstance(value, ProductLaplace):
            raise TypeError(f"{name} must be a ProductLaplace, got {type(value).__name__}")
    if truth.dim != model.dim:
        raise GaussfeatError(f"truth has dimension {truth.dim}, but the model has {model.dim}")
    m = np.abs(model.mu)
    kappa = _laplace_cdf(m - truth.mu, truth.scales) - _laplace_cdf(-m - truth.mu, truth.scales)
    return 2 * np.sign(model.mu) * kappa / model.scales


def llr_alignment(model: ProductLaplace, truth: ProductLaplace) -> float:
    """cos(E_x grad LLR(x), mu) with mu the model's mean and x drawn from ``truth`` (0 if the gradient is 0)."""
    g = expected_llr_gradient(model, truth)
    if not np.any(model.mu):
        raise GaussfeatError("mu must be nonzero for its alignment to be defined")
    norm = np.linalg.norm(g)
    return float(g @ model.mu / (norm * np.linalg.norm(model.mu))) if norm > 0 else 0.0


def _laplace_cdf(t: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(t < 0, 0.5 * np.exp(-np.abs(t) / b), 1 - 0.5 * np.exp(-np.abs(t) / b))


def _median_and_spread(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = as_float_array(x, "x", 2)
    y = as_labels(y, len(x))
    signed = y[:, None] * x
    mu = np.median(signed, axis=0)
    r = np.mean(np.abs(signed - mu), axis=0)
    if not r.min() > 0:
        raise GaussfeatError(f"coordinate {int(np.argmin(r))} of y x is constant: its Laplace scale would be 0")
    return mu, r

"""Section 4's quantities measured on any model and any data: alignment and misalignment.

Theorems 1 and 3 are stated for the two-Gaussian model; these functions measure the same
quantities on arrays that come from elsewhere (a deep network's input gradients, the pixel
covariance of a data set), so the theory's predictions can be checked empirically.

* :func:`row_cosines`, :func:`gradient_alignment_per_example`: Theorem 3's alignment,
  cos(grad_x margin_i, mu_{y_i} - mu_{t_i}), one number per example.
* :func:`shrinkage_covariance`: a well-conditioned covariance estimate (Ledoit-Wolf 2004) for
  d = 3072 pixels from n = 10000 images, one gemm.
* :func:`mahalanobis_ratio`, :func:`random_direction_ratio`, :func:`ratio_range`: Theorem 1's
  misalignment of a perturbation delta, delta^T Sigma^-1 delta / ||delta||^2, large when delta
  lies where the data varies least.

Theorem 1's gap for a fitted covariance is :func:`gaussfeat.misalignment_gap` /
:func:`gaussfeat.penalized_gap`; it is not repeated here.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, solve_triangular

from ._checks import GaussfeatError, as_float_array, as_spd


def _ndim(value) -> int | None:
    """The number of dimensions, or None when ``value`` is not array-like (as_float_array explains)."""
    if isinstance(value, (str, bytes)):
        return None
    try:
        return np.ndim(value)
    except (TypeError, ValueError):
        return None


def _rows(value, name: str) -> np.ndarray:
    """``value`` as a finite (n, d) float64 array; more dimensions get a hint to flatten."""
    ndim = _ndim(value)
    if ndim is not None and ndim > 2:
        raise GaussfeatError(
            f"{name} must have 2 dimensions (n, d), got shape {np.shape(value)}; "
            f"flatten each example first, e.g. {name}.reshape(len({name}), -1)"
        )
    return as_float_array(value, name, 2)


def _first_zero_row(norms: np.ndarray, name: str, why: str) -> None:
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise GaussfeatError(
            f"row {zero[0]} of {name} is zero ({zero.size} zero row(s) in all), so {why} is undefined"
        )


def _cosines(a, b, names: tuple[str, str]) -> np.ndarray:
    name_a, name_b = names
    a = _rows(a, name_a)
    b = as_float_array(b, name_b, 1) if _ndim(b) == 1 else _rows(b, name_b)
    if b.shape[-1] != a.shape[1] or (b.ndim == 2 and b.shape != a.shape):
        expected = f"{a.shape} or ({a.shape[1]},)"
        raise GaussfeatError(f"{name_b} must have shape {expected} to match {name_a}, got {b.shape}")
    norm_a = np.linalg.norm(a, axis=1)
    _first_zero_row(norm_a, name_a, "its cosine")
    if b.ndim == 1:
        norm_b = np.linalg.norm(b)
        if norm_b == 0:
            raise GaussfeatError(f"{name_b} is the zero vector, so cosines with it are undefined")
        dots = a @ b
    else:
        norm_b = np.linalg.norm(b, axis=1)
        _first_zero_row(norm_b, name_b, "its cosine")
        dots = np.einsum("ij,ij->i", a, b)
    return np.clip(dots / (norm_a * norm_b), -1.0, 1.0)


def row_cosines(a, b) -> np.ndarray:
    """cos(a_i, b_i) = a_i . b_i / (||a_i|| ||b_i||) for each row i; shape (n,).

    ``a`` has shape (n, d); ``b`` has shape (n, d) or (d,) (the same vector for every row).
    A zero row makes its cosine undefined and raises :class:`GaussfeatError` naming the row.
    """
    return _cosines(a, b, ("a", "b"))


def gradient_alignment_per_example(gradients, mean_differences) -> np.ndarray:
    """cos(grad_x margin_i, mu_{y_i} - mu_{t_i}) per example: Theorem 3's alignment on any model.

    ``gradients[i]`` is the input gradient of example i's margin (logit of its class y_i minus
    that of a target class t_i), flattened to d numbers; ``mean_differences[i]`` is the
    difference of the class means mu_{y_i} - mu_{t_i} (shape (n, d), or (d,) for two classes).
    For the linear model x^T Sigma^-1 mu of the two-Gaussian model the gradient is Sigma^-1 mu
    at every x, so each entry is ``gradient_alignment(mu, Sigma)`` = cos(mu, Sigma^-1 mu)
    (Theorem 3: at least 2 sqrt(k) / (1 + k), k = cond(Sigma), and robust training raises it).
    """
    return _cosines(gradients, mean_differences, ("gradients", "mean_differences"))


def _shrinkage_value(shrinkage) -> float:
    if isinstance(shrinkage, bool) or not isinstance(shrinkage, numbers.Real):
        raise TypeError(f"shrinkage must be a real number in [0, 1] or None, got {shrinkage!r}")
    value = float(shrinkage)
    if not 0 <= value <= 1:  # also refuses NaN
        raise GaussfeatError(f"shrinkage must be in [0, 1], got {value}")
    return value


def _ledoit_wolf(centred: np.ndarray, sample: np.ndarray) -> float:
    """Ledoit-Wolf's a from the centred rows and S (formula in :func:`shrinkage_covariance`), in O(n d + d^2)."""
    n, d = centred.shape
    frobenius2 = float(np.einsum("ij,ij->", sample, sample))
    deviation = sample - np.trace(sample) / d * np.eye(d)  # ||S - m I||_F^2 directly: no cancellation
    delta2 = float(np.einsum("ij,ij->", deviation, deviation))
    fourth = float(np.sum(np.einsum("ij,ij->i", centred, centred) ** 2))
    beta2 = max((fourth / n - frobenius2) / n, 0.0)
    if not delta2 > 0:
        return 1.0
    return float(min(beta2, delta2) / delta2)


def shrinkage_covariance(x, shrinkage: float | None = None) -> tuple[np.ndarray, float]:
    """(S_shrunk, a): S_shrunk = (1 - a) S + a (tr S / d) I, S the covariance of the rows of x.

    S = X^T X / n with X the rows x_i of x minus their mean (divided by n, as in Ledoit-Wolf).
    With ``shrinkage=None``, a is Ledoit and Wolf's (2004) estimate, m = tr S / d:

      delta^2 = ||S - m I||_F^2 = ||S||_F^2 - (tr S)^2 / d,
      beta^2  = (1/n^2) sum_i ||x_i x_i^T - S||_F^2 = (sum_i ||x_i||^4 / n - ||S||_F^2) / n
                (as sum_i x_i^T S x_i = n ||S||_F^2, so no d x d matrix per row is formed),
      a = min(beta^2, delta^2) / delta^2, in [0, 1] (a = 1 when delta = 0: S is the target).

    (Their norm is ||.||_F^2 / d; the factor cancels.) A given ``shrinkage`` must lie in [0, 1].
    A singular result (a = 0 with n <= d, or constant data) raises GaussfeatError.
    Cost: one (d, n) x (n, d) product plus O(n d + d^2).
    """
    x = _rows(x, "x")
    a = None if shrinkage is None else _shrinkage_value(shrinkage)
    n, d = x.shape
    centred = x - x.mean(axis=0)
    sample = centred.T @ centred / n
    sample = (sample + sample.T) / 2
    trace = float(np.trace(sample))
    if not trace > 0:
        raise GaussfeatError(
            f"x (shape {x.shape}) is constant across rows, so its covariance is zero and singular "
            f"for any shrinkage; the shrinkage target (tr S / d) I is zero too"
        )
    source = "shrinkage" if a is not None else "the Ledoit-Wolf shrinkage"
    if a is None:
        a = _ledoit_wolf(centred, sample)
    if a == 0 and n <= d:
        raise GaussfeatError(
            f"the sample covariance of x (shape {x.shape}) has rank at most n - 1 = {n - 1} < d = {d}, "
            f"so with {source} 0 it is singular; use shrinkage > 0"
        )
    target = trace / d
    result = (1 - a) * sample
    result[np.diag_indices(d)] += a * target
    # Eigenvalues are (1 - a) s_i + a m with 0 <= s_i <= tr S: a cheap bound decides most cases.
    lower, upper = a * target, (1 - a) * trace + a * target
    if not lower > 1e-10 * upper:
        eigenvalues = np.linalg.eigvalsh(result)
        if not eigenvalues[0] > d * np.finfo(float).eps * eigenvalues[-1]:
            raise GaussfeatError(
                f"the shrunk covariance of x (shape {x.shape}) with {source} {a:.6g} is singular "
                f"(smallest eigenvalue {eigenvalues[0]:.3g}, largest {eigenvalues[-1]:.3g}); "
                f"use a larger shrinkage > 0"
            )
    return result, float(a)


def _spd_cholesky(covariance) -> tuple[np.ndarray, tuple[np.ndarray, bool]]:
    """(Sigma, cho_factor(Sigma)), validated as :func:`as_spd` does but with one Cholesky, not an eigensolve.

    A matrix that is square, symmetric to as_spd's tolerance and has a Cholesky factor is SPD; anything
    else goes through as_spd, whose message names the shape, the asymmetry or the smallest eigenvalue.
    """
    matrix = as_float_array(covariance, "covariance", 2)
    if matrix.shape[0] == matrix.shape[1]:
        scale = max(np.max(np.abs(matrix)), np.finfo(float).tiny)
        if np.max(np.abs(matrix - matrix.T)) <= 1e-8 * scale:
            matrix = (matrix + matrix.T) / 2
            try:
                return matrix, cho_factor(matrix, lower=True)
            except LinAlgError:
                pass
    matrix = as_spd(matrix, "covariance")  # raises, naming the rule broken, except when only rounding is
    raise GaussfeatError(
        f"covariance is numerically singular: its Cholesky factorisation failed "
        f"(smallest eigenvalue {np.linalg.eigvalsh(matrix)[0]:.3g}); shrink it, e.g. shrinkage_covariance(x, shrinkage>0)"
    )


def mahalanobis_ratio(deltas, covariance) -> np.ndarray:
    """delta_i^T Sigma^-1 delta_i / ||delta_i||^2 for each row delta_i of ``deltas``; shape (n,).

    Theorem 1's misalignment of a perturbation: the squared Mahalanobis length per squared l2
    length, between 1/s_max and 1/s_min (:func:`ratio_range`), large when delta lies where the
    data varies least. ``deltas`` is (n, d) (a (d,) vector is one row); Sigma is factored once
    (Cholesky). A zero row raises GaussfeatError naming it.
    """
    covariance, factor = _spd_cholesky(covariance)
    d = covariance.shape[0]
    deltas = _rows(np.atleast_2d(deltas) if _ndim(deltas) == 1 else deltas, "deltas")
    if deltas.shape[1] != d:
        raise GaussfeatError(
            f"deltas must have {d} columns to match covariance of shape {covariance.shape}, got shape {deltas.shape}"
        )
    norms2 = np.einsum("ij,ij->i", deltas, deltas)
    _first_zero_row(norms2, "deltas", "its ratio")
    solved = cho_solve(factor, deltas.T)
    return np.einsum("ji,ji->i", deltas.T, solved) / norms2


def random_direction_ratio(covariance) -> float:
    """E_u[u^T Sigma^-1 u] = tr(Sigma^-1) / d for u uniform on the unit sphere (E[u u^T] = I / d).

    The ratio :func:`mahalanobis_ratio` gives a direction with no preference; a perturbation
    with a larger ratio leans toward the low-variance directions of the data.
    """
    covariance, (lower, _) = _spd_cholesky(covariance)
    d = covariance.shape[0]
    inverse_factor = solve_triangular(lower, np.eye(d), lower=True)  # L^-1; tr(Sigma^-1) = ||L^-1||_F^2
    return float(np.einsum("ij,ij->", inverse_factor, inverse_factor) / d)


def ratio_range(covariance) -> tuple[float, float]:
    """(1 / s_max, 1 / s_min): the smallest and largest values of the ratio, at Sigma's eigenvectors."""
    eigenvalues = np.linalg.eigvalsh(_spd_cholesky(covariance)[0])
    return float(1 / eigenvalues[-1]), float(1 / eigenvalues[0])

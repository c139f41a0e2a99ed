"""gaussfeat.metrics: Section 4's alignment and misalignment, measured on arbitrary arrays.

Claims: row cosines reproduce Theorem 3's alignment for the linear model's gradient Sigma^-1 mu;
the Ledoit-Wolf estimate matches a direct O(n d^2) implementation of its formula and behaves as
its theory says (small for n >> d, near 1 for n << d from isotropic data); Theorem 1's ratio
delta^T Sigma^-1 delta / ||delta||^2 is 1/s on eigenvectors, lies in [1/s_max, 1/s_min], and
averages tr(Sigma^-1)/d over random directions. Bad input raises GaussfeatError naming the value.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gaussfeat import GaussfeatError, gradient_alignment
from gaussfeat.metrics import (
    gradient_alignment_per_example,
    mahalanobis_ratio,
    random_direction_ratio,
    ratio_range,
    row_cosines,
    shrinkage_covariance,
)
from tests.strategies import means, spd_matrices

EXACT = 1e-9
seeds = st.integers(0, 2**32 - 1)


def reference_ledoit_wolf(x: np.ndarray) -> float:
    """Ledoit-Wolf (2004) a, term by term: one d x d matrix per row, O(n d^2)."""
    n, d = x.shape
    centred = x - x.mean(axis=0)
    sample = centred.T @ centred / n
    target = np.trace(sample) / d * np.eye(d)
    delta2 = np.sum((sample - target) ** 2)
    beta2 = sum(np.sum((np.outer(row, row) - sample) ** 2) for row in centred) / n**2
    return 1.0 if delta2 == 0 else min(beta2, delta2) / delta2  # delta = 0: S is the target, a is moot


# --- cosines (Theorem 3 on any model) --------------------------------------------------------


@given(spd_matrices(max_dim=16), st.data())
def test_row_cosines_of_the_linear_models_gradient_equal_gradient_alignment(sigma, data):
    mu = data.draw(means(len(sigma)))
    gradient = np.linalg.solve(sigma, mu)
    expected = gradient_alignment(mu, sigma)
    assert row_cosines(gradient[None, :], mu) == pytest.approx([expected], abs=EXACT)
    per_example = gradient_alignment_per_example(np.tile(gradient, (3, 1)), np.tile(mu, (3, 1)))
    assert per_example == pytest.approx([expected] * 3, abs=EXACT)


@given(seeds, st.integers(1, 20), st.integers(1, 20))
def test_row_cosines_lie_in_minus_one_one_and_ignore_positive_row_scaling(seed, n, d):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    cosines = row_cosines(a, b)
    assert cosines.shape == (n,)
    assert np.all(np.abs(cosines) <= 1)
    scales = rng.uniform(1e-3, 1e3, (2, n, 1))
    assert row_cosines(scales[0] * a, scales[1] * b) == pytest.approx(cosines, abs=EXACT)
    assert row_cosines(a, a) == pytest.approx(np.ones(n), abs=EXACT)
    assert row_cosines(a, -a) == pytest.approx(-np.ones(n), abs=EXACT)


def test_a_single_vector_b_is_broadcast_to_every_row():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 4)), rng.standard_normal(4)
    assert row_cosines(a, b) == pytest.approx(row_cosines(a, np.tile(b, (5, 1))), abs=EXACT)


# --- shrinkage covariance (Ledoit-Wolf) ------------------------------------------------------


@given(seeds, st.integers(3, 30), st.integers(1, 8))
def test_ledoit_wolf_shrinkage_matches_the_direct_formula(seed, n, d):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * rng.uniform(0.1, 10, d) + rng.standard_normal(d)
    result, a = shrinkage_covariance(x)
    assert a == pytest.approx(reference_ledoit_wolf(x), rel=1e-9, abs=1e-12)
    sample = np.cov(x, rowvar=False, bias=True).reshape(d, d)
    expected = (1 - a) * sample + a * np.trace(sample) / d * np.eye(d)
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12 * np.trace(sample))


def test_ledoit_wolf_matches_scikit_learn_when_installed():
    covariance = pytest.importorskip("sklearn.covariance")
    x = np.random.default_rng(1).standard_normal((40, 12)) * np.linspace(0.5, 3, 12)
    result, a = shrinkage_covariance(x)
    expected, expected_a = covariance.ledoit_wolf(x)
    assert a == pytest.approx(expected_a, rel=1e-9)
    np.testing.assert_allclose(result, expected, rtol=1e-9)


@given(seeds, st.integers(11, 40), st.integers(1, 10))
def test_zero_shrinkage_with_n_above_d_is_the_sample_covariance(seed, n, d):
    x = np.random.default_rng(seed).standard_normal((n, d))
    result, a = shrinkage_covariance(x, shrinkage=0)
    assert a == 0
    np.testing.assert_allclose(result, np.cov(x, rowvar=False, bias=True).reshape(d, d), rtol=1e-10, atol=1e-14)


def test_full_shrinkage_is_the_isotropic_target():
    x = np.random.default_rng(2).standard_normal((6, 10))
    result, a = shrinkage_covariance(x, shrinkage=1.0)
    trace = np.trace(np.cov(x, rowvar=False, bias=True))
    np.testing.assert_allclose(result, trace / 10 * np.eye(10), atol=1e-14)


def test_ledoit_wolf_shrinks_little_when_n_is_far_above_d_for_anisotropic_data():
    rng = np.random.default_rng(3)
    d = 10
    x = rng.standard_normal((20_000, d)) * np.linspace(0.5, 2.0, d)  # well-conditioned, not isotropic
    assert shrinkage_covariance(x)[1] < 0.01


def test_ledoit_wolf_shrinks_almost_fully_when_n_is_far_below_d_for_isotropic_data():
    x = np.random.default_rng(4).standard_normal((50, 1000))
    assert shrinkage_covariance(x)[1] > 0.9  # about 1 - 2/n here: beta^2 ~ d^2 (n-1)/n^2, delta^2 ~ d^2/n


def test_ledoit_wolf_refuses_two_rows_where_its_estimate_is_zero():
    # With n = 2 the centred rows are +-u, so every x_i x_i^T equals S: beta = 0, a = 0, S has rank 1.
    with pytest.raises(GaussfeatError, match="Ledoit-Wolf shrinkage"):
        shrinkage_covariance(np.random.default_rng(6).standard_normal((2, 3)))


@given(seeds, st.integers(3, 20), st.integers(1, 40), st.one_of(st.none(), st.floats(1e-3, 1.0)))
def test_shrunk_covariance_is_symmetric_positive_definite(seed, n, d, shrinkage):
    x = np.random.default_rng(seed).standard_normal((n, d)) * 3.0
    result, a = shrinkage_covariance(x, shrinkage)
    assert 0 <= a <= 1
    np.testing.assert_array_equal(result, result.T)
    assert np.linalg.eigvalsh(result)[0] > 0


# --- Mahalanobis ratio (Theorem 1's misalignment) --------------------------------------------


@given(spd_matrices(max_dim=16))
def test_ratio_is_one_over_the_eigenvalue_on_each_eigenvector(sigma):
    eigenvalues, basis = np.linalg.eigh(sigma)
    scaled = basis.T * np.linspace(0.5, 7.0, len(sigma))[:, None]  # the ratio ignores length
    np.testing.assert_allclose(mahalanobis_ratio(scaled, sigma), 1 / eigenvalues, rtol=1e-6)
    low, high = ratio_range(sigma)
    assert (low, high) == pytest.approx((1 / eigenvalues[-1], 1 / eigenvalues[0]), rel=1e-9)


@given(spd_matrices(max_dim=16), seeds)
def test_ratio_lies_within_ratio_range(sigma, seed):
    deltas = np.random.default_rng(seed).standard_normal((20, len(sigma)))
    ratios = mahalanobis_ratio(deltas, sigma)
    low, high = ratio_range(sigma)
    assert np.all(ratios >= low * (1 - 1e-7)) and np.all(ratios <= high * (1 + 1e-7))


def test_a_single_delta_is_one_row():
    sigma = np.diag([1.0, 4.0])
    assert mahalanobis_ratio([0.0, 3.0], sigma) == pytest.approx([0.25])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_direction_ratio_matches_a_monte_carlo_mean(seed):
    rng = np.random.default_rng(seed)
    d, samples = 12, 20_000
    eigenvalues = np.exp(rng.uniform(-2, 2, d))
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    sigma = (basis * eigenvalues) @ basis.T
    sigma = (sigma + sigma.T) / 2
    ratios = mahalanobis_ratio(rng.standard_normal((samples, d)), sigma)  # Gaussian directions are uniform
    half_width = 4 * ratios.std(ddof=1) / np.sqrt(samples)  # a 4-sigma interval: fails ~1 in 16000
    assert abs(ratios.mean() - random_direction_ratio(sigma)) < half_width
    assert random_direction_ratio(sigma) == pytest.approx(np.mean(1 / eigenvalues), rel=1e-9)


def test_a_wrong_random_direction_formula_is_caught_by_the_monte_carlo_check():
    rng = np.random.default_rng(5)
    sigma = np.diag(np.exp(rng.uniform(-2, 2, 12)))
    ratios = mahalanobis_ratio(rng.standard_normal((20_000, 12)), sigma)
    wrong = 1 / np.mean(np.diag(sigma))  # d / tr(Sigma): the inverse of the mean, not the mean of inverses
    assert abs(ratios.mean() - wrong) > 4 * ratios.std(ddof=1) / np.sqrt(len(ratios))


# --- bad input -------------------------------------------------------------------------------

NAN = float("nan")
A = np.array([[1.0, 0.0], [0.5, 2.0], [-1.0, 1.0]])
SIGMA = np.diag([0.5, 2.0])

BAD_INPUT = {
    "cosines: mismatched rows": (lambda: row_cosines(A, np.ones((2, 2))), "(2, 2)"),
    "cosines: mismatched vector": (lambda: row_cosines(A, np.ones(3)), "(3,)"),
    "cosines: nan": (lambda: row_cosines(np.array([[NAN, 1.0]]), np.ones(2)), "nan"),
    "cosines: zero row of a": (lambda: row_cosines(np.array([[1.0, 1.0], [0.0, 0.0]]), np.ones(2)), "row 1 of a"),
    "cosines: zero row of b": (lambda: row_cosines(A, np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])), "row 2 of b"),
    "cosines: zero vector b": (lambda: row_cosines(A, np.zeros(2)), "zero vector"),
    "cosines: images not flattened": (lambda: gradient_alignment_per_example(np.ones((2, 3, 4, 4)), np.ones(48)),
                                      "(2, 3, 4, 4)"),
    "alignment: zero gradient": (lambda: gradient_alignment_per_example(np.zeros((1, 2)), np.ones(2)),
                                 "row 0 of gradients"),
    "shrinkage: above 1": (lambda: shrinkage_covariance(A, shrinkage=1.5), "1.5"),
    "shrinkage: below 0": (lambda: shrinkage_covariance(A, shrinkage=-0.25), "-0.25"),
    "shrinkage: nan": (lambda: shrinkage_covariance(A, shrinkage=NAN), "nan"),
    "shrinkage: singular without shrinkage": (lambda: shrinkage_covariance(np.ones((3, 5)).cumsum(0) ** 2, 0.0),
                                              "shrinkage > 0"),
    "shrinkage: collinear columns, n > d": (lambda: shrinkage_covariance(np.arange(10.0)[:, None] * [1.0, 2.0], 0.0),
                                            "singular"),
    "shrinkage: constant data": (lambda: shrinkage_covariance(np.ones((4, 3))), "constant"),
    "shrinkage: nan data": (lambda: shrinkage_covariance(np.array([[1.0, NAN], [0.0, 1.0]])), "nan"),
    "shrinkage: 1-D data": (lambda: shrinkage_covariance(np.ones(5)), "(5,)"),
    "ratio: mismatched columns": (lambda: mahalanobis_ratio(np.ones((2, 3)), SIGMA), "(2, 3)"),
    "ratio: zero row": (lambda: mahalanobis_ratio(np.array([[1.0, 0.0], [0.0, 0.0]]), SIGMA), "row 1 of deltas"),
    "ratio: nan delta": (lambda: mahalanobis_ratio(np.array([[NAN, 1.0]]), SIGMA), "nan"),
    "ratio: singular covariance": (lambda: mahalanobis_ratio(A, np.ones((2, 2))), "positive definite"),
    "ratio: indefinite covariance": (lambda: mahalanobis_ratio(A, np.diag([1.0, -2.5])), "-2.5"),
    "ratio: non-symmetric covariance": (lambda: mahalanobis_ratio(A, [[1.0, 0.375], [0.0, 1.0]]), "0.375"),
    "ratio: non-square covariance": (lambda: mahalanobis_ratio(A, np.ones((2, 3))), "(2, 3)"),
    "random ratio: singular covariance": (lambda: random_direction_ratio(np.zeros((2, 2))), "positive definite"),
    "range: nan covariance": (lambda: ratio_range([[NAN, 0.0], [0.0, 1.0]]), "nan"),
}


@pytest.mark.parametrize("call, fragment", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_raises_gaussfeat_error_naming_the_value(call, fragment):
    with pytest.raises(GaussfeatError, match=None) as caught:
        call()
    assert fragment in str(caught.value)


def test_non_numeric_shrinkage_is_a_type_error():
    with pytest.raises(TypeError, match="'lots'"):
        shrinkage_covariance(A, shrinkage="lots")

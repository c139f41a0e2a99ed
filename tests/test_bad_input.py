"""Bad input is refused with GaussfeatError (a ValueError) or TypeError, naming the offending value.

One table per kind of bad input, crossed with every public function that takes that kind of
input. Each row says which exception and which substring of the message (the bad number, shape,
or repr) must appear.
"""

from __future__ import annotations

import numpy as np
import pytest

import gaussfeat as gf
from gaussfeat import GaussfeatError, TwoGaussian

MU = np.array([1.0, 0.5])
SIGMA = np.diag([0.5, 2.0])  # 1/sigma_min = 2
MODEL = TwoGaussian(MU, SIGMA)
X = np.array([[0.3, -0.1], [1.2, 0.4], [-0.7, 0.9], [0.0, 0.2]])
Y = np.array([1.0, -1.0, -1.0, 1.0])


def test_gaussfeat_error_is_a_value_error():
    assert issubclass(GaussfeatError, ValueError)


# --- covariance matrices ---------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
BAD_SIGMAS = {
    "non-symmetric": ([[1.0, 0.375], [0.0, 1.0]], GaussfeatError, "0.375"),
    "indefinite": ([[1.0, 0.0], [0.0, -2.5]], GaussfeatError, "-2.5"),
    "singular": ([[1.0, 1.0], [1.0, 1.0]], GaussfeatError, "positive definite"),
    "nan": ([[NAN, 0.0], [0.0, 1.0]], GaussfeatError, "nan"),
    "inf": ([[1.0, 0.0], [0.0, INF]], GaussfeatError, "inf"),
    "non-square": ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], GaussfeatError, "(2, 3)"),
    "one-dimensional": ([1.0, 2.0], GaussfeatError, "(2,)"),
    "empty": (np.zeros((0, 0)), GaussfeatError, "(0, 0)"),
    "string": ("identity", TypeError, "'identity'"),
    "ragged": ([[1.0, 0.0], [0.0]], TypeError, "[[1.0, 0.0], [0.0]]"),
}
SIGMA_TAKERS = {
    "TwoGaussian": lambda s: TwoGaussian(MU, s),
    "robust_covariance": lambda s: gf.robust_covariance(s, 4.0),
    "robust_lambda": lambda s: gf.robust_lambda(s, 0.5),
    "relaxed_budget": lambda s: gf.relaxed_budget(s, 4.0),
    "misalignment_gap": lambda s: gf.misalignment_gap(s, 10.0),
    "penalized_gap": lambda s: gf.penalized_gap(s, 10.0),
    "gradient_alignment": lambda s: gf.gradient_alignment(MU, s),
    "worst_case_alignment": lambda s: gf.worst_case_alignment(s),
    "worst_case_mean": lambda s: gf.worst_case_mean(s),
}


@pytest.mark.parametrize("bad", BAD_SIGMAS)
@pytest.mark.parametrize("function", SIGMA_TAKERS)
def test_bad_covariance_is_refused_naming_it(function, bad):
    sigma, error, named = BAD_SIGMAS[bad]
    with pytest.raises(error) as caught:
        SIGMA_TAKERS[function](sigma)
    assert named in str(caught.value)


def test_mildly_asymmetric_rounding_is_tolerated_and_symmetrised():
    """Asymmetry of 1e-12 relative (rounding from a product) is accepted; the stored Sigma is symmetric."""
    sigma = SIGMA + np.array([[0.0, 1e-12], [0.0, 0.0]])
    model = TwoGaussian(MU, sigma)
    np.testing.assert_array_equal(model.sigma, model.sigma.T)


# --- means -----------------------------------------------------------------------------------

BAD_MEANS = {
    "nan": ([NAN, 1.0], GaussfeatError, "nan"),
    "inf": ([1.0, -INF], GaussfeatError, "-inf"),
    "too-long": ([1.0, 2.0, 3.0], GaussfeatError, "(3, 3)"),
    "two-dimensional": ([[1.0, 2.0]], GaussfeatError, "(1, 2)"),
    "empty": ([], GaussfeatError, "(0,)"),
    "string": ("mu", TypeError, "'mu'"),
}
MEAN_TAKERS = {
    "TwoGaussian": lambda m: TwoGaussian(m, SIGMA),
    "gradient_alignment": lambda m: gf.gradient_alignment(m, SIGMA),
}


@pytest.mark.parametrize("bad", BAD_MEANS)
@pytest.mark.parametrize("function", MEAN_TAKERS)
def test_bad_mean_is_refused_naming_it(function, bad):
    mu, error, named = BAD_MEANS[bad]
    with pytest.raises(error) as caught:
        MEAN_TAKERS[function](mu)
    assert named in str(caught.value)


def test_gradient_alignment_refuses_a_zero_mean():
    with pytest.raises(GaussfeatError, match="mu must be nonzero"):
        gf.gradient_alignment([0.0, 0.0], SIGMA)


# --- points ----------------------------------------------------------------------------------

BAD_POINTS = {
    "nan": (np.where(np.eye(4, 2) == 1, NAN, X), GaussfeatError, "nan"),
    "inf": (np.where(np.eye(4, 2) == 1, INF, X), GaussfeatError, "inf"),
    "three-columns": (np.ones((4, 3)), GaussfeatError, "(4, 3)"),
    "three-dimensional": (np.ones((4, 2, 1)), GaussfeatError, "(4, 2, 1)"),
    "string": ("points", TypeError, "points"),
}
POINT_TAKERS = {
    "nll": lambda x: MODEL.nll(x, Y),
    "predict": lambda x: MODEL.predict(x),
    "l2_adversary": lambda x: gf.l2_adversary(MODEL, x, Y, 0.5),
    "lagrangian_adversary": lambda x: gf.lagrangian_adversary(MODEL, x, Y, 4.0),
    "pgd_adversary": lambda x: gf.pgd_adversary(MODEL, x, Y, 0.5),
}


@pytest.mark.parametrize("bad", BAD_POINTS)
@pytest.mark.parametrize("function", POINT_TAKERS)
def test_bad_points_are_refused_naming_them(function, bad):
    x, error, named = BAD_POINTS[bad]
    with pytest.raises(error) as caught:
        POINT_TAKERS[function](x)
    assert named in str(caught.value)


BAD_SAMPLES = {  # for mle and robust_mle, which take a sample without a model: (x, y, error, named)
    "nan": (np.where(np.eye(4, 2) == 1, NAN, X), Y, GaussfeatError, "nan"),
    "one-dimensional": (np.ones(4), Y, GaussfeatError, "(4,)"),
    "n-equals-d": (X[:2], Y[:2], GaussfeatError, "n=2 for d=2"),
    "n-below-d": (np.ones((4, 6)), Y, GaussfeatError, "n=4 for d=6"),
    "string": ("points", Y, TypeError, "points"),
    "constant-coordinate": (np.column_stack([X[:, 0], np.zeros(4)]), Y, GaussfeatError, "smallest eigenvalue is 0"),
}
SAMPLE_TAKERS = {
    "mle": lambda x, y: gf.mle(x, y),
    "robust_mle": lambda x, y: gf.robust_mle(x, y, 0.5),
}


@pytest.mark.parametrize("bad", BAD_SAMPLES)
@pytest.mark.parametrize("function", SAMPLE_TAKERS)
def test_bad_samples_are_refused_naming_them(function, bad):
    x, y, error, named = BAD_SAMPLES[bad]
    with pytest.raises(error) as caught:
        SAMPLE_TAKERS[function](x, y)
    assert named in str(caught.value)


# --- labels ----------------------------------------------------------------------------------

BAD_LABELS = {
    "zero": ([1.0, 0.0, -1.0, 1.0], GaussfeatError, "[0.]"),
    "two": ([1.0, 2.0, -1.0, 1.0], GaussfeatError, "[2.]"),
    "half": ([1.0, 0.5, -1.0, 1.0], GaussfeatError, "[0.5]"),
    "zero-one-coding": ([1.0, 0.0, 0.0, 1.0], GaussfeatError, "[0.]"),
    "nan": ([1.0, NAN, -1.0, 1.0], GaussfeatError, "nan"),
    "too-short": ([1.0, -1.0, 1.0], GaussfeatError, "(3,)"),
    "too-long": ([1.0, -1.0, 1.0, 1.0, -1.0], GaussfeatError, "(5,)"),
    "two-dimensional": ([[1.0], [-1.0], [1.0], [1.0]], GaussfeatError, "(4, 1)"),
    "strings": (["+", "-", "+", "+"], TypeError, "'+'"),
}
LABEL_TAKERS = {
    "nll": lambda y: MODEL.nll(X, y),
    "mle": lambda y: gf.mle(X[:, :1], y),
    "l2_adversary": lambda y: gf.l2_adversary(MODEL, X, y, 0.5),
    "lagrangian_adversary": lambda y: gf.lagrangian_adversary(MODEL, X, y, 4.0),
    "pgd_adversary": lambda y: gf.pgd_adversary(MODEL, X, y, 0.5),
    "robust_mle": lambda y: gf.robust_mle(X[:, :1], y, 0.5),
}


@pytest.mark.parametrize("bad", BAD_LABELS)
@pytest.mark.parametrize("function", LABEL_TAKERS)
def test_bad_labels_are_refused_naming_them(function, bad):
    y, error, named = BAD_LABELS[bad]
    with pytest.raises(error) as caught:
        LABEL_TAKERS[function](y)
    assert named in str(caught.value)


# --- radii, multipliers, penalties -----------------------------------------------------------

BAD_RADII = {
    "negative": (-0.375, GaussfeatError, "-0.375"),
    "nan": (NAN, GaussfeatError, "nan"),
    "inf": (INF, GaussfeatError, "inf"),
    "string": ("0.5", TypeError, "'0.5'"),
    "array": (np.array([0.5, 0.5]), TypeError, "0.5, 0.5"),
    "bool": (True, TypeError, "True"),
}
RADIUS_TAKERS = {
    "robust_accuracy": lambda e: MODEL.robust_accuracy(e),
    "l2_adversary": lambda e: gf.l2_adversary(MODEL, X, Y, e),
    "pgd_adversary": lambda e: gf.pgd_adversary(MODEL, X, Y, e),
    "robust_lambda": lambda e: gf.robust_lambda(SIGMA, e),
    "robust_mle-l2": lambda e: gf.robust_mle(X[:, :1], Y, e),
    "robust_mle-pgd": lambda e: gf.robust_mle(X[:, :1], Y, e, adversary="pgd"),
    "robust_mle-lagrangian": lambda e: gf.robust_mle(X[:, :1], Y, e, adversary="lagrangian"),
}


@pytest.mark.parametrize("bad", BAD_RADII)
@pytest.mark.parametrize("function", RADIUS_TAKERS)
def test_bad_radius_is_refused_naming_it(function, bad):
    eps, error, named = BAD_RADII[bad]
    with pytest.raises(error) as caught:
        RADIUS_TAKERS[function](eps)
    assert named in str(caught.value)


@pytest.mark.parametrize("function", ["robust_lambda", "robust_mle-lagrangian"])
def test_a_zero_radius_has_no_multiplier(function):
    with pytest.raises(GaussfeatError, match=r"eps must be > 0, got 0\.0"):
        RADIUS_TAKERS[function](0.0)


def test_a_zero_radius_is_allowed_where_it_means_no_attack():
    assert MODEL.robust_accuracy(0.0) == MODEL.accuracy()
    np.testing.assert_array_equal(gf.l2_adversary(MODEL, X, Y, 0.0), 0.0)
    np.testing.assert_array_equal(gf.pgd_adversary(MODEL, X, Y, 0.0), 0.0)
    for adversary in ("l2", "pgd"):
        fit = gf.robust_mle(X[:, :1], Y, 0.0, adversary=adversary)
        np.testing.assert_allclose(fit.model.sigma, gf.mle(X[:, :1], Y).sigma, rtol=1e-14)


# C must exceed 1/sigma_min(SIGMA) = 2 (strictly: at C = 2 the adversary's objective is unbounded)
BAD_PENALTIES = {
    "at-the-threshold": (2.0, GaussfeatError, "C = 2"),
    "below-the-threshold": (1.25, GaussfeatError, "C = 1.25"),
    "zero": (0.0, GaussfeatError, "got 0.0"),
    "negative": (-3.5, GaussfeatError, "-3.5"),
    "nan": (NAN, GaussfeatError, "nan"),
    "string": ("4", TypeError, "'4'"),
}
PENALTY_TAKERS = {
    "lagrangian_adversary": lambda c: gf.lagrangian_adversary(MODEL, X, Y, c),
    "misalignment_gap": lambda c: gf.misalignment_gap(SIGMA, c),
    "penalized_gap": lambda c: gf.penalized_gap(SIGMA, c),
}


@pytest.mark.parametrize("bad", BAD_PENALTIES)
@pytest.mark.parametrize("function", PENALTY_TAKERS)
def test_bad_penalty_is_refused_naming_it(function, bad):
    C, error, named = BAD_PENALTIES[bad]
    with pytest.raises(error) as caught:
        PENALTY_TAKERS[function](C)
    assert named in str(caught.value)
    if bad == "below-the-threshold":
        assert "1/sigma_min" in str(caught.value) and "= 2" in str(caught.value)  # and the rule it broke


@pytest.mark.parametrize("function", PENALTY_TAKERS)
def test_a_penalty_just_above_the_threshold_is_accepted(function):
    assert np.all(np.isfinite(PENALTY_TAKERS[function](2.0 * (1 + 1e-9))))


BAD_MULTIPLIERS = {
    "zero": (0.0, GaussfeatError, "got 0.0"),
    "negative": (-1.5, GaussfeatError, "-1.5"),
    "inf": (INF, GaussfeatError, "inf"),
    "string": ("lots", TypeError, "'lots'"),
}
MULTIPLIER_TAKERS = {
    "robust_covariance": lambda lam: gf.robust_covariance(SIGMA, lam),
    "relaxed_budget": lambda lam: gf.relaxed_budget(SIGMA, lam),
    "robust_mle": lambda lam: gf.robust_mle(X[:, :1], Y, adversary="lagrangian", lam=lam),
}


@pytest.mark.parametrize("bad", BAD_MULTIPLIERS)
@pytest.mark.parametrize("function", MULTIPLIER_TAKERS)
def test_bad_multiplier_is_refused_naming_it(function, bad):
    lam, error, named = BAD_MULTIPLIERS[bad]
    with pytest.raises(error) as caught:
        MULTIPLIER_TAKERS[function](lam)
    assert named in str(caught.value)


# --- counts ----------------------------------------------------------------------------------

BAD_COUNTS = {
    "fractional": (2.5, TypeError, "2.5"),
    "float-valued-integer": (10.0, TypeError, "10.0"),
    "string": ("10", TypeError, "'10'"),
    "bool": (True, TypeError, "True"),
    "zero": (0, GaussfeatError, "got 0"),
    "negative": (-7, GaussfeatError, "-7"),
}
COUNT_TAKERS = {
    "sample": lambda n: MODEL.sample(n, seed=0),
    "pgd_adversary-steps": lambda n: gf.pgd_adversary(MODEL, X, Y, 0.5, steps=n),
    "robust_mle-max_iter": lambda n: gf.robust_mle(X[:, :1], Y, 0.5, max_iter=n),
    "robust_mle-pgd_steps": lambda n: gf.robust_mle(X[:, :1], Y, 0.5, adversary="pgd", pgd_steps=n),
}


@pytest.mark.parametrize("bad", BAD_COUNTS)
@pytest.mark.parametrize("function", COUNT_TAKERS)
def test_bad_count_is_refused_naming_it(function, bad):
    n, error, named = BAD_COUNTS[bad]
    with pytest.raises(error) as caught:
        COUNT_TAKERS[function](n)
    assert named in str(caught.value)


def test_numpy_integers_are_counts():
    x, _ = MODEL.sample(np.int64(3), seed=0)
    assert x.shape == (3, 2)


@pytest.mark.parametrize(("step_size", "error", "named"), [(0.0, GaussfeatError, "got 0.0"), (-0.25, GaussfeatError, "-0.25"), ("big", TypeError, "'big'")])
def test_pgd_refuses_a_bad_step_size_naming_it(step_size, error, named):
    with pytest.raises(error) as caught:
        gf.pgd_adversary(MODEL, X, Y, 0.5, step_size=step_size)
    assert named in str(caught.value)


# --- models ----------------------------------------------------------------------------------

OTHER_DIMENSION = TwoGaussian(np.ones(3), np.eye(3))
BAD_MODELS = {
    "l2_adversary": (lambda: gf.l2_adversary("model", X, Y, 0.5), TypeError, "str"),
    "lagrangian_adversary": (lambda: gf.lagrangian_adversary(SIGMA, X, Y, 4.0), TypeError, "ndarray"),
    "pgd_adversary": (lambda: gf.pgd_adversary(None, X, Y, 0.5), TypeError, "NoneType"),
    "accuracy-not-a-model": (lambda: MODEL.accuracy("truth"), TypeError, "str"),
    "robust_accuracy-not-a-model": (lambda: MODEL.robust_accuracy(0.1, SIGMA), TypeError, "ndarray"),
    "accuracy-other-dimension": (lambda: MODEL.accuracy(OTHER_DIMENSION), GaussfeatError, "dimension 3"),
    "robust_accuracy-other-dimension": (lambda: MODEL.robust_accuracy(0.1, OTHER_DIMENSION), GaussfeatError, "dimension 3"),
    "nll-other-dimension": (lambda: OTHER_DIMENSION.nll(X, Y), GaussfeatError, "(4, 2)"),
    "predict-other-dimension": (lambda: OTHER_DIMENSION.predict(X), GaussfeatError, "(4, 2)"),
}


@pytest.mark.parametrize("case", BAD_MODELS)
def test_a_wrong_model_is_refused_naming_it(case):
    call, error, named = BAD_MODELS[case]
    with pytest.raises(error) as caught:
        call()
    assert named in str(caught.value)

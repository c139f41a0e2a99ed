"""gaussfeat.linear: Section 4's quantities for a linear classifier, computed in the model's eigenbasis.

Each identity is checked against an independent route over random instances (hypothesis): the
dense closed form of Theorem 2, gaussfeat.metrics' Cholesky-based ratios, the model's own accuracy,
and perturbing points by the worst l2 perturbation of a linear classifier.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from gaussfeat import GaussfeatError, TwoGaussian, gradient_alignment, robust_covariance, robust_lambda
from gaussfeat.linear import centre, closed_form_weights, point_accuracies, summary
from gaussfeat.metrics import mahalanobis_ratio, random_direction_ratio
from tests.strategies import means, spd_matrices

EPS = st.floats(0.01, 3.0)


@st.composite
def models(draw, max_dim: int = 24):
    sigma = draw(spd_matrices(min_dim=2, max_dim=max_dim, max_condition=1e3))
    return TwoGaussian(draw(means(len(sigma))), sigma)


@given(models(), EPS)
def test_closed_form_weights_are_theorem2s_robust_classifier(model, eps):
    """Sigma_r(eps)^-1 mu from the spectrum equals the dense solve with robust_covariance(Sigma, lam(eps))."""
    w, lam = closed_form_weights(model, eps)
    assert lam == pytest.approx(robust_lambda(model.sigma, eps), rel=1e-10)
    dense = np.linalg.solve(robust_covariance(model.sigma, lam), model.mu)
    np.testing.assert_allclose(w, dense, rtol=1e-8, atol=1e-10 * np.abs(dense).max())


@given(models())
def test_at_eps_zero_the_closed_form_is_the_standard_classifier(model):
    w, lam = closed_form_weights(model, 0.0)
    assert lam == np.inf
    np.testing.assert_array_equal(w, model.weights)


@given(models(), EPS)
def test_summary_of_the_standard_classifier_matches_the_dense_definitions(model, eps):
    """alignment = gradient_alignment(mu, Sigma); misalignment = mahalanobis_ratio(w, Sigma) and the random
    direction's tr(Sigma^-1)/d by Cholesky; accuracies = the model's own exact Phi formulas."""
    report = summary(model.weights, model, eps)
    assert report.alignment == pytest.approx(gradient_alignment(model.mu, model.sigma), rel=1e-9)
    assert report.misalignment == pytest.approx(mahalanobis_ratio(model.weights, model.sigma)[0], rel=1e-8)
    assert report.random_misalignment == pytest.approx(random_direction_ratio(model.sigma), rel=1e-8)
    assert report.accuracy == pytest.approx(model.accuracy(), rel=1e-12)
    assert report.robust_accuracy == pytest.approx(model.robust_accuracy(eps), rel=1e-12)
    assert 1 / model.eigenvalues[-1] * (1 - 1e-9) <= report.misalignment <= 1 / model.eigenvalues[0] * (1 + 1e-9)


@settings(max_examples=20, deadline=None)
@given(models(max_dim=8), EPS, st.integers(0, 2**32 - 1))
def test_point_accuracies_are_accuracies_under_the_worst_perturbation(model, eps, seed):
    """Moving each point by -y eps w / ||w|| (the worst l2 perturbation of sign(x^T w)) leaves right
    exactly the points counted as robust; without it, the points counted as accurate; and on many
    points both approach summary's exact values (binomial 1e-6 bounds)."""
    x, y = model.sample(20_000, seed)
    w = model.weights
    clean, robust = point_accuracies(w, x, y, eps)
    worst = x - eps * y[:, None] * w / np.linalg.norm(w)
    assert clean == np.mean(y * (x @ w) > 0)
    assert robust == pytest.approx(np.mean(y * (worst @ w) > 0), abs=1 / len(y))  # rounding at the boundary only
    report = summary(w, model, eps)
    for measured, exact in [(clean, report.accuracy), (robust, report.robust_accuracy)]:
        assert abs(measured - exact) <= norm.ppf(1 - 5e-7) * np.sqrt(exact * (1 - exact) / len(y)) + 1e-12


@given(st.integers(0, 2**32 - 1), st.floats(-5, 5), st.floats(-5, 5))
def test_centre_puts_the_class_means_at_plus_and_minus_mu(seed, a, b):
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(50) < 0.3, 1.0, -1.0)
    y[:2] = [1.0, -1.0]
    x = rng.standard_normal((50, 3)) + np.array([a, b, 0.0])
    centred, midpoint = centre(x, y)
    np.testing.assert_allclose(centred + midpoint, x, atol=1e-12)
    np.testing.assert_allclose(centred[y > 0].mean(axis=0), -centred[y < 0].mean(axis=0), atol=1e-12)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda m: summary(np.zeros(2), m, 0.1), "nonzero"),
        (lambda m: summary(np.ones(3), m, 0.1), "2 entries"),
        (lambda m: summary(np.ones(2), m, -0.5), "-0.5"),
        (lambda m: closed_form_weights(m, float("nan")), "nan"),
        (lambda m: point_accuracies(np.ones(2), np.ones((3, 2)), [1.0, -1.0], 0.1), "(2,)"),
        (lambda m: centre(np.ones((3, 2)), [1.0, 1.0, 1.0]), "both classes"),
    ],
)
def test_bad_input_is_refused_naming_it(call, named):
    model = TwoGaussian([1.0, 0.5], np.diag([1.0, 0.1]))
    with pytest.raises(GaussfeatError, match=named.replace("(", r"\(").replace(")", r"\)")):
        call(model)

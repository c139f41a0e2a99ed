"""gaussfeat.relabelled: Section 3's D_rand and D_det inside the two-Gaussian model (proofs/relabelled.py derives them).

Each property test states the claim it checks on random instances (tests/strategies.py): a random SPD
Sigma of condition up to 1e3 and a mean of norm 0.1-10, the source being the model's standard classifier
w = Sigma^-1 mu unless said otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2, norm

import gaussfeat as gf
from gaussfeat import GaussfeatError, TwoGaussian, d_det, d_det_threshold, d_rand
from gaussfeat.linear import closed_form_weights
from gaussfeat.model import linear_robust_accuracy

from strategies import means, spd_matrices

SURE = 1e-6  # the chance a correct closed form fails a Monte Carlo test below


@st.composite
def models(draw, max_dim: int = 6) -> TwoGaussian:
    sigma = draw(spd_matrices(min_dim=1, max_dim=max_dim, max_condition=1e3))
    return TwoGaussian(draw(means(len(sigma))), sigma)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@given(models(), st.floats(0.01, 10.0), st.floats(0.01, 10.0))
def test_d_rand_population_accuracy_is_above_one_half_and_does_not_depend_on_eps(model, eps, other):
    """D_rand's MLE, mu' = eps u and Sigma' = Sigma + mu mu^T, classifies the original distribution above chance,
    at the same accuracy for every eps > 0."""
    fit = d_rand(model, eps)
    assert fit.accuracy > 0.5
    assert fit.accuracy == pytest.approx(d_rand(model, other).accuracy, abs=1e-12)
    np.testing.assert_allclose(fit.mu, eps * unit(model.weights), atol=1e-12 * eps)
    np.testing.assert_allclose(fit.sigma, model.sigma + np.outer(model.mu, model.mu), rtol=1e-12, atol=1e-12)


@given(models(), st.floats(0.05, 0.95))
def test_d_det_accuracy_crosses_one_half_exactly_at_the_threshold(model, fraction):
    """D_det's accuracy is below 1/2 under eps*, exactly 1/2 at eps*, above it beyond."""
    threshold = d_det_threshold(model)
    assert d_det(model, threshold).accuracy == pytest.approx(0.5, abs=1e-9)
    if abs(d_det(model, fraction * threshold).accuracy - 0.5) > 1e-12:  # numerically distinct from chance
        assert d_det(model, fraction * threshold).accuracy < 0.5
    if abs(d_det(model, threshold / fraction).accuracy - 0.5) > 1e-12:
        assert d_det(model, threshold / fraction).accuracy > 0.5


@given(models())
def test_the_threshold_is_the_distance_from_the_class_mean_to_the_sources_boundary(model):
    """eps* = w^T mu / ||w|| = ||mu|| cos(mu, w) (Theorem 3's alignment) = sqrt(m) sd_u >= sqrt(m / M(u)), with
    m = mu^T Sigma^-1 mu and M(u) = u^T Sigma^-1 u, Theorem 1's misalignment of the perturbation u."""
    w, mu = model.weights, model.mu
    threshold, m = d_det_threshold(model), float(mu @ w)
    assert threshold == pytest.approx(float(w @ mu) / np.linalg.norm(w), rel=1e-9)
    assert threshold == pytest.approx(np.linalg.norm(mu) * gf.gradient_alignment(mu, model.sigma), rel=1e-9)
    u = unit(w)
    assert threshold == pytest.approx(np.sqrt(m * float(u @ model.sigma @ u)), rel=1e-7)
    assert threshold**2 >= m / float(u @ model.precision @ u) * (1 - 1e-9)


@given(models(), st.floats(0.05, 0.95), st.integers(0, 2**16))
def test_the_threshold_is_the_sources_median_margin(model, fraction, seed):
    """eps* is the radius at which the source's exact l2 attack succeeds on exactly half the points: its robust
    accuracy is 1/2 at eps*, above under it, below beyond (D_det beats chance exactly where the relabelling moves
    more than half the points across the source's boundary). Monte Carlo: the share of 20,000 sampled points whose
    margin y x^T u is under eps* is 1/2 within a normal bound of chance SURE."""
    threshold, w = d_det_threshold(model), model.weights
    assert linear_robust_accuracy(w, model, threshold) == pytest.approx(0.5, abs=1e-9)
    assert linear_robust_accuracy(w, model, fraction * threshold) > 0.5 > linear_robust_accuracy(
        w, model, threshold / fraction)
    x, y = model.sample(20_000, seed=seed)
    crossed = np.mean(y * (x @ unit(w)) < threshold)
    assert abs(crossed - 0.5) < norm.isf(SURE / 2) * 0.5 / np.sqrt(len(y))


@given(models(), st.integers(0, 2**32 - 1), st.floats(0.05, 5.0))
def test_no_source_has_a_smaller_threshold_than_the_standard_one(model, seed, eps):
    """eps*(u) = m / u^T w is smallest at u = w / ||w||; a robust source (Theorem 2's Sigma_r at eps) needs more."""
    threshold = d_det_threshold(model)
    other = np.random.default_rng(seed).standard_normal(model.dim)
    assert d_det_threshold(model, other) >= threshold * (1 - 1e-9)
    robust, _ = closed_form_weights(model, eps)
    assert d_det_threshold(model, robust) >= threshold * (1 - 1e-9)
    if float(other @ model.weights) <= 0:
        assert d_det_threshold(model, other) == np.inf  # D_det never generalises from such a source


@settings(max_examples=10, deadline=None)
@given(models(max_dim=4), st.floats(0.1, 2.0), st.integers(0, 2**16))
def test_sampled_fits_converge_to_the_closed_forms(model, eps, seed):
    """At n points the MLE of D_det has mean ~ N(mu', Sigma / n) and n Sigma' ~ Wishart(Sigma, n - 1), exactly; D_rand's
    mean is eps u + mean(s) mu + N(0, Sigma / n), s a uniform sign: each is held to its distribution's 1 - 1e-6
    quantile. The population classifier is Sigma'^-1 mu' of the closed-form parameters."""
    n, d = 20_000, model.dim
    precision = model.precision
    det = d_det(model, eps, n=n, seed=seed, draws=1)
    gap = det.mu - (eps * det.source - model.mu)
    assert n * gap @ precision @ gap < chi2.ppf(1 - SURE, d)
    spread = n * np.trace(precision @ det.sigma)
    assert chi2.ppf(SURE / 2, d * (n - 1)) < spread < chi2.ppf(1 - SURE / 2, d * (n - 1))
    rand = d_rand(model, eps, n=n, seed=seed, draws=1)
    m = float(model.mu @ model.weights)
    whitened_gap = np.linalg.cholesky(precision).T @ (rand.mu - eps * rand.source)  # = mean(s) Sigma^-1/2 mu + N(0, I / n)
    along = model.weights @ (rand.mu - eps * rand.source) / np.sqrt(m)  # its component along Sigma^-1/2 mu
    across = n * (whitened_gap @ whitened_gap - along**2)
    assert across < chi2.ppf(1 - SURE, d - 1) if d > 1 else across == pytest.approx(0, abs=1e-6)
    sign_bound = np.sqrt(2 * np.log(4 / SURE) / n)  # Hoeffding, for mean(s)
    assert abs(along) <= sign_bound * np.sqrt(m) + norm.ppf(1 - SURE / 4) / np.sqrt(n)
    for population in (d_rand(model, eps), d_det(model, eps)):  # the classifier is Sigma'^-1 mu' of those parameters
        np.testing.assert_allclose(population.weights[0], np.linalg.solve(population.sigma, population.mu),
                                   rtol=1e-6, atol=1e-9 * (eps + np.linalg.norm(model.mu)) * np.linalg.norm(precision, 2))


def test_at_finite_n_d_rand_falls_to_chance_as_eps_shrinks():
    """The population D_rand is free of eps; at n points its signal eps u drowns in noise of covariance
    (Sigma + mu mu^T) / n, so the sampled accuracy falls toward 1/2 as eps shrinks."""
    model = gf.random_instance(8, seed=3, condition=30)
    population = d_rand(model, 1.0).accuracy
    sampled = {eps: d_rand(model, eps, n=200, seed=0, draws=32).accuracy for eps in (0.003, 0.03, 0.3, 3.0)}
    assert abs(sampled[0.003] - 0.5) < 0.05 < population - 0.5
    assert sampled[0.003] < sampled[0.03] < sampled[0.3] < sampled[3.0] <= population + 0.01
    assert sampled[3.0] == pytest.approx(population, abs=0.02)


def test_the_fit_reports_its_alignment_and_robust_accuracy():
    model = gf.figure4()
    fit = d_det(model, 2 * d_det_threshold(model))
    w = fit.weights[0]
    assert fit.alignment_with_mu == pytest.approx(float(w @ model.mu) / (np.linalg.norm(w) * np.linalg.norm(model.mu)))
    assert fit.alignment_with_source == pytest.approx(float(w @ fit.source) / np.linalg.norm(w))
    assert fit.robust_accuracy(0.0) == pytest.approx(fit.accuracy)
    assert fit.robust_accuracy(0.1) < fit.accuracy and fit.accuracy_spread == 0.0 and fit.n is None


@pytest.mark.parametrize("call, error, message", [
    (lambda m: d_rand(m, -0.1), GaussfeatError, "eps must be >= 0, got -0.1"),
    (lambda m: d_det(m, float("nan")), GaussfeatError, "eps must be finite"),
    (lambda m: d_rand(m, 0.5, n=1), GaussfeatError, "n must be >= 2, got 1"),
    (lambda m: d_det(m, 0.5, n=2), GaussfeatError, "n must exceed the dimension 2 for the MLE's covariance to be invertible, got n=2"),
    (lambda m: d_rand(m, 0.5, n=10.0), TypeError, "n must be an integer, got 10.0"),
    (lambda m: d_det(m, 0.5, n=50, draws=0), GaussfeatError, "draws must be >= 1, got 0"),
    (lambda m: d_rand(m, 0.5, source=np.zeros(2)), GaussfeatError, "source must be nonzero"),
    (lambda m: d_det_threshold(m, source=np.ones(3)), GaussfeatError, "source must have 2 entries to match the model, got 3"),
    (lambda m: d_rand(m.sigma, 0.5), TypeError, "model must be a TwoGaussian, got ndarray"),
])
def test_bad_input_is_refused_by_name(call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(gf.figure4())


@settings(max_examples=10, deadline=None)
@given(models(), st.floats(0.05, 3.0), st.integers(0, 2**16))
def test_the_check_report_passes_on_random_instances(model, eps, seed):
    """gaussfeat check's Section 3 report: every claim holds (the Monte Carlo ones at confidence 1 - 1e-6)."""
    report = gf.relabelled_sets(model.sigma, eps, mu=model.mu, samples=20_000, seed=seed, confidence=1 - 1e-6)
    assert report.passed, [check for check in report.checks if not check.passed]

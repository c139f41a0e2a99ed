"""TwoGaussian and mle: sampling, the NLL, the classifier, exact accuracies, the closed-form MLE.

Statistical checks use a fixed seed and a false-alarm probability of 1e-6 per test (so a wrong
formula fails, while a correct one would fail only for a one-in-a-million seed):

* sqrt(n) Sigma^-1/2 (mean(y x) - mu) ~ N(0, I_d) exactly, since y z ~ N(0, Sigma) when z is;
  its squared norm is chi^2_d.
* An entry of the whitened second moment Sigma^-1/2 (1/n sum r r^T) Sigma^-1/2 of residuals
  r ~ N(0, Sigma) has mean delta_ij and variance (1 + delta_ij) / n (Wishart); with n in the
  tens of thousands its z-score is normal, Bonferroni-corrected over the d(d+1)/2 entries.
* A Monte Carlo accuracy is a binomial proportion: |p_hat - p| <= z sqrt(p(1 - p) / n).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.linalg import sqrtm
from scipy.stats import chi2, multivariate_normal, norm

from gaussfeat import TwoGaussian, figure4, mle, random_instance

ALPHA = 1e-6  # false-alarm probability of each statistical check
TRUTH = TwoGaussian(np.array([0.8, -0.3, 0.5]), np.array([[1.0, 0.3, -0.2], [0.3, 0.5, 0.1], [-0.2, 0.1, 2.0]]))

MODELS = {
    "figure4": figure4(),
    "random-3": TRUTH,
    "random-8-ill": random_instance(8, seed=3, condition=1e3),
    "one-dimensional": TwoGaussian(np.array([0.7]), np.array([[2.5]])),
}


def whitened(sigma: np.ndarray) -> np.ndarray:
    """Sigma^-1/2 by a route independent of the library (scipy's matrix square root)."""
    return np.linalg.inv(np.real(sqrtm(sigma)))


def assert_mean_within_chi2(estimate, mu, sigma, n):
    statistic = n * np.sum((whitened(sigma) @ (estimate - mu)) ** 2)
    assert statistic <= chi2.ppf(1 - ALPHA, len(mu)), f"chi^2 statistic {statistic:.3g} for d={len(mu)}"


def assert_second_moment_within_wishart(moment, sigma, n):
    d = len(sigma)
    root = whitened(sigma)
    white = root @ moment @ root
    sd = np.sqrt((1 + np.eye(d)) / n)
    z = np.abs(white - np.eye(d)) / sd
    bound = norm.ppf(1 - ALPHA / (d * (d + 1)))  # two-sided, Bonferroni over d(d+1)/2 entries
    assert z.max() <= bound, f"largest entry z-score {z.max():.3g} > {bound:.3g}"


def binomial_half_width(p, n):
    return norm.ppf(1 - ALPHA / 2) * np.sqrt(p * (1 - p) / n)


# --- sample ----------------------------------------------------------------------------------


def test_sample_with_the_same_seed_is_identical_and_with_another_differs():
    x1, y1 = TRUTH.sample(50, seed=7)
    x2, y2 = TRUTH.sample(50, seed=7)
    x3, _ = TRUTH.sample(50, seed=8)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.allclose(x1, x3)


def test_sample_accepts_a_generator_and_advances_it():
    rng = np.random.default_rng(7)
    first, _ = TRUTH.sample(10, seed=rng)
    second, _ = TRUTH.sample(10, seed=rng)
    np.testing.assert_array_equal(first, TRUTH.sample(10, seed=np.random.default_rng(7))[0])
    assert not np.allclose(first, second)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("n", [1, 2, 37])
def test_sample_has_shapes_n_by_d_and_n_with_labels_in_plus_minus_one(name, n):
    model = MODELS[name]
    x, y = model.sample(n, seed=0)
    assert x.shape == (n, model.dim) and y.shape == (n,)
    assert set(np.unique(y)) <= {-1.0, 1.0}
    assert np.all(np.isfinite(x))


def test_sample_labels_are_fair_coin_flips():
    n = 100_000
    _, y = TRUTH.sample(n, seed=1)
    positives = np.mean(y == 1)
    assert abs(positives - 0.5) <= binomial_half_width(0.5, n)
    assert 0 < positives < 1  # both classes occur


def test_sample_mean_of_y_x_converges_to_mu():
    n = 50_000
    x, y = TRUTH.sample(n, seed=2)
    assert_mean_within_chi2(y @ x / n, TRUTH.mu, TRUTH.sigma, n)


@pytest.mark.parametrize("label", [1.0, -1.0])
def test_sample_each_class_is_centred_at_its_signed_mean(label):
    x, y = TRUTH.sample(50_000, seed=3)
    members = x[y == label]
    assert_mean_within_chi2(members.mean(axis=0), label * TRUTH.mu, TRUTH.sigma, len(members))


def test_sample_residual_covariance_converges_to_sigma():
    n = 50_000
    x, y = TRUTH.sample(n, seed=4)
    residual = x - y[:, None] * TRUTH.mu
    assert_second_moment_within_wishart(residual.T @ residual / n, TRUTH.sigma, n)


def test_sample_catches_a_wrong_covariance():
    """The Wishart check is sharp enough to reject Sigma scaled by 1.05 (a wrong square root)."""
    n = 50_000
    x, y = TRUTH.sample(n, seed=4)
    residual = x - y[:, None] * TRUTH.mu
    with pytest.raises(AssertionError):
        assert_second_moment_within_wishart(residual.T @ residual / n, 1.05 * TRUTH.sigma, n)


# --- nll, predict ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_nll_is_minus_the_gaussian_log_density_at_y_mu(name):
    model = MODELS[name]
    x, y = model.sample(40, seed=5)
    x = x + np.random.default_rng(6).normal(size=x.shape)  # include points far from the mean
    expected = np.array([-multivariate_normal.logpdf(xi, yi * model.mu, model.sigma) for xi, yi in zip(x, y)])
    np.testing.assert_allclose(model.nll(x, y), expected, rtol=1e-10, atol=1e-12)


def test_nll_of_a_single_point_is_promoted_to_a_batch_of_one():
    point = np.array([0.1, 0.2, -0.3])
    value = TRUTH.nll(point, -1)
    assert value.shape == (1,)
    np.testing.assert_allclose(value, -multivariate_normal.logpdf(point, -TRUTH.mu, TRUTH.sigma), rtol=1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_predict_is_the_sign_of_x_sigma_inverse_mu(name):
    model = MODELS[name]
    x, _ = model.sample(500, seed=8)
    score = x @ np.linalg.solve(model.sigma, model.mu)
    clear = np.abs(score) > 1e-9 * np.abs(score).max()  # away from the decision boundary
    assert clear.sum() > 450
    np.testing.assert_array_equal(model.predict(x)[clear], np.sign(score[clear]))


def test_predict_breaks_ties_towards_plus_one():
    model = TwoGaussian(np.array([1.0, 0.0]), np.eye(2))
    np.testing.assert_array_equal(model.predict(np.array([[0.0, 0.0], [0.0, 5.0], [0.0, -5.0]])), [1.0, 1.0, 1.0])


def test_predict_is_the_bayes_rule_it_has_lower_nll_for_the_predicted_class():
    x, _ = TRUTH.sample(300, seed=9)
    predicted = TRUTH.predict(x)
    assert np.all(TRUTH.nll(x, predicted) <= TRUTH.nll(x, -predicted) + 1e-12)


# --- accuracy and robust accuracy ------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_accuracy_on_its_own_distribution_is_phi_of_the_mahalanobis_norm_of_mu(name):
    model = MODELS[name]
    expected = norm.cdf(np.sqrt(model.mu @ np.linalg.solve(model.sigma, model.mu)))
    assert model.accuracy() == pytest.approx(expected, rel=1e-12)
    assert model.accuracy(model) == model.accuracy()


OTHER_TRUTH = TwoGaussian(np.array([0.5, 0.1, 0.9]), np.array([[0.7, -0.1, 0.0], [-0.1, 1.5, 0.4], [0.0, 0.4, 0.9]]))


@pytest.mark.parametrize(
    ("model", "truth"),
    [(TRUTH, TRUTH), (TRUTH, OTHER_TRUTH), (OTHER_TRUTH, TRUTH), (TwoGaussian(-TRUTH.mu, TRUTH.sigma), TRUTH)],
    ids=["own", "model-on-other", "other-on-model", "flipped-mean"],
)
def test_accuracy_closed_form_agrees_with_monte_carlo(model, truth):
    n = 200_000
    x, y = truth.sample(n, seed=10)
    empirical = np.mean(model.predict(x) == y)
    exact = model.accuracy(truth)
    assert abs(empirical - exact) <= binomial_half_width(exact, n)


@pytest.mark.parametrize("eps", [0.1, 0.4, 1.0])
@pytest.mark.parametrize(("model", "truth"), [(TRUTH, TRUTH), (TRUTH, OTHER_TRUTH)], ids=["own", "other"])
def test_robust_accuracy_agrees_with_monte_carlo_under_the_worst_linear_perturbation(model, truth, eps):
    n = 200_000
    x, y = truth.sample(n, seed=11)
    w = np.linalg.solve(model.sigma, model.mu)
    attacked = x - eps * y[:, None] * w / np.linalg.norm(w)
    empirical = np.mean(model.predict(attacked) == y)
    exact = model.robust_accuracy(eps, truth)
    assert abs(empirical - exact) <= binomial_half_width(exact, n)


def test_robust_accuracy_is_no_larger_than_accuracy_under_random_perturbations_of_the_same_norm():
    """-y eps w/|w| is the worst perturbation, so random ones of norm eps leave more points correct."""
    eps, n = 0.5, 200_000
    x, y = TRUTH.sample(n, seed=12)
    direction = np.random.default_rng(13).normal(size=x.shape)
    direction *= eps / np.linalg.norm(direction, axis=1, keepdims=True)
    empirical = np.mean(TRUTH.predict(x + direction) == y)
    exact = TRUTH.robust_accuracy(eps)
    assert empirical > exact + binomial_half_width(exact, n)


def test_robust_accuracy_at_zero_is_the_accuracy_and_decreases_strictly_in_eps():
    epsilons = np.linspace(0, 3, 31)
    values = np.array([TRUTH.robust_accuracy(e, OTHER_TRUTH) for e in epsilons])
    assert values[0] == TRUTH.accuracy(OTHER_TRUTH)
    assert np.all(np.diff(values) < 0)
    assert 0 < values[-1] < values[0] < 1


def test_robust_accuracy_is_the_phi_formula():
    eps = 0.3
    w = np.linalg.solve(TRUTH.sigma, TRUTH.mu)
    expected = norm.cdf((w @ OTHER_TRUTH.mu - eps * np.linalg.norm(w)) / np.sqrt(w @ OTHER_TRUTH.sigma @ w))
    assert TRUTH.robust_accuracy(eps, OTHER_TRUTH) == pytest.approx(expected, rel=1e-12)


def test_accuracy_of_a_model_with_zero_mean_is_one_half():
    """mu = 0 is a valid model; its classifier predicts +1 everywhere (ties), so accuracy is 1/2."""
    model = TwoGaussian(np.zeros(3), np.eye(3))
    assert np.mean(model.predict(TRUTH.sample(1000, seed=0)[0]) == 1) == 1.0  # the classifier is constant
    assert model.accuracy(TRUTH) == 0.5


# --- immutability ----------------------------------------------------------------------------


def test_model_arrays_are_read_only():
    model = TwoGaussian([1.0, 2.0], [[1.0, 0.0], [0.0, 1.0]])
    for array in (model.mu, model.sigma, model.eigenvalues, model.basis):
        with pytest.raises(ValueError):
            array[0] = 5.0


def test_constructing_a_model_leaves_the_callers_mean_writable_and_the_model_unaffected():
    mu = np.array([1.0, 2.0])
    model = TwoGaussian(mu, np.eye(2))
    mu[0] = 5.0
    assert model.mu[0] == 1.0


@pytest.mark.parametrize("name", MODELS)
def test_from_spectrum_builds_the_same_model_as_the_covariance_does(name):
    model = MODELS[name]
    order = np.arange(model.dim)[::-1]  # given in any order: sorted ascending on the way in
    rebuilt = TwoGaussian.from_spectrum(model.mu, model.eigenvalues[order], model.basis[:, order])
    np.testing.assert_allclose(rebuilt.sigma, model.sigma, rtol=0, atol=1e-13 * np.abs(model.sigma).max())
    np.testing.assert_array_equal(rebuilt.eigenvalues, model.eigenvalues)
    assert rebuilt.accuracy() == pytest.approx(model.accuracy(), rel=1e-12)
    for array in (rebuilt.mu, rebuilt.sigma, rebuilt.eigenvalues, rebuilt.basis):
        assert not array.flags.writeable


@pytest.mark.parametrize(
    ("eigenvalues", "basis", "named"),
    [
        ([1.0, 0.0], np.eye(2), "smallest eigenvalue is 0"),
        ([1.0, 2.0], [[1.0, 0.0], [0.5, 1.0]], "orthonormal"),
        ([1.0, 2.0, 3.0], np.eye(2), "(3,)"),
        ([1.0, 2.0], np.eye(3), "(3, 3)"),
    ],
)
def test_from_spectrum_refuses_what_is_not_an_spd_spectrum_naming_it(eigenvalues, basis, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        TwoGaussian.from_spectrum([1.0, 0.0], eigenvalues, basis)


# --- mle -------------------------------------------------------------------------------------


def test_mle_is_mean_of_y_x_and_the_divide_by_n_covariance():
    """With n = 5 the 1/n and 1/(n - 1) normalisations differ by 25%, so the rule is pinned down."""
    rng = np.random.default_rng(14)
    x, y = rng.normal(size=(5, 2)), np.array([1.0, -1.0, -1.0, 1.0, 1.0])
    fit = mle(x, y)
    mu = sum(yi * xi for xi, yi in zip(x, y)) / 5
    sigma = sum(np.outer(xi - yi * mu, xi - yi * mu) for xi, yi in zip(x, y)) / 5
    np.testing.assert_allclose(fit.mu, mu, rtol=1e-13)
    np.testing.assert_allclose(fit.sigma, sigma, rtol=1e-12)
    assert isinstance(fit, TwoGaussian)


def test_mle_is_equivariant_under_flipping_every_label_and_point():
    x, y = TRUTH.sample(200, seed=15)
    original, flipped = mle(x, y), mle(-x, -y)
    np.testing.assert_allclose(flipped.mu, original.mu, rtol=1e-12)
    np.testing.assert_allclose(flipped.sigma, original.sigma, rtol=1e-12)


def test_mle_converges_to_the_truth():
    n = 100_000
    x, y = TRUTH.sample(n, seed=16)
    fit = mle(x, y)
    assert_mean_within_chi2(fit.mu, TRUTH.mu, TRUTH.sigma, n)
    assert_second_moment_within_wishart(fit.sigma, TRUTH.sigma, n)


def test_mle_accuracy_approaches_the_bayes_accuracy():
    """The plug-in classifier cannot beat the Bayes rule on the truth, and gets close with data."""
    bayes = TRUTH.accuracy()
    small = mle(*TRUTH.sample(20, seed=17)).accuracy(TRUTH)
    large = mle(*TRUTH.sample(100_000, seed=17)).accuracy(TRUTH)
    assert small <= bayes + 1e-15 and large <= bayes + 1e-15
    assert bayes - large < 1e-3

"""The k-class Gaussian mixture with a shared covariance: Theorems 2 and 3 beyond two classes.

Proved for the relaxed (Lagrangian) adversary (gaussfeat.mixture's docstring), and checked here:
* Theorem 2 for k classes: the robust fit is mu_c = class means, Sigma_r = robust_covariance(S_W, lam), S_W the
  pooled within-class covariance; so Sigma_r has S_W's eigenvectors and a smaller condition number.
* Theorem 3 per pair (and per mean): cos(m, Sigma_r(eps)^-1 m) is non-decreasing in eps for every nonzero m.
For the exact l2 adversary the fit is checked to be the MLE of its own adversarial examples, recomputed
independently with gaussfeat.l2_adversary; its trends are measured (gaussfeat.beyond), not asserted.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

import gaussfeat.descent
from gaussfeat import (
    GaussfeatError,
    GaussianMixture,
    TwoGaussian,
    l2_adversary,
    mixture_mle,
    pairwise_alignments,
    random_mixture,
    robust_covariance,
    robust_lambda,
    robust_mixture_mle,
    robust_mle,
)
from tests.strategies import spd_matrices

# eps = 10^u sqrt(tr S_W): from a thousandth of the data's scale to three times it.
relative_eps = st.floats(-3.0, 0.5)


@st.composite
def mixture_samples(draw, max_dim: int = 8, max_classes: int = 5):
    """(x, c, k): a few hundred points of a random mixture, cond(Sigma) <= 1e3, means of norm ~1 in units of Sigma."""
    sigma = draw(spd_matrices(1, max_dim, max_condition=1e3))
    k = draw(st.integers(2, max_classes))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((k, len(sigma))) * np.sqrt(np.trace(sigma) / len(sigma))
    x, c = GaussianMixture(means, sigma).sample(draw(st.integers(40 * k, 300)), seed=rng)
    c[:k] = np.arange(k)  # every class present
    return x, c, k


def pooled(x, c, k):
    means = np.array([x[c == j].mean(axis=0) for j in range(k)])
    residual = x - means[c]
    return means, residual.T @ residual / len(x)


def condition(sigma):
    s = np.linalg.eigvalsh(sigma)
    return s[-1] / s[0]


# --- Theorem 2 for k classes (relaxed adversary) ------------------------------------------------------------


@given(mixture_samples(), relative_eps)
def test_relaxed_mixture_fit_is_theorem_2s_closed_form_of_the_pooled_covariance(sample, u):
    """The fixed point of adversarial training with the Lagrangian adversary is mu_c = xbar_c and
    Sigma = robust_covariance(S_W, lam(eps)): its eigenvectors are S_W's and its condition number is smaller."""
    x, c, k = sample
    means, s_w = pooled(x, c, k)
    eps = 10**u * np.sqrt(np.trace(s_w))
    fit = robust_mixture_mle(x, c, eps, classes=k, adversary="lagrangian", max_iter=3000)
    assert fit.converged
    assert fit.lam == pytest.approx(robust_lambda(s_w, eps), rel=1e-12)
    expected = robust_covariance(s_w, fit.lam)
    assert np.linalg.norm(fit.model.sigma - expected) <= 1e-7 * np.linalg.norm(expected)
    np.testing.assert_allclose(fit.model.means, means, rtol=0, atol=1e-8 * np.sqrt(np.trace(s_w)))
    commutator = fit.model.sigma @ s_w - s_w @ fit.model.sigma
    assert np.linalg.norm(commutator) <= 1e-7 * np.linalg.norm(s_w) * np.linalg.norm(expected)
    assert condition(fit.model.sigma) <= condition(s_w) * (1 + 1e-9)


@given(mixture_samples(max_dim=6, max_classes=4))
def test_relaxed_mixture_objective_never_rises_along_the_descent(sample):
    x, c, k = sample
    s_w = pooled(x, c, k)[1]
    fit = robust_mixture_mle(x, c, np.sqrt(np.trace(s_w)) / 3, classes=k, adversary="lagrangian", max_iter=3000)
    values = np.array([step.objective for step in fit.trace])
    assert np.all(values[1:] <= values[:-1] + 1e-13 * np.abs(values[:-1]))


# --- Theorem 3 per pair (relaxed adversary) -------------------------------------------------------------------


@given(spd_matrices(1, 32), st.integers(2, 6), st.integers(0, 2**32 - 1), relative_eps, relative_eps)
def test_relaxed_pairwise_alignment_never_falls_as_eps_grows(sigma, k, seed, u1, u2):
    """For every pair c < c', cos(m, Sigma_r(eps)^-1 m), m = mu_c - mu_c', is non-decreasing in eps, from
    Sigma_r(0) = Sigma* on (the means do not move under the relaxed adversary)."""
    means = np.random.default_rng(seed).standard_normal((k, len(sigma)))
    scale = np.sqrt(np.trace(sigma))
    small, large = sorted([10**u1 * scale, 10**u2 * scale])
    values = [pairwise_alignments(means, sigma)] + [
        pairwise_alignments(means, robust_covariance(sigma, robust_lambda(sigma, eps))) for eps in (small, large)
    ]
    assert np.all(values[1] >= values[0] - 1e-12)
    assert np.all(values[2] >= values[1] - 1e-12)


def test_relaxed_alignment_rises_strictly_for_a_mean_spread_over_unequal_eigenvalues():
    sigma = np.diag([0.01, 0.1, 1.0])
    m = np.array([1.0, 1.0, 1.0])
    eps = [0.05, 0.1, 0.3, 1.0, 3.0]
    cosines = [pairwise_alignments(np.stack([m, 0 * m]), robust_covariance(sigma, robust_lambda(sigma, e)))[0] for e in eps]
    assert np.all(np.diff(cosines) > 1e-4)


def test_a_covariance_that_sharpens_the_spectrum_is_caught_by_the_alignment_check():
    """Planted error: Sigma* + Sigma*^2 / lam (the spectrum spreads instead of blending) lowers every pair's
    alignment, so the check above would fail for it."""
    mixture = random_mixture(6, 4, seed=3)
    sigma, lam = mixture.sigma, robust_lambda(mixture.sigma, 0.5)
    before = pairwise_alignments(mixture.means, sigma)
    assert np.all(pairwise_alignments(mixture.means, robust_covariance(sigma, lam)) > before)
    assert np.all(pairwise_alignments(mixture.means, sigma + sigma @ sigma / lam) < before)


# --- the exact l2 adversary -------------------------------------------------------------------------------------

TRUTH = random_mixture(3, 4, seed=1, condition=10.0)  # eigenvalues spread over a factor 10, smallest sd ~0.5
X, C = TRUTH.sample(600, seed=2)
EPS = 0.25  # below the smallest standard deviation: no kinks at the optimum


@pytest.fixture(scope="module")
def exact_fit():
    return robust_mixture_mle(X, C, EPS)


def exact_attack(model: GaussianMixture, x, c, eps):
    """The exact adversary per class through the public two-Gaussian API: N(mu_c, Sigma) with y = +1."""
    delta = np.zeros_like(x)
    for j in range(model.classes):
        rows = c == j
        delta[rows] = l2_adversary(TwoGaussian(model.means[j], model.sigma), x[rows], np.ones(rows.sum()), eps)
    return delta


def robust_objective(model, x, c, eps):
    return float(np.mean(model.nll(x + exact_attack(model, x, c, eps), c)))


def test_exact_mixture_fit_is_the_mle_of_its_own_adversarial_examples(exact_fit):
    """mu_c = mean of class c's attacked points, Sigma = their second moment about mu_c (attack recomputed)."""
    assert exact_fit.converged and exact_fit.iterations > 0
    model = exact_fit.model
    attacked = X + exact_attack(model, X, C, EPS)
    means = np.array([attacked[C == j].mean(axis=0) for j in range(model.classes)])
    np.testing.assert_allclose(model.means, means, rtol=0, atol=1e-8)
    residual = attacked - model.means[C]
    np.testing.assert_allclose(model.sigma, residual.T @ residual / len(X), rtol=0, atol=1e-8)


def test_exact_mixture_fit_has_the_lowest_robust_objective_of_the_candidates(exact_fit):
    """It beats the standard MLE and the relaxed closed form on the exact robust objective, which it reports."""
    standard = mixture_mle(X, C)
    relaxed = robust_mixture_mle(X, C, EPS, adversary="lagrangian").model
    best = robust_objective(exact_fit.model, X, C, EPS)
    assert best == pytest.approx(exact_fit.trace[-1].objective, rel=1e-10)
    assert best < robust_objective(relaxed, X, C, EPS) < robust_objective(standard, X, C, EPS)
    values = np.array([step.objective for step in exact_fit.trace])
    assert np.all(values[1:] <= values[:-1] + 1e-13 * np.abs(values[:-1]))


def test_a_weaker_inner_maximiser_is_caught_by_the_fixed_point_check(monkeypatch):
    """Planted error: delta = eps (x - mu_c) / ||x - mu_c|| (radial, not the maximiser). The fit it produces is
    not the MLE of the exact adversarial examples."""

    def radial(w, p, eps, eta0=None):
        return eps * w / np.linalg.norm(w, axis=1, keepdims=True), np.zeros(len(w))

    monkeypatch.setattr(gaussfeat.descent, "ball_maximiser", radial)
    model = robust_mixture_mle(X, C, EPS).model
    attacked = X + exact_attack(model, X, C, EPS)
    residual = attacked - model.means[C]
    gap = np.linalg.norm(model.sigma - residual.T @ residual / len(X)) / np.linalg.norm(model.sigma)
    assert gap > 1e-3


def test_two_class_mixture_on_symmetric_data_is_robust_mle():
    """With the data symmetrised ((x, y) and (-x, -y)) the class means are +-mean(y x), and the untied mixture
    fit reaches the two-Gaussian robust MLE: mu_1 = -mu_0 = mu, the same Sigma."""
    truth = random_mixture(3, 2, seed=4, condition=10.0)
    x, c = truth.sample(300, seed=5)
    y = np.where(c == 1, 1.0, -1.0)
    xs, ys = np.concatenate([x, -x]), np.concatenate([y, -y])
    two = robust_mle(xs, ys, EPS).model
    mixture = robust_mixture_mle(xs, (ys > 0).astype(int), EPS).model
    np.testing.assert_allclose(mixture.means[1], two.mu, atol=1e-7)
    np.testing.assert_allclose(mixture.means[0], -two.mu, atol=1e-7)
    np.testing.assert_allclose(mixture.sigma, two.sigma, atol=1e-7)


def test_exact_fit_at_zero_radius_is_the_standard_mle():
    fit = robust_mixture_mle(X, C, 0.0)
    standard = mixture_mle(X, C)
    assert fit.converged and fit.iterations == 0
    np.testing.assert_allclose(fit.model.sigma, standard.sigma, rtol=1e-13)
    np.testing.assert_allclose(fit.model.means, standard.means, rtol=1e-13)


# --- the model -------------------------------------------------------------------------------------------------


def test_mixture_nll_is_the_gaussian_log_density():
    x, c = TRUTH.sample(50, seed=7)
    expected = [-multivariate_normal(TRUTH.means[j], TRUTH.sigma).logpdf(point) for point, j in zip(x, c)]
    np.testing.assert_allclose(TRUTH.nll(x, c), expected, rtol=1e-12)


def test_pairwise_alignments_are_the_cosines_of_each_pair_in_order():
    values = TRUTH.pairwise_alignments()
    assert values.shape == (6,)
    m = TRUTH.means[1] - TRUTH.means[3]  # pair (1, 3) is the fifth of (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    g = np.linalg.solve(TRUTH.sigma, m)
    assert values[4] == pytest.approx(m @ g / (np.linalg.norm(m) * np.linalg.norm(g)), rel=1e-12)


def test_same_seed_gives_the_same_instance_sample_and_fit():
    first, second = random_mixture(5, 3, seed=9), random_mixture(5, 3, seed=9)
    np.testing.assert_array_equal(first.means, second.means)
    np.testing.assert_array_equal(first.sigma, second.sigma)
    (x1, c1), (x2, c2) = first.sample(100, seed=1), second.sample(100, seed=1)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(robust_mixture_mle(x1, c1, 0.3).model.sigma, robust_mixture_mle(x2, c2, 0.3).model.sigma)
    assert not np.array_equal(random_mixture(5, 3, seed=10).means, first.means)


FIT_ERRORS = [
    (dict(eps=0.3, adversary="fgsm"), "'fgsm'"),
    (dict(eps=-0.25), "-0.25"),
    (dict(eps=0.3, lam=2.5), "lam=2.5"),
    (dict(adversary="lagrangian"), "eps=None, lam=None"),
    (dict(adversary="lagrangian", lam=-3.5), "-3.5"),
    (dict(), "needs eps"),
    (dict(eps=0.3, tol=-1e-3), "-0.001"),
    (dict(eps=0.3, max_iter=0), "max_iter"),
    (dict(eps=0.3, classes=1), "classes"),
    (dict(eps=0.3, classes=6), "class 4"),
]


@pytest.mark.parametrize(("kwargs", "named"), FIT_ERRORS, ids=[str(k) for k, _ in FIT_ERRORS])
def test_robust_mixture_mle_rejects_bad_arguments_naming_the_value(kwargs, named):
    with pytest.raises(GaussfeatError) as error:
        robust_mixture_mle(X, C, **kwargs)
    assert named in str(error.value)


@pytest.mark.parametrize(("labels", "named"), [
    (np.where(C == 0, 1.5, C), "1.5"),
    (np.where(C == 0, -1, C), "-1"),
    (C[:-1], "shape"),
])
def test_robust_mixture_mle_rejects_bad_labels_naming_them(labels, named):
    with pytest.raises(GaussfeatError) as error:
        robust_mixture_mle(X, labels, 0.3, classes=4)
    assert named in str(error.value)


def test_too_few_points_and_a_flat_direction_are_rejected():
    with pytest.raises(GaussfeatError, match="n >= d \\+ k"):
        mixture_mle(X[:5], np.array([0, 1, 2, 3, 0]))
    flat = X.copy()
    flat[:, 2] = 1.0
    with pytest.raises(GaussfeatError, match="singular"):
        mixture_mle(flat, C)


@pytest.mark.parametrize(("means", "sigma", "named"), [
    (np.ones((1, 2)), np.eye(2), "at least 2 rows"),
    (np.ones((3, 2)), np.eye(3), "(2, 2)"),
    (np.eye(2), np.diag([1.0, -2.0]), "-2"),
])
def test_gaussian_mixture_rejects_bad_parameters_naming_them(means, sigma, named):
    with pytest.raises(GaussfeatError) as error:
        GaussianMixture(means, sigma)
    assert named in str(error.value)


def test_pairwise_alignment_of_equal_means_is_rejected_naming_the_classes():
    with pytest.raises(GaussfeatError, match="classes 0 and 2"):
        pairwise_alignments(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), np.eye(2))

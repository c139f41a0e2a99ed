"""The two-class product-Laplace model: a non-Gaussian model where the exact robust MLE has a closed form.

Proved (gaussfeat.laplace's docstring) and checked here:
* the exact l2 inner max is delta = eps sign(w) (1/b) / ||1/b||, worth eps ||1/b||_2 over the clean NLL
  (checked against a dense search on the circle, random points of the sphere and projected ascent);
* the robust MLE is mu = median(y x) for every eps and b_j = r_j / 2 + sqrt(r_j^2 / 4 + c) with ||b - r|| = eps
  (fixed-point descent, closed form and a generic optimiser agree), and the Lagrangian relaxation gives the same fit;
* Theorem 2's analogue: every scale ratio falls toward 1 as eps grows, and the smallest scales grow most;
* Theorem 3's analogue holds with equal |mu_j| (population scales) and fails for aligned_laplace: measured in beyond.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.stats import laplace

from gaussfeat import (
    GaussfeatError,
    ProductLaplace,
    aligned_laplace,
    laplace_adversary,
    laplace_ball_maximiser,
    laplace_mle,
    llr_alignment,
    random_laplace,
    robust_laplace_mle,
    robust_laplace_objective,
    robust_laplace_scales,
)

eps_values = st.floats(1e-3, 10.0)


@st.composite
def scales(draw, min_dim: int = 1, max_dim: int = 32):
    """Positive scales spread over up to a factor 100, as a (d,) array."""
    d = draw(st.integers(min_dim, max_dim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return np.exp(rng.uniform(0, np.log(draw(st.floats(1.0, 100.0))), d)) / 3


def inner_value(w, b, delta):
    return np.sum(np.abs(w + delta) / b, axis=-1)


def bound(w, b, eps):
    return np.sum(np.abs(w) / b, axis=-1) + eps * np.linalg.norm(1 / b)


# --- the exact inner maximiser ----------------------------------------------------------------------------------


@given(scales(), st.integers(0, 2**32 - 1), eps_values)
def test_laplace_maximiser_attains_the_bound_and_nothing_in_the_ball_exceeds_it(b, seed, eps):
    """delta* has norm eps and value sum |w|/b + eps ||1/b||; no random point of the sphere and no projected
    (sub)gradient ascent from random starts finds more (to rounding)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((8, b.size)) * b
    w[0, : b.size // 2] = 0.0  # ties: zero residual coordinates
    delta = laplace_ball_maximiser(w, b, eps)
    np.testing.assert_allclose(np.linalg.norm(delta, axis=1), eps, rtol=1e-12)
    best = bound(w, b, eps)
    np.testing.assert_allclose(inner_value(w, b, delta), best, rtol=1e-12)
    directions = rng.standard_normal((500, b.size))
    candidates = eps * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    assert np.all(inner_value(w[:, None, :], b, candidates[None]) <= best[:, None] * (1 + 1e-12))
    for row in range(len(w)):
        d = candidates[row].copy()
        for _ in range(200):
            d += 0.1 * eps * np.sign(w[row] + d) / b / np.linalg.norm(1 / b)
            d *= eps / max(np.linalg.norm(d), eps)  # project onto the ball
        assert inner_value(w[row], b, d) <= best[row] * (1 + 1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_laplace_maximiser_matches_a_dense_search_on_the_circle(seed):
    """d = 2: the max over 200001 angles of the sphere ||delta|| = eps equals the closed form (to 1e-9)."""
    rng = np.random.default_rng(seed)
    b, w, eps = rng.uniform(0.1, 2.0, 2), rng.standard_normal(2), rng.uniform(0.1, 3.0)
    angles = np.linspace(0, 2 * np.pi, 200_001)
    circle = eps * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    searched = inner_value(w, b, circle).max()
    assert searched == pytest.approx(bound(w, b, eps), rel=1e-9)
    assert searched <= bound(w, b, eps) * (1 + 1e-14)


def test_at_a_zero_residual_both_signs_tie_and_the_maximiser_takes_plus():
    b, eps = np.array([0.5, 1.0, 2.0]), 0.7
    w = np.array([[0.0, -1.0, 0.0]])
    delta = laplace_ball_maximiser(w, b, eps)
    assert delta[0, 0] > 0 and delta[0, 2] > 0 and delta[0, 1] < 0
    flipped = delta * np.array([-1.0, 1.0, -1.0])
    assert inner_value(w, b, flipped)[0] == pytest.approx(inner_value(w, b, delta)[0], rel=1e-15)


def test_maximisers_that_ignore_the_scales_fall_short_of_the_bound():
    """Planted errors: delta ~ sign(w) (scales ignored) and delta ~ sign(w) / b^2 (wrong power) lose value
    whenever the scales differ, so the bound check above catches them."""
    b, eps = np.array([0.1, 0.5, 2.0]), 1.0
    w = np.array([[0.3, -0.2, 1.0]])
    for wrong in (np.sign(w), np.sign(w) / b**2):
        delta = eps * wrong / np.linalg.norm(wrong)
        assert inner_value(w, b, delta)[0] < bound(w, b, eps)[0] - 1e-3


def test_laplace_adversary_is_the_maximiser_on_the_residuals():
    truth = random_laplace(5, seed=2)
    x, y = truth.sample(40, seed=3)
    delta = laplace_adversary(truth, x, y, 0.4)
    np.testing.assert_allclose(truth.nll(x + delta, y), truth.nll(x, y) + 0.4 * np.linalg.norm(1 / truth.scales), rtol=1e-13)
    assert robust_laplace_objective(truth, x, y, 0.4) == pytest.approx(np.mean(truth.nll(x + delta, y)), rel=1e-13)


# --- the robust MLE ---------------------------------------------------------------------------------------------


@st.composite
def laplace_samples(draw, max_dim: int = 16):
    d = draw(st.integers(1, max_dim))
    seed = draw(st.integers(0, 2**32 - 1))
    truth = random_laplace(d, seed, spread=draw(st.floats(1.0, 100.0)), radius=draw(st.floats(0.1, 3.0)))
    x, y = truth.sample(draw(st.integers(20, 400)), seed=seed + 1)
    return x, y


@given(laplace_samples(), eps_values)
def test_robust_laplace_fit_is_the_closed_form_with_the_median_mean(sample, eps):
    """Danskin fixed-point descent reaches mu = median(y x), b = robust_laplace_scales(r, eps), ||b - r|| = eps."""
    x, y = sample
    standard = laplace_mle(x, y)
    fit = robust_laplace_mle(x, y, eps)
    assert fit.converged
    np.testing.assert_array_equal(fit.model.mu, np.median(y[:, None] * x, axis=0))
    expected = robust_laplace_scales(standard.scales, eps)
    np.testing.assert_allclose(fit.model.scales, expected, rtol=1e-9)
    assert np.linalg.norm(expected - standard.scales) == pytest.approx(eps, rel=1e-10)
    values = np.array([step.objective for step in fit.trace])
    assert np.all(values[1:] <= values[:-1] + 1e-13 * np.abs(values[:-1]))


@given(laplace_samples(max_dim=6), eps_values)
def test_robust_laplace_fit_minimises_the_robust_objective_found_by_a_generic_optimiser(sample, eps):
    """BFGS on log b of R = mean l(x + delta*) (the adversary applied) finds no lower value, and moving mu off
    the median does not lower R."""
    x, y = sample
    fit = robust_laplace_mle(x, y, eps)
    mu = fit.model.mu

    def objective(log_b):
        model = ProductLaplace(mu, np.exp(log_b))
        return np.mean(model.nll(x + laplace_adversary(model, x, y, eps), y))

    found = minimize(objective, np.log(laplace_mle(x, y).scales) + 0.3, method="BFGS", options={"gtol": 1e-10})
    best = robust_laplace_objective(fit.model, x, y, eps)
    assert best <= found.fun + 1e-9 * abs(found.fun)
    np.testing.assert_allclose(fit.model.scales, np.exp(found.x), rtol=1e-4)
    for shift in (-0.05, 0.05):  # >=, not >: for even n every point between the middle two is a median
        shifted = ProductLaplace(mu + shift * np.max(fit.model.scales), fit.model.scales)
        assert robust_laplace_objective(shifted, x, y, eps) >= best - 1e-13 * abs(best)


@given(scales(min_dim=2), eps_values)
def test_relaxed_laplace_fit_equals_the_exact_one_at_the_tied_multiplier(r, eps):
    """The Lagrangian relaxation, min_a sum a r + ||a||^2 / (2 lam) - sum log a (a = 1/b), solved by BFGS at
    lam = ||1/b*||_2 / eps (b* the exact robust scales), lands on b*."""
    exact = robust_laplace_scales(r, eps)
    lam = np.linalg.norm(1 / exact) / eps

    def relaxed(log_a):
        a = np.exp(log_a)
        return np.sum(a * r) + a @ a / (2 * lam) - np.sum(log_a), (a * r + a * a / lam - 1)

    found = minimize(relaxed, -np.log(r), jac=True, method="BFGS", options={"gtol": 1e-12})
    np.testing.assert_allclose(1 / np.exp(found.x), exact, rtol=1e-6)


def test_robust_laplace_fit_at_zero_radius_is_the_standard_mle():
    x, y = random_laplace(4, seed=1).sample(100, seed=2)
    fit = robust_laplace_mle(x, y, 0.0)
    standard = laplace_mle(x, y)
    assert fit.converged and fit.iterations == 0
    np.testing.assert_array_equal(fit.model.scales, standard.scales)


# --- Theorem 2's analogue: the scales blend -----------------------------------------------------------------------


@given(scales(min_dim=2), eps_values, eps_values)
def test_robust_scales_blend_toward_equal_and_the_smallest_grow_most(r, eps1, eps2):
    """For r_j > r_i the ratio b_j / b_i falls strictly with eps (staying >= 1); the growth b_j - r_j is largest
    where r_j is smallest."""
    small, large = sorted([eps1, eps2])
    order = np.argsort(r)
    r = r[order]
    if np.any(np.diff(r) <= 1e-9 * r[1:]):
        return  # ties: their ratio is 1 at every eps
    b0, b1, b2 = r, robust_laplace_scales(r, small), robust_laplace_scales(r, large)
    for low, high in ((b0, b1), (b1, b2)):
        ratio_before, ratio_after = low[1:] / low[0], high[1:] / high[0]
        assert np.all(ratio_after >= 1)
        if high is b2 and large <= small * (1 + 1e-6):
            continue
        assert np.all(ratio_after < ratio_before)
    growth = b2 - r
    assert np.all(np.diff(growth) <= 1e-12 * growth[:-1])


def test_a_blend_in_the_wrong_direction_is_caught():
    """Planted error: b = r + eps r / ||r|| (the growth proportional to the scale) keeps every ratio; the check
    above requires the ratios to fall."""
    r = np.array([0.1, 0.3, 1.0])
    wrong = r + 0.5 * r / np.linalg.norm(r)
    assert np.allclose(wrong / wrong[0], r / r[0])
    right = robust_laplace_scales(r, 0.5)
    assert np.all(right[1:] / right[0] < r[1:] / r[0])


# --- Theorem 3's analogue: where it holds and where it fails ---------------------------------------------------


@given(scales(min_dim=2, max_dim=16), st.floats(0.01, 3.0), st.integers(0, 2**32 - 1), eps_values, eps_values)
def test_llr_alignment_never_falls_with_equal_mean_magnitudes_at_population_scales(b, m, seed, eps1, eps2):
    """|mu_j| = m for all j and r = b*: kappa_j / |mu_j| falls as b*_j grows, so by the tilting argument the
    alignment of E grad LLR with mu is non-decreasing in eps."""
    signs = np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), b.size)
    truth = ProductLaplace(m * signs, b)
    values = [llr_alignment(ProductLaplace(truth.mu, robust_laplace_scales(b, e)), truth) for e in (0.0, *sorted([eps1, eps2]))]
    assert values[0] <= values[1] + 1e-12 and values[1] <= values[2] + 1e-12


def test_llr_alignment_falls_with_eps_for_means_aligned_at_zero_radius():
    """aligned_laplace: E grad LLR is parallel to mu at eps = 0 (population scales), so blending lowers it."""
    truth = aligned_laplace(random_laplace(8, seed=4).scales, seed=5)
    values = [llr_alignment(ProductLaplace(truth.mu, robust_laplace_scales(truth.scales, e)), truth)
              for e in (0.0, 0.1, 0.5, 2.0)]
    assert values[0] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(values) < -1e-6)


def test_llr_gradient_is_the_clipped_slope_and_its_mean_matches_the_expected_gradient():
    truth = random_laplace(4, seed=6, radius=2.0)
    x, _ = truth.sample(200_000, seed=7)
    grad = truth.llr_gradient(x[:3])
    inside = np.abs(x[:3]) < np.abs(truth.mu)
    np.testing.assert_array_equal(grad, np.where(inside, 2 * np.sign(truth.mu) / truth.scales, 0.0))
    empirical = truth.llr_gradient(x).mean(axis=0)
    from gaussfeat.laplace import expected_llr_gradient

    expected = expected_llr_gradient(truth, truth)
    np.testing.assert_allclose(empirical, expected, atol=5 * np.max(np.abs(expected)) / np.sqrt(len(x)))


def test_product_laplace_nll_is_the_log_density():
    truth = random_laplace(3, seed=8)
    x, y = truth.sample(20, seed=9)
    expected = -np.sum(laplace.logpdf(x, loc=y[:, None] * truth.mu, scale=truth.scales), axis=1)
    np.testing.assert_allclose(truth.nll(x, y), expected, rtol=1e-12)


def test_same_seed_gives_the_same_instance_sample_and_fit():
    first, second = random_laplace(6, seed=3), random_laplace(6, seed=3)
    np.testing.assert_array_equal(first.scales, second.scales)
    (x1, y1), (x2, y2) = first.sample(50, seed=1), second.sample(50, seed=1)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(robust_laplace_mle(x1, y1, 0.3).model.scales, robust_laplace_mle(x2, y2, 0.3).model.scales)


@pytest.mark.parametrize(("call", "named"), [
    (lambda: ProductLaplace(np.zeros(2), np.array([1.0, -0.5])), "-0.5"),
    (lambda: ProductLaplace(np.zeros(2), np.ones(3)), "(2,)"),
    (lambda: robust_laplace_scales(np.array([1.0, 0.0]), 0.5), "coordinate 1"),
    (lambda: robust_laplace_scales(np.array([1.0, 2.0]), -0.25), "-0.25"),
    (lambda: robust_laplace_mle(np.array([1, -1, 1, -1, 1.0])[:, None] * np.ones((5, 2)), np.array([1, -1, 1, -1, 1.0]), 0.1),
     "constant"),
    (lambda: robust_laplace_mle(np.random.default_rng(0).standard_normal((5, 2)), np.array([1, -1, 2, -1, 1.0]), 0.1), "2"),
    (lambda: robust_laplace_mle(np.random.default_rng(0).standard_normal((5, 2)), np.array([1, -1, 1, -1, 1.0]), -3.5), "-3.5"),
    (lambda: aligned_laplace(np.array([1.0, 2.0]), level=1.5), "1.5"),
])
def test_bad_laplace_input_is_rejected_naming_the_value(call, named):
    with pytest.raises(GaussfeatError) as error:
        call()
    assert named in str(error.value)

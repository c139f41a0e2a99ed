"""Theorem 2 (robust learning), checked claim by claim.

Statement, with gaussfeat's conventions (gaussfeat.robust): the relaxed robust NLL, penalty (lam/2)||delta||^2,

    F(Sigma) = lam/2 tr[(lam Sigma - I)^-1 Sigma*] + 1/2 log det Sigma      (+inf unless lam Sigma > I),

is minimised, with mu_r = mu*, by

    Sigma_r = 1/2 Sigma* + I/lam + (Sigma*/lam + Sigma*^2/4)^(1/2),

which commutes with Sigma*, exceeds it (by between I/lam and 2I/lam), tends to it as lam -> inf and is better
conditioned. lam(eps) is tied to the l2 radius by E||delta*||^2 = tr[Sigma* (lam Sigma_r - I)^-2] = eps^2; then
lam eps -> sqrt(tr Sigma*^-1) as eps -> 0 and lam eps^2 -> d as eps -> inf, the paper's bound shapes read with a
squared budget b = eps^2. Adversarial training (robust_mle) reaches the closed form at the sample covariance.

Strategies: Sigma* from spd_matrices (d in 1..64, cond <= 1e4, eigenvalues in [1e-2, 1e2]); lam = 10^u, u in
[-4, 4], so lam t ranges over 1e-6 .. 1e6 across Sigma*'s eigenvalues t. Independent references use plain
matrix algebra (inv, solve, Cholesky), and the bounds below are derived per eigenvalue in the comments.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gaussfeat import (
    TwoGaussian,
    mle,
    paper_lambda_bound_shapes,
    random_instance,
    relaxed_budget,
    relaxed_gradient,
    relaxed_objective,
    robust_covariance,
    robust_lambda,
    robust_mle,
    theorem2,
)
from gaussfeat.linalg import relative_frobenius
from tests import reports
from tests.strategies import means, spd_matrices

EXACT = 1e-9
lams = st.floats(-4.0, 4.0).map(lambda u: 10.0**u)


def eigenvalues(sigma: np.ndarray) -> np.ndarray:
    return np.linalg.eigvalsh(sigma)


def sqrtm(a: np.ndarray) -> np.ndarray:
    w, q = np.linalg.eigh(a)
    return (q * np.sqrt(w)) @ q.T


def condition(sigma: np.ndarray) -> float:
    s = eigenvalues(sigma)
    return float(s[-1] / s[0])


@st.composite
def covariance_and_lam(draw, max_dim: int = 64):
    return draw(spd_matrices(1, max_dim)), draw(lams)


@st.composite
def covariance_and_eps(draw, low: float = -4.0, high: float = 4.0):
    """Sigma* and eps = 10^u sqrt(tr Sigma*): eps^2 from 1e-8 to 1e8 times the total variance."""
    sigma = draw(spd_matrices(1, 64))
    return sigma, float(np.sqrt(np.trace(sigma)) * 10.0 ** draw(st.floats(low, high)))


# --- the shape of Sigma_r --------------------------------------------------------------------------


@given(covariance_and_lam())
def test_robust_covariance_commutes_with_sigma_star(case):
    """Sigma_r is a spectral function of Sigma*, so Sigma_r Sigma* = Sigma* Sigma_r."""
    sigma, lam = case
    r = robust_covariance(sigma, lam)
    commutator = np.linalg.norm(r @ sigma - sigma @ r) / (np.linalg.norm(r) * np.linalg.norm(sigma))
    assert commutator <= 1e-12  # rounding of an eigen-reconstruction: ~d u


@given(covariance_and_lam())
def test_robust_covariance_minus_sigma_star_is_positive_definite(case):
    """Sigma_r - Sigma* > 0: robust training increases every eigenvalue."""
    sigma, lam = case
    assert eigenvalues(robust_covariance(sigma, lam) - sigma)[0] > 0


@given(covariance_and_lam())
def test_robust_covariance_adds_between_identity_over_lam_and_twice_that(case):
    """I/lam < Sigma_r - Sigma* < 2 I/lam.

    Per eigenvalue t, lam (s - t) = 1 + [sqrt(y + y^2/4) - y/2] with y = lam t, and the bracket,
    = 1 / (sqrt(1/y + 1/4) + 1/2), lies in (0, 1). Rounding: lam ||Sigma|| <= 1e6, so forming
    lam (Sigma_r - Sigma*) loses ~1e6 d u ~ 1e-8.
    """
    sigma, lam = case
    w = eigenvalues(lam * (robust_covariance(sigma, lam) - sigma))
    assert w[0] >= 1 - 1e-7 and w[-1] <= 2 + 1e-7


@given(spd_matrices(1, 64))
def test_robust_covariance_tends_to_sigma_star_as_lam_grows(sigma):
    """Sigma_r -> Sigma* as lam -> inf, with lam (Sigma_r - Sigma*) -> 2I at rate 1/(lam sigma_min).

    From the bracket above, 0 < 2 - lam (s - t) < 1/y = 1/(lam t) (as sqrt(1/y + 1/4) + 1/2 < 1 + 1/y);
    so ||lam (Sigma_r - Sigma*) - 2I||_2 <= 1/(lam sigma_min) and ||Sigma_r - Sigma*||_2 <= 2/lam.
    Rounding allowance: lam ||Sigma|| u d <= 1e8 * 64 u ~ 1e-6 at the largest lam.
    """
    t_min = eigenvalues(sigma)[0]
    errors = []
    for lam in 10.0 ** np.arange(1, 5) / t_min:
        shift = robust_covariance(sigma, lam) - sigma
        assert np.linalg.norm(shift, 2) <= 2 / lam * (1 + 1e-6)
        error = np.linalg.norm(lam * shift - 2 * np.eye(len(sigma)), 2)
        assert error <= 1 / (lam * t_min) + 1e-6
        errors.append(error)
    assert errors[-1] <= 1e-4


@given(covariance_and_lam())
def test_robust_covariance_is_no_worse_conditioned_and_strictly_better_when_anisotropic(case):
    """cond(Sigma_r) <= cond(Sigma*), strictly unless Sigma* is isotropic.

    s(t)/t = 1/2 + 1/y + sqrt(1/y + 1/4) (y = lam t) falls as t grows, so cond shrinks by the factor
    r(t_max)/r(t_min). Here lam t_min <= 1e4 (t_min <= 1), so for cond >= 1 + 1e-3 the shrinkage is at least
    ~2/(lam t_min) (1 - 1/cond) >= 2e-7: far above the 1e-10 margin and the eigvalsh rounding (~cond u).
    """
    sigma, lam = case
    kappa, kappa_r = condition(sigma), condition(robust_covariance(sigma, lam))
    assert kappa_r <= kappa * (1 + 1e-12)
    if kappa >= 1 + 1e-3:
        assert kappa_r < kappa * (1 - 1e-10)


@pytest.mark.parametrize("d", [1, 2, 64])
@pytest.mark.parametrize("lam", [1e-3, 1.0, 1e3])
def test_robust_covariance_of_an_isotropic_sigma_star_is_isotropic(d, lam):
    """Sigma* = c I gives Sigma_r = s(c) I: both condition numbers are 1."""
    r = robust_covariance(3.0 * np.eye(d), lam)
    np.testing.assert_allclose(r, r[0, 0] * np.eye(d), rtol=0, atol=1e-14 * r[0, 0])
    assert condition(r) == pytest.approx(1.0, abs=1e-14)


# --- Sigma_r minimises the relaxed objective ----------------------------------------------------


@given(covariance_and_lam())
def test_robust_covariance_zeroes_the_relaxed_gradient(case):
    """relaxed_gradient(Sigma_r) = 0, measured whitened: ||L^T G L||_F with Sigma_r = L L^T.

    Both terms of G are ~I/2 after whitening; their difference is rounding amplified by inverting
    lam Sigma_r - I (condition <= ~cond(Sigma*) <= 1e4): ~1e-12 measured, against 1e-9.
    """
    sigma, lam = case
    r = robust_covariance(sigma, lam)
    root = np.linalg.cholesky(r)
    assert np.linalg.norm(root.T @ relaxed_gradient(r, sigma, lam) @ root) <= EXACT


def line_through_sigma_r(sigma, lam, seed):
    """tau -> F(Sigma_r + tau H) with H = A^1/2 E A^1/2 / lam, A = lam Sigma_r - I, E symmetric, ||E||_F = 1.

    lam (Sigma_r + tau H) - I = A^1/2 (I + tau E) A^1/2 stays positive definite for |tau| < 1, so every point
    of the line is in F's domain, however close Sigma_r sits to its boundary (small lam t).
    """
    r = robust_covariance(sigma, lam)
    e = np.random.default_rng(seed).standard_normal(sigma.shape)
    e = (e + e.T) / np.linalg.norm(e + e.T)
    root = sqrtm(lam * r - np.eye(len(sigma)))
    h = root @ e @ root / lam
    return lambda tau: relaxed_objective(r + tau * h, sigma, lam)


@given(covariance_and_lam(), st.integers(0, 2**32 - 1))
def test_relaxed_objective_has_zero_slope_and_positive_curvature_at_robust_covariance(case, seed):
    """Finite differences of relaxed_objective along random symmetric directions: slope ~ 0, curvature > 0.

    Along the line, F = 1/2 tr[(I + tau E)^-1 B] + 1/2 log det(I + tau D E D) + const with B, D^2 having
    eigenvalues sqrt(t/s) in (0, 1); so |F'''(xi)| <= (3 sqrt(d) + 1) / (1 - tau)^4 for |xi| <= tau, and
    the central difference's truncation error is at most tau^2 / 6 times that. Rounding of F (|F| <~ 500) adds
    ~1e-13/tau to the slope and ~1e-13/tau^2 to the curvature, whose value along such directions is >= ~0.03
    (the smallest over many draws).
    """
    sigma, lam = case
    line = line_through_sigma_r(sigma, lam, seed)
    tau = 1e-3
    before, here, after = line(-tau), line(0.0), line(tau)
    slope = (after - before) / (2 * tau)
    curvature = (after - 2 * here + before) / tau**2
    assert abs(slope) <= tau**2 * (3 * np.sqrt(len(sigma)) + 1) / (6 * (1 - tau) ** 4) + 1e-9
    assert curvature > 1e-6


@given(covariance_and_lam(), st.integers(0, 2**32 - 1))
def test_relaxed_objective_does_not_decrease_near_robust_covariance(case, seed):
    """F(Sigma_r + tau H) >= F(Sigma_r) for small and moderate steps tau, both signs."""
    sigma, lam = case
    line = line_through_sigma_r(sigma, lam, seed)
    here = line(0.0)
    for tau in (1e-3, 1e-2, 1e-1, 0.5):
        assert line(tau) >= here and line(-tau) >= here


@st.composite
def alternatives(draw):
    """Sigma*, lam and a random SPD matrix R of the same dimension, scaled by 10^u, u in [-3, 3]."""
    d = draw(st.integers(1, 64))
    sigma = draw(spd_matrices(d, d))
    return sigma, draw(lams), draw(spd_matrices(d, d)) * 10.0 ** draw(st.floats(-3.0, 3.0))


@given(alternatives())
def test_robust_covariance_beats_random_alternatives_on_the_relaxed_objective(case):
    """Sigma_r is the global minimiser: F(Sigma) >= F(Sigma_r) for feasible Sigma = I/lam + R (R > 0), for
    Sigma* + I/lam, for Sigma_r rescaled, and F = +inf for R itself when lam R is not > I."""
    sigma, lam, spread = case
    d = len(sigma)
    r = robust_covariance(sigma, lam)
    best = relaxed_objective(r, sigma, lam)
    slack = 1e-12 * max(1.0, abs(best))
    floor = np.eye(d) / lam  # F is finite exactly above it
    for candidate in (floor + spread, sigma + floor, 1.1 * r, floor + 0.9 * (r - floor), spread):
        assert relaxed_objective(candidate, sigma, lam) >= best - slack


# --- lam(eps) --------------------------------------------------------------------------------------


@given(covariance_and_eps())
def test_lambda_of_eps_spends_the_squared_budget_exactly(case):
    """relaxed_budget(Sigma*, lam(eps)) = eps^2, and independently E||delta*||^2 = tr[Sigma* (lam Sigma_r - I)^-2]
    = eps^2 (the average squared l2 norm of the relaxed adversary's perturbation; eps is a radius).

    The root is found to ~1e-14 in log lam; the matrix route inverts lam Sigma_r - I (condition <= ~1e4).
    """
    sigma, eps = case
    lam = robust_lambda(sigma, eps)
    assert relaxed_budget(sigma, lam) == pytest.approx(eps**2, rel=EXACT)
    k = np.linalg.inv(lam * robust_covariance(sigma, lam) - np.eye(len(sigma)))
    assert np.trace(sigma @ k @ k) == pytest.approx(eps**2, rel=1e-8)


@given(covariance_and_eps(), st.floats(1e-3, 3.0))
def test_lambda_is_decreasing_in_eps(case, log_ratio):
    """A larger radius needs a smaller multiplier: eps1 < eps2 implies lam(eps1) > lam(eps2)."""
    sigma, eps = case
    assert robust_lambda(sigma, eps) > robust_lambda(sigma, eps * 10.0**log_ratio)


@given(spd_matrices(1, 64))
def test_lambda_times_eps_tends_to_sqrt_trace_of_precision_as_eps_shrinks(sigma):
    """lam eps -> sqrt(tr Sigma*^-1) as eps -> 0, with 0 <= 1 - lam eps / sqrt(tr Sigma*^-1) <= 2/(lam t_min).

    Per eigenvalue, t + 1/lam <= s <= t + 2/lam, so eps^2 = sum(1/s)/lam^2 lies in
    [(1 - 2/(lam t_min)) tr(Sigma*^-1)/lam^2, tr(Sigma*^-1)/lam^2], and 1 - sqrt(1 - x) <= x.
    """
    t = eigenvalues(sigma)
    limit = np.sqrt(np.sum(1 / t))
    for eps in np.sqrt(t[0]) * 10.0 ** -np.arange(2.0, 9.0):
        lam = robust_lambda(sigma, eps)
        shortfall = 1 - lam * eps / limit
        assert -1e-12 <= shortfall <= 2 / (lam * t[0]) + 1e-12
    assert shortfall <= 1e-7


@given(spd_matrices(1, 64))
def test_lambda_times_eps_squared_tends_to_dimension_as_eps_grows(sigma):
    """lam eps^2 -> d as eps -> inf, with 0 <= d - lam eps^2 <= d (sqrt(y) + y), y = lam t_max.

    lam eps^2 = sum 1/(lam s), and 1/lam + sqrt(t/lam) <= s <= 1/lam + sqrt(t/lam) + t per eigenvalue, so
    1/(lam s) lies in [1/(1 + sqrt(y) + y), 1/(1 + sqrt(y))] and 1 - 1/(1 + z) <= z.
    """
    t = eigenvalues(sigma)
    d = len(t)
    for eps in np.sqrt(np.sum(t)) * 10.0 ** np.arange(1.0, 9.0):
        lam = robust_lambda(sigma, eps)
        y = lam * t[-1]
        excess = d - lam * eps**2
        assert -1e-12 * d <= excess <= d * (np.sqrt(y) + y) + 1e-12 * d
    assert excess <= 1e-6 * d


@given(spd_matrices(1, 64))
def test_lambda_has_the_paper_lower_bound_shape_when_eps_bounds_the_squared_norm(sigma):
    """With b = eps^2, lam / lower(b) tends to sqrt(tr Sigma*^-1) as b -> 0 and to d as b -> inf, lower(b) =
    (1 + b^1/2) / (b^1/2 + b^3/2), so lam = Theta(lower(b)); and lam / upper(b) -> 0 as b -> inf (an O bound).
    Read with b = eps instead, lam / lower(eps) grows without bound as eps -> 0 (like eps^-1/2).

    At b = 1e-12 tr: lower(b) = (1 + sqrt b)/sqrt b (1 + O(b)), and lam sqrt(b) is within 2/(lam t_min) of the
    limit (above); at b = 1e12 tr the excess bound above applies. Both are < 1e-4 here.
    """
    t = eigenvalues(sigma)
    total = np.sum(t)
    small, large = 1e-12 * total * t[0] / t[-1], 1e12 * total
    ratio = lambda b: robust_lambda(sigma, np.sqrt(b)) / paper_lambda_bound_shapes(b)[0]
    assert ratio(small) == pytest.approx(np.sqrt(np.sum(1 / t)), rel=1e-4)
    assert ratio(large) == pytest.approx(len(t), rel=1e-4)
    assert robust_lambda(sigma, np.sqrt(large)) / paper_lambda_bound_shapes(large)[1] <= 1e-4 * len(t)
    radius_reading = lambda e: robust_lambda(sigma, e) / paper_lambda_bound_shapes(e)[0]
    assert radius_reading(1e-4 * np.sqrt(small)) >= 10 * radius_reading(np.sqrt(small))  # ~100x over 1e4 in eps


# --- adversarial training reaches the closed form ------------------------------------------------

N_TRAIN = 2000


@st.composite
def training_sets(draw, max_dim: int = 8):
    """A sample of N_TRAIN points from a random model, and lam = 10^u / sigma_min(Sigma_hat), u in [-8, 3].

    d <= 8: each example runs a descent over the sample. u = -8 is a budget far beyond the data's scale
    (eps ~ 1e4 sqrt(sigma_min)), where the steps' Newton scaling 1 / (1 + h_i + h_k) is what converges.
    """
    sigma = draw(spd_matrices(1, max_dim))
    model = TwoGaussian(draw(means(len(sigma))), sigma)
    x, y = model.sample(N_TRAIN, draw(st.integers(0, 2**32 - 1)))
    return x, y, 10.0 ** draw(st.floats(-8.0, 3.0)) / eigenvalues(mle(x, y).sigma)[0]


def assert_recovers_closed_form(x, y, lam):
    sample = mle(x, y)
    closed_form = robust_covariance(sample.sigma, lam)
    fit = robust_mle(x, y, adversary="lagrangian", lam=lam)
    assert relative_frobenius(fit.model.sigma, closed_form) < 1e-6
    # mu_r = mean(y x) exactly (the mean of y delta* vanishes there); the descent moves mu and Sigma together
    # (Anderson steps mix them), so ask the same 1e-6, in Sigma_r's own metric.
    assert np.linalg.norm(np.linalg.solve(np.linalg.cholesky(closed_form), fit.model.mu - sample.mu)) < 1e-6


@given(training_sets())
def test_robust_mle_with_the_lagrangian_adversary_recovers_the_closed_form_at_the_sample(case):
    """robust_mle(x, y, adversary="lagrangian", lam) = (mle(x, y).mu, robust_covariance(mle(x, y).sigma, lam)):
    Theorem 2 applied to the empirical distribution, so there is no sampling error to allow for."""
    assert_recovers_closed_form(*case)


def test_robust_mle_with_the_lagrangian_adversary_recovers_the_closed_form_for_a_moderate_budget():
    """Regression: with lam sigma_min = 0.06 (eps = 0.56 sqrt(tr Sigma_hat)) robust_mle used to stop 1.3e-5 short."""
    x, y = random_instance(4, seed=1, condition=1e2).sample(N_TRAIN, 1)
    sigma_hat = mle(x, y).sigma
    assert_recovers_closed_form(x, y, robust_lambda(sigma_hat, 10**-0.25 * np.sqrt(np.trace(sigma_hat))))


def test_robust_mle_with_the_lagrangian_adversary_recovers_the_closed_form_for_a_huge_budget():
    x, y = random_instance(8, seed=0, condition=1e4).sample(N_TRAIN, 0)
    sigma_hat = mle(x, y).sigma
    assert_recovers_closed_form(x, y, robust_lambda(sigma_hat, 100 * np.sqrt(np.trace(sigma_hat))))


# The exact l2 problem bounds every ||delta_i||, the relaxed one only their mean square. In d dimensions
# ||(lam Sigma - I)^-1 v||^2 concentrates (relative spread ~ sqrt(2/d)), so the two optima nearly agree: measured
# ~2e-3 relative, ~1.3% of the robust shift Sigma_r - Sigma_hat. Fixed instances (each fit takes ~1 s at d = 64).
L2_INSTANCES = {  # name: (d, seed, eps^2 / tr(Sigma*))
    "d32-budget-2%": (32, 3, 0.02),
    "d64-budget-0.5%": (64, 4, 0.005),
}


@pytest.mark.parametrize("name", L2_INSTANCES)
def test_robust_mle_with_the_exact_l2_adversary_approximates_the_closed_form_in_high_dimension(name):
    """robust_mle(x, y, eps, adversary="l2") lands within 1e-2 (relative Frobenius) of Theorem 2's closed form at
    the sample covariance with lam = lam(eps), and keeps mu near mean(y x)."""
    d, seed, budget = L2_INSTANCES[name]
    model = random_instance(d, seed=seed, condition=10.0)
    n = 5000
    x, y = model.sample(n, seed)
    eps = float(np.sqrt(budget * np.trace(model.sigma)))
    sample = mle(x, y)
    closed_form = robust_covariance(sample.sigma, robust_lambda(sample.sigma, eps))
    fit = robust_mle(x, y, eps, adversary="l2")
    error = relative_frobenius(fit.model.sigma, closed_form)
    assert error < 1e-2
    assert error < 0.05 * relative_frobenius(sample.sigma, closed_form)  # not vacuous: the shift is ~10-20%
    # m - mu = mean(y delta_i), n perturbations of norm eps with zero mean: typically of size eps / sqrt(n).
    assert np.linalg.norm(fit.model.mu - sample.mu) <= eps / np.sqrt(n)


# --- the report -----------------------------------------------------------------------------------


def assert_report_passes(report):
    reports.assert_report_passes(report, "Theorem 2")


# d <= 8 (the report runs robust_mle); eps = 10^u sqrt(sigma_min), u in [-3, 1], keeps lam sigma_min >= ~1e-2; the
# huge budgets have their own test below. The Monte Carlo check runs at confidence 1 - 1e-9.
@given(spd_matrices(1, 8).flatmap(lambda s: st.tuples(st.just(s), means(len(s)), st.floats(-3.0, 1.0))))
def test_theorem2_report_passes_on_random_instances(case):
    """theorem2(...) confirms every claim on random instances."""
    sigma, mu, u = case
    eps = float(np.sqrt(eigenvalues(sigma)[0]) * 10.0**u)
    assert_report_passes(theorem2(sigma, eps, mu=mu, samples=2000, seed=5, confidence=1 - 1e-9))


def test_theorem2_report_passes_when_eps_far_exceeds_the_standard_deviations():
    sigma = random_instance(8, seed=0, condition=1e4).sigma
    assert_report_passes(theorem2(sigma, float(100 * np.sqrt(np.trace(sigma))), samples=2000, confidence=1 - 1e-9))

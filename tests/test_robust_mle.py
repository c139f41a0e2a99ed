"""robust_mle: adversarial training of (mu, Sigma) with the l2, Lagrangian and PGD adversaries.

The fixed point of the natural-gradient iteration is a model that is the MLE of its own
adversarial examples: mu = mean y (x + delta), Sigma = mean (x + delta - y mu)(...)^T with delta
the adversary's answer *for that model*. That is checked directly, by recomputing delta with the
public adversaries, independently of the fit's own bookkeeping.
"""

from __future__ import annotations

import numpy as np
import pytest

from gaussfeat import (
    GaussfeatError,
    l2_adversary,
    lagrangian_adversary,
    mle,
    random_instance,
    robust_covariance,
    robust_lambda,
    robust_mle,
)

TRUTH = random_instance(3, seed=1, condition=10.0)  # eigenvalues 0.31, 0.72, 1.97; |mu| = 1
X, Y = TRUTH.sample(400, seed=2)
STANDARD = mle(X, Y)
EPS = 0.3  # below the smallest standard deviation (0.55): no trust-region kinks at the optimum
N = len(X)

# The accepted-step rule of robust_mle: objective(new) <= objective(old) + 1e-13 |objective(old)|.
ACCEPT_RTOL = 1e-13


@pytest.fixture(scope="module")
def fits():
    return {
        "l2": robust_mle(X, Y, EPS, adversary="l2"),
        "lagrangian": robust_mle(X, Y, EPS, adversary="lagrangian"),
        "pgd": robust_mle(X, Y, EPS, adversary="pgd", pgd_steps=100),
    }


def objectives(fit):
    return np.array([step.objective for step in fit.trace])


@pytest.mark.parametrize("adversary", ["l2", "lagrangian", "pgd"])
def test_robust_mle_converges_and_records_its_run(fits, adversary):
    fit = fits[adversary]
    assert fit.converged
    assert fit.adversary == adversary
    assert fit.iterations == len(fit.trace) - 1 >= 1
    assert fit.trace[-1].stationarity <= 1e-9 < fit.trace[0].stationarity
    assert np.all(np.isfinite(objectives(fit)))


@pytest.mark.parametrize("adversary", ["l2", "lagrangian"])
def test_robust_mle_objective_never_increases_along_accepted_steps(fits, adversary):
    values = objectives(fits[adversary])
    assert np.all(values[1:] <= values[:-1] + ACCEPT_RTOL * np.abs(values[:-1]))
    assert values[-1] < values[0]


def test_robust_mle_line_search_keeps_the_objective_from_rising_when_full_steps_overshoot():
    """A budget far beyond the data's scale (eps = 20 next to standard deviations ~1) saturates every
    point's attack along the bottom eigenvector, where the Newton scaling of the steps is only
    approximate and full steps overshoot; accepted steps must still never raise the objective, and
    the fit must still reach its fixed point."""
    truth = random_instance(3, seed=0, condition=1.0)
    x, y = truth.sample(200, seed=0)
    fit = robust_mle(x, y, 20.0)
    assert min(step.step for step in fit.trace[1:]) < 1  # the line search was exercised
    values = objectives(fit)
    assert np.all(values[1:] <= values[:-1] + ACCEPT_RTOL * np.abs(values[:-1]))
    assert fit.converged


def test_robust_mle_with_the_lagrangian_adversary_converges_for_a_small_multiplier():
    """The Lagrangian adversary has no kinks, so the relaxed objective is smooth with a unique minimiser."""
    truth = random_instance(3, seed=0, condition=100.0)
    x, y = truth.sample(200, seed=0)
    fit = robust_mle(x, y, 2.0, adversary="lagrangian", max_iter=2000)
    expected = robust_covariance(mle(x, y).sigma, fit.lam)
    assert np.linalg.norm(fit.model.sigma - expected) <= 1e-6 * np.linalg.norm(expected)  # it is close...
    assert fit.converged  # ...but says it did not converge


@pytest.mark.parametrize("adversary", ["l2", "lagrangian", "pgd"])
def test_robust_mle_mean_stays_close_to_the_standard_mean(fits, adversary):
    """mu moves from mean(y x) by mean(y delta): perturbations of norm ~eps that are odd in the
    residual, so it averages out like a mean of n terms of size eps, ||shift|| ~ eps / sqrt(n) = 0.015.
    The Wald-style bound 4 eps / sqrt(n) is well below mu's own sampling error sqrt(tr Sigma / n) = 0.09."""
    shift = np.linalg.norm(fits[adversary].model.mu - STANDARD.mu)
    assert shift <= 4 * EPS / np.sqrt(N)


def test_robust_mle_with_the_lagrangian_adversary_keeps_the_sample_mean_exactly(fits):
    np.testing.assert_allclose(fits["lagrangian"].model.mu, STANDARD.mu, rtol=1e-9, atol=1e-12)


def test_robust_mle_with_the_lagrangian_adversary_reaches_theorem_2s_closed_form(fits):
    fit = fits["lagrangian"]
    assert fit.lam == pytest.approx(robust_lambda(STANDARD.sigma, EPS), rel=1e-12)
    expected = robust_covariance(STANDARD.sigma, fit.lam)
    assert np.linalg.norm(fit.model.sigma - expected) <= 1e-8 * np.linalg.norm(expected)


def test_robust_mle_with_a_given_multiplier_uses_it():
    lam = 8.0
    fit = robust_mle(X, Y, adversary="lagrangian", lam=lam)
    assert fit.converged and fit.lam == lam and fit.eps is None
    expected = robust_covariance(STANDARD.sigma, lam)
    assert np.linalg.norm(fit.model.sigma - expected) <= 1e-8 * np.linalg.norm(expected)


@pytest.mark.parametrize("adversary", ["l2", "lagrangian"])
def test_robust_fit_is_the_mle_of_its_own_adversarial_examples(fits, adversary):
    """Stationarity <= 1e-9 bounds ||Sigma^-1/2 (M - Sigma) Sigma^-1/2||_F, so M matches Sigma to ~1e-9."""
    fit = fits[adversary]
    model = fit.model
    delta = l2_adversary(model, X, Y, EPS) if adversary == "l2" else lagrangian_adversary(model, X, Y, fit.lam)
    attacked = X + delta
    np.testing.assert_allclose(model.mu, Y @ attacked / N, rtol=1e-8, atol=1e-10)
    residual = attacked - Y[:, None] * model.mu
    np.testing.assert_allclose(model.sigma, residual.T @ residual / N, rtol=1e-8, atol=1e-10)


def test_robust_fit_inflates_the_covariance(fits):
    """Every adversary pushes residuals outward, so the fitted covariance exceeds the standard one."""
    for fit in fits.values():
        assert np.linalg.eigvalsh(fit.model.sigma - STANDARD.sigma)[0] > 0


def test_robust_fit_has_lower_robust_nll_than_the_standard_mle(fits):
    """The robust objective (mean NLL at the exact l2 adversary) is lower at the l2 fit than at the start."""
    fit = fits["l2"]

    def robust_objective(model):
        return np.mean(model.nll(X + l2_adversary(model, X, Y, EPS), Y))

    assert robust_objective(fit.model) < robust_objective(STANDARD)
    assert robust_objective(fit.model) == pytest.approx(fit.trace[-1].objective, rel=1e-10)
    assert robust_objective(STANDARD) == pytest.approx(fit.trace[0].objective, rel=1e-10)


def test_robust_mle_at_zero_radius_is_the_standard_mle():
    fit = robust_mle(X, Y, 0.0, adversary="l2")
    assert fit.converged and fit.iterations == 0
    np.testing.assert_allclose(fit.model.mu, STANDARD.mu, rtol=1e-14)
    np.testing.assert_allclose(fit.model.sigma, STANDARD.sigma, rtol=1e-14)


def test_robust_mle_with_pgd_lands_near_the_exact_l2_fit(fits):
    """PGD with its default step size 2.5 eps / steps falls short of the exact inner max by ~1e-3
    (relative, on average; see test_adversary), so its fit sits ~3e-3 from the exact one; 1e-2 allows for that."""
    exact, approx = fits["l2"].model, fits["pgd"].model
    assert np.linalg.norm(approx.sigma - exact.sigma) <= 1e-2 * np.linalg.norm(exact.sigma)
    assert np.linalg.norm(approx.mu - exact.mu) <= 1e-2 * np.linalg.norm(exact.mu)
    # yet it is not the same fit: the test would notice if "pgd" silently ran the exact adversary
    assert np.linalg.norm(approx.sigma - exact.sigma) > 1e-6 * np.linalg.norm(exact.sigma)


@pytest.mark.parametrize("adversary", ["l2", "lagrangian"])
def test_robust_mle_from_the_closed_form_reaches_the_same_fixed_point(fits, adversary):
    """start="closed-form" begins at Theorem 2's Sigma_r(lam(eps)) of the sample: for the Lagrangian
    adversary already the optimum (no step needed), for the exact l2 one a start that converges to the
    fixed point the MLE start reaches."""
    warm = robust_mle(X, Y, EPS, adversary=adversary, start="closed-form")
    assert warm.converged
    np.testing.assert_allclose(warm.model.sigma, fits[adversary].model.sigma, rtol=0, atol=1e-7)
    np.testing.assert_allclose(warm.model.mu, fits[adversary].model.mu, rtol=0, atol=1e-7)
    if adversary == "lagrangian":
        assert warm.iterations == 0
    else:
        assert warm.trace[0].stationarity < fits[adversary].trace[0].stationarity


def test_robust_mle_tells_its_callback_of_each_accepted_step():
    heard = []
    fit = robust_mle(X, Y, EPS, callback=heard.append)
    assert heard == list(fit.trace[1:]) and len(heard) == fit.iterations > 0


def test_robust_mle_larger_radius_inflates_more():
    small = robust_mle(X, Y, 0.1, adversary="l2").model.sigma
    large = robust_mle(X, Y, 0.25, adversary="l2").model.sigma
    assert np.linalg.eigvalsh(large - small)[0] > 0


BAD_ARGUMENTS = [
    (dict(eps=0.3, adversary="fgsm"), "'fgsm'"),
    (dict(eps=0.3, adversary="L2"), "'L2'"),
    (dict(eps=0.3, lam=2.5, adversary="lagrangian"), "lam=2.5"),
    (dict(adversary="lagrangian"), "eps=None, lam=None"),
    (dict(eps=0.3, lam=2.5, adversary="l2"), "lam=2.5"),
    (dict(eps=0.3, lam=2.5, adversary="pgd"), "lam=2.5"),
    (dict(adversary="l2"), "'l2'"),
    (dict(adversary="pgd"), "'pgd'"),
    (dict(eps=-0.25, adversary="l2"), "-0.25"),
    (dict(eps=-0.25, adversary="lagrangian"), "-0.25"),
    (dict(lam=-3.5, adversary="lagrangian"), "-3.5"),
    (dict(eps=0.3, adversary="pgd", pgd_steps=0), "pgd_steps"),
    (dict(eps=0.3, max_iter=0), "max_iter"),
    (dict(eps=0.3, tol=-1e-3), "-0.001"),
    (dict(eps=0.3, start="standard"), "'standard'"),
]


@pytest.mark.parametrize(("kwargs", "named"), BAD_ARGUMENTS, ids=[str(k) for k, _ in BAD_ARGUMENTS])
def test_robust_mle_rejects_bad_arguments_naming_the_value(kwargs, named):
    with pytest.raises(GaussfeatError) as error:
        robust_mle(X, Y, **kwargs)
    assert named in str(error.value)

"""The theorem battery catches planted errors: each test plants one plausible mistake and checks that the
report of the theorem concerned fails, and on which checks.

Mistakes are planted with pytest's monkeypatch where the code under test looks them up: theorems.py imports
misalignment_gap, lagrangian_adversary, robust_covariance, robust_lambda and worst_case_alignment into its own
namespace (so those are patched as gaussfeat.theorems.<name>), while robust_covariance, relaxed_budget and
robust_lambda call robust_eigenvalues through gaussfeat.robust's globals. Each mistake is written from the
correct function, so it differs from it by exactly the error named.

The unmutated battery passes on the same instance (first test), so no mutation test can pass vacuously.
"""

from __future__ import annotations


import numpy as np
import pytest

import gaussfeat.robust
import gaussfeat.theorems
from gaussfeat import (
    GaussfeatError,
    TwoGaussian,
    misalignment_gap,
    penalized_gap,
    random_instance,
    relaxed_objective,
    robust_covariance,
    robust_eigenvalues,
    robust_lambda,
    theorem1,
    theorem2,
    theorem3,
    worst_case_alignment,
)
from gaussfeat.linalg import spectral_map

INSTANCE = random_instance(4, seed=1, condition=10.0)  # eigenvalues spread over a factor 10, |mu| = 1
SIGMA, MU = INSTANCE.sigma, INSTANCE.mu
SIGMA_MIN = float(np.linalg.eigvalsh(SIGMA)[0])
C = 4 / SIGMA_MIN  # C/2 is admissible too, so the "C instead of C/2" adversary is bounded and merely wrong
EPS = 0.3  # below the smallest standard deviation (0.50): lam sigma_min = 1.7, where robust_mle converges
CONFIDENCE = 1 - 1e-6  # Monte Carlo checks: a planted error must be caught even by a wide interval


def report1():
    return theorem1(SIGMA, C, mu=MU, samples=20_000, seed=3, confidence=CONFIDENCE)


def report2():
    return theorem2(SIGMA, EPS, mu=MU, samples=2000, seed=3, confidence=CONFIDENCE)


def report3():
    return theorem3(SIGMA, EPS, mu=MU, seed=3)


def assert_caught(report, *fragments: str):
    """The report fails, and its failed checks are exactly those whose claims contain the given fragments."""
    failed = [check.claim for check in report.checks if not check.passed]
    assert not report.passed
    for fragment in fragments:
        assert any(fragment in claim for claim in failed), f"{fragment!r} not among the failed checks {failed}"
    for claim in failed:
        assert any(fragment in claim for fragment in fragments), f"unexpected failure: {claim!r}"


@pytest.mark.parametrize("report", [report1, report2, report3], ids=["theorem1", "theorem2", "theorem3"])
def test_unmutated_battery_passes_on_the_mutation_instance(report):
    result = report()
    assert result.passed, [check.claim for check in result.checks if not check.passed]


# --- (a) the 1/2 of the NLL ---------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.5, 2.0], ids=["gap-from-the-half-nll", "gap-doubled-again"])
def test_gap_off_by_the_nlls_factor_two_is_caught(monkeypatch, factor):
    """misalignment_gap returning E[l(x + delta*) - l(x)] (the 1/2-NLL increase, not twice it), or twice the gap."""
    monkeypatch.setattr(gaussfeat.theorems, "misalignment_gap", lambda s, c: factor * misalignment_gap(s, c))
    assert_caught(
        report1(),
        "the paper's gap equals twice the exact expected NLL increase",
        "Monte Carlo: 2 x mean NLL increase at delta* matches the paper's gap",
        "minimising the gap over spectra of equal trace finds the isotropic one",
    )


def test_penalized_gap_from_the_half_nll_is_caught(monkeypatch):
    """penalized_gap returning the adversary's value 1/2 tr[(C Sigma* - I)^-1] instead of twice it."""
    monkeypatch.setattr(gaussfeat.theorems, "penalized_gap", lambda s, c: penalized_gap(s, c) / 2)
    assert_caught(
        report1(),
        "tr[(C Sigma* - I)^-1] equals twice the exact expected penalised gain",
        "Monte Carlo: 2 x mean penalised gain matches tr[(C Sigma* - I)^-1]",
    )


def test_lagrangian_adversary_with_a_C_ball_instead_of_C_over_2_is_caught(monkeypatch):
    """delta = (C/2 Sigma - I)^-1 v: the maximiser for a penalty (C/4)||delta||^2, a misread of the 1/2."""

    def halved_penalty(model, x, y, C):
        v = x - y[:, None] * model.mu
        return np.linalg.solve(C / 2 * model.sigma - np.eye(model.dim), v.T).T

    monkeypatch.setattr(gaussfeat.theorems, "lagrangian_adversary", halved_penalty)
    assert_caught(
        report1(),
        "Monte Carlo: 2 x mean NLL increase at delta* matches the paper's gap",
        "Monte Carlo: 2 x mean penalised gain matches tr[(C Sigma* - I)^-1]",
    )


def test_nll_without_the_half_is_caught(monkeypatch):
    """TwoGaussian's NLL without the 1/2 (the paper's Appendix E form), with the gap formula left as is."""
    nll = TwoGaussian._nll
    monkeypatch.setattr(TwoGaussian, "_nll", lambda self, residual: 2 * nll(self, residual))
    assert_caught(report1(), "Monte Carlo: 2 x mean NLL increase at delta* matches the paper's gap",
                  "Monte Carlo: 2 x mean penalised gain matches tr[(C Sigma* - I)^-1]")


# --- (b) the wrong root of Theorem 2's quadratic ------------------------------------------------


def smaller_root(sigma_star, lam):
    """s = t/2 + 1/lam - sqrt(t/lam + t^2/4): the other root of (lam s - 1)^2 = lam^2 s t."""
    return spectral_map(sigma_star, lambda t: t / 2 + 1 / lam - np.sqrt(t / lam + t**2 / 4))


def test_wrong_root_of_theorem2_is_caught(monkeypatch):
    """With the smaller root lam Sigma_r < I, where the relaxed adversary is unbounded: the report cannot even
    attack its own Sigma_r, and refuses, naming lam (the Lagrangian adversary's C). Both roots satisfy the
    first-order condition, so it is not the stationarity check that tells them apart."""
    monkeypatch.setattr(gaussfeat.theorems, "robust_covariance", smaller_root)
    lam = robust_lambda(SIGMA, EPS)
    with pytest.raises(GaussfeatError, match="must exceed 1/sigma_min") as error:
        report2()
    assert f"{lam:.6g}" in str(error.value)


def test_wrong_root_fails_the_closed_form_properties():
    """The same mistake, against the properties test_theorem2 checks: the smaller root lies below Sigma*, outside
    the relaxed objective's domain (F = +inf there, finite at the right root)."""
    lam = robust_lambda(SIGMA, EPS)
    wrong = smaller_root(SIGMA, lam)
    assert np.linalg.eigvalsh(wrong - SIGMA)[0] < 0
    assert relaxed_objective(wrong, SIGMA, lam) == np.inf > relaxed_objective(robust_covariance(SIGMA, lam), SIGMA, lam)


# --- (c) eps squared versus plain -------------------------------------------------------------


def test_lambda_solving_the_budget_for_eps_instead_of_eps_squared_is_caught(monkeypatch):
    """robust_lambda solving relaxed_budget = eps (a squared-norm budget) where eps is an l2 radius."""
    monkeypatch.setattr(gaussfeat.theorems, "robust_lambda", lambda s, e: robust_lambda(s, np.sqrt(e)))
    assert_caught(
        report2(),
        "eps^2 = E||delta*||^2 = tr[Sigma* (lam Sigma_r - I)^-2] at lam(eps)",
        "Monte Carlo: mean ||delta*||^2 at Sigma_r matches eps^2",
        "with a squared budget b = eps^2, lam / lower-shape(b) -> sqrt(tr Sigma*^-1) as b -> 0",
        "with a squared budget, lam / lower-shape(b) -> d as b -> infinity",
        "reading eps as a radius instead, lam / lower-shape(eps) is unbounded",
    )


# --- (d) the Kantorovich constant ---------------------------------------------------------------


def test_kantorovich_bound_with_a_wrong_constant_is_caught(monkeypatch):
    """sqrt(k)/(1 + k) instead of 2 sqrt(k)/(1 + k). The comparisons robust vs standard survive (both halve);
    the numerical minimisation does not."""
    monkeypatch.setattr(gaussfeat.theorems, "worst_case_alignment", lambda s: worst_case_alignment(s) / 2)
    assert_caught(
        report3(),
        "numerical min over mu of cos(mu, Sigma*^-1 mu) equals 2 sqrt(k)/(1+k)",
        "numerical min over mu of cos(mu, Sigma_r^-1 mu) equals 2 sqrt(k_r)/(1+k_r)",
    )


# --- (e) 1/(2 lam) for 1/lam in Theorem 2 -------------------------------------------------------


def test_theorem2_with_identity_over_two_lam_is_caught(monkeypatch):
    """s = t/2 + 1/(2 lam) + sqrt(t/lam + t^2/4), planted in robust_eigenvalues, so robust_covariance,
    relaxed_budget and robust_lambda all use it (lam stays consistent with the wrong Sigma_r's own budget)."""
    monkeypatch.setattr(
        gaussfeat.robust, "robust_eigenvalues", lambda t, lam: robust_eigenvalues(t, lam) - 1 / (2 * lam)
    )
    assert_caught(
        report2(),
        "Sigma_r is a stationary point of the relaxed objective",
        "eps^2 = E||delta*||^2 = tr[Sigma* (lam Sigma_r - I)^-2] at lam(eps)",
        "E||delta*||^2 = tr(Sigma_r^-1) / lam^2 (stationarity identity)",
        "Monte Carlo: mean ||delta*||^2 at Sigma_r matches eps^2",
        "subgradient descent with the Lagrangian adversary recovers Sigma_r of the sample",
        "with a squared budget, lam / lower-shape(b) -> d as b -> infinity",
    )

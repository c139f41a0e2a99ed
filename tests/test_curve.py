"""gaussfeat.curve.eps_curve: theory's numbers across eps for a model fitted to a sample.

Specified by what must hold whatever the sample: the eps = 0 row is the standard MLE's classifier;
translating every point (train and test) changes nothing (the curve centres the data); the exact
robust MLE's numbers are those of its own fitted model; and the result is a function of the data.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gaussfeat import GaussfeatError, mle, random_instance
from gaussfeat.curve import eps_curve
from gaussfeat.linear import centre, summary
from gaussfeat.metrics import shrinkage_covariance

EPS = [0.0, 0.2, 0.8]


def sample(seed: int, dim: int = 6):
    truth = random_instance(dim, seed, condition=50.0)
    x, y = truth.sample(1500, seed + 1)
    x_test, y_test = truth.sample(1000, seed + 2)
    return x, y, x_test, y_test


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 1000), st.lists(st.floats(-3, 3), min_size=6, max_size=6))
def test_the_curve_does_not_depend_on_where_the_data_sit(seed, shift):
    """eps_curve centres the sample at the midpoint of its class means: translating train and test
    points alike leaves every number (but the midpoint's norm) unchanged."""
    x, y, x_test, y_test = sample(seed)
    here, there = (eps_curve(x + s, y, x_test + s, y_test, EPS, exact=False) for s in (0.0, np.array(shift)))
    for a, b in zip(here["rows"], there["rows"]):
        for key, value in a["closed_form"].items():
            assert b["closed_form"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_the_eps_zero_row_is_the_standard_mle_classifier():
    x, y, x_test, y_test = sample(3)
    curve = eps_curve(x, y, x_test, y_test, [0.0])
    standard = mle(centre(x, y)[0], y)
    row = curve["rows"][0]
    assert "exact" not in row and row["lam"] == np.inf
    assert row["closed_form"]["accuracy"] == pytest.approx(standard.accuracy(), rel=1e-12)
    assert row["closed_form"]["robust_accuracy"] == row["closed_form"]["accuracy"]


def test_exact_rows_report_a_converged_robust_mle_near_the_closed_form():
    """The exact robust MLE converges here (d = 6), stays within a few percent of Theorem 2's relaxation in
    the Fisher metric, and is more robust at its eps than the standard classifier."""
    x, y, x_test, y_test = sample(5)
    standard = mle(centre(x, y)[0], y)
    for row in eps_curve(x, y, x_test, y_test, EPS, tol=1e-8)["rows"][1:]:
        exact = row["exact"]
        assert exact["converged"] and exact["stationarity"] <= 1e-8
        assert exact["fisher_distance_to_closed_form"] < 0.05
        assert exact["robust_accuracy"] > summary(standard.weights, standard, row["eps"]).robust_accuracy


def test_the_evaluation_radius_scores_every_classifier_at_one_common_eps():
    x, y, x_test, y_test = sample(9)
    at_zero = eps_curve(x, y, x_test, y_test, EPS, evaluation_eps=0.0)["rows"]
    at_own = {row["eps"]: eps_curve(x, y, x_test, y_test, EPS, evaluation_eps=row["eps"])["rows"][i]
              for i, row in enumerate(at_zero)}
    for row in at_zero:
        for kind in ("closed_form", "exact"):
            if kind in row:
                numbers = row[kind]
                assert numbers["test_robust_accuracy_at_evaluation_eps"] == numbers["test_accuracy"]
                own = at_own[row["eps"]][kind]
                assert own["test_robust_accuracy_at_evaluation_eps"] == own["test_robust_accuracy"]


def test_the_curve_is_a_function_of_the_data_and_is_json():
    x, y, x_test, y_test = sample(7)
    first, second = (eps_curve(x, y, x_test, y_test, EPS) for _ in range(2))
    for row in first["rows"]:
        row.get("exact", {}).pop("seconds", None)
    for row in second["rows"]:
        row.get("exact", {}).pop("seconds", None)
    assert first == second
    json.dumps(first)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"eps": []}, "at least one"),
        ({"eps": [0.5, -1.0]}, "-1.0"),
        ({"x_test": np.ones((4, 5))}, "6 columns"),
        ({"y_test": np.ones(3)}, "(3,)"),
    ],
)
def test_bad_input_is_refused_naming_it(change, named):
    x, y, x_test, y_test = sample(1)
    arguments = {"x": x, "y": y, "x_test": x_test, "y_test": y_test, "eps": EPS} | change
    if "x_test" in change:
        arguments["y_test"] = np.ones(4)
    with pytest.raises(GaussfeatError, match=named.replace("(", r"\(").replace(")", r"\)")):
        eps_curve(**arguments)


def test_few_points_for_the_dimension_fit_sigma_by_ledoit_wolf_shrinkage():
    """n <= d: the sample covariance is singular, so the curve fits Sigma by Ledoit-Wolf shrinkage of the points
    y x (whose covariance is the MLE's) and says so; the exact robust MLE, which needs n > d, is refused."""
    truth = random_instance(40, 3, condition=50.0)
    x, y = truth.sample(30, 4)
    x_test, y_test = truth.sample(200, 5)
    curve = eps_curve(x, y, x_test, y_test, EPS, exact=False)
    assert curve["fit"]["covariance"] == "ledoit-wolf" and 0 < curve["fit"]["shrinkage"] <= 1
    centred = centre(x, y)[0]
    expected = shrinkage_covariance(y[:, None] * centred)[0]
    assert curve["fit"]["trace"] == pytest.approx(np.trace(expected), rel=1e-12)
    assert curve["fit"]["eigenvalue_range"][0] == pytest.approx(np.linalg.eigvalsh(expected)[0], rel=1e-9)
    with pytest.raises(GaussfeatError, match="n = 30 <= d = 40"):
        eps_curve(x, y, x_test, y_test, EPS)


def test_shrinkage_can_be_asked_for_with_enough_points_and_changes_only_the_fit():
    x, y, x_test, y_test = sample(2)
    plain = eps_curve(x, y, x_test, y_test, EPS, exact=False)
    shrunk = eps_curve(x, y, x_test, y_test, EPS, exact=False, shrinkage=True)
    assert plain["fit"]["covariance"] == "sample" and plain["fit"]["shrinkage"] == 0.0
    assert shrunk["fit"]["covariance"] == "ledoit-wolf" and shrunk["fit"]["mu_norm"] == plain["fit"]["mu_norm"]
    assert shrunk["fit"]["eigenvalue_range"][0] > plain["fit"]["eigenvalue_range"][0]  # pulled toward the mean

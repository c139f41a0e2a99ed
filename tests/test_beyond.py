"""``gaussfeat beyond``: the Gaussian learner on non-Gaussian data, the measurement, and its command.

Proved and checked: the relaxed robust objective of the Gaussian learner sees the data only through mean(y x) and
the sample covariance, so on any data (here Student-t) its optimum is Theorem 2's closed form of the sample
covariance, the mean does not move, and the alignment cos(mu, Sigma^-1 mu) never falls as eps grows. The exact
adversary's trends are measured, not asserted: the tests check that the record holds every number and verdict.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gaussfeat import (
    GaussfeatError,
    gradient_alignment,
    mle,
    robust_covariance,
    robust_lambda,
    robust_mle,
)
from gaussfeat.beyond import (
    BeyondConfig,
    _verdict,
    markdown,
    run_beyond,
    student_t_sample,
)
from gaussfeat.cli import main

SMALL = dict(dim=3, low_dim=2, classes=3, samples=240, eps=(0.0, 0.2, 0.6), seed=1)


@given(st.integers(1, 8), st.integers(0, 2**16), st.floats(2.5, 30.0), st.floats(-2.0, 0.3), st.floats(-2.0, 0.3))
def test_relaxed_robust_mle_on_student_t_data_is_theorem_2s_closed_form_and_its_alignment_never_falls(d, seed, dof, u1, u2):
    """Heavy-tailed data, Gaussian learner, Lagrangian adversary: Sigma = robust_covariance(S, lam(eps)) with S
    the sample covariance, mu = mean(y x) at every eps, and cos(mu, Sigma^-1 mu) non-decreasing in eps."""
    _, x, y = student_t_sample(d, 40 * d + 40, seed, condition=30.0, dof=dof)
    standard = mle(x, y)
    scale = np.sqrt(np.trace(standard.sigma))
    alignments = [gradient_alignment(standard.mu, standard.sigma)]
    for eps in sorted([10**u1 * scale, 10**u2 * scale]):
        fit = robust_mle(x, y, eps, adversary="lagrangian", max_iter=3000)
        expected = robust_covariance(standard.sigma, robust_lambda(standard.sigma, eps))
        assert np.linalg.norm(fit.model.sigma - expected) <= 1e-6 * np.linalg.norm(expected)
        np.testing.assert_allclose(fit.model.mu, standard.mu, rtol=1e-9, atol=1e-12)
        alignments.append(gradient_alignment(fit.model.mu, expected))
    assert alignments[0] <= alignments[1] + 1e-12 and alignments[1] <= alignments[2] + 1e-12


def test_student_t_sample_has_the_stated_covariance_and_heavy_tails():
    truth, x, y = student_t_sample(2, 200_000, 3, condition=10.0, dof=5.0)
    noise = x - y[:, None] * truth.mu
    np.testing.assert_allclose(noise.T @ noise / len(x), truth.sigma, atol=0.03)
    whitened = noise @ np.linalg.inv(np.linalg.cholesky(truth.sigma)).T
    kurtosis = np.mean(whitened[:, 0] ** 4) / np.mean(whitened[:, 0] ** 2) ** 2
    assert kurtosis > 4  # 9 for dof 5 (3 for a Gaussian)


@pytest.fixture(scope="module")
def small_result():
    return run_beyond(BeyondConfig(**SMALL))


def test_run_beyond_records_every_model_adversary_and_radius(small_result):
    rows = small_result["rows"]
    names = [(row["model"], row["adversary"]) for row in rows]
    assert names == [("mixture k=3, d=3", "lagrangian"), ("mixture k=3, d=3", "l2"),
                     ("mixture k=3, d=2", "lagrangian"), ("mixture k=3, d=2", "l2"),
                     ("student-t (dof 5), Gaussian learner", "lagrangian"), ("student-t (dof 5), Gaussian learner", "l2"),
                     ("laplace", "l2 (= relaxed)"), ("laplace-aligned", "l2 (= relaxed)")]
    for row in rows:
        assert [r["eps"] for r in row["records"]] == list(SMALL["eps"])
        assert all(np.isfinite(r["spread"]) and -1 <= r["alignment"] <= 1 for r in row["records"])
        assert set(row["verdict"]) >= {"spread_falls", "alignment_rises"}
    assert small_result["config"]["seed"] == 1 and small_result["versions"]["numpy"] == np.__version__


def test_relaxed_rows_hold_their_proved_trends_and_laplace_fits_are_the_closed_form(small_result):
    for row in small_result["rows"]:
        if row["adversary"] == "lagrangian":
            assert row["verdict"]["spread_falls"]["held"] and row["verdict"]["alignment_rises"]["held"]
        if row["model"].startswith("mixture") and row["adversary"] == "lagrangian":
            assert row["verdict"]["pairs_rising"] == row["verdict"]["pairs"] == 3
            assert all(r["basis_drift"] < 1e-8 for r in row["records"])
        if row["model"].startswith("laplace"):
            assert row["verdict"]["spread_falls"]["held"]
            assert all(r["closed_form_gap"] < 1e-9 for r in row["records"])
            assert [r["distance_from_standard"] for r in row["records"]] == pytest.approx(list(SMALL["eps"]), rel=1e-9, abs=1e-12)
    aligned = next(row for row in small_result["rows"] if row["model"] == "laplace-aligned")
    assert not aligned["verdict"]["alignment_rises"]["held"]


def test_run_beyond_is_deterministic_given_the_seed(small_result):
    again = run_beyond(BeyondConfig(**SMALL))

    def numbers(result):
        return [{k: v for k, v in r.items() if k != "seconds"} for row in result["rows"] for r in row["records"]]

    assert numbers(again) == numbers(small_result)
    other = run_beyond(BeyondConfig(**{**SMALL, "seed": 2, "low_dim": 0}))
    assert numbers(other)[0]["spread"] != numbers(small_result)[0]["spread"]


def test_verdict_names_the_radii_where_a_trend_failed():
    row = {"records": [{"eps": 0.0, "spread": 5.0, "alignment": 0.5}, {"eps": 0.5, "spread": 4.0, "alignment": 0.4},
                       {"eps": 1.0, "spread": 4.0, "alignment": 0.6}]}
    verdict = _verdict(row)
    assert verdict["spread_falls"] == {"held": False, "failed_at_eps": [1.0]}
    assert verdict["alignment_rises"] == {"held": False, "failed_at_eps": [0.5]}


def test_markdown_has_one_line_per_quantity_and_says_whether_each_trend_held(small_result):
    text = markdown(small_result)
    assert "| model | adversary | quantity | eps=0 | eps=0.2 | eps=0.6 | trend held | claim |" in text
    assert text.count("| laplace-aligned |") == 2 and "rises: NO (at eps=" in text
    assert text.count("| mixture k=3, d=3 | lagrangian |") == 4  # cond, mean, min, pairs


def test_beyond_command_writes_the_json_and_the_table(tmp_path, capsys):
    args = ["beyond", "--dim", "3", "--low-dim", "0", "--classes", "3", "--samples", "200", "--eps", "0", "0.3",
            "--seed", "4", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "beyond.json").read_text())
    table = (tmp_path / "out" / "beyond.md").read_text()
    assert record["config"] == {**BeyondConfig().__dict__, "dim": 3, "low_dim": 0, "classes": 3, "samples": 200,
                                "eps": [0.0, 0.3], "seed": 4}
    assert len(record["rows"]) == 6 and record["seconds"] > 0
    assert table in out and "wrote" in out
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["seed"] == 4


@pytest.mark.parametrize(("args", "named"), [
    (["--eps", "0.5", "0.1"], "[0.5, 0.1]"),
    (["--eps", "-0.5", "0.1"], "-0.5"),
    (["--dof", "1.5"], "1.5"),
    (["--samples", "10"], "samples"),
])
def test_beyond_command_rejects_bad_settings_with_exit_status_2(tmp_path, capsys, args, named):
    assert main(["beyond", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not (tmp_path / "beyond.json").exists()


def test_beyond_config_rejects_bad_values_naming_them():
    with pytest.raises(GaussfeatError, match="-1"):
        BeyondConfig(low_dim=-1)

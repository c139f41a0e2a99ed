"""gaussfeat figures: every file is written, and the data behind each figure shows what it illustrates.

The command runs once with its defaults (what the committed copies in figures/ were made with);
the properties are then read off the JSON it wrote, not off pixels.
"""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import gaussfeat as gf  # noqa: E402
from gaussfeat.cli import main  # noqa: E402
from gaussfeat.figures import DATA, FIGURES, data, make_figures  # noqa: E402

COMMITTED = Path(__file__).resolve().parents[1] / "figures"


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    assert main(["figures", "--out", str(out)]) == 0
    return out


def figure_data(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())["data"]


def test_the_command_writes_png_pdf_and_json_for_every_figure(drawn):
    for name in FIGURES:
        assert (drawn / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (drawn / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        record = json.loads((drawn / f"{name}.json").read_text())
        assert record["figure"] == name and record["seed"] == 0
        assert set(record["data"]) == set(FIGURES[name].sources)
        assert {"gaussfeat", "numpy", "matplotlib"} <= set(record["versions"])


# --- Figure 4: the mean stays, the covariance blends with I, the gradient turns toward mu* ---


def test_figure4_closed_form_keeps_mu_star_and_fit_stays_near_it(drawn):
    blending = figure_data(drawn, "figure4_blending")["blending"]
    mu_star = np.array(blending["instance"]["mu"])
    for panel in blending["panels"]:
        np.testing.assert_array_equal(panel["closed_form"]["mu"], mu_star)
        assert np.linalg.norm(np.array(panel["fit"]["mu"]) - mu_star) < 0.05  # sampling error at n = 4000


def test_figure4_gradient_turns_toward_mu_as_eps_grows(drawn):
    panels = figure_data(drawn, "figure4_blending")["blending"]["panels"]
    for model in ("closed_form", "fit"):
        angles = [panel[model]["angle_degrees"] for panel in panels]
        assert np.all(np.diff(angles) < 0), angles
    assert panels[0]["closed_form"]["angle_degrees"] > 70 and panels[-1]["closed_form"]["angle_degrees"] < 20


def test_figure4_covariance_blends_with_identity(drawn):
    panels = figure_data(drawn, "figure4_blending")["blending"]["panels"]
    conditions = [panel["closed_form"]["condition"] for panel in panels]
    assert np.all(np.diff(conditions) < 0) and conditions[0] == pytest.approx(100)
    standard = np.array(panels[0]["closed_form"]["eigenvalues"])
    for panel in panels[1:]:
        assert np.all(np.array(panel["closed_form"]["eigenvalues"]) > standard)


def test_figure4_adversarial_training_lands_near_the_closed_form(drawn):
    # at d = 2 the relaxation's gap plus sampling error stays within a few percent (Frobenius)
    for panel in figure_data(drawn, "figure4_blending")["blending"]["panels"]:
        assert panel["fit_vs_closed_form"] < 0.05, panel["eps"]


# --- Theorem 1: the gap is smallest at isotropy ---


def test_theorem1_gap_grows_with_anisotropy_from_its_isotropic_minimum(drawn):
    misalignment = figure_data(drawn, "theorem1_misalignment")["misalignment"]
    for key in ("gap", "penalized"):
        for family in misalignment["families"]:
            curve = np.array(family[key])
            assert curve[0] == pytest.approx(misalignment["isotropic"][key], rel=1e-12)
            assert np.all(np.diff(curve) > 0)


def test_theorem1_random_spectra_of_equal_trace_lie_above_isotropic(drawn):
    misalignment = figure_data(drawn, "theorem1_misalignment")["misalignment"]
    scatter = np.array(misalignment["random"]["condition_gap_penalized"])
    assert np.all(scatter[:, 1] >= misalignment["isotropic"]["gap"] * (1 - 1e-12))
    assert np.all(scatter[:, 2] >= misalignment["isotropic"]["penalized"] * (1 - 1e-12))
    assert scatter[:, 0].min() < 2 and scatter[:, 0].max() > 20  # the scatter spans the axis


def test_theorem1_monte_carlo_points_sit_on_the_closed_form(drawn):
    misalignment = figure_data(drawn, "theorem1_misalignment")["misalignment"]
    C = misalignment["C"]
    for family in misalignment["families"]:
        d = family["dim"]
        for point in family["monte_carlo"]:
            sigma = np.diag(data.geometric_spectrum(d, point["condition"], d))
            for key, exact in (("gap", gf.misalignment_gap(sigma, C) / d), ("penalized", gf.penalized_gap(sigma, C) / d)):
                mean, standard_error = point[key]
                assert abs(mean - exact) < 4.5 * standard_error, (d, point["condition"], key)


# --- Theorem 2: eigenvalues rise, the condition number falls, the relaxation tightens with d ---


def test_theorem2_each_eigenvalue_follows_the_closed_form_map_and_rises_with_eps(drawn):
    spectrum = figure_data(drawn, "theorem2_robust_covariance")["robust_spectrum"]
    t = np.array(spectrum["standard"]["eigenvalues"])
    rows = spectrum["closed_form"]
    for row in rows:  # sorted eigenvalues of Sigma_r are s(sorted t): the map keeps the order
        np.testing.assert_allclose(row["eigenvalues"], gf.robust_eigenvalues(t, row["lam"]), rtol=1e-10)
    growth = np.array([row["eigenvalues"] for row in rows]) - t
    assert np.all(np.diff(growth, axis=0) > 0)  # so Sigma_r -> Sigma* as eps -> 0, at the rate below
    lam = np.array([row["lam"] for row in rows])[:, None]
    assert np.all((growth > 0) & (growth <= 1 / lam + np.sqrt(t / lam)))


def test_theorem2_condition_number_falls_toward_one(drawn):
    spectrum = figure_data(drawn, "theorem2_robust_covariance")["robust_spectrum"]
    conditions = np.array([row["condition"] for row in spectrum["closed_form"]])
    assert np.all(np.diff(conditions) < 0)
    assert conditions[0] < spectrum["standard"]["condition"] and conditions[-1] < 2


def test_theorem2_adversarial_training_matches_the_closed_form_spectrum(drawn):
    spectrum = figure_data(drawn, "theorem2_robust_covariance")["robust_spectrum"]
    truth = gf.random_instance(spectrum["dim"], spectrum["seed"], condition=spectrum["condition"])
    for fit in spectrum["fits"]:
        closed = gf.robust_eigenvalues(truth.eigenvalues, gf.robust_lambda(truth.sigma, fit["eps"]))
        np.testing.assert_allclose(fit["eigenvalues"], closed, rtol=0.1, err_msg=f"eps={fit['eps']}")


def test_theorem2_relaxation_gap_is_small_and_shrinks_with_dimension(drawn):
    gap = figure_data(drawn, "theorem2_robust_covariance")["relaxation_gap"]
    dims = sorted({cell["dim"] for cell in gap["cells"]})
    for budget in {cell["budget"] for cell in gap["cells"]}:
        mean = {cell["dim"]: np.mean(cell["gap"]) for cell in gap["cells"] if cell["budget"] == budget}
        assert max(mean.values()) < 0.05
        assert mean[dims[-1]] < mean[dims[0]] / 2, (budget, mean)


# --- Theorem 3: robust gradients align better, more so as eps grows ---


def test_theorem3_worst_case_alignment_is_kantorovich_and_rises_with_eps(drawn):
    spectrum = figure_data(drawn, "theorem3_alignment")["robust_spectrum"]
    rows = spectrum["closed_form"]
    for row in rows:
        k = row["condition"]
        assert row["worst_case_alignment"] == pytest.approx(2 * np.sqrt(k) / (1 + k), rel=1e-12)
        assert row["worst_case_alignment"] <= row["alignment"] + 1e-12
        assert row["worst_case_alignment"] <= row["typical_alignment"][1] + 1e-12
    worst = np.array([row["worst_case_alignment"] for row in rows])
    assert np.all(np.diff(worst) > 0) and worst[0] > spectrum["standard"]["worst_case_alignment"]


def test_theorem3_adversarially_trained_points_sit_on_the_closed_form_curve(drawn):
    spectrum = figure_data(drawn, "theorem3_alignment")["robust_spectrum"]
    truth = gf.random_instance(spectrum["dim"], spectrum["seed"], condition=spectrum["condition"])
    for fit in spectrum["fits"]:
        sigma_r = gf.robust_covariance(truth.sigma, gf.robust_lambda(truth.sigma, fit["eps"]))
        assert fit["worst_case_alignment"] == pytest.approx(gf.worst_case_alignment(sigma_r), abs=0.03)
        assert fit["alignment"] == pytest.approx(gf.gradient_alignment(truth.mu, sigma_r), abs=0.03)


# --- Section 3 in the model: D_rand above chance at every eps, D_det only beyond eps* ---


def test_section3_d_rand_is_flat_in_eps_and_d_det_crosses_one_half_at_the_threshold(drawn):
    figure = figure_data(drawn, "section3_relabelled")["relabelled"]
    for row in figure["rows"]:
        assert max(row["d_rand"]) - min(row["d_rand"]) < 1e-12 and 0.5 < row["d_rand"][0] <= row["bayes_accuracy"]
        eps, det = np.array(row["eps"]), np.array(row["d_det"])
        assert np.all(det[eps < row["d_det_threshold"] * (1 - 1e-9)] < 0.5)
        assert np.all(det[eps > row["d_det_threshold"] * (1 + 1e-9)] > 0.5)
        truth = gf.random_instance(figure["dim"], figure["seed"], condition=row["condition"])
        assert row["d_det_threshold"] == pytest.approx(gf.d_det_threshold(truth), rel=1e-12)


def test_section3_sampled_d_rand_falls_toward_chance_as_eps_shrinks(drawn):
    for row in figure_data(drawn, "section3_relabelled")["relabelled"]["rows"]:
        sampled = np.array(row["d_rand_sampled"])[:, 0]
        assert sampled[0] < sampled[-1] <= row["d_rand"][0] + 0.03


# --- the committed copies are the command's output ---


def test_committed_figures_exist_and_match_the_closed_forms_of_a_fresh_run(drawn):
    for name in FIGURES:
        for suffix in ("png", "pdf", "json"):
            assert (COMMITTED / f"{name}.{suffix}").is_file(), f"figures/{name}.{suffix} is missing: run gaussfeat figures"
        committed, fresh = figure_data(COMMITTED, name), figure_data(drawn, name)
        assert _closed_forms(committed) == pytest.approx(_closed_forms(fresh), rel=1e-9), name


def _closed_forms(record: dict) -> list[float]:
    """The numbers of a figure that follow from formulas alone (no sampling, no optimiser)."""
    values = []
    for source, content in record.items():
        if source == "blending":
            values += [v for panel in content["panels"] for v in panel["closed_form"]["eigenvalues"]]
        elif source == "misalignment":
            values += [v for family in content["families"] for v in family["gap"] + family["penalized"]]
        elif source == "robust_spectrum":
            values += [v for row in content["closed_form"] for v in row["eigenvalues"]]
        elif source == "relabelled":
            values += [v for row in content["rows"] for v in row["d_rand"] + row["d_det"] + [row["d_det_threshold"]]]
    return values


# --- reproducibility and bad input ---


def test_figure_data_is_reproducible_from_its_seed():
    small = {"eps": (0.0, 0.3), "samples": 500, "shown": 10}
    assert data.blending(**small, seed=3) == data.blending(**small, seed=3)
    assert data.blending(**small, seed=3) != data.blending(**small, seed=4)


def test_each_figure_draws_from_small_data(tmp_path, monkeypatch):
    small = {
        "blending": lambda seed: data.blending((0.0, 0.3), samples=300, shown=50, seed=seed),
        "misalignment": lambda seed: data.misalignment((2, 4), points=10, checked=2, samples=500, random_spectra=20, seed=seed),
        "robust_spectrum": lambda seed: data.robust_spectrum((0.1, 1.0, 3.0), (0.3,), dim=4, samples=500, seed=seed),
        "relaxation_gap": lambda seed: data.relaxation_gap((2, 4), (0.1,), samples=500, repeats=1, seed=seed),
        "relabelled": lambda seed: data.relabelled((1.0, 10.0), dim=3, n=20, draws=2, points=5, sampled_points=2, seed=seed),
    }
    monkeypatch.setattr("gaussfeat.figures.DATA", small)
    written = make_figures(tmp_path, seed=1)
    assert sorted(written) == sorted(FIGURES)
    assert all(path.stat().st_size > 0 for paths in written.values() for path in paths)
    assert set(small) == set(DATA)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: data.blending(eps=(0.3, 0.1)), "strictly increasing"),
        (lambda: data.blending(eps=(-0.1, 0.1)), "eps"),
        (lambda: data.blending(samples=0), "samples"),
        (lambda: data.misalignment(C=1.0), "C must exceed 1"),
        (lambda: data.robust_spectrum(eps=()), "eps"),
        (lambda: data.relaxation_gap(dims=(2, 64), samples=50), "samples must exceed"),
        (lambda: data.relabelled(dim=4, n=4), "n must be >= 5, got 4"),
        (lambda: data.relabelled(conditions=(0.0,)), "condition"),
        (lambda: make_figures("unused", ["figure5"]), "figure5"),
        (lambda: make_figures("unused", seed=-1), "seed"),
    ],
)
def test_bad_input_raises_an_error_naming_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_cli_reports_an_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["figures", "--out", str(blocker / "sub"), "--only", "theorem1_misalignment"]) == 2
    assert "error" in capsys.readouterr().err

"""empirical.report: tables and flags computed from a synthetic results dict, figures written, absent
stages reported as "not run", and findings that fail when the numbers say so."""

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")

from empirical.report import (  # noqa: E402
    PAPER,
    correlation,
    figure2a,
    figure2b,
    figure3,
    findings,
    report_markdown,
    robustness_table,
    table1,
    write_report,
)

PNG, PDF = b"\x89PNG\r\n\x1a\n", b"%PDF-"

RESULTS = {
    "preset": "smoke",
    "data": {"name": "CIFAR-10 (JPEG q75 re-encode)", "train": 4000, "test": 1000, "classes": 10},
    "settings": {},
    "git": "abc123",
    "device": "cpu",
    "versions": {"torch": "2.13.0", "python": "3.12"},
    "stages": {"standard": {"seconds": 12.5, "key": "a1b2c3d4e5f6a7b8", "cached": False},
               "robust": {"seconds": 30.0, "key": "ffff", "cached": True},
               "retrain": {"seconds": 0.5, "parts_seconds": 40.0, "key": "eeee", "cached": True}},
    "evaluation": {"eps": 0.25, "norm": "l2", "images": 500, "paper_steps": 20, "pgd_steps": 25, "autoattack": "standard"},
    "constructions": {
        "D_R": {"source": "robust", "representation_distance": {"mean": 1.5, "median": 1.2}, "relative_distance": {"mean": 0.1}},
        "D_NR": {"source": "standard", "representation_distance": {"mean": 0.5, "median": 0.4}, "relative_distance": {"mean": 0.05}},
        "D_rand": {"source": "standard", "success_rate": 0.97, "flagged": False},
        "D_det": {"source": "standard", "success_rate": 0.62, "flagged": True}},
    "accuracy": {
        "D": {"training": "standard", "clean": 0.95, "robust": 0.07, "paper_pgd": 0.09, "pgd": 0.07, "evaluated_images": 500,
              "evaluated_clean": 0.952, "flags": [],
              "sweep": {"lowest_accuracy": 0.06, "plateau": {"steps": 20, "restarts": 1, "accuracy": 0.08}, "converged": False,
                        "reference": 0.07, "gap": 0.01}},
        "D (adversarial)": {"training": "adversarial", "clean": 0.80, "robust": 0.60, "paper_pgd": 0.66,
                            "flags": ["square_beats_white_box"]},
        "D_R": {"training": "standard", "clean": 0.82, "robust": 0.45},
        "D_NR": {"training": "standard", "clean": 0.86, "robust": 0.01},
        "D_rand": {"training": "standard", "clean": 0.533, "robust": 0.0},  # 10 points below the paper's 63.3
        "D_det": {"training": "standard", "clean": 0.467, "robust": 0.0}},  # 3 points above the paper's 43.7
    "evaluations": {"D": {"flags": []}, "D (adversarial)": {"flags": [
        {"name": "square_beats_white_box", "message": "Square lowered robust accuracy from 61.0% to 60.0%"}]}},
    "transfer": {"architectures": {"resnet18": {"test_accuracy": 0.41, "success_rate": 0.92},
                                   "vgg16": {"test_accuracy": 0.30, "success_rate": 0.70},
                                   "densenet121": {"test_accuracy": 0.43, "success_rate": 0.95}},
                 "correlation": 0.99},
}


def results(**changes) -> dict:
    """RESULTS with top-level keys replaced (None deletes the key)."""
    changed = copy.deepcopy(RESULTS)
    for key, value in changes.items():
        changed.pop(key) if value is None else changed.__setitem__(key, value)
    return changed


def row(table: str, name: str) -> list[str]:
    """The cells of the markdown row whose first cell is `name`."""
    return next(line.strip("| ").split(" | ") for line in table.splitlines() if line.startswith(f"| `{name}` "))


def status(found, start: str) -> str:
    return next(f.status for f in found if f.claim.startswith(start))


def test_table1_flags_a_10_point_gap_and_not_a_3_point_gap():
    table = table1(RESULTS)
    assert row(table, "D_rand")[1:4] == ["53.3", "63.3", "-10.0"] and "> 5" in row(table, "D_rand")[4]
    assert row(table, "D_det")[1:4] == ["46.7", "43.7", "+3.0"] and len(row(table, "D_det")) == 4  # empty flag
    assert row(table, "D")[1:3] == ["95.0", "95.3"]


def test_table1_says_not_run_for_a_missing_training_set():
    partial = results()
    del partial["accuracy"]["D_det"]
    assert row(table1(partial), "D_det")[:3] == ["`D_det`", "not run", "43.7"]


def test_paper_numbers_are_the_headline_table():
    clean = {name: entry["clean"] for name, entry in PAPER["accuracy"].items()}
    assert clean == {"D": 95.3, "D (adversarial)": 90.83, "D_R": 84.0, "D_NR": 88.0, "D_rand": 63.3, "D_det": 43.7}
    assert PAPER["accuracy"]["D_R"]["robust"] == 48.0 and PAPER["accuracy"]["D"]["robust"] == 7.3
    assert all(entry["source"] for entry in PAPER["accuracy"].values())
    assert PAPER["figure3"]["points"]["vgg16"] == ("VGG-16", 28.0, 65.7)


def test_figures_are_written_as_png_and_pdf(tmp_path):
    samples = {"D": torch.rand(6, 3, 8, 8), "D_R": torch.rand(6, 3, 8, 8), "D_det": torch.rand(3, 1, 8, 8)}
    for paths in (figure2a(samples, tmp_path / "a"), figure2b(RESULTS, tmp_path / "b"), figure3(RESULTS, tmp_path / "c")):
        assert [path.suffix for path in paths] == [".png", ".pdf"]
        assert paths[0].read_bytes()[:8] == PNG and paths[1].read_bytes()[:5] == PDF


def test_pdfs_are_reproducible_byte_for_byte(tmp_path):
    first, second = figure3(RESULTS, tmp_path / "first")[1], figure3(RESULTS, tmp_path / "second")[1]
    assert first.read_bytes() == second.read_bytes()


def test_figure2a_refuses_images_that_are_not_nchw():
    with pytest.raises(ValueError, match="D_R"):
        figure2a({"D_R": torch.rand(3, 8, 8)}, "unused")


def test_figures_without_their_data_are_skipped(tmp_path):
    assert figure2a({}, tmp_path / "a") == []
    assert figure2b(results(accuracy=None), tmp_path / "b") == []
    assert figure3(results(transfer=None), tmp_path / "c") == []
    assert not list(tmp_path.iterdir())


def test_partial_results_are_reported_as_not_run(tmp_path):
    partial = results(transfer=None, constructions={"D_R": RESULTS["constructions"]["D_R"]},
                      accuracy={"D": RESULTS["accuracy"]["D"]})
    text = report_markdown(partial)
    assert "Transfer: not run." in text
    assert "| `D_NR` | clean | not run | 88 |" in text and "| `D_NR` | not run |" in text  # Figure 2b, constructions
    assert row(table1(partial), "D_det")[1] == "not run"
    assert [f.status for f in findings(partial)] == ["not run"] * 5
    paths = write_report(partial, {}, tmp_path)
    assert sorted(path.name for path in paths) == ["figure2b.pdf", "figure2b.png", "report.md", "table1.md"]
    assert "![figure2b](figure2b.png)" in (tmp_path / "report.md").read_text()


def test_minimal_results_do_not_crash():
    text = report_markdown({"preset": "smoke"})
    assert "# Results: smoke preset" in text and text.count("not run") >= 10


def test_full_report_has_every_section_and_all_findings_reproduced(tmp_path):
    text = report_markdown(RESULTS)
    for expected in ("wall time: 82.5 s over 3 stages", "| retrain | 40.0 |", "own sittings took retrain 0.5 s", "not CIFAR-10 itself", "torch 2.13.0", "`abc123`",
                     "## Table 1", "## Figure 2b", "## Constructed training sets", "## Figure 3",
                     "## Qualitative findings", "Flagged constructions: `D_det`.", "**not converged**",
                     "Correlation: 0.99"):
        assert expected in text, expected
    assert {f.status for f in findings(RESULTS)} == {"reproduced"}
    paths = write_report(RESULTS, {"D": torch.rand(4, 3, 8, 8)}, tmp_path)
    assert {path.name for path in paths} == {"table1.md", "report.md", *(f"figure{n}.{s}" for n in ("2a", "2b", "3")
                                                                         for s in ("png", "pdf"))}
    assert all(path.exists() for path in paths)


def test_figure2b_numbers_are_flagged_against_the_paper():
    text = report_markdown(RESULTS)
    adversarial_robust = next(line for line in text.splitlines() if line.startswith("| `D (adversarial)` | robust"))
    assert "-22.3" in adversarial_robust and "> 5" in adversarial_robust  # 60 vs the released model's 82.34
    d_r_robust = next(line for line in text.splitlines() if line.startswith("| `D_R` | robust"))
    assert "-3.0" in d_r_robust and "> 5" not in d_r_robust


def test_findings_fail_honestly_when_the_numbers_contradict_the_paper():
    contrary = results(data={**RESULTS["data"], "classes": 10},
                       transfer={"architectures": RESULTS["transfer"]["architectures"], "correlation": -0.4})
    contrary["accuracy"]["D_R"]["robust"], contrary["accuracy"]["D_NR"]["robust"] = 0.02, 0.30
    contrary["accuracy"]["D_det"]["clean"] = 0.15  # chance 10% + 5 points: not a clear margin
    found = findings(contrary)
    assert status(found, "standard training on D_R") == "not reproduced"
    assert status(found, "training on D_det") == "not reproduced"
    assert status(found, "training on D_rand") == "reproduced"
    assert status(found, "transfer success") == "not reproduced"
    assert status(found, "standard training on D_NR is accurate") == "not reproduced"  # 30% robust
    assert "- [ ] **not reproduced**: standard training on D_R" in report_markdown(contrary)


def test_a_failed_finding_carries_the_measurements_that_diagnose_it_and_a_reproduced_one_none():
    contrary = results()
    contrary["accuracy"]["D_R"]["robust"] = 0.02
    contrary["accuracy"]["D_det"].update(clean=0.05, follows_relabelling=0.72)
    found = {f.claim.split(" (")[0]: f for f in findings(contrary)}
    d_r = found["standard training on D_R is more robust than on D_NR"]
    assert "source keeps 60.0%" in d_r.diagnosis and "relative representation distance of 0.1" in d_r.diagnosis
    d_det = found["training on D_det generalises to the original test set"]
    assert "62.0% of its targets" in d_det.diagnosis and "y + 1" in d_det.diagnosis and "72.0%" in d_det.diagnosis
    assert "it learned the robust relabelling" in d_det.diagnosis
    contrary["accuracy"]["D_det"].update(follows_relabelling=0.15)  # near chance for y + 1 too: neither was learned
    d_det = next(f for f in findings(contrary) if f.claim.startswith("training on D_det"))
    assert "it learned neither the non-robust features nor the robust relabelling" in d_det.diagnosis
    assert found["training on D_rand generalises to the original test set"].diagnosis == ""  # reproduced
    assert "Diagnosis: the adversarially trained source keeps 60.0%" in report_markdown(contrary)


def test_correlation_is_computed_from_the_points_when_the_suite_gave_none():
    transfer = {"architectures": RESULTS["transfer"]["architectures"]}
    x, y = zip(*((entry["test_accuracy"], entry["success_rate"]) for entry in transfer["architectures"].values()))
    assert correlation(results(transfer=transfer)) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert correlation(results(transfer={"architectures": {"vgg16": {"test_accuracy": 0.3, "success_rate": 0.7}}})) is None


@pytest.mark.parametrize(("name", "caveat"), [("CIFAR-10 (JPEG q75 re-encode)", "not CIFAR-10 itself"),
                                              ("planted features (seed 0, 10 classes, 3x32x32)", "indicative only"),
                                              ("Fashion-MNIST", "indicative only"), ("CIFAR-10", None)])
def test_data_other_than_cifar10_carries_a_caveat(name, caveat):
    header = report_markdown(results(data={**RESULTS["data"], "name": name})).split("## Table 1")[0]
    assert (caveat in header) if caveat else "caveat" not in header


def test_robust_accuracy_at_another_radius_carries_a_caveat():
    header = report_markdown(results(evaluation={"norm": "linf", "eps": 8 / 255})).split("## Table 1")[0]
    assert "the paper's is under l2 eps = 0.25" in header


def test_robustness_table_shows_the_papers_pgd_the_projects_pgd_and_autoattack_side_by_side():
    table = robustness_table(RESULTS)
    assert row(table, "D") == ["`D`", "95.0", "500", "95.2", "9.0", "7.0", "7.0", "none"]
    assert row(table, "D (adversarial)")[4:] == ["66.0", "not run", "60.0", "`square_beats_white_box`"]
    assert "none" not in row(table, "D_det")  # not evaluated: no claim that it raised no flag


def test_the_report_names_each_flag_and_the_sweeps_distance_from_autoattack():
    text = report_markdown(RESULTS)
    assert "* `D (adversarial)`: **square_beats_white_box**: Square lowered" in text
    assert "+1.0 points from AutoAttack's 7.0%" in text
    assert "| `D (adversarial)` | robust (AutoAttack) | 60.0 |" in text and "| `D (adversarial)` | robust (paper's PGD) | 66.0 |" in text
    assert "AutoAttack (standard version), the number of record" in text
    assert "Sanity flags: none raised." in report_markdown(results(evaluations={"D": {"flags": []}}))

"""empirical.discussion_report: each finding follows its numbers across the line that decides it."""

import copy
import json
from pathlib import Path

import pytest

from empirical.discussion_report import sections

SMOKE = json.loads((Path(__file__).resolve().parents[1] / "results" / "suite-smoke" / "results.json").read_text())


@pytest.fixture
def results():
    return copy.deepcopy(SMOKE)


def _text(results) -> str:
    return "\n".join(sections(results))


def test_a_linear_probe_on_the_perturbations_is_above_chance_only_beyond_5_points(results):
    linear = results["discussion"]["leakage"]["linear"]
    linear["D_rand perturbations"], linear["D_det perturbations"] = 0.135, 0.233  # chance 10%
    text = _text(results)
    assert "linear classifier 13.5% (within 5 points of chance" in text
    assert "linear classifier 23.3% (above chance" in text


def test_distillation_says_the_labels_carry_the_teacher_only_when_a_student_beats_chance_by_5_points(results):
    sources = results["discussion"]["distillation"]["sources"]
    results["accuracy"]["D_rand"]["clean"] = 0.991
    for row, clean in zip(sources.values(), (0.5, 0.42)):
        row["clean"] = clean
    assert "The teacher's labels alone carry part of its function (50.0% from featureless images)" in _text(results)
    for row in sources.values():
        row["clean"] = 0.103
    text = _text(results)
    assert "teach nothing that transfers (10.3%, chance 10.0%)" in text
    assert "so `D_rand`'s 99.1% comes from the features in its images" in text


def test_likeness_names_the_image_each_set_is_closer_to_in_ssim(results):
    sets = results["discussion"]["similarity"]["sets"]
    text = _text(results)
    assert "`D_R` images look like their target x" in text and "`D_NR` images look like their start x0" in text
    sets["D_R"]["ssim_to_start"], sets["D_R"]["ssim_to_target"] = 0.71, 0.04
    assert "`D_R` images look like their start x0 (SSIM 0.71 to x0, 0.04 to x)" in _text(results)


def test_a_stage_that_did_not_run_is_said_not_to_have(results):
    del results["discussion"]["non_transferable"]
    text = _text(results)
    assert "Stage `non_transferable` not run." in text and "### Distillation control (Wallace)" in text

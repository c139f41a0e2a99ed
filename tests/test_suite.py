"""empirical.suite: every output written, stages cached by key and resumed, the plan printed; the smoke preset's outcomes."""

import json
from dataclasses import replace

import pytest

from empirical.cli import main
from empirical.suite import CONSTRUCTED, PRESETS, STAGES, Suite, stage_keys


def tiny():
    smoke = PRESETS["smoke"]()
    base = replace(smoke.standard, epochs=1, model_options={"width": 8})
    return replace(smoke, data_options={"n_train": 300, "n_test": 100}, standard=base,
                   robust=replace(smoke.robust, epochs=1, model_options={"width": 8}),
                   retrain={name: base for name in CONSTRUCTED}, inversion={"steps": 3, "step_size": 0.1, "start": "image"},
                   relabel={"eps": 0.5, "steps": 3, "step_size": 0.2}, sweep={"steps": (1, 2), "restarts": (1,)},
                   evaluation=replace(smoke.evaluation, steps=2), transfer_models=("fast",))


def test_a_run_writes_every_output_and_a_second_run_is_all_cached(tmp_path):
    lines = []
    suite = Suite(tiny(), tmp_path, progress=False, log=lines.append)
    results = suite.run()
    for name in ("results.json", "table1.md", "report.md", "figure2a.png", "figure2b.png"):
        assert (tmp_path / name).is_file(), name
    assert set(results["accuracy"]) == {"D", "D (adversarial)", *CONSTRUCTED}
    assert set(results["constructions"]) == set(CONSTRUCTED) and results["transfer"]["architectures"]["fast"]
    assert all(suite.done(stage) for stage in STAGES if stage != "report")
    lines.clear()
    again = Suite(tiny(), tmp_path, progress=False, log=lines.append).run()
    assert sum("cached" in line for line in lines) == len(STAGES) - 1
    assert again["accuracy"] == results["accuracy"]


def test_an_interrupted_run_continues_from_the_stages_it_finished(tmp_path):
    lines = []
    Suite(tiny(), tmp_path, progress=False, log=lines.append).run(["D_R"])  # also runs the robust model it needs
    assert any(line.startswith("robust: done") for line in lines)
    lines.clear()
    Suite(tiny(), tmp_path, progress=False, log=lines.append).run(["retrain"])
    assert any(line.startswith("robust: cached") for line in lines) and any(line.startswith("D_R: cached") for line in lines)
    assert any(line.startswith("D_NR: done") for line in lines)


def test_changing_a_setting_invalidates_exactly_the_stages_that_depend_on_it():
    before = stage_keys(tiny())
    after = stage_keys(replace(tiny(), inversion={"steps": 4, "step_size": 0.1, "start": "image"}))
    changed = {stage for stage in STAGES if before[stage] != after[stage]}
    assert changed == {"D_R", "D_NR", "retrain", "report"}


def test_dry_run_prints_the_plan_without_running(tmp_path, capsys):
    assert main(["run", "--preset", "smoke", "--out", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert all(stage in out for stage in STAGES) and "image passes" in out and not (tmp_path / "stages").exists()


def test_unknown_stage_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'retrain2'"):
        Suite(tiny(), tmp_path, progress=False).run(["retrain2"])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke preset end to end (about 2 minutes on 2 CPU cores)."""
    out = tmp_path_factory.mktemp("smoke")
    assert main(["run", "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "results.json").read_text())


def test_smoke_model_trained_on_robust_features_is_more_robust_than_on_non_robust_ones(smoke):
    accuracy = smoke["accuracy"]
    assert accuracy["D_R"]["robust"] > accuracy["D_NR"]["robust"] + 0.1
    assert accuracy["D (adversarial)"]["robust"] > accuracy["D"]["robust"] + 0.3


def test_smoke_constructions_report_their_diagnostics(smoke):
    constructions = smoke["constructions"]
    assert constructions["D_det"]["success_rate"] > 0.9 and constructions["D_rand"]["success_rate"] > 0.9
    assert 0 < constructions["D_R"]["relative_distance"]["mean"] < 1


@pytest.mark.xfail(strict=True, reason="planted data: the retrained fast net learns the deterministic robust relabelling "
                   "r_y -> y + 1 instead of the injected non-robust templates (issue 5)")
def test_smoke_models_trained_on_d_rand_and_d_det_beat_chance(smoke):
    chance = 1 / smoke["data"]["classes"]
    assert smoke["accuracy"]["D_rand"]["clean"] > chance + 0.1 and smoke["accuracy"]["D_det"]["clean"] > chance + 0.1

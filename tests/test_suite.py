"""empirical.suite: every output written, stages cached by key and resumed, the plan printed."""

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

"""empirical.suite: every output written, stages cached by key and resumed, the plan printed; the smoke preset's outcomes."""

import hashlib
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from empirical.cli import main
from empirical.suite import CONSTRUCTED, FIGURE3, MODELS, PRESETS, SAMPLES, STAGES, TABLE1, Suite, stage_keys
from empirical.train import load_checkpoint


def test_a_run_writes_every_output_and_a_second_run_is_all_cached(tmp_path):
    lines = []
    suite = Suite(PRESETS["tiny"](), tmp_path, progress=False, log=lines.append)
    results = suite.run()
    for name in ("results.json", "table1.md", "report.md", "figure2a.png", "figure2b.png"):
        assert (tmp_path / name).is_file(), name
    assert set(results["accuracy"]) == {"D", "D (adversarial)", *CONSTRUCTED}
    assert set(results["constructions"]) == set(CONSTRUCTED) and results["transfer"]["architectures"]["mlp"]
    assert all(suite.done(stage) for stage in STAGES if stage != "report")
    lines.clear()
    again = Suite(PRESETS["tiny"](), tmp_path, progress=False, log=lines.append).run()
    assert sum("cached" in line for line in lines) == len(STAGES) - 1
    assert again["accuracy"] == results["accuracy"]
    assert not any(stage["cached"] for stage in results["stages"].values())
    assert all(stage["cached"] for stage in again["stages"].values())
    assert again["stages"]["robust"]["seconds"] == results["stages"]["robust"]["seconds"]  # the time it took when computed


def test_an_interrupted_run_continues_from_the_stages_it_finished_and_reproduces_an_uninterrupted_one(tmp_path):
    lines = []
    Suite(PRESETS["tiny"](), tmp_path / "resumed", progress=False, log=lines.append).run(["D_R"])  # and the robust model it needs
    assert any(line.startswith("robust: done") for line in lines)
    lines.clear()
    Suite(PRESETS["tiny"](), tmp_path / "resumed", progress=False, log=lines.append).run(["retrain"])
    assert any(line.startswith("robust: cached") for line in lines) and any(line.startswith("D_R: cached") for line in lines)
    assert any(line.startswith("D_NR: done") for line in lines)
    resumed = Suite(PRESETS["tiny"](), tmp_path / "resumed", progress=False).run()
    uninterrupted = Suite(PRESETS["tiny"](), tmp_path / "uninterrupted", progress=False).run()
    assert resumed["accuracy"] == uninterrupted["accuracy"]
    for part in ("constructions", "transfer"):
        assert _without_seconds(resumed[part]) == _without_seconds(uninterrupted[part]), part


def _carry(run: Path, to: Path) -> None:
    """Copy the files of ``run`` that git would commit were it a folder under results/ (the project's .gitignore)."""
    files = [path.relative_to(run).as_posix() for path in sorted(run.rglob("*")) if path.is_file()]
    asked = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], input="\n".join(f"results/run/{f}" for f in files),
                           capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if asked.returncode not in (0, 1):  # 1: none ignored
        pytest.skip(f"git check-ignore is unavailable: {asked.stderr.strip()}")
    ignored = {line.removeprefix("results/run/") for line in asked.stdout.splitlines()}
    assert any(f.endswith("/data.pt") for f in ignored) and any(f.endswith("/checkpoint.pt") for f in ignored)
    for name in set(files) - ignored:
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / name, to / name)


def test_a_run_committed_without_its_large_files_continues_and_builds_a_set_again_to_its_digest(tmp_path):
    """A run folder under results/ is committed without the constructed sets, training checkpoints and chunks
    (.gitignore): run again from it, every stage is cached with the same numbers; a training left to do builds
    its set again, equal to the digest its stage recorded, and no finished model is trained again."""
    first = Suite(PRESETS["tiny"](), tmp_path / "run", progress=False).run()
    for stage in CONSTRUCTED:  # what is carried of a set is the report's 8 images, not the storage they were cut from
        samples = load_checkpoint(Suite(PRESETS["tiny"](), tmp_path / "run").folder(stage) / SAMPLES)["images"]
        assert len(samples) == 8 and samples.untyped_storage().nbytes() == samples.numel() * samples.element_size()
    _carry(tmp_path / "run", tmp_path / "carried")
    lines = []
    again = Suite(PRESETS["tiny"](), tmp_path / "carried", progress=False, log=lines.append).run()
    assert all(stage["cached"] for stage in again["stages"].values()) and again["accuracy"] == first["accuracy"]
    assert not any("building its set again" in line for line in lines)  # the report's samples are kept
    suite = Suite(PRESETS["tiny"](), tmp_path / "carried", progress=False, log=lines.append)
    (suite.folder("retrain") / "result.json").unlink()  # as if stopped while retraining on D_det
    shutil.rmtree(suite.retraining("D_det"))
    others = sorted(path for name in CONSTRUCTED for path in suite.retraining(name).rglob("model.pt"))
    saved = [path.stat().st_mtime_ns for path in others]
    retrained = suite.run(["retrain"])
    assert [line.split(":")[0] for line in lines if "building its set again" in line] == ["D_det"]
    assert retrained["accuracy"] == first["accuracy"]
    assert suite.constructed("D_det").digest() == first["constructions"]["D_det"]["digest"]
    assert len(others) == len(CONSTRUCTED) - 1 and [path.stat().st_mtime_ns for path in others] == saved  # none trained again


def test_each_set_is_retrained_once_built_so_a_sitting_that_ends_keeps_those_models(tmp_path, monkeypatch):
    """A sitting that ends while D_det is built has already retrained on D_R, D_NR and D_rand; the next one
    trains only on D_det, and the run equals an uninterrupted one, its retrain stage timed over both sittings."""
    build = Suite._build

    def ends_at_d_det(self, stage, folder):
        if stage == "D_det":
            raise KeyboardInterrupt("the sitting ends")
        return build(self, stage, folder)

    monkeypatch.setattr(Suite, "_build", ends_at_d_det)
    suite = Suite(PRESETS["tiny"](), tmp_path / "resumed", progress=False)
    with pytest.raises(KeyboardInterrupt):
        suite.run(["retrain"])
    assert [name for name in CONSTRUCTED if (suite.retraining(name) / "train" / "model.pt").is_file()] == ["D_R", "D_NR", "D_rand"]
    monkeypatch.undo()
    lines = []
    resumed = Suite(PRESETS["tiny"](), tmp_path / "resumed", progress=False, log=lines.append).run(["retrain"])
    assert [line for line in lines if line.startswith("retrain: D")] == ["retrain: D_det, while its set is at hand"]
    assert resumed["stages"]["retrain"]["sittings"] == 2
    uninterrupted = Suite(PRESETS["tiny"](), tmp_path / "uninterrupted", progress=False).run(["retrain"])
    assert resumed["accuracy"] == uninterrupted["accuracy"] and uninterrupted["stages"]["retrain"]["sittings"] == 1


def test_a_change_to_one_sets_retraining_trains_only_that_set_again(tmp_path):
    """The retrain stage's trainings are keyed per set (its construction and its own settings): a new
    D_rand recipe reruns the stage but trains only on D_rand; the other models are reused untouched."""
    preset = PRESETS["tiny"]()
    suite = Suite(preset, tmp_path, progress=False)
    first = suite.run(["retrain"])
    models = {name: suite.retraining(name) / "train" / "model.pt" for name in CONSTRUCTED}
    saved = {name: path.stat().st_mtime_ns for name, path in models.items()}
    changed = replace(preset, retrain={**preset.retrain, "D_rand": replace(preset.retrain["D_rand"], lr=preset.retrain["D_rand"].lr / 2)})
    lines = []
    again = Suite(changed, tmp_path, progress=False, log=lines.append)
    second = again.run(["retrain"])
    assert again.folder("retrain") != suite.folder("retrain") and not second["stages"]["retrain"]["cached"]
    assert again.retraining("D_rand") != suite.retraining("D_rand")
    assert [line for line in lines if line.startswith("retrain: D")] == ["retrain: D_rand, while its set is at hand"]
    assert all(models[name].stat().st_mtime_ns == saved[name] for name in CONSTRUCTED)
    reused = ("D_R", "D_NR", "D_det")  # each keeps the seconds its training took in the first run
    assert [again.stage_result("retrain")[name]["training_seconds"] for name in reused] == \
        [suite.stage_result("retrain")[name]["training_seconds"] for name in reused]
    assert second["stages"]["retrain"]["parts_seconds"] == pytest.approx(  # the reused trainings' time counted
        sum(again.stage_result("retrain")[name]["training_seconds"] for name in CONSTRUCTED))
    assert {name: second["accuracy"][name] for name in ("D_R", "D_NR", "D_det")} == \
        {name: first["accuracy"][name] for name in ("D_R", "D_NR", "D_det")}


def test_a_run_made_before_the_per_set_retraining_folders_continues_with_its_models(tmp_path):
    """Trainings kept in the retrain stage's own folder (the layout before :meth:`Suite.retraining`) are used
    where they are: every stage cached, the same numbers, every model found."""
    suite = Suite(PRESETS["tiny"](), tmp_path, progress=False)
    first = suite.run(["retrain"])
    for name in CONSTRUCTED:
        shutil.move(suite.retraining(name), suite.folder("retrain") / name)
    again = Suite(PRESETS["tiny"](), tmp_path, progress=False).run(["retrain"])
    assert all(stage["cached"] for stage in again["stages"].values()) and again["accuracy"] == first["accuracy"]
    assert all(suite.retraining(name) == suite.folder("retrain") / name for name in CONSTRUCTED)
    assert all(isinstance(suite.model(name), torch.nn.Module) for name in CONSTRUCTED)


def test_figure_3s_architecture_that_d_dets_retraining_trained_is_reused_and_a_stopped_transfer_attacks_once(
        tmp_path, monkeypatch):
    """The transfer stage trains each architecture in :meth:`Suite.retraining`'s folders: one whose training
    equals D_det's retraining is that model, not trained again. Its adversarial examples are kept, so a
    stage stopped during a training resumes without attacking again, and equals an uninterrupted run."""
    import empirical.suite

    tiny = PRESETS["tiny"]()
    det = tiny.retrain["D_det"]
    preset = replace(tiny, transfer_models={det.model: det.model_options, "fast": {"width": 8}})
    suite = Suite(preset, tmp_path / "resumed", progress=False)
    retrained = suite.run(["retrain"])
    model = suite.retraining("D_det") / "train" / "model.pt"
    saved = model.stat().st_mtime_ns
    train = empirical.suite.train

    def stops_at_the_fast_net(config, *args, **kwargs):
        if config.model == "fast":
            raise KeyboardInterrupt("the sitting ends")
        return train(config, *args, **kwargs)

    monkeypatch.setattr(empirical.suite, "train", stops_at_the_fast_net)
    with pytest.raises(KeyboardInterrupt):
        suite.run(["transfer"])
    assert (suite.folder("transfer") / "adversarial.pt").is_file()
    monkeypatch.setattr(empirical.suite, "train", train)
    monkeypatch.setattr(empirical.suite, "adversarial_examples", lambda *args, **kwargs: pytest.fail("attacked again"))
    resumed = Suite(preset, tmp_path / "resumed", progress=False).run(["transfer"])
    monkeypatch.undo()
    reused = resumed["transfer"]["architectures"][det.model]
    assert model.stat().st_mtime_ns == saved and reused["folder"] == suite.retraining("D_det").name
    assert reused["training_seconds"] == suite.stage_result("retrain")["D_det"]["training_seconds"]
    assert reused["test_accuracy"] == pytest.approx(retrained["accuracy"]["D_det"]["clean"], rel=1e-6)  # float32 mean
    assert resumed["stages"]["transfer"]["parts_seconds"] == pytest.approx(resumed["transfer"]["attack_seconds"] + sum(
        entry["training_seconds"] for entry in resumed["transfer"]["architectures"].values()))
    uninterrupted = Suite(preset, tmp_path / "uninterrupted", progress=False).run(["transfer"])
    for part in ("architectures", "correlation"):
        assert _without_seconds(resumed["transfer"][part]) == _without_seconds(uninterrupted["transfer"][part]), part
    assert (resumed["transfer"]["sittings"], uninterrupted["transfer"]["sittings"]) == (2, 1)


def test_a_presets_transfer_training_changes_only_its_architectures_training_and_names_known_ones():
    """``transfer_training`` changes one architecture's training on D_det (the full run's MLP learns at lr 0.1,
    diverges at the ResNet-9's 0.4) and, where set, only the transfer stage's key (and the report's)."""
    full = PRESETS["cifar10-cpu-full"]()
    assert full.transfer_config("resnet9") == full.retrain["D_det"]  # the retrain stage's own training, reused
    assert full.transfer_config("mlp") == replace(full.retrain["D_det"], model="mlp", model_options={"size": 32}, lr=0.1)
    tiny = PRESETS["tiny"]()
    before, after = stage_keys(tiny), stage_keys(replace(tiny, transfer_training={"mlp": {"lr": 0.01}}))
    assert {stage for stage in STAGES if before[stage] != after[stage]} == {"transfer", "report"}
    with pytest.raises(ValueError, match=r"'vgg16' is not a transfer architecture of preset 'tiny': \['mlp'\]"):
        tiny.transfer_config("vgg16")
    with pytest.raises(ValueError, match=r"transfer_training names \['vgg16'\], not among"):
        replace(tiny, transfer_training={"vgg16": {"lr": 0.1}})


def test_a_set_built_again_that_differs_from_its_record_is_refused(tmp_path):
    suite = Suite(PRESETS["tiny"](), tmp_path, progress=False)
    suite.run(["D_rand"])
    record = suite.folder("D_rand") / "result.json"
    recorded = json.loads(record.read_text())
    record.write_text(json.dumps({**recorded, "digest": "0" * 64}))
    (suite.folder("D_rand") / "data.pt").unlink()
    with pytest.raises(ValueError, match="D_rand built again differs .* != recorded 0000"):
        Suite(PRESETS["tiny"](), tmp_path, progress=False).constructed("D_rand")
    assert not (suite.folder("D_rand") / "data.pt").exists()  # never read in its place


def _without_seconds(value):
    """Every measurement but the wall times."""
    if isinstance(value, dict):
        return {key: _without_seconds(entry) for key, entry in value.items() if not key.endswith("seconds")}
    return value


def test_an_interrupted_evaluation_keeps_the_models_it_finished(tmp_path, monkeypatch):
    import empirical.suite

    suite = Suite(PRESETS["tiny"](), tmp_path, progress=False)
    first = suite.run(["evaluate"])["evaluations"]
    (suite.folder("evaluate") / "result.json").unlink()  # as if stopped while evaluating D_det
    (suite.evaluating("D_det") / "record.json").unlink()
    evaluated = []
    original = empirical.suite.evaluate
    monkeypatch.setattr(empirical.suite, "evaluate", lambda model, *a, **k: evaluated.append(1) or original(model, *a, **k))
    again = Suite(PRESETS["tiny"](), tmp_path, progress=False).run(["evaluate"])["evaluations"]
    assert len(evaluated) == 1 and _without_seconds(again) == _without_seconds(first)


def test_a_change_to_one_model_evaluates_only_that_model_again(tmp_path, monkeypatch):
    """The evaluate stage's records are keyed per model (its training folder and its evaluation): a new
    D_rand recipe reruns the stage but evaluates only D_rand; the other records are reused as they were."""
    import empirical.suite

    preset = PRESETS["tiny"]()
    first = Suite(preset, tmp_path, progress=False).run(["evaluate"])["evaluations"]
    changed = replace(preset, retrain={**preset.retrain, "D_rand": replace(preset.retrain["D_rand"], lr=preset.retrain["D_rand"].lr / 2)})
    evaluated, lines = [], []
    original = empirical.suite.evaluate
    monkeypatch.setattr(empirical.suite, "evaluate", lambda model, *a, **k: evaluated.append(1) or original(model, *a, **k))
    again = Suite(changed, tmp_path, progress=False, log=lines.append)
    second = again.run(["evaluate"])
    assert not second["stages"]["evaluate"]["cached"] and len(evaluated) == 1
    assert [line for line in lines if line in {f"evaluate: {name}" for name in MODELS}] == ["evaluate: D_rand"]
    kept = [name for name in MODELS if name != "D_rand"]
    assert {name: second["evaluations"][name] for name in kept} == {name: first[name] for name in kept}


def test_changing_a_setting_invalidates_exactly_the_stages_that_depend_on_it():
    before = stage_keys(PRESETS["tiny"]())
    after = stage_keys(replace(PRESETS["tiny"](), inversion={"steps": 4, "step_size": 0.1, "start": "image"}))
    changed = {stage for stage in STAGES if before[stage] != after[stage]}
    assert changed == {"D_R", "D_NR", "retrain", "evaluate", "non_transferable", "similarity", "report"}


def test_changing_the_evaluation_invalidates_only_the_evaluation_and_the_report():
    before = stage_keys(PRESETS["tiny"]())
    after = stage_keys(replace(PRESETS["tiny"](), evaluation=replace(PRESETS["tiny"]().evaluation, autoattack="plus")))
    assert {stage for stage in STAGES if before[stage] != after[stage]} == {"evaluate", "report"}


def test_the_precision_is_part_of_every_stage_key_and_fp32_keeps_the_committed_runs_keys():
    for name, make in PRESETS.items():
        fp32, bf16 = stage_keys(make()), stage_keys(make(), "bf16")
        assert all(fp32[stage] != bf16[stage] for stage in STAGES), name
    committed = sorted(Path(__file__).resolve().parents[1].glob("results/suite-*/results.json"))
    assert committed
    for path in committed:  # the keys each committed run recorded are the ones the code computes now
        recorded = json.loads(path.read_text())
        keys = stage_keys(PRESETS[recorded["preset"]](), recorded.get("precision", "fp32"))
        assert {stage: entry["key"] for stage, entry in recorded["stages"].items()} == {
            stage: keys[stage] for stage in recorded["stages"]}, path
    with pytest.raises(ValueError, match="precision must be 'bf16' or 'fp32', got 'auto'"):
        stage_keys(PRESETS["tiny"](), "auto")


def test_every_presets_stage_keys_are_pinned():
    """A reorganisation must not move a key (every cached run would silently recompute): a digest of
    each preset's keys in both precisions. Change one only with a change meant to invalidate that preset's stages."""
    pinned = {"tiny": "c46bea7364d17dc3", "smoke": "50d949fbf7afeba9", "fashion": "9ffd08c254dfbe9f",
              "cifar10-cpu": "311f5ec0124f39c9", "cifar10-cpu-full": "c0d5c5860b86f1ff", "cifar10": "8a1eeba5946949fd",
              "cifar10-transfer": "07d83f4b0c5f3932", "cifar10-paper": "0cb38a4f373c3d25"}
    digests = {name: hashlib.sha256(json.dumps({precision: stage_keys(make(), precision) for precision in ("fp32", "bf16")},
                                               sort_keys=True).encode()).hexdigest()[:16] for name, make in PRESETS.items()}
    assert digests == pinned


def test_a_stage_computed_in_one_precision_is_never_reused_in_the_other(tmp_path):
    fp32 = Suite(PRESETS["tiny"](), tmp_path, precision="fp32", progress=False).run(["standard"])
    lines = []
    bf16 = Suite(PRESETS["tiny"](), tmp_path, precision="bf16", progress=False, log=lines.append).run(["standard"])
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16")
    assert any(line.startswith("standard: done") for line in lines) and not any("cached" in line for line in lines)
    assert len(list((tmp_path / "stages").glob("standard-*"))) == 2
    assert Suite.reopen(tmp_path, progress=False).precision == "bf16"  # the precision its results.json records
    history = json.loads((Suite(PRESETS["tiny"](), tmp_path, precision="bf16").folder("standard") / "train" /
                          "history.json").read_text())
    assert history["precision"] == "bf16"


@pytest.mark.parametrize("native", [True, False])
def test_the_log_says_what_a_runs_precision_will_cost_before_it_starts(tmp_path, monkeypatch, native):
    """A bf16 run reopened on a CPU without native bf16 keeps bf16 (its keys hold it) and runs 13-30x slower than
    fp32; a folder run before in the other precision has stages this run will not reuse. The log says both."""
    monkeypatch.setattr("empirical.suite.native_bf16", lambda: native)

    def logged(precision: str) -> list[str]:
        lines = []
        Suite(PRESETS["tiny"](), tmp_path, device="cpu", precision=precision, progress=False, log=lines.append).run([])
        return lines

    assert logged("fp32") == []  # a new folder
    after_fp32 = logged("bf16")
    assert sum("emulates it, 13-30x slower than fp32" in line for line in after_fp32) == (0 if native else 1)
    assert sum("records precision fp32 and this run's is bf16" in line and "--precision fp32 reuses them" in line
               for line in after_fp32) == 1
    assert [line for line in logged("bf16") if "records precision" in line] == []  # the same precision as before
    assert [line for line in logged("fp32") if "native bf16" in line] == []


def test_dry_run_prints_the_plan_without_running(tmp_path, capsys):
    assert main(["run", "--preset", "smoke", "--out", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert all(stage in out for stage in STAGES) and "image passes" in out and not (tmp_path / "stages").exists()
    assert "seconds on cpu" in out and " s\n" in out


def test_the_cifar10_presets_run_table_1_and_figure_3_by_default_and_their_plans_fit_a_gpu_job(tmp_path, capsys):
    """The device-first presets: all 50,000 training images, the paper's budgets, and an estimated plan
    under 8 minutes on an H200 by the committed throughput table (estimates until a GPU measures them)."""
    for preset, stages in (("cifar10", TABLE1), ("cifar10-transfer", FIGURE3)):
        assert main(["run", "--preset", preset, "--out", str(tmp_path), "--dry-run", "--estimate-for", "nvidia-h200"]) == 0
        out = capsys.readouterr().out
        listed = [line.split()[0] for line in out.splitlines()[1:] if line.split() and line.split()[0] in STAGES]
        assert listed == [stage for stage in STAGES if stage in stages]
        total = float(next(line for line in out.splitlines() if line.startswith("total")).split()[-2].replace(",", ""))
        assert 0 < total < 480
    suite = Suite(PRESETS["cifar10"](), tmp_path)
    assert suite._sizes() == (50_000, 10_000)
    p = suite.preset
    assert p.robust.adversary.eps == 0.5 and p.relabel == {"eps": 0.5, "steps": 100, "step_size": 0.1}
    assert p.evaluation.eps == 0.25 and p.evaluation.norm == "l2"


def test_a_plan_counts_only_the_parts_no_run_has_finished(tmp_path):
    """Work an earlier run finished is not work left: after a run, a new recipe for D_det leaves its retraining
    and its evaluation to do, and the plan counts only those; a transfer stage stopped after its attack and
    its trainings has no image passes left."""
    preset = PRESETS["tiny"]()
    Suite(preset, tmp_path, progress=False).run(["evaluate", "transfer"])
    det = replace(preset.retrain["D_det"], lr=preset.retrain["D_det"].lr / 2)
    changed = replace(preset, retrain={**preset.retrain, "D_det": det})
    fresh = {row["stage"]: row["work"] for row in Suite(changed, tmp_path / "fresh", progress=False).plan()}
    left = {row["stage"]: row["work"] for row in Suite(changed, tmp_path, progress=False).plan()}
    assert list(preset.retrain)[-1] == "D_det" and left["retrain"] == fresh["retrain"][-2:] != []  # train, predict
    assert left["evaluate"] == fresh["evaluate"][-2:] != []  # D_det's model, the last one evaluated
    suite = Suite(preset, tmp_path, progress=False)
    (suite.folder("transfer") / "result.json").unlink()
    assert [row["image_passes"] for row in suite.plan(["transfer"])] == [0]
    assert fresh["transfer"][0][2] > 0 and len(fresh["transfer"]) == 1 + 2 * len(preset.transfer_models)


def test_a_plan_without_throughput_rows_says_which_are_missing(tmp_path):
    row = Suite(PRESETS["cifar10-paper"](), tmp_path).plan(["standard"], device="a-device-nobody-measured")[0]
    assert row["seconds"] is None and row["missing"] == ("resnet50 forward (bf16)", "resnet50 train (bf16)")


def test_a_deadline_starts_only_the_stages_that_fit_and_names_the_others(tmp_path):
    lines = []
    results = Suite(PRESETS["tiny"](), tmp_path, progress=False, log=lines.append).run(deadline=0)
    assert results["skipped"]["standard"].startswith("deadline: 0 s left, about")
    assert results["skipped"]["D_NR"] == "needs standard" and results["skipped"]["retrain"].startswith("needs ")
    assert set(results["skipped"]) == set(STAGES) - {"report"} and results["stages"] == {}
    assert json.loads((tmp_path / "results.json").read_text())["skipped"] == results["skipped"]
    results = Suite(PRESETS["tiny"](), tmp_path, progress=False, log=lines.append).run(["D_NR", "report"], deadline=3600)
    assert results["skipped"] == {} and set(results["stages"]) == {"standard", "D_NR"}
    assert "Stages not run" not in (tmp_path / "report.md").read_text()
    Suite(PRESETS["tiny"](), tmp_path, progress=False, log=lines.append).run(["D_rand", "report"], deadline=0)
    assert "Stages not run" in (report := (tmp_path / "report.md").read_text()) and "* `D_rand`: deadline" in report
    with pytest.raises(ValueError, match="deadline must be a number of seconds >= 0, got -1"):
        Suite(PRESETS["tiny"](), tmp_path, progress=False).run(deadline=-1)


def test_unknown_stage_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'retrain2'"):
        Suite(PRESETS["tiny"](), tmp_path, progress=False).run(["retrain2"])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke preset end to end (about 80 s on 2 CPU cores)."""
    out = tmp_path_factory.mktemp("smoke")
    assert main(["run", "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "results.json").read_text())


def test_smoke_model_trained_on_robust_features_is_more_robust_than_on_non_robust_ones(smoke):
    accuracy = smoke["accuracy"]
    assert accuracy["D_R"]["robust"] > accuracy["D_NR"]["robust"] + 0.1
    assert accuracy["D (adversarial)"]["robust"] > accuracy["D"]["robust"] + 0.3


def test_smoke_robust_accuracy_is_autoattacks_reported_beside_the_papers_pgd_and_the_projects(smoke):
    for name, row in smoke["accuracy"].items():
        assert row["robust"] == smoke["evaluations"][name]["autoattack"]["robust"], name
        assert row["robust"] <= min(row["pgd"], row["paper_pgd"]) and row["pgd"] - row["robust"] <= 0.01, name
        assert row["evaluated_images"] == smoke["settings"]["evaluation"]["images"] and row["flags"] == [], name


def test_smoke_d_r_carries_the_robust_features_and_d_nr_the_non_robust_ones(smoke):
    """Ground truth: in D_R the label is told by the robust templates far more, and by the
    non-robust ones far less, than in D_NR."""
    d_r, d_nr = (smoke["constructions"][name]["planted"]["constructed"] for name in ("D_R", "D_NR"))
    assert d_r["nonrobust_points_to_label"] < d_nr["nonrobust_points_to_label"] - 0.25
    assert d_r["robust_points_to_label"] > d_nr["robust_points_to_label"] + 0.25


def test_smoke_models_trained_on_d_rand_and_d_det_beat_chance(smoke):
    """Section 3.2: the relabelled sets look mislabelled, yet what is learned from them generalises."""
    chance = 1 / smoke["data"]["classes"]
    assert smoke["accuracy"]["D_rand"]["clean"] > chance + 0.3
    assert smoke["accuracy"]["D_det"]["clean"] > chance + 0.3


def test_smoke_d_rand_and_d_det_tie_the_new_label_to_the_non_robust_templates_only(smoke):
    chance = 1 / smoke["data"]["classes"]
    for name in ("D_rand", "D_det"):
        planted = smoke["constructions"][name]["planted"]["constructed"]
        assert planted["nonrobust_points_to_label"] > 0.9, name
    assert abs(smoke["constructions"]["D_rand"]["planted"]["constructed"]["robust_points_to_label"] - chance) < 0.05
    assert smoke["constructions"]["D_det"]["planted"]["constructed"]["robust_points_to_label"] < chance  # it names y, not y + 1


def test_smoke_constructions_report_their_diagnostics(smoke):
    constructions = smoke["constructions"]
    assert constructions["D_det"]["success_rate"] > 0.9 and constructions["D_rand"]["success_rate"] > 0.9
    assert 0 < constructions["D_R"]["relative_distance"]["mean"] < 1


def test_smoke_architectures_that_learn_more_from_d_det_are_fooled_more_by_transfer(smoke):
    """Figure 3: accuracy after training on D_det and transfer success rise together."""
    points = sorted((a["test_accuracy"], a["success_rate"]) for a in smoke["transfer"]["architectures"].values())
    assert len(points) >= 2 and [y for _, y in points] == sorted(y for _, y in points)


def test_smoke_d_rand_and_d_det_perturbations_leak_no_robust_feature(smoke):
    """Goh's leakage question, answered by the ground truth: the perturbations lie in the non-robust
    span, and less of them in the robust span than of a random direction; a linear classifier still
    learns from them, because the planted non-robust templates are linear features."""
    leakage = smoke["discussion"]["leakage"]
    for name in ("D_rand", "D_det"):
        planted = leakage["planted"][name]
        assert planted["robust_share"] < leakage["planted"]["random_share"] < 0.5 < planted["nonrobust_share"], name
        assert abs(planted["robust_target_coefficient"]) < 0.1 * planted["nonrobust_target_coefficient"], name
        alignment = leakage["alignment"][name]
        assert alignment["standard model"] > alignment["robust model"] > leakage["random_alignment"], name
        assert leakage["linear"][f"{name} perturbations"] > 1 / smoke["data"]["classes"] + 0.2, name


def test_smoke_non_transferable_perturbations_carry_less_of_the_target_template_and_teach_less(smoke):
    """Nakkiran: perturbations kept from transferring carry less of the target's non-robust template,
    transfer less (to the guard, and to a model not used in building them), and retrain worse."""
    for name, variants in smoke["discussion"]["non_transferable"]["sets"].items():
        ordinary, guarded = variants["ordinary"], variants["non-transferable"]
        assert guarded["planted"]["nonrobust_target_coefficient"] < 0.75 * ordinary["planted"]["nonrobust_target_coefficient"], name
        assert guarded["guard_transfer_rate"] < 0.5 * ordinary["guard_transfer_rate"], name
        assert guarded["held_out_transfer_rate"] < ordinary["held_out_transfer_rate"] - 0.2, name
        assert guarded["retrained"]["clean"] < ordinary["retrained"]["clean"] - 0.05, name
        assert guarded["success_rate"] > 0.5, name


def test_smoke_distillation_from_featureless_images_explains_only_part_of_d_rand(smoke):
    """Wallace's control: a student of the teacher's labels on noise learns something, but far less
    than the model retrained on D_rand, whose images carry the non-robust features."""
    found = smoke["discussion"]["distillation"]
    for source, row in found["sources"].items():
        assert row["clean"] < smoke["accuracy"]["D_rand"]["clean"] - 0.2, source
        assert row["largest_label_share"] < 0.5, source  # the teacher does not label everything alike


def test_smoke_d_r_images_look_like_their_targets_and_d_nr_images_like_their_starts(smoke):
    """The reviewers' question: inverting a robust representation recovers the image's look;
    a standard representation is matched by invisible changes to the start image."""
    sets = smoke["discussion"]["similarity"]["sets"]
    assert sets["D_R"]["ssim_to_target"] > sets["D_R"]["ssim_to_start"] + 0.5
    assert sets["D_NR"]["ssim_to_start"] > sets["D_NR"]["ssim_to_target"] + 0.5
    ablation = smoke["discussion"]["similarity"]["ablation"]
    assert ablation["a quarter of the steps"]["relative_distance"] > ablation["as the preset"]["relative_distance"]


@pytest.mark.slow
def test_the_cifar10_cpu_preset_runs_every_stage_on_a_few_real_cifar10_images(tmp_path):
    """The cifar10-cpu code path (CIFAR-10 JPEG copy, fast net, the paper's eps) cut to 300 images and 1 epoch."""
    jpeg = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10" / "jpeg_q75" / "cifar10_jpeg_q75.npz"
    if not jpeg.is_file():
        pytest.skip(f"data file(s) absent: {jpeg}")
    preset = PRESETS["cifar10-cpu"]()
    one_epoch = {name: replace(config, epochs=1) for name, config in preset.retrain.items()}
    small = replace(preset, data_options={"indices": list(range(300)), "cache": False}, train_images=300, test_images=100,
                    standard=replace(preset.standard, epochs=1), robust=replace(preset.robust, epochs=1), retrain=one_epoch,
                    inversion={**preset.inversion, "steps": 2}, relabel={**preset.relabel, "steps": 2},
                    evaluation=replace(preset.evaluation, images=20, paper_steps=2, pgd_steps=2,
                                       sweep={"steps": (1, 2), "restarts": (1,)}))
    results = Suite(small, tmp_path, progress=False, log=lambda line: None).run()
    assert results["data"] == {"name": "CIFAR-10 (JPEG q75 re-encode)", "train": 300, "test": 100, "classes": 10}
    assert set(results["accuracy"]) == {"D", "D (adversarial)", *CONSTRUCTED}
    assert results["evaluation"]["eps"] == 0.25 and results["settings"]["relabel"]["eps"] == 0.5
    assert results["settings"]["robust"]["adversary"]["eps"] == 0.5
    assert set(results["transfer"]["architectures"]) == {"fast", "mlp"}
    assert all(row["evaluated_images"] == 20 for row in results["accuracy"].values())
    assert (tmp_path / "report.md").is_file()

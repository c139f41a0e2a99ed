"""The paper's Section 3 experiments as one resumable pipeline of cached stages.

Stages: ``standard`` and ``robust`` (the source models), ``D_R``, ``D_NR``, ``D_rand``, ``D_det``
(the constructed training sets, :mod:`empirical.construct`), ``retrain`` (standard training on each
constructed set; clean accuracy on the ORIGINAL test set), ``evaluate`` (every model's robustness on
the original test set: the paper's PGD, the project's PGD and AutoAttack, the evaluation of record,
with sanity flags; :func:`empirical.evaluate.evaluate`), ``transfer`` (architectures trained on
D_det, and how often the source model's adversarial examples fool them), the published discussion's
experiments (``leakage``, ``non_transferable``, ``distillation``, ``similarity``: see
:mod:`empirical.discussion` and :mod:`empirical.discussion_stages`) and ``report``. Every stage is
stored under ``out/stages/<stage>-<key>/`` where the key hashes its settings and the keys of the
stages it reads, so a stage is skipped when its folder is complete, recomputed when anything it
depends on changes, and resumed from its checkpoints when it was interrupted. A run longer than one
sitting on one machine travels as its small files (git ignores the rest under ``results/``): the
trained models, results and records, without the constructed sets' data.pt (614 MB each at 50,000
CIFAR images), training checkpoints and construction chunks (the finished runs committed as
``results/suite-<preset>`` keep their whole stage folders out, so a clone trains their models
again); a stage that reads a set whose data.pt is missing builds it again and checks it against
the digest its stage recorded; and a run that includes the retrain stage retrains on each set
right after building it (the retrain stage's work, timed as part of it), so a sitting that ends
between stages leaves models, not sets to build again.
The retrain and evaluate stages keep each model's training and record in a folder keyed by that
model alone (``retrain-<set>-<key>``, ``evaluate-<model>-<key>``): a new recipe for one set trains
and evaluates only that set's model again. The stages' names and
what each reads live in :mod:`empirical.stages`, every setting of a run in a preset
(:mod:`empirical.presets`).

Under ``torchrun --nproc_per_node=N`` every process runs every stage together (DDP training,
sharded construction and evaluation, :mod:`empirical.distributed`); process 0 writes the files
and logs, and the processes meet at the end of each stage.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import torch

from .construct import features_dataset, inversion_starts, relabelled_dataset
from .data import ImageData, load, planted_features
from . import discussion_report, discussion_stages
from .device import configure, native_bf16, policy, resolve as resolve_precision
from .distributed import all_sum, barrier, is_main, setup, world
from .evaluate import Evaluation, adversarial_examples, evaluate, predict, transfer
from .files import write_json
from .presets import FIGURE3, PRESETS, TABLE1, Preset  # FIGURE3, TABLE1: also read from here by their importers
from .provenance import git_commit, versions
from .report import pearson, write_report
from .stages import CONSTRUCTED, DEPENDS, DISCUSSION, STAGES, accuracy_row, with_dependencies
from .stopwatch import Stopwatch
from .throughput import device_kind, estimate, model_key
from .train import MODEL, TrainConfig, finished, has_finished, load_checkpoint, load_model, save_checkpoint, train

DATA, SAMPLES = "data.pt", "samples.pt"  # a constructed set, and its first 8 images for the report
MODELS = ("D", "D (adversarial)", *CONSTRUCTED)  # the models the evaluate stage measures, by their training set
_TRAINED_BY = {"D": "standard", "D (adversarial)": "robust"}  # the source models' stages
# The evaluation's cost depends on how many images survive each attack, unknown before the run. The plan
# assumes the share below for the models meant to be robust and none for the others (the paper's finding),
# and counts AutoAttack's standard version as APGD-CE's 100 steps on every image, then, on a survivor,
# about 1,800 more input-gradient steps (APGD-T and FAB-T) and Square's 5,000 forward queries.
ASSUMED_ROBUST = {"D (adversarial)": 0.5, "D_R": 0.5}
AUTOATTACK_STEPS = {"all": 100, "survivor": 1800, "survivor_queries": 5000}


def stage_keys(preset: Preset, precision: str = "fp32") -> dict[str, str]:
    """A 16-hex key per stage: its own settings, the keys of the stages it reads and the hot loops'
    ``precision`` ("bf16" or "fp32", :mod:`empirical.device`), so a stage computed in one precision
    is never reused in the other. fp32 adds nothing to the text hashed: fp32 keys are the ones
    every stage had before bf16 ran on CPUs, and runs made then stay reusable."""
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be 'bf16' or 'fp32', got {precision!r}")
    own = {"standard": preset.standard, "robust": preset.robust, "D_R": preset.inversion, "D_NR": preset.inversion,
           "D_rand": preset.relabel, "D_det": preset.relabel, "retrain": preset.retrain, "evaluate": preset.evaluation,
           "transfer": (preset.transfer_models, preset.transfer_attack, preset.retrain.get("D_det"),
                        # per-architecture changes only where a preset has them: the other presets' keys stay as they were
                        *([preset.transfer_training] if preset.transfer_training else [])),
           "leakage": {k: preset.discussion[k] for k in ("probe_images", "probe_steps", "alignment_images")},
           "non_transferable": (preset.discussion["guard_weight"], preset.standard, preset.relabel, preset.retrain),
           "distillation": (preset.discussion["sources"], preset.retrain.get("D_rand")),
           "similarity": (preset.inversion, preset.discussion["ablation_images"]), "report": ()}
    data = (preset.data, preset.data_options, preset.train_images, preset.test_images)
    keys: dict[str, str] = {}
    for stage in STAGES:
        hashed = [stage, data, _plain(own[stage]), [keys[d] for d in DEPENDS[stage]]] + ([precision] if precision != "fp32" else [])
        keys[stage] = _short_key(hashed)
    return keys


def _short_key(value: list) -> str:
    """16 hex digits of the sha256 of ``value`` as sorted-key JSON: the stage keys and the per-part folders' names."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _plain(value):
    if hasattr(value, "__dataclass_fields__"):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _recorded_precision(results: dict) -> str:
    """The precision a run's results.json records; runs from before bf16 on CPUs record none and were fp32."""
    return results.get("precision", "fp32")


class Suite:
    """A run of a preset in ``out``: :meth:`run` executes (or skips) the stages; :meth:`plan` lists them."""

    def __init__(self, preset: Preset, out: str | Path, *, data_path: str | None = None, device=None,
                 precision: str = "auto", progress: bool = True, log: Callable[[str], None] = print) -> None:
        self.preset, self.out = preset, Path(out)
        self.progress, self.log = progress and is_main(), log if is_main() else (lambda line: None)
        self.device = configure(setup(device))
        self.requested_precision = precision  # "auto" resolves per device, also for a plan's --estimate-for
        self.precision = resolve_precision(precision, self.device)  # of the hot loops; the evaluation of record is fp32
        self.keys = stage_keys(preset, self.precision)
        location = {"root" if preset.data == "cifar10" else "path": data_path} if data_path else {}
        options = dict(preset.data_options, **location)
        self._data_options = options
        self._data: tuple[ImageData, ImageData] | None = None
        self._computed: set[str] = set()  # the stages this object ran rather than found cached
        self._skipped: dict[str, str] = {}  # stage -> why the last run left it out
        self._timed: set[str] = set()  # the stages this object has timed (empirical.stopwatch: one sitting each)
        self._constructed: dict[str, ImageData] = {}  # the constructed sets in memory, by stage

    def folder(self, stage: str) -> Path:
        return self.out / "stages" / f"{stage}-{self.keys[stage]}"

    def retraining(self, name: str, config: TrainConfig | None = None) -> Path:
        """Where a network trains on constructed set ``name`` with ``config`` (default: the retrain
        stage's for that set): keyed by that set and the training settings, so a change to one set's
        retraining leaves the other sets' models reusable, and the transfer stage's architecture that
        D_det's retraining already trained is not trained again. A run made before these folders keeps
        the retrain stage's trainings inside that stage's folder, whose key covers every set's settings:
        they are used where they are."""
        config = self.preset.retrain[name] if config is None else config
        before = self.folder("retrain") / name
        if config == self.preset.retrain[name] and before.is_dir():
            return before
        return self.out / "stages" / f"retrain-{name}-{_short_key([name, self.keys[name], _plain(config)])}"

    def _trained(self, name: str) -> Path:
        """The folder that trains model ``name`` (:data:`MODELS`, or a source stage's name): that stage's
        folder, or the set's retraining."""
        stage = _TRAINED_BY.get(name, name)
        return self.folder(stage) if stage in _TRAINED_BY.values() else self.retraining(stage)

    def evaluating(self, name: str) -> Path:
        """Where the evaluate stage keeps its record of model ``name`` (and the measurements in progress): keyed by
        the model's training folder and the evaluation it gets, so a change to one model (a new recipe
        for one set) evaluates only that model again; the others' records are reused."""
        trained = self._trained(name).relative_to(self.out).as_posix()
        key = _short_key([name, trained, _plain(self._evaluation(name))])
        return self.out / "stages" / f"evaluate-{_TRAINED_BY.get(name, name)}-{key}"

    def _evaluation(self, name: str) -> Evaluation:
        """The evaluation of model ``name``: the sweep of attack strengths only on the two source models."""
        return self.preset.evaluation if name in _TRAINED_BY else replace(self.preset.evaluation, sweep=None)

    def done(self, stage: str) -> bool:
        return (self.folder(stage) / "result.json").is_file()

    def plan(self, stages=STAGES, device: str | None = None) -> list[dict]:
        """Each stage with its key, whether it is cached, its work and, with ``device`` (a kind of
        :func:`empirical.throughput.device_kind`), its estimated seconds from the throughput table's
        rows of the precision the run would have there (fp32 for the evaluation of record).

        Work is counted in image passes per (model, operation): training steps, attack and
        inversion steps (forward and backward to the input) and forward passes. The evaluation's
        depends on how many images survive its attacks: see :data:`ASSUMED_ROBUST`. A part that an
        earlier sitting or run finished (a set's retraining, a model's evaluation, a transfer
        architecture, the transfer attack's examples) is not counted.
        """
        work = self._work()
        rows = []
        for stage in stages:
            row = {"stage": stage, "key": self.keys[stage], "cached": self.done(stage),
                   "image_passes": sum(passes for _, _, passes in work[stage]), "work": work[stage]}
            if device is not None:
                precision = "fp32" if stage == "evaluate" else resolve_precision(self.requested_precision, device)
                found = estimate(work[stage], device, precision)  # the evaluation of record is fp32
                row.update(seconds=found.seconds, missing=found.missing, estimated=found.estimated)
            rows.append(row)
        return rows

    def _work(self) -> dict[str, list[tuple[str, str, int]]]:
        """(model key, operation, image passes) per stage; see :meth:`plan`."""
        train_n, test_n = self._sizes()
        p, e = self.preset, self.preset.evaluation
        key = lambda c: model_key(c.model, c.model_options)  # noqa: E731

        def training(config: TrainConfig) -> list[tuple[str, str, int]]:
            items = [(key(config), "train", config.epochs * train_n), (key(config), "forward", test_n)]
            if config.adversary:
                items.append((key(config), "attack", config.epochs * train_n * config.adversary.steps))
            return items

        attacked = min(e.images or test_n, test_n)
        targets = min(e.pgd.targets, 9)  # the project's PGD tries further targets on the images that survive

        def evaluation(name: str, config: TrainConfig) -> list[tuple[str, str, int]]:
            robust = ASSUMED_ROBUST.get(name, 0.0)
            tries = 1 + robust * max(targets - 1, 0)
            steps = (e.paper_steps + e.pgd_steps * (1 + len(e.eps_factors)) * tries
                     + AUTOATTACK_STEPS["all"] + robust * AUTOATTACK_STEPS["survivor"])
            if e.sweep and name in ("D", "D (adversarial)"):
                steps += sum(s * r for s in e.sweep["steps"] for r in e.sweep["restarts"]) * tries
            queries = test_n + attacked * robust * AUTOATTACK_STEPS["survivor_queries"]
            return [(key(config), "attack", round(attacked * steps)), (key(config), "forward", round(queries))]

        transfer_attack = test_n * (p.transfer_attack.steps * p.transfer_attack.restarts if p.transfer_attack else 0)
        evaluated = {name: config for name, config in {"D": p.standard, "D (adversarial)": p.robust, **p.retrain}.items()
                     if not (self.evaluating(name) / "record.json").is_file()}
        retrained = {name: config for name, config in p.retrain.items() if not has_finished(self.retraining(name) / "train")}
        transferred = [config for config in map(p.transfer_config, p.transfer_models)
                       if not has_finished(self.retraining("D_det", config) / "train")]
        if (self.folder("transfer") / "adversarial.pt").is_file():
            transfer_attack = 0  # made in an earlier sitting
        det, d = p.retrain["D_det"], p.discussion
        return {
            "standard": training(p.standard), "robust": training(p.robust),
            "D_R": [(key(p.robust), "inversion", train_n * p.inversion["steps"])],
            "D_NR": [(key(p.standard), "inversion", train_n * p.inversion["steps"])],
            "D_rand": [(key(p.standard), "attack", train_n * p.relabel["steps"]), (key(p.standard), "forward", train_n)],
            "D_det": [(key(p.standard), "attack", train_n * p.relabel["steps"]), (key(p.standard), "forward", train_n)],
            "retrain": [item for config in retrained.values() for item in training(config)],
            "evaluate": [item for name, config in evaluated.items() for item in evaluation(name, config)],
            "transfer": [(key(p.standard), "attack", transfer_attack)] + [
                item for config in transferred for item in training(config)],
            "leakage": [(key(config), "attack", 2 * min(d["alignment_images"], train_n)) for config in (p.standard, p.robust)],
            "non_transferable": [*training(p.standard), *training(p.standard), *training(p.retrain["D_rand"]), *training(det),
                                 (key(p.standard), "attack", 2 * 2 * train_n * p.relabel["steps"])],
            "distillation": [item for _ in d["sources"] for item in
                             [(key(p.standard), "forward", train_n), *training(p.retrain["D_rand"])]],
            "similarity": [(key(p.robust), "inversion", 3 * min(d["ablation_images"], train_n) * p.inversion["steps"])],
            "report": [],
        }

    def _sizes(self) -> tuple[int, int]:
        if self._data is not None:
            return len(self._data[0]), len(self._data[1])
        if self.preset.data == "planted":
            return self.preset.data_options.get("n_train", 10_000), self.preset.data_options.get("n_test", 2000)
        sizes = {"cifar10-jpeg": (50_000, 10_000), "cifar10": (50_000, 10_000), "fashion-mnist": (60_000, 10_000)}[self.preset.data]
        return (min(sizes[0], self.preset.train_images or sizes[0]), min(sizes[1], self.preset.test_images or sizes[1]))

    @property
    def data(self) -> tuple[ImageData, ImageData]:
        if self._data is None:
            train_data, test_data = (load(self.preset.data, split, **self._data_options) for split in ("train", "test"))
            if self.preset.train_images:
                train_data = train_data.subset(min(self.preset.train_images, len(train_data)))
            if self.preset.test_images:
                test_data = test_data.subset(min(self.preset.test_images, len(test_data)))
            self._data = (train_data, test_data)
        return self._data

    def run(self, stages=STAGES, *, deadline: float | None = None) -> dict:
        """Run the named stages and what they need, skipping completed ones; write results.json (after
        every stage, so an interrupted run leaves what it finished) and the report. Where the retrain
        stage is wanted, each constructed set is retrained right after it is built (not under a deadline).

        ``deadline``: seconds from now. A stage starts only while the time left covers its estimated
        seconds on this device (:meth:`plan`; zero where the throughput table has no row), and not
        at all once a stage it needs was not run; the stages left out are named in results.json's
        ``skipped``. A stage already running is not cut (stop it with Ctrl-C or SIGTERM: training
        saves a checkpoint and the evaluation keeps each finished model; rerun to resume). The log
        says first what the run's precision will cost (:meth:`_precision_costs`).
        """
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stages {unknown}; choose from {STAGES}")
        if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not deadline >= 0):
            raise ValueError(f"deadline must be a number of seconds >= 0, got {deadline!r}")
        for line in self._precision_costs():
            self.log(line)
        wanted = with_dependencies(stages)
        ends = None if deadline is None else time.perf_counter() + deadline
        self._skipped = {}
        for stage in STAGES:
            if stage not in wanted or stage == "report":
                continue
            reason = self._skip_reason(stage, ends)
            if reason:
                self._skipped[stage] = reason
                self.log(f"{stage}: skipped ({reason})")
                continue
            self._stage(stage)
            if stage in CONSTRUCTED and "retrain" in wanted and ends is None and not self.done("retrain"):
                self._retrain(stage)  # now, while the set is in memory: a sitting that ends before the retrain stage keeps it
            self._write_results()
        results = self._write_results()
        if is_main() and "report" in wanted:
            samples = self._samples()
            starts = {"x0": inversion_starts(self.data[0], self.preset.inversion.get("start", "image"))[:8]}
            write_report(results, samples, self.out, sections=discussion_report.sections(results),
                         figures=discussion_report.figures(results, {**samples, **starts}, self.out))
            self.log(f"report: {self.out / 'report.md'}")
        barrier()
        return results

    def _precision_costs(self) -> list[str]:
        """What this run's precision will cost, said before it starts: bf16 that this CPU only emulates,
        and a folder whose last run was in the other precision (the stage keys include it)."""
        lines = []
        if self.precision == "bf16" and self.device.type == "cpu" and not native_bf16():
            lines.append("precision bf16 on a CPU without native bf16 (no AMX or AVX-512 BF16 units): oneDNN emulates "
                         "it, 13-30x slower than fp32 (the fast nets, benchmarks/results/bench_cpu_cifar_no_native_bf16"
                         ".json)")
        recorded = self.out / "results.json"
        before = _recorded_precision(json.loads(recorded.read_text())) if recorded.is_file() else self.precision
        if before != self.precision:
            lines.append(f"{recorded} records precision {before} and this run's is {self.precision}: the stages made "
                         f"in {before} are not reused (--precision {before} reuses them)")
        return lines

    def _skip_reason(self, stage: str, ends: float | None) -> str | None:
        """Why ``stage`` must not start now (a needed stage was skipped, or the deadline), or None.

        Every process takes the same decision (the first one's clock would not do under torchrun).
        """
        missing = [d for d in DEPENDS[stage] if d in self._skipped]
        if missing:
            return f"needs {', '.join(missing)}"
        if ends is None or self.done(stage):
            return None
        needed = self.plan([stage], device=device_kind(self.device))[0]["seconds"] or 0.0
        left = ends - time.perf_counter()
        fits = all_sum(torch.tensor([float(left >= needed)])).item() == world()[1]
        return None if fits else f"deadline: {max(left, 0):.0f} s left, about {needed:.0f} s needed"

    def _write_results(self) -> dict:
        results = self.results()
        if is_main():
            write_json(self.out / "results.json", results, indent=1)
        return results

    def stage_result(self, stage: str) -> dict:
        """A finished stage's result.json."""
        return json.loads((self.folder(stage) / "result.json").read_text())

    def _stage(self, stage: str) -> dict:
        folder = self.folder(stage)
        if self.done(stage):
            self.log(f"{stage}: cached ({folder.name})")
            return self.stage_result(stage)
        folder.mkdir(parents=True, exist_ok=True)
        self.log(f"{stage}: running ({folder.name})")
        with self._timing(stage) as watch:
            if stage in CONSTRUCTED:
                result = self._construct(stage, folder)
            elif stage in DISCUSSION:
                result = getattr(discussion_stages, stage)(self, folder)
            else:
                result = getattr(self, f"_run_{stage}")(folder)
        result.update(seconds=watch.seconds, sittings=watch.sittings)  # every sitting's time, when resumed after a stop
        self._computed.add(stage)
        if is_main():
            write_json(folder / "result.json", result, indent=1)  # the completion marker, written last
        barrier()
        self.log(f"{stage}: done in {result['seconds']:.1f} s")
        return result

    @contextmanager
    def _timing(self, stage: str) -> Iterator[Stopwatch]:
        """Work on ``stage`` in the run's precision, timed into its folder's stopwatch: one sitting per
        process, however often this object comes back to the stage."""
        folder = self.folder(stage)
        folder.mkdir(parents=True, exist_ok=True)
        with Stopwatch(folder / "stopwatch.json", continues=stage in self._timed) as watch, policy(precision=self.precision):
            self._timed.add(stage)
            yield watch

    # --- stages ---------------------------------------------------------------------------------

    def model(self, name: str) -> torch.nn.Module:
        """A trained model: a source stage's ("standard", "robust"), or one by its training set (:data:`MODELS`)."""
        folder = self._trained(name) / "train"
        if not (folder / MODEL).is_file():
            raise FileNotFoundError(f"model {name!r} is not trained in {self.out}: run its stage first")
        return load_model(folder / MODEL, self.device)[0]

    def evaluation_record(self, name: str) -> dict | None:
        """The evaluate stage's record of model ``name`` (:data:`MODELS`), or None before that stage has run."""
        return self.stage_result("evaluate")["models"][name] if self.done("evaluate") else None

    @classmethod
    def reopen(cls, out: str | Path, **options) -> Suite:
        """The suite whose results.json is in ``out``, with its preset as the code defines it now.

        Raises ValueError when the preset's settings have changed since that run (its stage
        folders would not be found).
        """
        out = Path(out)
        if not (out / "results.json").is_file():
            raise FileNotFoundError(f"{out} has no results.json: not a suite run's folder")
        recorded = json.loads((out / "results.json").read_text())
        if recorded["preset"] not in PRESETS:
            raise ValueError(f"{out} was run with preset {recorded['preset']!r}, which no longer exists")
        preset = PRESETS[recorded["preset"]]()
        if _plain(preset) != recorded["settings"]:
            raise ValueError(f"preset {preset.name!r} has changed since the run in {out}: its stages cannot be reused")
        return cls(preset, out, precision=_recorded_precision(recorded), **options)

    def train_and_measure(self, config: TrainConfig, data: ImageData | Callable[[], ImageData], folder: Path, *,
                          relabelled: bool = False) -> dict:
        """Train, then clean accuracy on the original test set (with ``relabelled``, also how often the
        model names y + 1: D_det pairs class y's robust features with y + 1). ``data``: the training
        set, or a function that gives it, called only where the training has not finished. The result
        keeps the training's own seconds (every sitting's), also where a finished training is reused."""
        done = finished(folder / "train", config, self.device)
        if done is None:
            done = train(config, data() if callable(data) else data, out=folder / "train", device=self.device,
                         progress=self.progress)
        test = self.data[1]
        predictions = predict(done.model, test.images, device=self.device)
        result = {"clean": float((predictions == test.labels).float().mean()), "training_seconds": done.seconds}
        if relabelled:
            shifted = (test.labels + 1) % test.num_classes
            result["follows_relabelling"] = float((predictions == shifted).float().mean())
        return result

    def _run_standard(self, folder: Path) -> dict:
        return {"training": "standard", **self.train_and_measure(self.preset.standard, self.data[0], folder)}

    def _run_robust(self, folder: Path) -> dict:
        return {"training": "adversarial", **self.train_and_measure(self.preset.robust, self.data[0], folder)}

    def _construct(self, stage: str, folder: Path) -> dict:
        constructed, stats = self._build(stage, folder)
        if is_main():
            # the report's images, kept without data.pt; cloned, since a saved view carries the whole set's storage
            save_checkpoint(folder / SAMPLES, {"images": constructed.images[:8].cpu().clone()})
        stats["digest"] = constructed.digest()  # what a rebuilt set must equal
        if self.preset.data == "planted":  # the ground truth: which planted part speaks for the new labels
            features = planted_features(**self.preset.data_options)
            stats["planted"] = {"constructed": features.agreement(constructed.images, constructed.labels),
                                "original": features.agreement(self.data[0].images, constructed.labels)}
        return {"source": "robust" if stage == "D_R" else "standard", **stats}

    def _build(self, stage: str, folder: Path) -> tuple[ImageData, dict]:
        """Construct ``stage``'s set from its source model, resuming from ``folder/chunks``, and save it to
        ``folder/data.pt``; the set and its construction's statistics."""
        model = self.model("robust" if stage == "D_R" else "standard")
        chunks = folder / "chunks"  # each finished chunk of the construction: a killed run resumes there
        if stage in ("D_R", "D_NR"):
            constructed, stats = features_dataset(model, self.data[0], name=stage, checkpoint=chunks, device=self.device,
                                                  progress=self.progress, **self.preset.inversion)
        else:
            constructed, stats = relabelled_dataset(model, self.data[0], mode=stage[2:], checkpoint=chunks,
                                                    device=self.device, progress=self.progress, **self.preset.relabel)
        if is_main():
            save_checkpoint(folder / DATA, {"images": constructed.images, "labels": constructed.labels,
                                            "classes": list(constructed.classes), "name": constructed.name,
                                            "source": constructed.source})
            shutil.rmtree(chunks)  # data.pt holds them all now
        barrier()
        self._constructed[stage] = constructed
        return constructed, stats

    def constructed(self, stage: str) -> ImageData:
        """A constructed training set: the one this object built or loaded before, else from its stage folder
        (read and checked once: at 50,000 CIFAR images a set is 614 MB), else, where the folder was carried
        without its data.pt, built again and checked against the digest its stage recorded."""
        if stage not in self._constructed:
            path = self.folder(stage) / DATA
            if path.is_file():
                saved = load_checkpoint(path)
                self._constructed[stage] = ImageData(saved["images"], saved["labels"], tuple(saved["classes"]),
                                                     saved["name"], saved["source"])
            else:
                self._rebuild(stage)
        return self._constructed[stage]

    def _rebuild(self, stage: str) -> None:
        folder, recorded = self.folder(stage), self.stage_result(stage).get("digest")
        if recorded is None:
            raise FileNotFoundError(f"{folder / DATA} is missing and {stage} recorded no digest to check a rebuilt set "
                                    f"against: delete {folder} to construct it again (and rerun what reads it)")
        self.log(f"{stage}: building its set again ({DATA} is not in {folder.name}), to match digest {recorded[:16]}")
        with policy(precision=self.precision):
            rebuilt = self._build(stage, folder)[0].digest()
        if rebuilt != recorded:
            del self._constructed[stage]
            (folder / DATA).unlink(missing_ok=True)  # never read in its place
            raise ValueError(f"{stage} built again differs from the set its dependants were made from (digest {rebuilt} "
                             f"!= recorded {recorded}): the source model, code or machine differs; delete {folder} "
                             "to construct it again and rerun what reads it")

    def _run_retrain(self, folder: Path) -> dict:
        return {name: self._retrained(name) for name in CONSTRUCTED}

    def _retrained(self, name: str) -> dict:
        """The retrain stage's training on constructed set ``name`` (trained unless finished) and its accuracy."""
        return {"training": "standard", **self.train_and_measure(self.preset.retrain[name], partial(self.constructed, name),
                                                                 self.retraining(name), relabelled=name == "D_det")}

    def _retrain(self, name: str) -> None:
        """The retrain stage's training on ``name`` ahead of the stage, timed as part of it."""
        if finished(self.retraining(name) / "train", self.preset.retrain[name], self.device) is None:
            self.log(f"retrain: {name}, while its set is at hand")
            with self._timing("retrain"):
                self._retrained(name)

    def _run_evaluate(self, folder: Path) -> dict:
        """Every model's robustness on the original test set. Each model's record is kept as it finishes
        (and, while it runs, what :func:`evaluate` has measured) in :meth:`evaluating`'s folder, so an interrupted stage
        resumes where it stopped and a stage rerun for one changed model evaluates only that one."""
        test, records = self.data[1], {}
        for name in MODELS:
            place = self.evaluating(name)
            done = place / "record.json"
            if done.is_file():
                records[name] = json.loads(done.read_text())
                continue
            model = self.model(name)
            self.log(f"evaluate: {name}")
            with Stopwatch(place / "stopwatch.json") as watch:
                record = evaluate(model, test.images, test.labels, self._evaluation(name), device=self.device,
                                  state=place, progress=self.progress)
            records[name] = {**record, "evaluation_seconds": watch.seconds}
            if is_main():
                write_json(done, records[name], indent=1)
            barrier()
        return {"models": records}

    def _run_transfer(self, folder: Path) -> dict:
        """Figure 3: each architecture trained on D_det (in :meth:`retraining`'s folders: one that D_det's
        retraining trained is reused), then attacked by transfer from the standard model. The adversarial
        examples are made once for every target and kept in the stage's folder, so a stopped stage
        resumes without making them again."""
        source, test, attack = self.model("standard"), self.data[1], self.preset.transfer_attack
        kept = folder / "adversarial.pt"
        if not kept.is_file():
            begun = time.perf_counter()
            adversarial = adversarial_examples(source, test.images, test.labels, attack, device=self.device)
            if is_main():
                save_checkpoint(kept, {"images": adversarial.cpu(), "seconds": time.perf_counter() - begun})
            barrier()
        made = load_checkpoint(kept)
        adversarial, attack_seconds = made["images"], made["seconds"]
        architectures = {}
        for name in self.preset.transfer_models:
            config = self.preset.transfer_config(name)
            place = self.retraining("D_det", config)
            trained = self.train_and_measure(config, partial(self.constructed, "D_det"), place, relabelled=True)
            model = load_model(place / "train" / MODEL, self.device)[0]
            moved = transfer(source, model, test.images, test.labels, attack, device=self.device, adversarial=adversarial)
            architectures[name] = {"test_accuracy": moved["target_clean_correct"] / moved["images"],
                                   "success_rate": moved["success_rate"], "training_seconds": trained["training_seconds"],
                                   "follows_relabelling": trained["follows_relabelling"], "folder": place.name,
                                   "details": moved}
        points = [(a["test_accuracy"], a["success_rate"]) for a in architectures.values()]
        return {"architectures": architectures, "correlation": pearson(points), "attack_seconds": attack_seconds}

    # --- results ---------------------------------------------------------------------------------

    def results(self) -> dict:
        """Everything measured so far, with the settings, git hash, device and versions."""
        stages = {s: self.stage_result(s) for s in STAGES if s != "report" and self.done(s)}
        train_data, test_data = self.data
        accuracy_rows = {}
        if "standard" in stages:
            accuracy_rows["D"] = accuracy_row(stages["standard"])
        if "robust" in stages:
            accuracy_rows["D (adversarial)"] = accuracy_row(stages["robust"])
        accuracy_rows.update({name: accuracy_row(value) for name, value in stages.get("retrain", {}).items()
                              if isinstance(value, dict)})
        evaluated = stages.get("evaluate", {}).get("models", {})
        for name, row in accuracy_rows.items():
            if name in evaluated:
                row.update(_robustness(evaluated[name]))
        return {
            "preset": self.preset.name, "settings": _plain(self.preset),
            "data": {"name": train_data.name, "train": len(train_data), "test": len(test_data), "classes": train_data.num_classes},
            "git": git_commit(), "device": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "precision": self.precision,
            "processes": world()[1],
            "versions": versions(),
            "stages": {s: {"seconds": stages[s]["seconds"], "sittings": stages[s].get("sittings"), "key": self.keys[s],
                           "cached": s not in self._computed, **_parts_seconds(s, stages[s])}
                       for s in stages},  # sittings: None in runs made before they were counted
            "evaluation": self.preset.evaluation.to_dict(),
            "constructions": {s: stages[s] for s in CONSTRUCTED if s in stages},
            "accuracy": accuracy_rows,
            "evaluations": evaluated,
            "transfer": stages.get("transfer"),
            "discussion": {stage: stages[stage] for stage in DISCUSSION if stage in stages},
            "skipped": dict(self._skipped),
        }

    def _samples(self) -> dict[str, torch.Tensor]:
        samples = {"D": self.data[0].images[:8]}
        for stage in CONSTRUCTED:
            if self.done(stage):
                saved = self.folder(stage) / SAMPLES
                samples[stage] = load_checkpoint(saved)["images"] if saved.is_file() else self.constructed(stage).images[:8]
        return samples


def _parts_seconds(stage: str, result: dict) -> dict:
    """The seconds behind the results of a stage made of separately kept parts (retrain: one training per
    set; evaluate: one record per model; transfer: its attack and one training per architecture) as
    ``{"parts_seconds": ...}``: the sum of the parts' own times, every sitting's, reused parts included,
    where the stage's own stopwatch counts only the parts it made itself. Empty for the other stages,
    and where a part's time was not kept."""
    if stage == "retrain":
        times = [part.get("training_seconds") for part in result.values() if isinstance(part, dict)]
    elif stage == "transfer":
        times = [result.get("attack_seconds")] + [part.get("training_seconds") for part in result["architectures"].values()]
    elif stage == "evaluate":
        times = [record.get("evaluation_seconds") for record in result["models"].values()]
    else:
        return {}
    return {} if not times or None in times else {"parts_seconds": sum(times)}


def _robustness(record: dict) -> dict:
    """A model's accuracy-table entries from its evaluation: ``robust`` is AutoAttack's (the number of record)."""
    row = {"robust": record["autoattack"]["robust"], "paper_pgd": record["paper_pgd"]["accuracy"],
           "pgd": record["pgd"]["accuracy"], "evaluated_images": record["images"], "evaluated_clean": record["clean"],
           "flags": [flag["name"] for flag in record["flags"]]}
    if "sweep" in record:
        row["sweep"] = record["sweep"]
    return row

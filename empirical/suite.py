"""The paper's Section 3 experiments as one resumable pipeline of cached stages.

Stages: ``standard`` and ``robust`` (the source models), ``D_R``, ``D_NR``, ``D_rand``, ``D_det``
(the constructed training sets, :mod:`empirical.construct`), ``retrain`` (standard training on each
constructed set, evaluated on the ORIGINAL test set), ``transfer`` (architectures trained on D_det,
and how often the source model's adversarial examples fool them) and ``report``. Every stage is
stored under ``out/stages/<stage>-<key>/`` where the key hashes its settings and the keys of the
stages it reads, so a stage is skipped when its folder is complete, recomputed when anything it
depends on changes, and resumed from its checkpoints when it was interrupted.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from .attacks import Attack
from .construct import features_dataset, relabelled_dataset
from .data import ImageData, load
from .evaluate import accuracy, robust_accuracy, sweep, transfer
from .provenance import git_commit, versions
from .report import pearson, write_report
from .train import MODEL, TrainConfig, load_checkpoint, load_model, save_checkpoint, train

CONSTRUCTED = ("D_R", "D_NR", "D_rand", "D_det")
STAGES = ("standard", "robust", *CONSTRUCTED, "retrain", "transfer", "report")
DEPENDS = {"standard": (), "robust": (), "D_R": ("robust",), "D_NR": ("standard",), "D_rand": ("standard",),
           "D_det": ("standard",), "retrain": CONSTRUCTED, "transfer": ("standard", "D_det"),
           "report": ("standard", "robust", *CONSTRUCTED, "retrain", "transfer")}


@dataclass(frozen=True)
class Preset:
    """Every setting of a run, in one place. Accuracies are measured on the original test set."""

    name: str
    description: str
    data: str
    standard: TrainConfig
    robust: TrainConfig
    retrain: dict[str, TrainConfig]
    evaluation: Attack
    data_options: dict = field(default_factory=dict)
    train_images: int | None = None  # the first this many training images (None: all)
    test_images: int | None = None
    inversion: dict = field(default_factory=lambda: {"steps": 1000, "step_size": 0.1, "start": "image"})
    relabel: dict = field(default_factory=lambda: {"eps": 0.5, "steps": 100, "step_size": 0.1})
    sweep: dict | None = None  # {"steps": (...), "restarts": (...)} for the attack-strength sweep
    transfer_models: tuple[str, ...] = ()
    transfer_attack: Attack | None = None


def _smoke() -> Preset:
    base = TrainConfig(model="fast", model_options={"width": 16}, epochs=10, batch_size=128, lr=0.1, nesterov=True,
                       schedule="triangle", augment=None)
    return Preset(
        name="smoke", description="planted-features data (ground truth), fast net, CPU, a few minutes",
        data="planted", data_options={"n_train": 2000, "n_test": 1000}, standard=base,
        robust=replace(base, adversary=Attack("l2", 0.25, steps=3, step_size=2.5 * 0.25 / 3)),
        retrain={name: base for name in CONSTRUCTED}, evaluation=Attack("l2", 0.25, steps=10),
        inversion={"steps": 100, "step_size": 0.1, "start": "image"}, relabel={"eps": 0.5, "steps": 20, "step_size": 0.1},
        sweep={"steps": (5, 20), "restarts": (1, 2)}, transfer_models=("fast",), transfer_attack=Attack("l2", 0.25, steps=10))


def _cifar(name: str, description: str, model: str, epochs: int, paper: bool) -> Preset:
    base = TrainConfig(model=model, epochs=epochs, batch_size=128 if paper else 512, lr=0.1 if paper else 0.2,
                       schedule="step" if paper else "triangle", milestones=(50, 100) if paper else (),
                       nesterov=not paper, label_smoothing=0.0 if paper else 0.1)
    retrain = {"D_R": base, "D_NR": base, "D_rand": replace(base, lr=base.lr / 10),
               "D_det": replace(base, augment=None)}  # the known per-set settings: lr 0.01 on D_rand, no augmentation on D_det
    return Preset(
        name=name, description=description, data="cifar10-jpeg", standard=base,
        robust=replace(base, adversary=Attack("l2", 0.5, steps=7, step_size=0.1, random_start=False)),
        retrain=retrain, evaluation=Attack("l2", 0.25, steps=20), sweep={"steps": (20, 100), "restarts": (1, 4)},
        inversion={"steps": 1000, "step_size": 0.1, "start": "image"}, relabel={"eps": 0.5, "steps": 100, "step_size": 0.1},
        transfer_models=("resnet18", "resnet50", "vgg16", "densenet121", "inception"),
        transfer_attack=Attack("l2", 0.5, steps=20))


PRESETS: dict[str, Callable[[], Preset]] = {
    "smoke": _smoke,
    "cifar10": lambda: _cifar("cifar10", "CIFAR-10 JPEG set, ResNet-18, short triangle schedules: one GPU",
                              "resnet18", 15, paper=False),
    "cifar10-paper": lambda: _cifar("cifar10-paper", "CIFAR-10 JPEG set, the paper's ResNet-50 settings (hours; several GPUs)",
                                    "resnet50", 150, paper=True),
}


def stage_keys(preset: Preset) -> dict[str, str]:
    """A 16-hex key per stage: its own settings and the keys of the stages it reads."""
    own = {"standard": preset.standard, "robust": preset.robust, "D_R": preset.inversion, "D_NR": preset.inversion,
           "D_rand": preset.relabel, "D_det": preset.relabel, "retrain": (preset.retrain, preset.evaluation, preset.sweep),
           "transfer": (preset.transfer_models, preset.transfer_attack, preset.retrain.get("D_det")), "report": ()}
    data = (preset.data, preset.data_options, preset.train_images, preset.test_images)
    keys: dict[str, str] = {}
    for stage in STAGES:
        text = json.dumps([stage, data, _plain(own[stage]), [keys[d] for d in DEPENDS[stage]]], sort_keys=True)
        keys[stage] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return keys


def _plain(value):
    if hasattr(value, "__dataclass_fields__"):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Suite:
    """A run of a preset in ``out``: :meth:`run` executes (or skips) the stages; :meth:`plan` lists them."""

    def __init__(self, preset: Preset, out: str | Path, *, data_path: str | None = None, device=None,
                 progress: bool = True, log: Callable[[str], None] = print) -> None:
        self.preset, self.out, self.progress, self.log = preset, Path(out), progress, log
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.keys = stage_keys(preset)
        location = {"root" if preset.data == "cifar10" else "path": data_path} if data_path else {}
        options = dict(preset.data_options, **location)
        self._data_options = options
        self._data: tuple[ImageData, ImageData] | None = None

    def folder(self, stage: str) -> Path:
        return self.out / "stages" / f"{stage}-{self.keys[stage]}"

    def done(self, stage: str) -> bool:
        return (self.folder(stage) / "result.json").is_file()

    def plan(self, stages=STAGES) -> list[dict]:
        """Each stage with its key, whether it is cached, and its cost in image passes (forward + backward)."""
        train_n, test_n = self._sizes()
        p = self.preset
        epochs = lambda c: c.epochs * train_n * (1 + (c.adversary.steps if c.adversary else 0))  # noqa: E731
        cost = {"standard": epochs(p.standard), "robust": epochs(p.robust),
                "D_R": train_n * p.inversion["steps"], "D_NR": train_n * p.inversion["steps"],
                "D_rand": train_n * p.relabel["steps"], "D_det": train_n * p.relabel["steps"],
                "retrain": sum(epochs(c) for c in p.retrain.values()) + 4 * test_n * p.evaluation.steps,
                "transfer": len(p.transfer_models) * epochs(p.retrain["D_det"]), "report": 0}
        return [{"stage": s, "key": self.keys[s], "cached": self.done(s), "image_passes": cost[s]} for s in stages]

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

    def run(self, stages=STAGES) -> dict:
        """Run the named stages and what they need, skipping completed ones; write results.json and the report."""
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stages {unknown}; choose from {STAGES}")
        wanted = _with_dependencies(stages)
        for stage in STAGES:
            if stage in wanted and stage != "report":
                self._stage(stage)
        results = self.results()
        (self.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        if "report" in wanted:
            write_report(results, self._samples(), self.out)
            self.log(f"report: {self.out / 'report.md'}")
        return results

    def _stage(self, stage: str) -> dict:
        folder = self.folder(stage)
        if self.done(stage):
            self.log(f"{stage}: cached ({folder.name})")
            return json.loads((folder / "result.json").read_text())
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        self.log(f"{stage}: running ({folder.name})")
        result = self._construct(stage, folder) if stage in CONSTRUCTED else getattr(self, f"_run_{stage}")(folder)
        result["seconds"] = time.perf_counter() - started
        temporary = folder / "result.json.tmp"
        temporary.write_text(json.dumps(result, indent=1) + "\n")
        temporary.replace(folder / "result.json")  # the completion marker, written last
        self.log(f"{stage}: done in {result['seconds']:.1f} s")
        return result

    # --- stages ---------------------------------------------------------------------------------

    def _model(self, stage: str) -> torch.nn.Module:
        return load_model(self.folder(stage) / "train" / MODEL, self.device)[0]

    def _train_and_evaluate(self, config: TrainConfig, data: ImageData, folder: Path, *, sweep_it: bool = False) -> dict:
        model = train(config, data, out=folder / "train", device=self.device, progress=self.progress).model
        test = self.data[1]
        result = {"clean": accuracy(model, test.images, test.labels, device=self.device),
                  "robust": robust_accuracy(model, test.images, test.labels, self.preset.evaluation, device=self.device)}
        if sweep_it and self.preset.sweep:
            result["sweep"] = sweep(model, test.images, test.labels, norm=self.preset.evaluation.norm,
                                    eps=self.preset.evaluation.eps, device=self.device, **self.preset.sweep)
        return result

    def _run_standard(self, folder: Path) -> dict:
        return {"training": "standard", **self._train_and_evaluate(self.preset.standard, self.data[0], folder, sweep_it=True)}

    def _run_robust(self, folder: Path) -> dict:
        return {"training": "adversarial", **self._train_and_evaluate(self.preset.robust, self.data[0], folder, sweep_it=True)}

    def _construct(self, stage: str, folder: Path) -> dict:
        source = "robust" if stage == "D_R" else "standard"
        model = self._model(source)
        if stage in ("D_R", "D_NR"):
            constructed, stats = features_dataset(model, self.data[0], name=stage, device=self.device, progress=self.progress,
                                                  **self.preset.inversion)
        else:
            constructed, stats = relabelled_dataset(model, self.data[0], mode=stage[2:], device=self.device,
                                                    progress=self.progress, **self.preset.relabel)
        save_checkpoint(folder / "data.pt", {"images": constructed.images, "labels": constructed.labels,
                                             "classes": list(constructed.classes), "name": constructed.name,
                                             "source": constructed.source})
        return {"source": source, **stats}

    def constructed(self, stage: str) -> ImageData:
        saved = load_checkpoint(self.folder(stage) / "data.pt")
        return ImageData(saved["images"], saved["labels"], tuple(saved["classes"]), saved["name"], saved["source"])

    def _run_retrain(self, folder: Path) -> dict:
        return {name: {"training": "standard", **self._train_and_evaluate(self.preset.retrain[name], self.constructed(name),
                                                                           folder / name)}
                for name in CONSTRUCTED}

    def _run_transfer(self, folder: Path) -> dict:
        source, test, det = self._model("standard"), self.data[1], self.constructed("D_det")
        architectures = {}
        for name in self.preset.transfer_models:
            model = train(replace(self.preset.retrain["D_det"], model=name), det, out=folder / name, device=self.device,
                          progress=self.progress).model
            moved = transfer(source, model, test.images, test.labels, self.preset.transfer_attack, device=self.device)
            architectures[name] = {"test_accuracy": accuracy(model, test.images, test.labels, device=self.device),
                                   "success_rate": moved["success_rate"], "details": moved}
        points = [(a["test_accuracy"], a["success_rate"]) for a in architectures.values()]
        return {"architectures": architectures, "correlation": pearson(points)}

    # --- results ---------------------------------------------------------------------------------

    def results(self) -> dict:
        """Everything measured so far, with the settings, git hash, device and versions."""
        stages = {s: json.loads((self.folder(s) / "result.json").read_text()) for s in STAGES if s != "report" and self.done(s)}
        train_data, test_data = self.data
        accuracy_rows = {}
        if "standard" in stages:
            accuracy_rows["D"] = _row(stages["standard"])
        if "robust" in stages:
            accuracy_rows["D (adversarial)"] = _row(stages["robust"])
        accuracy_rows.update({name: _row(value) for name, value in stages.get("retrain", {}).items()
                              if isinstance(value, dict)})
        return {
            "preset": self.preset.name, "settings": _plain(self.preset),
            "data": {"name": train_data.name, "train": len(train_data), "test": len(test_data), "classes": train_data.num_classes},
            "git": git_commit(), "device": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "versions": versions(),
            "stages": {s: {"seconds": stages[s]["seconds"], "key": self.keys[s], "cached": False} for s in stages},
            "evaluation": {"norm": self.preset.evaluation.norm, "eps": self.preset.evaluation.eps},
            "constructions": {s: stages[s] for s in CONSTRUCTED if s in stages},
            "accuracy": accuracy_rows,
            "transfer": stages.get("transfer"),
        }

    def _samples(self) -> dict[str, torch.Tensor]:
        samples = {"D": self.data[0].images[:8]}
        for stage in CONSTRUCTED:
            if self.done(stage):
                samples[stage] = self.constructed(stage).images[:8]
        return samples


def _row(result: dict) -> dict:
    return {key: result[key] for key in ("training", "clean", "robust", "sweep") if key in result}


def _with_dependencies(stages) -> set[str]:
    wanted, todo = set(), list(stages)
    while todo:
        stage = todo.pop()
        if stage not in wanted:
            wanted.add(stage)
            todo.extend(d for d in DEPENDS[stage] if d != "report")
    return wanted

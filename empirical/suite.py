"""The paper's Section 3 experiments as one resumable pipeline of cached stages.

Stages: ``standard`` and ``robust`` (the source models), ``D_R``, ``D_NR``, ``D_rand``, ``D_det``
(the constructed training sets, :mod:`empirical.construct`), ``retrain`` (standard training on each
constructed set; clean accuracy on the ORIGINAL test set), ``evaluate`` (every model's robustness on
the original test set: the paper's PGD, the project's PGD and AutoAttack, the evaluation of record,
with sanity flags; :func:`empirical.evaluate.evaluate`), ``transfer`` (architectures trained on
D_det, and how often the source model's adversarial examples fool them), the published discussion's
experiments (``leakage``, ``non_transferable``, ``distillation``, ``similarity``: see
:mod:`empirical.discussion` and the ``_run_*`` methods) and ``report``. Every stage is
stored under ``out/stages/<stage>-<key>/`` where the key hashes its settings and the keys of the
stages it reads, so a stage is skipped when its folder is complete, recomputed when anything it
depends on changes, and resumed from its checkpoints when it was interrupted.

Under ``torchrun --nproc_per_node=N`` every process runs every stage together (DDP training,
sharded construction and evaluation, :mod:`empirical.distributed`); process 0 writes the files
and logs, and the processes meet at the end of each stage.
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
from .construct import features_dataset, inversion_starts, relabelled_dataset
from .data import ImageData, load, planted_features
from . import discussion_report
from .device import configure, policy, resolve as resolve_precision
from .discussion import gradient_alignment, likeness, linear_probe, other_images, planted_shares, random_alignment
from .distributed import all_sum, barrier, is_main, setup, world
from .evaluate import Evaluation, adversarial_examples, evaluate, predict, transfer
from .provenance import git_commit, versions
from .report import pearson, write_report
from .throughput import device_kind, estimate, model_key
from .train import MODEL, TrainConfig, load_checkpoint, load_model, save_checkpoint, train

CONSTRUCTED = ("D_R", "D_NR", "D_rand", "D_det")
DISCUSSION = ("leakage", "non_transferable", "distillation", "similarity")  # the published discussion's experiments
STAGES = ("standard", "robust", *CONSTRUCTED, "retrain", "evaluate", "transfer", *DISCUSSION, "report")
DEPENDS = {"standard": (), "robust": (), "D_R": ("robust",), "D_NR": ("standard",), "D_rand": ("standard",),
           "D_det": ("standard",), "retrain": CONSTRUCTED, "evaluate": ("standard", "robust", "retrain"),
           "transfer": ("standard", "D_det"), "leakage": ("standard", "robust", "D_rand", "D_det"),
           "non_transferable": ("standard", "D_rand", "D_det", "retrain"), "distillation": ("standard",),
           "similarity": ("robust", "D_R", "D_NR"),
           "report": ("standard", "robust", *CONSTRUCTED, "retrain", "evaluate", "transfer", *DISCUSSION)}
MODELS = ("D", "D (adversarial)", *CONSTRUCTED)  # the models the evaluate stage measures, by their training set
# The evaluation's cost depends on how many images survive each attack, unknown before the run. The plan
# assumes the share below for the models meant to be robust and none for the others (the paper's finding),
# and counts AutoAttack's standard version as APGD-CE's 100 steps on every image, then, on a survivor,
# about 1,800 more input-gradient steps (APGD-T and FAB-T) and Square's 5,000 forward queries.
ASSUMED_ROBUST = {"D (adversarial)": 0.5, "D_R": 0.5}
AUTOATTACK_STEPS = {"all": 100, "survivor": 1800, "survivor_queries": 5000}


@dataclass(frozen=True)
class Preset:
    """Every setting of a run, in one place. Accuracies are measured on the original test set."""

    name: str
    description: str
    data: str
    standard: TrainConfig
    robust: TrainConfig
    retrain: dict[str, TrainConfig]
    evaluation: Evaluation
    data_options: dict = field(default_factory=dict)
    train_images: int | None = None  # the first this many training images (None: all)
    test_images: int | None = None
    inversion: dict = field(default_factory=lambda: {"steps": 1000, "step_size": 0.1, "start": "image"})
    relabel: dict = field(default_factory=lambda: {"eps": 0.5, "steps": 100, "step_size": 0.1})
    transfer_models: dict[str, dict] = field(default_factory=dict)  # architecture -> its build options
    transfer_attack: Attack | None = None
    discussion: dict = field(default_factory=lambda: dict(DISCUSSION_SETTINGS))  # the discussion stages' settings


DISCUSSION_SETTINGS = {
    "probe_images": 10_000,  # leakage: the linear classifiers train on the first this many images of each set
    "probe_steps": 100,  # L-BFGS iterations of each linear classifier
    "alignment_images": 2000,  # leakage: perturbations whose gradient alignment is measured
    "guard_weight": 1.0,  # non_transferable: weight of the guard model's cross-entropy of y
    "sources": ("noise", "shuffled"),  # distillation: images labelled by the standard model
    "ablation_images": 500,  # similarity: images of each inversion ablation
}


def _smoke() -> Preset:
    """The planted-features data with an MLP: every outcome of Section 3 checkable against the ground truth.

    Why an MLP and robust_noise 1.25, measured (benchmarks/ablation_planted_relabelling.py: these
    settings with the source and retrained architecture swapped, 2 seeds each; its results file):
    * With the fast conv net as the source, the targeted perturbations add almost nothing of the
      target's non-robust template (+0.007 to +0.026, against 0.2 in a natural image), although
      most of their energy lies in the templates' fine DFT band; the likely cause is its fixed
      whitening layer, which amplifies every fine direction alike, the data's or not. Retrained on
      D_rand/D_det it scores 10-13% / 5-10% (chance: 10%). By hand I also tried grating templates,
      sign-symmetric robust templates, width 64, eps 1 and other schedules (no better), and 5,000-8,000
      training images (D_rand 28-35% with one seed, 11% with another).
    * The MLP's first layer sees every pixel and is trained only on the data's directions: its
      perturbations add +0.34 to +0.39 of the target's template, and D_rand retrains to 99%.
    * D_det also needs the robust part to be the harder feature, as on CIFAR-10: at robust_noise 0.75
      (robust part alone 84% accurate) the retrained MLP follows the robust relabelling r_y -> y + 1
      (8-9%); at 1.25 (alone 54%) it scores 63-65%.
    The standard model then relies on the non-robust templates (clean 100%, robust 0%, as the paper's),
    the adversarially trained one (eps 0.5, twice the evaluation eps as in the paper) on the robust ones.
    Robust accuracy is measured on the first 200 of the 1000 test images (a binomial standard error
    of at most 3.5 points), so that ``empirical run`` with its defaults takes under 2 minutes on 2
    CPU cores: the evaluation of record runs fp32 on every CPU, and AutoAttack's FAB-T and Square
    spend about 0.15 s on each image that survives them (measured: 59 s for the adversarially
    trained MLP on all 1000, where its 360 survivors cost 53 s; on 500 images the whole evaluation
    took 86 s of a 115 s run).
    """
    source = TrainConfig(model="mlp", model_options={"size": 16}, epochs=30, batch_size=128, lr=0.1, nesterov=True,
                         schedule="triangle", augment=None)
    retrain = replace(source, epochs=10, lr=0.05)
    return Preset(
        name="smoke", description="planted-features data (ground truth), an MLP, CPU, about a minute",
        data="planted", data_options={"n_train": 2000, "n_test": 1000, "robust_noise": 1.25}, standard=source,
        robust=replace(source, adversary=Attack.paper("l2", 0.5, steps=3)),
        retrain={name: retrain for name in CONSTRUCTED},
        evaluation=Evaluation("l2", 0.25, images=200, paper_steps=10, sweep={"steps": (5, 25), "restarts": (1, 2)}),
        inversion={"steps": 100, "step_size": 0.1, "start": "image"}, relabel={"eps": 0.5, "steps": 20, "step_size": 0.1},
        transfer_models={"mlp": {"size": 16}, "fast": {"width": 16}}, transfer_attack=Attack.paper("l2", 0.25, steps=10))


def _tiny() -> Preset:
    """The smoke preset at a one-epoch, few-hundred-image scale: every stage in seconds, to check the
    machinery (a new machine, the GPU check's control flow), not the science."""
    smoke = _smoke()
    base = replace(smoke.standard, epochs=1, model_options={"size": 16, "width": 8})
    return replace(smoke, name="tiny", description="the smoke preset on 300 images for one epoch: every stage in seconds",
                   data_options={"n_train": 300, "n_test": 100}, standard=base,
                   robust=replace(smoke.robust, epochs=1, model_options={"size": 16, "width": 8}),
                   retrain={name: base for name in CONSTRUCTED}, inversion={"steps": 3, "step_size": 0.1, "start": "image"},
                   relabel={"eps": 0.5, "steps": 3, "step_size": 0.2}, transfer_models={"mlp": {"size": 16}},
                   evaluation=replace(smoke.evaluation, images=50, paper_steps=2, pgd_steps=2,
                                      sweep={"steps": (1, 2), "restarts": (1,)}))


def _fashion() -> Preset:
    base = TrainConfig(model="fast", model_options={"width": 16}, epochs=5, batch_size=128, lr=0.1, nesterov=True,
                       schedule="triangle", augment=None, label_smoothing=0.1)
    return Preset(
        name="fashion", description="Fashion-MNIST (12k training images, 2k test), fast net, l2 eps 1 for training and "
        "relabelling (the paper's CIFAR-10 ratio: evaluation at half of it), CPU, under 30 minutes",
        data="fashion-mnist", train_images=12_000, test_images=2_000, standard=base,
        robust=replace(base, adversary=Attack.paper("l2", 1.0, steps=3)),
        retrain={name: base for name in CONSTRUCTED},
        evaluation=Evaluation("l2", 0.5, images=500, paper_steps=10,
                              sweep={"steps": (5, 25), "restarts": (1, 2)}),
        inversion={"steps": 100, "step_size": 0.1, "start": "image"}, relabel={"eps": 1.0, "steps": 20, "step_size": 0.2},
        transfer_models={"fast": {"width": 16}, "mlp": {"size": 28}}, transfer_attack=Attack.paper("l2", 1.0, steps=10))


def _cifar_cpu() -> Preset:
    """CIFAR-10 (the JPEG q75 copy) on a 2-core CPU in under an hour: the paper's threat models on fewer images.

    Kept from the paper: training eps 0.5 (l2), relabelling eps 0.5, evaluation eps 0.25, the
    four constructions and retraining on each. Cut, to fit (``--dry-run`` gives the plan's image
    passes; results/suite-cifar10-cpu/ the measured stage times): the first 10,000 training images
    and 1,000 test images (robust accuracy on the first 500: AutoAttack's FAB-T and Square cost
    1.6 s per surviving image for the Fashion-MNIST fast net on 2 cores); the fast net of width 16
    for 10 epochs instead of a ResNet-50 for 150 (benchmarks/bench_cpu_cifar.py on 2 cores, channels_last
    weights: 2,060 training and 2,630 input-gradient images/s, 1.8-1.9x width 32's; the whole run 37 min 40 s);
    adversarial training with 3 PGD steps; the inversion's
    100 steps of 0.1 (the paper: 1000; a path of 10 in l2, where images lie about 15 apart) and the
    relabelling's 20 steps of 0.1 (the paper: 100); transfer between two architectures (fast net,
    MLP) instead of five.
    """
    base = TrainConfig(model="fast", model_options={"width": 16}, epochs=10, batch_size=128, lr=0.1, nesterov=True,
                       schedule="triangle", label_smoothing=0.1)
    return Preset(
        name="cifar10-cpu", description="CIFAR-10 JPEG set (10k training images, 1k test), fast net, the paper's eps; "
        "2-core CPU, under an hour",
        data="cifar10-jpeg", train_images=10_000, test_images=1_000, standard=base,
        robust=replace(base, adversary=Attack.paper("l2", 0.5, steps=3)),
        retrain={"D_R": base, "D_NR": base, "D_rand": base, "D_det": replace(base, augment=None)},
        evaluation=Evaluation("l2", 0.25, images=500, paper_steps=20, sweep={"steps": (5, 25), "restarts": (1, 2)}),
        inversion={"steps": 100, "step_size": 0.1, "start": "image"}, relabel={"eps": 0.5, "steps": 20, "step_size": 0.1},
        transfer_models={"fast": {"width": 16}, "mlp": {"size": 32}}, transfer_attack=Attack.paper("l2", 0.5, steps=20))


TABLE1 = ("standard", "robust", *CONSTRUCTED, "retrain", "evaluate", "report")  # the stages behind Table 1 and Figure 2
FIGURE3 = ("standard", "D_det", "transfer", "report")  # the stages behind Figure 3


def _cifar_gpu() -> Preset:
    """CIFAR-10 (the JPEG q75 copy, all 50,000 training images) on one GPU: Table 1 in minutes.

    Kept from the paper: the training set, the threat models (adversarial training l2 eps 0.5 with
    the paper's 7 steps of 0.1, relabelling eps 0.5 with 100 steps of 0.1, evaluation at l2 0.25),
    the four constructions and the retraining on each. Changed, to fit one GPU job: the airbench94
    network (``fast``, width 64: 0.24 GFLOP per forward pass, a tenth of a ResNet-50's at 32x32)
    for 16 epochs of a triangle schedule at batch 512 instead of a ResNet-50 for 150; the
    inversion's 400 steps of 0.1 instead of 1000 (the ``cifar10-paper`` preset); robust accuracy on
    the first 1,000 test images. The inversion, measured (benchmarks/inversion_convergence.py, the
    cifar10-cpu preset's source models, 256 images): median relative representation distance after
    100 / 200 / 400 / 1000 constant steps of 0.1: 0.158 / 0.085 / 0.051 / 0.033 for D_R, 0.116 /
    0.084 / 0.064 / 0.046 for D_NR; 400 steps go about two thirds of the way from 100 to 1000 at 40%
    of the cost. Steps falling from 1.0 to 0 along a cosine do better on the robust model (200 steps:
    0.039) but far worse on the standard one (0.45: its representation is not smooth at that scale),
    so both sets keep the paper's constant steps.
    Its default stages are Table 1's (:data:`DEFAULT_STAGES`); Figure 3's is the ``cifar10-transfer`` preset.
    ``empirical run --preset cifar10 --dry-run --estimate-for nvidia-h200`` gives the plan's seconds
    from the throughput table.
    """
    base = TrainConfig(model="fast", model_options={"width": 64}, epochs=16, batch_size=512, lr=0.2, nesterov=True,
                       schedule="triangle", label_smoothing=0.1)
    return Preset(
        name="cifar10", description="CIFAR-10 JPEG set (all 50k training images), fast net of width 64, the paper's eps "
        "and relabelling: Table 1 on one GPU in minutes",
        data="cifar10-jpeg", standard=base,
        robust=replace(base, adversary=Attack("l2", 0.5, steps=7, step_size=0.1, random_start=False, loss="ce", targets=0)),
        retrain={"D_R": base, "D_NR": base, "D_rand": replace(base, lr=base.lr / 10), "D_det": replace(base, augment=None)},
        evaluation=Evaluation("l2", 0.25, images=1000, paper_steps=20, sweep={"steps": (10, 25), "restarts": (1, 2)}),
        inversion={"steps": 400, "step_size": 0.1, "start": "image"}, relabel={"eps": 0.5, "steps": 100, "step_size": 0.1},
        transfer_models={"fast": {"width": 64}, "resnet18": {}}, transfer_attack=Attack.paper("l2", 0.5, steps=20))


def _cifar_transfer() -> Preset:
    """Figure 3 on one GPU: the cifar10 preset's standard model and D_det, and the paper's five
    architectures trained on D_det (the cifar10 preset's D_det schedule), each then attacked by
    transfer from the standard model. In the cifar10 run's --out folder it reuses that run's
    standard model and D_det (same stage keys)."""
    table1 = _cifar_gpu()
    return replace(table1, name="cifar10-transfer",
                   description="Figure 3 on one GPU: five architectures trained on the cifar10 preset's D_det",
                   transfer_models={name: {} for name in ("resnet18", "resnet50", "vgg16", "densenet121", "inception")})


def _cifar_paper() -> Preset:
    """CIFAR-10 (the JPEG q75 copy) with the paper's settings: ResNet-50, 150 epochs, step schedule,
    the inversion's 1000 steps of 0.1; for several GPUs (``torchrun``), hours."""
    base = TrainConfig(model="resnet50", epochs=150, batch_size=128, lr=0.1, schedule="step", milestones=(50, 100))
    retrain = {"D_R": base, "D_NR": base, "D_rand": replace(base, lr=base.lr / 10),
               "D_det": replace(base, augment=None)}  # the known per-set settings: lr 0.01 on D_rand, no augmentation on D_det
    return Preset(
        name="cifar10-paper", description="CIFAR-10 JPEG set, the paper's ResNet-50 settings (hours; several GPUs)",
        data="cifar10-jpeg", standard=base,
        robust=replace(base, adversary=Attack("l2", 0.5, steps=7, step_size=0.1, random_start=False, loss="ce", targets=0)),
        retrain=retrain,
        evaluation=Evaluation("l2", 0.25, images=None, paper_steps=20, sweep={"steps": (25, 100), "restarts": (1, 4)}),
        inversion={"steps": 1000, "step_size": 0.1, "start": "image"}, relabel={"eps": 0.5, "steps": 100, "step_size": 0.1},
        transfer_models={name: {} for name in ("resnet18", "resnet50", "vgg16", "densenet121", "inception")},
        transfer_attack=Attack.paper("l2", 0.5, steps=20))


PRESETS: dict[str, Callable[[], Preset]] = {
    "tiny": _tiny,
    "smoke": _smoke,
    "fashion": _fashion,
    "cifar10-cpu": _cifar_cpu,
    "cifar10": _cifar_gpu,
    "cifar10-transfer": _cifar_transfer,
    "cifar10-paper": _cifar_paper,
}
DEFAULT_STAGES = {"cifar10": TABLE1, "cifar10-transfer": FIGURE3}  # what ``empirical run`` runs without --stages (else all)


def stage_keys(preset: Preset, precision: str = "fp32") -> dict[str, str]:
    """A 16-hex key per stage: its own settings, the keys of the stages it reads and the hot loops'
    ``precision`` ("bf16" or "fp32", :mod:`empirical.device`), so a stage computed in one precision
    is never reused in the other. fp32 adds nothing to the text hashed: fp32 keys are the ones
    every stage had before bf16 ran on CPUs, and runs made then stay reusable."""
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be 'bf16' or 'fp32', got {precision!r}")
    own = {"standard": preset.standard, "robust": preset.robust, "D_R": preset.inversion, "D_NR": preset.inversion,
           "D_rand": preset.relabel, "D_det": preset.relabel, "retrain": preset.retrain, "evaluate": preset.evaluation,
           "transfer": (preset.transfer_models, preset.transfer_attack, preset.retrain.get("D_det")),
           "leakage": {k: preset.discussion[k] for k in ("probe_images", "probe_steps", "alignment_images")},
           "non_transferable": (preset.discussion["guard_weight"], preset.standard, preset.relabel, preset.retrain),
           "distillation": (preset.discussion["sources"], preset.retrain.get("D_rand")),
           "similarity": (preset.inversion, preset.discussion["ablation_images"]), "report": ()}
    data = (preset.data, preset.data_options, preset.train_images, preset.test_images)
    keys: dict[str, str] = {}
    for stage in STAGES:
        hashed = [stage, data, _plain(own[stage]), [keys[d] for d in DEPENDS[stage]]] + ([precision] if precision != "fp32" else [])
        text = json.dumps(hashed, sort_keys=True)
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
        self._constructed: dict[str, ImageData] = {}  # the constructed sets in memory, by stage

    def folder(self, stage: str) -> Path:
        return self.out / "stages" / f"{stage}-{self.keys[stage]}"

    def done(self, stage: str) -> bool:
        return (self.folder(stage) / "result.json").is_file()

    def plan(self, stages=STAGES, device: str | None = None) -> list[dict]:
        """Each stage with its key, whether it is cached, its work and, with ``device`` (a kind of
        :func:`empirical.throughput.device_kind`), its estimated seconds from the throughput table's
        rows of the precision the run would have there (fp32 for the evaluation of record).

        Work is counted in image passes per (model, operation): training steps, attack and
        inversion steps (forward and backward to the input) and forward passes. The evaluation's
        depends on how many images survive its attacks: see :data:`ASSUMED_ROBUST`.
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

        evaluated = {"D": p.standard, "D (adversarial)": p.robust, **p.retrain}
        transfer_attack = test_n * (p.transfer_attack.steps * p.transfer_attack.restarts if p.transfer_attack else 0)
        det, d = p.retrain["D_det"], p.discussion
        return {
            "standard": training(p.standard), "robust": training(p.robust),
            "D_R": [(key(p.robust), "inversion", train_n * p.inversion["steps"])],
            "D_NR": [(key(p.standard), "inversion", train_n * p.inversion["steps"])],
            "D_rand": [(key(p.standard), "attack", train_n * p.relabel["steps"]), (key(p.standard), "forward", train_n)],
            "D_det": [(key(p.standard), "attack", train_n * p.relabel["steps"]), (key(p.standard), "forward", train_n)],
            "retrain": [item for config in p.retrain.values() for item in training(config)],
            "evaluate": [item for name, config in evaluated.items() for item in evaluation(name, config)],
            "transfer": [(key(p.standard), "attack", transfer_attack)] + [
                item for name, options in p.transfer_models.items()
                for item in training(replace(det, model=name, model_options=options))],
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
        every stage, so an interrupted run leaves what it finished) and the report.

        ``deadline``: seconds from now. A stage starts only while the time left covers its estimated
        seconds on this device (:meth:`plan`; zero where the throughput table has no row), and not
        at all once a stage it needs was not run; the stages left out are named in results.json's
        ``skipped``. A stage already running is not cut (stop it with Ctrl-C or SIGTERM: training
        saves a checkpoint and the evaluation keeps each finished model; rerun to resume).
        """
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stages {unknown}; choose from {STAGES}")
        if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not deadline >= 0):
            raise ValueError(f"deadline must be a number of seconds >= 0, got {deadline!r}")
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
            self.out.mkdir(parents=True, exist_ok=True)
            temporary = self.out / "results.json.tmp"
            temporary.write_text(json.dumps(results, indent=1) + "\n")
            temporary.replace(self.out / "results.json")
        return results

    def _stage_result(self, stage: str) -> dict:
        """A finished stage's result.json."""
        return json.loads((self.folder(stage) / "result.json").read_text())

    def _stage(self, stage: str) -> dict:
        folder = self.folder(stage)
        if self.done(stage):
            self.log(f"{stage}: cached ({folder.name})")
            return self._stage_result(stage)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        self.log(f"{stage}: running ({folder.name})")
        with policy(precision=self.precision):
            result = self._construct(stage, folder) if stage in CONSTRUCTED else getattr(self, f"_run_{stage}")(folder)
        result["seconds"] = time.perf_counter() - started
        self._computed.add(stage)
        if is_main():
            temporary = folder / "result.json.tmp"
            temporary.write_text(json.dumps(result, indent=1) + "\n")
            temporary.replace(folder / "result.json")  # the completion marker, written last
        barrier()
        self.log(f"{stage}: done in {result['seconds']:.1f} s")
        return result

    # --- stages ---------------------------------------------------------------------------------

    def model(self, name: str) -> torch.nn.Module:
        """A trained model: a source stage's ("standard", "robust"), or one by its training set (:data:`MODELS`)."""
        stage = {"D": "standard", "D (adversarial)": "robust"}.get(name, name)
        folder = self.folder(stage) / "train" if stage in ("standard", "robust") else self.folder("retrain") / stage / "train"
        if not (folder / MODEL).is_file():
            raise FileNotFoundError(f"model {name!r} is not trained in {self.out}: run its stage first")
        return load_model(folder / MODEL, self.device)[0]

    def evaluation_record(self, name: str) -> dict | None:
        """The evaluate stage's record of model ``name`` (:data:`MODELS`), or None before that stage has run."""
        return self._stage_result("evaluate")["models"][name] if self.done("evaluate") else None

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
        return cls(preset, out, precision=recorded.get("precision", "fp32"), **options)  # runs before bf16 on CPUs: fp32

    def _train_and_measure(self, config: TrainConfig, data: ImageData, folder: Path, *, relabelled: bool = False) -> dict:
        """Train, then clean accuracy on the original test set (with ``relabelled``, also how often the
        model names y + 1: D_det pairs class y's robust features with y + 1)."""
        model = train(config, data, out=folder / "train", device=self.device, progress=self.progress).model
        test = self.data[1]
        predictions = predict(model, test.images, device=self.device)
        result = {"clean": float((predictions == test.labels).float().mean())}
        if relabelled:
            shifted = (test.labels + 1) % data.num_classes
            result["follows_relabelling"] = float((predictions == shifted).float().mean())
        return result

    def _run_standard(self, folder: Path) -> dict:
        return {"training": "standard", **self._train_and_measure(self.preset.standard, self.data[0], folder)}

    def _run_robust(self, folder: Path) -> dict:
        return {"training": "adversarial", **self._train_and_measure(self.preset.robust, self.data[0], folder)}

    def _construct(self, stage: str, folder: Path) -> dict:
        source = "robust" if stage == "D_R" else "standard"
        model = self.model(source)
        if stage in ("D_R", "D_NR"):
            constructed, stats = features_dataset(model, self.data[0], name=stage, device=self.device, progress=self.progress,
                                                  **self.preset.inversion)
        else:
            constructed, stats = relabelled_dataset(model, self.data[0], mode=stage[2:], device=self.device,
                                                    progress=self.progress, **self.preset.relabel)
        if is_main():
            save_checkpoint(folder / "data.pt", {"images": constructed.images, "labels": constructed.labels,
                                                 "classes": list(constructed.classes), "name": constructed.name,
                                                 "source": constructed.source})
        self._constructed[stage] = constructed
        if self.preset.data == "planted":  # the ground truth: which planted part speaks for the new labels
            features = planted_features(**self.preset.data_options)
            stats["planted"] = {"constructed": features.agreement(constructed.images, constructed.labels),
                                "original": features.agreement(self.data[0].images, constructed.labels)}
        return {"source": source, **stats}

    def constructed(self, stage: str) -> ImageData:
        """A constructed training set: the one this object built or loaded before, else from its stage folder
        (read and checked once: at 50,000 CIFAR images a set is 614 MB)."""
        if stage not in self._constructed:
            saved = load_checkpoint(self.folder(stage) / "data.pt")
            self._constructed[stage] = ImageData(saved["images"], saved["labels"], tuple(saved["classes"]), saved["name"],
                                                 saved["source"])
        return self._constructed[stage]

    def _run_retrain(self, folder: Path) -> dict:
        return {name: {"training": "standard", **self._train_and_measure(self.preset.retrain[name], self.constructed(name),
                                                                          folder / name, relabelled=name == "D_det")}
                for name in CONSTRUCTED}

    def _run_evaluate(self, folder: Path) -> dict:
        """Every model's robustness on the original test set; each model's record is kept as it finishes
        (and AutoAttack's state within it), so an interrupted stage resumes where it stopped."""
        test, records = self.data[1], {}
        for name in MODELS:
            done = folder / f"{name}.json"
            if done.is_file():
                records[name] = json.loads(done.read_text())
                continue
            model = self.model(name)
            evaluation = self.preset.evaluation if name in ("D", "D (adversarial)") else replace(self.preset.evaluation, sweep=None)
            self.log(f"evaluate: {name}")
            records[name] = evaluate(model, test.images, test.labels, evaluation, device=self.device,
                                     state=folder / f"{name}.autoattack.json", progress=self.progress)
            if is_main():
                done.write_text(json.dumps(records[name], indent=1) + "\n")
            barrier()
        return {"models": records}

    def _run_transfer(self, folder: Path) -> dict:
        source, test, det = self.model("standard"), self.data[1], self.constructed("D_det")
        attack = self.preset.transfer_attack
        adversarial = adversarial_examples(source, test.images, test.labels, attack, device=self.device)  # made once, for every target
        architectures = {}
        for name, options in self.preset.transfer_models.items():
            config = replace(self.preset.retrain["D_det"], model=name, model_options=options)
            model = train(config, det, out=folder / name, device=self.device, progress=self.progress).model
            moved = transfer(source, model, test.images, test.labels, attack, device=self.device, adversarial=adversarial)
            architectures[name] = {"test_accuracy": moved["target_clean_correct"] / moved["images"],
                                   "success_rate": moved["success_rate"], "details": moved}
        points = [(a["test_accuracy"], a["success_rate"]) for a in architectures.values()]
        return {"architectures": architectures, "correlation": pearson(points)}

    def _run_leakage(self, folder: Path) -> dict:
        """Goh's question: could robust features leaking into D_rand's and D_det's perturbations explain
        what a model learns from them? Linear classifiers on pixels, trained on each set and on its
        perturbations alone (scored on the original test set); the perturbations' alignment with
        each source model's gradient toward the target; on the planted data, their share in each
        planted span (the ground truth)."""
        train_data, test = self.data
        settings = self.preset.discussion
        count = min(settings["probe_images"], len(train_data))
        first = lambda data: data.subset(count)  # noqa: E731
        probe = lambda data, inputs=None: linear_probe(first(data), test, inputs=inputs, steps=settings["probe_steps"])  # noqa: E731
        linear = {"D": probe(train_data)}
        models = {"robust model": self.model("robust"), "standard model": self.model("standard")}
        aligned = min(settings["alignment_images"], len(train_data))
        alignment, planted = {}, {}
        for name in ("D_rand", "D_det"):
            built = self.constructed(name)
            perturbations = built.images - train_data.images.cpu()
            linear[name] = probe(built)
            linear[f"{name} perturbations"] = probe(built, perturbations[:count])
            alignment[name] = {label: float(gradient_alignment(model, train_data.images[:aligned], train_data.labels[:aligned],
                                                                built.labels[:aligned], perturbations[:aligned],
                                                                device=self.device).median())
                               for label, model in models.items()}
            if self.preset.data == "planted":
                planted[name] = planted_shares(planted_features(**self.preset.data_options), perturbations, built.labels)
        result = {"linear": linear, "images": count, "alignment": alignment,
                  "random_alignment": random_alignment(train_data.images[0].numel())}
        if planted:
            dim, classes = train_data.images[0].numel(), train_data.num_classes
            result["planted"] = {**planted, "random_share": classes / dim}
        return result

    def _run_non_transferable(self, folder: Path) -> dict:
        """Nakkiran's "adversarial examples are just bugs, too": D_rand and D_det rebuilt with
        perturbations that move the source model to t while a guard model (the standard recipe,
        another seed) keeps y; how often each set's images move the guard and a held-out model (a
        third seed) to t, and what a model retrained on each set scores on the original test set."""
        train_data, test = self.data
        source = self.model("standard")
        others = {role: train(replace(self.preset.standard, seed=self.preset.standard.seed + offset), train_data,
                              out=folder / role, device=self.device, progress=self.progress).model
                  for offset, role in ((1, "guard"), (2, "held_out"))}
        retrained = self._stage_result("retrain")
        original = train_data.images.cpu()
        features = planted_features(**self.preset.data_options) if self.preset.data == "planted" else None
        sets = {}
        for mode in ("rand", "det"):
            name = f"D_{mode}"
            built, stats = relabelled_dataset(source, train_data, mode=mode, guard=others["guard"],
                                              guard_weight=self.preset.discussion["guard_weight"], device=self.device,
                                              progress=self.progress, **self.preset.relabel)
            variants = {"ordinary": (self.constructed(name), {"success_rate": self._stage_result(name)["success_rate"],
                                                              "retrained": _row(retrained[name])}),
                        "non-transferable": (built, {"success_rate": stats["success_rate"],
                                                     "guard_transfer_rate": stats["guard_transfer_rate"],
                                                     "retrained": {"training": "standard", **self._train_and_measure(
                                                         self.preset.retrain[name], built, folder / name,
                                                         relabelled=mode == "det")}})}
            sets[name] = {}
            for variant, (data, row) in variants.items():
                for role, model in others.items():
                    if f"{role}_transfer_rate" not in row:  # the construction measured its own guard's already
                        row[f"{role}_transfer_rate"] = float((predict(model, data.images, device=self.device)
                                                              == data.labels).float().mean())
                if features is not None:
                    row["planted"] = planted_shares(features, data.images - original, data.labels)
                sets[name][variant] = row
        return {"guard_weight": self.preset.discussion["guard_weight"], "sets": sets}

    def _run_distillation(self, folder: Path) -> dict:
        """Wallace's control: images with none of the data's features (noise; each training image's
        pixels shuffled), labelled by the standard model, then standard training on them, scored on
        the original test set. Above chance means the labels alone carry the teacher's function."""
        train_data, test = self.data
        teacher = self.model("standard")
        sources = {}
        for source in self.preset.discussion["sources"]:
            images = other_images(train_data, source)
            labels = predict(teacher, images, device=self.device)
            data = ImageData(images, labels, train_data.classes, f"{source} images labelled by the standard model",
                             f"distillation control ({source})")
            shares = torch.bincount(labels, minlength=train_data.num_classes).float() / len(labels)
            sources[source] = {"largest_label_share": float(shares.max()),
                               **self._train_and_measure(self.preset.retrain["D_rand"], data, folder / source)}
        return {"teacher_clean": self._stage_result("standard")["clean"], "chance": 1 / train_data.num_classes,
                "sources": sources}

    def _run_similarity(self, folder: Path) -> dict:
        """The reviewers' question: do D_R and D_NR images look like the image each inversion starts
        from (x0) or the one whose representation it matches (x)? Pixel l2 and SSIM to both; and how
        D_R's inversion responds to fewer steps, a noise start and matching the logits instead."""
        train_data = self.data[0]
        inversion = self.preset.inversion
        starts, targets = inversion_starts(train_data, inversion.get("start", "image")), train_data.images.cpu()
        sets = {name: likeness(self.constructed(name).images, starts, targets) for name in ("D_R", "D_NR")}
        subset = train_data.subset(min(self.preset.discussion["ablation_images"], len(train_data)))
        robust = self.model("robust")
        settings = {"as the preset": {}, "a quarter of the steps": {"steps": max(inversion["steps"] // 4, 1)},
                    "noise start": {"start": "noise"}, "matching the logits": {"layer": "logits"}}
        ablation = {}
        for label, change in settings.items():
            chosen = {**inversion, **change}
            built, stats = features_dataset(robust, subset, name="D_R", device=self.device, progress=False, **chosen)
            ablation[label] = {"settings": chosen, "relative_distance": stats["relative_distance"]["median"],
                               **likeness(built.images, inversion_starts(subset, chosen.get("start", "image")),
                                           subset.images.cpu())}
        return {"sets": sets, "ablation_images": len(subset), "ablation": ablation}

    # --- results ---------------------------------------------------------------------------------

    def results(self) -> dict:
        """Everything measured so far, with the settings, git hash, device and versions."""
        stages = {s: self._stage_result(s) for s in STAGES if s != "report" and self.done(s)}
        train_data, test_data = self.data
        accuracy_rows = {}
        if "standard" in stages:
            accuracy_rows["D"] = _row(stages["standard"])
        if "robust" in stages:
            accuracy_rows["D (adversarial)"] = _row(stages["robust"])
        accuracy_rows.update({name: _row(value) for name, value in stages.get("retrain", {}).items()
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
            "stages": {s: {"seconds": stages[s]["seconds"], "key": self.keys[s], "cached": s not in self._computed} for s in stages},
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
                samples[stage] = self.constructed(stage).images[:8]
        return samples


def _row(result: dict) -> dict:
    return {key: result[key] for key in ("training", "clean", "follows_relabelling") if key in result}


def _robustness(record: dict) -> dict:
    """A model's accuracy-table entries from its evaluation: ``robust`` is AutoAttack's (the number of record)."""
    row = {"robust": record["autoattack"]["robust"], "paper_pgd": record["paper_pgd"]["accuracy"],
           "pgd": record["pgd"]["accuracy"], "evaluated_images": record["images"], "evaluated_clean": record["clean"],
           "flags": [flag["name"] for flag in record["flags"]]}
    if "sweep" in record:
        row["sweep"] = record["sweep"]
    return row


def with_dependencies(stages) -> set[str]:
    """The named stages and every stage they need, transitively; the report needs none (it reports what is done)."""
    wanted, todo = set(), list(stages)
    while todo:
        stage = todo.pop()
        if stage not in wanted:
            wanted.add(stage)
            todo.extend(d for d in DEPENDS[stage] if stage != "report")
    return wanted

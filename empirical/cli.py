"""Command line: ``empirical run`` (the Section 3 suite), ``empirical bridge`` (Section 4's quantities on networks),
``empirical pixels`` (the two-Gaussian model fitted to CIFAR-10 pixels, beside networks on the same pair) and
``empirical pair-relabelling`` (D_rand and D_det on a class pair, beside that model's prediction)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from .bridge import PRESETS, StudySettings, measure, report_section, two_gaussian_study
from .construct import features_dataset
from .data import load
from .device import PRECISIONS, policy, resolve as resolve_precision
from .distributed import is_main, teardown, world
from .evaluate import evaluate
from .pair_relabelling import PairRelabelSettings, pair_relabelling
from .pixels import PixelSettings, pixel_study
from .presets import DEFAULT_STAGES, PRESETS as SUITE_PRESETS
from .provenance import git_commit, versions
from .stages import STAGES, with_dependencies
from .suite import Suite
from .throughput import TABLE, device_kind
from .train import MODEL, load_model, train


PRECISION_HELP = ("the hot loops' arithmetic (training, the attacks of construction and adversarial training, inversion, "
                  "bulk predictions); auto: bf16 autocast on CUDA and on a CPU that multiplies bf16 natively (AMX or "
                  "AVX-512 BF16), else fp32. The evaluation of record is fp32 whatever this says (default: auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="empirical", description="The deep-network side of 'Adversarial Examples Are Not "
                                     "Bugs, They Are Features': measurements on trained models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="the paper's Section 3 experiments as one resumable suite",
        description="Build D_R, D_NR, D_rand and D_det from a standard and a robust model, retrain on each, evaluate every "
        "model on the original test set (clean; robust under the paper's PGD, the project's PGD and AutoAttack, the "
        "number of record, with sanity flags), measure transfer, run the published discussion's experiments (leakage: "
        "robust features in the perturbations?; non_transferable: perturbations that fool only the source; "
        "distillation: the teacher's labels on featureless images; similarity: do D_R/D_NR images look like their "
        "start or their target?), and write results.json, table1.md, figures and "
        "report.md to --out. "
        "Stages are cached by a hash of their settings and inputs and resumed after interruption; a run "
        "folder copied without its constructed sets (data.pt) continues, building each set again where a stage "
        "reads it and checking it against its recorded digest. Under "
        "'torchrun --nproc_per_node=N -m empirical run ...' the stages run on N processes (DDP training, sharded "
        "construction and evaluation). Presets: "
        + "; ".join(f"{name}: {make().description}" for name, make in SUITE_PRESETS.items()))
    run.add_argument("--preset", choices=list(SUITE_PRESETS), default="smoke")
    run.add_argument("--data", default=None, help="data location (the CIFAR-10 JPEG npz or cifar-10-batches-py folder)")
    run.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<preset>)")
    run.add_argument("--stages", nargs="+", choices=list(STAGES), default=None,
                     help="stages to run, with what they need; 'report' reports the stages done (default: the preset's: "
                     + "; ".join(f"{name}: {' '.join(stages)}" for name, stages in DEFAULT_STAGES.items()) + "; else all)")
    run.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                     help="start a stage only while the time left covers its estimate (see --dry-run); the stages left "
                     "out are listed in results.json")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan (cached or not, image passes, estimated seconds) and stop")
    run.add_argument("--estimate-for", default=None, metavar="DEVICE",
                     help="the device whose measured throughputs --dry-run uses, e.g. cpu or nvidia-h200 "
                     f"(default: this run's device); table: empirical/{TABLE.name}")
    run.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    run.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    bridge = commands.add_parser(
        "bridge", help="theory's metrics (gradient alignment, Mahalanobis misalignment) on trained models",
        description="Train (or reuse from --out) a standard and an adversarially trained model on the preset's data, "
        "measure the gradient alignment and the Mahalanobis/l2 ratio of adversarial perturbations on test images "
        "and each model's robustness (the paper's PGD, the project's PGD and AutoAttack), and run the two-Gaussian study (closed form against trained linear models and a small network). "
        "Writes bridge.json and figures to --out. Presets: " + "; ".join(
            f"{name}: {preset.data} with {preset.standard.model}, l2 eps {preset.attack.eps}" for name, preset in PRESETS.items()))
    bridge.add_argument("--preset", choices=list(PRESETS), default="smoke", help="data and models (default: smoke, CPU)")
    bridge.add_argument("--out", type=Path, default=Path("runs/bridge"), help="output folder (default: runs/bridge)")
    bridge.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="which models to measure; D_R and D_NR are standard models retrained on the robust and "
                        "non-robust datasets built from the robust and standard models (default: all)")
    bridge.add_argument("--suite", type=Path, default=None, metavar="RUN_DIR",
                        help="measure the models of this suite run (its data and its evaluations of record) instead "
                        "of training new ones; the preset must be the bridge preset of the same data")
    bridge.add_argument("--report", type=Path, default=None, metavar="REPORT_MD",
                        help="append a Bridge section to this report.md (the experiment suite's)")
    _add_device_options(bridge)
    bridge.add_argument("--study-samples", type=int, default=8000, help="samples of the two-Gaussian study (0: skip it)")
    pixels = commands.add_parser(
        "pixels", help="the two-Gaussian model fitted to CIFAR-10 pixels, against networks trained on the same class pair",
        description="Fit x ~ N(y mu, Sigma) to two CIFAR-10 classes' pixels (d = 3072); per l2 eps, Theorem 2's closed-form "
        "robust classifier and the exact robust MLE with their gradient alignment, misalignment and test accuracy "
        "(clean and robust); the fast net trained on the same pair (standard and PGD-trained at each eps) measured "
        "the same way, with its evaluation of record. Writes pixels.json and a figure to --out.")
    defaults = PixelSettings()
    pixels.add_argument("--out", type=Path, default=Path("runs/pixels"), help="output folder (default: runs/pixels)")
    pixels.add_argument("--data", default=None, help="the CIFAR-10 JPEG npz (default: the shared copy)")
    pixels.add_argument("--classes", type=int, nargs=2, default=list(defaults.classes), metavar=("NEG", "POS"),
                        help="the CIFAR-10 labels modelled as y = -1 and y = +1 (default: 3 5, cat and dog)")
    pixels.add_argument("--eps", type=float, nargs="+", default=list(defaults.eps), help="the l2 radii (pixels in [0, 1])")
    pixels.add_argument("--train-images", type=int, default=None, help="the first this many of the pair's training images")
    pixels.add_argument("--epochs", type=int, default=defaults.network.epochs, help="the networks' training epochs")
    pixels.add_argument("--no-exact", action="store_true", help="skip the exact robust MLE (the closed form only)")
    pixels.add_argument("--exact-steps", type=int, default=defaults.exact_max_iter,
                        help="step limit of each exact robust MLE (at d = 3072 a step costs ~9 s on 2 cores)")
    pixels.add_argument("--shrinkage", action="store_true",
                        help="fit Sigma by Ledoit-Wolf shrinkage (automatic when --train-images <= 3072)")
    pixels.add_argument("--evaluation-images", type=int, default=defaults.evaluation.images,
                        help="test images of the networks' evaluation of record (AutoAttack costs seconds per robust image)")
    _add_device_options(pixels)
    relabel = commands.add_parser(
        "pair-relabelling", help="D_rand and D_det on a CIFAR-10 class pair, beside the fitted two-Gaussian model's prediction",
        description="Fit x ~ N(y mu, Sigma) to two CIFAR-10 classes' pixels and predict, with gaussfeat.relabelled, D_det's "
        "threshold eps* and the accuracy of D_rand and D_det at each --eps; then train a network on the pair, build binary "
        "D_rand and D_det from all its training images at each --eps, retrain the same recipe on each and measure it on "
        "the original test images. Resumes from --out. Writes pair_relabelling.json and a figure to --out.")
    relabel_defaults = PairRelabelSettings()
    relabel.add_argument("--out", type=Path, default=Path("runs/pair-relabelling"), help="output folder (default: %(default)s)")
    relabel.add_argument("--data", default=None, help="the CIFAR-10 JPEG npz (default: the shared copy)")
    relabel.add_argument("--classes", type=int, nargs=2, default=list(relabel_defaults.classes), metavar=("NEG", "POS"),
                         help="the CIFAR-10 labels of the pair (default: 0 6, airplane and frog)")
    relabel.add_argument("--eps", type=float, nargs="+", default=list(relabel_defaults.eps),
                         help="the relabelling's l2 radii (pixels in [0, 1]; default: %(default)s)")
    relabel.add_argument("--epochs", type=int, default=relabel_defaults.network.epochs, help="the networks' training epochs")
    _add_device_options(relabel)
    return parser


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    """--device, --precision and --quiet, as every command that trains takes them."""
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _cifar10_splits(args: argparse.Namespace) -> tuple:
    """The CIFAR-10 JPEG training and test splits, from --data or the shared copy."""
    options = {} if args.data is None else {"path": args.data}
    return tuple(load("cifar10-jpeg", split, **options) for split in ("train", "test"))


MODELS = ("standard", "robust", "D_R", "D_NR")
SUITE_MODELS = {"standard": "D", "robust": "D (adversarial)", "D_R": "D_R", "D_NR": "D_NR"}  # the suite's names for them


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"run": _run, "bridge": _bridge, "pixels": _pixels, "pair-relabelling": _pair_relabelling}[args.command](args)
    except (ValueError, FileNotFoundError) as error:
        print(f"empirical: error: {error}", file=sys.stderr)
        return 2
    finally:
        teardown()  # leave the torchrun process group, if any


def _run(args: argparse.Namespace) -> int:
    suite = Suite(SUITE_PRESETS[args.preset](), args.out or Path("runs") / args.preset, data_path=args.data,
                  device=args.device, precision=args.precision, progress=not args.quiet)
    stages = args.stages or DEFAULT_STAGES.get(args.preset, STAGES)
    if args.dry_run:
        _print_plan(suite, with_dependencies(stages), args.estimate_for or device_kind(suite.device))
        return 0
    started = time.perf_counter()
    if not is_main():  # under torchrun, process 0 logs and writes
        suite.run(stages, deadline=args.deadline)
        return 0
    log = suite.out / "suite.log"
    suite.out.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as handle:
        def record(line: str) -> None:
            print(line)
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
            handle.flush()

        suite.log = record
        suite.run(stages, deadline=args.deadline)
        record(f"finished in {time.perf_counter() - started:.0f} s on {world()[1]} process(es); "
               f"results in {suite.out / 'results.json'}")
    return 0


def _print_plan(suite: Suite, wanted: set[str], device: str) -> None:
    """The plan of the wanted stages: cached or not, image passes, and seconds on ``device`` from the throughput table."""
    plan = [row for row in suite.plan(device=device) if row["stage"] in wanted]
    precision = resolve_precision(suite.requested_precision, device)
    print(f"plan of preset {suite.preset.name!r} in {suite.out} (stage keys of {suite.precision}); seconds on {device} "
          f"in {precision} from {TABLE.name}")
    total, unknown, estimated = 0.0, set(), set()
    for row in plan:
        seconds = "?" if row["seconds"] is None else f"{row['seconds']:,.0f} s"
        print(f"{row['stage']:16s} {row['key']}  {'cached' if row['cached'] else 'to run':7s} "
              f"{row['image_passes']:>14,} image passes  {seconds:>10s}")
        if not row["cached"]:
            total += row["seconds"] or 0.0
            unknown.update(row["missing"])
            estimated.update(row["estimated"])
    print(f"{'total':16s} {'':16s}  {'to run':7s} {sum(r['image_passes'] for r in plan if not r['cached']):>14,} image passes  "
          f"{total:>8,.0f} s" + (" + the stages marked ?" if unknown else ""))
    if "evaluate" in wanted:
        print("the evaluation assumes half the images survive the first attacks on D (adversarial) and D_R, none on the others")
    print("fixed costs (start-up, data, checkpoints) are not counted")
    if unknown:
        print(f"no throughput on {device} for: {', '.join(sorted(unknown))} (benchmarks/throughput.py --precision "
              f"{precision} measures them)")
    if estimated:
        print(f"not measured, estimated from FLOPs (see the table's source field): {', '.join(sorted(estimated))}")


def _bridge(args: argparse.Namespace) -> int:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(args.precision, device)
    with policy(precision=precision):
        return _bridge_in_policy(args, device, precision)


def _bridge_in_policy(args: argparse.Namespace, device: str, precision: str) -> int:
    preset = PRESETS[args.preset]
    if args.report is not None and not args.report.is_file():
        raise FileNotFoundError(f"--report {args.report} does not exist (run the suite first, or leave --report out)")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.suite is not None:
        data, test, models, constructions, reused, seconds, evaluated = _suite_models(args, preset, device)
    else:
        data, test, models, constructions, reused, seconds = _trained_models(args, preset, device, precision)
        evaluated = {}
    begun = time.perf_counter()
    examples = test.subset(min(preset.examples, len(test)))
    measured = measure(models, data, examples, preset.attack, device=device)
    seconds["measure"] = time.perf_counter() - begun
    begun = time.perf_counter()
    robustness = {name: evaluated.get(name) or evaluate(
        model, examples.images, examples.labels, preset.evaluation, device=device,
        state=args.out / "models" / name, progress=not args.quiet) for name, model in models.items()}
    seconds["evaluate"] = time.perf_counter() - begun
    study = None
    if args.study_samples > 0:
        begun = time.perf_counter()
        study = two_gaussian_study(StudySettings(dim=128, samples=args.study_samples, epochs=10))
        seconds["two-Gaussian study"] = time.perf_counter() - begun
    from .bridge_plots import images_figure, save, study_figure

    title = f"{data.name}: {', '.join(models)} ({preset.standard.model} net; D_R, D_NR: retrained on the constructed sets)"
    files = save(images_figure(measured, title),
                 args.out / "bridge_images")
    if study is not None:
        files += save(study_figure(study), args.out / "bridge_two_gaussians")
    summary = {name: {"alignment": m["alignment"], "ratio": m["ratio"]} for name, m in measured["models"].items()}
    record = {"preset": replace(preset, standard=preset.standard.to_dict(), attack=preset.attack.to_dict(),
                                evaluation=preset.evaluation.to_dict()).__dict__,
              "suite": None if args.suite is None else {"folder": str(args.suite), "models": SUITE_MODELS,
                                                        "robustness_from_suite": sorted(evaluated)},
              "data": data.name, "device": device, "precision": precision, "git": git_commit(), "versions": versions(),
              "seconds": {**seconds, "this run": time.perf_counter() - started}, "reused_models": reused,
              "constructions": constructions, "measured": measured, "summary": summary, "robustness": robustness,
              "two_gaussian_study": study}
    (args.out / "bridge.json").write_text(json.dumps(record, indent=1) + "\n")
    if args.report is not None:
        with open(args.report, "a", encoding="utf-8") as handle:
            handle.write("\n" + report_section(record))
    for name, values in summary.items():
        print(f"{name:9s} alignment median {values['alignment']['median']:.3f}   "
              f"Mahalanobis/l2 median {values['ratio']['median']:.3g} (random direction {measured['random_direction_ratio']:.3g})   "
              f"robust {100 * robustness[name]['autoattack']['robust']:.1f}% (AutoAttack), "
              f"{100 * robustness[name]['paper_pgd']['accuracy']:.1f}% (paper's PGD)")
    print(f"wrote {args.out / 'bridge.json'} and {len(files)} figure files ({time.perf_counter() - started:.0f} s)")
    return 0


def _pixels(args: argparse.Namespace) -> int:
    defaults = PixelSettings()
    settings = PixelSettings(classes=tuple(args.classes), eps=tuple(args.eps), train_images=args.train_images,
                             exact=not args.no_exact, exact_max_iter=args.exact_steps, shrinkage=args.shrinkage or None,
                             network=replace(defaults.network, epochs=args.epochs),
                             evaluation=replace(defaults.evaluation, images=args.evaluation_images))
    train_data, test_data = _cifar10_splits(args)
    started = time.perf_counter()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    with policy(precision=args.precision):
        pixel_study(settings, train_data, test_data, args.out, device=device, progress=not args.quiet)
    print(f"wrote {args.out / 'pixels.json'} ({time.perf_counter() - started:.0f} s)")
    return 0


def _pair_relabelling(args: argparse.Namespace) -> int:
    defaults = PairRelabelSettings()
    settings = PairRelabelSettings(classes=tuple(args.classes), eps=tuple(args.eps),
                                   network=replace(defaults.network, epochs=args.epochs))
    train_data, test_data = _cifar10_splits(args)
    started = time.perf_counter()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    with policy(precision=args.precision):
        pair_relabelling(settings, train_data, test_data, args.out, device=device, progress=not args.quiet)
    print(f"wrote {args.out / 'pair_relabelling.json'} ({time.perf_counter() - started:.0f} s)")
    return 0


def _trained_models(args: argparse.Namespace, preset, device: str, precision: str) -> tuple:
    """The preset's data, and the four models trained into (or reused from) ``--out``/models, in ``precision``."""
    seconds = {}
    data, test = (load(preset.data, split, **preset.data_options) for split in ("train", "test"))
    if preset.train_images is not None:
        data = data.subset(min(preset.train_images, len(data)))
    models, constructions, reused = {}, {}, []
    for name in MODELS:  # the sources first: D_R inverts the robust model, D_NR the standard one
        if name not in args.models and not (name in ("standard", "robust") and {"D_R", "D_NR"} & set(args.models)):
            continue
        begun = time.perf_counter()
        folder = args.out / "models" / name
        config, training_data = (preset.robust if name == "robust" else preset.standard), data
        if (folder / MODEL).is_file():  # reused: its training time is the one recorded when it was trained
            history = json.loads((folder / "history.json").read_text())
            if history.get("precision", "fp32") != precision:
                raise ValueError(f"{folder} holds a model trained in {history.get('precision', 'fp32')}, this run is "
                                 f"{precision}: pass --precision {history.get('precision', 'fp32')} or another --out")
            models[name], _ = load_model(folder / MODEL, device)
            reused.append(name)
            seconds[f"model {name}"] = history["seconds"]
        else:
            if name in ("D_R", "D_NR"):
                source = models["robust" if name == "D_R" else "standard"]
                training_data, constructions[name] = features_dataset(
                    source, data.subset(min(preset.inversion_images, len(data))), name=name, steps=preset.inversion_steps,
                    step_size=preset.inversion_step_size, device=device, progress=not args.quiet)
            models[name] = train(config, training_data, out=folder, device=device, progress=not args.quiet).model
            seconds[f"model {name}"] = time.perf_counter() - begun
    models = {name: model for name, model in models.items() if name in args.models}
    return data, test, models, constructions, reused, seconds


def _suite_models(args: argparse.Namespace, preset, device: str) -> tuple:
    """The suite run's data and models (``--suite``), with its stage times, constructions and evaluations."""
    suite = Suite.reopen(args.suite, device=device, progress=False, log=lambda line: None)
    if suite.preset.data != preset.data:
        raise ValueError(f"--suite {args.suite} ran on {suite.preset.data!r} data but bridge preset {preset.name!r} "
                         f"measures {preset.data!r}: choose the bridge preset of the suite's data")
    data, test = suite.data
    recorded = suite.results()  # from the stage folders themselves
    models = {name: suite.model(SUITE_MODELS[name]) for name in args.models}
    constructions = {name: recorded["constructions"][name] for name in ("D_R", "D_NR")
                     if name in args.models and name in recorded["constructions"]}
    seconds = {f"suite stage {stage}": entry.get("parts_seconds", entry["seconds"])  # reused parts' time counted
               for stage, entry in recorded["stages"].items()}
    evaluated = {name: record for name in args.models if (record := suite.evaluation_record(SUITE_MODELS[name]))}
    return data, test, models, constructions, list(models), seconds, evaluated

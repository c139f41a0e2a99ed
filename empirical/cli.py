"""Command line: ``empirical bridge`` measures Section 4's quantities on trained networks."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from .bridge import PRESETS, StudySettings, measure, report_section, two_gaussian_study
from .construct import features_dataset
from .data import load
from .train import MODEL, load_model, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="empirical", description="The deep-network side of 'Adversarial Examples Are Not "
                                     "Bugs, They Are Features': measurements on trained models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bridge = commands.add_parser(
        "bridge", help="theory's metrics (gradient alignment, Mahalanobis misalignment) on trained models",
        description="Train (or reuse from --out) a standard and an adversarially trained model on the preset's data, "
        "measure the gradient alignment and the Mahalanobis/l2 ratio of adversarial perturbations on test images, "
        "and run the two-Gaussian study (closed form against trained linear models and a small network). "
        "Writes bridge.json and figures to --out. Presets: " + "; ".join(
            f"{name}: {preset.data} with {preset.standard.model}, l2 eps {preset.attack.eps}" for name, preset in PRESETS.items()))
    bridge.add_argument("--preset", choices=list(PRESETS), default="smoke", help="data and models (default: smoke, CPU)")
    bridge.add_argument("--out", type=Path, default=Path("runs/bridge"), help="output folder (default: runs/bridge)")
    bridge.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="which models to measure; D_R and D_NR are standard models retrained on the robust and "
                        "non-robust datasets built from the robust and standard models (default: all)")
    bridge.add_argument("--report", type=Path, default=None, metavar="REPORT_MD",
                        help="append a Bridge section to this report.md (the experiment suite's)")
    bridge.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    bridge.add_argument("--study-samples", type=int, default=8000, help="samples of the two-Gaussian study (0: skip it)")
    bridge.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


MODELS = ("standard", "robust", "D_R", "D_NR")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _bridge(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"empirical: error: {error}", file=sys.stderr)
        return 2


def _bridge(args: argparse.Namespace) -> int:
    preset = PRESETS[args.preset]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    seconds = {}
    data, test = (load(preset.data, split, **preset.data_options) for split in ("train", "test"))
    if args.report is not None and not args.report.is_file():
        raise FileNotFoundError(f"--report {args.report} does not exist (run the suite first, or leave --report out)")
    models, constructions, reused = {}, {}, []
    for name in MODELS:  # the sources first: D_R inverts the robust model, D_NR the standard one
        if name not in args.models and not (name in ("standard", "robust") and {"D_R", "D_NR"} & set(args.models)):
            continue
        begun = time.perf_counter()
        folder = args.out / "models" / name
        config, training_data = (preset.robust if name == "robust" else preset.standard), data
        if (folder / MODEL).is_file():  # reused: its training time is the one recorded when it was trained
            models[name], _ = load_model(folder / MODEL, device)
            reused.append(name)
            seconds[f"model {name}"] = json.loads((folder / "history.json").read_text())["seconds"]
        else:
            if name in ("D_R", "D_NR"):
                source = models["robust" if name == "D_R" else "standard"]
                training_data, constructions[name] = features_dataset(
                    source, data.subset(min(preset.inversion_images, len(data))), name=name, steps=preset.inversion_steps,
                    step_size=preset.inversion_step_size, device=device, progress=not args.quiet)
            models[name] = train(config, training_data, out=folder, device=device, progress=not args.quiet).model
            seconds[f"model {name}"] = time.perf_counter() - begun
    models = {name: model for name, model in models.items() if name in args.models}
    begun = time.perf_counter()
    measured = measure(models, data, test.subset(min(preset.examples, len(test))), preset.attack, device=device)
    seconds["measure"] = time.perf_counter() - begun
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
    record = {"preset": replace(preset, standard=preset.standard.to_dict(), attack=preset.attack.to_dict()).__dict__,
              "data": data.name, "device": device, "git": _git(), "versions": _versions(),
              "seconds": {**seconds, "this run": time.perf_counter() - started}, "reused_models": reused,
              "constructions": constructions, "measured": measured, "summary": summary, "two_gaussian_study": study}
    (args.out / "bridge.json").write_text(json.dumps(record, indent=1) + "\n")
    if args.report is not None:
        with open(args.report, "a", encoding="utf-8") as handle:
            handle.write("\n" + report_section(record))
    for name, values in summary.items():
        print(f"{name:9s} alignment median {values['alignment']['median']:.3f}   "
              f"Mahalanobis/l2 median {values['ratio']['median']:.3g} (random direction {measured['random_direction_ratio']:.3g})")
    print(f"wrote {args.out / 'bridge.json'} and {len(files)} figure files ({time.perf_counter() - started:.0f} s)")
    return 0


def _git() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _versions() -> dict:
    import numpy

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}

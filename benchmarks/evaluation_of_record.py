"""How strong is each evaluation? Robust accuracy of adversarially trained CNNs under the paper's PGD
convention, the project's PGD, its sweep, and AutoAttack, on the same images (issue 11's table).

Models (trained here, seeds fixed):
* planted: the fast net (width 16) trained with 3-step l2 PGD at eps 0.25 on 4000 planted 3x16x16
  images (tests/conftest.py's planted_models["robust"]), attacked at l2 eps 0.5 on 400 test images;
* fashion: the fast net (width 16) trained with 3-step l2 PGD at eps 1 on 6000 Fashion-MNIST images,
  5 epochs, attacked at l2 eps 0.5 on 200 test images (skipped without the data).

torchattacks' PGDL2 is measured too when torchattacks is installed (it is not a dependency).
About 15 minutes on 2 CPU cores.

    PYTHONPATH=. python3 benchmarks/evaluation_of_record.py [--models planted fashion] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from empirical.attacks import Attack
from empirical.evaluation_of_record import autoattack
from empirical.bridge import PRESETS
from empirical.data import load, planted
from empirical.evaluate import robust_accuracy, sweep
from empirical.provenance import git_commit, versions
from empirical.train import TrainConfig, train


def planted_model():
    model = train(PRESETS["smoke"].robust, planted("train", n_train=4000), progress=False).model
    test = planted("test", n_test=1000)
    return model, test.images[:400], test.labels[:400], 0.5


def fashion_model():
    config = TrainConfig(model="fast", model_options={"width": 16}, epochs=5, batch_size=128, lr=0.1, nesterov=True,
                         schedule="triangle", augment=None, label_smoothing=0.1, adversary=Attack.paper("l2", 1.0, steps=3))
    model = train(config, load("fashion-mnist", "train").subset(6000), progress=False).model
    test = load("fashion-mnist", "test")
    return model, test.images[:200], test.labels[:200], 0.5


def torchattacks_pgd(model, x, y, eps: float) -> float | None:
    try:
        import torchattacks
    except ImportError:
        return None
    attack = torchattacks.PGDL2(model, eps=eps, alpha=eps / 10, steps=50, random_start=True)
    adversarial = attack(x, y)
    with torch.no_grad():
        return float((model(adversarial).argmax(1) == y).float().mean())


def rows_for(model, x, y, eps: float) -> list[dict]:
    measured = []

    def row(name: str, measure) -> None:
        began = time.perf_counter()
        value = measure()
        if value is not None:
            measured.append({"evaluation": name, "robust_accuracy": value, "seconds": time.perf_counter() - began})
            print(f"  {name:70s} {value:.4f}  ({measured[-1]['seconds']:.0f} s)", flush=True)

    pgd = lambda attack: robust_accuracy(model, x, y, attack)  # noqa: E731
    row("paper's PGD: cross-entropy, 50 steps of 2.5 eps / 50, 2 restarts (the old default)", lambda: pgd(Attack.paper("l2", eps, 50, restarts=2)))
    row("paper's PGD, 200 steps, 2 restarts", lambda: pgd(Attack.paper("l2", eps, 200, restarts=2)))
    row("old sweep: lowest over (10, 20, 50, 100) steps x (1, 4) restarts, paper's convention",
        lambda: min(pgd(Attack.paper("l2", eps, s, restarts=r)) for s in (10, 20, 50, 100) for r in (1, 4)))
    row("cross-entropy PGD, 50 steps of eps / 10", lambda: pgd(Attack("l2", eps, 50, step_size=eps / 10, loss="ce", targets=0)))
    row("torchattacks PGDL2, 50 steps of eps / 10", lambda: torchattacks_pgd(model, x, y, eps))
    row("project's PGD (default): margin toward 9 targets, 25 steps from 2 eps to 0 on a cosine", lambda: pgd(Attack("l2", eps)))
    row("project's PGD, 100 steps", lambda: pgd(Attack("l2", eps, steps=100)))
    row("project's sweep: lowest over (10, 25, 100) steps x (1, 2) restarts", lambda: sweep(model, x, y, norm="l2", eps=eps)["lowest_accuracy"])
    for name, attacks in (("AutoAttack APGD-CE", ["apgd-ce"]), ("AutoAttack APGD-CE + APGD-T", ["apgd-ce", "apgd-t"])):
        row(name, lambda attacks=attacks: autoattack(model, x, y, norm="l2", eps=eps, version="custom", attacks=attacks).accuracy)
    row("AutoAttack, standard version (the evaluation of record)", lambda: autoattack(model, x, y, norm="l2", eps=eps).accuracy)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=("planted", "fashion"), default=["planted", "fashion"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/evaluation_of_record_cpu.json"))
    args = parser.parse_args()
    started, results = time.perf_counter(), {}
    builders = {"planted": planted_model, "fashion": fashion_model}
    for name in args.models:
        try:
            model, x, y, eps = builders[name]()
        except FileNotFoundError as error:
            print(f"{name}: skipped ({error})")
            continue
        with torch.no_grad():
            clean = float((model(x).argmax(1) == y).float().mean())
        print(f"{name}: {len(x)} images, clean {clean:.4f}, l2 eps {eps}")
        results[name] = {"images": len(x), "eps": eps, "clean": clean, "rows": rows_for(model, x, y, eps)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results, "seconds": time.perf_counter() - started, "git": git_commit(),
                                    "versions": versions(), "threads": torch.get_num_threads(), "device": "cpu"},
                                   indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

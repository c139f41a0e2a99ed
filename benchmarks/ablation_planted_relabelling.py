"""Ablation behind the smoke preset's choices: which source model and planted data let D_rand and D_det generalise.

For each source architecture (the fast conv net, the MLP), robust-part noise (0.75, 1.25) and data
seed: train the standard model with the smoke preset's settings, build D_rand and D_det by its
targeted attacks, retrain the same architecture on each, and record from the planted ground truth
how much of the target's non-robust template the perturbations carry, next to the retrained
model's accuracy on the original test set (chance: 10%). Not a speed benchmark; about 5 minutes
on 2 CPU cores.

    PYTHONPATH=. python3 benchmarks/ablation_planted_relabelling.py [--out FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from empirical.construct import relabelled_dataset
from empirical.data import load, planted_features
from empirical.evaluate import accuracy, robust_accuracy
from empirical.provenance import git_commit, versions
from empirical.suite import PRESETS
from empirical.train import train

ARCHITECTURES = {"fast": {"width": 16}, "mlp": {"size": 16}}
ROBUST_NOISE = (0.75, 1.25)
SEEDS = (0, 1)


def one(architecture: str, robust_noise: float, seed: int) -> dict:
    smoke = PRESETS["smoke"]()
    options = {**smoke.data_options, "robust_noise": robust_noise, "seed": seed}
    train_data, test = load("planted", "train", **options), load("planted", "test", **options)
    features = planted_features(**options)
    source_config = replace(smoke.standard, model=architecture, model_options=ARCHITECTURES[architecture])
    retrain_config = replace(smoke.retrain["D_rand"], model=architecture, model_options=ARCHITECTURES[architecture])
    source = train(source_config, train_data, progress=False).model
    row = {"architecture": architecture, "robust_noise": robust_noise, "seed": seed,
           "source_clean": accuracy(source, test.images, test.labels),
           "source_robust": robust_accuracy(source, test.images[:500], test.labels[:500], smoke.evaluation.paper)}
    for mode in ("rand", "det"):
        constructed, stats = relabelled_dataset(source, train_data, mode=mode, progress=False, **smoke.relabel)
        after = features.agreement(constructed.images, constructed.labels)
        before = features.agreement(train_data.images, constructed.labels)
        retrained = train(retrain_config, constructed, progress=False).model
        row[f"D_{mode}"] = {"success_rate": stats["success_rate"],
                            "nonrobust_added": after["nonrobust_coefficient"] - before["nonrobust_coefficient"],
                            "nonrobust_points_to_label": after["nonrobust_points_to_label"],
                            "retrained_accuracy": accuracy(retrained, test.images, test.labels)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ablation_planted_relabelling_cpu.json"))
    args = parser.parse_args()
    started, rows = time.perf_counter(), []
    for architecture, noise, seed in itertools.product(ARCHITECTURES, ROBUST_NOISE, SEEDS):
        rows.append(one(architecture, noise, seed))
        r = rows[-1]
        print(f"{architecture:4s} robust_noise {noise:4.2f} seed {seed}: source {r['source_clean']:.3f}/{r['source_robust']:.3f}; "
              + "; ".join(f"D_{m} +{r[f'D_{m}']['nonrobust_added']:.3f} -> {r[f'D_{m}']['retrained_accuracy']:.3f}"
                          for m in ("rand", "det")), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "seconds": time.perf_counter() - started, "git": git_commit(),
                                    "versions": versions(), "threads": torch.get_num_threads(), "device": "cpu"},
                                   indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

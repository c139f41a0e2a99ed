"""D_rand and D_det recipes on CIFAR-10, measured at a cheap scale before a full run (the Table 1 issue).

A recipe is a source network trained on all 50,000 CIFAR-10 training images (JPEG copy), a
relabelling attack (targeted l2 PGD: eps, steps, step size, augmented copies averaged per step) run
on the first ``--images`` training images, and a network retrained from scratch on the relabelled
set alone. Each row reports the source's test accuracy, the attack's targeted success, the retrained
net's accuracy on its own (relabelled) training set and on the first ``--test-images`` real test
images (the number of record: D_rand and D_det generalise when it is far above 10%), and the wall
seconds of each part. Sources, constructed sets and retrained nets are cached under ``--work`` by a
hash of their settings (a set in chunks while it is built, training per checkpoint), and the rows are
written as each recipe finishes, so rerunning the same command resumes where a stop cut it short;
recipes that share a source or a set train or build it once.

    PYTHONPATH=. nohup python3 benchmarks/relabel_recipes.py --recipes rn9w32 rn9w32-eot4 > recipes.log 2>&1 &
"""

from __future__ import annotations

import _common

RECIPE_NAMES = ("fast32", "rn9w32", "rn9w32-noaug", "rn9w32-eot4", "rn9w32-steps30", "rn9w32-det",
                "rn9w32-det-eot4", "rn9w32-long", "rn9w64", "rn9w32-b128", "rn9w32-b128-lr01", "rn9w32-b128-noaug",
                "rn9w32-steps30-b128", "rn9w32-det-noaug", "rn9w32-src24-noaug",
                "rn9w32-noaug-lr01", "rn9w32-aug2-lr01", "rn9w32-src24-noaug-lr01", "rn9w32-src24-det-noaug-lr01",
                "rn9w32-src24-noaug-lr01-e24", "rn9w32-src24-aug2-lr01", "rn9w32-det-eot4-noaug",
                "rn9w32-src24-aug2-lr01-e24")
p = _common.parser(__doc__.split("\n\n")[0], threads=2)
p.add_argument("--recipes", nargs="+", choices=RECIPE_NAMES, default=["rn9w32"], help="recipes to run, in order")
p.add_argument("--images", type=int, default=10_000, help="training images relabelled and retrained on")
p.add_argument("--test-images", type=int, default=10_000, help="test images of the accuracies")
p.add_argument("--work", default="results-local/recipes", help="cache folder (sources, sets, retrained nets)")
args = p.parse_args()
_common.pin_threads(args.threads)

import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from empirical.construct import relabelled_dataset  # noqa: E402
from empirical.data import Augment, ImageData, load  # noqa: E402
from empirical.evaluate import accuracy  # noqa: E402
from empirical.presets import resnet9_recipe as resnet9  # noqa: E402
from empirical.stopwatch import Stopwatch  # noqa: E402
from empirical.train import TrainConfig, load_model, train  # noqa: E402


FAST32 = TrainConfig(model="fast", model_options={"width": 32}, epochs=10, batch_size=128, lr=0.1, nesterov=True,
                     schedule="triangle", label_smoothing=0.1)


@dataclass(frozen=True)
class Recipe:
    source: TrainConfig
    retrain: TrainConfig
    relabel: dict = field(default_factory=lambda: {"mode": "rand", "eps": 0.5, "steps": 12, "step_size": 0.25})


RN9 = Recipe(resnet9(32, 12), resnet9(32, 12))
RECIPES = {
    "fast32": Recipe(FAST32, FAST32),  # the probe: learned at once, generalises not at all
    "rn9w32": RN9,
    "rn9w32-noaug": replace(RN9, retrain=replace(RN9.retrain, augment=None)),
    "rn9w32-eot4": replace(RN9, relabel={**RN9.relabel, "augmented_copies": 4}),
    "rn9w32-steps30": replace(RN9, relabel={**RN9.relabel, "steps": 30, "step_size": 0.1}),
    "rn9w32-det": replace(RN9, relabel={**RN9.relabel, "mode": "det"}),
    "rn9w32-det-eot4": replace(RN9, relabel={**RN9.relabel, "mode": "det", "augmented_copies": 4}),
    "rn9w32-det-noaug": replace(RN9, relabel={**RN9.relabel, "mode": "det"}, retrain=replace(RN9.retrain, augment=None)),
    # every image of D_det keeps its robust features of y under the label y + 1, a rule that fits the whole set;
    # copies averaged per step make the non-robust features survive crops and flips (KellerJordan/features-not-bugs)
    "rn9w32-det-eot4-noaug": replace(RN9, relabel={**RN9.relabel, "mode": "det", "augmented_copies": 4},
                                     retrain=replace(RN9.retrain, augment=None)),
    "rn9w32-long": Recipe(resnet9(32, 24), resnet9(32, 24)),
    # retraining at a quarter of the peak lr (KellerJordan/features-not-bugs retrains at lr 0.1, batch 500): without
    # augmentation at 0.4 the net learns nothing for 4 epochs; with it, nothing in 12
    "rn9w32-noaug-lr01": replace(RN9, retrain=replace(RN9.retrain, augment=None, lr=0.1)),
    "rn9w32-aug2-lr01": replace(RN9, retrain=replace(RN9.retrain, augment=Augment(padding=2, pad_mode="reflect"), lr=0.1)),
    # a longer-trained source: steps30 left the targeted success at 71%, so the source's margins limit it
    "rn9w32-src24-noaug": Recipe(resnet9(32, 24), replace(RN9.retrain, augment=None)),
    "rn9w32-src24-noaug-lr01": Recipe(resnet9(32, 24), replace(RN9.retrain, augment=None, lr=0.1)),
    # the 24-epoch source's D_rand at lr 0.1 starts learning at epoch 5 and has fit 98% of its set by epoch 12:
    # twice the retraining, and the replication's milder augmentation; and its D_det (78% of the targets reached,
    # not 71%), measured to learn the robust shift to y + 1 first all the same
    "rn9w32-src24-det-noaug-lr01": Recipe(resnet9(32, 24), replace(RN9.retrain, augment=None, lr=0.1),
                                          relabel={**RN9.relabel, "mode": "det"}),
    "rn9w32-src24-noaug-lr01-e24": Recipe(resnet9(32, 24), replace(RN9.retrain, augment=None, lr=0.1, epochs=24)),
    "rn9w32-src24-aug2-lr01": Recipe(resnet9(32, 24), replace(RN9.retrain, augment=Augment(padding=2, pad_mode="reflect"),
                                                             lr=0.1)),
    # 2-pixel shifts and flips: fits 77% of the set in 12 epochs, learning from epoch 8, and scores 48.9%: longer?
    "rn9w32-src24-aug2-lr01-e24": Recipe(resnet9(32, 24), replace(RN9.retrain, augment=Augment(padding=2, pad_mode="reflect"),
                                                                 lr=0.1, epochs=24)),
    "rn9w64": Recipe(resnet9(64, 12), resnet9(64, 12)),
    # retraining in 4x the optimiser steps at the same cost: batch 128 (79 steps an epoch on 10,000 images, not 20)
    "rn9w32-b128": replace(RN9, retrain=replace(RN9.retrain, batch_size=128, lr=0.1)),
    "rn9w32-b128-lr01": replace(RN9, retrain=replace(RN9.retrain, batch_size=128, lr=0.01)),  # the paper's lr on D_rand
    "rn9w32-b128-noaug": replace(RN9, retrain=replace(RN9.retrain, batch_size=128, lr=0.1, augment=None)),
    "rn9w32-steps30-b128": replace(RN9, relabel={**RN9.relabel, "steps": 30, "step_size": 0.1},
                                   retrain=replace(RN9.retrain, batch_size=128, lr=0.1)),
}
assert set(RECIPES) == set(RECIPE_NAMES)


def key(*parts) -> str:
    text = json.dumps([part.to_dict() if isinstance(part, TrainConfig) else part for part in parts], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def trained(config: TrainConfig, data: ImageData, folder: Path) -> tuple[torch.nn.Module, float, bool]:
    """(model, seconds of training, reused): trained into ``folder`` or loaded from it."""
    if (folder / "model.pt").is_file():
        history = json.loads((folder / "history.json").read_text())
        return load_model(folder / "model.pt")[0], history["seconds"], True
    result = train(config, data, out=folder, progress=False)
    return result.model.eval(), result.seconds, False


torch.set_num_threads(args.threads)
work = Path(args.work)
train_data, test_data = load("cifar10-jpeg", "train"), load("cifar10-jpeg", "test")
count = 256 if args.quick else args.images
subset, test = train_data.subset(count), test_data.subset(64 if args.quick else args.test_images)
results_path = work / f"recipes-{count}.json"
rows = json.loads(results_path.read_text()) if results_path.is_file() else {}
for name in args.recipes:
    recipe = RECIPES[name]
    if args.quick:
        recipe = replace(recipe, source=replace(recipe.source, epochs=1), retrain=replace(recipe.retrain, epochs=1))
    source_key = key(recipe.source, "all", args.quick)
    set_key = key(source_key, recipe.relabel, count)
    retrain_key = key(set_key, recipe.retrain)
    if rows.get(name, {}).get("key") == retrain_key:
        print(f"{name}: done ({rows[name]['test_accuracy']:.3f})", flush=True)
        continue
    source, source_seconds, _ = trained(recipe.source, train_data.subset(512) if args.quick else train_data,
                                        work / "sources" / source_key)
    set_path = work / "sets" / f"{set_key}.pt"
    if set_path.is_file():
        saved = torch.load(set_path)
        built = ImageData(saved["images"], saved["labels"], subset.classes, saved["name"], saved["source"])
        stats, set_seconds = saved["stats"], saved["seconds"]
    else:
        with Stopwatch(work / "sets" / f"{set_key}.stopwatch.json") as watch:  # every sitting's time
            built, stats = relabelled_dataset(source, subset, progress=False, checkpoint=work / "chunks" / set_key,
                                              **recipe.relabel)
        set_seconds = watch.seconds
        set_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"images": built.images, "labels": built.labels, "name": built.name, "source": built.source,
                    "stats": stats, "seconds": set_seconds}, set_path)
        shutil.rmtree(work / "chunks" / set_key)  # the set's file holds them all now
    retrained, retrain_seconds, _ = trained(recipe.retrain, built, work / "retrained" / retrain_key)
    rows[name] = {
        "key": retrain_key, "source": recipe.source.to_dict(), "relabel": recipe.relabel, "retrain": recipe.retrain.to_dict(),
        "images": count, "test_images": len(test),
        "source_test_accuracy": accuracy(source, test.images, test.labels),
        "success_rate": stats["success_rate"],
        "retrain_train_accuracy": accuracy(retrained, built.images, built.labels),
        "test_accuracy": accuracy(retrained, test.images, test.labels),
        "test_accuracy_of_y_plus_1": accuracy(retrained, test.images, (test.labels + 1) % 10),
        "seconds": {"source": source_seconds, "relabel": set_seconds, "retrain": retrain_seconds},
    }
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(rows, indent=1) + "\n")
    row = rows[name]
    print(f"{name}: source {row['source_test_accuracy']:.3f}, success {row['success_rate']:.3f}, retrained train "
          f"{row['retrain_train_accuracy']:.3f}, test {row['test_accuracy']:.3f} (y+1: {row['test_accuracy_of_y_plus_1']:.3f}); "
          f"seconds {', '.join(f'{k} {v:.0f}' for k, v in row['seconds'].items())}", flush=True)
_common.write_results(f"relabel_recipes-{count}", args, {"rows": rows})  # one file per --images

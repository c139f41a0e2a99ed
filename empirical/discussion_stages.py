"""The suite's discussion stages (:data:`empirical.stages.DISCUSSION`), one function per stage, named after it.

Each runs the published discussion's experiment on a :class:`empirical.suite.Suite`'s models and
sets and returns its result; the measurements themselves are :mod:`empirical.discussion`'s.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .construct import features_dataset, inversion_starts, relabelled_dataset
from .data import ImageData, planted_features
from .discussion import gradient_alignment, likeness, linear_probe, other_images, planted_shares, random_alignment
from .evaluate import predict
from .stages import accuracy_row
from .train import train

if TYPE_CHECKING:
    from .suite import Suite


def leakage(suite: Suite, folder: Path) -> dict:
    """Goh's question: could robust features leaking into D_rand's and D_det's perturbations explain
    what a model learns from them? Linear classifiers on pixels, trained on each set and on its
    perturbations alone (scored on the original test set); the perturbations' alignment with
    each source model's gradient toward the target; on the planted data, their share in each
    planted span (the ground truth)."""
    train_data, test = suite.data
    settings = suite.preset.discussion
    count = min(settings["probe_images"], len(train_data))
    first = lambda data: data.subset(count)  # noqa: E731
    probe = lambda data, inputs=None: linear_probe(first(data), test, inputs=inputs, steps=settings["probe_steps"])  # noqa: E731
    linear = {"D": probe(train_data)}
    models = {"robust model": suite.model("robust"), "standard model": suite.model("standard")}
    aligned = min(settings["alignment_images"], len(train_data))
    alignment, planted = {}, {}
    for name in ("D_rand", "D_det"):
        built = suite.constructed(name)
        perturbations = built.images - train_data.images.cpu()
        linear[name] = probe(built)
        linear[f"{name} perturbations"] = probe(built, perturbations[:count])
        alignment[name] = {label: float(gradient_alignment(model, train_data.images[:aligned], train_data.labels[:aligned],
                                                            built.labels[:aligned], perturbations[:aligned],
                                                            device=suite.device).median())
                           for label, model in models.items()}
        if suite.preset.data == "planted":
            planted[name] = planted_shares(planted_features(**suite.preset.data_options), perturbations, built.labels)
    result = {"linear": linear, "images": count, "alignment": alignment,
              "random_alignment": random_alignment(train_data.images[0].numel())}
    if planted:
        dim, classes = train_data.images[0].numel(), train_data.num_classes
        result["planted"] = {**planted, "random_share": classes / dim}
    return result


def non_transferable(suite: Suite, folder: Path) -> dict:
    """Nakkiran's "adversarial examples are just bugs, too": D_rand and D_det rebuilt with
    perturbations that move the source model to t while a guard model (the standard recipe,
    another seed) keeps y; how often each set's images move the guard and a held-out model (a
    third seed) to t, and what a model retrained on each set scores on the original test set."""
    train_data, test = suite.data
    source = suite.model("standard")
    others = {role: train(replace(suite.preset.standard, seed=suite.preset.standard.seed + offset), train_data,
                          out=folder / role, device=suite.device, progress=suite.progress).model
              for offset, role in ((1, "guard"), (2, "held_out"))}
    retrained = suite.stage_result("retrain")
    original = train_data.images.cpu()
    features = planted_features(**suite.preset.data_options) if suite.preset.data == "planted" else None
    sets = {}
    for mode in ("rand", "det"):
        name = f"D_{mode}"
        built, stats = relabelled_dataset(source, train_data, mode=mode, guard=others["guard"],
                                          guard_weight=suite.preset.discussion["guard_weight"],
                                          checkpoint=folder / f"chunks-{name}", device=suite.device,
                                          progress=suite.progress, **suite.preset.relabel)
        variants = {"ordinary": (suite.constructed(name), {"success_rate": suite.stage_result(name)["success_rate"],
                                                           "retrained": accuracy_row(retrained[name])}),
                    "non-transferable": (built, {"success_rate": stats["success_rate"],
                                                 "guard_transfer_rate": stats["guard_transfer_rate"],
                                                 "retrained": {"training": "standard", **suite.train_and_measure(
                                                     suite.preset.retrain[name], built, folder / name,
                                                     relabelled=mode == "det")}})}
        sets[name] = {}
        for variant, (data, row) in variants.items():
            for role, model in others.items():
                if f"{role}_transfer_rate" not in row:  # the construction measured its own guard's already
                    row[f"{role}_transfer_rate"] = float((predict(model, data.images, device=suite.device)
                                                          == data.labels).float().mean())
            if features is not None:
                row["planted"] = planted_shares(features, data.images - original, data.labels)
            sets[name][variant] = row
    return {"guard_weight": suite.preset.discussion["guard_weight"], "sets": sets}


def distillation(suite: Suite, folder: Path) -> dict:
    """Wallace's control: images with none of the data's features (noise; each training image's
    pixels shuffled), labelled by the standard model, then standard training on them, scored on
    the original test set. Above chance means the labels alone carry the teacher's function."""
    train_data, test = suite.data
    teacher = suite.model("standard")
    sources = {}
    for source in suite.preset.discussion["sources"]:
        images = other_images(train_data, source)
        labels = predict(teacher, images, device=suite.device)
        data = ImageData(images, labels, train_data.classes, f"{source} images labelled by the standard model",
                         f"distillation control ({source})")
        shares = torch.bincount(labels, minlength=train_data.num_classes).float() / len(labels)
        sources[source] = {"largest_label_share": float(shares.max()),
                           **suite.train_and_measure(suite.preset.retrain["D_rand"], data, folder / source)}
    return {"teacher_clean": suite.stage_result("standard")["clean"], "chance": 1 / train_data.num_classes,
            "sources": sources}


def similarity(suite: Suite, folder: Path) -> dict:
    """The reviewers' question: do D_R and D_NR images look like the image each inversion starts
    from (x0) or the one whose representation it matches (x)? Pixel l2 and SSIM to both; and how
    D_R's inversion responds to fewer steps, a noise start and matching the logits instead."""
    train_data = suite.data[0]
    inversion = suite.preset.inversion
    starts, targets = inversion_starts(train_data, inversion.get("start", "image")), train_data.images.cpu()
    sets = {name: likeness(suite.constructed(name).images, starts, targets) for name in ("D_R", "D_NR")}
    subset = train_data.subset(min(suite.preset.discussion["ablation_images"], len(train_data)))
    robust = suite.model("robust")
    settings = {"as the preset": {}, "a quarter of the steps": {"steps": max(inversion["steps"] // 4, 1)},
                "noise start": {"start": "noise"}, "matching the logits": {"layer": "logits"}}
    ablation = {}
    for label, change in settings.items():
        chosen = {**inversion, **change}
        built, stats = features_dataset(robust, subset, name="D_R", device=suite.device, progress=False, **chosen)
        ablation[label] = {"settings": chosen, "relative_distance": stats["relative_distance"]["median"],
                           **likeness(built.images, inversion_starts(subset, chosen.get("start", "image")),
                                       subset.images.cpu())}
    return {"sets": sets, "ablation_images": len(subset), "ablation": ablation}

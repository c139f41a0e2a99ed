"""The report's section on the published discussion (Distill, 2019) and the reviewers' questions, and its figures.

Reads the ``discussion`` entry of results.json (the stages of :data:`empirical.stages.DISCUSSION`)
and states each finding plainly, with its numbers; a stage that did not run is said not to have.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from .report import NOT_RUN, _markdown_table, _percent, _save, image_grid

LINEAR = ("D", "D_rand", "D_rand perturbations", "D_det", "D_det perturbations")
VARIANTS = ("ordinary", "non-transferable")


def sections(results: Mapping) -> list[str]:
    """Markdown lines: one subsection per discussion stage."""
    found = results.get("discussion", {})
    lines = ["## Beyond the paper: the published discussion and the reviewers' questions", "",
             "The responses to the paper in Distill (2019) and its NeurIPS reviews, run on the same models and sets.", ""]
    for title, stage, write in (("Robust-feature leakage (Goh)", "leakage", _leakage),
                                ("Non-transferable adversarial examples (Nakkiran)", "non_transferable", _non_transferable),
                                ("Distillation control (Wallace)", "distillation", _distillation),
                                ("Do D_R and D_NR images look like where they start or what they match? (reviewers)",
                                 "similarity", _similarity)):
        lines += [f"### {title}", ""]
        lines += write(found[stage], results) if stage in found else [f"Stage `{stage}` {NOT_RUN}.", ""]
    return lines


def _leakage(found: Mapping, results: Mapping) -> list[str]:
    chance = 1 / results.get("data", {}).get("classes", 10)
    linear = found["linear"]
    lines = [f"A linear classifier on pixels (multinomial logistic regression, the first {found['images']:,} images of each "
             "set), scored on the original test set; chance is "
             f"{_percent(chance)}%:", "",
             _markdown_table(["trained on", "test accuracy (%)"], [[f"`{name}`", _percent(linear.get(name))] for name in LINEAR]),
             "", "Median |cos| between each perturbation x_adv - x and a model's input gradient of z_t - z_y at x "
             f"(a random direction: {found['random_alignment']:.3g}):", "",
             _markdown_table(["set", "robust model's gradient", "standard model's gradient"],
                             [[f"`{name}`", f"{row['robust model']:.3f}", f"{row['standard model']:.3f}"]
                              for name, row in found["alignment"].items()]), ""]
    for name in ("D_rand", "D_det"):
        alone, whole = linear.get(f"{name} perturbations"), linear.get(name)
        verdict = ("above chance: part of what the set teaches is visible to a linear model in its perturbations"
                   if alone is not None and alone > chance + 0.05 else "within 5 points of chance: the perturbations alone "
                   "teach a linear model little about the test set")
        lines.append(f"* `{name}`: the perturbations alone give a linear classifier {_percent(alone)}% ({verdict}); "
                     f"the whole set {_percent(whole)}%.")
    if "planted" in found:
        planted = found["planted"]
        lines += ["", f"Ground truth (planted data): mean share of ||delta||^2 in each planted span (a random direction's "
                  f"share of either: {planted['random_share']:.4f}) and mean coefficient on the target's template:", "",
                  _planted_table({name: planted[name] for name in ("D_rand", "D_det")}), ""]
        for name in ("D_rand", "D_det"):
            row = planted[name]
            leak = ("less than a random direction's: no robust feature leaks into them"
                    if row["robust_share"] < planted["random_share"] else "more than a random direction's: robust features leak")
            lines.append(f"* `{name}`: {_percent(row['nonrobust_share'])}% of the perturbations' energy lies in the non-robust "
                         f"span and {_percent(row['robust_share'])}% in the robust one, {leak}; target coefficients "
                         f"{row['nonrobust_target_coefficient']:+.3f} (non-robust) and {row['robust_target_coefficient']:+.3f} "
                         "(robust). Where the perturbations teach a linear classifier anyway, it learns the non-robust "
                         "templates (linear features here): a linear probe alone does not tell robust leakage apart.")
    return lines + [""]


def _planted_table(rows: Mapping[str, Mapping]) -> str:
    return _markdown_table(["set", "robust share", "non-robust share", "robust target coefficient", "non-robust target coefficient"],
                           [[name, f"{row['robust_share']:.4f}", f"{row['nonrobust_share']:.4f}",
                             f"{row['robust_target_coefficient']:+.4f}", f"{row['nonrobust_target_coefficient']:+.4f}"]
                            for name, row in rows.items()])


def _non_transferable(found: Mapping, results: Mapping) -> list[str]:
    rows = []
    for name, variants in found["sets"].items():
        for variant in VARIANTS:
            row = variants[variant]
            rows.append([f"`{name}`", variant, _percent(row["success_rate"]), _percent(row["guard_transfer_rate"]),
                         _percent(row["held_out_transfer_rate"]), _percent(row["retrained"]["clean"])])
    lines = [f"Perturbations that reach t on the source model while a guard model (the standard recipe, another seed) "
             f"keeps y (weight {found['guard_weight']:g} on the guard's cross-entropy); a held-out model (a third seed) "
             "was not used in the construction. Retrained: standard training on the set, accuracy on the original test set.", "",
             _markdown_table(["set", "perturbations", "reach t on the source (%)", "move the guard to t (%)",
                              "move the held-out model to t (%)", "retrained, test accuracy (%)"], rows), ""]
    for name, variants in found["sets"].items():
        ordinary, guarded = variants["ordinary"], variants["non-transferable"]
        lines.append(f"* `{name}`: penalising transfer took the guard's transfer rate from {_percent(ordinary['guard_transfer_rate'])}% "
                     f"to {_percent(guarded['guard_transfer_rate'])}% and the held-out model's from "
                     f"{_percent(ordinary['held_out_transfer_rate'])}% to {_percent(guarded['held_out_transfer_rate'])}%; "
                     f"a model retrained on the set scores {_percent(guarded['retrained']['clean'])}% against "
                     f"{_percent(ordinary['retrained']['clean'])}% for the ordinary set.")
    if all("planted" in row for variants in found["sets"].values() for row in variants.values()):
        lines += ["", "Ground truth (planted data):", "",
                  _planted_table({f"{name} {variant}": variants[variant]["planted"]
                                  for name, variants in found["sets"].items() for variant in VARIANTS})]
    return lines + [""]


def _distillation(found: Mapping, results: Mapping) -> list[str]:
    rand = results.get("accuracy", {}).get("D_rand", {}).get("clean")
    rows = [[source, _percent(row["largest_label_share"]), _percent(row["clean"])] for source, row in found["sources"].items()]
    lines = [f"Images with none of the data's features, labelled by the standard model (its test accuracy: "
             f"{_percent(found['teacher_clean'])}%), then standard training; accuracy on the original test set "
             f"(chance {_percent(found['chance'])}%; `D_rand`, whose images are the data's own: {_percent(rand)}%):", "",
             _markdown_table(["images", "largest share of one label (%)", "retrained, test accuracy (%)"], rows), ""]
    best = max(row["clean"] for row in found["sources"].values())
    if best > found["chance"] + 0.05:
        lines.append(f"* The teacher's labels alone carry part of its function ({_percent(best)}% from featureless images): "
                     "some of what a student learns from relabelled data is the teacher, not the data's features.")
    else:
        lines.append(f"* Featureless images labelled by the teacher teach nothing that transfers ({_percent(best)}%, chance "
                     f"{_percent(found['chance'])}%): the teacher's labels alone do not carry its function"
                     + (f", so `D_rand`'s {_percent(rand)}% comes from the features in its images, not from copying the "
                        "teacher." if rand is not None and rand > found["chance"] + 0.05 else "."))
    return lines + [""]


def _similarity(found: Mapping, results: Mapping) -> list[str]:
    header = ["", "pixel l2 to x0", "pixel l2 to x", "SSIM to x0", "SSIM to x"]
    cells = lambda row: [f"{row['l2_to_start']:.3g}", f"{row['l2_to_target']:.3g}", f"{row['ssim_to_start']:.3f}",  # noqa: E731
                         f"{row['ssim_to_target']:.3f}"]
    lines = ["Each inversion starts from x0 (another training image, or noise) and matches the representation of x; "
             "medians over the set:", "",
             _markdown_table(["set", *header[1:]], [[f"`{name}`", *cells(row)] for name, row in found["sets"].items()]), ""]
    for name, row in found["sets"].items():
        closer = "their start x0" if row["ssim_to_start"] > row["ssim_to_target"] else "their target x"
        lines.append(f"* `{name}` images look like {closer} (SSIM {row['ssim_to_start']:.2f} to x0, {row['ssim_to_target']:.2f} to x).")
    lines += ["", f"D_R's inversion on the first {found['ablation_images']:,} images, one setting changed at a time "
              "(relative distance: ||g(x_r) - g(x)|| / ||g(x)||, median):", "",
              _markdown_table(["setting", "relative distance", *header[1:]],
                              [[label, f"{row['relative_distance']:.3g}", *cells(row)] for label, row in found["ablation"].items()])]
    return lines + [""]


def figures(results: Mapping, samples: Mapping[str, Tensor], out: str | Path) -> list[Path]:
    """The leakage and non-transferable figures and the similarity grid (PNG and PDF), those with data."""
    found, out = results.get("discussion", {}), Path(out)
    paths = []
    if "leakage" in found:
        paths += _leakage_figure(found["leakage"], results, out / "discussion_leakage")
    if "non_transferable" in found:
        paths += _non_transferable_figure(found["non_transferable"], out / "discussion_non_transferable")
    if "similarity" in found and {"x0", "D_R", "D_NR", "D"} <= set(samples):
        paths += _similarity_grid(samples, out / "discussion_similarity")
    return paths


def _leakage_figure(found: Mapping, results: Mapping, stem: Path) -> list[Path]:
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    values = [100 * found["linear"][name] for name in LINEAR]
    left.bar(range(len(LINEAR)), values, color=["0.5", "tab:blue", "tab:cyan", "tab:orange", "gold"])
    left.axhline(100 / results.get("data", {}).get("classes", 10), color="k", linestyle=":", label="chance")
    left.set_xticks(range(len(LINEAR)), [name.replace(" perturbations", "\nperturbations") for name in LINEAR], fontsize=7)
    left.set(ylabel="linear classifier, test accuracy (%)", title="trained on each set or its perturbations alone")
    left.legend(fontsize=7)
    names = list(found["alignment"])
    width = 0.35
    for offset, (label, colour) in zip((-width / 2, width / 2), (("robust model", "tab:red"), ("standard model", "tab:green"))):
        right.bar(np.arange(len(names)) + offset, [found["alignment"][name][label] for name in names], width,
                  label=f"{label}'s gradient", color=colour)
    right.axhline(found["random_alignment"], color="k", linestyle=":", label="random direction")
    right.set_xticks(range(len(names)), names)
    right.set(ylabel="median |cos(perturbation, gradient)|", title="perturbations along each model's gradient to t")
    right.legend(fontsize=7)
    figure.suptitle(f"Robust-feature leakage: {results.get('data', {}).get('name', '')}", fontsize=9)
    return _save(figure, stem)


def _non_transferable_figure(found: Mapping, stem: Path) -> list[Path]:
    measures = (("success_rate", "source\nreaches t"), ("guard_transfer_rate", "guard\nmoves to t"),
                ("held_out_transfer_rate", "held-out model\nmoves to t"), ("retrained", "retrained:\ntest accuracy"))
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    axes = figure.subplots(1, len(found["sets"]), squeeze=False)[0]
    width = 0.38
    for ax, (name, variants) in zip(axes, found["sets"].items()):
        for offset, variant, colour in ((-width / 2, "ordinary", "tab:blue"), (width / 2, "non-transferable", "tab:purple")):
            row = variants[variant]
            heights = [100 * (row[key]["clean"] if key == "retrained" else row[key]) for key, _ in measures]
            ax.bar(np.arange(len(measures)) + offset, heights, width, label=variant, color=colour)
        ax.set_xticks(range(len(measures)), [label for _, label in measures], fontsize=7)
        ax.set(ylabel="%", title=name, ylim=(0, 100))
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
    figure.suptitle("Non-transferable perturbations against ordinary ones", fontsize=9)
    return _save(figure, stem)


def _similarity_grid(samples: Mapping[str, Tensor], stem: Path) -> list[Path]:
    rows = {"x0 (start)": samples["x0"], "D_R": samples["D_R"], "D_NR": samples["D_NR"], "x (target)": samples["D"]}
    return image_grid(rows, stem, "Each column: an inversion's start x0, the D_R and D_NR images built from it, and its target x")

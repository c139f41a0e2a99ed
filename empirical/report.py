"""The suite's report: Table 1, Figures 2a, 2b and 3, and report.md, beside the paper's numbers.

Everything reads the results dict the suite writes (``results.json``). Accuracies and success
rates there are fractions; here they are shown in percent, as the paper prints them. Any stage may
be missing: its rows, bars and points are left out and the text says "not run". A number differing
from the paper's by more than :data:`TOLERANCE` points is flagged.

Robust accuracy is AutoAttack's (``robust``, the evaluation of record), always shown beside the
paper's PGD convention (``paper_pgd``) and the project's PGD (``pgd``), with the sanity flags each
evaluation raised (:mod:`empirical.sanity`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

TOLERANCE = 5.0  # points of accuracy beyond which ours and the paper's are flagged as different
MARGIN = 10.0  # points by which a qualitative finding must hold to count as reproduced

_README = "shared/paper/README.md (the paper and MadryLab/constructed-datasets README)"
_ROBUSTNESS = "MadryLab/robustness README (released CIFAR-10 ResNet-50s)"

PAPER: dict = {
    "evaluation": {"norm": "l2", "eps": 0.25},
    # percent on the CIFAR-10 test set; robust: l2 PGD at eps 0.25
    "accuracy": {
        "D": {"clean": 95.3, "robust": 7.3, "source": f"Table 1 (clean); {_ROBUSTNESS} (robust)",
              "note": "the paper's robust bar is only 'low'; 7.3 is the released standard ResNet-50 under 100-step PGD"},
        "D (adversarial)": {"clean": 90.83, "robust": 82.34, "source": _ROBUSTNESS,
                            "note": "the paper's bar was not found; these are the released l2 eps = 0.5 ResNet-50 "
                                    "(70.1 at eps = 0.5)"},
        "D_R": {"clean": 84.0, "robust": 48.0, "source": f"Figure 2b; {_README}"},
        "D_NR": {"clean": 88.0, "robust": 0.0, "source": f"Figure 2b; {_README}"},
        "D_rand": {"clean": 63.3, "robust": 0.0, "source": f"Table 1 (clean); {_README} (robust)"},
        "D_det": {"clean": 43.7, "robust": 0.0, "source": f"Table 1 (clean); {_README} (robust)"},
    },
    # per target architecture (our model names): (the paper's name, test accuracy after training on
    # D_det, transfer success rate from the source ResNet-50), percent
    "figure3": {
        "source": "the authors' re-plot in distillpub/post--ilyas-response-5 transfer.png, digitised to about "
                  "+-0.5 points (shared/paper/appendix-facts.md 2.1); Nakkiran's added point at (0, 0) left out",
        "points": {"resnet50": ("ResNet-50", 44.7, 100.0), "densenet121": ("DenseNet", 41.7, 92.8),
                   "resnet18": ("ResNet-18", 40.9, 92.1), "inception": ("Inception-v3", 39.4, 82.8),
                   "vgg16": ("VGG-16", 28.0, 65.7)},
    },
}

TABLE1 = ("D", "D_rand", "D_det")
FIGURE2B = ("D", "D_NR", "D (adversarial)", "D_R")
MATH = {"D": r"$\mathcal{D}$", "D (adversarial)": r"$\mathcal{D}$, adversarial", "D_R": r"$\widehat{\mathcal{D}}_R$",
        "D_NR": r"$\widehat{\mathcal{D}}_{NR}$", "D_rand": r"$\widehat{\mathcal{D}}_{rand}$",
        "D_det": r"$\widehat{\mathcal{D}}_{det}$"}
NORMS = {"l2": r"$\ell_2$", "linf": r"$\ell_\infty$"}
ARCHITECTURES = {"resnet18": "ResNet-18", "resnet50": "ResNet-50", "vgg16": "VGG-16", "densenet121": "DenseNet-121",
                 "inception": "Inception", "fast": "fast net"}
NOT_RUN = "not run"


@dataclass(frozen=True)
class Finding:
    """A qualitative claim of the paper, whether the numbers bear it out, and, where they do not, the
    measurements that say why (the diagnosis)."""

    claim: str
    status: str  # "reproduced", "not reproduced" or "not run"
    evidence: str
    diagnosis: str = ""


def caveats(results: Mapping) -> list[str]:
    """Why the comparison with the paper's CIFAR-10 numbers is only indicative, if it is."""
    name = results.get("data", {}).get("name", "unknown data")
    found = []
    if "JPEG" in name:
        found.append(f"The data are {name}, not CIFAR-10 itself: JPEG re-encoding alters the fine, high-frequency "
                     "detail where non-robust features can live, so the numbers need not match the paper's.")
    elif not name.startswith("CIFAR-10"):
        found.append(f"The data are {name}; the paper's numbers are for CIFAR-10, so comparisons with them "
                     "(and the flags) are indicative only.")
    evaluation = results.get("evaluation")
    if evaluation and {key: evaluation.get(key) for key in PAPER["evaluation"]} != PAPER["evaluation"]:
        found.append(f"Robust accuracy here is under {evaluation.get('norm')} eps = {evaluation.get('eps')}; "
                     "the paper's is under l2 eps = 0.25.")
    return found


def _percent(value: float | None) -> str:
    return NOT_RUN if value is None else f"{100 * value:.1f}"


def _compare(ours: float | None, paper: float) -> list[str]:
    """Cells: ours (percent), the paper's, ours minus the paper's in points, a flag beyond TOLERANCE."""
    if ours is None:
        return [NOT_RUN, f"{paper:g}", "", ""]
    gap = 100 * ours - paper
    return [_percent(ours), f"{paper:g}", f"{gap:+.1f}", f"**> {TOLERANCE:g} points**" if abs(gap) > TOLERANCE else ""]


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _measure(results: Mapping, name: str, key: str) -> float | None:
    return results.get("accuracy", {}).get(name, {}).get(key)


def table1(results: Mapping) -> str:
    """Table 1: test accuracy on the original test set after standard training on D, D_rand and D_det."""
    rows = [[f"`{name}`", *_compare(_measure(results, name, "clean"), PAPER["accuracy"][name]["clean"])]
            for name in TABLE1]
    return _markdown_table(["training set", "test accuracy (%)", "paper (%)", "difference (points)", "flag"], rows)


def robustness_table(results: Mapping) -> str:
    """Every model's clean accuracy and its robust accuracy three ways: the paper's PGD, the project's PGD
    and AutoAttack (the number of record), on the evaluated images, with the names of the flags raised."""
    rows = []
    for name in PAPER["accuracy"]:
        entry = results.get("accuracy", {}).get(name, {})
        cells = [_percent(entry.get(key)) for key in ("clean", "evaluated_clean", "paper_pgd", "pgd", "robust")]
        flagged = ", ".join(f"`{flag}`" for flag in entry.get("flags", ())) or ("none" if "flags" in entry else "")
        rows.append([f"`{name}`", cells[0], str(entry.get("evaluated_images", "")), *cells[1:], flagged])
    return _markdown_table(["training set", "clean, all (%)", "images", "clean (%)", "paper's PGD (%)", "PGD (%)",
                            "AutoAttack (%)", "flags"], rows)


def _evaluation_settings(results: Mapping) -> str:
    """One sentence naming the three evaluations' settings."""
    e = results.get("evaluation", {})
    if "paper_steps" not in e:
        return f"Robust accuracy under {e.get('norm', '?')} eps = {e.get('eps', '?')}."
    return (f"Robust accuracy under {e['norm']} eps = {e['eps']:g} on the first {e.get('images') or 'all'} test images: "
            f"the paper's PGD (cross-entropy, {e['paper_steps']} steps of 2.5 eps / {e['paper_steps']}), the project's "
            f"PGD (margin toward each of the 9 likeliest wrong classes, {e['pgd_steps']} steps falling from 2 eps to 0) and "
            f"AutoAttack ({e['autoattack']} version), the number of record.")


def _transfer_points(results: Mapping) -> dict[str, tuple[float, float]]:
    """Per architecture with both numbers: (test accuracy after D_det, transfer success rate), fractions."""
    architectures = (results.get("transfer") or {}).get("architectures", {})
    return {name: (entry["test_accuracy"], entry["success_rate"]) for name, entry in architectures.items()
            if entry.get("test_accuracy") is not None and entry.get("success_rate") is not None}


def pearson(points: Sequence[tuple[float, float]]) -> float | None:
    """Pearson's r of (x, y) points; None for fewer than two or a constant coordinate."""
    if len(points) < 2:
        return None
    x, y = np.transpose(points)
    return None if np.ptp(x) == 0 or np.ptp(y) == 0 else float(np.corrcoef(x, y)[0, 1])


def correlation(results: Mapping) -> float | None:
    """The transfer correlation: the suite's, or computed from its points when it gave none."""
    given = (results.get("transfer") or {}).get("correlation")
    return given if given is not None else pearson(list(_transfer_points(results).values()))


def _finding(claim: str, holds: bool | None, evidence: str, diagnosis: str = "") -> Finding:
    """``holds`` None: the numbers needed were not produced. The diagnosis is kept only when the claim fails."""
    if holds is None:
        return Finding(claim, NOT_RUN, "")
    return Finding(claim, "reproduced" if holds else "not reproduced", evidence, "" if holds else diagnosis)


def _inversion(results: Mapping, name: str) -> str:
    distance = results.get("constructions", {}).get(name, {}).get("relative_distance", {}).get("mean")
    return f"{name}'s inversion ended at a relative representation distance of {distance:.3g}" if distance is not None else \
        f"{name} was not constructed"


def findings(results: Mapping) -> list[Finding]:
    """The paper's qualitative claims, each reproduced, not reproduced, or not run, with the numbers,
    and for a claim that fails the measurements that bear on why."""
    chance = 100 / results.get("data", {}).get("classes", 10)
    robust_r, robust_nr = _measure(results, "D_R", "robust"), _measure(results, "D_NR", "robust")
    clean_nr, source_robust = _measure(results, "D_NR", "clean"), _measure(results, "D (adversarial)", "robust")
    standard_robust = _measure(results, "D", "robust")
    found = [
        _finding(f"standard training on D_R is more robust than on D_NR (by > {MARGIN:g} points)",
                 None if None in (robust_r, robust_nr) else 100 * (robust_r - robust_nr) > MARGIN,
                 f"robust accuracy {_percent(robust_r)}% vs {_percent(robust_nr)}%",
                 f"the adversarially trained source keeps {_percent(source_robust)}%; {_inversion(results, 'D_R')}; "
                 f"the D_R model is {_percent(_measure(results, 'D_R', 'clean'))}% accurate"),
        _finding(f"standard training on D_NR is accurate (> chance + {MARGIN:g} points) but not robust (< {MARGIN:g}%)",
                 None if None in (clean_nr, robust_nr) else 100 * clean_nr > chance + MARGIN and 100 * robust_nr < MARGIN,
                 f"clean {_percent(clean_nr)}%, robust {_percent(robust_nr)}%",
                 f"the standard source is {_percent(_measure(results, 'D', 'clean'))}% accurate and "
                 f"{_percent(standard_robust)}% robust; {_inversion(results, 'D_NR')}"),
    ]
    for name in ("D_rand", "D_det"):
        clean = _measure(results, name, "clean")
        built = results.get("constructions", {}).get(name, {})
        why = f"the targeted attack reached {_percent(built.get('success_rate'))}% of its targets"
        follows = _measure(results, name, "follows_relabelling")
        if follows is not None:
            why += (f"; the model names y + 1 (the label D_det gives class y's robust features) for {_percent(follows)}% "
                    "of the test images: " + ("it learned the robust relabelling, not the non-robust features"
                                              if 100 * follows > chance + MARGIN else
                                              "it learned neither the non-robust features nor the robust relabelling"))
        found.append(_finding(f"training on {name} generalises to the original test set (> chance + {MARGIN:g} points)",
                              None if clean is None else 100 * clean > chance + MARGIN,
                              f"test accuracy {_percent(clean)}%, chance {chance:.1f}%", why))
    r, points = correlation(results), _transfer_points(results)
    found.append(_finding("transfer success rises with accuracy after training on D_det (correlation > 0)",
                          None if r is None else r > 0,
                          f"r = {r:.2f} over {len(points)} architectures" if r is not None else "",
                          "(accuracy after D_det, transfer success): " + ", ".join(
                              f"{ARCHITECTURES.get(name, name)} ({_percent(x)}%, {_percent(y)}%)" for name, (x, y) in points.items())))
    return found


def _relabelling_line(results: Mapping) -> list[str]:
    """How often the D_det model names y + 1: what D_det's robust features (which say y) were relabelled to."""
    follows = _measure(results, "D_det", "follows_relabelling")
    if follows is None:
        return []
    return [f"The model trained on `D_det` classifies {_percent(follows)}% of the original test images as y + 1, the "
            "label D_det pairs with class y's robust features; a model that learned D_det's non-robust features "
            "instead classifies them as y (the accuracy above).", ""]


def _save(figure: Figure, path_stem: str | Path) -> list[Path]:
    paths = [Path(f"{path_stem}.png"), Path(f"{path_stem}.pdf")]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(paths[0], dpi=150)
    figure.savefig(paths[1], metadata={"CreationDate": None})
    return paths


def figure2a(samples: Mapping[str, Tensor], path_stem: str | Path, columns: int = 8) -> list[Path]:
    """Figure 2a: a grid of sample images, one labelled row per training set ((N, C, H, W) in [0, 1])."""
    return image_grid(samples, path_stem, "Figure 2a: sample training images of each training set", columns, labels=MATH)


def image_grid(rows: Mapping[str, Tensor], path_stem: str | Path, title: str, columns: int = 8,
               labels: Mapping[str, str] | None = None) -> list[Path]:
    """A grid of images, one row per entry of ``rows`` (name -> (N, C, H, W) in [0, 1]), at most ``columns``
    wide; each row labelled ``labels[name]`` where given, else its name."""
    if not rows:
        return []
    for name, images in rows.items():
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images of row {name!r} must be (N, C, H, W) with 1 or 3 channels, got {tuple(images.shape)}")
    width = min(columns, max(len(images) for images in rows.values()))
    figure = Figure(figsize=(1.1 * width + 1.1, 1.1 * len(rows) + 0.4), layout="constrained")
    axes = np.atleast_2d(figure.subplots(len(rows), width, squeeze=False))
    for row, (name, images) in zip(axes, rows.items()):
        for column, ax in enumerate(row):
            ax.set(xticks=[], yticks=[])
            ax.spines[:].set_visible(False)
            if column < len(images):
                image = images[column].detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy()
                ax.imshow(image.squeeze(2) if image.shape[2] == 1 else image, cmap="gray", vmin=0, vmax=1)
        row[0].set_ylabel((labels or {}).get(name, name), rotation=0, ha="right", va="center", fontsize=12)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path_stem)


def figure2b(results: Mapping, path_stem: str | Path) -> list[Path]:
    """Figure 2b: clean and robust accuracy on the original test set; ours as bars, the paper's as markers beside."""
    accuracy = results.get("accuracy", {})
    if not any(name in accuracy for name in FIGURE2B):
        return []
    evaluation = results.get("evaluation", PAPER["evaluation"])
    norm = NORMS.get(evaluation["norm"], evaluation["norm"])
    figure = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = figure.subplots()
    width = 0.3
    measures = (("clean", "clean", "tab:blue", -0.22),
                ("robust", f"robust ({norm}, $\\varepsilon$ = {evaluation['eps']:g}; AutoAttack)", "tab:orange", 0.18))
    ours, paper = [], []
    for key, label, colour, offset in measures:
        positions = np.arange(len(FIGURE2B)) + offset
        drawn = [(x, 100 * _measure(results, name, key)) for x, name in zip(positions, FIGURE2B)
                 if _measure(results, name, key) is not None]
        if drawn:
            ours.append(ax.bar(*zip(*drawn), width=width, color=colour, label=f"{label}, ours"))
            ax.bar_label(ours[-1], fmt="%.1f", fontsize=7.5, padding=2)
        paper += ax.plot(positions + width / 2 + 0.05, [PAPER["accuracy"][name][key] for name in FIGURE2B], "<",
                         color=colour, markeredgecolor="black", markersize=7, label=f"{label}, paper (CIFAR-10)")
    pgd = [(x, 100 * _measure(results, name, "paper_pgd")) for x, name in zip(np.arange(len(FIGURE2B)) + 0.18, FIGURE2B)
           if _measure(results, name, "paper_pgd") is not None]
    if pgd:
        ours += ax.plot(*zip(*pgd), "_", color="black", markersize=16, markeredgewidth=2,
                        label="robust, ours under the paper's PGD convention")
    ax.set_xticks(range(len(FIGURE2B)), [MATH[name] + ("" if name in accuracy else f"\n({NOT_RUN})") for name in FIGURE2B])
    ax.set(ylim=(0, 105), ylabel="accuracy on the original test set (%)",
           xlabel="training set (standard training unless marked adversarial)")
    figure.legend(handles=ours + paper, loc="outside upper center", ncols=2, fontsize=8, frameon=False)
    ax.set_title(f"Figure 2b: {results.get('data', {}).get('name', 'unknown data')}", fontsize=10)
    figure.supxlabel("paper markers for $\\mathcal{D}$ robust and $\\mathcal{D}$ adversarial: released MadryLab "
                     "ResNet-50s (standard, 100-step PGD; $\\ell_2$ $\\varepsilon$ = 0.5 trained)", fontsize=7)
    return _save(figure, path_stem)


def figure3(results: Mapping, path_stem: str | Path) -> list[Path]:
    """Figure 3: transfer success rate against test accuracy after training on D_det, per architecture."""
    ours = _transfer_points(results)
    if not ours:
        return []
    paper = PAPER["figure3"]["points"]
    r, r_paper = correlation(results), pearson([point[1:] for point in paper.values()])
    series = (("ours", "ours", "tab:blue", "full", "-", (-6, 6), "right", r,
               [(ARCHITECTURES.get(name, name), 100 * x, 100 * y) for name, (x, y) in ours.items()]),
              ("paper", "paper, digitised", "0.35", "none", ":", (6, -11), "left", r_paper, list(paper.values())))
    figure = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = figure.subplots()
    for short, label, colour, fill, style, offset, align, corr, points in series:
        names, x, y = (np.array(column) for column in zip(*points))
        ax.plot(x, y, "o", color=colour, fillstyle=fill, markersize=8,
                label=f"{label} (r = {'n/a' if corr is None else f'{corr:.2f}'})")
        for name, xi, yi in zip(names, x, y):
            ax.annotate(name, (xi, yi), xytext=offset, textcoords="offset points", fontsize=8, color=colour, ha=align)
        if np.ptp(x) > 0:
            slope, intercept = np.polyfit(x, y, 1)
            ends = np.array([x.min(), x.max()])
            ax.plot(ends, slope * ends + intercept, style, color=colour, linewidth=1, label=f"least squares, {short}")
    ax.legend(fontsize=8, loc="lower right")
    ax.set(xlabel="test accuracy on the original test set after training on $\\widehat{\\mathcal{D}}_{det}$ (%)",
           ylabel="transfer success rate of adversarial examples (%)")
    ax.set_title(f"Figure 3: transfer against learnability, r = {'n/a' if r is None else f'{r:.2f}'}\n"
                 f"{results.get('data', {}).get('name', 'unknown data')}", fontsize=9)
    return _save(figure, path_stem)


def _header(results: Mapping) -> list[str]:
    data, stages = results.get("data", {}), results.get("stages", {})
    versions = ", ".join(f"{name} {version}" for name, version in results.get("versions", {}).items())
    seconds = {name: stage.get("parts_seconds", stage.get("seconds", 0)) for name, stage in stages.items()}
    stage_rows = [[name, f"{seconds[name]:.1f}", str(stage.get("sittings") or "?"),
                   "yes" if stage.get("cached") else "no", f"`{str(stage.get('key', ''))[:12]}`"]
                  for name, stage in stages.items()]
    parted = [f"{name} {stage['seconds']:.1f} s" for name, stage in stages.items() if "parts_seconds" in stage]
    lines = [f"# Results: {results.get('preset', 'unknown')} preset", "",
             f"* data: {data.get('name', 'unknown')}, {data.get('train', '?')} training and {data.get('test', '?')} "
             f"test images, {data.get('classes', '?')} classes",
             f"* device: {results.get('device', 'unknown')}, hot loops in {results.get('precision', 'fp32')} (the evaluation "
             f"of record in fp32); git: `{results.get('git', 'unknown')}`",
             f"* versions: {versions or 'unknown'}",
             f"* wall time: {sum(seconds.values()):.1f} s over {len(stages)} stages",
             *(f"* **caveat**: {caveat}" for caveat in caveats(results)), ""]
    if stage_rows:
        lines += [_markdown_table(["stage", "seconds", "sittings", "cached", "key"], stage_rows), ""]
    if parted:
        lines += ["Seconds of the stages made of parts (retrain: one training per set; evaluate: one evaluation per "
                  "model; transfer: its attack and one training per architecture): the sum of the parts' own times, "
                  "every sitting's, parts reused from an earlier run or another stage included; the stages' own "
                  f"sittings took {', '.join(parted)}.", ""]
    return lines


def _sweep_line(name: str, sweep: Mapping) -> str:
    plateau = sweep["plateau"]
    gap = (f"; its plateau is {100 * sweep['gap']:+.1f} points from AutoAttack's {_percent(sweep['reference'])}%"
           if sweep.get("gap") is not None else "")
    return (f"* `{name}`: the strongest PGD tried leaves {_percent(sweep['lowest_accuracy'])}%; the plateau is "
            f"reached at (steps x restarts) = ({plateau['steps']} x {plateau['restarts']}){gap}; "
            + ("converged" if sweep["converged"] else "**not converged**: a stronger attack may lower it"))


def _flag_lines(results: Mapping) -> list[str]:
    """Each flag an evaluation raised, with its message; or a line saying there were none."""
    evaluations = results.get("evaluations", {})
    lines = [f"* `{name}`: **{flag['name']}**: {flag['message']}" for name, record in evaluations.items()
             for flag in record.get("flags", ())]
    if not evaluations:
        return []
    return ["Sanity flags:", *lines] if lines else ["Sanity flags: none raised."]


def _constructions(results: Mapping) -> list[str]:
    built = results.get("constructions", {})
    distance = [[f"`{name}`", built[name].get("source", "?"),
                 *(f"{built[name]['representation_distance'][key]:.4g}" for key in ("mean", "median")),
                 f"{built[name]['relative_distance']['mean']:.4g}"]
                if name in built else [f"`{name}`", NOT_RUN, "", "", ""] for name in ("D_R", "D_NR")]
    attacks = [[f"`{name}`", built[name].get("source", "?"), _percent(built[name]["success_rate"]),
                "**flagged**" if built[name].get("flagged") else "no"]
               if name in built else [f"`{name}`", NOT_RUN, "", ""] for name in ("D_rand", "D_det")]
    flagged = [name for name, entry in built.items() if entry.get("flagged")]
    return ["Representation inversion: distance between the representations of the constructed image and of its "
            "target (relative: divided by the target's norm).", "",
            _markdown_table(["training set", "source model", "mean", "median", "relative mean"], distance), "",
            "Targeted attacks: fraction of images the source model assigns to the new label.", "",
            _markdown_table(["training set", "source model", "success rate (%)", "flagged"], attacks), "",
            f"Flagged constructions: {', '.join(f'`{name}`' for name in flagged) if flagged else 'none'}.",
            *_ground_truth(built)]


def _ground_truth(built: Mapping) -> list[str]:
    """On the planted data: which planted part points to each constructed set's labels."""
    planted = {name: entry["planted"] for name, entry in built.items() if "planted" in entry}
    if not planted:
        return []
    rows = [[f"`{name}`", *(_percent(record[which][f"{part}_points_to_label"]) for which in ("constructed", "original")
                            for part in ("robust", "nonrobust")),
             *(f"{record['constructed'][f'{part}_coefficient']:.3f}" for part in ("robust", "nonrobust"))]
            for name, record in planted.items()]
    return ["", "Ground truth (planted data): the fraction of images whose robust / non-robust planted part points to "
            "the set's label, in the constructed images and in the original images they came from (with the same "
            "labels), and the mean coefficient on the label's templates in the constructed images (natural images: "
            "the template norms).", "",
            _markdown_table(["training set", "robust -> label (%)", "non-robust -> label (%)", "original: robust (%)",
                             "original: non-robust (%)", "robust coefficient", "non-robust coefficient"], rows)]


def _transfer(results: Mapping) -> list[str]:
    ours, paper = _transfer_points(results), PAPER["figure3"]["points"]
    if not ours:
        return [f"Transfer: {NOT_RUN}."]
    rows = [[ARCHITECTURES.get(name, name), _percent(x), _percent(y),
             *((f"{paper[name][1]:g}", f"{paper[name][2]:g}") if name in paper else ("", ""))]
            for name, (x, y) in ours.items()]
    r, r_paper = correlation(results), pearson([point[1:] for point in paper.values()])
    return [_markdown_table(["architecture", "accuracy after D_det (%)", "transfer success (%)", "paper accuracy (%)",
                             "paper success (%)"], rows), "",
            f"Correlation: {'n/a' if r is None else f'{r:.2f}'} (paper, digitised: {r_paper:.2f}; "
            f"{PAPER['figure3']['source']})."]


def report_markdown(results: Mapping, figures: Sequence[str | Path] = (), sections: Sequence[str] = ()) -> str:
    """report.md: provenance, Table 1, Figure 2b's numbers, constructions, transfer, ``sections``
    (markdown lines, e.g. :func:`empirical.discussion_report.sections`) and findings.

    ``figures`` are image files (PNG) to embed, linked by file name (report.md sits beside them).
    """
    chance = 100 / results.get("data", {}).get("classes", 10)
    measures = (("clean", "clean", "clean"), ("robust", "robust (AutoAttack)", "robust"),
                ("paper_pgd", "robust (paper's PGD)", "robust"))
    figure2b_rows = [[f"`{name}`", label, *_compare(_measure(results, name, key), PAPER["accuracy"][name][paper])]
                     for name in FIGURE2B for key, label, paper in measures]
    notes = [f"* `{name}`: {entry['note']}" for name, entry in PAPER["accuracy"].items() if "note" in entry]
    sweeps = [_sweep_line(name, entry["sweep"]) for name, entry in results.get("accuracy", {}).items() if entry.get("sweep")]
    skipped = [f"* `{stage}`: {reason}" for stage, reason in results.get("skipped", {}).items()]
    lines = [*_header(results),
             *(["**Stages not run** (their numbers are missing below):", *skipped, ""] if skipped else []),
             "## Table 1: standard training on non-robust features generalises", "",
             f"Test accuracy on the original test set; chance is {chance:.1f}%. Flag: more than {TOLERANCE:g} points "
             "from the paper's CIFAR-10 number.", "", table1(results), "", *_relabelling_line(results),
             "## Robust accuracy of every model", "", _evaluation_settings(results), "", robustness_table(results), "",
             *_flag_lines(results), "",
             "## Figure 2b: clean and robust accuracy on the original test set", "",
             "Robust accuracy by AutoAttack, and by the paper's PGD convention beside it; the paper's robust "
             "numbers are PGD's.", "",
             _markdown_table(["training set", "accuracy", "ours (%)", "paper (%)", "difference (points)", "flag"],
                             figure2b_rows), "",
             "Reference numbers that the paper does not print:", *notes, ""]
    if sweeps:
        lines += ["Attack-strength check (the project's PGD against its steps and restarts):", *sweeps, ""]
    lines += ["## Constructed training sets", "", *_constructions(results), "",
              "## Figure 3: transfer against learnability", "", *_transfer(results), "", *sections,
              "## Qualitative findings", ""]
    marks = {"reproduced": "[x]", "not reproduced": "[ ]", NOT_RUN: "[ ]"}
    lines += [f"- {marks[f.status]} **{f.status}**: {f.claim}" + (f" ({f.evidence})" if f.evidence else "")
              + (f". Diagnosis: {f.diagnosis}." if f.diagnosis else "") for f in findings(results)]
    if figures:
        lines += ["", "## Figures", "", *(f"![{Path(path).stem}]({Path(path).name})\n" for path in figures)]
    return "\n".join(lines) + "\n"


def write_report(results: Mapping, samples: Mapping[str, Tensor], out_dir: str | Path, *, sections: Sequence[str] = (),
                 figures: Sequence[Path] = ()) -> list[Path]:
    """Write table1.md, figure2a/2b/3 (PNG and PDF, those with data) and report.md into ``out_dir``;
    ``sections`` and ``figures`` (already written there) join the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table1.md").write_text(table1(results) + "\n\n" + _evaluation_settings(results) + "\n\n"
                                   + robustness_table(results) + "\n")
    figures = [*figure2a(samples, out / "figure2a"), *figure2b(results, out / "figure2b"),
               *figure3(results, out / "figure3"), *figures]
    (out / "report.md").write_text(report_markdown(results, [path for path in figures if path.suffix == ".png"], sections))
    return [out / "table1.md", *figures, out / "report.md"]

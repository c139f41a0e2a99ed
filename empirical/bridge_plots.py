"""Figures of :mod:`empirical.bridge`: the two-Gaussian study and the image models' distributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def study_figure(study: dict) -> Figure:
    """Alignment against eps: closed form (Theorems 2-3) beside the trained linear models and network."""
    rows = study["rows"]
    eps = np.array([row["eps"] for row in rows])
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = figure.subplots(1, 2)
    left.plot(eps, [row["closed_form"] for row in rows], "-", color="C0", label="closed form cos($\\mu^*$, $\\Sigma_r^{-1}\\mu^*$)")
    left.plot(eps, [row["gaussian_mle"] for row in rows], "o", color="C0", markerfacecolor="none",
              label="Gaussian MLE, adversarial training (gaussfeat)")
    logistic = [(row["eps"], row["logistic"]) for row in rows if row["logistic"] is not None]
    left.plot(*zip(*logistic), "s", color="C1", label="logistic regression, exact worst case")
    median = np.array([row["network"]["median"] for row in rows])
    spread = np.array([[row["network"]["median"] - row["network"]["q25"], row["network"]["q75"] - row["network"]["median"]]
                       for row in rows]).T
    left.errorbar(eps, median, yerr=spread, fmt="^", color="C2", capsize=3, label="ReLU network, PGD training (median, IQR)")
    left.set(xlabel="$\\varepsilon$ ($\\ell_2$ radius of the adversary)", ylabel="cos(grad$_x$ margin, $m_+ - m_-$)",
             title="gradient alignment: theory and trained models")
    left.legend(fontsize=7.5)
    right.plot(eps, [row["closed_form_condition"] for row in rows], "-", color="C0", label="closed form cond($\\Sigma_r$)")
    right.plot(eps, [row["gaussian_mle_condition"] for row in rows], "o", color="C0", markerfacecolor="none",
               label="adversarially trained Gaussian MLE")
    right.set(xlabel="$\\varepsilon$", ylabel="condition number of the learned metric", yscale="log",
              title="the learned metric blends with $\\ell_2$")
    right.legend(fontsize=7.5)
    settings = study["settings"]
    figure.suptitle(f"Two Gaussians in d = {settings['dim']}, spectrum ~ 1/k (natural-image-like), n = {settings['samples']}",
                    fontsize=10)
    return figure


def pixels_figure(record: dict) -> Figure:
    """Against eps, theory (the two-Gaussian fit to the pixels) and the networks trained on the same pair:
    gradient alignment, misalignment, and robust test accuracy at the evaluation radius."""
    rows, networks = record["theory"]["rows"], record["networks"]
    figure = Figure(figsize=(14, 4.2), layout="constrained")
    axes = figure.subplots(1, 3)
    axes[1].axhline(record["random_direction_misalignment"], color="black", linestyle=":",
                    label="random direction, tr($\\Sigma^{-1}$)/d")
    kinds = [("closed_form", "-", "Theorem 2 closed form $\\Sigma_r^{-1}\\mu$"), ("exact", "o", "exact robust MLE")]
    evaluation = record["settings"]["evaluation"]["eps"]
    for axis, key, network_key, label in [
        (axes[0], "alignment", "alignment", "cos(grad$_x$, $\\mu$)"),
        (axes[1], "misalignment", "misalignment", "$\\delta^T\\Sigma^{-1}\\delta / \\|\\delta\\|^2$"),
        (axes[2], "test_robust_accuracy_at_evaluation_eps", None, f"robust test accuracy at $\\ell_2$ {evaluation:g}"),
    ]:
        for kind, style, name in kinds:
            points = [(row["eps"], row[kind][key]) for row in rows if kind in row]
            if points:
                axis.plot(*zip(*points), style, color="C0", markerfacecolor="none", label=f"linear: {name}")
        if network_key is not None:
            median = [n[network_key] for n in networks]
            quartiles = np.array([n[f"{network_key}_quartiles"] for n in networks]).T
            axis.errorbar([n["eps"] for n in networks], median, yerr=np.abs(quartiles - median), fmt="^", color="C2",
                          capsize=3, label="fast net, PGD training (median, IQR)")
        else:
            axis.plot([n["eps"] for n in networks], [n["robustness"]["autoattack"]["robust"] for n in networks], "^",
                      color="C2", label="fast net (AutoAttack)")
        axis.set(xlabel="$\\varepsilon$ of training ($\\ell_2$)", ylabel=label)
        axis.legend(fontsize=7.5)
    axes[1].set(yscale="log", title="misalignment (Theorem 1)")
    axes[0].set(title="gradient alignment (Theorem 3)")
    axes[2].set(title="robustness")
    figure.suptitle(f"{record['data']['train']}: two Gaussians fitted to the pixels (d = {record['theory']['d']}, "
                    f"n = {record['theory']['n']}) and networks on the same pair", fontsize=10)
    return figure


def pair_relabelling_figure(record: dict) -> Figure:
    """D_rand and D_det on a class pair against eps: the fitted two-Gaussian model's prediction (population limit,
    and sets of the pair's size) beside the networks retrained on each set, on the original test images."""
    predicted, measured = record["prediction"], record["measured"]
    figure = Figure(figsize=(10, 4), layout="constrained")
    for axis, key, title in zip(figure.subplots(1, 2, sharey=True), ("d_rand", "d_det"), ("D_rand", "D_det")):
        eps = [row["eps"] for row in predicted["rows"]]
        axis.plot(eps, [row[key]["population"] for row in predicted["rows"]], "-", color="C0", label="model, population limit")
        sampled = np.array([row[key]["sampled"] for row in predicted["rows"]])
        axis.errorbar(eps, sampled[:, 0], yerr=sampled[:, 1], fmt="o", color="C0", markerfacecolor="none", capsize=3,
                      label=f"model, n = {predicted['n']}")
        axis.plot([row["eps"] for row in measured], [row[key]["test_accuracy"] for row in measured], "^-", color="C2",
                  label=f"{record['settings']['network']['model']} retrained on it, test accuracy")
        axis.axhline(0.5, color="0.5", linewidth=0.8)
        axis.axvline(predicted["d_det_threshold"], color="C3", linestyle=":", label="the model's $\\varepsilon^*$")
        if key == "d_det":
            axis.plot([row["eps"] for row in measured], [row[key]["success_rate"] for row in measured], "v--",
                      color="C1", label="the relabelling's success on the source")
            if record["crossings"]["success_rate"] is not None:
                axis.axvline(record["crossings"]["success_rate"], color="C1", linestyle=":",
                             label="the source's median margin (success 1/2)")
        axis.set(xscale="log", ylim=(0, 1.02), xlabel="$\\varepsilon$ ($\\ell_2$, pixels in [0, 1])", title=f"{title}: {record['pair']}")
        axis.title.set_fontsize(9)
        axis.legend(fontsize=7)
    figure.axes[0].set_ylabel("accuracy on the original pair")
    return figure


def images_figure(measured: dict, title: str) -> Figure:
    """Per model: the distributions of gradient alignment and of the perturbations' Mahalanobis/l2 ratio."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = figure.subplots(1, 2)
    for index, (name, result) in enumerate(measured["models"].items()):
        left.hist(result["alignment_values"], bins=40, alpha=0.5, color=f"C{index}", label=name)
        right.hist(np.log10(result["ratio_values"]), bins=40, alpha=0.5, color=f"C{index}", label=name)
    left.set(xlabel="cos(grad$_x$ (logit$_y$ - logit$_t$), $\\mu_y - \\mu_t$)", ylabel="test images",
             title="gradient alignment (Theorem 3)")
    right.axvline(np.log10(measured["random_direction_ratio"]), color="black", linestyle=":",
                  label="random direction, tr($\\Sigma^{-1}$)/d")
    right.set(xlabel="log$_{10}$ $\\delta^T\\Sigma^{-1}\\delta / \\|\\delta\\|^2$ of the attack's perturbation",
              title=f"misalignment (Theorem 1), shrinkage {measured['shrinkage']:.2g}")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    return figure


def save(figure: Figure, stem: Path) -> list[Path]:
    """PNG (150 dpi) and PDF (no creation date) beside each other."""
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    figure.savefig(paths[0], dpi=150)
    figure.savefig(paths[1], metadata={"CreationDate": None})
    return paths

"""Matplotlib drawings of the dicts made by :mod:`gaussfeat.figures.data` (no computation here).

Figures are built with :class:`matplotlib.figure.Figure` directly, so no pyplot state or
interactive backend is involved.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse
from matplotlib.ticker import NullLocator

CLOSED, FIT, TRUTH = "tab:blue", "tab:orange", "black"
CLASSES = {1.0: "tab:green", -1.0: "tab:purple"}


def blending(data: dict) -> Figure:
    """Figure 4: per eps, the learned 2-sd ellipses around +-mu, the boundary and the gradient."""
    panels = data["panels"]
    figure = Figure(figsize=(3.3 * len(panels), 3.1), layout="constrained")
    axes = figure.subplots(1, len(panels), sharex=True, sharey=True)
    points, labels = np.array(data["points"]["x"]), np.array(data["points"]["y"])
    mu_star = np.array(data["instance"]["mu"])
    for ax, panel in zip(np.atleast_1d(axes), panels):
        for label, colour in CLASSES.items():
            chosen = points[labels == label]
            ax.scatter(chosen[:, 0], chosen[:, 1], s=3, color=colour, alpha=0.25, linewidths=0)
        for model, colour, style, width in ((panel["closed_form"], CLOSED, "-", 2.5), (panel["fit"], FIT, "--", 1.2)):
            mu, sigma, w = np.array(model["mu"]), np.array(model["sigma"]), np.array(model["weights"])
            for sign in (1, -1):
                ax.add_patch(_ellipse(sign * mu, sigma, 2.0, colour, style))
            normal = np.array([-w[1], w[0]]) / np.linalg.norm(w)
            ax.plot(*np.transpose([-6 * normal, 6 * normal]), color=colour, linestyle=style, linewidth=1)
            ax.annotate("", xy=1.6 * w / np.linalg.norm(w), xytext=(0, 0),
                        arrowprops={"arrowstyle": "-|>", "color": colour, "linestyle": style, "linewidth": width})
        ax.annotate("", xy=1.6 * mu_star / np.linalg.norm(mu_star), xytext=(0, 0),
                    arrowprops={"arrowstyle": "-|>", "color": TRUTH, "linewidth": 0.8})
        ax.plot(*np.transpose([mu_star, -mu_star]), "x", color=TRUTH, markersize=6)
        lam = "" if panel["lam"] is None else f", $\\lambda$ = {panel['lam']:.3g}"
        ax.set_title(f"$\\varepsilon$ = {panel['eps']:g}{lam}", fontsize=10)
        ax.text(0.03, 0.03, f"angle(w, $\\mu^*$): {panel['closed_form']['angle_degrees']:.0f}° closed form, "
                f"{panel['fit']['angle_degrees']:.0f}° fit", transform=ax.transAxes, fontsize=7.5)
        ax.set_xlim(-4.5, 4.5)
        ax.set_ylim(-2.6, 2.6)
        ax.set_aspect("equal")
        ax.set_xlabel("$x_1$ (robust feature: sd 1)")
    np.atleast_1d(axes)[0].set_ylabel("$x_2$ (non-robust feature: sd 0.1)")
    handles = [Line2D([], [], color=CLOSED, label="closed form $\\Sigma_r$ (Theorem 2): 2-sd ellipse, boundary, gradient"),
               Line2D([], [], color=FIT, linestyle="--", label=f"adversarial training on {data['samples']} samples (exact $\\ell_2$)"),
               Line2D([], [], color=TRUTH, marker="x", linewidth=0.8, label="$\\pm\\mu^*$ and its direction")]
    figure.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    figure.suptitle("As $\\varepsilon$ grows the mean stays, the covariance blends with the identity, "
                    "and the gradient $w = \\Sigma^{-1}\\mu$ turns toward $\\mu^*$", fontsize=10)
    return figure


def _ellipse(centre: np.ndarray, sigma: np.ndarray, radius: float, colour: str, style: str) -> Ellipse:
    """The set {x: (x - centre)^T Sigma^-1 (x - centre) = radius^2}."""
    eigenvalues, basis = np.linalg.eigh(sigma)
    width, height = 2 * radius * np.sqrt(eigenvalues[::-1])
    angle = np.degrees(np.arctan2(basis[1, -1], basis[0, -1]))
    return Ellipse(tuple(centre), width, height, angle=angle, fill=False, edgecolor=colour, linestyle=style, linewidth=1.3)


def misalignment(data: dict) -> Figure:
    """Theorem 1: the gaps per dimension against cond(Sigma*) at fixed trace; minimum at isotropy."""
    figure = Figure(figsize=(10, 4.2), layout="constrained")
    axes = figure.subplots(1, 2)
    titles = {"gap": "paper's gap $[\\mathrm{tr}(I + (C\\Sigma^* - I)^{-1})^2 - d]\\,/\\,d$\n= 2 E[NLL increase] / d",
              "penalized": "penalised gap $\\mathrm{tr}[(C\\Sigma^* - I)^{-1}]\\,/\\,d$\n= 2 E[NLL increase $-$ (C/2)$\\|\\delta\\|^2$] / d"}
    scatter = np.array(data["random"]["condition_gap_penalized"])
    for ax, (key, title) in zip(axes, titles.items()):
        ax.scatter(scatter[:, 0], scatter[:, 1 if key == "gap" else 2], s=6, color="0.7",
                   label=f"random spectra, d = {data['random']['dim']}")
        for index, family in enumerate(data["families"]):
            colour = f"C{index}"
            ax.plot(family["conditions"], family[key], color=colour, label=f"geometric spectrum, d = {family['dim']}")
            mc = np.array([[point["condition"], *point[key]] for point in family["monte_carlo"]])
            ax.errorbar(mc[:, 0], mc[:, 1], yerr=3 * mc[:, 2], fmt="o", color=colour, markersize=4,
                        label=f"Monte Carlo (d = {family['dim']}, $\\pm$3 se)")
        ax.axhline(data["isotropic"][key], color=TRUTH, linestyle=":", label="isotropic $\\Sigma^*$ (the minimum)")
        ax.set(xscale="log", yscale="log", xlabel="anisotropy cond($\\Sigma^*$) at tr($\\Sigma^*$) = d", title=title)
        ax.title.set_fontsize(9)
    axes[0].set_ylabel("adversary's gain per dimension")
    axes[1].legend(fontsize=7.5, loc="upper left")
    figure.suptitle(f"Theorem 1: vulnerability grows with the misalignment of $\\Sigma^*$ and $\\ell_2$ (C = {data['C']:g})", fontsize=10)
    return figure


def robust_covariance(spectrum: dict, gap: dict) -> Figure:
    """Theorem 2: Sigma_r's eigenvalues and condition number against eps; the relaxation gap against d."""
    figure = Figure(figsize=(13, 4.2), layout="constrained")
    values, condition, relaxation = figure.subplots(1, 3)
    eps = [row["eps"] for row in spectrum["closed_form"]]
    closed = np.array([row["eigenvalues"] for row in spectrum["closed_form"]])
    fit_eps = [row["eps"] for row in spectrum["fits"]]
    fitted = np.array([row["eigenvalues"] for row in spectrum["fits"]])
    colours = [f"C{i % 10}" for i in range(closed.shape[1])]
    for i, colour in enumerate(colours):
        values.plot(eps, closed[:, i], color=colour)
        values.plot(fit_eps, fitted[:, i], "o", color=colour, markersize=4, markerfacecolor="none")
        values.plot(eps[0], spectrum["standard"]["eigenvalues"][i], "<", color=colour, markersize=5, clip_on=False)
    values.set(xscale="log", yscale="log", xlabel="$\\varepsilon$ ($\\ell_2$ radius)", ylabel="eigenvalues of $\\Sigma_r$",
               title=f"eigenvalues rise and merge (d = {spectrum['dim']})")
    values.legend(handles=[Line2D([], [], color="0.3", label="closed form"),
                           Line2D([], [], color="0.3", marker="o", linestyle="", markerfacecolor="none",
                                  label=f"adversarial training, n = {spectrum['samples']}"),
                           Line2D([], [], color="0.3", marker="<", linestyle="", label="eigenvalues of $\\Sigma^*$")], fontsize=7.5)
    condition.plot(eps, [row["condition"] for row in spectrum["closed_form"]], color=CLOSED, label="closed form")
    condition.plot(fit_eps, [row["condition"] for row in spectrum["fits"]], "o", color=FIT, label="adversarial training")
    condition.axhline(spectrum["standard"]["condition"], color=TRUTH, linestyle=":", label="cond($\\Sigma^*$)")
    condition.set(xscale="log", yscale="log", xlabel="$\\varepsilon$ ($\\ell_2$ radius)", ylabel="cond($\\Sigma_r$)",
                  title="the condition number falls toward 1")
    condition.legend(fontsize=7.5)
    for index, budget in enumerate(sorted({cell["budget"] for cell in gap["cells"]})):
        cells = [cell for cell in gap["cells"] if cell["budget"] == budget]
        dims = np.array([cell["dim"] for cell in cells])
        for key, style in (("gap", "-o"), ("condition_error", ":s")):
            runs = np.array([cell[key] for cell in cells])
            middle = runs.mean(axis=1)
            relaxation.errorbar(dims, middle, yerr=[middle - runs.min(axis=1), runs.max(axis=1) - middle], fmt=style,
                                color=f"C{index}", markersize=4, capsize=2,
                                label=f"b = {budget:g}: " + ("$\\|\\Sigma_{\\ell_2} - \\Sigma_r\\|_F / \\|\\Sigma_r\\|_F$" if key == "gap" else "cond error"))
    dims = sorted({cell["dim"] for cell in gap["cells"]})
    relaxation.set(yscale="log", xlabel=f"dimension d ({gap['repeats']} random instances each, n = {gap['samples']})",
                   ylabel="relative difference", title="exact $\\ell_2$ training vs the closed form")
    relaxation.set_xscale("log", base=2)
    relaxation.set_xticks(dims, labels=[str(d) for d in dims], minor=False)
    relaxation.xaxis.set_minor_locator(NullLocator())
    relaxation.legend(fontsize=7, title="b = $\\varepsilon^2$ / tr $\\Sigma^*$ (mean, min-max)", title_fontsize=7.5)
    figure.suptitle("Theorem 2: robust training blends $\\Sigma^*$ with the identity; "
                    "its Lagrangian relaxation tightens as d grows", fontsize=10)
    return figure


def alignment(spectrum: dict) -> Figure:
    """Theorem 3: worst-case, typical and instance gradient alignment against eps."""
    figure = Figure(figsize=(6.8, 4.6), layout="constrained")
    ax = figure.subplots()
    eps = [row["eps"] for row in spectrum["closed_form"]]
    fit_eps = [row["eps"] for row in spectrum["fits"]]
    curves = (("worst_case_alignment", "worst case over $\\mu$: $2\\sqrt{k}/(1+k)$, k = cond $\\Sigma$", "C0", "o"),
              ("typical_alignment", "typical: mean over random $\\mu$ (10-90% band)", "C1", "s"),
              ("alignment", "this instance's $\\mu^*$", "C2", "^"))
    for key, label, colour, marker in curves:
        pick = (lambda row: row[key][0]) if key == "typical_alignment" else (lambda row: row[key])
        ax.plot(eps, [pick(row) for row in spectrum["closed_form"]], color=colour, label=label)
        ax.plot(fit_eps, [pick(row) for row in spectrum["fits"]], marker, color=colour, markerfacecolor="none")
        ax.axhline(pick(spectrum["standard"]), color=colour, linestyle=":", linewidth=1)
    band = np.array([row["typical_alignment"][1:] for row in spectrum["closed_form"]])
    ax.fill_between(eps, band[:, 0], band[:, 1], color="C1", alpha=0.15, linewidth=0)
    kinds = [Line2D([], [], color="0.3", label="robust $\\Sigma_r$, closed form (Theorem 2)"),
             Line2D([], [], color="0.3", marker="o", linestyle="", markerfacecolor="none",
                    label=f"robust, adversarial training (n = {spectrum['samples']})"),
             Line2D([], [], color="0.3", linestyle=":", label="standard model $\\Sigma^*$")]
    ax.legend(handles=[*ax.get_legend_handles_labels()[0], *kinds], fontsize=7, loc="lower right")
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="$\\varepsilon$ ($\\ell_2$ radius of the adversary)",
           ylabel="cos($\\mu$, $\\Sigma^{-1}\\mu$): gradient alignment",
           title=f"Theorem 3: robust gradients align with the mean direction (d = {spectrum['dim']}, "
                 f"cond $\\Sigma^*$ = {spectrum['standard']['condition']:.0f})")
    ax.title.set_fontsize(10)
    return figure


def relabelled(data: dict) -> Figure:
    """D_rand and D_det in the model: accuracy on the original distribution against eps, and D_det against eps/eps*."""
    figure = Figure(figsize=(11, 3.8), layout="constrained")
    rand_ax, det_ax, scaled_ax = figure.subplots(1, 3, sharey=True)
    for index, row in enumerate(data["rows"]):
        colour, label = f"C{index}", f"cond $\\Sigma$ = {row['condition']:g} ($\\varepsilon^*$ = {row['d_det_threshold']:.3g})"
        for ax, key, scale in ((rand_ax, "d_rand", 1.0), (det_ax, "d_det", 1.0), (scaled_ax, "d_det", row["d_det_threshold"])):
            eps, sampled = np.array(row["eps"]) / scale, np.array(row[f"{key}_sampled"])
            ax.plot(eps, row[key], color=colour, label=label if ax is rand_ax else None)
            ax.errorbar(np.array(row["sampled_eps"]) / scale, sampled[:, 0], yerr=sampled[:, 1], fmt="o", color=colour,
                        markerfacecolor="none", markersize=4, capsize=2)
            ax.axhline(row["bayes_accuracy"], color=colour, linestyle=":", linewidth=0.8)
    kinds = [Line2D([], [], color="0.3", label="population limit (closed form)"),
             Line2D([], [], color="0.3", marker="o", linestyle="", markerfacecolor="none",
                    label=f"n = {data['n']} points: mean and sd over {data['draws']} sets"),
             Line2D([], [], color="0.3", linestyle=":", label="the truth's (Bayes) accuracy")]
    rand_ax.legend(handles=[*rand_ax.get_legend_handles_labels()[0], *kinds], fontsize=6.5, loc="lower right")
    for ax, title, xlabel in ((rand_ax, "D_rand: above chance at every $\\varepsilon$ in the limit", "$\\varepsilon$"),
                              (det_ax, "D_det: above chance only beyond $\\varepsilon^*$", "$\\varepsilon$"),
                              (scaled_ax, "D_det against $\\varepsilon / \\varepsilon^*$", "$\\varepsilon / \\varepsilon^*$")):
        ax.axhline(0.5, color="0.5", linewidth=0.8)
        ax.set(xscale="log", ylim=(0, 1.02), xlabel=xlabel, title=title)
        ax.title.set_fontsize(9)
    scaled_ax.axvline(1.0, color="0.5", linewidth=0.8)
    rand_ax.set_ylabel("accuracy on the original distribution")
    figure.suptitle(f"Section 3 in the two-Gaussian model (d = {data['dim']}, |$\\mu$| = 1): the standard MLE of the "
                    "relabelled set", fontsize=10)
    return figure

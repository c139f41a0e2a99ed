"""D_rand's and D_det's test accuracy against the compute that made them, on 2 CPU cores: the curve behind the full run's hours.

Every recipe measured on all 50,000 CIFAR-10 training images is a point: its cost is the hours of
training the source, relabelling the set and retraining on it (each part as measured in its own run;
a source shared by several recipes is counted in each, since each needs it), its height the retrained
net's accuracy on the original test set. The points come from benchmarks/relabel_recipes.py's record
(``--recipes``) and from a finished full run (``--run``: its standard model, its D_rand and D_det and
their retraining). Beside them: the paper's Table 1, the public replications' numbers and chance.

    PYTHONPATH=. python3 benchmarks/accuracy_vs_compute.py [--recipes benchmarks/results/relabel_recipes-50000.json]
        [--run results/suite-cifar10-cpu-full]

Writes benchmarks/results/accuracy_vs_compute.json and the figure beside it (.png, .pdf).
"""

from __future__ import annotations

import json
from pathlib import Path

import _common

p = _common.parser(__doc__.split("\n\n")[0], threads=2)
p.add_argument("--recipes", type=Path, default=Path("benchmarks/results/relabel_recipes-50000.json"),
               help="relabel_recipes.py's record on 50,000 images")
p.add_argument("--run", type=Path, default=Path("results/suite-cifar10-cpu-full"), help="a finished full run's folder")
args = p.parse_args()
_common.pin_threads(args.threads)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from empirical.suite import Suite  # noqa: E402

REFERENCES = {"rand": {"paper (ResNet-50)": 63.3, "KellerJordan (ResNet-9, 94% source)": 81.1},
              "det": {"paper (ResNet-50)": 43.7, "KellerJordan, Nakkiran": 35.0}}  # test accuracy, %

if not args.recipes.is_file():
    p.error(f"--recipes {args.recipes} does not exist (benchmarks/relabel_recipes.py writes it)")
points = {"rand": [], "det": []}
for name, row in json.loads(args.recipes.read_text())["results"]["rows"].items():
    if row["images"] == 50_000:
        points[row["relabel"]["mode"]].append({"recipe": name, "eps": row["relabel"]["eps"],
                                               "hours": sum(row["seconds"].values()) / 3600,
                                               "test_accuracy": 100 * row["test_accuracy"]})
suite = Suite.reopen(args.run, device="cpu", progress=False, log=lambda line: None)
retrained, full_run = suite.stage_result("retrain"), f"the full run ({suite.preset.name})"
for mode in points:
    name = f"D_{mode}"
    parts = (suite.stage_result("standard")["seconds"], suite.stage_result(name)["seconds"],
             retrained[name]["training_seconds"])
    points[mode].append({"recipe": full_run, "eps": suite.preset.relabel["eps"],
                         "hours": sum(parts) / 3600, "test_accuracy": 100 * retrained[name]["clean"]})

figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, mode in zip(axes, ("rand", "det")):
    for point in points[mode]:
        full = point["recipe"] == full_run
        ax.scatter(point["hours"], point["test_accuracy"], marker="*" if full else "o", s=120 if full else 30,
                   color="C3" if full else "C0", zorder=3)
    for (label, value), style in zip(REFERENCES[mode].items(), ("--", ":")):
        ax.axhline(value, linestyle=style, color="grey", linewidth=1)
        ax.annotate(label, (0.02, value), xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
    ax.axhline(10, color="black", linewidth=0.5)
    ax.set(title=f"$D_{{{mode}}}$ on all 50,000 images: dots eps 0.5 (relabel_recipes.py), star the full run (eps "
                 f"{suite.preset.relabel['eps']:g})", xlabel="hours on 2 CPU cores: source + relabelling + retraining",
           ylabel="retrained net's test accuracy (%)", ylim=(0, 90))
    ax.title.set_fontsize(8)
figure.tight_layout()
stem = Path(args.out).with_suffix("") if args.out else _common.RESULTS / "accuracy_vs_compute"
if not args.quick:
    for suffix in (".png", ".pdf"):
        figure.savefig(stem.with_suffix(suffix), dpi=150)
rows = [[mode, point["recipe"], point["eps"], point["hours"], point["test_accuracy"]] for mode in points for point in points[mode]]
print(_common.markdown_table(["set", "recipe", "eps", "hours", "test accuracy (%)"], rows))
_common.write_results("accuracy_vs_compute", args, {"run": str(args.run), "recipes": str(args.recipes), "points": points,
                                                    "references": REFERENCES})

"""bf16 against fp32 on the same models and images: PGD robust accuracy and the relabelling's targeted success.

Reads a finished suite run (``--run``, any preset; its models are loaded as trained) and, for the
standard and the adversarially trained model, measures in each precision of the hot loops
(:mod:`empirical.device`), with the same seeds:

* robust accuracy on the first ``--images`` test images under the paper's PGD and the project's PGD
  (the preset's evaluation settings; the evaluation of record itself is always fp32);
* the targeted success of the D_rand and D_det relabelling (the preset's eps, steps and step size)
  on the first ``--train-images`` training images, and how often the two precisions' perturbed
  images get the same label from the source model (in fp32).

    PYTHONPATH=. python3 benchmarks/bf16_agreement.py --run results-local/fashion-bf16
"""

from __future__ import annotations

import _common

p = _common.parser(__doc__.split("\n\n")[0], threads=2)
p.add_argument("--run", required=True, help="a suite run's --out folder (with results.json and its stages)")
p.add_argument("--images", type=int, default=500, help="test images of the robust accuracies")
p.add_argument("--train-images", type=int, default=2000, help="training images relabelled")
args = p.parse_args()
_common.pin_threads(args.threads)

import time  # noqa: E402

import torch  # noqa: E402

from empirical.construct import relabelled_dataset  # noqa: E402
from empirical.device import policy  # noqa: E402
from empirical.evaluate import predict, robust_accuracy  # noqa: E402
from empirical.suite import Suite  # noqa: E402

torch.set_num_threads(args.threads)
suite = Suite.reopen(args.run, progress=False, log=lambda line: None)
train_data, test = suite.data
count, relabelled_count = (50, 64) if args.quick else (args.images, args.train_images)
x, y = test.images[:count], test.labels[:count]
subset = train_data.subset(min(relabelled_count, len(train_data)))
evaluation = suite.preset.evaluation
rows, began = [], time.perf_counter()
for name in ("D", "D (adversarial)"):
    model = suite.model(name)
    for attack_name, attack in (("paper PGD", evaluation.paper), ("project PGD", evaluation.pgd)):
        found = {}
        for precision in ("fp32", "bf16"):
            with policy(precision=precision):
                found[precision] = robust_accuracy(model, x, y, attack, seed=0)
        rows.append({"model": name, "measure": f"robust accuracy, {attack_name} (l2 {attack.eps})", **found,
                     "difference_points": 100 * (found["bf16"] - found["fp32"])})
        print(rows[-1], flush=True)
source = suite.model("D")
for mode in ("rand", "det"):
    built, stats = {}, {}
    for precision in ("fp32", "bf16"):
        with policy(precision=precision):
            built[precision], stats[precision] = relabelled_dataset(source, subset, mode=mode, progress=False,
                                                                   **suite.preset.relabel)
    with policy(precision="fp32"):
        same = float((predict(source, built["fp32"].images) == predict(source, built["bf16"].images)).float().mean())
    found = {precision: stats[precision]["success_rate"] for precision in ("fp32", "bf16")}
    rows.append({"model": "D", "measure": f"D_{mode} targeted success (l2 {suite.preset.relabel['eps']})", **found,
                 "difference_points": 100 * (found["bf16"] - found["fp32"]), "same_fp32_label": same})
    print(rows[-1], flush=True)

print("\n" + _common.markdown_table(["model", "measure", "fp32", "bf16", "bf16 - fp32 (points)"],
                                    [[r["model"], r["measure"], f"{100 * r['fp32']:.1f}%", f"{100 * r['bf16']:.1f}%",
                                      f"{r['difference_points']:+.1f}"] for r in rows]))
_common.write_results(f"bf16_agreement_{suite.preset.name}", args, {
    "run": args.run, "preset": suite.preset.name, "run_precision": suite.precision, "test_images": count,
    "train_images": len(subset), "rows": rows, "seconds": time.perf_counter() - began})

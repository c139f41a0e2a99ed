"""How far representation inversion gets, by steps and step schedule: the evidence behind the presets' inversion.

D_R and D_NR (eq. 5-6) minimise ||g(x_r) - g(x)|| by normalised l2 descent; the paper runs 1000
steps of 0.1. This measures, on a preset's own source models (``--preset``, trained into ``--work``
by the suite, or reused from there: a run's ``--out`` reuses its models), the relative representation distance
||g(x_r) - g(x)|| / ||g(x)|| reached on the first ``--images`` training images by constant steps of
0.1 (the paper's schedule, cut at several step counts) and by steps falling from a larger first
step to 0 along a cosine. Lower is better converged; the paper's 1000 steps are the reference.

    PYTHONPATH=. python3 benchmarks/inversion_convergence.py [--images 256] [--preset cifar10-cpu] [--work DIR]
        [--constant 50 100 ...] [--cosine 100 200] [--first 0.5 1.0]

Rows go to benchmarks/results/inversion_convergence-<preset>.json.
"""

from __future__ import annotations

import _common

p = _common.parser(__doc__.split("\n\n")[0], threads=2)
p.add_argument("--images", type=int, default=256, help="training images inverted per setting")
p.add_argument("--preset", default="cifar10-cpu", help="the preset whose standard and robust models are inverted")
p.add_argument("--constant", type=int, nargs="+", default=[50, 100, 200, 400, 1000],
               help="step counts of the paper's constant steps of 0.1")
p.add_argument("--cosine", type=int, nargs="+", default=[100, 200], help="step counts of the falling (cosine) schedule")
p.add_argument("--first", type=float, nargs="+", default=[0.5, 1.0], help="first steps of the falling schedule")
p.add_argument("--work", default="results-local/inversion-convergence", help="where the suite trains the source models")
args = p.parse_args()
_common.pin_threads(args.threads)

import time  # noqa: E402

import torch  # noqa: E402

from empirical.construct import features_dataset  # noqa: E402
from empirical.suite import PRESETS, Suite  # noqa: E402

torch.set_num_threads(args.threads)
if args.preset not in PRESETS:
    p.error(f"--preset must be one of {', '.join(sorted(PRESETS))}, got {args.preset!r}")
constant = [(steps, 0.1, "constant") for steps in ((5, 10) if args.quick else args.constant)]
falling = [] if args.quick else [(steps, first, "cosine") for steps in args.cosine for first in args.first]
preset = PRESETS["tiny" if args.quick else args.preset]()
suite = Suite(preset, args.work, device="cpu", progress=False)
if not (suite.done("standard") and suite.done("robust")):
    suite.run(["standard", "robust"])
images = suite.data[0].subset(min(args.images, len(suite.data[0])))
rows = []
for source, name in (("robust", "D_R"), ("standard", "D_NR")):
    model = suite.model(source)
    for steps, step_size, schedule in constant + falling:
        began = time.perf_counter()
        _, stats = features_dataset(model, images, name=name, steps=steps, step_size=step_size, schedule=schedule,
                                    progress=False)
        rows.append({"set": name, "steps": steps, "step_size": step_size, "schedule": schedule,
                     "relative_median": stats["relative_distance"]["median"], "relative_mean": stats["relative_distance"]["mean"],
                     "seconds": time.perf_counter() - began})
        print(f"{name:5s} {steps:5d} steps of {step_size:g} ({schedule:8s}) relative distance median "
              f"{rows[-1]['relative_median']:.4f} mean {rows[-1]['relative_mean']:.4f}  {rows[-1]['seconds']:.0f} s", flush=True)

print("\n" + _common.markdown_table(["set", "steps", "first step", "schedule", "relative median", "relative mean", "seconds"],
                                    [[r["set"], r["steps"], r["step_size"], r["schedule"], r["relative_median"],
                                      r["relative_mean"], r["seconds"]] for r in rows]))
_common.write_results(f"inversion_convergence-{preset.name}", args, {"preset": preset.name, "images": len(images), "rows": rows})

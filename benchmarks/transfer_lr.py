"""The learning rate at which each of Figure 3's architectures learns D_det: the evidence behind ``transfer_training``.

The transfer stage trains every architecture on D_det with D_det's retraining (Figure 3); a rate
tuned for one network can make another diverge (the full run's MLP at the ResNet-9's lr 0.4: its
training accuracy fell to 10% by epoch 6 and it scored 7.4%, below chance). This trains each
``--models`` architecture on a finished run's D_det (``--work``: the run's ``--out``; its standard
model and D_det are reused, nothing else is written there) at each ``--lr``, the rest of its
training as the preset has it, and reports each epoch's training accuracy, the accuracy on the
original test set and how often the net names y + 1 (D_det's robust-feature shift), in the run's
precision. A rate that fits the set without diverging is the one to take; the test accuracy is not
the criterion (it is what Figure 3 measures).

    PYTHONPATH=. python3 benchmarks/transfer_lr.py [--preset cifar10-cpu-full] [--work DIR] [--models mlp]
        [--lr 0.4 0.1 0.04 0.01]

Rows go to benchmarks/results/transfer_lr-<preset>.json.
"""

from __future__ import annotations

import _common

p = _common.parser(__doc__.split("\n\n")[0], threads=2)
p.add_argument("--preset", default="cifar10-cpu-full", help="the preset whose D_det is learned")
p.add_argument("--work", default="results/suite-cifar10-cpu-full", help="the run folder with its standard model and D_det")
p.add_argument("--models", nargs="+", default=["mlp"], help="transfer architectures of the preset")
p.add_argument("--lr", type=float, nargs="+", default=[0.4, 0.1, 0.04, 0.01], help="peak learning rates")
args = p.parse_args()
_common.pin_threads(args.threads)

import itertools  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import torch  # noqa: E402

from empirical.device import policy  # noqa: E402
from empirical.evaluate import predict  # noqa: E402
from empirical.suite import PRESETS, Suite  # noqa: E402
from empirical.train import train  # noqa: E402

torch.set_num_threads(args.threads)
if args.preset not in PRESETS:
    p.error(f"--preset must be one of {', '.join(sorted(PRESETS))}, got {args.preset!r}")
if min(args.lr) <= 0:
    p.error(f"--lr must be positive, got {args.lr}")
preset = PRESETS["tiny" if args.quick else args.preset]()
if unknown := sorted(set(args.models) - set(preset.transfer_models)):
    p.error(f"--models {unknown} are not transfer architectures of {preset.name!r}: {sorted(preset.transfer_models)}")
suite = Suite(preset, "results-local/transfer-lr" if args.quick else args.work, device="cpu", progress=False)
if not suite.done("D_det"):
    if not args.quick:
        p.error(f"{args.work} has no finished D_det stage of preset {preset.name!r}: run it first")
    suite.run(["D_det"])
det, test = suite.constructed("D_det"), suite.data[1]
rows = []
for name, lr in itertools.product(args.models, args.lr):
    config = replace(preset.transfer_config(name), lr=lr)
    began = time.perf_counter()
    with policy(precision=suite.precision):
        trained = train(config, det, device="cpu", progress=False)
        predictions = predict(trained.model, test.images)
    rows.append({"model": name, "lr": lr, "train_accuracy": [epoch["train_accuracy"] for epoch in trained.history],
                 "test_accuracy": float((predictions == test.labels).float().mean()),
                 "follows_relabelling": float((predictions == (test.labels + 1) % test.num_classes).float().mean()),
                 "seconds": time.perf_counter() - began})
    print(f"{name} lr {lr:g}: training accuracy by epoch {' '.join(f'{a:.2f}' for a in rows[-1]['train_accuracy'])}; "
          f"test {rows[-1]['test_accuracy']:.1%}, y + 1 {rows[-1]['follows_relabelling']:.1%}  "
          f"{rows[-1]['seconds']:.0f} s", flush=True)

print("\n" + _common.markdown_table(
    ["model", "lr", "peak training accuracy", "last", "test accuracy", "y + 1", "seconds"],
    [[r["model"], r["lr"], max(r["train_accuracy"]), r["train_accuracy"][-1], r["test_accuracy"], r["follows_relabelling"],
      r["seconds"]] for r in rows]))
_common.write_results(f"transfer_lr-{preset.name}", args,
                      {"preset": preset.name, "images": len(det), "precision": suite.precision, "rows": rows})

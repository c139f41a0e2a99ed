"""Throughput of the suite's hot paths, as the library runs them: images per second and TFLOP/s.

For each network, on synthetic CIFAR-shaped images (the pixels do not change the cost), through
the library's own entry points with their defaults for the device (batch sizes, layout) and the
precision of ``--precision`` (default: the device's, :mod:`empirical.device`):

* ``train``: :func:`empirical.train.train`, images/s of its second epoch (the first one pays for
  warm-up: cuDNN autotuning, allocator growth);
* ``attack``: :func:`empirical.construct.relabelled_dataset` (targeted l2 PGD, as for D_det), image-steps/s;
* ``inversion``: :func:`empirical.construct.features_dataset` (representation inversion, as for D_R), image-steps/s;
* ``forward``: :func:`empirical.evaluate.predict`, images/s.

Achieved TFLOP/s counts 2 x multiply-adds of one forward pass (torch.utils.flop_counter), x3 for a
training step and x2 for an input-gradient step, against ``--peak`` (default: 990 TFLOP/s, dense
bf16 on an H100/H200, on CUDA; on the CPU the rate a large matrix product reaches in the precision run,
:func:`_common.matmul_ceiling_tflops`). ``--table`` also writes the rows in the form
``empirical run --dry-run`` reads (empirical/throughput.json's entries); ``--estimate DEVICE`` times
nothing and writes rows for a device not at hand from the FLOP count at an assumed share of its
peak, marked as estimates.

    PYTHONPATH=. python3 benchmarks/throughput.py [--device cuda] [--precision fp32] [--models fast16 fast64] [--images N]
"""

from __future__ import annotations

import _common

p = _common.parser(__doc__.split("\n\n")[0], threads=2)
p.add_argument("--device", default="cpu", help="torch device")
p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
               help="the hot loops' precision (auto: the device's default, bf16 for an --estimate device)")
p.add_argument("--models", nargs="+", default=["fast16", "fast64"], help="fast<width>, resnet9w<width>, mlp<size> or any empirical.models name")
p.add_argument("--images", type=int, default=None, help="images per measurement (default: 1024 on the CPU, 25,000 on CUDA)")
p.add_argument("--steps", type=int, default=5, help="attack and inversion steps per measurement")
p.add_argument("--peak", type=float, default=None, help="the device's peak TFLOP/s (default: 990 on CUDA; on the CPU a measured matrix product's rate)")
p.add_argument("--table", type=str, default=None, help="also write the rows as a throughput table (JSON) here")
p.add_argument("--estimate", default=None, metavar="DEVICE",
               help="time nothing: rows for this device kind (e.g. nvidia-h200) from the FLOP count at --utilisation of --peak")
p.add_argument("--utilisation", type=float, default=0.25, help="with --estimate: the assumed share of the peak")
args = p.parse_args()
_common.pin_threads(args.threads)

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from empirical.construct import features_dataset, relabelled_dataset  # noqa: E402
from empirical.data import ImageData  # noqa: E402
from empirical.device import policy, resolve  # noqa: E402
from empirical.evaluate import predict  # noqa: E402
from empirical.models import build  # noqa: E402
from empirical.throughput import device_kind, model_key  # noqa: E402
from empirical.train import TrainConfig, train  # noqa: E402

torch.set_num_threads(args.threads)
device = torch.device(args.device)
cuda = device.type == "cuda"
count = 64 if args.quick else args.images or (25_000 if cuda else 1024)
steps = 1 if args.quick else args.steps
precision = resolve(args.precision, args.estimate or device)
peak, peak_source = (args.peak, "--peak") if args.peak is not None else (
    (990.0, "dense bf16 of an H100/H200") if cuda or args.estimate else
    (_common.matmul_ceiling_tflops(precision, args.threads), f"a 2048^3 {precision} matrix product on {args.threads} threads"))
args.peak = peak


def parse(name: str) -> tuple[str, dict, int]:
    """(architecture, build options, image side) of "fast<width>", "resnet9w<width>", "mlp<size>" or a plain
    empirical.models name."""
    for prefix, architecture, option in (("fast", "fast", "width"), ("resnet9w", "resnet9", "width"), ("mlp", "mlp", "size")):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            value = int(name[len(prefix):])
            return architecture, {option: value}, value if prefix == "mlp" else 32
    return name, {}, 32


def synchronized(fn):
    """Wall seconds of ``fn()`` with the device's queue drained before and after, and its result."""
    if cuda:
        torch.cuda.synchronize(device)
    began = time.perf_counter()
    result = fn()
    if cuda:
        torch.cuda.synchronize(device)
    return time.perf_counter() - began, result


def forward_gflop(model: torch.nn.Module, side: int) -> float:
    x = torch.rand(2, 3, side, side, device=next(model.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(x)
    return counter.get_total_flops() / 2 / 1e9


PASSES = {"train": 3, "attack": 2, "inversion": 2, "forward": 1}  # forward-pass FLOPs per image of each operation
kind = args.estimate or device_kind(device)
rows = []
if args.estimate:  # no timing: rows from the FLOP count at an assumed share of the peak
    for name in args.models:
        architecture, options, side = parse(name)
        gflop = forward_gflop(build(architecture, **options), side)
        for operation, passes in PASSES.items():
            rate = args.utilisation * args.peak * 1e3 / (passes * gflop)
            rows.append({"model": model_key(architecture, options), "operation": operation, "images_per_s": rate,
                         "forward_gflop": gflop, "tflops": rate * passes * gflop / 1e3, "peak_fraction": args.utilisation})
    source = (f"estimate, not measured: {args.utilisation:.0%} of {args.peak:g} TFLOP/s over the counted FLOPs "
              f"(benchmarks/throughput.py --estimate {kind}); replace by a measured row")


def measure(name: str) -> list[dict]:
    """One network's rows: each operation's images/s and TFLOP/s, in the policy's precision."""
    found = []
    architecture, options, side = parse(name)
    generator = torch.Generator().manual_seed(args.seed)
    data = ImageData(torch.rand(count, 3, side, side, generator=generator), torch.arange(count) % 10,
                     tuple(f"class {i}" for i in range(10)), f"synthetic 3x{side}x{side} images")
    config = TrainConfig(model=architecture, model_options=options, epochs=2, batch_size=512 if cuda else 128, lr=0.05,
                         schedule="triangle", label_smoothing=0.1)
    trained = train(config, data, device=device, progress=False)
    model = trained.model
    gflop = forward_gflop(model, side)
    epoch = trained.history[1]["seconds"] - trained.history[0]["seconds"]
    measured = {"train": count / epoch}
    seconds, _ = synchronized(lambda: relabelled_dataset(model, data, mode="det", steps=steps, device=device, progress=False))
    measured["attack"] = count * steps / seconds
    seconds, _ = synchronized(lambda: features_dataset(model, data, name="D_R", steps=steps, device=device, progress=False))
    measured["inversion"] = count * steps / seconds
    seconds, _ = synchronized(lambda: predict(model, data.images, device=device))
    measured["forward"] = count / seconds
    for operation, rate in measured.items():
        tflops = rate * PASSES[operation] * gflop / 1e3
        found.append({"model": model_key(architecture, options), "operation": operation, "images_per_s": rate,
                      "forward_gflop": gflop, "tflops": tflops, "peak_fraction": tflops / peak if peak else None})
        print(f"{name:10s} {operation:9s} {precision} {rate:12,.0f} images/s   {tflops:8.3f} TFLOP/s"
              + (f"  ({100 * tflops / peak:.1f}% of peak)" if peak else ""), flush=True)
    return found


for name in [] if args.estimate else args.models:
    with policy(precision=precision):
        rows += measure(name)

print("\n" + _common.markdown_table(["model", "operation", "images/s", "TFLOP/s", "of peak"],
                                    [[r["model"], r["operation"], r["images_per_s"], r["tflops"],
                                      "-" if r["peak_fraction"] is None else f"{100 * r['peak_fraction']:.1f}%"] for r in rows]))
measured = (f"benchmarks/throughput.py --device {args.device} --precision {precision} --images {count} --steps {steps}, "
            f"{time.strftime('%Y-%m-%d')}")
entries = [{"device": kind, "model": r["model"], "operation": r["operation"], "precision": precision,
            "images_per_s": round(r["images_per_s"], 1), "measured": not args.estimate,
            "source": source if args.estimate else measured} for r in rows]
results = {"device": kind, "device_name": torch.cuda.get_device_name(device) if cuda else kind, "precision": precision,
           "images": count, "steps": steps, "peak_tflops": peak, "peak_source": peak_source, "rows": rows, "table": entries}
_common.write_results(f"throughput_{kind}_{precision}", args, results)
if args.table:
    Path(args.table).write_text(json.dumps(entries, indent=1) + "\n")
    print(f"wrote {args.table}")

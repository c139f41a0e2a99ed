"""Where a training epoch and a PGD step spend their time, and what share of the CPU's peak they reach.

Runs the library's own entry points under torch.profiler, in the precision the device policy
chooses (``--precision``): :func:`empirical.train.train` for ``--train-batches`` batches of the
preset-like recipe (batch 128, on-the-fly crops and flips, SGD with Nesterov momentum) and
:func:`empirical.construct.relabelled_dataset` (targeted l2 PGD, as for D_det) for ``--steps``
steps on ``--images`` images. For each, the top operators by self time with their share, and the
achieved FLOP rate: the forward pass's FLOPs (torch.utils.flop_counter), x3 per training image and
x2 per input-gradient step, over the wall time, against what a large matrix product reaches in the
same precision (:func:`_common.matmul_ceiling_tflops`).

    PYTHONPATH=. python3 benchmarks/profile_hot_loops.py [--model fast32] [--precision bf16]
"""

from __future__ import annotations

import _common

p = _common.parser(__doc__.split("\n\n")[0], threads=2)
p.add_argument("--model", default="fast32", help="fast<width>, mlp<size> or an empirical.models name")
p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
p.add_argument("--train-batches", type=int, default=40, help="training batches profiled (after one warm-up epoch)")
p.add_argument("--batch-size", type=int, default=128, help="training batch size")
p.add_argument("--images", type=int, default=512, help="images of the PGD measurement")
p.add_argument("--steps", type=int, default=5, help="PGD steps profiled")
p.add_argument("--top", type=int, default=12, help="operators listed per profile")
args = p.parse_args()
_common.pin_threads(args.threads)

import time  # noqa: E402

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from empirical.construct import relabelled_dataset  # noqa: E402
from empirical.data import ImageData  # noqa: E402
from empirical.device import policy, resolve  # noqa: E402
from empirical.train import TrainConfig, train  # noqa: E402

torch.set_num_threads(args.threads)
precision = resolve(args.precision, "cpu")
ceiling = _common.matmul_ceiling_tflops(precision, args.threads)
quick = args.quick
batches, images, steps = (4, 64, 1) if quick else (args.train_batches, args.images, args.steps)
architecture, options = ("fast", {"width": int(args.model[4:])}) if args.model.startswith("fast") else (
    ("mlp", {"size": int(args.model[3:])}) if args.model.startswith("mlp") else (args.model, {}))


def data(count: int) -> ImageData:
    generator = torch.Generator().manual_seed(args.seed)
    return ImageData(torch.rand(count, 3, 32, 32, generator=generator), torch.arange(count) % 10,
                     tuple(f"class {i}" for i in range(10)), "synthetic CIFAR-shaped images")


def forward_flops(model: torch.nn.Module) -> float:
    """FLOPs (2 per multiply-add) of one image's forward pass."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.rand(2, 3, 32, 32))
    return counter.get_total_flops() / 2


def top_operators(prof, wall: float) -> list[dict]:
    """The operators with the most self CPU time: name, calls, self seconds and share of the wall time."""
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:args.top]
    return [{"operator": e.key, "calls": e.count, "self_s": e.self_cpu_time_total / 1e6,
             "share": e.self_cpu_time_total / 1e6 / wall} for e in events]


def profiled(fn) -> tuple[float, list[dict]]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        began = time.perf_counter()
        fn()
        wall = time.perf_counter() - began
    return wall, top_operators(prof, wall)


def report(name: str, wall: float, flops: float, operators: list[dict]) -> dict:
    achieved = flops / wall / 1e12
    print(f"\n{name}: {wall:.2f} s, {achieved * 1e3:.1f} GFLOP/s: {100 * achieved / ceiling:.1f}% of a {precision} "
          f"matrix product's {ceiling:.3f} TFLOP/s")
    print(_common.markdown_table(["operator", "calls", "self s", "share of wall"],
                                 [[o["operator"], o["calls"], o["self_s"], f"{100 * o['share']:.1f}%"] for o in operators]))
    return {"wall_s": wall, "tflops": achieved, "matmul_fraction": achieved / ceiling, "operators": operators}


with policy(precision=precision):
    batch = args.batch_size
    train_data = data(batch * batches)
    config = TrainConfig(model=architecture, model_options=options, epochs=2, batch_size=batch, lr=0.05, nesterov=True,
                         schedule="triangle", label_smoothing=0.1)
    epochs = {}

    def epoch_hook(epoch: int, index: int) -> None:
        epochs.setdefault(epoch, time.perf_counter())

    with profile(activities=[ProfilerActivity.CPU]) as prof:  # epoch 1 warms up; epoch 2 is the one reported
        result = train(config, train_data, progress=False, on_batch=epoch_hook)
    per_image = forward_flops(result.model)
    epoch_wall = result.history[1]["seconds"] - result.history[0]["seconds"]
    operators = top_operators(prof, result.seconds)
    results = {"train": report(f"training, {batches} batches of {batch} (second epoch)", epoch_wall,
                               3 * per_image * len(train_data), operators)}
    results["train"]["operators_over"] = "both epochs (shares of both epochs' wall time)"
    model = result.model
    attack_data = data(images)
    relabelled_dataset(model, attack_data, mode="det", steps=1, progress=False)  # warm-up
    wall, operators = profiled(lambda: relabelled_dataset(model, attack_data, mode="det", steps=steps, progress=False))
    results["pgd"] = report(f"targeted PGD, {images} images x {steps} steps", wall, 2 * per_image * images * steps, operators)

results.update(model=f"{architecture}({options})", precision=precision, forward_gflop=per_image / 1e9,
               matmul_ceiling_tflops=ceiling)
_common.write_results(f"profile_{args.model}_{precision}", args, results)

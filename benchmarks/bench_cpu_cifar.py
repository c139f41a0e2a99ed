"""CPU throughput on CIFAR-shaped images: what pays for the cifar10-cpu preset.

For each network, images per second of (a) a training step (forward, backward, SGD step) and (b)
an input-gradient step (forward and backward to the input in eval mode: one PGD or inversion
step), first as the plain torch loop a user would write (NCHW float32 weights and images, batch
128, torch's default threads), then with one change at a time: channels_last weights (the layout
``empirical.models.build`` returns), channels_last weights and images, larger batches, one thread
instead of two, parameters frozen for input gradients, and torch.compile; then the same changes
under bf16 autocast (the device policy's choice on a CPU that multiplies bf16 natively,
:mod:`empirical.device`). Synthetic 3x32x32
images (the pixels do not change the cost); each rate is the best of ``--repeat`` timed passes
over ``--images`` images after one warm-up pass.

    PYTHONPATH=. python3 benchmarks/bench_cpu_cifar.py [--models fast16 fast32 ...] [--settings ...] [--quick]
"""

from __future__ import annotations

import _common

p = _common.parser(__doc__.split("\n\n")[0], threads=2)
p.add_argument("--models", nargs="+", default=["fast16", "fast32", "fast64", "resnet18"],
               help="fast<width> or any empirical.models name")
p.add_argument("--images", type=int, default=1024, help="images per timed pass")
p.add_argument("--repeat", type=int, default=3, help="timed passes per setting (the best counts)")
p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to start)")
p.add_argument("--settings", nargs="+", default=None, help="time only these settings (default: all)")
args = p.parse_args()
_common.pin_threads(args.threads)

import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from empirical.models import build  # noqa: E402


def network(name: str, memory_format: torch.memory_format) -> torch.nn.Module:
    torch.manual_seed(args.seed)
    model = build("fast", width=int(name[4:])) if name.startswith("fast") else build(name)
    return model.to(memory_format=memory_format)


def images(count: int, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand((count, 3, 32, 32), generator=torch.Generator().manual_seed(args.seed))
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), torch.arange(count) % 10


def rate(step, count: int, batch: int) -> float:
    """Images per second of ``step(start, stop)`` over ``count`` images in batches: the best of the timed passes."""
    passes = lambda: [step(i, min(i + batch, count)) for i in range(0, count, batch)]  # noqa: E731
    passes()  # warm-up (and compilation)
    best = float("inf")
    for _ in range(args.repeat):
        began = time.perf_counter()
        passes()
        best = min(best, time.perf_counter() - began)
    return count / best


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def training(name: str, batch: int = 128, weights_last: bool = False, channels_last: bool = False,
             threads: int | None = None, compiled: bool = False, bf16: bool = False) -> float:
    torch.set_num_threads(threads or args.threads)
    model = network(name, torch.channels_last if weights_last or channels_last else torch.contiguous_format).train()
    forward = torch.compile(model) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = images(args.images, channels_last)

    def step(start: int, stop: int) -> None:
        with autocast(bf16):
            loss = F.cross_entropy(forward(x[start:stop]).float(), y[start:stop])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return rate(step, args.images, batch)


def input_gradient(name: str, batch: int = 128, weights_last: bool = False, channels_last: bool = False,
                   threads: int | None = None, frozen: bool = False, compiled: bool = False, bf16: bool = False) -> float:
    torch.set_num_threads(threads or args.threads)
    model = network(name, torch.channels_last if weights_last or channels_last else torch.contiguous_format).eval()
    if frozen:
        model.requires_grad_(False)
    forward = torch.compile(model) if compiled else model
    x, y = images(args.images, channels_last)

    def step(start: int, stop: int) -> None:
        batch_x = x[start:stop].clone().requires_grad_(True)
        with autocast(bf16):
            loss = F.cross_entropy(forward(batch_x).float(), y[start:stop])
        torch.autograd.grad(loss, batch_x)

    return rate(step, args.images, batch)


if args.quick:
    args.images, args.repeat, args.models = 128, 1, args.models[:1]
settings = {
    "plain (NCHW, batch 128)": {},
    "channels_last weights": {"weights_last": True},
    "channels_last weights and images": {"channels_last": True},
    "batch 256": {"batch": 256},
    "batch 512": {"batch": 512},
    "channels_last weights, batch 512": {"weights_last": True, "batch": 512},
    "1 thread": {"threads": 1},
    "bf16, NCHW images": {"weights_last": True, "bf16": True},
    "bf16, channels_last images": {"channels_last": True, "bf16": True},
    "bf16, channels_last, batch 256": {"channels_last": True, "bf16": True, "batch": 256},
    "bf16, channels_last, batch 512": {"channels_last": True, "bf16": True, "batch": 512},
    "bf16, channels_last, 1 thread": {"channels_last": True, "bf16": True, "threads": 1},
}
if args.compile:
    settings["torch.compile"] = {"compiled": True}
if args.settings:
    if unknown := sorted(set(args.settings) - set(settings)):
        raise SystemExit(f"unknown settings {unknown}; choose from {sorted(settings)}")
    settings = {label: settings[label] for label in args.settings}
rows = []
for name in args.models:
    for label, options in settings.items():
        row = {"model": name, "setting": label, "training_images_per_second": training(name, **options),
               "input_gradient_images_per_second": input_gradient(name, **options)}
        rows.append(row)
        print(f"{name:9s} {label:28s} training {row['training_images_per_second']:8.1f}/s   "
              f"input gradients {row['input_gradient_images_per_second']:8.1f}/s", flush=True)
    if args.settings:
        continue
    frozen = input_gradient(name, frozen=True, weights_last=True, batch=512)
    rows.append({"model": name, "setting": "input gradients: parameters frozen, channels_last weights, batch 512",
                 "input_gradient_images_per_second": frozen})
    print(f"{name:9s} {'frozen parameters (cl, 512)':28s} input gradients {frozen:8.1f}/s", flush=True)
print()
print(_common.markdown_table(["model", "setting", "training img/s", "input-gradient img/s"],
                             [[r["model"], r["setting"], r.get("training_images_per_second", ""),
                               r["input_gradient_images_per_second"]] for r in rows]))
_common.write_results("bench_cpu_cifar", args, {"rows": rows})

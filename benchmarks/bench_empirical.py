"""Throughput of the empirical engine: images/s of training (standard and PGD adversarial) and of PGD attacks.

On a CPU (the default there): the fast net at 3x32x32, standard training and a PGD-10 l2 attack.
On CUDA: ResNet-18 and ResNet-50 at batch 512 in bf16 with channels_last, standard and PGD-7 l2
adversarial training, and the time a standard ResNet-18 epoch on CIFAR-10's 50000 images takes;
with --cifar PATH (the JPEG q75 npz) also the fast net trained on it to its test accuracy.
Training is timed through empirical.train.train on synthetic images (the pixels do not change the
cost), after one warm-up epoch on the same shapes.

    PYTHONPATH=. python3 benchmarks/bench_empirical.py [--device cpu|cuda] [--quick] [--help]
"""

from __future__ import annotations

import _common

p = _common.parser(__doc__.split("\n\n")[0], threads=2)
p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda if available, else cpu")
p.add_argument("--images", type=int, default=None, help="images per timed epoch (default: 2048 on cpu, 25600 on cuda)")
p.add_argument("--cifar", default=None, help="CIFAR-10 JPEG q75 npz: also train the fast net on it (cuda)")
args = p.parse_args()
_common.pin_threads(args.threads)

import time  # noqa: E402
from contextlib import nullcontext  # noqa: E402
from dataclasses import replace  # noqa: E402

import torch  # noqa: E402

from empirical.attacks import Attack  # noqa: E402
from empirical.data import Augment, ImageData, cifar10_jpeg  # noqa: E402
from empirical.evaluate import accuracy, adversarial_examples  # noqa: E402
from empirical.train import TrainConfig, train  # noqa: E402

torch.set_num_threads(args.threads)
device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
cuda = device == "cuda"
n = args.images or (256 if args.quick else 25_600 if cuda else 2048)


def synthetic(count: int) -> ImageData:
    generator = torch.Generator().manual_seed(args.seed)
    return ImageData(torch.rand((count, 3, 32, 32), generator=generator), torch.arange(count) % 10,
                     tuple(f"class{c}" for c in range(10)), "synthetic 3x32x32", "benchmark")


def training_rate(config: TrainConfig) -> dict:
    data = synthetic(n)
    train(replace(config, epochs=1), data.subset(min(n, 4 * config.batch_size)), device=device, progress=False)  # warm-up
    if cuda:
        torch.cuda.synchronize()
    seconds = train(replace(config, epochs=1), data, device=device, progress=False).seconds
    return {"model": config.model, "adversary": None if config.adversary is None else config.adversary.to_dict(),
            "batch_size": config.batch_size, "images": n, "seconds": seconds, "images_per_second": n / seconds}


def attack_rate(model_name: str, attack: Attack, batch_size: int) -> dict:
    model = train(TrainConfig(model=model_name, epochs=1, batch_size=batch_size), synthetic(2 * batch_size),
                  device=device, progress=False).model
    data = synthetic(n)
    with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext():
        adversarial_examples(model, data.images[:batch_size], data.labels[:batch_size], attack, batch_size=batch_size)
        started = time.perf_counter()
        adversarial_examples(model, data.images, data.labels, attack, batch_size=batch_size)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    return {"model": model_name, "attack": attack.to_dict(), "images": n, "seconds": seconds, "images_per_second": n / seconds}


results = {"device": torch.cuda.get_device_name() if cuda else "cpu", "rows": []}
if cuda:
    base = TrainConfig(batch_size=512, lr=0.2, augment=Augment())
    for name in ("resnet18", "resnet50"):
        for adversary in (None, Attack("l2", 0.5, steps=7, step_size=0.1, random_start=False, loss="ce", targets=0)):
            results["rows"].append(training_rate(replace(base, model=name, adversary=adversary)))
    standard18 = next(r for r in results["rows"] if r["model"] == "resnet18" and r["adversary"] is None)
    results["resnet18_epoch_seconds_50000"] = 50_000 / standard18["images_per_second"]
    if args.cifar:
        data, test = cifar10_jpeg("train", args.cifar), cifar10_jpeg("test", args.cifar)
        config = TrainConfig(model="fast", epochs=16, batch_size=512, lr=0.4, nesterov=True, schedule="triangle",
                             weight_decay=5e-4, label_smoothing=0.2, augment=Augment(padding=2, pad_mode="reflect"))
        run = train(config, data, device=device, progress=False)
        results["fast_cifar10_jpeg"] = {"config": config.to_dict(), "seconds": run.seconds,
                                        "test_accuracy": accuracy(run.model, test.images, test.labels, device=device)}
else:
    config = TrainConfig(model="fast", batch_size=128, lr=0.1, augment=Augment())
    results["rows"].append(training_rate(config))
    results["rows"].append(attack_rate("fast", Attack.paper("l2", 0.5, steps=10), 128))

for row in results["rows"]:
    what = f"PGD-{row['attack']['steps']} attack" if "attack" in row else (
        "standard training" if row["adversary"] is None else f"PGD-{row['adversary']['steps']} adversarial training")
    print(f"{row['model']:9s} {what:32s} {row['images_per_second']:9.1f} images/s ({row['images']} images in {row['seconds']:.1f} s)")
for key in ("resnet18_epoch_seconds_50000", "fast_cifar10_jpeg"):
    if key in results:
        print(key, results[key])
_common.write_results(f"bench_empirical_{'cuda' if cuda else 'cpu'}", args, results)

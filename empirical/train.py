"""Standard and PGD adversarial training with checkpoints that resume exactly.

Training minimises the cross-entropy (optionally label-smoothed) with SGD + momentum. Adversarial
training (Madry et al.) replaces each batch by its PGD adversarial examples against the current
model: min_theta E max_{||delta|| <= eps} L(theta; x + delta, y).

Every random draw is a function of (seed, epoch, batch): the model's initialisation of ``seed``,
each epoch's permutation and augmentation (:class:`empirical.data.Batches`), and each batch's
attack starts. So a run interrupted at any batch and resumed from its checkpoint takes exactly the
same steps as an uninterrupted one (bit-identical on CPU; on CUDA up to cuDNN's nondeterminism).

Checkpoints are plain ``torch.save`` dicts of tensors and numbers (loadable with
``weights_only=True``), written atomically, with a ``.sha256`` file beside each that is checked
on load. Models keep convolution weights channels_last (see :func:`empirical.models.build`); where
:mod:`empirical.device` chooses bf16 (CUDA, a CPU that multiplies bf16 natively), the forward and
backward passes run in bf16 autocast on channels_last inputs too. The precision is recorded in the
checkpoint and the history: a checkpoint is resumed only in the precision it was made in.

Under torchrun (:mod:`empirical.distributed`) the model is wrapped in DistributedDataParallel and
each process trains on a contiguous slice of every global batch (``batch_size`` stays the global
batch; batch-norm statistics are per process); process 0 writes the checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .attacks import Attack
from .data import Augment, Batches, ImageData
from .device import autocast as device_autocast, configure, layout, precision as device_precision
from .distributed import all_sum, barrier, is_main, process_seed, shard, world
from .evaluate import accuracy
from .files import write_json
from .models import build, fit_whitening

SCHEDULES = ("step", "cosine", "triangle", "constant")
WHITENING_IMAGES = 5000  # the fast net's first layer whitens 2x2 patches of this many training images (airbench)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (the data aside).

    The defaults are the paper's library defaults for CIFAR-10 (robustness/defaults.py: SGD,
    momentum 0.9, lr 0.1, batch 128, weight decay 5e-4, 150 epochs, lr x 0.1 every 50 epochs),
    on ResNet-50. ``schedule``: "step" (x ``gamma`` at each of ``milestones``, in epochs),
    "cosine" (to 0), "triangle" (linear from lr/10 up to lr at ``peak`` of the run, then down to 0)
    or "constant". ``adversary``: PGD settings for adversarial training (None: standard training),
    usually the paper's untargeted cross-entropy attack, :meth:`Attack.paper`.
    """

    model: str = "resnet50"
    model_options: dict = field(default_factory=dict)
    epochs: int = 150
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "step"
    milestones: tuple[int, ...] = (50, 100)
    gamma: float = 0.1
    peak: float = 0.25
    label_smoothing: float = 0.0
    augment: Augment | None = Augment()
    adversary: Attack | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "seed"):
            value, low = getattr(self, name), 0 if name == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name, valid, rule in (("lr", lambda v: v > 0, "> 0"), ("weight_decay", lambda v: v >= 0, ">= 0"),
                                  ("momentum", lambda v: 0 <= v < 1, "in [0, 1)"), ("gamma", lambda v: 0 < v <= 1, "in (0, 1]"),
                                  ("peak", lambda v: 0 < v < 1, "in (0, 1)"), ("label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not valid(value):
                raise ValueError(f"{name} must be a finite number {rule}, got {value!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in self.milestones):
            raise ValueError(f"milestones must be positive epoch numbers, got {self.milestones!r}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}")
        values = dict(values)
        values["augment"] = None if values.get("augment") is None else Augment(**values["augment"])
        values["adversary"] = None if values.get("adversary") is None else Attack(**values["adversary"])
        return cls(**values)


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate at optimiser step ``step`` (0-based) of the run."""
    total = config.epochs * steps_per_epoch
    progress = step / total
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "step":
        return config.lr * config.gamma ** sum(step >= m * steps_per_epoch for m in config.milestones)
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * progress))
    if progress < config.peak:
        return config.lr * (0.1 + 0.9 * progress / config.peak)
    return config.lr * (1 - progress) / (1 - config.peak)


@dataclass
class TrainResult:
    """A trained model, its config, and per-epoch history (loss, accuracy, lr, seconds)."""

    model: nn.Module
    config: TrainConfig
    history: list[dict]
    seconds: float


def train(
    config: TrainConfig,
    data: ImageData,
    *,
    test: ImageData | None = None,
    out: str | Path | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    checkpoint_seconds: float = 300.0,
    on_batch: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train a fresh model of ``config.model`` on ``data``; resume from ``out`` if a checkpoint is there.

    With ``out``, a checkpoint is written every ``checkpoint_seconds``, at every epoch's end, and
    when the run is interrupted (Ctrl-C or SIGTERM stop it at the next batch boundary, save, and
    raise KeyboardInterrupt); the finished model goes to ``out/model.pt`` and the history to
    ``out/history.json``. A checkpoint made with a different config is refused, not overwritten. A
    finished model in ``out`` of this config and precision is returned as it is, also where the
    checkpoint is gone (a run's folder carried without its large files: see :mod:`empirical.suite`).
    ``test``: evaluated (clean accuracy) after each epoch. ``on_batch(epoch, batch)`` is called
    after each optimiser step.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(data, ImageData):
        raise TypeError(f"data must be an ImageData, got {type(data).__name__}")
    device = configure(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    out = None if out is None else Path(out)
    done = None if out is None else finished(out, config, device)
    if done is not None:
        return done
    data = data.to(device)
    build_arguments = _build_arguments(config, data)
    torch.manual_seed(config.seed)
    model = build(**build_arguments).to(device)  # channels_last weights (see build)
    if config.model == "fast":
        fit_whitening(model, data.images[:WHITENING_IMAGES])
    processes = world()[1]
    network = model if processes == 1 else DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                                weight_decay=config.weight_decay)
    batches = Batches(data, config.batch_size, shuffle=True, augment=config.augment,
                      drop_last=len(data) > config.batch_size, seed=config.seed)
    state = {"epoch": 0, "batch": 0, "history": [], "seconds": 0.0, "totals": [0.0, 0.0, 0.0]}
    precision = device_precision(device)
    if out is not None and (out / CHECKPOINT).exists():
        saved = _saved(out / CHECKPOINT, config, precision)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
    # loss sum, correct, seen (no per-step sync); a checkpoint holds process 0's, so the others restart theirs
    totals = torch.tensor(state["totals"] if is_main() else [0.0, 0.0, 0.0], dtype=torch.float64, device=device)
    autocast = device_autocast(device)  # bf16 where the device multiplies it natively (empirical.device)
    started, last_save = time.perf_counter() - state["seconds"], time.perf_counter()

    def save() -> None:
        if out is not None and is_main():
            state.update(seconds=time.perf_counter() - started, totals=totals.tolist())
            save_checkpoint(out / CHECKPOINT, {"config": config.to_dict(), "build": build_arguments, "model": model.state_dict(),
                                               "optimizer": optimizer.state_dict(), "state": state, "precision": precision})

    with _deferred_interrupts() as interrupted:
        while state["epoch"] < config.epochs:
            epoch = state["epoch"]
            model.train()
            bar = _progress(len(batches), f"epoch {epoch + 1}/{config.epochs}", progress, initial=state["batch"])
            for index, (x, y) in enumerate(batches.epoch(epoch)):
                if index < state["batch"]:
                    continue  # replayed to keep the epoch's random stream; already trained on
                part = shard(len(y))  # the whole batch in one process
                x, y = x[part], y[part]
                step = epoch * len(batches) + index
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(config, step, len(batches))
                x = layout(x)  # channels_last where the passes run in bf16 (empirical.device)
                if config.adversary is not None:
                    seed = process_seed(_batch_seed(config.seed, epoch, index))  # each process its own starts
                    generator = torch.Generator(device=device).manual_seed(seed)
                    with autocast:
                        x = config.adversary.run(model, x, y, generator)
                with autocast:
                    logits = network(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                state["batch"] = index + 1
                totals += torch.stack([loss.detach() * len(y), (logits.argmax(1) == y).sum(), torch.full((), len(y), device=device)])
                bar.update(1)
                if progress and index % 20 == 0:
                    loss_sum, correct, seen = totals.tolist()
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
                if on_batch is not None:
                    on_batch(epoch, index)
                if interrupted():
                    save()
                    bar.close()
                    raise KeyboardInterrupt(f"training interrupted at epoch {epoch}, batch {index + 1}; "
                                            f"checkpoint saved to {out}" if out else "training interrupted (no out folder)")
                if out is not None and time.perf_counter() - last_save > checkpoint_seconds:
                    save()
                    last_save = time.perf_counter()
            bar.close()
            loss_sum, correct, seen = all_sum(totals).tolist()
            record = {"epoch": epoch + 1, "loss": loss_sum / seen, "train_accuracy": correct / seen,
                      "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started}
            if test is not None:
                record["test_accuracy"] = accuracy(model, test.images, test.labels, device=device)
            totals.zero_()
            state.update(epoch=epoch + 1, batch=0)
            state["history"].append(record)
            save()
            last_save = time.perf_counter()
    seconds = time.perf_counter() - started
    model.eval()
    if out is not None and is_main():  # the history first: model.pt marks a finished training
        write_json(out / HISTORY, {"config": config.to_dict(), "data": data.name, "device": str(device), "precision": precision,
                                   "processes": processes, "seconds": seconds, "history": state["history"]}, indent=1)
        save_checkpoint(out / MODEL, {"config": config.to_dict(), "build": build_arguments, "model": model.state_dict(),
                                      "precision": precision})
    barrier()  # the files exist for every process
    return TrainResult(model, config, state["history"], seconds)


CHECKPOINT, MODEL, HISTORY = "checkpoint.pt", "model.pt", "history.json"


def has_finished(out: str | Path) -> bool:
    """Whether :func:`train` finished a training in ``out`` (its model and history are written), without loading it."""
    return (Path(out) / MODEL).is_file() and (Path(out) / HISTORY).is_file()


def finished(out: str | Path, config: TrainConfig, device: torch.device | str | None = None) -> TrainResult | None:
    """The training of ``config`` that :func:`train` finished in ``out``, on ``device`` (its precision),
    or None where there is none; a finished training of another config or precision is refused, as
    a checkpoint is."""
    out, device = Path(out), configure(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = device_precision(device)
    if not has_finished(out):
        return None
    saved = _saved(out / MODEL, config, precision)
    model = build(**saved["build"])
    model.load_state_dict(saved["model"])
    history = json.loads((out / HISTORY).read_text())
    return TrainResult(model.to(device).eval(), config, history["history"], history["seconds"])


def _saved(path: Path, config: TrainConfig, precision: str) -> dict:
    """The checkpoint or model at ``path``, refused where another config or precision made it."""
    saved = load_checkpoint(path)
    if saved["config"] != config.to_dict():
        raise ValueError(f"{path} was made with a different config; differing fields: "
                         f"{_differences(saved['config'], config.to_dict())}. Use another out folder.")
    if saved.get("precision", "fp32") != precision:
        raise ValueError(f"{path} was made in {saved.get('precision', 'fp32')}, this run is {precision}: "
                         "resume it in that precision (--precision) or use another out folder")
    return saved


def _build_arguments(config: TrainConfig, data: ImageData) -> dict:
    """Arguments of :func:`empirical.models.build`: the config's architecture, normalising by the data's channel statistics."""
    images = data.images
    return {"name": config.model, "num_classes": data.num_classes, "in_channels": images.shape[1],
            "mean": images.mean(dim=(0, 2, 3)).tolist(), "std": images.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist(),
            **config.model_options}


def _batch_seed(seed: int, epoch: int, batch: int) -> int:
    return (seed * 1_000_003 + epoch) * 1_000_003 + batch


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """``torch.save`` to a temporary file, then rename (atomic), and write ``path.sha256`` beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, temporary)
    digest = _sha256(temporary)
    os.replace(temporary, path)
    path.with_suffix(path.suffix + ".sha256").write_text(f"{digest}  {path.name}\n")
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`, after checking its sha256."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    record = path.with_suffix(path.suffix + ".sha256")
    if not record.is_file():
        raise ValueError(f"{path} has no {record.name} beside it; refusing an unverified checkpoint")
    expected, actual = record.read_text().split()[0], _sha256(path)
    if expected != actual:
        raise ValueError(f"{path} is corrupt or was changed: sha256 {actual} != recorded {expected}")
    return torch.load(path, map_location=map_location, weights_only=True)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, TrainConfig]:
    """The model saved by :func:`train` at ``path`` (model.pt or checkpoint.pt), in eval mode, and its config."""
    saved = load_checkpoint(path)
    model = build(**saved["build"])
    model.load_state_dict(saved["model"])
    return model.to(device).eval(), TrainConfig.from_dict(saved["config"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _differences(saved: dict, current: dict) -> list[str]:
    return sorted(key for key in set(saved) | set(current) if saved.get(key) != current.get(key))


@contextmanager
def _deferred_interrupts():
    """Turn SIGINT and SIGTERM into a flag checked at batch boundaries (main thread only)."""
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda number, frame: received.append(number))
    try:
        yield lambda: bool(received)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _progress(total: int, description: str, enabled: bool, initial: int = 0) -> tqdm:
    return tqdm(total=total, desc=description, initial=initial, disable=not enabled, leave=False, dynamic_ncols=True)

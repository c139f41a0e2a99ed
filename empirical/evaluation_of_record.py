"""AutoAttack (Croce and Hein, ICML 2020), the project's evaluation of record: :func:`autoattack`.

The attacks come from ``pyautoattack``, the PyPI package of the authors' code (fra31/auto-attack),
not from a rewrite: the numbers it gives are the numbers RobustBench and the literature report.
What this module adds is the project's conventions around it:

* images in [0, 1] (N, C, H, W) and integer labels, as everywhere in :mod:`empirical`;
* the model in eval mode during the attacks and restored after; the caller's global random state
  restored (the package reseeds torch's global generator);
* the attacks of the version one after another, each on the images still classified correctly,
  in chunks of ``batch_size``; robust accuracy after each attack is recorded, so a black-box
  attack (Square) that finds what the white-box ones missed shows up;
* a resumable state file: an interrupted evaluation continues with the attack it was in, in the chunk it was in;
* under torchrun the images are split across the processes (:mod:`empirical.distributed`);
* the package's own sanity warnings (randomised or dynamic defence, probabilities instead of
  logits, zero gradients, Square beating the white-box attacks) kept as messages, not printed.

Versions: "standard" (l2 and linf: APGD-CE, APGD-T over 9 target classes, FAB-T, Square with 5000
queries), "plus", "rand" (for randomised defences), or "custom" with ``attacks``.

Models with fewer than 10 classes: the targeted attacks aim at the K - 1 other classes (the package
would index past the logits), and the attacks on the DLR loss, which divides by the gap between the
largest and the third (untargeted) or the fourth (targeted) largest logit, are left out of a version
when the model has too few classes for them (a binary classifier gets APGD-CE, FAB-T, Square); a
warning in the result says so.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .digests import model_sha256, tensor_sha256
from .distributed import gather_objects, sharded, world
from .files import write_json
from .models import evaluating

VERSIONS = ("standard", "plus", "rand", "custom")
ATTACKS = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")
MIN_CLASSES = {"apgd-dlr": 3, "apgd-t": 4}  # the DLR loss reads the third / fourth largest logit; others need 2
NORMS = {"l2": "L2", "linf": "Linf"}
LOGGER = "auto-attack"  # the package's logger


@dataclass(frozen=True)
class AutoAttackResult:
    """One AutoAttack evaluation: which images survive, and the robust accuracy after each attack.

    ``after`` maps "clean" and then each attack, in the order run, to the fraction of all images
    still classified correctly at that point; its last value is the robust accuracy. ``seconds``: each
    attack's wall time summed over the sittings of a resumed run (an attack finished under a state file
    older than this record has none).
    """

    norm: str
    eps: float
    version: str
    attacks: tuple[str, ...]
    robust: Tensor  # (N,) bool, on the CPU: still correct after every attack
    after: dict[str, float]
    warnings: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def clean(self) -> float:
        return self.after["clean"]

    @property
    def accuracy(self) -> float:
        """Robust accuracy: the fraction of images correct after every attack."""
        return float(self.robust.float().mean()) if len(self.robust) else 0.0

    def to_dict(self) -> dict:
        return {"norm": self.norm, "eps": self.eps, "version": self.version, "attacks": list(self.attacks),
                "images": len(self.robust), "clean": self.clean, "robust": self.accuracy, "after": self.after,
                "warnings": list(self.warnings), "seconds": self.seconds}


def autoattack(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    norm: str,
    eps: float,
    version: str = "standard",
    attacks: Sequence[str] | None = None,
    batch_size: int = 1000,
    seed: int = 0,
    device=None,
    state: str | Path | None = None,
    progress: bool = False,
) -> AutoAttackResult:
    """Run AutoAttack on ``images`` (N, C, H, W in [0, 1]) with ``labels`` at ``norm`` radius ``eps``.

    ``state``: a JSON file recording each finished chunk and, within the chunk in progress, each finished
    attack; rerun with the same arguments to resume (a state made with other settings, other images or
    other model weights is refused). Nothing of the caller's model, images or random state is changed.
    """
    attacks = _check(model, images, labels, norm, eps, version, attacks, batch_size, seed)
    device = torch.device(device or next(model.parameters()).device)
    classes = _num_classes(model, images[:1], device)
    order = _attack_order(version, attacks, classes)
    left_out = [name for name in _attack_order(version, attacks, None) if name not in order]
    if "square" in order and norm == "l2" and min(images.shape[-2:]) < 5:
        raise ValueError(f"Square's l2 attack needs images of at least 5 x 5 pixels, got {tuple(images.shape[-2:])}; "
                         "use version='custom' without 'square'")
    rank, size = world()
    state = None if state is None else Path(state if size == 1 else f"{state}.rank{rank}")
    seconds: dict[str, float] = {}
    messages: list[str] = []
    weights = model_sha256(model) if state is not None else None

    def run(x_part: Tensor, y_part: Tensor) -> Tensor:
        saved = _load_state(state, _fingerprint(x_part, y_part, weights, norm, eps, version, order, batch_size, seed))
        columns = []
        starts = range(0, len(x_part), batch_size)
        with evaluating(model), _quiet_logger() as warnings, _own_random_state(device):
            adversary = _adversary(model, norm, eps, version, attacks, seed, device, classes)
            for start in tqdm(starts, desc="AutoAttack", disable=not progress, leave=False):
                key = str(start)
                if key not in saved["chunks"]:
                    x, y = x_part[start:start + batch_size].to(device), y_part[start:start + batch_size].to(device)

                    def save(columns: list[Tensor], key=key) -> None:  # after each attack, so a kill loses at most one
                        saved["attacks"][key] = torch.stack(columns, dim=1).tolist()
                        _save_state(state, saved)

                    saved["chunks"][key] = _chunk(adversary, x, y, order, saved["seconds"], saved["attacks"].get(key),
                                                  save).tolist()
                    saved["attacks"].pop(key, None)
                    _save_state(state, saved)
                columns.append(torch.tensor(saved["chunks"][key], dtype=torch.bool).view(-1, len(order) + 1))
        messages.extend(warnings)
        seconds.update((name, saved["seconds"][name]) for name in order if name in saved["seconds"])
        return torch.cat(columns) if columns else torch.zeros((0, len(order) + 1), dtype=torch.bool)

    if left_out:
        messages.append(f"{', '.join(left_out)} left out: the DLR loss needs at least "
                        f"{max(MIN_CLASSES[name] for name in left_out)} classes, the model has {classes}")
    flags = sharded(run, images, labels)
    names = ("clean", *order)
    after = {name: float(flags[:, i].float().mean()) if len(flags) else 0.0 for i, name in enumerate(names)}
    found = tuple(dict.fromkeys(message for part in gather_objects(messages) for message in part))
    return AutoAttackResult(norm, float(eps), version, order, flags[:, -1].clone(), after, found, seconds)


def _chunk(adversary, x: Tensor, y: Tensor, order: Sequence[str], seconds: dict[str, float],
           done: list | None = None, save: Callable[[list[Tensor]], None] | None = None) -> Tensor:
    """(n, 1 + attacks) bool: correct when clean, then still correct after each attack in turn (eps 0: no attack).

    ``done``: the (n, 1 + k) columns of the first k attacks from an interrupted run, resumed with attack k + 1;
    ``save(columns)`` after each attack. Each attack seeds itself (the package's ``seed``), so a resumed chunk
    equals an uninterrupted one. ``seconds[name]`` grows by each attack's wall time.
    """
    if done:
        columns = list(torch.tensor(done, dtype=torch.bool, device=y.device).unbind(dim=1))
    else:
        with torch.no_grad():
            columns = [adversary.model(x).argmax(dim=1) == y]
    robust = columns[-1].clone()
    for name in order[len(columns) - 1:]:
        began = time.perf_counter()
        if robust.any() and adversary.epsilon > 0:
            index = robust.nonzero()[:, 0]
            adversary.attacks_to_run = [name]
            _, predicted = adversary.run_standard_evaluation(x[index], y[index], batch_size=len(index))
            robust[index] = predicted.to(y.device) == y[index]
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - began
        columns.append(robust.clone())
        if save is not None:
            save(columns)
    return torch.stack(columns, dim=1).cpu()


def _num_classes(model: nn.Module, image: Tensor, device) -> int:
    """The width of the model's logits, from one image."""
    with evaluating(model), torch.no_grad():
        return model(image.to(device)).shape[1]


def _adversary(model: nn.Module, norm: str, eps: float, version: str, attacks: tuple[str, ...] | None, seed: int, device,
               classes: int):
    try:
        from pyautoattack import AutoAttack
    except ImportError as error:  # pragma: no cover - the empirical extra installs it
        raise ImportError("AutoAttack needs the pyautoattack package: pip install 'pyautoattack==0.2.0'") from error
    adversary = AutoAttack(model, norm=NORMS[norm], eps=float(eps), version=version,
                           attacks=list(attacks) if version == "custom" else None, seed=seed, device=device)
    adversary.verbose = False
    adversary.apgd_targeted.n_target_classes = min(adversary.apgd_targeted.n_target_classes, classes - 1)
    adversary.fab.n_target_classes = min(adversary.fab.n_target_classes, classes - 1)
    return adversary


def _attack_order(version: str, attacks: tuple[str, ...] | None, classes: int | None) -> tuple[str, ...]:
    """The attacks the version runs, in order (as the package sets them), for a model with ``classes``
    logits (None: any); a custom list with an attack the classes cannot support is refused."""
    if version == "custom":
        unsupported = [name for name in attacks if classes is not None and classes < MIN_CLASSES.get(name, 2)]
        if unsupported:
            raise ValueError(f"attacks {unsupported} use the DLR loss, which needs at least "
                             f"{max(MIN_CLASSES[name] for name in unsupported)} classes; the model has {classes}")
        return tuple(attacks)
    order = {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
             "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
             "rand": ("apgd-ce", "apgd-dlr")}[version]
    return tuple(name for name in order if classes is None or classes >= MIN_CLASSES.get(name, 2))


@contextmanager
def _quiet_logger() -> Iterator[list[str]]:
    """Collect the package's warnings (its sanity checks) instead of printing them."""
    logger, found = logging.getLogger(LOGGER), []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append(record.getMessage())

    handler, propagate = Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield found
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@contextmanager
def _own_random_state(device: torch.device) -> Iterator[None]:
    """The package seeds torch's global generators; give the caller's back afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def _fingerprint(x: Tensor, y: Tensor, weights: str | None, norm, eps, version, order, batch_size, seed) -> dict:
    """What a state's chunks depend on: the model's weights (their SHA-256), the settings, and the images and labels."""
    return {"model": weights, "norm": norm, "eps": float(eps), "version": version, "attacks": list(order),
            "batch_size": batch_size, "seed": seed, "images": len(x), "sha256": tensor_sha256(x, y)}


def _load_state(path: Path | None, settings: dict) -> dict:
    if path is None or not path.is_file():
        return {"settings": settings, "chunks": {}, "attacks": {}, "seconds": {}}
    saved = json.loads(path.read_text())
    saved.setdefault("attacks", {})  # the attacks finished in an unfinished chunk; states before them had none
    saved.setdefault("seconds", {})  # each attack's seconds over all sittings; older states timed none, so none is claimed
    if saved.get("settings") != settings:
        differing = sorted(k for k in settings if saved.get("settings", {}).get(k) != settings[k])
        raise ValueError(f"the AutoAttack state {path} was made with other settings, images or model weights "
                         f"(differing: {differing}); delete it or pass another state path")
    return saved


def _save_state(path: Path | None, saved: dict) -> None:
    if path is None:
        return
    write_json(path, saved)


def _check(model, images, labels, norm, eps, version, attacks, batch_size, seed) -> tuple[str, ...] | None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {tuple(NORMS)}, got {norm!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    if version == "custom":
        if attacks is None or isinstance(attacks, str) or not len(attacks):
            raise ValueError(f"version 'custom' needs attacks, a sequence drawn from {ATTACKS}; got {attacks!r}")
        unknown = [a for a in attacks if a not in ATTACKS]
        if unknown or len(set(attacks)) != len(attacks):
            raise ValueError(f"attacks must be distinct names from {ATTACKS}, got {list(attacks)!r}")
        attacks = tuple(attacks)
    elif attacks is not None:
        raise ValueError(f"attacks are chosen by version {version!r}; pass version='custom' to choose them ({attacks!r})")
    if not isinstance(images, Tensor) or not images.is_floating_point() or images.dim() != 4:
        raise ValueError(f"images must be a floating-point tensor (N, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"images must lie in [0, 1], got values in [{images.min().item():.4g}, {images.max().item():.4g}]")
    if not isinstance(labels, Tensor) or labels.dim() != 1 or len(labels) != len(images) or labels.is_floating_point():
        raise ValueError(f"labels must be an integer tensor with one entry per image ({len(images)}), got "
                         f"{tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__}")
    for name, value, low in (("batch_size", batch_size, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return attacks

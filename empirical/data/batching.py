"""Mini-batches made on the data's device, with random crop and flip drawn reproducibly from a seed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .image_data import ImageData


@dataclass(frozen=True)
class Augment:
    """Random crop with padding and horizontal flip, for a whole batch at once on its device.

    Output pixel (i, j) of image b is ``padded[b, :, dy_b + i, dx_b + j']`` with j' = W - 1 - j if
    image b is flipped, else j; dy, dx are uniform on 0..2 * padding. The defaults (padding 4 with
    zeros, flip) are RandomCrop(32, padding=4) + RandomHorizontalFlip of the paper's robustness
    library (its ColorJitter and 2-degree rotation are not reproduced). ``pad_mode``: "zeros" or "reflect".
    """

    padding: int = 4
    pad_mode: str = "zeros"
    flip: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.padding, int) or isinstance(self.padding, bool) or self.padding < 0:
            raise ValueError(f"padding must be an integer >= 0, got {self.padding!r}")
        if self.pad_mode not in ("zeros", "reflect"):
            raise ValueError(f"pad_mode must be 'zeros' or 'reflect', got {self.pad_mode!r}")
        if not isinstance(self.flip, bool):
            raise ValueError(f"flip must be a bool, got {self.flip!r}")

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random (dy, dx, flip) for n images from ``generator`` (on its device)."""
        device = generator.device
        dy = torch.randint(0, 2 * self.padding + 1, (n,), generator=generator, device=device)
        dx = torch.randint(0, 2 * self.padding + 1, (n,), generator=generator, device=device)
        flip = torch.rand(n, generator=generator, device=device) < 0.5
        if not self.flip:
            flip.zero_()  # drawn all the same, so the stream does not depend on the setting
        return dy, dx, flip

    def apply(self, images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """Crop at offsets (dy, dx) of the padded images and flip where ``flip``: one gather, no loop."""
        n, c, h, w = images.shape
        p = self.padding
        if self.pad_mode == "reflect" and p >= min(h, w):
            raise ValueError(f"reflect padding {p} must be smaller than the image size {h}x{w}")
        padded = F.pad(images, (p, p, p, p), mode="constant" if self.pad_mode == "zeros" else "reflect")
        device = images.device
        rows = dy.to(device)[:, None] + torch.arange(h, device=device)  # (n, h)
        cols = torch.arange(w, device=device).expand(n, w)
        cols = torch.where(flip.to(device)[:, None], w - 1 - cols, cols) + dx.to(device)[:, None]  # (n, w)
        return padded[
            torch.arange(n, device=device)[:, None, None, None],
            torch.arange(c, device=device)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(images, *self.draw(images.shape[0], generator))


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0])


class Batches:
    """Mini-batches ``(images, labels)`` of an ImageData, made on the data's device (GPU-resident on CUDA).

    ``shuffle``: a fresh permutation every epoch; ``augment``: an :class:`Augment` applied per
    batch; ``drop_last``: skip a final short batch. Without shuffle or augment the batches are
    views of the data in order (the evaluation path).

    Reproducible: all randomness of epoch e (permutation, crops, flips) is drawn at its start from a
    CPU ``torch.Generator`` seeded from (seed, e), then moved to the data's device, so the same
    seed gives the same batches in every run and on every device. Iterating runs epochs 0, 1, 2, ...
    in turn; :meth:`epoch` replays any one of them.
    """

    def __init__(
        self,
        data: ImageData,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: Augment | None = None,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        if not isinstance(data, ImageData):
            raise TypeError(f"data must be an ImageData, got {type(data).__name__}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if augment is not None and not isinstance(augment, Augment):
            raise TypeError(f"augment must be an Augment or None, got {type(augment).__name__}")
        if drop_last and batch_size > len(data):
            raise ValueError(f"batch_size {batch_size} exceeds the {len(data)} images, and drop_last leaves no batch")
        self.data, self.batch_size, self.shuffle, self.augment = data, batch_size, shuffle, augment
        self.drop_last, self.seed = drop_last, seed
        self._next_epoch = 0

    def __len__(self) -> int:
        n, b = len(self.data), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self._next_epoch += 1
        return self.epoch(self._next_epoch - 1)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of epoch ``epoch`` (the same every time it is asked for)."""
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        return self._batches(torch.Generator().manual_seed(_epoch_seed(self.seed, epoch)))

    def _batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, b, device = len(self.data), self.batch_size, self.data.device
        order = torch.randperm(n, generator=generator).to(device) if self.shuffle else None
        draws = [t.to(device) for t in self.augment.draw(n, generator)] if self.augment else None
        for start in range(0, len(self) * b, b):
            part = slice(start, start + b)
            index = order[part] if order is not None else part
            images, labels = self.data.images[index], self.data.labels[index]
            if draws is not None:
                images = self.augment.apply(images, *(d[part] for d in draws))
            yield images, labels

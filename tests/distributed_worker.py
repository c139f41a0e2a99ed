"""Run under torchrun by tests/test_distributed.py: the tiny suite on every process, then DDP checks.

Usage: torchrun --standalone --nproc_per_node=N -m tests.distributed_worker OUT
Process 0 writes OUT/suite (the suite's outputs) and OUT/checks.json.
"""

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from empirical.data import load
from empirical.distributed import gather, is_main, setup, teardown, world
from empirical.suite import PRESETS, Suite
from empirical.train import train


def main(out: Path) -> None:
    device = setup("cpu")
    preset = PRESETS["tiny"]()
    Suite(preset, out / "suite", device=device, progress=False).run()
    data = load("planted", "train", **preset.data_options)
    config = replace(preset.robust, epochs=2)  # adversarial training: attacks and DDP together
    model = train(config, data, out=out / "ddp-train", device=device, progress=False).model
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    everyone = gather(weights[None])
    if is_main():
        (out / "checks.json").write_text(json.dumps({
            "processes": world()[1],
            "largest_weight_difference": float((everyone - everyone[0]).abs().max()),
            "weights": len(weights),
        }))
    teardown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))

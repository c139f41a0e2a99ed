"""empirical.distributed: the suite under torchrun with two gloo processes on the CPU.

One run of tests/distributed_worker.py under ``torchrun --nproc_per_node=2``; then, in this
process, its outputs are checked against single-process computations.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from empirical.construct import features_dataset, relabelled_dataset
from empirical.data import load
from empirical.distributed import gather, shard, sharded, world
from empirical.suite import CONSTRUCTED, PRESETS, STAGES, Suite
from empirical.train import load_checkpoint, load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "tests.distributed_worker", str(out)]
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return out


def test_the_command_line_runs_under_torchrun_and_logs_once(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "empirical",
               "run", "--preset", "smoke", "--stages", "D_rand", "--out", str(tmp_path), "--quiet", "--device", "cpu"]
    finished = subprocess.run(command, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)),
                              capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["processes"] == 2 and results["constructions"]["D_rand"]["success_rate"] > 0.9
    log = (tmp_path / "suite.log").read_text()
    assert log.count("D_rand: done") == 1 and "on 2 process(es)" in log


def test_the_suite_runs_every_stage_on_two_processes(two_processes):
    results = json.loads((two_processes / "suite" / "results.json").read_text())
    assert results["processes"] == 2
    assert set(results["accuracy"]) == {"D", "D (adversarial)", *CONSTRUCTED}
    assert (two_processes / "suite" / "report.md").is_file()


def test_ddp_training_keeps_the_processes_weights_identical(two_processes):
    checks = json.loads((two_processes / "checks.json").read_text())
    assert checks["processes"] == 2 and checks["weights"] > 1000
    assert checks["largest_weight_difference"] == 0.0
    history = json.loads((two_processes / "ddp-train" / "history.json").read_text())
    assert history["processes"] == 2 and len(history["history"]) == 2


def test_sharded_constructions_equal_single_process_ones(two_processes):
    preset = PRESETS["tiny"]()
    suite = Suite(preset, two_processes / "suite", device="cpu", progress=False)
    train_data = load("planted", "train", **preset.data_options)
    standard = load_model(suite.folder("standard") / "train" / "model.pt")[0]
    robust = load_model(suite.folder("robust") / "train" / "model.pt")[0]
    single = {"D_R": features_dataset(robust, train_data, name="D_R", progress=False, **preset.inversion)[0],
              "D_det": relabelled_dataset(standard, train_data, mode="det", progress=False, **preset.relabel)[0],
              "D_rand": relabelled_dataset(standard, train_data, mode="rand", progress=False, **preset.relabel)[0]}
    for name, expected in single.items():
        saved = load_checkpoint(suite.folder(name) / "data.pt")
        assert torch.equal(saved["labels"], expected.labels), name
        torch.testing.assert_close(saved["images"], expected.images, atol=1e-4, rtol=0, msg=name)


def test_a_single_process_run_reuses_the_two_process_stages(two_processes):
    lines = []
    Suite(PRESETS["tiny"](), two_processes / "suite", device="cpu", progress=False, log=lines.append).run()
    assert sum("cached" in line for line in lines) == len(STAGES) - 1


def test_outside_torchrun_there_is_one_process_and_sharding_is_the_identity():
    assert world() == (0, 1) and shard(7) == slice(0, 7)
    rows = torch.arange(6.0).reshape(3, 2)
    assert gather(rows) is rows
    assert torch.equal(sharded(lambda a, b: a + b, rows, rows), 2 * rows)
    with pytest.raises(ValueError, match=r"\[3, 2\]"):
        sharded(lambda a, b: a, rows, rows[:2])

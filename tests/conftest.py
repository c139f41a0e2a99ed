"""Test configuration: hypothesis profiles, the gpu marker, and models trained once per session.

HYPOTHESIS_PROFILE=ci (the CI default: 25 examples, derandomised), dev (the local default: 25
fresh random examples a run, so README's test command costs what CI's does and each run explores
new instances) or thorough (1000 examples, long). Under pytest-xdist (README's command: -n auto --dist
loadfile) each worker runs torch, BLAS and the processes its tests start on one thread.
"""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers share the cores: set before torch or numpy is imported
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    """Say loudly which tests a missing data set skipped: CI installs every data set, a local run may not."""
    missing = [report for report in terminalreporter.stats.get("skipped", [])
               if isinstance(report.longrepr, tuple) and "not installed" in report.longrepr[2]]
    if missing:
        reasons = sorted({report.longrepr[2].removeprefix("Skipped: ") for report in missing})
        terminalreporter.write_sep("=", f"{len(missing)} test(s) skipped for missing data, which CI runs", yellow=True)
        for reason in reasons:
            terminalreporter.write_line(f"  {reason}")


@pytest.fixture(scope="session")
def planted_models():
    """A standard and an adversarially trained fast net on the planted-features set (about 30 s on a CPU).

    The attack radius 0.25 exceeds what moving the non-robust part to another class takes (the two
    classes' non-robust parts are 0.2 sqrt 2 = 0.28 apart; the attack crosses half of that) and is an
    eighth of the robust part's 2.
    """
    from empirical.bridge import PRESETS
    from empirical.data import planted
    from empirical.train import train

    smoke = PRESETS["smoke"]  # fast net, width 16, 10 epochs; robust: 3-step PGD at l2 0.25
    standard, robust = smoke.standard, smoke.robust
    data, test = planted("train", n_train=4000), planted("test", n_test=1000)
    return {"standard": train(standard, data, progress=False).model, "robust": train(robust, data, progress=False).model,
            "train": data, "test": test}


@pytest.fixture(scope="session")
def retrained_models(planted_models):
    """Standard models retrained on D_R and D_NR built (100 inversion steps) from 1000 planted images, as
    `empirical bridge`'s smoke preset builds them."""
    from empirical.bridge import PRESETS
    from empirical.construct import features_dataset
    from empirical.train import train

    config = PRESETS["smoke"].standard
    data = planted_models["train"].subset(PRESETS["smoke"].inversion_images)
    models = {}
    for name, source in (("D_R", planted_models["robust"]), ("D_NR", planted_models["standard"])):
        constructed, _ = features_dataset(source, data, name=name, steps=100, step_size=0.1, progress=False)
        models[name] = train(config, constructed, progress=False).model
    return models

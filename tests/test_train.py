"""empirical.train: schedules, checkpoints that round-trip and resume exactly, and bad configs."""

import os
import signal
from dataclasses import replace

import pytest
import torch

from empirical.attacks import Attack
from empirical.data import planted
from empirical.device import policy
from empirical.train import (
    CHECKPOINT,
    MODEL,
    TrainConfig,
    learning_rate,
    load_checkpoint,
    load_model,
    save_checkpoint,
    train,
)

TINY = TrainConfig(model="fast", model_options={"width": 8}, epochs=2, batch_size=64, lr=0.05, schedule="triangle",
                   augment=None, seed=3)


@pytest.fixture(scope="module")
def small():
    return planted("train", n_train=256, seed=1)


def test_step_schedule_drops_by_gamma_at_each_milestone():
    config = TrainConfig(epochs=6, lr=0.1, schedule="step", milestones=(2, 4), gamma=0.1)
    rates = [learning_rate(config, step, steps_per_epoch=10) for step in range(60)]
    assert rates[:20] == [0.1] * 20
    assert rates[20:40] == pytest.approx([0.01] * 20) and rates[40:] == pytest.approx([0.001] * 20)


def test_triangle_schedule_rises_to_the_peak_then_falls_to_zero():
    config = TrainConfig(epochs=4, lr=0.4, schedule="triangle", peak=0.25)
    rates = [learning_rate(config, step, steps_per_epoch=25) for step in range(101)]
    assert rates[0] == pytest.approx(0.04) and max(rates) == pytest.approx(0.4) and rates.index(max(rates)) == 25
    assert rates[100] == pytest.approx(0.0) and all(a >= b for a, b in zip(rates[25:], rates[26:]))


def test_cosine_schedule_starts_at_lr_and_ends_at_zero():
    config = TrainConfig(epochs=2, lr=0.2, schedule="cosine")
    assert learning_rate(config, 0, 10) == 0.2 and learning_rate(config, 20, 10) == pytest.approx(0.0, abs=1e-12)


def test_config_round_trips_through_a_dict():
    config = replace(TINY, adversary=Attack("l2", 0.5, steps=3, step_size=0.2, loss="ce", targets=0))
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_checkpoints_round_trip_bit_exactly_and_detect_corruption(tmp_path):
    torch.manual_seed(0)
    payload = {"weights": torch.randn(5, 3), "step": 7, "nested": {"b": torch.arange(4)}}
    path = save_checkpoint(tmp_path / "c.pt", payload)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["weights"], payload["weights"]) and loaded["step"] == 7
    assert torch.equal(loaded["nested"]["b"], payload["nested"]["b"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_checkpoint(path)


def test_training_is_reproducible_from_its_seed(small):
    first, second = train(TINY, small, progress=False), train(TINY, small, progress=False)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    assert first.history[-1]["loss"] == second.history[-1]["loss"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("adversary", [None, Attack("l2", 0.3, steps=2, step_size=0.2, loss="ce", targets=0)])
def test_an_interrupted_training_resumes_to_the_same_result(small, tmp_path, adversary, precision):
    """Bit-identical in either precision of the hot loops (empirical.device)."""
    with policy(precision=precision):
        _resumes_to_the_same_result(small, tmp_path, replace(TINY, adversary=adversary))


def _resumes_to_the_same_result(small, tmp_path, config):
    reference = train(config, small, progress=False)

    def interrupt(epoch, batch):
        if (epoch, batch) == (0, 1):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt, match="checkpoint saved"):
        train(config, small, out=tmp_path, progress=False, on_batch=interrupt)
    assert load_checkpoint(tmp_path / CHECKPOINT)["state"]["batch"] == 2
    resumed = train(config, small, out=tmp_path, progress=False)
    for name, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in reference.history]
    model, loaded_config = load_model(tmp_path / MODEL)
    assert loaded_config == config and not model.training
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    x = small.images[:8]
    torch.testing.assert_close(model(x), resumed.model(x), rtol=0, atol=0)


def test_a_finished_training_is_returned_as_it_is_also_without_its_checkpoint(small, tmp_path):
    """A run folder carried without its checkpoints (empirical.suite) keeps its finished models: none is trained again."""
    first = train(TINY, small, out=tmp_path, progress=False)
    (tmp_path / CHECKPOINT).unlink()

    def no_step(epoch, batch):
        raise AssertionError(f"trained again: epoch {epoch}, batch {batch}")

    again = train(TINY, small, out=tmp_path, progress=False, on_batch=no_step)
    assert again.history == first.history and again.seconds == first.seconds and not again.model.training
    torch.testing.assert_close(again.model(small.images[:8]), first.model.eval()(small.images[:8]), rtol=0, atol=0)


def test_a_checkpoint_of_another_config_is_refused(small, tmp_path):
    train(replace(TINY, epochs=1), small, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        train(TINY, small, out=tmp_path, progress=False)


def test_a_checkpoint_is_resumed_only_in_the_precision_it_was_made_in(small, tmp_path):
    with policy(precision="fp32"):
        train(TINY, small, out=tmp_path, progress=False)
    assert load_checkpoint(tmp_path / CHECKPOINT)["precision"] == "fp32"
    with policy(precision="bf16"), pytest.raises(ValueError, match="was made in fp32, this run is bf16"):
        train(TINY, small, out=tmp_path, progress=False)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"lr": -0.1}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"schedule": "exp"}, "'exp'"),
        ({"milestones": (0,)}, "milestones"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_config_raises_an_error_naming_the_value(changes, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, **changes)


def test_unknown_model_name_is_refused(small):
    with pytest.raises(ValueError, match="'resnet7'"):
        train(replace(TINY, model="resnet7"), small, progress=False)

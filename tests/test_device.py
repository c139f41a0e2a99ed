"""empirical.device: the precision policy, and the bf16 hot paths (autocast, channels_last, large
batches in chunks) walked on the CPU whatever it is.

The CPU default is bf16 with channels_last images where the CPU multiplies bf16 natively
(:func:`native_bf16`), else fp32 with NCHW images; ``policy`` switches either way, so the code a GPU
runs is exercised here before any GPU sees it.
"""

import math
import warnings

import pytest
import torch

from empirical.attacks import Attack, distance, pgd
from empirical.construct import features_dataset, relabelled_dataset
from empirical.data import ImageData
from empirical.device import autocast, batch_size, layout, native_bf16, policy, precision, resolve, uses_bf16
from empirical.evaluate import Evaluation, adversarial_examples, evaluate, predict
from empirical.models import build
from empirical.train import TrainConfig, train


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build("fast", width=8).eval()


@pytest.fixture(scope="module")
def data():
    generator = torch.Generator().manual_seed(1)
    return ImageData(torch.rand(20, 3, 32, 32, generator=generator), torch.arange(20) % 10,
                     tuple(str(i) for i in range(10)), "random images")


def conv_dtypes(model):
    """The dtypes of the first convolution's outputs, recorded while the returned list is watched."""
    seen = []
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    handle = first.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    return seen, handle


def test_the_cpu_default_is_bf16_channels_last_exactly_where_the_cpu_multiplies_bf16_natively():
    assert native_bf16() == (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    assert precision("cpu") == ("bf16" if native_bf16() else "fp32") and uses_bf16("cuda")
    x = torch.rand(2, 3, 8, 8)
    assert layout(x).is_contiguous(memory_format=torch.channels_last if native_bf16() else torch.contiguous_format)
    assert batch_size("cpu", "attack") == 128 and batch_size("cpu", "forward") == 512
    assert batch_size("cuda", "attack") >= 4096


def test_auto_resolves_per_device_and_a_named_precision_is_kept():
    assert resolve("auto", "cuda:0") == resolve("auto", "nvidia-h200") == "bf16"
    assert resolve("auto", "cpu") == resolve("auto", torch.device("cpu")) == precision("cpu")
    assert resolve("fp32", "cuda") == "fp32" and resolve("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'bf16', 'fp32'\), got 'fp16'"):
        resolve("fp16", "cpu")


def test_policy_overrides_inside_its_block_only_and_names_bad_values():
    default = precision("cpu")
    with policy(precision="bf16", channels_last=True, attack_batch=7):
        assert uses_bf16("cpu") and batch_size("cpu") == 7 and batch_size("cpu", "forward") == 512
        assert layout(torch.rand(2, 3, 8, 8)).is_contiguous(memory_format=torch.channels_last)
        with policy(forward_batch=3):
            assert batch_size("cpu") == 7 and batch_size("cpu", "forward") == 3
        with policy(precision="fp32"):
            assert not uses_bf16("cpu") and not uses_bf16("cuda")
            assert layout(torch.rand(2, 3, 8, 8)).is_contiguous(memory_format=torch.channels_last)  # asked for
    with policy(precision="fp32"):
        assert layout(torch.rand(2, 3, 8, 8)).is_contiguous()  # fp32 on the CPU: NCHW, measured fastest
    with policy(precision="auto"):
        assert precision("cpu") == default
    assert precision("cpu") == default and batch_size("cpu") == 128
    with pytest.raises(ValueError, match="attack_batch must be an integer >= 1, got 0"):
        with policy(attack_batch=0):
            pass
    with pytest.raises(ValueError, match="precision must be one of .* or None, got True"):
        with policy(precision=True):
            pass
    with pytest.raises(TypeError, match="channels_last must be True, False or None, got 'yes'"):
        with policy(channels_last="yes"):
            pass
    with pytest.raises(ValueError, match="kind must be one of"):
        batch_size("cpu", "train")


def test_bf16_autocast_reaches_the_model_in_attacks_and_predictions(model, data):
    seen, handle = conv_dtypes(model)
    try:
        with policy(precision="bf16"):
            pgd(model, data.images, data.labels, norm="l2", eps=0.5, steps=2, step_size=0.2)
            predict(model, data.images)
        assert seen and set(seen) == {torch.bfloat16}
        seen.clear()
        with policy(precision="fp32"):
            pgd(model, data.images, data.labels, norm="l2", eps=0.5, steps=2, step_size=0.2)
        assert set(seen) == {torch.float32}
    finally:
        handle.remove()


def test_a_bf16_channels_last_attack_stays_in_the_ball_and_box_in_fp32_and_agrees_with_fp32(model, data):
    x, y = data.images, data.labels
    with policy(precision="bf16", channels_last=True):
        low = pgd(model, x, y, norm="l2", eps=0.5, steps=5, step_size=0.2, restarts=2)
        assert low.dtype == torch.float32 and low.shape == x.shape
        assert (distance(low, x, "l2") <= 0.5 + 1e-5).all() and low.min() >= 0 and low.max() <= 1
        low = pgd(model, x, y, norm="l2", eps=0.5, steps=5, step_size=0.2, random_start=False)
    with policy(precision="fp32"):
        full = pgd(model, x, y, norm="l2", eps=0.5, steps=5, step_size=0.2, random_start=False)
    # bf16 gradients steer the same way: from the same start the two attacks' perturbations point alike
    cosine = torch.nn.functional.cosine_similarity((low - x).flatten(1), (full - x).flatten(1))
    assert cosine.median() > 0.9


def test_large_batches_are_chunked_without_changing_the_result(model, data):
    """Per-image work split into batches of 7 (20 images: 7, 7, 6) equals one batch of 20."""
    attack = Attack("l2", 0.5, steps=3)
    one = adversarial_examples(model, data.images, data.labels, attack, batch_size=20, seed=3)
    with policy(attack_batch=7, forward_batch=6):
        chunked = relabelled_dataset(model, data, mode="det", steps=3, progress=False)[0].images
        whole = relabelled_dataset(model, data, mode="det", steps=3, batch_size=20, progress=False)[0].images
        assert torch.equal(predict(model, data.images), predict(model, data.images, batch_size=20))
        inverted = features_dataset(model, data, name="D_R", steps=2, progress=False)[0].images
        assert inverted.is_contiguous() and inverted.shape == data.images.shape
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)
    assert one.shape == data.images.shape


def test_the_evaluation_of_record_runs_in_fp32_whatever_the_policy(model, data):
    seen, handle = conv_dtypes(model)
    try:
        with policy(precision="bf16", channels_last=True):
            evaluate(model, data.images, data.labels,
                     Evaluation("l2", 0.25, images=6, paper_steps=1, pgd_steps=1, autoattack="rand", eps_factors=()))
    finally:
        handle.remove()
    assert seen and set(seen) == {torch.float32}


def test_training_runs_the_cuda_path_on_the_cpu(data):
    config = TrainConfig(model="fast", model_options={"width": 8}, epochs=1, batch_size=8, lr=0.05, schedule="constant",
                         augment=None, adversary=Attack.paper("l2", 0.5, steps=2))
    with policy(precision="bf16", channels_last=True):
        result = train(config, data, progress=False)
    assert math.isfinite(result.history[0]["loss"]) and result.history[0]["loss"] > 0


def test_autocast_is_on_exactly_where_the_precision_is_bf16():
    with autocast("cpu"):
        assert torch.is_autocast_enabled("cpu") == native_bf16()
    with policy(precision="fp32"), autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu")
    with policy(precision="bf16"), autocast("cpu"):
        assert torch.is_autocast_enabled("cpu")


@pytest.mark.gpu
def test_attack_steps_do_not_synchronise_with_the_host():
    """The number of host synchronisations of a construction does not grow with its steps."""
    torch.manual_seed(0)
    model = build("fast", width=16).cuda().eval()
    images = torch.rand(64, 3, 32, 32)
    data = ImageData(images, torch.arange(64) % 10, tuple(str(i) for i in range(10)), "random images")

    def syncs(steps: int) -> int:
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                relabelled_dataset(model, data, mode="det", steps=steps, device="cuda", progress=False)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    assert syncs(12) == syncs(2)

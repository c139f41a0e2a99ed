"""empirical.models: one battery of invariants over every architecture in the registry.

Inputs are small (batches of 2, mostly 16x16; only the shape test uses 32x32 and 28x28) and run
on one thread, so the whole file takes about 10 s on a 2-vCPU machine.

Reference parameter counts (10 classes, 3x32x32) that ours are checked against:

* resnet18 11,173,962 and resnet50 23,520,842: MadryLab/robustness `cifar_models/resnet.py`
  (the paper's library; the same layout as kuangliu/pytorch-cifar), reproduced exactly.
* vgg16 14,728,266: robustness `cifar_models/vgg.py`, whose convolutions also carry a bias
  before BatchNorm; ours drop those 4,224 cancelled biases.
* densenet121 6,956,298: robustness `cifar_models/densenet.py` (growth 32), reproduced exactly.
* inception: kuangliu/pytorch-cifar's GoogLeNet layout, ~6.2M with conv biases (ours have none).
* fast: airbench94's net (KellerJordan/cifar10-airbench, `airbench94.py`, width 64): the same
  layers, counted from its definition: 1,972,792.
* resnet9: myrtle.ai's DAWNBench ResNet-9 (davidcpage/cifar10-fast, `net()`), counted from its
  definition without the output bias: 6,573,120.
"""

from __future__ import annotations

import copy
import functools
import re

import pytest
import torch
import torch.nn.functional as F

from empirical import models
from empirical.models import Classifier, build, fit_whitening

NAMES = tuple(name for name in models.available() if name != "mlp")  # the conv nets: any input size >= 16
GRAY = {"in_channels": 1, "mean": [0.1307], "std": [0.3081]}  # MNIST-like 1-channel statistics

def mlp_parameters(size: int, width: int, channels: int) -> int:
    """Two weight matrices and biases to `width` hidden units, then the 10-class head."""
    return channels * size * size * width + width + width * width + width + width * 10 + 10


REFERENCE = {  # name: (reference count, relative tolerance); sources in the module docstring
    "fast": (1_972_792, 0.0),
    "resnet9": (6_573_120, 0.0),
    "resnet18": (11_173_962, 0.0),
    "resnet50": (23_520_842, 0.0),
    "vgg16": (14_728_266, 0.001),
    "densenet121": (6_956_298, 0.0),
    "inception": (6_200_000, 0.01),
    "mlp": (mlp_parameters(32, 256, 3), 0.0),  # default size and width
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Batches of 2 run fastest on one thread, which also avoids oversubscription on a shared CPU
    (two threads next to another busy process made this file ten times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="module")
def release_models():
    """Free the shared models (a few hundred MB) when this module's tests are done."""
    yield
    cached.cache_clear()


@functools.cache
def cached(name: str, gray: bool = False) -> Classifier:
    """One model per (name, channels) in eval mode, shared by the tests that do not change it."""
    torch.manual_seed(0)
    return build(name, **(GRAY if gray else {})).eval()


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_registry_lists_the_papers_architectures_and_the_fast_net():
    assert set(models.available()) == {"fast", "resnet9", "resnet18", "resnet50", "vgg16", "densenet121", "inception", "mlp"}
    assert set(models.MODELS) == set(models.available())


def test_mlp_is_built_for_one_input_size_and_names_the_one_it_takes():
    model = build("mlp", size=16, width=32, in_channels=1, mean=[0.5], std=[0.25]).eval()
    x = images(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.head(model.features(x)), rtol=0, atol=0)
    assert model.feature_dim == 32 and sum(p.numel() for p in model.parameters()) == mlp_parameters(16, 32, 1)
    with pytest.raises(ValueError, match=r"\(N, 1, 16, 16\).*size=28"):
        model(images(2, 1, 28, 28))


def test_mlp_parameter_count_is_documented():
    assert sum(p.numel() for p in build("mlp").parameters()) == documented_counts()["mlp"] == REFERENCE["mlp"][0]


# --- shapes and the features/head split ----------------------------------------------------------

SHAPES = {"cifar": (3, 32, 32), "mnist": (1, 28, 28), "small": (3, 16, 16)}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_logits_are_the_head_of_features_of_the_documented_shapes(name, shape):
    channels, height, width = SHAPES[shape]
    model = cached(name, gray=channels == 1)
    x = images(2, channels, height, width)
    with torch.no_grad():
        features, logits = model.features(x), model(x)
    assert features.shape == (2, model.feature_dim) and logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits, model.head(features), rtol=0, atol=0)


@pytest.mark.parametrize("num_classes", [1, 2, 9, 100])
def test_num_classes_sets_the_logit_width(num_classes):
    model = build("fast", num_classes=num_classes, width=8)
    assert model.num_classes == num_classes
    assert model(images(2, 3, 16, 16)).shape == (2, num_classes)


def test_width_scales_the_fast_net():
    assert build("fast", width=16).feature_dim == 64
    small, large = (sum(p.numel() for p in build("fast", width=w).parameters()) for w in (16, 64))
    assert 100_000 < small < 200_000 < 1_900_000 < large < 2_000_000


# --- normalisation inside the model ---------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_model_normalises_its_input_in_0_1(name):
    model = cached(name)
    mean, std = torch.tensor(models.CIFAR10_MEAN), torch.tensor(models.CIFAR10_STD)  # the defaults
    x = images(2, 3, 16, 16)
    with torch.no_grad():
        by_hand = model.head(model.body((x - mean[:, None, None]) / std[:, None, None]))
        torch.testing.assert_close(model(x), by_hand)


def test_given_statistics_are_the_normalisation():
    mean, std = torch.tensor([0.3, 0.5, 0.7]), torch.tensor([0.2, 0.25, 0.4])
    model = build("fast", mean=mean, std=std, width=8).eval()
    torch.testing.assert_close(model.normalize.mean.flatten(), mean)
    torch.testing.assert_close(model.normalize.std.flatten(), std)
    x = images(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.head(model.body((x - mean[:, None, None]) / std[:, None, None])))


def test_normalisation_buffers_move_with_the_model():
    model = build("fast", width=8)
    assert {name for name, _ in model.named_buffers()} >= {"normalize.mean", "normalize.std"}
    model.to(torch.float64)
    assert model.normalize.mean.dtype == model.normalize.std.dtype == torch.float64
    model.to("meta")
    assert model.normalize.mean.device.type == model.normalize.std.device.type == "meta"


# --- parameters, initialisation, checkpoints ------------------------------------------------------


def documented_counts() -> dict[str, int]:
    """The parameter-count column of the table in empirical.models' docstring."""
    rows = re.findall(r"^\| (\w+)\s+\|[^|]+\|\s*([\d,]+) \|", models.__doc__, flags=re.MULTILINE)
    return {name: int(count.replace(",", "")) for name, count in rows}


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_is_documented_and_matches_the_reference(name):
    count = sum(p.numel() for p in cached(name).parameters())
    assert count == documented_counts()[name]
    reference, tolerance = REFERENCE[name]
    assert abs(count - reference) <= tolerance * reference


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_does_not_depend_on_the_input_channels_beyond_the_stem(name):
    difference = sum(p.numel() for p in cached(name).parameters()) - sum(
        p.numel() for p in cached(name, gray=True).parameters()
    )
    assert 0 < difference < 0.01 * sum(p.numel() for p in cached(name).parameters())


@pytest.mark.parametrize("name", NAMES)
def test_initialisation_is_determined_by_the_seed(name):
    torch.manual_seed(7)
    first = build(name).state_dict()
    torch.manual_seed(7)
    second = build(name).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_restores_outputs_and_normalisation(name):
    torch.manual_seed(1)
    source = build(name, num_classes=3, mean=[0.1, 0.2, 0.3], std=[0.5, 0.6, 0.7])
    with torch.no_grad():
        source(images(4, 3, 16, 16, seed=1))  # train mode: move the BatchNorm running statistics
    source.eval()
    torch.manual_seed(2)
    target = build(name, num_classes=3).eval()
    target.load_state_dict(source.state_dict())
    x = images(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)
    torch.testing.assert_close(target.normalize.std.flatten(), torch.tensor([0.5, 0.6, 0.7]))


# --- what attacks and fast training need ----------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_gradients_flow_to_the_input(name):
    model = cached(name)
    x = images(2, 3, 16, 16).requires_grad_()
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), torch.tensor([0, 1])), x)
    assert grad.shape == x.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_convolutions_are_stored_channels_last_and_compute_what_nchw_computes(name):
    model = cached(name)
    convolutions = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)
    nchw = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    x = images(2, 3, 16, 16)
    with torch.no_grad():
        expected = nchw(x)
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(x.to(memory_format=torch.channels_last)), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["fast", "resnet18"])
def test_bf16_autocast_runs_and_stays_close(name):
    model = cached(name)
    x = images(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
    assert logits.shape == expected.shape and torch.isfinite(logits).all()
    assert (logits.float() - expected).abs().max() <= 0.1 * expected.abs().max() + 1e-2


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_cuda_channels_last_bf16_training_step(name):
    torch.manual_seed(0)
    model = build(name).cuda().to(memory_format=torch.channels_last)
    x = torch.rand(8, 3, 32, 32, device="cuda").to(memory_format=torch.channels_last).requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x), torch.arange(8, device="cuda") % 10)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_fast_net_freezes_what_airbench_freezes():
    model = build("fast", width=8)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    whitening = {"body.0.weight"}
    batchnorm_scales = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert len(batchnorm_scales) == 6 and frozen == whitening | batchnorm_scales


def test_fit_whitening_decorrelates_the_patches():
    torch.manual_seed(0)
    model = build("fast", width=8)
    smooth = F.avg_pool2d(images(64, 3, 34, 34), 3, stride=1)  # correlated neighbouring pixels
    fit_whitening(model, smooth, eps=1e-6)
    whitening = model.body[0]
    with torch.no_grad():
        outputs = F.conv2d(model.normalize(smooth), whitening.weight)  # without the bias
    half = outputs[:, : whitening.out_channels // 2].permute(1, 0, 2, 3).flatten(1)
    torch.testing.assert_close(half @ half.T / half.shape[1], torch.eye(12), atol=2e-3, rtol=0)
    torch.testing.assert_close(outputs[:, 12:], -outputs[:, :12])


def test_fit_whitening_refuses_other_models():
    with pytest.raises(ValueError, match="'fast'"):
        fit_whitening(cached("resnet18"), images(2, 3, 16, 16))


# --- bad input -------------------------------------------------------------------------------------

BAD_IMAGES = {  # images for a 3-channel model: (value, exception, substring of the message)
    "three-dimensional": (images(3, 32, 32), ValueError, "(3, 32, 32)"),
    "wrong channels": (images(2, 1, 32, 32), ValueError, "(2, 1, 32, 32)"),
    "too small": (images(2, 3, 8, 32), ValueError, "at least 16x16"),
    "integer": (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), ValueError, "torch.uint8"),
    "not a tensor": (images(2, 3, 32, 32).numpy(), TypeError, "ndarray"),
}


@pytest.mark.parametrize("bad", BAD_IMAGES)
@pytest.mark.parametrize("name", NAMES)
def test_bad_images_are_refused_naming_them(name, bad):
    value, error, named = BAD_IMAGES[bad]
    for method in (cached(name), cached(name).features):
        with pytest.raises(error) as caught:
            method(value)
        assert named in str(caught.value)


BAD_BUILDS = {  # build arguments: (name, keyword arguments, substring of the ValueError message)
    "unknown name": ("resnet", {}, "'resnet'; choose one of fast, resnet9, resnet18"),
    "zero classes": ("fast", {"num_classes": 0}, "num_classes must be a positive integer, got 0"),
    "negative classes": ("fast", {"num_classes": -3}, "got -3"),
    "float classes": ("fast", {"num_classes": 2.5}, "got 2.5"),
    "bool classes": ("fast", {"num_classes": True}, "got True"),
    "string classes": ("fast", {"num_classes": "10"}, "got '10'"),
    "zero channels": ("fast", {"in_channels": 0}, "in_channels must be a positive integer, got 0"),
    "gray without statistics": ("fast", {"in_channels": 1}, "mean is required for in_channels=1"),
    "short mean": ("fast", {"mean": [0.5, 0.5]}, "mean must be 3 finite numbers (one per channel), got [0.5, 0.5]"),
    "nan mean": ("fast", {"mean": [0.5, float("nan"), 0.5]}, "nan"),
    "text mean": ("fast", {"mean": "gray"}, "'gray'"),
    "zero std": ("fast", {"std": [0.2, 0.0, 0.2]}, "std must be positive, got [0.2"),
    "unknown option": ("resnet18", {"width": 32}, "unknown option(s) ['width'] for 'resnet18'; it takes none"),
    "zero width": ("fast", {"width": 0}, "width must be a positive integer, got 0"),
}


@pytest.mark.parametrize("bad", BAD_BUILDS)
def test_bad_build_arguments_are_refused_naming_them(bad):
    name, kwargs, named = BAD_BUILDS[bad]
    with pytest.raises(ValueError) as caught:
        build(name, **kwargs)
    assert named in str(caught.value)

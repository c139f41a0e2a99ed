"""Image classifiers for CIFAR-style inputs, with the normalisation inside the model.

Every model is a `Classifier`: it takes float images in [0, 1] (NCHW, any channel count, height
and width at least `MIN_SIZE`), normalises them per channel with buffers that travel with the
model, maps them to a penultimate representation with `features` (what representation inversion
matches) and to logits with `forward(x) = head(features(x))`. Build one by name:

    model = build("resnet18")                                  # CIFAR-10 normalisation
    model = build("fast", in_channels=1, mean=[0.13], std=[0.31], width=32)
    model = build("mlp", size=16, width=256)                  # 3x16x16 inputs only

Parameter counts are for 10 classes and 3x32x32 inputs; they do not depend on the input size.
The CIFAR variants follow the paper's library (MadryLab/robustness, `cifar_models/`): 3x3 stems,
no stem max-pool, global pooling. Differences from it: global pools are adaptive (so any size
>= 16 works; identical at 32x32), and VGG's convolutions have no bias before BatchNorm (the bias
is cancelled by the BatchNorm; 4,224 fewer parameters).

| name        | architecture                                            | parameters | features |
|-------------|---------------------------------------------------------|-----------:|---------:|
| fast        | airbench94-style: whitening, 3 conv-BN-GELU blocks      |  1,972,792 |      256 |
| resnet9     | DAWNBench ResNet-9 (Page 2018), widths 64-512           |  6,573,120 |      512 |
| resnet18    | ResNet-18, basic blocks [2, 2, 2, 2]                    | 11,173,962 |      512 |
| resnet50    | ResNet-50, bottleneck blocks [3, 4, 6, 3]               | 23,520,842 |     2048 |
| vgg16       | VGG-16 with BatchNorm, one linear classifier            | 14,724,042 |      512 |
| densenet121 | DenseNet-121, growth 32, compression 0.5                |  6,956,298 |     1024 |
| inception   | GoogLeNet (Inception v1) for CIFAR, 5x5 as two 3x3      |  6,158,346 |     1024 |
| mlp         | flatten, two ReLU layers of `width` (256), input `size` |    855,050 |      256 |

The ResNet-9 (myrtle.ai's DAWNBench net, `width` scales its four widths) has no whitening: on all of
CIFAR-10 the fast net's targeted perturbations proved to be a shortcut that only another whitened
net learns (empirical.presets' cifar10-cpu preset says what was measured).
The robustness library's `inception` is a CIFAR Inception-v3; ours is the smaller GoogLeNet layout
common in CIFAR code (e.g. kuangliu/pytorch-cifar). The fast net is airbench94's network
(KellerJordan/cifar10-airbench); train it with its recipe and call `fit_whitening` first.
The mlp (for the planted-features data) is the one model tied to an input size (`size`, default
32): its first layer sees every pixel, so its input gradients stay in the span of what it was
trained on; the convolutional nets' do not (see empirical.presets' smoke preset).
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
MIN_SIZE = 16  # smallest input height and width every architecture accepts


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode (BatchNorm on running statistics) inside the block, its own mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class Normalize(nn.Module):
    """(x - mean) / std per channel; mean and std are buffers, saved and moved with the model."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1))
        self.register_buffer("std", std.reshape(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class ScaledLinear(nn.Linear):
    """A linear layer without bias whose output is multiplied by a fixed `scale` (airbench's logits)."""

    def __init__(self, in_features: int, out_features: int, scale: float) -> None:
        super().__init__(in_features, out_features, bias=False)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * self.scale

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale:.4g}"


class Classifier(nn.Module):
    """normalize -> body -> head. Input: float images in [0, 1], shape (N, in_channels, H, W).

    `features(x)` is the body's output, shape (N, feature_dim): the penultimate representation.
    `forward(x)` is `head(features(x))`, the logits, shape (N, num_classes). The [0, 1] range is
    the caller's contract and is not checked (that would synchronise a GPU on every call).
    """

    def __init__(self, normalize: Normalize, body: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.normalize = normalize
        self.body = body
        self.head = head

    @property
    def in_channels(self) -> int:
        return self.normalize.mean.shape[1]

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def features(self, x: Tensor) -> Tensor:
        _check_images(x, self.in_channels)
        return self.body(self.normalize(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _check_images(x: Tensor, in_channels: int) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1], got dtype {x.dtype}")
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"images must have shape (N, {in_channels}, H, W), got {tuple(x.shape)}")
    if min(x.shape[2:]) < MIN_SIZE:
        raise ValueError(f"images must be at least {MIN_SIZE}x{MIN_SIZE}, got {tuple(x.shape)}")


# --- building blocks ---------------------------------------------------------------------------


def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout)
    )


def _conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(*_conv_bn(cin, cout, kernel, stride), nn.ReLU())


def _global(pool: type[nn.Module]) -> list[nn.Module]:
    """Global pooling to one value per channel, flattened: the (N, D) features."""
    return [pool(1), nn.Flatten()]


# --- ResNet (He et al. 2016), CIFAR variant ----------------------------------------------------


class Residual(nn.Module):
    """relu(branch(x) + shortcut(x)); the shortcut is the identity unless the shape changes."""

    def __init__(self, branch: nn.Sequential, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.branch = branch
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else _conv_bn(cin, cout, 1, stride)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.branch(x) + self.shortcut(x))


def _basic_block(cin: int, planes: int, stride: int) -> Residual:
    """Two 3x3 convolutions; output width = planes."""
    branch = nn.Sequential(_conv_bn_relu(cin, planes, 3, stride), _conv_bn(planes, planes, 3))
    return Residual(branch, cin, planes, stride)


def _bottleneck_block(cin: int, planes: int, stride: int) -> Residual:
    """1x1 reduce, 3x3 (strided, as in the robustness library), 1x1 expand to 4 * planes."""
    branch = nn.Sequential(
        _conv_bn_relu(cin, planes, 1), _conv_bn_relu(planes, planes, 3, stride), _conv_bn(planes, 4 * planes, 1)
    )
    return Residual(branch, cin, 4 * planes, stride)


def _resnet(
    in_channels: int, block: Callable[[int, int, int], Residual], depths: Sequence[int], expansion: int
) -> nn.Sequential:
    """3x3 stem (64), four stages of widths 64-512 (strides 1, 2, 2, 2), global average pool."""
    layers: list[nn.Module] = [_conv_bn_relu(in_channels, 64)]
    cin = 64
    for planes, depth, stride in zip((64, 128, 256, 512), depths, (1, 2, 2, 2)):
        for i in range(depth):
            layers.append(block(cin, planes, stride if i == 0 else 1))
            cin = planes * expansion
    return nn.Sequential(*layers, *_global(nn.AdaptiveAvgPool2d))


# --- VGG-16 (Simonyan & Zisserman 2015) with BatchNorm, CIFAR variant --------------------------

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _vgg(in_channels: int, config: Sequence[int | str]) -> nn.Sequential:
    """3x3 conv-BN-ReLU stacks and 2x2 max-pools; the last pool is global (2x2 -> 1 at 32x32)."""
    layers: list[nn.Module] = []
    cin = in_channels
    for item in config[:-1]:
        if item == "M":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        else:
            layers.append(_conv_bn_relu(cin, item))
            cin = item
    return nn.Sequential(*layers, *_global(nn.AdaptiveMaxPool2d))


# --- DenseNet-121 (Huang et al. 2017), CIFAR variant -------------------------------------------


class DenseLayer(nn.Module):
    """Concatenates `growth` new channels (BN-ReLU-1x1 to 4 * growth, BN-ReLU-3x3) to its input."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(), nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch(x), x], dim=1)


def _densenet(in_channels: int, depths: Sequence[int], growth: int) -> nn.Sequential:
    """3x3 stem (2 * growth), dense blocks joined by BN-ReLU-1x1-avgpool transitions halving
    the channels, then BN-ReLU and a global average pool."""
    cin = 2 * growth
    layers: list[nn.Module] = [nn.Conv2d(in_channels, cin, 3, padding=1, bias=False)]
    for i, depth in enumerate(depths):
        for _ in range(depth):
            layers.append(DenseLayer(cin, growth))
            cin += growth
        if i < len(depths) - 1:
            cout = cin // 2
            layers += [nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2)]
            cin = cout
    return nn.Sequential(*layers, nn.BatchNorm2d(cin), nn.ReLU(), *_global(nn.AdaptiveAvgPool2d))


# --- GoogLeNet / Inception v1 (Szegedy et al. 2015), CIFAR variant -----------------------------


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (a factorised 5x5,
    as in Inception v3); 3x3 max-pool -> 1x1. Output width = n1 + n3 + n5 + pool."""

    def __init__(self, cin: int, n1: int, r3: int, n3: int, r5: int, n5: int, pool: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList([
            _conv_bn_relu(cin, n1, 1),
            nn.Sequential(_conv_bn_relu(cin, r3, 1), _conv_bn_relu(r3, n3)),
            nn.Sequential(_conv_bn_relu(cin, r5, 1), _conv_bn_relu(r5, n5), _conv_bn_relu(n5, n5)),
            nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv_bn_relu(cin, pool, 1)),
        ])  # fmt: skip
        self.out_channels = n1 + n3 + n5 + pool

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection) of Szegedy et al. (2015), Table 1;
# None marks a stride-2 max-pool.
GOOGLENET = (
    (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), None,  # 3a, 3b
    (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),  # 4a-c
    (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128), None,  # 4d, 4e
    (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128),  # 5a, 5b
)  # fmt: skip


def _inception(in_channels: int, config: Sequence[tuple[int, ...] | None]) -> nn.Sequential:
    """3x3 stem (192) at full resolution, nine inception blocks, two max-pools, global average."""
    layers: list[nn.Module] = [_conv_bn_relu(in_channels, 192)]
    cin = 192
    for widths in config:
        if widths is None:
            layers.append(nn.MaxPool2d(3, stride=2, padding=1))
        else:
            layers.append(block := InceptionBlock(cin, *widths))
            cin = block.out_channels
    return nn.Sequential(*layers, *_global(nn.AdaptiveAvgPool2d))


# --- the fast net: airbench94's architecture (Jordan 2024) -------------------------------------


class Whitening(nn.Conv2d):
    """A fixed 2x2 convolution (weights frozen, bias trainable): call `fit` to make it whiten
    the 2x2 patches of a sample of normalised images, as airbench does before training."""

    def __init__(self, in_channels: int) -> None:
        super().__init__(in_channels, 2 * in_channels * 2 * 2, kernel_size=2, bias=True)
        self.weight.requires_grad_(False)
        nn.init.zeros_(self.bias)

    @torch.no_grad()
    def fit(self, x: Tensor, eps: float = 5e-4) -> None:
        """Filters +-v / sqrt(lam + eps) for the eigenpairs (lam, v) of the patches' second moment
        (largest first), so the first half of the outputs has near-identity covariance."""
        c, (kh, kw) = x.shape[1], self.kernel_size
        patches = x.float().unfold(2, kh, 1).unfold(3, kw, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * kh * kw)
        eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (eigenvectors.T / (eigenvalues + eps).sqrt()[:, None]).flip(0).reshape(-1, c, kh, kw)
        self.weight.copy_(torch.cat([filters, -filters]))


def _fast_conv(cin: int, cout: int) -> nn.Conv2d:
    """3x3 convolution whose first min(cin, cout) filters start as the identity (airbench's
    implicit residual)."""
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:cin])
    return conv


def _fast_bn(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with a frozen unit scale and a trainable shift, airbench's eps and momentum."""
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=0.4)
    bn.weight.requires_grad_(False)
    return bn


def _fast_block(cin: int, cout: int) -> nn.Sequential:
    """conv -> 2x2 max-pool -> BN -> GELU -> conv -> BN -> GELU."""
    return nn.Sequential(
        _fast_conv(cin, cout), nn.MaxPool2d(2), _fast_bn(cout), nn.GELU(),
        _fast_conv(cout, cout), _fast_bn(cout), nn.GELU(),
    )  # fmt: skip


def _fast_body(in_channels: int, width: int) -> nn.Sequential:
    """Whitening 2x2 conv + GELU, blocks of widths (w, 4w, 4w), global max-pool (3x3 -> 1 at 32x32)."""
    whitening = Whitening(in_channels)
    widths = (whitening.out_channels, width, 4 * width, 4 * width)
    blocks = [_fast_block(cin, cout) for cin, cout in zip(widths, widths[1:])]
    return nn.Sequential(whitening, nn.GELU(), *blocks, *_global(nn.AdaptiveMaxPool2d))


def fit_whitening(model: Classifier, images: Tensor, eps: float = 5e-4) -> None:
    """Fit the fast net's whitening layer to `images` (in [0, 1]; airbench uses 5000 training images)."""
    whitening = model.body[0] if isinstance(model.body, nn.Sequential) else None
    if not isinstance(whitening, Whitening):
        raise ValueError(f"fit_whitening needs a 'fast' model, got a body starting with {type(whitening).__name__}")
    _check_images(images, model.in_channels)
    whitening.fit(model.normalize(images), eps)


# --- ResNet-9: the DAWNBench network (Page 2018, myrtle.ai) ------------------------------------


def _resnet9_body(in_channels: int, width: int) -> nn.Sequential:
    """Stem (w), then w -> 2w with a 2x2 max-pool and a residual pair, 2w -> 4w with a pool, 4w -> 8w with a
    pool and a residual pair, global max-pool; every convolution 3x3 -> BN -> ReLU."""
    def residual(channels: int) -> Residual:  # relu(x + branch(x)) = x + branch(x): both are post-ReLU
        return Residual(nn.Sequential(_conv_bn_relu(channels, channels), _conv_bn_relu(channels, channels)),
                        channels, channels, 1)

    w = width
    return nn.Sequential(
        _conv_bn_relu(in_channels, w),
        _conv_bn_relu(w, 2 * w), nn.MaxPool2d(2), residual(2 * w),
        _conv_bn_relu(2 * w, 4 * w), nn.MaxPool2d(2),
        _conv_bn_relu(4 * w, 8 * w), nn.MaxPool2d(2), residual(8 * w),
        *_global(nn.AdaptiveMaxPool2d),
    )  # fmt: skip


# --- the registry --------------------------------------------------------------------------------


Parts = tuple[nn.Sequential, nn.Linear]


class Pixels(nn.Flatten):
    """Flatten (N, C, size, size) images to (N, C size^2), refusing any other shape by name."""

    def __init__(self, in_channels: int, size: int) -> None:
        super().__init__()
        self.shape = (in_channels, size, size)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"this mlp takes images of shape (N, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}; "
                             f"build it with size={x.shape[-1]} for those")
        return super().forward(x)


def _mlp(in_channels: int, num_classes: int, size: int = 32, width: int = 256) -> Parts:
    body = nn.Sequential(Pixels(in_channels, size), nn.Linear(in_channels * size * size, width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU())
    return body, nn.Linear(width, num_classes)


def _fast(in_channels: int, num_classes: int, width: int = 64) -> Parts:
    """airbench scales the logits by 1/9 and has no output bias."""
    return _fast_body(in_channels, width), ScaledLinear(4 * width, num_classes, scale=1 / 9)


def _resnet9(in_channels: int, num_classes: int, width: int = 64) -> Parts:
    """Page's ResNet-9 scales the logits by 1/8 and has no output bias."""
    return _resnet9_body(in_channels, width), ScaledLinear(8 * width, num_classes, scale=1 / 8)


def _resnet18(in_channels: int, num_classes: int) -> Parts:
    return _resnet(in_channels, _basic_block, (2, 2, 2, 2), 1), nn.Linear(512, num_classes)


def _resnet50(in_channels: int, num_classes: int) -> Parts:
    return _resnet(in_channels, _bottleneck_block, (3, 4, 6, 3), 4), nn.Linear(2048, num_classes)


def _vgg16(in_channels: int, num_classes: int) -> Parts:
    return _vgg(in_channels, VGG16), nn.Linear(512, num_classes)


def _densenet121(in_channels: int, num_classes: int) -> Parts:
    return _densenet(in_channels, (6, 12, 24, 16), growth=32), nn.Linear(1024, num_classes)


def _googlenet(in_channels: int, num_classes: int) -> Parts:
    return _inception(in_channels, GOOGLENET), nn.Linear(1024, num_classes)


# name -> function (in_channels, num_classes, **options) -> (body, head)
MODELS: dict[str, Callable[..., Parts]] = {
    "fast": _fast,
    "resnet9": _resnet9,
    "resnet18": _resnet18,
    "resnet50": _resnet50,
    "vgg16": _vgg16,
    "densenet121": _densenet121,
    "inception": _googlenet,
    "mlp": _mlp,
}


def available() -> tuple[str, ...]:
    """The names `build` accepts."""
    return tuple(MODELS)


def build(
    name: str,
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    mean: Sequence[float] | Tensor | None = None,
    std: Sequence[float] | Tensor | None = None,
    **options: int,
) -> Classifier:
    """The classifier `name` (see `available()`), freshly initialised from torch's global RNG.

    mean and std (one value per channel) default to CIFAR-10's when in_channels is 3 and must
    be given otherwise. options: `width` for "fast" (first block width, default 64) and "resnet9" (stem
    width, default 64); `size` (input
    height = width, default 32) and `width` (hidden units, default 256) for "mlp"; the other
    architectures take none.

    Convolution weights are stored channels_last (NHWC), so every convolution runs in that
    layout whatever the input's: the layout CUDA's tensor cores want, and on 2 CPU cores it
    speeds the fast net's training 1.3x and its input gradients 1.4x, resnet18's 1.1x (vgg16 and
    densenet121 lose up to 24% there; ``benchmarks/results/bench_cpu_cifar*.json``). Inputs can
    stay NCHW: converting them as well gains nothing measurable.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(available())}")
    num_classes = _positive_int("num_classes", num_classes)
    in_channels = _positive_int("in_channels", in_channels)
    accepted = list(inspect.signature(MODELS[name]).parameters)[2:]
    if unknown := sorted(set(options) - set(accepted)):
        raise ValueError(f"unknown option(s) {unknown} for {name!r}; it takes {accepted or 'none'}")
    options = {key: _positive_int(key, value) for key, value in options.items()}
    center = _per_channel("mean", mean, CIFAR10_MEAN, in_channels)
    scale = _per_channel("std", std, CIFAR10_STD, in_channels)
    if not bool((scale > 0).all()):
        raise ValueError(f"std must be positive, got {scale.tolist()}")
    model = Classifier(Normalize(center, scale), *MODELS[name](in_channels, num_classes, **options))
    return model.to(memory_format=torch.channels_last)


def _positive_int(what: str, value: object) -> int:
    try:
        number = operator.index(value)  # int or numpy integer; not float, str, ...
    except TypeError:
        number = 0
    if isinstance(value, bool) or number < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return number


def _per_channel(what: str, value: object, cifar10: tuple[float, ...], in_channels: int) -> Tensor:
    if value is None:
        if in_channels != len(cifar10):
            raise ValueError(f"{what} is required for in_channels={in_channels} (the CIFAR-10 default has 3)")
        value = cifar10
    try:
        tensor = torch.as_tensor(value, dtype=torch.float32).flatten().clone()
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{what} must be {in_channels} numbers, got {value!r}") from error
    if tensor.numel() != in_channels or not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{what} must be {in_channels} finite numbers (one per channel), got {value!r}")
    return tensor

"""empirical.discussion: the measurements behind the published discussion's experiments, each on a case
whose answer is known."""

import pytest
import torch

from empirical.construct import relabelled_dataset
from empirical.data import ImageData, load, planted_features
from empirical.discussion import (
    gradient_alignment,
    likeness,
    linear_probe,
    other_images,
    planted_shares,
    random_alignment,
    ssim,
)
from empirical.evaluate import predict
from empirical.models import build
from empirical.train import TrainConfig, train

CLASSES = tuple(str(i) for i in range(10))


def blobs(n: int, seed: int, shift: float) -> ImageData:
    """Images whose class is a bright pixel at its own position (linearly separable for shift > 0)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = 0.5 + 0.05 * torch.randn(n, 1, 4, 4, generator=generator)
    images.view(n, -1)[torch.arange(n), labels] += shift
    return ImageData(images.clamp(0, 1), labels, CLASSES, "blobs")


def test_a_linear_probe_learns_a_linear_rule_and_stays_at_chance_without_one():
    assert linear_probe(blobs(400, 0, 0.4), blobs(400, 1, 0.4), steps=50) > 0.95
    assert linear_probe(blobs(400, 0, 0.0), blobs(400, 1, 0.4), steps=50) < 0.2
    train_data = blobs(400, 0, 0.4)
    signal = train_data.images - 0.5  # "perturbations": the class signal without the grey background
    assert linear_probe(train_data, blobs(400, 1, 0.4), inputs=signal, steps=50) > 0.95
    with pytest.raises(ValueError, match="one row per training image"):
        linear_probe(train_data, train_data, inputs=signal[:10])


def test_gradient_alignment_is_one_along_the_gradient_and_small_for_a_random_direction():
    torch.manual_seed(0)
    model = build("mlp", size=16, width=32).eval()
    x = torch.rand(16, 3, 16, 16)
    y, t = torch.arange(16) % 10, (torch.arange(16) + 1) % 10
    x_ = x.clone().requires_grad_(True)
    logits = model(x_)
    (gradient,) = torch.autograd.grad((logits.gather(1, t[:, None]) - logits.gather(1, y[:, None])).sum(), x_)
    assert torch.allclose(gradient_alignment(model, x, y, t, -3 * gradient), torch.ones(16), atol=1e-5)
    noise = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert gradient_alignment(model, x, y, t, noise).median() < 4 * random_alignment(3 * 16 * 16)
    with pytest.raises(ValueError, match="differ in length"):
        gradient_alignment(model, x, y, t, noise[:3])


def test_ssim_is_one_for_equal_images_and_falls_with_noise_and_structure_lost():
    images = load("planted", "train", n_train=20, n_test=10).images
    noisy = (images + 0.1 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert torch.allclose(ssim(images, images), torch.ones(20))
    assert (ssim(images, noisy) < 0.9).all()
    shuffled = ImageData(images, torch.zeros(20, dtype=torch.long), CLASSES, "planted")
    assert ssim(images, other_images(shuffled, "shuffled")).median() < ssim(images, noisy).median()
    with pytest.raises(ValueError, match="one shape"):
        ssim(images, images[:3])


def test_ssim_is_a_per_pair_measure_so_any_batch_size_gives_the_same_values():
    images, others = torch.rand(10, 3, 8, 8), torch.rand(10, 3, 8, 8)
    assert torch.equal(ssim(images, others, batch_size=3), ssim(images, others))
    assert torch.equal(ssim(images, others, batch_size=1)[4:5], ssim(images[4:5], others[4:5]))
    assert ssim(images[:0], others[:0]).shape == (0,)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        ssim(images, others, batch_size=0)


def test_other_images_carry_no_structure_but_shuffled_keep_each_images_values():
    data = load("planted", "train", n_train=12, n_test=10)
    shuffled = other_images(data, "shuffled", seed=3)
    assert torch.equal(shuffled.flatten(1).sort(dim=1).values, data.images.flatten(1).sort(dim=1).values)
    assert not torch.equal(shuffled, data.images)
    noise = other_images(data, "noise")
    assert noise.shape == data.images.shape and 0 <= noise.min() and noise.max() <= 1
    with pytest.raises(ValueError, match="source must be one of"):
        other_images(data, "cifar")


def test_planted_shares_read_a_perturbation_made_of_one_template():
    features = planted_features(n_train=10, n_test=10)
    targets = torch.tensor([3, 7])
    robust = 0.5 * features.robust[targets]
    shares = planted_shares(features, robust, targets)
    assert shares["robust_share"] == pytest.approx(1, abs=1e-5) and shares["nonrobust_share"] == pytest.approx(0, abs=1e-6)
    assert shares["robust_target_coefficient"] == pytest.approx(0.5, abs=1e-5)
    shares = planted_shares(features, -0.2 * features.nonrobust[targets], targets)
    assert shares["nonrobust_share"] == pytest.approx(1, abs=1e-5) and shares["nonrobust_target_coefficient"] == pytest.approx(-0.2, abs=1e-5)


def test_likeness_of_an_image_to_its_own_start_is_perfect():
    images = load("planted", "train", n_train=10, n_test=10).images
    found = likeness(images, images, images.flip(0))
    assert found["l2_to_start"] == 0 and found["ssim_to_start"] == pytest.approx(1)
    assert found["l2_to_target"] > 1 and found["ssim_to_target"] < 0.9


def test_a_guard_model_makes_the_perturbations_stop_transferring_to_it():
    """Nakkiran's construction: with the guard's cross-entropy of y in the objective, the guard keeps y."""
    data = load("planted", "train", n_train=2000, n_test=10, robust_noise=1.25)
    source, guard = (train(TrainConfig(model="mlp", model_options={"size": 16}, epochs=15, batch_size=128, lr=0.1,
                                       nesterov=True, schedule="triangle", augment=None, seed=seed), data, progress=False).model
                     for seed in (0, 1))
    settings = {"mode": "det", "eps": 0.5, "steps": 20, "step_size": 0.1, "progress": False}
    ordinary, _ = relabelled_dataset(source, data, **settings)
    guarded, stats = relabelled_dataset(source, data, guard=guard, **settings)
    ordinary_transfer = float((predict(guard, ordinary.images) == ordinary.labels).float().mean())
    assert ordinary_transfer > 0.8 and stats["guard_transfer_rate"] < 0.2 * ordinary_transfer
    assert stats["success_rate"] > 0.8 and torch.equal(guarded.labels, ordinary.labels)
    with pytest.raises(ValueError, match="guard_weight must be a positive finite number"):
        relabelled_dataset(source, data, guard=guard, guard_weight=0, **settings)

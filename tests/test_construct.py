"""empirical.construct: the paper's constructed training sets, on a small trained model."""

import pytest
import torch

from empirical.attacks import distance
from empirical.construct import features_dataset, invert, relabelled_dataset, representation
from empirical.data import Augment, planted
from empirical.device import autocast
from empirical.evaluate import predict
from empirical.train import TrainConfig, train


@pytest.fixture(scope="module")
def setting():
    data = planted("train", n_train=600, seed=2)
    config = TrainConfig(model="fast", model_options={"width": 8}, epochs=4, batch_size=100, lr=0.1, schedule="triangle",
                         augment=None)
    return train(config, data, progress=False).model, data.subset(120)


def test_inversion_moves_the_start_toward_the_targets_representation(setting):
    model, data = setting
    starts = data.images.roll(1, dims=0)
    with torch.no_grad():
        before = (model.features(starts) - model.features(data.images)).norm(dim=1)
    found, distances, relative = invert(model, data.images, starts, steps=40, step_size=0.1, progress=False)
    assert found.min() >= 0 and found.max() <= 1
    assert torch.all(distances <= before + 1e-4) and distances.mean() < 0.6 * before.mean()
    with torch.no_grad(), autocast(data.images.device):  # g(x) as the inversion computes it, in the hot loops' precision
        norms = representation(model, data.images).norm(dim=1)
    assert torch.allclose(relative, distances / norms, rtol=1e-4)


@pytest.mark.parametrize("start", ["image", "noise"])
def test_features_dataset_keeps_labels_and_is_reproducible(setting, start):
    model, data = setting
    first, stats = features_dataset(model, data, name="D_NR", steps=5, step_size=0.1, start=start, seed=4, progress=False)
    second, _ = features_dataset(model, data, name="D_NR", steps=5, step_size=0.1, start=start, seed=4, progress=False)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, data.labels)
    assert first.images.dtype == torch.float32 and "D_NR" in first.name
    assert set(stats) == {"representation_distance", "relative_distance"}


def test_image_starts_are_other_training_images(setting):
    model, data = setting
    constructed, _ = features_dataset(model, data, name="D_R", steps=0, step_size=0.1, seed=1, progress=False)
    flat, originals = constructed.images.flatten(1), data.images.flatten(1)
    matches = torch.cdist(flat, originals).argmin(dim=1)
    assert torch.all(matches != torch.arange(len(data)))  # never the image itself
    assert len(set(matches.tolist())) == len(data)        # a permutation of the training set


@pytest.mark.parametrize("mode", ["rand", "det"])
def test_relabelled_dataset_labels_each_image_with_its_attack_target(setting, mode):
    model, data = setting
    constructed, stats = relabelled_dataset(model, data, mode=mode, eps=0.5, steps=20, step_size=0.1, seed=0, progress=False)
    assert torch.all(distance(constructed.images, data.images, "l2") <= 0.5 + 1e-5)
    if mode == "det":
        assert torch.equal(constructed.labels, (data.labels + 1) % 10) and stats["labels_changed"] == 1.0
    else:
        assert 0.8 < stats["labels_changed"] < 1.0  # uniform targets keep about 1 in 10 labels
    reached = (predict(model, constructed.images) == constructed.labels).float().mean().item()
    assert stats["success_rate"] == pytest.approx(reached) and stats["flagged"] == (reached < 0.9)


def test_averaging_over_augmented_copies_makes_the_targets_survive_the_augmentation(setting):
    """Expectation over transformation: with each step's loss averaged over crops and flips of the image,
    the source still sees the target in augmented views of the perturbed image far more often."""
    model, data = setting
    augment = Augment(padding=1)
    views = augment.draw(len(data), torch.Generator().manual_seed(9))
    survived = {}
    for copies in (0, 4):
        built, stats = relabelled_dataset(model, data, mode="det", eps=1.0, steps=20, step_size=0.2,
                                          augmented_copies=copies, augment=augment, progress=False)
        survived[copies] = (predict(model, augment.apply(built.images, *views)) == built.labels).float().mean().item()
        assert torch.all(distance(built.images, data.images, "l2") <= 1.0 + 1e-5)
        assert ("augmented copies" in built.source) == (copies > 0)
    assert survived[4] > survived[0] + 0.2, survived  # measured: 22% without copies, 50% with 4
    again, _ = relabelled_dataset(model, data, mode="det", eps=1.0, steps=20, step_size=0.2, augmented_copies=4,
                                  augment=augment, progress=False)
    assert (predict(model, augment.apply(again.images, *views)) == again.labels).float().mean().item() == survived[4]


def test_a_weak_attack_is_flagged(setting):
    model, data = setting
    _, stats = relabelled_dataset(model, data, mode="det", eps=0.01, steps=2, step_size=0.005, progress=False)
    assert stats["flagged"] and stats["success_rate"] < 0.9


def test_bad_arguments_name_the_value(setting):
    model, data = setting
    with pytest.raises(ValueError, match="'sideways'"):
        relabelled_dataset(model, data, mode="sideways")
    for copies in (-1, True, 2.0):
        with pytest.raises(ValueError, match=f"augmented_copies must be an integer >= 0, got {copies!r}"):
            relabelled_dataset(model, data, mode="det", augmented_copies=copies)
    with pytest.raises(ValueError, match="augmented_copies and a guard"):
        relabelled_dataset(model, data, mode="det", augmented_copies=2, guard=model)
    with pytest.raises(TypeError, match="augment must be an Augment, got dict"):
        relabelled_dataset(model, data, mode="det", augmented_copies=2, augment={"padding": 4})
    with pytest.raises(ValueError, match="'zeros'"):
        features_dataset(model, data, name="D_R", start="zeros")
    with pytest.raises(ValueError, match="same shape"):
        invert(model, data.images, data.images[:3], steps=1, step_size=0.1)

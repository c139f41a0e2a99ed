"""The engine end to end on data with known answers.

On the planted-features set a standard model leans on the small high-frequency (non-robust)
templates, so an l2 attack of their size breaks it and swapping those templates alone changes
its answers; an adversarially trained model leans on the large low-frequency (robust) ones.
"""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from empirical.attacks import Attack, distance, pgd
from empirical.data import fashion_mnist, planted, planted_features
from empirical.evaluate import accuracy, robust_accuracy, sweep, transfer
from empirical.bridge import PRESETS
from empirical.train import TrainConfig, train

EPS = 0.25  # the planted models' attack radius (conftest.py)
ATTACK = Attack("l2", EPS, steps=10)
STANDARD = PRESETS["smoke"].standard  # the planted_models' standard config (conftest.py)


def swap_nonrobust(images: torch.Tensor, labels: torch.Tensor, shift: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each image's non-robust part from its class y to class t = y + shift (mod K), exactly."""
    truth = planted_features()
    k, b = truth.config.num_classes, truth.config.nonrobust_norm
    targets = (labels + shift) % k
    return (images + b * (truth.nonrobust[targets] - truth.nonrobust[labels])).clamp(0, 1), targets


def test_standard_training_learns_the_task_but_collapses_under_an_attack_of_the_templates_size(planted_models):
    model, test = planted_models["standard"], planted_models["test"]
    assert accuracy(model, test.images, test.labels) > 0.85
    assert robust_accuracy(model, test.images, test.labels, ATTACK) < 0.05


def test_adversarial_training_stays_accurate_under_the_same_attack(planted_models):
    model, test = planted_models["robust"], planted_models["test"]
    assert accuracy(model, test.images, test.labels) > 0.7
    assert robust_accuracy(model, test.images, test.labels, ATTACK) > 0.5


def test_swapping_only_the_non_robust_templates_moves_the_standard_model_but_not_the_robust_one(planted_models):
    test = planted_models["test"]
    swapped, targets = swap_nonrobust(test.images, test.labels)
    standard, robust = planted_models["standard"], planted_models["robust"]
    assert accuracy(standard, swapped, targets) > 0.5  # follows the non-robust template
    assert accuracy(robust, swapped, targets) < 0.15 and accuracy(robust, swapped, test.labels) > 0.65


def test_each_models_adversarial_perturbations_are_made_of_the_templates_it_uses(planted_models):
    # share of a perturbation's energy on each kind of template; a random direction puts 10/768 on each
    test, truth = planted_models["test"], planted_features()
    x, y = test.images[:200], test.labels[:200]
    shares = {}
    for name in ("standard", "robust"):
        delta = pgd(planted_models[name], x, y, norm="l2", eps=EPS, steps=10, step_size=0.06, random_start=False) - x
        content, energy = truth.content(delta), delta.flatten(1).square().sum(1)
        shares[name] = {kind: float((getattr(content, kind).square().sum(1) / energy).mean()) for kind in ("robust", "nonrobust")}
    chance = 10 / x[0].numel()
    assert shares["standard"]["nonrobust"] > 2 * chance > 10 * shares["standard"]["robust"]
    assert shares["robust"]["robust"] > 0.25 > 50 * shares["robust"]["nonrobust"]


def test_targeted_attack_reaches_its_targets_on_a_trained_model(planted_models):
    test, model = planted_models["test"], planted_models["standard"]
    x, targets = test.images[:300], (test.labels[:300] + 1) % 10
    adversarial = pgd(model, x, targets, norm="l2", eps=0.5, steps=20, step_size=0.1, targeted=True)
    assert accuracy(model, adversarial, targets) > 0.95
    assert torch.all(distance(adversarial, x, "l2") <= 0.5 + 1e-5)


def test_attack_sweep_finds_the_plateau(planted_models):
    test = planted_models["test"]
    result = sweep(planted_models["robust"], test.images[:200], test.labels[:200], norm="l2", eps=EPS, steps=(1, 5, 20),
                   restarts=(1, 2))
    accuracies = [row["accuracy"] for row in result["rows"]]
    assert len(accuracies) == 6 and result["lowest_accuracy"] == min(accuracies)
    assert result["plateau"]["accuracy"] <= result["lowest_accuracy"] + result["tolerance"]
    one_step = next(row["accuracy"] for row in result["rows"] if row["steps"] == 1 and row["restarts"] == 1)
    assert one_step > result["lowest_accuracy"]  # one step overstates robustness


def test_adversarial_examples_transfer_to_a_similar_model_more_than_to_a_robust_one(planted_models):
    test = planted_models["test"]
    other = train(replace(STANDARD, seed=1, epochs=6), planted("train", n_train=2000, seed=5), progress=False).model
    x, y = test.images[:300], test.labels[:300]
    to_standard = transfer(planted_models["standard"], other, x, y, ATTACK)
    to_robust = transfer(planted_models["standard"], planted_models["robust"], x, y, ATTACK)
    assert to_standard["source_success_rate"] > 0.95
    assert to_standard["success_rate"] > 0.5 > to_robust["success_rate"] + 0.2


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_a_small_net_learns_fashion_mnist_on_a_cpu_budget():
    data, test = fashion_mnist("train").subset(10_000), fashion_mnist("test").subset(2000)
    config = TrainConfig(model="fast", model_options={"width": 16}, epochs=2, batch_size=128, lr=0.1, nesterov=True,
                         schedule="triangle", augment=None, label_smoothing=0.1)
    result = train(config, data, progress=False)
    assert accuracy(result.model, test.images, test.labels) > 0.82

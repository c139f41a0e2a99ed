"""empirical.evaluate: accuracy and transfer counts on models whose answers are known."""

import pytest
import torch
from torch import nn

from empirical.attacks import Attack
from empirical.evaluate import accuracy, predict, robust_accuracy, transfer


class Threshold(nn.Module):
    """Class 1 if the mean pixel exceeds t, else class 0: predictions known in closed form."""

    def __init__(self, t: float = 0.5):
        super().__init__()
        self.t = t
        self.scale = nn.Parameter(torch.tensor(50.0))

    def forward(self, x):
        margin = self.scale * (x.flatten(1).mean(1) - self.t)
        return torch.stack([-margin, margin], dim=1)


def images(levels):
    return torch.tensor(levels).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()


def test_accuracy_counts_correct_predictions_in_eval_mode_across_batches():
    model = Threshold().train()
    x, y = images([0.1, 0.2, 0.7, 0.9, 0.6]), torch.tensor([0, 1, 1, 1, 0])
    assert predict(model, x, batch_size=2).tolist() == [0, 0, 1, 1, 1]
    assert accuracy(model, x, y, batch_size=2) == pytest.approx(3 / 5) and model.training


def test_robust_accuracy_keeps_exactly_the_points_farther_than_eps_from_the_boundary():
    # l2 eps on a 16-pixel image moves the mean by at most eps / 4: points within eps / 4 of 0.5 flip
    model = Threshold()
    x, y = images([0.3, 0.45, 0.55, 0.8]), torch.tensor([0, 0, 1, 1])
    assert robust_accuracy(model, x, y, Attack("l2", 0.4, steps=20)) == pytest.approx(0.5)
    assert robust_accuracy(model, x, y, Attack("l2", 0.1, steps=20)) == pytest.approx(1.0)


def test_transfer_counts_only_images_the_target_got_right():
    source, target = Threshold(0.5), Threshold(0.6)
    x, y = images([0.3, 0.52, 0.58, 0.9]), torch.tensor([0, 1, 1, 1])
    result = transfer(source, target, x, y, Attack("l2", 0.4, steps=20))
    # target is right on 0.3 and 0.9 only; the attack moves means by 0.1, fooling target on neither
    assert result["target_clean_correct"] == 2 and result["transferred"] == 0 and result["success_rate"] == 0
    assert result["source_success_rate"] == pytest.approx(0.5)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_bad_batch_size_is_refused(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        accuracy(Threshold(), images([0.1]), torch.tensor([0]), batch_size=batch_size)


def test_mismatched_images_and_labels_are_refused():
    for measure in (accuracy, lambda *args: robust_accuracy(*args, Attack("l2", 0.1))):
        with pytest.raises(ValueError, match="differ in length"):
            measure(Threshold(), images([0.1, 0.2]), torch.tensor([0]))

"""empirical.attacks: PGD reaches the analytic optimum on linear models and respects its constraints.

The optimum is exact arithmetic, so the attacks run in fp32 here, the precision of the evaluation
of record; tests/test_device.py checks that bf16 attacks point the same way.
"""

import math

import pytest
import torch
from torch import nn

from empirical.attacks import Attack, cross_entropy, distance, margin as untargeted_margin, pgd
from empirical.device import policy


@pytest.fixture(autouse=True)
def fp32():
    with policy(precision="fp32"):
        yield

SHAPE = (3, 4, 4)


def linear_model(seed: int = 0, classes: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(SHAPE), classes))


def interior_images(n: int, seed: int = 0) -> torch.Tensor:
    """Images in [0.4, 0.6]: an attack of size <= 0.3 per pixel never meets the box."""
    return 0.4 + 0.2 * torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(seed))


def margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    return logits.gather(1, y[:, None])[:, 0] - logits.gather(1, 1 - y[:, None])[:, 0]


@pytest.mark.parametrize("norm, dual", [("l2", 2), ("linf", 1)])
def test_pgd_on_a_linear_model_reaches_the_analytic_minimum_margin(norm, dual):
    # For two classes, cross-entropy falls with the margin m(x) = u_y . x + c, u_y = w_y - w_other,
    # so the optimum over ||delta|| <= eps is m(x) - eps ||u||_* (the dual norm), inside the box.
    model, x = linear_model(), interior_images(16)
    y = torch.arange(16) % 2
    eps = 0.3 if norm == "l2" else 0.01
    u = model[1].weight[1] - model[1].weight[0]
    dual_norm = torch.stack([u, -u])[y].norm(p=dual, dim=1)
    with torch.no_grad():
        expected = margin(model, x, y) - eps * dual_norm
    adversarial = pgd(model, x, y, norm=norm, eps=eps, steps=20, step_size=eps / 5, random_start=False)
    with torch.no_grad():
        torch.testing.assert_close(margin(model, adversarial, y), expected, rtol=1e-5, atol=1e-5)


def test_pgd_from_random_starts_converges_to_the_same_optimum():
    model, x = linear_model(1), interior_images(8, 1)
    y = torch.arange(8) % 2
    u = model[1].weight[1] - model[1].weight[0]
    with torch.no_grad():
        expected = margin(model, x, y) - 0.3 * torch.stack([u, -u])[y].norm(dim=1)
    adversarial = pgd(model, x, y, norm="l2", eps=0.3, steps=300, step_size=0.03, restarts=3,
                      generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(margin(model, adversarial, y), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("norm, eps", [("l2", 0.5), ("l2", 3.0), ("linf", 8 / 255), ("linf", 0.5)])
def test_adversarial_examples_stay_in_the_ball_and_in_the_unit_box(norm, eps):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 2 * 2, 10))
    x = torch.rand((12, *SHAPE))
    x[:4] = x[:4].round()  # pixels at the box's faces
    y = torch.randint(0, 10, (12,))
    adversarial = pgd(model, x, y, norm=norm, eps=eps, steps=10, step_size=eps / 2, restarts=2)
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert torch.all(distance(adversarial, x, norm) <= eps * (1 + 1e-5))


def test_restarts_never_do_worse_than_one_start():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.Tanh(), nn.Linear(32, 10))
    x, y = torch.rand((32, *SHAPE)), torch.randint(0, 10, (32,))
    settings = {"norm": "l2", "eps": 1.0, "steps": 5, "step_size": 0.3}
    one = pgd(model, x, y, **settings, generator=torch.Generator().manual_seed(7))
    many = pgd(model, x, y, **settings, restarts=4, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.all(cross_entropy(model, many, y) >= cross_entropy(model, one, y) - 1e-5)
        assert torch.any(cross_entropy(model, many, y) > cross_entropy(model, one, y) + 1e-3)


def test_restarts_draw_fresh_starts_uniform_in_the_ball():
    # with zero steps pgd returns the best start; scoring starts by their pixel sum, eight fresh
    # draws beat one (identical starts, the bug of some libraries, would tie)
    model, x = linear_model(), interior_images(64)
    pixel_sum = lambda _, z, __: z.flatten(1).sum(dim=1)  # noqa: E731
    best = [pgd(model, x, torch.zeros(64, dtype=torch.long), norm="linf", eps=0.1, steps=0, step_size=0.0, restarts=r,
                loss=pixel_sum, generator=torch.Generator().manual_seed(0)) for r in (1, 8)]
    gain = (best[1] - best[0]).flatten(1).sum(dim=1)
    assert torch.all(gain >= 0) and gain.mean() > 0.3  # E[max of 8] - E[one] is about 1.4 sd = 0.56
    assert torch.all(distance(best[1], x, "linf") <= 0.1 + 1e-7)


def test_targeted_attack_moves_toward_its_targets():
    model, x = linear_model(2, classes=4), interior_images(16, 2)
    targets = torch.arange(16) % 4
    adversarial = pgd(model, x, targets, norm="l2", eps=10.0, steps=50, step_size=0.5, targeted=True)
    with torch.no_grad():
        assert torch.all(model(adversarial).argmax(1) == targets)
        assert torch.all(cross_entropy(model, adversarial, targets) < cross_entropy(model, x, targets))


def test_custom_loss_hook_drives_the_attack():
    model, x = linear_model(), interior_images(4)
    target = torch.full_like(x, 0.5)
    towards = lambda _, z, goal: (z - goal).flatten(1).norm(dim=1)  # noqa: E731
    result = pgd(model, x, target, norm="l2", eps=5.0, steps=50, step_size=0.1, targeted=True, loss=towards,
                 random_start=False)
    # normalised steps of 0.1 straight at the goal end within half a step of it
    assert torch.all(distance(result, target, "l2") <= 0.05 + 1e-6)


def test_model_is_attacked_in_eval_mode_and_restored():
    seen = []
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    model.register_forward_pre_hook(lambda module, _: seen.append(module.training))
    model.train()
    pgd(model, interior_images(2), torch.zeros(2, dtype=torch.long), norm="l2", eps=0.1, steps=2, step_size=0.05)
    assert seen and not any(seen) and model.training
    assert all(p.grad is None for p in model.parameters())


def test_without_a_box_the_attack_reaches_the_unclipped_optimum_on_flat_inputs():
    torch.manual_seed(0)
    model = nn.Linear(5, 2)
    x, y = 3 * torch.randn(6, 5), torch.arange(6) % 2  # far outside [0, 1]
    u = model.weight[1] - model.weight[0]
    logits = lambda z: model(z)  # noqa: E731
    adversarial = pgd(model, x, y, norm="l2", eps=0.5, steps=10, step_size=0.1, random_start=False, box=None)
    with torch.no_grad():
        margin = lambda z: (logits(z)[:, 1] - logits(z)[:, 0]) * (2 * y - 1)  # noqa: E731
        torch.testing.assert_close(margin(adversarial), margin(x) - 0.5 * u.norm(), rtol=1e-5, atol=1e-5)


def test_zero_budget_returns_the_input():
    model, x = linear_model(), interior_images(3)
    torch.testing.assert_close(pgd(model, x, torch.zeros(3, dtype=torch.long), norm="l2", eps=0.0, steps=3, step_size=0.1), x)


def test_attack_defaults_are_the_projects_evaluation_and_paper_is_the_papers_convention():
    attack = Attack("l2", 0.5)
    assert attack.to_dict() == {"norm": "l2", "eps": 0.5, "steps": 25, "restarts": 1, "step_size": None,
                                "random_start": True, "loss": "margin", "targets": 9}
    assert attack.step == (1.0, "cosine")  # from 2 eps down to 0
    paper = Attack.paper("l2", 0.5, steps=10)
    assert (paper.loss, paper.targets, paper.step) == ("ce", 0, (pytest.approx(2.5 * 0.5 / 10), "constant"))
    model, x = linear_model(), interior_images(4)
    out = attack.run(model, x, torch.zeros(4, dtype=torch.long), torch.Generator().manual_seed(0))
    assert torch.all(distance(out, x, "l2") <= 0.5 + 1e-6)


def exact_l2_robust(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """For a linear model and images eps inside the box: correct and every class's boundary farther than eps,
    the distance to class j's being (z_y - z_j) / ||w_y - w_j||."""
    weight = model[1].weight
    with torch.no_grad():
        z = model(x)
        gaps = (z.gather(1, y[:, None]) - z) / (weight[y][:, None, :] - weight[None]).norm(dim=2).clamp_min(1e-12)
        gaps.scatter_(1, y[:, None], torch.inf)
    return gaps.amin(dim=1) > eps


@pytest.mark.parametrize("eps", [0.03, 0.08, 0.15])
def test_the_multi_targeted_attack_finds_exactly_the_non_robust_images_of_a_linear_model(eps):
    model, x = linear_model(3, classes=10), interior_images(200, 3)
    with torch.no_grad():
        y = model(x).argmax(dim=1)  # all correct when clean
    robust = exact_l2_robust(model, x, y, eps)
    assert 0.1 < robust.float().mean() < 0.9  # a budget that splits the images
    adversarial = Attack("l2", eps).run(model, x, y, torch.Generator().manual_seed(0))
    with torch.no_grad():
        still_correct = model(adversarial).argmax(dim=1) == y
    assert torch.equal(still_correct, robust)


def test_more_steps_never_weaken_a_run_with_a_constant_step():
    """From the same start a longer run continues the shorter one's trajectory and keeps its best iterate."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 2 * 2, 10))
    x, y = torch.rand((64, *SHAPE)), torch.randint(0, 10, (64,))
    values = []
    for steps in (2, 8, 32):
        attack = Attack("l2", 0.5, steps=steps, step_size=0.1, targets=0)  # the untargeted margin
        adversarial = attack.run(model, x, y, torch.Generator().manual_seed(1))
        with torch.no_grad():
            values.append(untargeted_margin(model, adversarial, y))
    for fewer, more in zip(values, values[1:]):
        assert torch.all(more >= fewer)
    assert values[2].mean() > values[0].mean()


def test_the_cosine_schedule_travels_from_large_steps_to_small_ones():
    """A linear objective's gradient never changes: with no ball in the way (eps large) the path is the sum of
    the steps, step_size (1 + cos(pi t / T)) / 2 for t < T, which is (T + 1) step_size / 2."""
    model, x = linear_model(), interior_images(2)
    toward = lambda m, z, _: z.flatten(1)[:, 0]  # noqa: E731  # ascend pixel 0
    moved = pgd(model, x * 0.0, torch.zeros(2, dtype=torch.long), norm="l2", eps=100.0, steps=8, step_size=0.1,
                schedule="cosine", random_start=False, loss=toward, box=None) - x * 0.0
    torch.testing.assert_close(moved.flatten(1)[:, 0], torch.full((2,), (8 + 1) * 0.1 / 2))
    with pytest.raises(ValueError, match="'linear'"):
        pgd(model, x, torch.zeros(2, dtype=torch.long), norm="l2", eps=0.1, steps=2, step_size=0.1, schedule="linear")


def test_targets_choose_their_own_classes():
    with pytest.raises(ValueError, match="targets=9"):
        Attack("l2", 0.1).run(linear_model(), interior_images(2), torch.zeros(2, dtype=torch.long), targeted=True)
    x = interior_images(2)
    out = Attack("l2", 0.1, targets=0).run(linear_model(), x, torch.ones(2, dtype=torch.long), targeted=True)
    assert out.shape == x.shape


def test_the_multi_targeted_attack_restores_train_mode():
    model = linear_model(classes=4).train()
    Attack("l2", 0.1, steps=2).run(model, interior_images(3), torch.zeros(3, dtype=torch.long))
    assert model.training and all(p.grad is None for p in model.parameters())


GOOD = {"norm": "l2", "eps": 0.5, "steps": 3, "step_size": 0.1}


@pytest.mark.parametrize(
    "x, y, changes, message",
    [
        (torch.full((2, *SHAPE), 1.5), None, {}, r"\[0, 1\]"),
        (torch.rand(48), None, {}, "shape"),
        (torch.randint(0, 2, (2, *SHAPE)), None, {}, "floating-point"),
        (None, torch.zeros(3, dtype=torch.long), {}, "one entry per image"),
        (None, None, {"norm": "l1"}, "'l1'"),
        (None, None, {"eps": -0.1}, "eps"),
        (None, None, {"eps": float("nan")}, "eps"),
        (None, None, {"steps": -1}, "steps"),
        (None, None, {"steps": 2.5}, "steps"),
        (None, None, {"restarts": 0}, "restarts"),
        (None, None, {"restarts": 2, "random_start": False}, "repeat the same attack"),
    ],
)
def test_bad_input_raises_an_error_naming_the_value(x, y, changes, message):
    x = interior_images(2) if x is None else x
    y = torch.zeros(2, dtype=torch.long) if y is None else y
    with pytest.raises(ValueError, match=message):
        pgd(linear_model(), x, y, **{**GOOD, **changes})


def test_attack_settings_are_validated_on_construction():
    with pytest.raises(ValueError, match="'l3'"):
        Attack("l3", 0.5)
    with pytest.raises(ValueError, match="eps"):
        Attack("linf", -1.0)
    with pytest.raises(ValueError, match="eps"):
        Attack.paper("l2", -1.0)
    with pytest.raises(ValueError, match="'hinge'"):
        Attack("l2", 0.5, loss="hinge")
    for targets in (-1, 1.5, True):
        with pytest.raises(ValueError, match="targets"):
            Attack("l2", 0.5, targets=targets)

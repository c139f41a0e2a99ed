"""empirical.autoattack: the authors' AutoAttack behind the project's conventions, exact on a linear
model, resumable, leaving nothing of the caller's changed; empirical.sanity: the flags it raises."""

import copy
import json
from contextlib import nullcontext

import pytest
import torch
from torch import nn

pytest.importorskip("pyautoattack")

from empirical import evaluation_of_record as aa  # noqa: E402
from empirical.evaluation_of_record import autoattack  # noqa: E402
from empirical.sanity import FLAGS, Flag, flags, zero_gradient_count  # noqa: E402
from tests.test_attacks import exact_l2_robust, interior_images, linear_model  # noqa: E402

EPS = 0.08  # splits the linear model's images about in half


@pytest.fixture(scope="module")
def linear():
    model, x = linear_model(3, classes=10), interior_images(60, 3)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    y[:5] = (y[:5] + 1) % 10  # five images misclassified when clean
    return model, x, y


def run(model, x, y, **options):
    return autoattack(model, x, y, norm="l2", eps=EPS, version="custom", attacks=["apgd-ce", "apgd-t"], **options)


def test_on_a_linear_model_autoattack_finds_exactly_the_non_robust_images(linear):
    model, x, y = linear
    result = run(model, x, y)
    assert torch.equal(result.robust, exact_l2_robust(model, x, y, EPS) & (model(x).argmax(1) == y))
    assert result.after["clean"] == pytest.approx(55 / 60) and result.accuracy == pytest.approx(result.after["apgd-t"])
    assert list(result.after) == ["clean", "apgd-ce", "apgd-t"] and result.after["apgd-t"] <= result.after["apgd-ce"]


def test_the_standard_version_runs_its_four_attacks_in_order():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))  # Square needs 5 x 5 pixels or more
    x = 0.4 + 0.2 * torch.rand(20, 3, 8, 8)
    result = autoattack(model, x, model(x).argmax(1), norm="l2", eps=EPS)
    assert result.attacks == ("apgd-ce", "apgd-t", "fab-t", "square") and list(result.after)[1:] == list(result.attacks)
    assert json.loads(json.dumps(result.to_dict()))["robust"] == result.accuracy


@pytest.mark.parametrize(("classes", "attacks"), [(2, ("apgd-ce", "fab-t", "square")), (5, ("apgd-ce", "apgd-t", "fab-t", "square"))])
def test_with_few_classes_the_standard_version_runs_what_the_logits_support(classes, attacks):
    """Targeted attacks aim at the K - 1 other classes; APGD-T's DLR loss needs 4 logits, so a binary
    classifier is attacked by APGD-CE, FAB-T and Square, exactly (on a linear model) and with a flag."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, classes))
    x = 0.4 + 0.2 * torch.rand(30, 3, 8, 8)
    y = model(x).argmax(1)
    result = autoattack(model, x, y, norm="l2", eps=EPS)
    assert result.attacks == attacks
    assert any("apgd-t left out" in w for w in result.warnings) == (classes < 4)
    if classes == 2:
        assert torch.equal(result.robust, exact_l2_robust(model, x, y, EPS))
        raised = flags(clean=result.clean, robust={"AutoAttack": result.accuracy}, autoattack=result.to_dict())
        assert "too_few_classes" in {flag.name for flag in raised}
    with pytest.raises(ValueError, match="at least 4 classes") if classes < 4 else nullcontext():
        autoattack(model, x, y, norm="l2", eps=EPS, version="custom", attacks=["apgd-t"])


def test_zero_budget_leaves_the_clean_accuracy(linear):
    model, x, y = linear
    result = autoattack(model, x, y, norm="linf", eps=0.0)
    assert result.accuracy == pytest.approx(55 / 60)


def test_nothing_of_the_callers_is_changed(linear):
    model, x, y = linear
    model.train()
    before = ({k: v.clone() for k, v in model.state_dict().items()}, x.clone(), y.clone(), torch.random.get_rng_state())
    run(model, x, y)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[0][k]) for k, v in model.state_dict().items())
    assert torch.equal(x, before[1]) and torch.equal(y, before[2])
    assert torch.equal(torch.random.get_rng_state(), before[3])  # the package reseeds torch; we give it back
    model.eval()


def test_an_interrupted_evaluation_resumes_at_its_chunk_and_matches_an_uninterrupted_one(linear, tmp_path, monkeypatch):
    model, x, y = linear
    whole = run(model, x, y, batch_size=20)
    state, calls, original = tmp_path / "state.json", [], aa._chunk

    def interrupted(*arguments):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*arguments)

    monkeypatch.setattr(aa, "_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(model, x, y, batch_size=20, state=state)
    assert list(json.loads(state.read_text())["chunks"]) == ["0"]
    monkeypatch.setattr(aa, "_chunk", lambda *arguments: calls.append(1) or original(*arguments))
    calls.clear()
    resumed = run(model, x, y, batch_size=20, state=state)
    assert len(calls) == 2  # chunks 20 and 40; chunk 0 came from the state
    assert torch.equal(resumed.robust, whole.robust) and resumed.after == whole.after
    calls.clear()
    assert torch.equal(run(model, x, y, batch_size=20, state=state).robust, whole.robust) and not calls


def test_an_evaluation_interrupted_within_a_chunk_resumes_after_its_last_finished_attack(linear, tmp_path, monkeypatch):
    """A chunk of the evaluation of record can take an hour: a kill loses at most the attack in progress, and the
    resumed result is the uninterrupted one (each attack seeds itself)."""
    from pyautoattack import AutoAttack

    model, x, y = linear
    whole = run(model, x, y, batch_size=60)
    state, ran, original = tmp_path / "state.json", [], AutoAttack.run_standard_evaluation

    def counted(self, *arguments, **options):
        ran.append(self.attacks_to_run[0])
        if ran == ["apgd-ce", "apgd-t"] and interrupt:
            raise KeyboardInterrupt
        return original(self, *arguments, **options)

    monkeypatch.setattr(AutoAttack, "run_standard_evaluation", counted)
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        run(model, x, y, batch_size=60, state=state)
    saved = json.loads(state.read_text())
    assert not saved["chunks"] and torch.tensor(saved["attacks"]["0"]).shape == (60, 2)  # clean and APGD-CE
    assert list(saved["seconds"]) == ["apgd-ce"]
    interrupt, ran[:] = False, []
    resumed = run(model, x, y, batch_size=60, state=state)
    assert ran == ["apgd-t"]
    assert torch.equal(resumed.robust, whole.robust) and resumed.after == whole.after
    assert resumed.seconds["apgd-ce"] == saved["seconds"]["apgd-ce"]  # the first sitting's attack keeps its time
    assert list(resumed.seconds) == list(whole.seconds) == ["apgd-ce", "apgd-t"]
    assert json.loads(state.read_text())["attacks"] == {}


def test_a_state_from_other_settings_images_or_weights_is_refused(linear, tmp_path):
    model, x, y = linear
    state = tmp_path / "state.json"
    run(model, x, y, state=state)
    with pytest.raises(ValueError, match="'eps'"):
        autoattack(model, x, y, norm="l2", eps=2 * EPS, version="custom", attacks=["apgd-ce", "apgd-t"], state=state)
    with pytest.raises(ValueError, match="'sha256'"):
        run(model, x.flip(0), y, state=state)
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)  # the same architecture, other weights: its chunks would be another model's
    with pytest.raises(ValueError, match=r"differing: \['model'\]"):
        run(other, x, y, state=state)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"eps": -0.1}, "eps"),
        ({"eps": float("nan")}, "eps"),
        ({"norm": "l1"}, "'l1'"),
        ({"version": "fast"}, "'fast'"),
        ({"version": "standard", "attacks": ["apgd-ce"]}, "version='custom'"),
        ({"version": "custom", "attacks": None}, "needs attacks"),
        ({"version": "custom", "attacks": ["apgd-ce", "pgd"]}, "'pgd'"),
        ({"images": torch.full((2, 3, 4, 4), 1.5)}, r"\[0, 1\]"),
        ({"images": torch.rand(2, 48)}, r"\(N, C, H, W\)"),
        ({"labels": torch.zeros(3, dtype=torch.long)}, "one entry per image"),
        ({"labels": torch.zeros(2)}, "integer"),
        ({"batch_size": 0}, "batch_size"),
        ({}, "5 x 5 pixels"),  # Square on 4 x 4 images
    ],
)
def test_bad_input_raises_an_error_naming_the_value(changes, message):
    arguments = {"images": interior_images(2), "labels": torch.zeros(2, dtype=torch.long), "norm": "l2", "eps": 0.1,
                 "version": "standard", **changes}
    with pytest.raises(ValueError, match=message):
        autoattack(linear_model(), arguments.pop("images"), arguments.pop("labels"), **arguments)


def test_the_packages_warnings_become_named_flags():
    probabilities = nn.Sequential(linear_model(classes=10), nn.Softmax(dim=1))  # not logits: AutoAttack warns
    x = interior_images(10)
    result = autoattack(probabilities, x, probabilities(x).argmax(1), norm="l2", eps=0.05, version="custom", attacks=["apgd-ce"])
    raised = {flag.name for flag in flags(clean=result.clean, robust={}, autoattack=result.to_dict())}
    assert "probability_output" in raised


# --- the sanity flags ------------------------------------------------------------------------------

RECORD = {"robust": 0.40, "after": {"clean": 0.8, "apgd-ce": 0.45, "apgd-t": 0.40, "fab-t": 0.40, "square": 0.40},
          "warnings": []}


@pytest.mark.parametrize(
    "arguments, expected",
    [
        ({}, set()),
        ({"robust": {"PGD": 0.85}}, {"robust_above_clean", "pgd_weaker_than_autoattack"}),
        ({"robust": {"PGD": 0.405}}, set()),  # within a point of AutoAttack
        ({"eps_curve": [(0.0, 0.8), (0.25, 0.4), (0.5, 0.45)]}, {"rises_with_eps"}),
        ({"eps_curve": [(0.0, 0.8), (0.25, 0.4), (0.5, 0.401)]}, set()),  # within noise
        ({"autoattack": {**RECORD, "after": {**RECORD["after"], "square": 0.35}}}, {"square_beats_white_box"}),
        ({"zero_gradients": 3, "images": 100}, {"zero_gradients"}),
        ({"autoattack": {**RECORD, "warnings": ["it seems to be a randomized defense! Please use version='rand'."]}},
         {"randomized_defense"}),
        ({"autoattack": {**RECORD, "warnings": ["something new"]}}, {"autoattack_warning"}),
    ],
)
def test_each_flag_is_raised_exactly_when_its_condition_holds(arguments, expected):
    given = {"clean": 0.8, "robust": {"PGD": 0.40}, "autoattack": RECORD, **arguments}
    raised = flags(**given)
    assert {flag.name for flag in raised} == expected
    assert all(flag.name in FLAGS and flag.message for flag in raised)


def test_an_unknown_flag_name_is_refused():
    with pytest.raises(ValueError, match="'masking'"):
        Flag("masking", "no such flag")


def test_zero_gradients_are_counted():
    dead = nn.Sequential(nn.Flatten(), nn.Linear(48, 10), nn.ReLU())
    with torch.no_grad():
        dead[1].bias.fill_(-100.0)  # every unit off: the logits, and their input gradient, are zero
    x, y = interior_images(7), torch.zeros(7, dtype=torch.long)
    assert zero_gradient_count(dead, x, y) == 7 and zero_gradient_count(linear_model(classes=10), x, y) == 0

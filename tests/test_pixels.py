"""empirical.pixels: the two-Gaussian fit to a class pair's pixels beside networks trained on the pair.

The study's code path runs end to end on a planted class pair (3 x 16 x 16 images, d = 768, so
the pair's 2,000 training images exceed d as the MLE needs); CIFAR-10's own run is committed
under results/. What must hold: the pair is relabelled 0/1 and keeps only its two classes; every
eps has a theory row and a network; the numbers are the ones the parts compute on their own.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from empirical.data import planted
from empirical.evaluate import Evaluation
from empirical.pixels import PixelSettings, class_pair, pixel_study, pixels


@pytest.fixture(scope="module")
def planted_splits():
    return planted("train", n_train=10_000), planted("test", n_test=2_000)


def test_class_pair_keeps_the_two_classes_relabelled_zero_and_one(planted_splits):
    data = planted_splits[0]
    pair = class_pair(data, (7, 2))
    original = data.labels[pair.source_indices]
    assert set(original.tolist()) == {7, 2}
    assert torch.equal(pair.labels, (original == 2).long())
    assert pair.classes == (data.classes[7], data.classes[2])
    x, y = pixels(pair)
    assert x.shape == (len(pair), 768) and set(np.unique(y)) == {-1.0, 1.0}
    with pytest.raises(ValueError, match="12"):
        class_pair(data, (1, 12))


def test_bad_settings_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        PixelSettings(classes=(4, 4))
    with pytest.raises(ValueError, match="-0.5"):
        PixelSettings(eps=(0.0, -0.5))


def test_the_study_runs_end_to_end_on_a_planted_pair(planted_splits, tmp_path):
    defaults = PixelSettings()
    settings = PixelSettings(
        classes=(0, 1), eps=(0.0, 0.5), test_images=400, exact_max_iter=15,
        network=replace(defaults.network, model_options={"width": 8}, epochs=2, augment=None),
        evaluation=Evaluation("l2", 0.25, images=40, paper_steps=5, pgd_steps=5, eps_factors=()),
    )
    record = pixel_study(settings, *planted_splits, tmp_path, progress=False, log=lambda line: None)
    saved = json.loads((tmp_path / "pixels.json").read_text())
    assert saved["theory"]["d"] == 768 and saved["theory"]["n"] == record["data"]["train_images"] > 768
    assert [row["eps"] for row in saved["theory"]["rows"]] == [0.0, 0.5]
    assert "exact" in saved["theory"]["rows"][1] and "exact" not in saved["theory"]["rows"][0]
    assert [n["eps"] for n in saved["networks"]] == [0.0, 0.5]
    for network in saved["networks"]:
        assert -1 <= network["alignment"] <= 1 and network["misalignment"] > 0
        robustness = network["robustness"]
        assert robustness["autoattack"]["robust"] <= robustness["clean"]
    for row in saved["theory"]["rows"]:
        assert row["closed_form"]["test_accuracy"] > 0.9  # the planted pair is separable by its templates
    assert (tmp_path / "pixels.png").is_file()
    assert saved["random_direction_misalignment"] > 0

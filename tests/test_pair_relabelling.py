"""empirical.pair_relabelling: D_rand and D_det on a class pair beside the fitted model's prediction, end to end
on a planted pair (3 x 16 x 16 images, so d = 768 < the pair's 800 training images)."""

import json
from dataclasses import replace

import pytest

from empirical.data import planted
from empirical.pair_relabelling import PairRelabelSettings, crossing, fitted_model, pair_relabelling
from empirical.pixels import class_pair
from gaussfeat import d_det_threshold

TINY = PairRelabelSettings(classes=(0, 1), eps=(0.5, 0.05), steps=2, draws=2, network=replace(
    PairRelabelSettings().network, model_options={"width": 4}, epochs=1, batch_size=100))


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    out = tmp_path_factory.mktemp("pair")
    train_data, test_data = planted("train", n_train=4000), planted("test", n_test=400)
    return out, pair_relabelling(TINY, train_data, test_data, out, progress=False, log=lambda line: None), train_data


def test_the_study_predicts_and_measures_every_eps_and_writes_json_and_a_figure(record):
    out, result, train_data = record
    assert [row["eps"] for row in result["prediction"]["rows"]] == [0.05, 0.5] == [row["eps"] for row in result["measured"]]
    assert result["prediction"]["d_det_threshold"] == pytest.approx(d_det_threshold(fitted_model(class_pair(train_data, (0, 1)))))
    for row in result["measured"]:
        for kind in ("d_rand", "d_det"):
            assert 0 <= row[kind]["test_accuracy"] <= 1 and 0 <= row[kind]["success_rate"] <= 1
    for row in result["prediction"]["rows"]:
        assert row["d_rand"]["population"] > 0.5  # D_rand's population limit beats chance at every eps
    crossings = result["crossings"]
    assert crossings["model_threshold"] == result["prediction"]["d_det_threshold"]
    assert crossings["d_det_accuracy"] == crossing([0.05, 0.5], [row["d_det"]["test_accuracy"] for row in result["measured"]])
    assert json.loads((out / "pair_relabelling.json").read_text())["measured"] == result["measured"]
    assert (out / "pair_relabelling.png").is_file() and (out / "pair_relabelling.pdf").is_file()


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match=r"two different CIFAR-10 labels in 0..9, got \(3, 3\)"):
        PairRelabelSettings(classes=(3, 3))
    with pytest.raises(ValueError, match=r"radii > 0, got \(0.0, 0.5\)"):
        PairRelabelSettings(eps=(0.0, 0.5))
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        PairRelabelSettings(steps=0)


def test_a_crossing_is_interpolated_in_log_eps_between_the_grid_points_around_it():
    assert crossing([0.01, 0.1, 1.0], [0.1, 0.3, 0.7]) == pytest.approx(10 ** -0.5)  # halfway from 0.3 to 0.7
    assert crossing([0.01, 0.1, 1.0], [0.6, 0.3, 0.7]) == 0.01  # already above at the first radius
    assert crossing([0.01, 0.1, 1.0], [0.1, 0.5, 0.9]) == pytest.approx(0.1)
    assert crossing([0.01, 0.1], [0.1, 0.4]) is None


@pytest.mark.parametrize("eps, values", [([0.1, 0.01], [0.2, 0.7]), ([0.0, 1.0], [0.2, 0.7]), ([0.1], [0.2, 0.7]),
                                         ([], [])])
def test_a_crossing_refuses_a_bad_grid_by_name(eps, values):
    with pytest.raises(ValueError, match="eps must be an increasing grid of radii > 0 as long as values"):
        crossing(eps, values)

"""empirical.throughput: the committed table of images per second, and seconds from it."""

import pytest

from empirical.throughput import OPERATIONS, estimate, model_key, table

ROWS = [{"device": "cpu", "model": "m", "operation": "train", "precision": "fp32", "images_per_s": 100.0, "measured": True,
         "source": "bench"},
        {"device": "gpu", "model": "m", "operation": "train", "precision": "bf16", "images_per_s": 1000.0, "measured": False,
         "source": "FLOPs"},
        {"device": "gpu", "model": "m", "operation": "train", "precision": "bf16", "images_per_s": 500.0, "measured": True,
         "source": "bench"},
        {"device": "cpu", "model": "m", "operation": "train", "precision": "bf16", "images_per_s": 250.0, "measured": True,
         "source": "bench"}]


def test_seconds_are_passes_over_the_devices_rate_and_a_measured_row_beats_an_estimate():
    assert estimate([("m", "train", 300)], "cpu", "fp32", ROWS).seconds == pytest.approx(3.0)
    found = estimate([("m", "train", 1000), ("m", "train", 500)], "gpu", "bf16", ROWS)
    assert found.seconds == pytest.approx(3.0) and found.estimated == () and found.missing == ()
    found = estimate([("m", "train", 1000)], "gpu", "bf16", ROWS[:2])
    assert found.seconds == pytest.approx(1.0) and found.estimated == ("m train",)


def test_only_the_rows_of_the_precision_asked_for_count():
    assert estimate([("m", "train", 500)], "cpu", "bf16", ROWS).seconds == pytest.approx(2.0)
    found = estimate([("m", "train", 500)], "gpu", "fp32", ROWS)
    assert found.seconds is None and found.missing == ("m train (fp32)",)


def test_a_missing_row_gives_no_seconds_and_is_named():
    found = estimate([("m", "train", 1), ("m", "attack", 1)], "cpu", "fp32", ROWS)
    assert found.seconds is None and found.missing == ("m attack (fp32)",)
    with pytest.raises(ValueError, match="operation must be one of"):
        estimate([("m", "backprop", 1)], "cpu", "fp32", ROWS)
    with pytest.raises(TypeError, match="device kind"):
        estimate([], None, "fp32", ROWS)
    with pytest.raises(ValueError, match=r"precision must be one of \('bf16', 'fp32'\), got 'auto'"):
        estimate([], "cpu", "auto", ROWS)


def test_the_committed_table_is_well_formed_and_measures_the_cpu_presets_models():
    rows = table()
    assert all(row["operation"] in OPERATIONS and row["images_per_s"] > 0 and row["source"] for row in rows)
    for precision in ("bf16", "fp32"):
        measured = {(row["model"], row["operation"]) for row in rows
                    if row["device"] == "cpu" and row["precision"] == precision and row["measured"]}
        for model in ("fast(width=16)", "mlp(size=16)", "mlp(size=28)", "mlp(size=32)"):
            assert {(model, operation) for operation in OPERATIONS} <= measured, (model, precision)


def test_a_bad_table_row_is_refused(tmp_path):
    path = tmp_path / "table.json"
    path.write_text('[{"device": "cpu", "model": "m", "operation": "train", "precision": "fp32", "images_per_s": 0}]')
    with pytest.raises(ValueError, match="bad throughput row"):
        table(path)
    path.write_text('[{"device": "cpu", "model": "m", "operation": "train", "images_per_s": 10}]')  # no precision
    with pytest.raises(ValueError, match="bad throughput row"):
        table(path)


def test_model_keys_name_the_build_options_in_order():
    assert model_key("fast", {"width": 16}) == "fast(width=16)" and model_key("resnet18") == "resnet18"
    assert model_key("mlp", {"width": 8, "size": 16}) == "mlp(size=16, width=8)"

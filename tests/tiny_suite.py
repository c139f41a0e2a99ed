"""A one-epoch, few-hundred-image version of the smoke preset: exercises every stage in seconds."""

from dataclasses import replace

from empirical.suite import CONSTRUCTED, PRESETS, Preset


def tiny() -> Preset:
    smoke = PRESETS["smoke"]()
    base = replace(smoke.standard, epochs=1, model_options={"size": 16, "width": 8})
    return replace(smoke, data_options={"n_train": 300, "n_test": 100}, standard=base,
                   robust=replace(smoke.robust, epochs=1, model_options={"size": 16, "width": 8}),
                   retrain={name: base for name in CONSTRUCTED}, inversion={"steps": 3, "step_size": 0.1, "start": "image"},
                   relabel={"eps": 0.5, "steps": 3, "step_size": 0.2}, transfer_models={"mlp": {"size": 16}},
                   evaluation=replace(smoke.evaluation, images=50, paper_steps=2, pgd_steps=2,
                                      sweep={"steps": (1, 2), "restarts": (1,)}))

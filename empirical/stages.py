"""The suite's stages by name, which stages each one reads, and what a training stage adds to the accuracy table.

:mod:`empirical.suite` runs them; :mod:`empirical.presets` holds their settings.
"""

from __future__ import annotations

CONSTRUCTED = ("D_R", "D_NR", "D_rand", "D_det")
DISCUSSION = ("leakage", "non_transferable", "distillation", "similarity")  # the published discussion's experiments
STAGES = ("standard", "robust", *CONSTRUCTED, "retrain", "evaluate", "transfer", *DISCUSSION, "report")
DEPENDS = {"standard": (), "robust": (), "D_R": ("robust",), "D_NR": ("standard",), "D_rand": ("standard",),
           "D_det": ("standard",), "retrain": CONSTRUCTED, "evaluate": ("standard", "robust", "retrain"),
           "transfer": ("standard", "D_det"), "leakage": ("standard", "robust", "D_rand", "D_det"),
           "non_transferable": ("standard", "D_rand", "D_det", "retrain"), "distillation": ("standard",),
           "similarity": ("robust", "D_R", "D_NR"),
           "report": ("standard", "robust", *CONSTRUCTED, "retrain", "evaluate", "transfer", *DISCUSSION)}


def with_dependencies(stages) -> set[str]:
    """The named stages and every stage they need, transitively; the report needs none (it reports what is done)."""
    wanted, todo = set(), list(stages)
    while todo:
        stage = todo.pop()
        if stage not in wanted:
            wanted.add(stage)
            todo.extend(d for d in DEPENDS[stage] if stage != "report")
    return wanted


def accuracy_row(result: dict) -> dict:
    """A training stage's entries in the accuracy table: how it trained, its clean accuracy and (D_det)
    how often it follows the relabelling."""
    return {key: result[key] for key in ("training", "clean", "follows_relabelling") if key in result}

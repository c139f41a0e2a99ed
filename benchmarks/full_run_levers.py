"""One lever at a time on a finished run: each constructed set's accuracy when one setting of its recipe changes.

A lever changes one part of the run's preset for one constructed set: its relabelling (D_rand,
D_det), its inversion (D_R, D_NR) or its retraining. The levers' suite works in ``--work``, where
every stage folder of the run (``--run``) is linked, so whatever the change leaves alone (the
source models, the unchanged set) is reused, never trained again, and only what it touches is built
(in chunks) and retrained (per epoch) into keyed folders of ``--work``: a lever stopped midway resumes
where it was, and a finished one is a cache hit. Nothing of the run's folder is written. Each lever
is a row beside its set's row in the run: the construction's statistics (targeted success, or the
relative representation distance), the retrained net's training accuracy per epoch, its accuracy
on the original test set (D_det: and how often it names y + 1, the shift its robust features
teach), the seconds of construction and retraining, and where it was measured (git commit, date, CPU,
the SHA-256 and clean accuracy of the source model the set was built from). These rows are README's
lever table.

Rows accumulate in the results file: a sitting measures the levers it is given and keeps the other
rows of the file. A fresh clone has none of the run's stage folders (git ignores them): then nothing
is linked, the lever's suite trains the source model again under the run's key, and the run's own
rows are kept from the file rather than measured again. They compare with the lever's only where
the source came out the same: bit for bit on the run's CPU and precision. A source whose clean
accuracy differs from the one the run recorded is named in a warning; then the levers compare with
``det-again`` and ``nr-again``, which change nothing: the run's recipe on the source at hand.

    PYTHONPATH=. python3 benchmarks/full_run_levers.py [--run results/suite-cifar10-cpu-full]
        [--work results-local/levers-cifar10-cpu-full] [--levers det-eps1.0 nr-inversion50 ...]

Rows go to benchmarks/results/full_run_levers-<preset>.json.
"""

from __future__ import annotations

from pathlib import Path

import _common

p = _common.parser(__doc__.split("\n\n")[0], threads=2)
p.add_argument("--run", type=Path, default=Path("results/suite-cifar10-cpu-full"), help="a finished run's folder")
p.add_argument("--work", type=Path, default=None,
               help="where the levers build and retrain (default: results-local/levers-<the run's preset>)")
p.add_argument("--levers", nargs="+", default=None, help="levers to measure (default: all; see LEVERS)")
args = p.parse_args()
_common.pin_threads(args.threads)

import json  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, is_dataclass, replace  # noqa: E402
from functools import partial  # noqa: E402

import torch  # noqa: E402

from empirical.data import Augment  # noqa: E402
from empirical.device import policy  # noqa: E402
from empirical.digests import model_sha256  # noqa: E402
from empirical.presets import Preset  # noqa: E402
from empirical.suite import PRESETS, Suite  # noqa: E402
from empirical.train import HISTORY  # noqa: E402

SHIFTS = Augment(padding=2, pad_mode="reflect")  # flips and 2-pixel shifts (KellerJordan's augmentation)
LEVERS = {  # name: (constructed set, the part of the preset changed, the change)
    # no change: the run's own recipe built again on the source at hand, the baseline where that
    # source differs from the run's (a fresh clone on another CPU); with the run's folders, a cache hit
    "det-again": ("D_det", "relabel", {}),
    "nr-again": ("D_NR", "inversion", {}),
    "det-eps1.0": ("D_det", "relabel", {"eps": 1.0}),
    "det-copies4": ("D_det", "relabel", {"augmented_copies": 4}),
    "det-eps1.0-copies4": ("D_det", "relabel", {"eps": 1.0, "augmented_copies": 4}),  # the two best, together
    "det-shifts-lr0.1-24ep": ("D_det", "retrain", {"augment": SHIFTS, "lr": 0.1, "epochs": 24}),
    "nr-crops": ("D_NR", "retrain", {"augment": Augment()}),
    "nr-lr0.1-24ep": ("D_NR", "retrain", {"lr": 0.1, "epochs": 24}),
    "nr-inversion50": ("D_NR", "inversion", {"steps": 50}),
}


def changed(preset: Preset, name: str, part: str, change: dict) -> Preset:
    """``preset`` with ``change`` applied to ``part`` ("relabel", "inversion" or "retrain": set ``name``'s training)."""
    if part == "retrain":
        return replace(preset, retrain={**preset.retrain, name: replace(preset.retrain[name], **change)})
    return replace(preset, **{part: {**getattr(preset, part), **change}})


def link_stages(run: Path, work: Path) -> None:
    """Every stage folder of ``run`` linked into ``work``: the lever's suite finds what it reuses by its key."""
    (work / "stages").mkdir(parents=True, exist_ok=True)
    for folder in sorted((run / "stages").glob("*")):
        link = work / "stages" / folder.name
        if folder.is_dir() and not link.exists():
            link.symlink_to(folder.resolve(), target_is_directory=True)


def measured(suite: Suite, name: str) -> dict:
    """Finished set ``name`` of ``suite`` retrained by the suite's recipe for it (trained unless finished)."""
    built, place = suite.stage_result(name), suite.retraining(name)
    with policy(precision=suite.precision):
        retrained = suite.train_and_measure(suite.preset.retrain[name], partial(suite.constructed, name), place,
                                            relabelled=name == "D_det")
    history = json.loads((place / "train" / HISTORY).read_text())["history"]
    machine = _common.machine_info(args.threads)
    return {"construction": {k: v for k, v in built.items() if k not in ("digest", "sittings", "seconds")},
            "construction_seconds": built["seconds"], "retraining_seconds": retrained["training_seconds"],
            "test_accuracy": retrained["clean"], "follows_relabelling": retrained.get("follows_relabelling"),
            "train_accuracy": [epoch["train_accuracy"] for epoch in history],
            "measured": {"git_commit": machine["git_commit"], "date": machine["date"], "cpu_model": machine["cpu_model"],
                         "source_sha256": model_sha256(suite.model(built["source"])),
                         "source_clean": suite.stage_result(built["source"])["clean"]}}


def earlier_rows(path: Path | None, preset: str) -> dict:
    """The rows of the results file at ``path`` when it holds ``preset``'s levers, else none; a row
    written before rows carried where they were measured gets the file's commit, date and CPU."""
    if path is None or not path.is_file():
        return {}
    document = json.loads(path.read_text())
    if document["results"]["preset"] != preset:
        return {}
    machine = document["machine"]
    where = {"git_commit": machine["git_commit"], "date": machine["date"], "cpu_model": machine["cpu_model"],
             "source_sha256": None, "source_clean": None}
    return {name: {"measured": where, **row} for name, row in document["results"]["rows"].items()}


def recorded_clean(run: Suite, source: str) -> float:
    """The clean accuracy ``run`` recorded for its source model ``source`` (in results.json: a fresh clone has it)."""
    accuracy = json.loads((run.out / "results.json").read_text())["accuracy"]
    return accuracy[{"standard": "D", "robust": "D (adversarial)"}[source]]["clean"]


def baseline(name: str) -> str:
    """The lever of set ``name`` that changes nothing: the run's recipe on the source at hand."""
    return next((lever for lever, (built, _, change) in LEVERS.items() if built == name and not change),
                f"a lever of {name} that changes nothing")


def reached(row: dict) -> float:
    """How far a row's construction got: the relabelling's targeted success, or the inversion's median relative distance."""
    built = row["construction"]
    return built["success_rate"] if "success_rate" in built else built["relative_distance"]["median"]


torch.set_num_threads(args.threads)
if args.quick:
    run_folder = Path("results-local/levers-quick/run")
    if not (run_folder / "results.json").is_file():
        Suite(PRESETS["tiny"](), run_folder, device="cpu", progress=False).run(["retrain"])
else:
    run_folder = args.run
try:
    run = Suite.reopen(run_folder, progress=False)
except (FileNotFoundError, ValueError) as error:
    p.error(f"--run {run_folder}: {error}")
if unknown := sorted(set(args.levers or ()) - set(LEVERS)):
    p.error(f"--levers {unknown} are not levers; choose from {sorted(LEVERS)}")
names = args.levers or list(LEVERS)
work = args.work or Path(f"results-local/levers-{run.preset.name}")
link_stages(run.out, work)
out = _common.results_path(f"full_run_levers-{run.preset.name}", args)
rows = earlier_rows(out, run.preset.name)
for set_name in dict.fromkeys(LEVERS[lever][0] for lever in names):
    if (run.out / "stages").is_dir():
        rows[f"{set_name}: the run"] = {"set": set_name, "part": None, "change": None, **measured(run, set_name)}
    else:
        kept = f"{set_name}: the run" in rows
        print(f"{set_name}: the run's stage folders are not in {run.out} (a fresh clone): its row is "
              + (f"kept from {out}" if kept else "left out"), flush=True)
for lever in names:
    set_name, part, change = LEVERS[lever]
    began = time.perf_counter()
    suite = Suite(changed(run.preset, set_name, part, change), work, precision=run.precision, progress=not args.quick)
    suite.run([set_name])  # the set (resumed from its chunks) and the source model it reads, linked: a cache hit
    rows[lever] = {"set": set_name, "part": part, "change": {k: asdict(v) if is_dataclass(v) else v for k, v in change.items()},
                   **measured(suite, set_name),
                   "seconds_this_sitting": time.perf_counter() - began}
    print(f"{lever}: test {rows[lever]['test_accuracy']:.1%}", flush=True)
    source, clean = suite.stage_result(set_name)["source"], rows[lever]["measured"]["source_clean"]
    recorded = recorded_clean(run, source)
    if clean != recorded:
        instead = "it is the baseline" if lever == baseline(set_name) else f"compare it with {baseline(set_name)}"
        print(f"warning: {lever}'s source model ({source}) scores {clean:.4%} clean, the run's {recorded:.4%}: "
              f"trained again elsewhere, it differs, so the row does not compare with the run's row ({instead})", flush=True)

order = [f"{set_name}: the run" for set_name in dict.fromkeys(v[0] for v in LEVERS.values())] + list(LEVERS)
rows = {name: rows[name] for name in order if name in rows}  # each set's run row, then the levers in LEVERS' order
print("\n" + _common.markdown_table(
    ["row", "set", "success or relative distance", "train acc. (last epoch)", "test acc.", "y + 1", "build s", "retrain s"],
    [[name, r["set"], reached(r), r["train_accuracy"][-1], r["test_accuracy"],
      "—" if r["follows_relabelling"] is None else r["follows_relabelling"], r["construction_seconds"], r["retraining_seconds"]]
     for name, r in rows.items()]))
_common.write_results(f"full_run_levers-{run.preset.name}", args,
                      {"run": str(run.out), "preset": run.preset.name, "precision": run.precision, "rows": rows})

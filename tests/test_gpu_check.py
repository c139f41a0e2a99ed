"""benchmarks/gpu_check.sh, the prepared GPU check, proven on the CPU: the same script at a tiny scale.

A GPU machine is lent rarely and by the minute; its first run must not die on a typo. The script
must leave at most 8 files in one flat folder, record every step's time and exit status, and stop
starting work when its budget runs out.
"""

import json
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


def check(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--device", "cpu", "--preset", "tiny", "--out", str(tmp_path / "out"),
                           "--work", str(tmp_path / "work"), *arguments], capture_output=True, text=True, timeout=600)


def test_the_gpu_check_runs_every_step_on_the_cpu_into_at_most_8_files(tmp_path):
    done = check(tmp_path, "--budget", "400")
    assert done.returncode == 0, done.stderr
    files = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert len(files) <= 8 and all((tmp_path / "out" / name).is_file() for name in files)
    assert {"check.json", "tests.log", "throughput.json", "results.json", "report.md", "table1.md"} <= set(files)
    record = json.loads((tmp_path / "out" / "check.json").read_text())
    assert [step["name"] for step in record["steps"]] == ["device", "tests", "throughput", "empirical run --preset tiny"]
    assert all(step["status"] == 0 and step["seconds"] >= 0 for step in record["steps"]), record["steps"]
    assert record["device"] == "cpu" and record["git"] and record["versions"]["torch"]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["skipped"] == {} and results["preset"] == "tiny" and "evaluate" in results["stages"]
    rows = json.loads((tmp_path / "out" / "throughput.json").read_text())["results"]["table"]
    assert {row["operation"] for row in rows} == {"train", "attack", "inversion", "forward"}


def test_the_gpu_check_stops_starting_steps_when_its_budget_is_spent(tmp_path):
    done = check(tmp_path, "--budget", "8")
    assert done.returncode == 0, done.stderr
    steps = json.loads((tmp_path / "out" / "check.json").read_text())["steps"]
    assert steps[-1] == {"name": "empirical run --preset tiny", "seconds": 0.0, "status": "skipped: no time left"}


@pytest.mark.parametrize("arguments, message", [(("--budget", "soon"), "--budget must be a whole number of seconds"),
                                                (("--data", "/nowhere.npz"), "--data /nowhere.npz does not exist"),
                                                (("--colour",), "unknown argument --colour")])
def test_the_gpu_check_refuses_bad_arguments_by_name(tmp_path, arguments, message):
    done = check(tmp_path, *arguments)
    assert done.returncode == 2 and message in done.stderr

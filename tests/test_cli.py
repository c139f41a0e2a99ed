"""The command line: ``gaussfeat check`` (``python -m gaussfeat``), via main(argv) and a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gaussfeat
import gaussfeat.cli
from gaussfeat.cli import main
from gaussfeat.theorems import Check, TheoremReport

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = ("--dim", "--eps", "--seed", "--samples", "--json")


def run_module(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "gaussfeat", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_module_help_lists_the_check_command():
    result = run_module("--help")
    assert result.returncode == 0, result.stderr
    assert "check" in result.stdout and "usage: gaussfeat" in result.stdout


def test_check_help_documents_every_option():
    result = run_module("check", "--help")
    assert result.returncode == 0, result.stderr
    for option in OPTIONS:
        assert option in result.stdout
    assert "Exit status 0 if every check passes, 1 otherwise" in " ".join(result.stdout.split())


def test_module_rejects_a_bad_value_with_exit_status_2():
    result = run_module("check", "--dim", "0")
    assert result.returncode == 2
    assert "--dim" in result.stderr and "got 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert gaussfeat.__version__ in capsys.readouterr().out


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_check_with_json_to_stdout_passes_and_prints_only_json(capsys):
    code = main(["check", "--dim", "4", "--samples", "5000", "--json", "-"])
    out = capsys.readouterr().out
    payload = json.loads(out)  # nothing but the JSON document on stdout
    assert code == 0
    assert payload["passed"] is True
    assert set(payload["instances"]) == {"figure4", "random-d4"}
    for reports in payload["instances"].values():
        assert [r["theorem"] for r in reports] == ["Theorem 1", "Theorem 2", "Theorem 3", "Section 3 in the model"]
        assert all(r["passed"] and all(c["passed"] for c in r["checks"]) for r in reports)
        assert reports[0]["parameters"]["samples"] == 5000
    assert payload["instances"]["random-d4"][0]["parameters"]["dim"] == 4
    assert payload["seconds"] > 0


def test_check_with_a_json_path_writes_the_file_and_prints_the_table(tmp_path, capsys):
    path = tmp_path / "report.json"
    code = main(["check", "--dim", "2", "--samples", "3000", "--eps", "0.25", "--seed", "3", "--json", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    payload = json.loads(path.read_text())
    assert payload["passed"] is True
    assert set(payload["instances"]) == {"figure4", "random-d2"}
    assert payload["instances"]["figure4"][1]["parameters"]["eps"] == 0.25
    assert payload["instances"]["figure4"][1]["parameters"]["seed"] == 3
    assert "== figure4 ==" in out and "== random-d2 ==" in out
    assert "ALL CHECKS PASSED" in out
    assert "FAIL" not in out.replace("ALL CHECKS PASSED", "")


BAD_VALUES = [
    (["--eps", "-1"], "--eps", "-1"),
    (["--eps", "0"], "--eps", "got 0"),
    (["--eps", "nan"], "--eps", "nan"),
    (["--dim", "0"], "--dim", "got 0"),
    (["--dim", "-3"], "--dim", "-3"),
    (["--dim", "2.5"], "--dim", "2.5"),
    (["--samples", "0"], "--samples", "got 0"),
    (["--samples", "many"], "--samples", "many"),
    (["--seed", "x1"], "--seed", "x1"),
]


@pytest.mark.parametrize(("args", "option", "named"), BAD_VALUES, ids=[" ".join(a) for a, _, _ in BAD_VALUES])
def test_bad_values_exit_2_naming_the_option_and_value(args, option, named, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["check", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert option in err and named in err


def test_too_few_samples_for_the_dimension_returns_2_naming_the_value(capsys):
    code = main(["check", "--samples", "2"])  # figure4 is 2-D: the MLE needs n > d
    assert code == 2
    err = capsys.readouterr().err
    assert "--samples" in err and "got 2" in err


def test_an_infinite_radius_returns_2_naming_it(capsys):
    code = main(["check", "--dim", "2", "--samples", "500", "--eps", "inf"])
    assert code == 2
    assert "inf" in capsys.readouterr().err


def test_a_negative_seed_is_rejected_naming_it(capsys):
    try:
        code = main(["check", "--dim", "2", "--samples", "500", "--seed", "-1"])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    assert "-1" in capsys.readouterr().err


def _report(passed: bool) -> TheoremReport:
    check = Check(claim="a deliberately planted claim", value=1.0, reference=2.0, tolerance=0.1, passed=passed)
    return TheoremReport(theorem="Theorem 9", statement="planted", parameters={}, closed_form={"gap": 1.5}, checks=(check,))


@pytest.fixture
def planted(monkeypatch):
    def plant(passed: bool):
        calls = []

        def fake_check_all(sigma_star, eps, **kwargs):
            calls.append((sigma_star, eps, kwargs))
            return (_report(True), _report(passed), _report(True))

        monkeypatch.setattr(gaussfeat.cli, "check_all", fake_check_all)
        return calls

    return plant


def test_a_failing_check_makes_main_return_1_and_says_so(planted, capsys):
    calls = planted(False)
    code = main(["check", "--dim", "3", "--eps", "0.7", "--seed", "5", "--samples", "100"])
    out = capsys.readouterr().out
    assert code == 1
    assert "SOME CHECKS FAILED" in out and "Theorem 9: FAIL" in out and "a deliberately planted claim" in out
    assert len(calls) == 2  # both instances are checked
    assert all(eps == 0.7 and kwargs["samples"] == 100 and kwargs["seed"] == 5 for _, eps, kwargs in calls)
    assert [len(sigma) for sigma, _, _ in calls] == [2, 3]


def test_a_failing_check_is_reported_as_failed_in_json(planted, capsys):
    planted(False)
    code = main(["check", "--dim", "3", "--samples", "100", "--json"])  # no PATH: stdout
    payload = json.loads(capsys.readouterr().out)
    assert code == 1
    assert payload["passed"] is False
    assert payload["instances"]["figure4"][1]["passed"] is False
    assert payload["instances"]["figure4"][0]["passed"] is True


def test_all_planted_checks_passing_returns_0(planted, capsys):
    planted(True)
    assert main(["check", "--dim", "3", "--samples", "100"]) == 0
    assert "ALL CHECKS PASSED" in capsys.readouterr().out

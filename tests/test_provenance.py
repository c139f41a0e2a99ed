"""Provenance: which code produced a result."""

import subprocess

from gaussfeat.provenance import git_commit


def _git(repo, *arguments):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *arguments], cwd=repo, check=True, capture_output=True)


def test_a_commit_is_dirty_by_its_code_not_by_the_results_a_run_writes(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "results.json").write_text("{}\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "a run")
    head = git_commit(tmp_path)
    assert len(head) == 40 and not head.endswith("-dirty")
    (tmp_path / "results" / "results.json").write_text('{"resumed": true}\n')  # the run's own record, rewritten
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == f"{head}-dirty"
    assert git_commit(tmp_path / "results") == f"{head}-dirty"  # asked from inside results/: the same checkout


def test_outside_git_there_is_no_commit(tmp_path):
    assert git_commit(tmp_path) is None

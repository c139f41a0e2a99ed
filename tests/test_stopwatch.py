"""empirical.stopwatch: a stage's time is the sum of its sittings, also when one ended by SIGKILL."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from empirical.stopwatch import Stopwatch


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_block_that_continues_a_sitting_adds_its_seconds_but_no_sitting(tmp_path):
    clock, path = FakeClock(), tmp_path / "stopwatch.json"
    for seconds, continues in ((3.0, True), (4.0, True), (5.0, False)):  # the first block always begins a sitting
        with Stopwatch(path, clock=clock, continues=continues):
            clock.now += seconds
    assert json.loads(path.read_text()) == {"seconds": 12.0, "sittings": 2}


def test_the_seconds_of_a_resumed_piece_of_work_add_up_over_its_sittings(tmp_path):
    clock, path = FakeClock(), tmp_path / "stopwatch.json"
    with Stopwatch(path, clock=clock) as watch:
        clock.now += 7.0
        assert watch.seconds == 7.0 and watch.sittings == 1
    clock.now += 1000.0  # between the sittings: not counted
    with Stopwatch(path, clock=clock) as watch:
        clock.now += 5.0
    clock.now += 50.0
    assert watch.seconds == 12.0 and watch.sittings == 2
    assert json.loads(path.read_text()) == {"seconds": 12.0, "sittings": 2}


def test_a_sitting_ended_by_sigkill_keeps_the_time_counted_up_to_its_last_tick(tmp_path):
    path = tmp_path / "stopwatch.json"
    killed = textwrap.dedent(f"""
        import os, signal, time
        from empirical.stopwatch import Stopwatch
        with Stopwatch({str(path)!r}, every=0.02):
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    died = subprocess.run([sys.executable, "-c", killed], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[1])
    assert died.returncode == -9, died.stderr
    first = json.loads(path.read_text())
    assert first["sittings"] == 1 and first["seconds"] >= 0.4
    with Stopwatch(path) as watch:
        pass
    assert watch.sittings == 2 and watch.seconds >= first["seconds"]


@pytest.mark.parametrize("every", [0, -1.0, float("nan"), True, "10"])
def test_a_stopwatch_refuses_a_tick_that_is_not_a_positive_number(tmp_path, every):
    with pytest.raises(ValueError, match=f"every must be a positive number of seconds, got {every!r}"):
        Stopwatch(tmp_path / "stopwatch.json", every=every)

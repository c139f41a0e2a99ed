"""The wall time of work that is killed and resumed, summed over every sitting that ran it.

A long stage runs over several sittings: killed (SIGKILL, a session's end) and rerun by the same
command, which resumes it from its checkpoints. Its time is the sum of the sittings, not the last
one's. :class:`Stopwatch` keeps that sum in a JSON file beside the work, rewritten every
:data:`EVERY` seconds by a daemon thread, so a kill loses at most that much of the count. Work
redone after a kill (a chunk or the batches since the last checkpoint) is counted again: it is
time the run spent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .distributed import is_main
from .files import write_json

EVERY = 10.0  # seconds between the file's updates while the work runs


class Stopwatch:
    """``with Stopwatch(path) as watch: ...``: ``watch.seconds`` is the time spent inside this block
    plus that of every earlier block on the same ``path``; ``sittings`` counts them, this one included,
    except a block that ``continues`` the sitting of the one before it (the same process came back to
    the work)."""

    def __init__(self, path: str | Path, *, every: float | None = None, continues: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        every = EVERY if every is None else every
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not every > 0:
            raise ValueError(f"every must be a positive number of seconds, got {every!r}")
        self.path, self.every, self.clock, self.continues = Path(path), float(every), clock, bool(continues)
        self.sittings, self._before, self._started, self._stopped = 0, 0.0, None, None
        self._stop, self._thread = threading.Event(), None

    @property
    def seconds(self) -> float:
        if self._started is None:
            return self._before
        return self._before + ((self._stopped if self._stopped is not None else self.clock()) - self._started)

    def __enter__(self) -> Stopwatch:
        if self._started is not None:
            raise RuntimeError(f"a Stopwatch times one sitting; make a new one on {self.path} for the next")
        if self.path.is_file():
            recorded = json.loads(self.path.read_text())
            self._before, self.sittings = float(recorded["seconds"]), int(recorded["sittings"])
        self.sittings += 0 if self.continues and self.sittings else 1
        self._started = self.clock()
        self._write()
        self._thread = threading.Thread(target=self._tick, daemon=True, name=f"stopwatch {self.path}")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._stopped = self.clock()
        self._write()

    def _tick(self) -> None:
        while not self._stop.wait(self.every):
            self._write()

    def _write(self) -> None:
        if is_main():
            write_json(self.path, {"seconds": self.seconds, "sittings": self.sittings})

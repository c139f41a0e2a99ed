"""A suite run for tests/test_chunks.py, in its own process: `python killable_run.py OUT STAGE`.

Constructions save a chunk per batch (CHUNK_BATCHES = 1), so the tiny preset's 300 images make 3 chunks;
the process kills itself with SIGKILL right after the second chunk is saved. Its stopwatch ticks every 10 ms,
so the time it spent is on record when it dies.
"""

import os
import signal
import sys
from pathlib import Path

import empirical.chunks as chunks
import empirical.construct as construct
import empirical.stopwatch as stopwatch
from empirical.cli import main

out, stage = Path(sys.argv[1]), sys.argv[2]
construct.CHUNK_BATCHES = 1
stopwatch.EVERY = 0.01
save = chunks.save_checkpoint


def saving(path, payload):
    save(path, payload)
    if path.name == "chunk-00001.pt":
        os.kill(os.getpid(), signal.SIGKILL)


chunks.save_checkpoint = saving
sys.exit(main(["run", "--preset", "tiny", "--stages", stage, "--out", str(out), "--quiet", "--device", "cpu"]))

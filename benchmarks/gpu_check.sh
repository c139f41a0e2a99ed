#!/usr/bin/env bash
# The project's prepared GPU check: ONE command, everything it measures in one folder of at most 8 files.
#
#   bash benchmarks/gpu_check.sh [--device cuda] [--preset cifar10] [--out DIR] [--budget SECONDS] [--data NPZ]
#
# Steps, in priority order, each with its own time limit inside --budget (default 540 s: a 10-minute
# device job with start-up and the return of the files left over):
#   1. device and versions (nvidia-smi, python, torch, CUDA, git commit)             -> check.json
#   2. the gpu-marked tests                                                           -> tests.log
#   3. throughput of the hot paths as the library runs them (train / attack /
#      inversion / forward images per second, TFLOP/s against the bf16 peak)          -> throughput.json
#   4. empirical run --preset PRESET --deadline (the time left): start a stage only
#      while its estimate fits                                                         -> results.json report.md
#                                                                                        table1.md suite.log figure2a.png
#   5. each step's wall seconds and exit status                                        -> check.json
# The suite's stage caches go to --work (default results-local/gpu-check-work, git-ignored), not to --out.
# --data: the CIFAR-10 JPEG npz of a cifar10 preset (default: .gpu/cifar10_jpeg_q75.npz when present, else the loader's).
# Before the call: bash benchmarks/gpu_pack.sh (the data and pyautoattack into .gpu/), then carry .gpu.
# On the CPU the same script proves its control flow at a tiny scale: --device cpu --preset tiny (tests/test_gpu_check.py).
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=cuda PRESET=cifar10 OUT_DIR="${OUT:-results-local/gpu-check}" BUDGET=540 DATA="" WORK=results-local/gpu-check-work
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --preset) PRESET="$2"; shift 2 ;;
        --out) OUT_DIR="$2"; shift 2 ;;
        --budget) BUDGET="$2"; shift 2 ;;
        --data) DATA="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$BUDGET" in ''|*[!0-9]*) echo "gpu_check.sh: --budget must be a whole number of seconds, got '$BUDGET'" >&2; exit 2 ;; esac
case "$PRESET" in  # the packed CIFAR-10 copy, for the presets that read CIFAR-10
    cifar10*) if [ -z "$DATA" ] && [ -f .gpu/cifar10_jpeg_q75.npz ]; then DATA=.gpu/cifar10_jpeg_q75.npz; fi ;;
esac
if [ -n "$DATA" ] && [ ! -f "$DATA" ]; then echo "gpu_check.sh: --data $DATA does not exist" >&2; exit 2; fi
mkdir -p "$OUT_DIR" "$WORK"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# pyautoattack, where the machine lacks it, from the modules benchmarks/gpu_pack.sh put in .gpu/site
if ! python3 -c "import pyautoattack" 2> /dev/null && [ -d .gpu/site ]; then export PYTHONPATH="$PYTHONPATH:$PWD/.gpu/site"; fi
BEGAN=$(date +%s)
STEPS="$WORK/steps.tsv"
: > "$STEPS"

left() { echo $(( BUDGET - ($(date +%s) - BEGAN) )); }

# step NAME LIMIT COMMAND...: run with a time limit (never past the budget), log its seconds and exit status
step() {
    local name="$1" limit="$2"; shift 2
    local remaining; remaining=$(left)
    [ "$limit" -gt "$remaining" ] && limit=$remaining
    if [ "$limit" -le 5 ]; then printf '%s\t0\tskipped: no time left\n' "$name" >> "$STEPS"; return; fi
    local start; start=$(date +%s%N)
    echo "== $name (limit ${limit} s)"
    timeout --signal=TERM --kill-after=15 "$limit" "$@"
    local status=$?
    local ms=$(( ($(date +%s%N) - start) / 1000000 ))
    printf '%s\t%d.%03d\t%s\n' "$name" $(( ms / 1000 )) $(( ms % 1000 )) "$status" >> "$STEPS"
}

# 1. device and versions
step device 60 bash -c 'nvidia-smi > "$0/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" > "$0/nvidia-smi.txt"' "$WORK"

# 2. the gpu-marked tests (skipped without CUDA)
step tests 120 bash -c 'python3 -m pytest -m gpu -q -p no:cacheprovider tests > "$0/tests.log" 2>&1
status=$?; [ $status -eq 5 ] && status=0; exit $status' "$OUT_DIR"  # 5: none collected

# 3. throughput of the hot paths
if [ "$DEVICE" = cpu ]; then SCALE=(--quick --models fast16); else SCALE=(--models fast64 resnet18 --images 25000 --steps 5); fi
step throughput 150 python3 benchmarks/throughput.py --device "$DEVICE" "${SCALE[@]}" --out "$OUT_DIR/throughput.json"

# 4. the preset, with a deadline that leaves 30 s for the last step
RUN="$WORK/run-$PRESET"
DEADLINE=$(( $(left) - 60 ))
[ "$DEADLINE" -lt 0 ] && DEADLINE=0
step "empirical run --preset $PRESET" $(( $(left) - 30 )) python3 -m empirical run --preset "$PRESET" --out "$RUN" \
    --device "$DEVICE" --quiet --deadline "$DEADLINE" ${DATA:+--data "$DATA"}
for file in results.json report.md table1.md suite.log figure2a.png; do
    [ -f "$RUN/$file" ] && cp "$RUN/$file" "$OUT_DIR/"
done

# 5. check.json: device, versions, git commit, each step's seconds and status
python3 - "$OUT_DIR/check.json" "$STEPS" "$WORK/nvidia-smi.txt" "$DEVICE" "$PRESET" "$BUDGET" <<'EOF'
import json, sys, time
from pathlib import Path

import torch

from empirical.provenance import git_commit, versions
from empirical.throughput import device_kind

path, steps, smi, device, preset, budget = sys.argv[1:]
rows = [line.split("\t") for line in Path(steps).read_text().splitlines() if line]
record = {
    "device": device_kind(device) if device != "cuda" or torch.cuda.is_available() else "cuda (not available)",
    "nvidia_smi": Path(smi).read_text() if Path(smi).is_file() else None,
    "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    "versions": versions(), "git": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    "preset": preset, "budget_seconds": int(budget),
    "steps": [{"name": name, "seconds": float(seconds), "status": status if not status.isdigit() else int(status)}
              for name, seconds, status in rows],
}
Path(path).write_text(json.dumps(record, indent=1) + "\n")
print(json.dumps(record["steps"], indent=1))
EOF
echo "gpu_check: $(ls "$OUT_DIR" | wc -l) files in $OUT_DIR after $(( $(date +%s) - BEGAN )) s"

#!/usr/bin/env bash
# Pack into .gpu/ (git-ignored) what the GPU machine lacks, so that the device call can carry it:
# the CIFAR-10 JPEG npz (18 MB) and pyautoattack's modules (the evaluation of record; the machine's
# image does not have the package, and its wheel is 42 MB of example checkpoints). Run here, before
# the call; then: run `bash benchmarks/gpu_check.sh` carrying `.gpu` (benchmarks/gpu_check.sh finds both).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/data/cifar10/jpeg_q75/cifar10_jpeg_q75.npz}"
[ -f "$DATA" ] || { echo "gpu_pack.sh: no CIFAR-10 JPEG npz at $DATA (give its path)" >&2; exit 2; }
rm -rf .gpu/site && mkdir -p .gpu/site/pyautoattack
cp "$DATA" .gpu/cifar10_jpeg_q75.npz
SOURCE=$(python3 -c "import os, pyautoattack; print(os.path.dirname(pyautoattack.__file__))")
cp "$SOURCE"/*.py .gpu/site/pyautoattack/
du -sh .gpu

#!/usr/bin/env bash
# Run pytest RUNS times in a row (default 5) beside a CPU-heavy process, stopping at the first
# failure: a test that passes only when the scheduler is kind fails here first (issue 12).
#   RUNS=5 scripts/beside_cpu_hog.sh tests/reliability/test_chaos.py tests/engine/test_lifecycle.py ...
# The hog multiplies 1500x1500 matrices in a loop: BLAS threads on every core, all the time.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
.venv/bin/python -c 'import numpy as np
a = np.random.rand(1500, 1500)
while True:
    a = (a @ a) / 1500.0' &
hog=$!
trap 'kill $hog 2>/dev/null' EXIT
for run in $(seq "$runs"); do
  started=$(date +%s)
  if ! .venv/bin/pytest -q -p no:cacheprovider "$@"; then
    echo "run $run of $runs FAILED beside the CPU hog"
    exit 1
  fi
  echo "run $run of $runs passed beside the CPU hog in $(( $(date +%s) - started )) s"
done

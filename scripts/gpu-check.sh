#!/usr/bin/env bash
# One-shot GPU check (issue #14): the CUDA tests, then the GPU benchmark, on one NVIDIA GPU.
#
# Run from anywhere on the GPU machine; it works in the repository root:
#   scripts/gpu-check.sh                     # pytest -m cuda tests/test_cuda.py + gpu.py --quick
#   BENCH_ARGS= scripts/gpu-check.sh         # the full benchmark (< 8 min) instead of --quick
#   SKIP_TESTS=1 scripts/gpu-check.sh        # benchmark only (SKIP_BENCH=1: tests only)
#
# Python: if $PYTHON (default python3) already has a PyTorch that sees a CUDA GPU, it is used as
# it is (machines without network access): the package is installed with
# `pip install -e . --no-deps` or, where that cannot build offline, put on PYTHONPATH.
# Otherwise a virtual environment ($VENV, default /tmp/selfdenoise-gpu-venv) gets the package
# with the PyTorch of the package's version range (the CUDA build on Linux) plus pytest.
# Without an NVIDIA GPU (nvidia-smi fails) it stops at once with status 2.
#
# Outputs go to $OUT (default benchmarks/_work/gpu-check): nvidia-smi.txt, install.log,
# cuda-tests.log, gpu-bench.log, gpu.json (the results) and benchmarks.md (the page with the
# new "gpu" section). Render them into the repository later, on any machine, with
#   python benchmarks/gpu.py --from-json path/to/gpu.json
# Set12 is read from shared/data/set12 in the checkout (copy ../shared/data/set12 there first).
# BUDGET (default 570) is the whole run's limit in seconds: the tests get at most 240 of it and
# the benchmark what is left, so one device call of 600 s holds everything.
# Exit status: 0 when the tests and the benchmark passed, 1 otherwise, 2 without a CUDA GPU.
set -uo pipefail
BUDGET=${BUDGET:-570}
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/benchmarks/_work/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}

cuda_torch() {
    "$1" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null
}

if ! nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1; then
    echo "error: no NVIDIA GPU here (nvidia-smi failed); nothing to check."
    exit 2
fi
if cuda_torch "$PYTHON"; then
    echo "using the CUDA PyTorch of $PYTHON"
    if ! "$PYTHON" -m pip install -e . --no-deps --no-build-isolation >"$OUT/install.log" 2>&1; then
        echo "pip install -e . --no-deps did not work here (install.log); using PYTHONPATH=src"
    fi
else
    VENV=${VENV:-${TMPDIR:-/tmp}/selfdenoise-gpu-venv}
    echo "no CUDA PyTorch in $PYTHON: installing into $VENV"
    "$PYTHON" -m venv "$VENV" &&
        "$VENV/bin/python" -m pip install -e . pytest pytest-timeout >"$OUT/install.log" 2>&1
    PYTHON="$VENV/bin/python"
    if ! cuda_torch "$PYTHON"; then
        echo "error: PyTorch sees no CUDA GPU here (see $OUT/install.log and nvidia-smi.txt)."
        exit 2
    fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -c "import numpy, scipy, skimage, safetensors, tifffile, selfdenoise" ||
    { echo "error: a runtime dependency is missing (see above)."; exit 1; }
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))"

status=0
if [ -z "${SKIP_TESTS:-}" ]; then
    timeout 240 "$PYTHON" -m pytest -m cuda tests/test_cuda.py -q -rs --durations=12 -p no:cacheprovider \
        2>&1 | tee "$OUT/cuda-tests.log" || status=1
fi
if [ -z "${SKIP_BENCH:-}" ]; then
    left=$((BUDGET - SECONDS - 10))
    echo "benchmark: ${left} s left of the ${BUDGET} s budget"
    # shellcheck disable=SC2086  # BENCH_ARGS holds several words (or none)
    timeout "$left" "$PYTHON" benchmarks/gpu.py ${BENCH_ARGS---quick} --out "$OUT/gpu.json" \
        2>&1 | tee "$OUT/gpu-bench.log" || status=1
    cp docs/benchmarks.md "$OUT/benchmarks.md" 2>/dev/null || true
fi
echo "gpu-check: status $status; outputs in $OUT"
exit $status

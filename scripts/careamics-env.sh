#!/usr/bin/env bash
# Create the separate CAREamics environment the benchmarks compare against
# (benchmarks/_work/careamics-venv). CAREamics 0.3.5 pins a torchvision that has no build for
# the CPU torch used here, and only its LVAE models need it, so CAREamics is installed without
# dependencies and its other runtime dependencies are installed explicitly; the benchmark
# scripts register an empty torchvision stand-in before importing it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${CAREAMICS_VENV:-benchmarks/_work/careamics-venv}"
python3 -m venv "$VENV"
if command -v nvidia-smi > /dev/null 2>&1; then
  TORCH="torch>=2.2,<3"
else
  TORCH="torch==${SELFDENOISE_CPU_TORCH:-2.13.0}"
fi
"$VENV/bin/pip" install -q "$TORCH"
"$VENV/bin/pip" install -q --no-deps "careamics==0.3.5"
"$VENV/bin/pip" install -q bioimageio-core lightning matplotlib microssim numpy pillow psutil \
  "pydantic>=2.11,<=2.14.1" pyyaml scikit-image tifffile torchmetrics zarr
echo "CAREamics environment ready: $VENV"

#!/usr/bin/env bash
# Headless install check (CI): a fresh virtual environment with napari-selfdenoise and no
# extras must not contain napari or Qt, and its `selfdenoise` command must train and predict.
# Reuses the CPU-only torch wheel like scripts/setup.sh; about a minute once pip has a cache.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${HEADLESS_VENV:-.venv-headless}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.installed"
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither" >&2); }

if ! { [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ]; }; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  TORCH_SPEC=()
  if ! command -v nvidia-smi >/dev/null 2>&1 && [ "$(uname -s)" = "Linux" ]; then
    TORCH_SPEC=("torch==${SELFDENOISE_CPU_TORCH:-2.13.0}")
  fi
  quiet_pip "$VENV/bin/python" -m pip install -q --no-compile "${TORCH_SPEC[@]}" -e .
  touch "$STAMP"
fi

for module in napari magicgui npe2 qtpy PyQt6 PySide6; do
  if "$VENV/bin/python" -c "import $module" 2>/dev/null; then
    echo "headless-check: '$module' is importable in a plain install; it belongs in an extra" >&2
    exit 1
  fi
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$VENV/bin/python" - "$WORK/noisy.tif" <<'PY'
import sys

from selfdenoise.io import write_image
from selfdenoise.samples import noisy_2d

noisy, _ = noisy_2d(seed=0)
write_image(sys.argv[1], noisy[:128, :128], axes="YX")
assert "napari" not in sys.modules and "qtpy" not in sys.modules
PY
"$VENV/bin/selfdenoise" train "$WORK/noisy.tif" --out "$WORK/model.safetensors" \
  --steps 6 --steps-per-epoch 3 --patch 64,64 --batch 2 --device cpu --quiet
"$VENV/bin/selfdenoise" predict "$WORK/model.safetensors" "$WORK/noisy.tif" \
  --out "$WORK/denoised.tif" --device cpu
"$VENV/bin/python" - "$WORK/denoised.tif" <<'PY'
import sys

import numpy as np

from selfdenoise.io import read_image

denoised = read_image(sys.argv[1])
assert denoised.data.shape == (128, 128) and np.isfinite(denoised.data).all()
print("headless-check: train and predict work without napari or Qt")
PY

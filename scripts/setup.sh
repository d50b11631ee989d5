#!/usr/bin/env bash
# Create .venv and install napari-selfdenoise with the extras given as $1 (default: testing).
# On a machine without an NVIDIA GPU the CPU-only torch wheel is installed first, so pip
# does not pull a multi-GB CUDA build; with a GPU, pip picks torch from the package's range.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-testing}"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.installed-$EXTRAS"
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip 2> >(grep -v "is ignored: it is neither" >&2)
TORCH_SPEC=()
if ! command -v nvidia-smi >/dev/null 2>&1 && [ "$(uname -s)" = "Linux" ]; then
  TORCH_SPEC=("torch==${SELFDENOISE_CPU_TORCH:-2.13.0}")
fi
"$VENV/bin/python" -m pip install -q "${TORCH_SPEC[@]}" -e ".[$EXTRAS]" 2> >(grep -v "is ignored: it is neither" >&2)
touch "$STAMP"

#!/usr/bin/env bash
# Prints the nvcc to build with: $NVCC, else an nvcc on PATH (the GPU machine), else the pinned PyPI
# toolchain's (tools/cuda/toolchain.sh, installed on first use).
set -euo pipefail
if [[ -n "${NVCC:-}" ]]; then
  echo "$NVCC"
elif command -v nvcc >/dev/null 2>&1; then
  command -v nvcc
else
  echo "$(bash "$(dirname "${BASH_SOURCE[0]}")/toolchain.sh")/bin/nvcc"
fi

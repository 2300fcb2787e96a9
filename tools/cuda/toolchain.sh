#!/usr/bin/env bash
# Installs the CUDA 13.0 compiler and headers from PyPI wheels (no system CUDA needed) into the tools
# cache, once, and prints the prefix (the folder holding bin/nvcc, include/ and lib/).
# Pinned: the versions verified to build sm_90a/sm_80 code with Debian's gcc 12 (docs/adr/0002-cuda-backend.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/wheels.sh"
WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
  nvidia-cublas==13.0.2.14
)
NEEDED=site/nvidia/cu13/bin/nvcc cuda_wheels cuda-13.0 "${WHEELS[@]}"  # about 800 MB
prefix="$CUDA_WHEELS_DIR/site/nvidia/cu13"
# nvcc.profile points the linker at lib64; the wheels ship lib/.
[[ -e "$prefix/lib64" ]] || ln -s lib "$prefix/lib64"
echo "$prefix"

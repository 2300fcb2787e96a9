#!/usr/bin/env bash
# Installs the CUDA 13.0 compiler and headers from PyPI wheels (no system CUDA needed) into the tools
# cache, once, and prints the prefix (the folder holding bin/nvcc, include/ and lib/).
# Pinned: the versions verified to build sm_90a/sm_80 code with Debian's gcc 12 (docs/adr/0002-cuda-backend.md).
set -euo pipefail
CACHE="${JAMBA_TOOLS_CACHE:-$HOME/.cache/jamba-serving}"
WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
  nvidia-cublas==13.0.2.14
)
key="$(printf '%s\n' "${WHEELS[@]}" | sha256sum | cut -c1-12)"
dest="$CACHE/cuda-13.0-$key"
prefix="$dest/site/nvidia/cu13"
if [[ ! -x "$prefix/bin/nvcc" ]]; then
  command -v python3 >/dev/null || { echo "cuda toolchain: python3 with pip is needed to install the CUDA wheels" >&2; exit 1; }
  echo "cuda toolchain: installing ${WHEELS[*]} into $dest (about 800 MB, once)" >&2
  rm -rf "$dest.partial"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$dest.partial/site" "${WHEELS[@]}" >&2
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
fi
# nvcc.profile points the linker at lib64; the wheels ship lib/.
[[ -e "$prefix/lib64" ]] || ln -s lib "$prefix/lib64"
echo "$prefix"

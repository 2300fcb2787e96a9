#!/usr/bin/env bash
# Compiles the GPU microbenchmarks (tools/gpu/*_microbench.cu) for sm_90a with the same nvcc as the native
# library, so that CI catches one that no longer builds against the kernels it includes. Cached by source
# hash outside the clone. On the GPU machine they are built and run as their headers say.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
nvcc="$(bash "$ROOT/tools/cuda/nvcc.sh")"
hash="$( (cat "$ROOT"/tools/gpu/*.cu "$ROOT"/tools/gpu/*.cuh "$ROOT"/runtime/native/include/*.h "$ROOT"/runtime/native/src/*; "$nvcc" --version) | sha256sum | cut -c1-16)"
stamp="${JAMBA_TOOLS_CACHE:-$HOME/.cache/jamba-serving}/microbenchmarks/$hash"
if [[ -f "$stamp" ]]; then
  echo "microbenchmarks: built before from the same sources" >&2
  exit 0
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for src in "$ROOT"/tools/gpu/*_microbench.cu; do
  # Compiled, not linked: gemm_microbench links cuBLASLt, which only the GPU machine has whole.
  "$nvcc" -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -I"$ROOT/runtime/native/include" -c "$src" -o "$out/$(basename "${src%.cu}").o"
  echo "microbenchmarks: compiled $(basename "$src")" >&2
done
mkdir -p "$(dirname "$stamp")" && touch "$stamp"

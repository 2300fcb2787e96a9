#!/usr/bin/env bash
# Builds runtime/native/build/libjamba_cuda.so for Hopper (sm_90a) and Ampere (sm_80). Uses $NVCC or
# an nvcc on PATH when there is one (the GPU machine), else the pinned PyPI toolchain
# (tools/cuda/toolchain.sh). cudart links statically; cuBLASLt 13 is found on the loader path at run time.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$HERE/build"
mkdir -p "$OUT"
nvcc="$(bash "$ROOT/tools/cuda/nvcc.sh")"
cuda_root="$(cd "$(dirname "$nvcc")/.." && pwd)"
libdirs=()
for d in "$cuda_root/lib" "$cuda_root/lib64" "$cuda_root/targets/x86_64-linux/lib"; do [[ -d "$d" ]] && libdirs+=("-L$d"); done
archs="${JAMBA_CUDA_ARCHS:--gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_80,code=sm_80}"
srcs=("$HERE"/src/*.cu)
hash="$( (cat "$HERE"/include/*.h "$HERE"/src/*; echo "$archs"; "$nvcc" --version) | sha256sum | cut -c1-16)"
if [[ -f "$OUT/.hash" && "$(cat "$OUT/.hash")" == "$hash" && -f "$OUT/libjamba_cuda.so" ]]; then
  echo "native: libjamba_cuda.so is up to date" >&2
  exit 0
fi
# Built before from the same sources (another clone, CI): reuse it.
CACHE="${JAMBA_TOOLS_CACHE:-$HOME/.cache/jamba-serving}/native/$hash"
if [[ -f "$CACHE/libjamba_cuda.so" ]]; then
  cp "$CACHE/libjamba_cuda.so" "$OUT/libjamba_cuda.so"
  echo "$hash" >"$OUT/.hash"
  echo "native: libjamba_cuda.so from the cache ($CACHE)" >&2
  exit 0
fi
echo "native: compiling ${#srcs[@]} CUDA sources with $nvcc" >&2
objs=()
pids=()
for src in "${srcs[@]}"; do
  obj="$OUT/$(basename "${src%.cu}").o"
  objs+=("$obj")
  # shellcheck disable=SC2086
  "$nvcc" -std=c++17 -O3 -Xcompiler -fPIC -I"$HERE/include" $archs --expt-relaxed-constexpr -Xptxas -warn-spills -c "$src" -o "$obj" &
  pids+=($!)
  # Two compilations at a time (CI has 2 cores).
  if (( ${#pids[@]} >= ${JAMBA_BUILD_JOBS:-2} )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
"$nvcc" -shared "${objs[@]}" -o "$OUT/libjamba_cuda.so" "${libdirs[@]}" -l:libcublasLt.so.13
echo "$hash" >"$OUT/.hash"
mkdir -p "$CACHE" && cp "$OUT/libjamba_cuda.so" "$CACHE/libjamba_cuda.so.partial" && mv "$CACHE/libjamba_cuda.so.partial" "$CACHE/libjamba_cuda.so"
echo "native: built $OUT/libjamba_cuda.so" >&2

#!/usr/bin/env bash
# Runs on the GPU machine, in a copy of the working tree carrying .gpu, dist and the native library
# (tools/gpu/bundle.sh makes them): unpacks Node, then runs the parts asked for, each logging to $OUT.
#   bash tools/gpu/run.sh check fixtures|conformance|collectives | ops moe,attention,mamba [bench flags...] | model [bench flags...] | load | download [flags...]
#                         | peers attention,mamba,scan,moe [peer_moe.py flags...] | build
set -uo pipefail
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT" /tmp/jamba-node
# The peers' kernels on this card, for ratios on one card (tools/gpu/fetch-peers.sh puts their sources in
# .gpu/peer): PyTorch SDPA's cuDNN attention, mamba-ssm's Triton decode update and CUDA prefill scan, vLLM's
# fused_moe. Python and nvcc only: no Node, no native library.
peers() {
  local list="${1:-attention,mamba,scan,moe}" ssm=""
  shift || true
  if [[ "$list" == *attention* ]]; then python3 tools/gpu/peer_attention.py --json "$OUT/peer-attention.json" 2>&1 | tee "$OUT/peer-attention.log"; fi
  if [[ "$list" == *mamba* || "$list" == *scan* ]]; then
    mkdir -p /tmp/jamba-peer && tar -C /tmp/jamba-peer -xzf .gpu/peer/mamba_ssm.tar.gz && ssm="$(ls -d /tmp/jamba-peer/mamba_ssm-*)"
  fi
  if [[ "$list" == *mamba* ]]; then
    # einops (which the Triton file imports) from its pure-Python wheel, without installing it
    PYTHONPATH="$(ls .gpu/peer/einops-*.whl)" python3 tools/gpu/peer_mamba.py --mamba-ssm "$ssm" 2>&1 | tee "$OUT/peer-mamba.log"
  fi
  if [[ "$list" == *scan* ]]; then
    # mamba-ssm's selective_scan forward, built here against the sdist and PyTorch's c10 (its headers need them)
    local torch_dir
    torch_dir="$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')"
    "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr \
      --expt-extended-lambda --use_fast_math -U__CUDA_NO_HALF_OPERATORS__ -U__CUDA_NO_HALF_CONVERSIONS__ -U__CUDA_NO_BFLOAT16_OPERATORS__ \
      -U__CUDA_NO_BFLOAT16_CONVERSIONS__ -U__CUDA_NO_BFLOAT162_OPERATORS__ -U__CUDA_NO_BFLOAT162_CONVERSIONS__ \
      -I"$torch_dir/include" -I"$ssm/csrc/selective_scan" tools/gpu/peer_mamba_scan.cu \
      -L"$torch_dir/lib" -lc10 -lc10_cuda -Xlinker -rpath="$torch_dir/lib" -o /tmp/jamba-peer/scan &&
      /tmp/jamba-peer/scan 2>&1 | tee "$OUT/peer-scan.log"
  fi
  if [[ "$list" == *moe* ]]; then python3 tools/gpu/peer_moe.py --vllm .gpu/peer/vllm-* --json "$OUT/peer-moe.json" "$@" 2>&1 | tee "$OUT/peer-moe.log"; fi
}
if [[ "${1:-}" == peers ]]; then
  shift
  peers "$@"
  exit
fi
if [[ ! -x /tmp/jamba-node/node ]]; then xz -dc .gpu/node.xz >/tmp/jamba-node/node && chmod +x /tmp/jamba-node/node; fi
export PATH="/tmp/jamba-node:$PATH"
if [[ ! -e node_modules ]]; then mkdir -p /tmp/jamba-modules && xz -dc .gpu/node_modules.tar.xz | tar -C /tmp/jamba-modules -xf - && ln -s /tmp/jamba-modules/node_modules node_modules; fi
# The library built on the development machine; rebuilt here with this machine's nvcc if it cannot load.
if ! node -e "import('./dist/runtime/backends/cuda/native.js').then(async (m) => { const p = await m.probeCuda(); if (!p.ok) { console.error(p.reason); process.exit(1); } })"; then
  echo "gpu run: rebuilding the native library with $(command -v nvcc)" >&2
  rm -f runtime/native/build/.hash
  bash runtime/native/build.sh || exit 1
fi
# NCCL for ranks on their own GPUs (tensor parallelism): PyTorch's copy of libnccl, where there is one.
nccl="$(python3 -c "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib', 'libnccl.so.2'))" 2>/dev/null)"
if [[ -f "$nccl" ]]; then export JAMBA_NCCL_LIB="${JAMBA_NCCL_LIB:-$nccl}"; fi
what="$1"
shift
case "$what" in
  check)
    part="${1:-fixtures,conformance}"
    # Hugging Face's own bf16 deviations set the fixtures' tolerance (tools/gpu/check.ts); needs torch.
    if [[ "$part" == *fixtures* ]] && python3 tools/gpu/hf_bf16_deviation.py "$OUT/hf-bf16.json" >"$OUT/hf-bf16.log" 2>&1; then export JAMBA_HF_BF16="$OUT/hf-bf16.json"; fi
    # NCCL at one rank too (the collectives check), where PyTorch's copy of libnccl was found above.
    if [[ "$part" == *collectives* && -n "${JAMBA_NCCL_LIB:-}" ]]; then export JAMBA_NCCL_MIN_BYTES="${JAMBA_NCCL_MIN_BYTES:-0}"; fi
    export UV_THREADPOOL_SIZE="${UV_THREADPOOL_SIZE:-8}"  # the collectives check runs its ranks on koffi's async calls
    node dist/tools/gpu/check.js "$OUT/check-${part//,/-}.json" "$part" 2>&1 | tee "$OUT/check-${part//,/-}.log" ;;
  ops) list="${1:-moe,attention,mamba}"; shift || true; node dist/runtime/cmd/main.js bench --ops "$list" --json "$OUT/ops.json" "$@" 2>&1 | tee "$OUT/ops.log" | grep -v '^  \|^{\|^}\|^\]' ;;
  model) tag="${JAMBA_BENCH_TAG:-model}"; node dist/runtime/cmd/main.js bench --preset "${JAMBA_PRESET:-jamba-1.5-mini}" --random-weights --backend cuda --json "$OUT/$tag.json" "$@" 2>&1 | tee "$OUT/$tag.log" | grep -v '^    \|^{\|^}\|^\]' ;;
  load)
    # The loading benchmark: a Mini-shaped checkpoint of its first 8 layers (~26 GB, written once), then a
    # real load with ExpertsInt8 on the GPU; the "model loaded" log line has GB/s and where the time went.
    # LOAD_DROP_CACHES=1 drops the page cache first (a cold load, where the machine allows it). The server
    # runs in the background and is stopped by its PID once the line is logged (it would serve on).
    ckpt="${CKPT:-/tmp/jamba-mini-8l}"
    [[ -f "$ckpt/config.json" ]] || node dist/tools/gpu/write-checkpoint.js --preset jamba-1.5-mini --layers 8 --dir "$ckpt" 2>&1 | tee "$OUT/write-checkpoint.log"
    if [[ "${LOAD_DROP_CACHES:-0}" == 1 ]]; then sync; echo 3 >/proc/sys/vm/drop_caches || echo "gpu run: cannot drop the page cache" >&2; fi
    node dist/runtime/cmd/main.js serve --model "$ckpt" --backend cuda --quantization expertsint8 --port 0 --max-model-len 32768 >"$OUT/load.log" 2>&1 &
    server=$!
    for ((i = 0; i < ${LOAD_TIMEOUT:-300} * 4; i++)); do
      grep -q '"model loaded"\|"model load failed"' "$OUT/load.log" && break
      kill -0 "$server" 2>/dev/null || break
      sleep 0.25
    done
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null
    grep -m1 '"model loaded"\|"model load failed"' "$OUT/load.log" || tail -5 "$OUT/load.log" ;;
  download)
    # The download benchmark on this machine's cores (the development machine has 2, which the server,
    # the client and its sha256 share); huggingface_hub too where this Python has it.
    py=(); python3 -c 'import huggingface_hub' 2>/dev/null && py=(--python python3)
    node dist/tools/bench/download-bench.js --work /tmp/jamba-download-bench "${py[@]}" "$@" 2>&1 | tee "$OUT/download.log" ;;
  build) rm -f runtime/native/build/.hash; bash runtime/native/build.sh ;;
  *) echo "gpu run: unknown part '$what'" >&2; exit 2 ;;
esac

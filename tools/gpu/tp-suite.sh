#!/usr/bin/env bash
# Tensor parallelism on a machine of several GPUs (issue 13), on the GPU machine like run.sh (it calls it):
#   bash tools/gpu/tp-suite.sh checks   the collectives over NCCL; the HF fixtures over 2, 4 and 8 ranks (as
#                                       many as there are GPUs) under the one-rank rule, or refused where they
#                                       cannot split; the random Mini over as many ranks against one (bf16 only
#                                       where one card holds its 103 GB)
#   bash tools/gpu/tp-suite.sh bench    Mini at 1 and 2 ranks (scaling), Large at 8 ranks where there are 8 GPUs:
#                                       decode at batch 1 / 64 / 256, prefill at 32K, one 256K prompt; then a
#                                       profiled run of each for the all-reduce's share of a step
# Each part fits one device call (10 minutes). Logs and JSON, named by part and rank count, come back packed
# in $OUT/tp-PART.tar.gz, re-packed after every step (a device call returns at most 8 files, and a call cut
# at its limit still returns what was packed).
set -uo pipefail
RESULTS="${OUT:-/tmp/out}"
export OUT=/tmp/jamba-tp-suite
mkdir -p "$RESULTS" "$OUT"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# The machines' rule: NVLink multicast stays off (it can take a shared host's GPUs out of service).
export NCCL_NVLS_ENABLE=0
gpus="$(nvidia-smi -L | grep -c '^GPU')"
card_mib="$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv | tee "$RESULTS/tp-cards.txt"
if ((gpus < 2)); then echo "tp-suite: needs several GPUs, this machine has $gpus" >&2; exit 3; fi
sizes=()
for tp in 2 4 8; do ((tp <= gpus)) && sizes+=("$tp"); done
# run.sh writes each part's files under one name; keep them apart by part and rank count.
keep() { for f in "$OUT/$1".*; do [[ -e "$f" ]] && mv "$f" "$OUT/$2.${f##*.}"; done; }
pack() { tar -C "$OUT" -czf "$RESULTS/tp-$part.tar.gz" .; }

checks() {
  bash tools/gpu/run.sh check collectives
  pack
  for tp in "${sizes[@]}"; do
    JAMBA_CHECK_TP="$tp" bash tools/gpu/run.sh check fixtures && keep check-fixtures "check-fixtures-tp$tp"
    pack
  done
  # The fixtures are too small for most sizes (their refusals are what is checked there); Mini's shapes split 8 ways.
  local quants=expertsint8
  ((card_mib >= 120000)) && quants=none,expertsint8
  for tp in "${sizes[@]}"; do
    JAMBA_CHECK_TP="$tp" JAMBA_CHECK_QUANTIZATIONS="$quants" bash tools/gpu/run.sh check tp-random && keep check-tp-random "check-tp-random-tp$tp"
    pack
  done
}

bench() {
  for tp in 1 2; do
    JAMBA_BENCH_TAG="mini-tp$tp" bash tools/gpu/run.sh model --tensor-parallel-size "$tp" --batches 1,64,256 --prefills 32768 --long-prompt 0
    JAMBA_PROFILE_OPS=1 JAMBA_BENCH_TAG="mini-tp$tp-profile" bash tools/gpu/run.sh model --tensor-parallel-size "$tp" --batches 1,64 --prefills 4096 --long-prompt 0
    pack
  done
  if ((gpus >= 8)); then
    JAMBA_PRESET=jamba-1.5-large JAMBA_BENCH_TAG=large-tp8 bash tools/gpu/run.sh model --tensor-parallel-size 8 --quantization expertsint8 \
      --batches 1,64,256 --prefills 32768 --long-prompt 262144
    JAMBA_PROFILE_OPS=1 JAMBA_PRESET=jamba-1.5-large JAMBA_BENCH_TAG=large-tp8-profile bash tools/gpu/run.sh model --tensor-parallel-size 8 \
      --quantization expertsint8 --batches 1,64 --prefills 4096 --long-prompt 0
    pack
  fi
}

part="${1:-}"
case "$part" in
  checks) checks ;;
  bench) bench ;;
  *) echo "usage: tp-suite.sh checks|bench" >&2; exit 2 ;;
esac

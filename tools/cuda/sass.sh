#!/usr/bin/env bash
# Prints the SASS (the machine code ptxas made) of the native library's kernels whose mangled names
# contain PATTERN, for sm_90a: where the loads, conversions and mma's of a kernel really sit, which the
# source does not say (ptxas reorders them; docs/benchmarks/cuda.md, thirtieth session). Needs no GPU.
# cuobjdump and nvdisasm come from pinned PyPI wheels, installed into the tools cache once (~60 MB).
#   bash tools/cuda/sass.sh SOURCE.cu PATTERN [--summary]
# SOURCE.cu is compiled alone (runtime/native/src/...); --summary folds each kernel into runs of the
# instructions that matter for a memory-bound loop (LDG, LDS, HMMA, PRMT, HADD2, BRA, ...).
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: tools/cuda/sass.sh SOURCE.cu PATTERN [--summary]" >&2; exit 2; }
src="$1" pattern="$2" summary="${3:-}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/tools/cuda/wheels.sh"
NEEDED=site/nvidia/cu13/bin/nvdisasm cuda_wheels cuda-inspect nvidia-cuda-cuobjdump==13.2.51 nvidia-cuda-nvdisasm==13.2.51
bin="$CUDA_WHEELS_DIR/site/nvidia/cu13/bin"
chmod +x "$bin/cuobjdump" "$bin/nvdisasm"
nvcc="$(bash "$ROOT/tools/cuda/nvcc.sh")"
obj="$(mktemp --suffix=.o)"
trap 'rm -f "$obj"' EXIT
"$nvcc" -std=c++17 -O3 -Xcompiler -fPIC -I"$ROOT/runtime/native/include" -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -c "$src" -o "$obj"
PATH="$bin:$PATH" NVDISASM_PATH="$bin" "$bin/cuobjdump" -sass "$obj" | python3 -c '
import re, sys
pattern, summary = sys.argv[1], sys.argv[2] == "--summary"
keep = ("LDG", "LDS", "STG", "STS", "HMMA", "HGMMA", "PRMT", "HADD2", "BRA", "BAR", "EXIT", "SYNCS", "UBLKCP", "UTMALDG")
for fn in re.split(r"\n\s*Function : ", sys.stdin.read())[1:]:
    name, body = fn.split("\n", 1)
    if pattern not in name:
        continue
    print("==", name)
    if not summary:
        print(body)
        continue
    ops = [m.group(2).split(".")[0] for m in re.finditer(r"/\*[0-9a-f]{4}\*/\s+(@!?U?P\w+\s+)?([A-Z0-9_.]+)", body)]
    runs = []
    for op in (o for o in ops if o in keep):
        if runs and runs[-1][0] == op:
            runs[-1][1] += 1
        else:
            runs.append([op, 1])
    print(" ".join(f"{op}x{n}" for op, n in runs))
' "$pattern" "$summary"

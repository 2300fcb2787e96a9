#!/usr/bin/env bash
# Fetches the peers' kernels that tools/gpu/peer_* run on the GPU machine (which has no network) into
# .gpu/peer/ (gitignored, carried with .gpu): pinned sdists from PyPI, checked against their sha256, cached
# outside the clone. Nothing of them enters the project; they are the baselines the issue's targets name.
#   mamba-ssm (its sdist, 0.2 MB: the Triton selective_state_update and the CUDA selective_scan) and einops,
#   which the Triton file imports;
#   vLLM's fused_moe.py alone (from its 51 MB sdist: the kernel file is all peer_moe.py reads).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${JAMBA_TOOLS_CACHE:-$HOME/.cache/jamba-serving}/peers"
DEST="$ROOT/.gpu/peer"
FILES=https://files.pythonhosted.org/packages
MAMBA_SSM="$FILES/af/48/aa7bec0efc7453fa0512276c0069c854bf684219050294266534bfef34bb/mamba_ssm-2.3.2.post1.tar.gz 104cc47e9101e5401a675fa2b784f2952b9b037f3b1dd83b5ac544394e95d028"
EINOPS="$FILES/2a/09/f8d8f8f31e4483c10a906437b4ce31bdf3d6d417b73fe33f1a8b59e34228/einops-0.8.2-py3-none-any.whl 54058201ac7087911181bfec4af6091bb59380360f069276601256a76af08193"
VLLM="$FILES/92/21/6e0b077dc4a0b28f5a8ce8bb352a38d7196650d681fd4faa87f8dc622eff/vllm-0.34.0.tar.gz fcad848b246a9d8652b47e6425af92334dc02492f9802720f54e27b823cf0113"
VLLM_KERNEL=vllm-0.34.0/vllm/model_executor/layers/fused_moe/fused_moe.py

# fetch URL SHA256: the cached file's path, downloaded and verified once.
fetch() {
  local url="$1" sum="$2" file="$CACHE/$(basename "$1")"
  if [[ ! -f "$file" ]]; then
    mkdir -p "$CACHE"
    curl -fsSL --retry 3 -o "$file.partial" "$url"
    echo "$sum  $file.partial" | sha256sum -c --quiet - || { rm -f "$file.partial"; echo "fetch-peers: $url does not match its pinned sha256" >&2; exit 1; }
    mv "$file.partial" "$file"
  fi
  echo "$file"
}

mkdir -p "$DEST"
# shellcheck disable=SC2086
cp "$(fetch $MAMBA_SSM)" "$DEST/mamba_ssm.tar.gz"
# shellcheck disable=SC2086
cp "$(fetch $EINOPS)" "$DEST/"
if [[ ! -f "$DEST/$VLLM_KERNEL" ]]; then
  # shellcheck disable=SC2086
  tar -C "$DEST" -xzf "$(fetch $VLLM)" "$VLLM_KERNEL"
fi
du -sh "$DEST" | sed 's/^/fetch-peers: /'

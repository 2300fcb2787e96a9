#!/usr/bin/env bash
# Adds COUNT fake GPU nodes to the running cluster, numbered after the highest existing one, and
# waits until they are Ready. The node figures come from the same variables as up.sh's, so a
# different GPU type is e.g.:
#   GPU_PRODUCT=NVIDIA-A100-SXM4-80GB GPU_MEMORY_MIB=81920 GPU_FAMILY=ampere GPU_NODE_PREFIX=a100-node- \
#     bash tools/cluster/add-nodes.sh 2
# Usage: add-nodes.sh COUNT      (prints the new nodes' names on stdout, one a line)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/nodes.sh"
lock_cluster
load_config

count="${1:-}"
[[ "$count" =~ ^[1-9][0-9]*$ ]] || die "usage: add-nodes.sh COUNT (a positive integer), got '${count}'"
check_count GPUS_PER_NODE "$GPUS_PER_NODE"
check_count GPU_MEMORY_MIB "$GPU_MEMORY_MIB"
require_tools kubectl
cluster_healthy || die "no healthy cluster is up (run 'make cluster-up')"

# Next free index after the highest "<prefix><n>" node.
next="$(kctl get nodes -o name | awk -v p="node/$GPU_NODE_PREFIX" '
  index($0, p) == 1 { n = substr($0, length(p) + 1); if (n ~ /^[0-9]+$/ && n + 1 > max) max = n + 1 }
  END { print max + 0 }')"
gpu_nodes_manifest "$next" "$count" | create_nodes
for ((i = next; i < next + count; i++)); do echo "$GPU_NODE_PREFIX$i"; done
log "added $count GPU node(s): $GPU_NODE_PREFIX$next..$GPU_NODE_PREFIX$((next + count - 1)) ($((SECONDS - T0)) s)"

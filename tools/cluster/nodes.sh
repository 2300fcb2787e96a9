# Fake nodes that KWOK runs (sourced by up.sh and add-nodes.sh).
# shellcheck shell=bash
#
# A GPU node looks like an 8×H100-80GB host (AWS p5.48xlarge: 192 vCPU, 2 TiB) as NVIDIA's GPU feature
# discovery and device plugin present it: the extended resource nvidia.com/gpu, the nvidia.com/gpu.* labels
# and the taint GPU clusters put on such nodes. Every figure is a parameter:
GPU_NODE_PREFIX="${GPU_NODE_PREFIX:-gpu-node-}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
GPU_PRODUCT="${GPU_PRODUCT:-NVIDIA-H100-80GB-HBM3}"
GPU_MEMORY_MIB="${GPU_MEMORY_MIB:-81559}"
GPU_FAMILY="${GPU_FAMILY:-hopper}"
GPU_NODE_CPU="${GPU_NODE_CPU:-192}"
GPU_NODE_MEMORY="${GPU_NODE_MEMORY:-2Ti}"
GPU_INSTANCE_TYPE="${GPU_INSTANCE_TYPE:-p5.48xlarge}"
CPU_NODE_PREFIX="${CPU_NODE_PREFIX:-cpu-node-}"
CPU_NODE_CPU="${CPU_NODE_CPU:-32}"
CPU_NODE_MEMORY="${CPU_NODE_MEMORY:-128Gi}"
CPU_INSTANCE_TYPE="${CPU_INSTANCE_TYPE:-m6i.8xlarge}"

# The annotation KWOK is told to manage (see up.sh); nodes without it are left alone.
KWOK_NODE_ANNOTATION_KEY="kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE="fake"

# node_manifest NAME CPU MEMORY INSTANCE_TYPE GPUS: one Node document on stdout (GPUS=0: CPU-only).
node_manifest() {
  local name="$1" cpu="$2" memory="$3" instance="$4" gpus="$5"
  cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    $KWOK_NODE_ANNOTATION_KEY: $KWOK_NODE_ANNOTATION_VALUE
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node.kubernetes.io/instance-type: $instance
EOF
  if ((gpus > 0)); then
    cat <<EOF
    nvidia.com/gpu.present: "true"
    nvidia.com/gpu.product: $GPU_PRODUCT
    nvidia.com/gpu.memory: "$GPU_MEMORY_MIB"
    nvidia.com/gpu.count: "$gpus"
    nvidia.com/gpu.family: $GPU_FAMILY
spec:
  taints:
  - key: nvidia.com/gpu
    value: present
    effect: NoSchedule
EOF
  else
    # Nothing lands on this fake node by accident (KWOK runs no container): pods without a GPU request
    # go to the real node unless they tolerate this taint.
    cat <<EOF
spec:
  taints:
  - key: $KWOK_CPU_TAINT_KEY
    value: "true"
    effect: NoSchedule
EOF
  fi
  local resources
  resources="$(printf '    cpu: "%s"\n    memory: %s\n    pods: "110"\n    ephemeral-storage: 3500Gi\n' "$cpu" "$memory")"
  ((gpus > 0)) && resources+=$'\n'"    nvidia.com/gpu: \"$gpus\""
  cat <<EOF
status:
  capacity:
$resources
  allocatable:
$resources
EOF
}

# gpu_nodes_manifest FIRST_INDEX COUNT
gpu_nodes_manifest() {
  local first="$1" count="$2" i
  for ((i = first; i < first + count; i++)); do
    node_manifest "$GPU_NODE_PREFIX$i" "$GPU_NODE_CPU" "$GPU_NODE_MEMORY" "$GPU_INSTANCE_TYPE" "$GPUS_PER_NODE"
  done
}

# cpu_nodes_manifest FIRST_INDEX COUNT
cpu_nodes_manifest() {
  local first="$1" count="$2" i
  for ((i = first; i < first + count; i++)); do
    node_manifest "$CPU_NODE_PREFIX$i" "$CPU_NODE_CPU" "$CPU_NODE_MEMORY" "$CPU_INSTANCE_TYPE" 0
  done
}

check_count() {
  [[ "$2" =~ ^[0-9]+$ ]] || die "$1 must be a non-negative integer, got '$2'"
}

# create_nodes: reads Node documents on stdin, creates them and waits until KWOK has made them Ready.
create_nodes() {
  local manifest names
  manifest="$(cat)"
  [[ -n "$manifest" ]] || return 0
  names="$(printf '%s\n' "$manifest" | awk '$1 == "name:" && prev ~ /^metadata:/ { print "node/" $2 } { prev = $0 }')"
  printf '%s\n' "$manifest" | kctl create -f - >/dev/null || die "creating nodes failed"
  # shellcheck disable=SC2086
  kctl wait --for=condition=Ready --timeout="${NODE_READY_TIMEOUT:-120}s" $names >/dev/null \
    || die "nodes did not become Ready (is kwok running? log: $LOGS/kwok.log)"
}

#!/usr/bin/env bash
# Starts the local Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver (TLS, client-certificate
# auth, RBAC), kube-controller-manager, kube-scheduler and KWOK with fake GPU nodes, and one real node
# (containerd, runc, CNI bridge, kubelet, kube-proxy: node.sh) where pods without a GPU request run. Writes the admin
# kubeconfig to .cluster/kubeconfig. If a healthy cluster is already up it says so and does nothing.
#
# Environment (defaults in brackets):
#   GPU_NODES [4]  CPU_NODES [1]  GPUS_PER_NODE [8]  GPU_PRODUCT [NVIDIA-H100-80GB-HBM3]
#   GPU_MEMORY_MIB [81559]  and the other node figures in tools/cluster/nodes.sh
#   ETCD_PORT [12379] ETCD_PEER_PORT [12380] APISERVER_PORT [16443] KCM_PORT [10357]
#   SCHEDULER_PORT [10359] KWOK_PORT [10347]
#   KWOK_STAGES_DIR [.tools/share/kwok/stages]: the KWOK Stage files that drive node and pod status
#   CLUSTER_STARTED_BY: recorded in .cluster/started-by when this run starts the cluster, so that
#     `down.sh --if-started-by=NAME` stops only a cluster NAME started (jest's global setup uses it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/pki.sh"
source "$(dirname "${BASH_SOURCE[0]}")/nodes.sh"
lock_cluster
T0=$SECONDS

GPU_NODES="${GPU_NODES:-4}"
CPU_NODES="${CPU_NODES:-1}"
check_count GPU_NODES "$GPU_NODES"
check_count CPU_NODES "$CPU_NODES"
check_count GPUS_PER_NODE "$GPUS_PER_NODE"
check_count GPU_MEMORY_MIB "$GPU_MEMORY_MIB"

# Subshells: the recorded settings of an old cluster must not leak into a fresh start.
if (load_config && cluster_healthy); then
  log "a healthy cluster is already up (kubeconfig: $KUBECONFIG_ADMIN); using it as it is"
  log "(more GPU nodes: tools/cluster/add-nodes.sh COUNT; other settings: make cluster-down first)"
  exit 0
fi
if (load_config && any_component_running); then
  log "found a partly running cluster; stopping it before a fresh start"
  bash "$(dirname "${BASH_SOURCE[0]}")/down.sh"
fi
rm -f "$CONFIG_FILE" "$CLUSTER_DIR/started-by"
load_config

require_tools "${COMPONENTS[@]}" kubectl
command -v curl >/dev/null || die "curl is not on PATH"
for port_var in ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT SCHEDULER_PORT KWOK_PORT; do
  port="${!port_var}"
  [[ "$port" =~ ^[0-9]+$ ]] || die "$port_var must be a port number, got '$port'"
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port ($port_var) on 127.0.0.1 is in use; free it or set $port_var to another port"
  fi
done

# A failed start leaves nothing running (the logs stay for the post-mortem).
stop_after_failure() {
  local status=$?
  ((status == 0)) && return
  log "start failed; stopping what was started (logs kept in $LOGS)"
  node_down
  stop_components 15 kwok kube-scheduler kube-controller-manager
  stop_components 15 kube-apiserver
  stop_components 15 etcd
  exit "$status"
}
trap stop_after_failure EXIT

mkdir -p "$CLUSTER_DIR" "$LOGS" "$PIDS"
save_config
ensure_pki
write_kubeconfig "$KUBECONFIG_ADMIN" admin jamba-admin
write_kubeconfig "$CLUSTER_DIR/kube-controller-manager.kubeconfig" kube-controller-manager system:kube-controller-manager
write_kubeconfig "$CLUSTER_DIR/kube-scheduler.kubeconfig" kube-scheduler system:kube-scheduler
write_kubeconfig "$CLUSTER_DIR/kwok.kubeconfig" kwok kwok-controller

# Every start is a new cluster: state (and logs) from a previous run would surprise the tests.
rm -rf "$CLUSTER_DIR/etcd" "$LOGS"; mkdir -p "$LOGS"
start_component etcd \
  --name=jamba-local \
  --data-dir="$CLUSTER_DIR/etcd" \
  --listen-client-urls="https://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls="https://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="jamba-local=http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster-state=new \
  --cert-file="$PKI/etcd-server.crt" --key-file="$PKI/etcd-server.key" \
  --trusted-ca-file="$PKI/ca.crt" --client-cert-auth \
  --unsafe-no-fsync \
  --log-level=warn
# --unsafe-no-fsync: the data is thrown away at every start, and fsync latency would dominate here.
wait_until 30 "etcd healthy on https://127.0.0.1:$ETCD_PORT" component_healthy etcd \
  || { tail -n 30 "$LOGS/etcd.log" >&2; die "etcd did not become healthy (log: $LOGS/etcd.log)"; }

apiserver_flags
start_component kube-apiserver "${APISERVER_FLAGS[@]}"
wait_apiserver_ready 90

start_component kube-controller-manager \
  --kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
  --client-ca-file="$PKI/ca.crt" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
  --leader-elect=false \
  --controllers='*' \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$PKI/sa.key" \
  --root-ca-file="$PKI/ca.crt" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --kube-api-qps=100 --kube-api-burst=200 \
  --profiling=false
start_component kube-scheduler \
  --kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
  --client-ca-file="$PKI/ca.crt" \
  --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" \
  --leader-elect=false \
  --profiling=false

# KWOK's stock "fast" Stages, shipped with its module (see build-tools.sh): nodes turn Ready and keep
# a lease; pods bound to them turn Running and Ready at once; deleted pods are removed. Plus ours
# (tools/cluster/kwok-stages/): what a kubelet does that those lack (pods Ready again once the
# node-lifecycle controller has marked them NotReady).
# KWOK_STAGES_DIR replaces them all with a directory of one's own Stage files (e.g. pods that stay
# unready for a while, to play a model that is loading).
stages_dir="${KWOK_STAGES_DIR:-$ROOT/.tools/share/kwok/stages}"
ls "$stages_dir"/*.yaml >/dev/null 2>&1 || die "no KWOK Stage files (*.yaml) in $stages_dir (the stock ones come with 'make tools')"
stage_files=("$stages_dir"/*.yaml)
[[ -n "${KWOK_STAGES_DIR:-}" ]] || stage_files+=("$ROOT/tools/cluster/kwok-stages"/*.yaml)
awk 'FNR == 1 { print "---" } { print }' "${stage_files[@]}" >"$CLUSTER_DIR/kwok-stages.yaml"
start_component kwok \
  --kubeconfig="$CLUSTER_DIR/kwok.kubeconfig" \
  --config="$CLUSTER_DIR/kwok-stages.yaml" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector="$KWOK_NODE_ANNOTATION_KEY=$KWOK_NODE_ANNOTATION_VALUE" \
  --cidr="$POD_CIDR" \
  --node-ip=10.0.0.1 \
  --node-lease-duration-seconds=40 \
  --server-address="127.0.0.1:$KWOK_PORT"

{ gpu_nodes_manifest 0 "$GPU_NODES"; cpu_nodes_manifest 0 "$CPU_NODES"; } | create_nodes
log "$GPU_NODES GPU nodes and $CPU_NODES CPU node(s) Ready ($((SECONDS - T0)) s)"

for c in kube-controller-manager kube-scheduler kwok; do
  wait_until 60 "$c healthy" component_healthy "$c" \
    || { tail -n 30 "$LOGS/$c.log" >&2; die "$c did not become healthy (log: $LOGS/$c.log)"; }
done
# Pods can be created in a namespace only once its `default` ServiceAccount exists.
wait_until 60 "service accounts are being created" kctl -n default get serviceaccount default \
  || die "the controller manager did not create the default ServiceAccount (log: $LOGS/kube-controller-manager.log)"

# The real node: pods without a GPU request run here for real (node.sh).
node_up
log "real node $REAL_NODE_NAME and kube-proxy up ($((SECONDS - T0)) s)"

[[ -n "${CLUSTER_STARTED_BY:-}" ]] && echo "$CLUSTER_STARTED_BY" >"$CLUSTER_DIR/started-by"
log "cluster up in $((SECONDS - T0)) s; kubeconfig: $KUBECONFIG_ADMIN"
log "try: $BIN/kubectl --kubeconfig $KUBECONFIG_ADMIN get nodes"

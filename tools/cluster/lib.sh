# Shared by the cluster scripts (sourced, not run): paths, ports, process bookkeeping.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.tools/bin"
CLUSTER_DIR="$ROOT/.cluster"
PKI="$CLUSTER_DIR/pki"
LOGS="$CLUSTER_DIR/logs"
PIDS="$CLUSTER_DIR/pids"
CONFIG_FILE="$CLUSTER_DIR/cluster.env"
KUBECONFIG_ADMIN="$CLUSTER_DIR/kubeconfig"

# Start order (down.sh stops the clients first, then the API server, then etcd).
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
T0=$SECONDS

die() { echo "cluster: ERROR: $*" >&2; exit 1; }
log() { echo "cluster: $*" >&2; }

# One cluster script at a time per checkout: several test runs and people may call up/down/restart/
# add-nodes at once. Nested calls (up.sh running down.sh) inherit the lock through CLUSTER_LOCK_HELD.
lock_cluster() {
  [[ -n "${CLUSTER_LOCK_HELD:-}" ]] && return 0
  mkdir -p "$CLUSTER_DIR"
  exec 9>"$CLUSTER_DIR/.lock"
  if ! flock -n 9; then
    log "waiting for another cluster script to finish (lock $CLUSTER_DIR/.lock)"
    flock -w "${CLUSTER_LOCK_TIMEOUT_S:-600}" 9 || die "another cluster script held $CLUSTER_DIR/.lock too long"
  fi
  export CLUSTER_LOCK_HELD=1
}

# Settings a running cluster was started with win over the environment, so down/restart/add-nodes
# always talk to the cluster that is actually up.
load_config() {
  if [[ -f "$CONFIG_FILE" ]]; then
    # shellcheck disable=SC1090
    source "$CONFIG_FILE"
  fi
  ETCD_PORT="${ETCD_PORT:-12379}"
  ETCD_PEER_PORT="${ETCD_PEER_PORT:-12380}"
  APISERVER_PORT="${APISERVER_PORT:-16443}"
  KCM_PORT="${KCM_PORT:-10357}"
  SCHEDULER_PORT="${SCHEDULER_PORT:-10359}"
  KWOK_PORT="${KWOK_PORT:-10347}"
  # Each cluster's own Service range: the real node's kube-proxy routes it from the host (node.sh).
  SERVICE_CIDR="${SERVICE_CIDR:-10.214.$(node_slot).0/24}"
  POD_CIDR="${POD_CIDR:-10.244.0.0/16}"
}

# 1..250, from the cluster directory: the real node's address ranges (node.sh); REAL_NODE_SLOT overrides.
node_slot() {
  local id
  id="$(printf '%s' "$CLUSTER_DIR" | sha256sum | cut -c1-4)"
  echo "${REAL_NODE_SLOT:-$(( 16#$id % 250 + 1 ))}"
}

save_config() {
  mkdir -p "$CLUSTER_DIR"
  {
    echo "# Written by tools/cluster/up.sh; read by the other cluster scripts."
    local v
    for v in ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT SCHEDULER_PORT KWOK_PORT SERVICE_CIDR POD_CIDR; do
      printf '%s=%q\n' "$v" "${!v}"
    done
  } >"$CONFIG_FILE"
}

require_tools() {
  local t
  for t in "$@"; do
    [[ -x "$BIN/$t" ]] || die "$BIN/$t is missing: run 'make tools' (bash tools/cluster/build-tools.sh) first"
  done
}

kctl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# A recorded PID counts only while it is alive and still runs our binary (PIDs get reused).
pid_of() {
  local name="$1" file="$PIDS/$1.pid" pid argv0
  [[ -f "$file" ]] || return 0
  pid="$(<"$file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  argv0="$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | head -n1)" 2>/dev/null || return 0
  [[ "$argv0" == "$BIN/$name" ]] && echo "$pid"
  return 0
}

# Runs a component detached (own session, output to its log) so it outlives the caller, e.g. jest.
# With COMPONENT_NETNS set it runs in that network namespace (`ip netns exec` execs in place: same PID).
start_component() {
  local name="$1"; shift
  mkdir -p "$LOGS" "$PIDS"
  echo "=== $(date -u +%FT%TZ) starting $name" >>"$LOGS/$name.log"
  local prefix=()
  [[ -n "${COMPONENT_NETNS:-}" ]] && prefix=(ip netns exec "$COMPONENT_NETNS")
  # 9>&-: the daemon must not inherit (and so keep holding) the scripts' lock.
  "${prefix[@]}" setsid "$BIN/$name" "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9>&- &
  echo "$!" >"$PIDS/$name.pid"
}

# stop_components GRACE_SECONDS NAME...: SIGTERM to all at once, then SIGKILL to any still running
# after the grace period; removes their pid files.
stop_components() {
  local grace="$1"; shift
  local name pid i start=$SECONDS
  local -A pids=()
  for name in "$@"; do
    pid="$(pid_of "$name")"
    if [[ -n "$pid" ]]; then pids[$name]=$pid; kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for ((i = 0; i < grace * 10; i++)); do
    _any_alive "${pids[@]}" || break
    sleep 0.1
  done
  for name in "${!pids[@]}"; do
    pid="${pids[$name]}"
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) still running ${grace} s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < 50; i++)); do _any_alive "${pids[@]}" || break; sleep 0.1; done
  for name in "$@"; do
    pid="${pids[$name]:-}"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && die "$name (pid $pid) is still running after SIGKILL"
    [[ -n "$pid" ]] && log "stopped $name (pid $pid) in $((SECONDS - start)) s"
    rm -f "$PIDS/$name.pid"
  done
  return 0
}

_any_alive() {
  local pid
  for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done
  return 1
}

# curl with the admin client certificate, so health checks pass the API server's authentication too.
curl_admin() {
  curl --silent --show-error --fail --max-time 5 \
    --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@"
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls every 0.2 s; on timeout fails with DESCRIPTION.
wait_until() {
  local timeout="$1" what="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
  log "$what ($((SECONDS - T0)) s)"
}

apiserver_ready() { curl_admin "https://127.0.0.1:$APISERVER_PORT/readyz"; }

wait_apiserver_ready() {
  wait_until "${1:-60}" "kube-apiserver ready on https://127.0.0.1:$APISERVER_PORT" apiserver_ready \
    || { tail -n 30 "$LOGS/kube-apiserver.log" >&2; die "kube-apiserver did not become ready (log: $LOGS/kube-apiserver.log)"; }
}

# The flags kube-apiserver runs with, used both by up.sh and by restart-apiserver.sh.
# shellcheck disable=SC2034,SC2054  # read by the callers; the commas are flag values
apiserver_flags() {
  APISERVER_FLAGS=(
    --bind-address=127.0.0.1
    # Published as the `kubernetes` Service's endpoint: the real node's relay to this loopback-only server
    # (node.sh), so that pods reach the API server in-cluster.
    --advertise-address="10.215.$(node_slot).1"
    --secure-port="$APISERVER_PORT"
    --etcd-servers="https://127.0.0.1:$ETCD_PORT"
    --etcd-cafile="$PKI/ca.crt"
    --etcd-certfile="$PKI/apiserver-etcd-client.crt"
    --etcd-keyfile="$PKI/apiserver-etcd-client.key"
    --tls-cert-file="$PKI/apiserver.crt"
    --tls-private-key-file="$PKI/apiserver.key"
    --client-ca-file="$PKI/ca.crt"
    # The aggregation layer's front proxy, as kubeadm sets it up (the controllers read this CA too).
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt"
    --requestheader-allowed-names=front-proxy-client
    --requestheader-username-headers=X-Remote-User
    --requestheader-group-headers=X-Remote-Group
    --requestheader-extra-headers-prefix=X-Remote-Extra-
    --proxy-client-cert-file="$PKI/front-proxy-client.crt"
    --proxy-client-key-file="$PKI/front-proxy-client.key"
    # To the kubelets (logs, exec, port-forward): the real node's serving certificate is from our CA, and
    # the API server presents a client certificate the kubelet checks and authorizes through this server.
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt"
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key"
    --kubelet-certificate-authority="$PKI/ca.crt"
    --kubelet-preferred-address-types=InternalIP
    --authorization-mode=Node,RBAC
    --enable-admission-plugins=NodeRestriction
    --service-account-issuer=https://kubernetes.default.svc.cluster.local
    --service-account-key-file="$PKI/sa.pub"
    --service-account-signing-key-file="$PKI/sa.key"
    --service-cluster-ip-range="$SERVICE_CIDR"
    --allow-privileged=true
    --profiling=false
  )
}

component_healthy() {
  local name="$1"
  [[ -n "$(pid_of "$name")" ]] || return 1
  case "$name" in
    etcd) curl --silent --fail --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/apiserver-etcd-client.crt" \
            --key "$PKI/apiserver-etcd-client.key" "https://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"' ;;
    kube-apiserver) apiserver_ready ;;
    kube-controller-manager) curl --silent --fail --max-time 3 -k "https://127.0.0.1:$KCM_PORT/healthz" ;;
    kube-scheduler) curl --silent --fail --max-time 3 -k "https://127.0.0.1:$SCHEDULER_PORT/healthz" ;;
    kwok) curl --silent --fail --max-time 3 "http://127.0.0.1:$KWOK_PORT/healthz" ;;
    containerd) crictl_node info ;;
    kubelet) curl --silent --fail --max-time 3 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz" ;;
    kube-proxy) kube_proxy_healthy ;;
    apiserver-relay) true ;;
  esac
}

cluster_healthy() {
  [[ -f "$KUBECONFIG_ADMIN" ]] || return 1
  node_names
  local c
  for c in "${COMPONENTS[@]}" "${NODE_COMPONENTS[@]}"; do component_healthy "$c" >/dev/null 2>&1 || return 1; done
}

any_component_running() {
  local c
  for c in "${COMPONENTS[@]}" "${NODE_COMPONENTS[@]}"; do [[ -n "$(pid_of "$c")" ]] && return 0; done
  return 1
}

# shellcheck source=node.sh
source "$(dirname "${BASH_SOURCE[0]}")/node.sh"

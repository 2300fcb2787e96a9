#!/usr/bin/env bash
# Stops every process tools/cluster/up.sh started, by the PIDs it recorded (SIGTERM, then SIGKILL
# after 15 s), and checks that none of this checkout's cluster binaries is left running.
# Usage: down.sh [--if-started-by=NAME]   (with it: only if up.sh ran with CLUSTER_STARTED_BY=NAME)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lock_cluster
load_config

case "${1:-}" in
  "") ;;
  --if-started-by=*)
    owner="${1#--if-started-by=}"
    if [[ "$(cat "$CLUSTER_DIR/started-by" 2>/dev/null)" != "$owner" ]]; then
      any_component_running && log "the cluster was not started by $owner; leaving it up"
      exit 0
    fi
    ;;
  *) die "usage: down.sh [--if-started-by=NAME]" ;;
esac

# The real node first (its pods, containers and network), then the clients, so the API server has no
# open watches to drain; etcd last.
node_down
stop_components 15 kwok kube-scheduler kube-controller-manager
stop_components 15 kube-apiserver
stop_components 15 etcd
rm -f "$CLUSTER_DIR/started-by"

# Anything still running one of our binaries was not recorded (e.g. started by hand): name it, loudly.
strays=()
for proc in /proc/[0-9]*; do
  argv0="$(tr '\0' '\n' 2>/dev/null <"$proc/cmdline" | head -n1)" 2>/dev/null || continue
  for c in "${COMPONENTS[@]}" "${NODE_COMPONENTS[@]}"; do
    [[ "$argv0" == "$BIN/$c" ]] && strays+=("${proc#/proc/} ($c)")
  done
done
if ((${#strays[@]})); then
  die "cluster processes not started by up.sh are still running: ${strays[*]}; stop them by PID"
fi
for pid in $(node_shim_pids); do strays+=("$pid (containerd shim of this node)"); done
if ((${#strays[@]})); then
  die "cluster processes not started by up.sh are still running: ${strays[*]}; stop them by PID"
fi
ip netns list 2>/dev/null | grep -qw "$NETNS" && die "network namespace $NETNS is still there"
ip link show "$BRIDGE" >/dev/null 2>&1 && die "bridge $BRIDGE is still there"
log "cluster down; no cluster process, container, network namespace or bridge left"

#!/usr/bin/env bash
# Stops kube-apiserver alone and starts it again with the same flags, then waits for /readyz.
# For tests of clients that must survive an API-server restart. Optional: RESTART_DOWNTIME_S
# seconds to stay down between stop and start (default 0).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lock_cluster
load_config
[[ -f "$CONFIG_FILE" && -n "$(pid_of etcd)" ]] || die "no cluster is up (run 'make cluster-up')"
require_tools kube-apiserver

# Its graceful shutdown waits (up to a minute) for the controllers' open watches to end, so it gets
# 5 s and then SIGKILL; etcd holds all state either way.
stop_components 5 kube-apiserver
sleep "${RESTART_DOWNTIME_S:-0}"
apiserver_flags
start_component kube-apiserver "${APISERVER_FLAGS[@]}"
wait_apiserver_ready 90

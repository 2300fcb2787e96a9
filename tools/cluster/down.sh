#!/usr/bin/env bash
# Stops every process tools/cluster/up.sh started, by the PIDs it recorded (SIGTERM, then SIGKILL
# after 15 s), and checks that none of this checkout's cluster binaries is left running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_config

for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  stop_component "${COMPONENTS[i]}"
done
rm -f "$CLUSTER_DIR/started-by-jest"

# Anything still running one of our binaries was not recorded (e.g. started by hand): name it, loudly.
strays=()
for proc in /proc/[0-9]*; do
  argv0="$(tr '\0' '\n' <"$proc/cmdline" 2>/dev/null | head -n1)" || continue
  for c in "${COMPONENTS[@]}"; do
    [[ "$argv0" == "$BIN/$c" ]] && strays+=("${proc#/proc/} ($c)")
  done
done
if ((${#strays[@]})); then
  die "cluster processes not started by up.sh are still running: ${strays[*]}; stop them by PID"
fi
log "cluster down; no cluster process left"

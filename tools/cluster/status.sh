#!/usr/bin/env bash
# Prints each cluster component's PID and health; exits 0 only when all are healthy.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_config
healthy=1
for c in "${COMPONENTS[@]}"; do
  pid="$(pid_of "$c")"
  if component_healthy "$c" >/dev/null 2>&1; then state=healthy
  elif [[ -n "$pid" ]]; then state=unhealthy; healthy=0
  else state=stopped; healthy=0
  fi
  printf '%-24s %-10s %s\n' "$c" "$state" "${pid:+pid $pid}"
done
[[ -f "$KUBECONFIG_ADMIN" ]] || healthy=0
((healthy)) && echo "kubeconfig: $KUBECONFIG_ADMIN (API server https://127.0.0.1:$APISERVER_PORT)"
((healthy))

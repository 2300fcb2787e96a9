#!/usr/bin/env bash
# JambaDeployment create → Ready on the real node, split into its stages, RUNS times (default 3):
#   operator   JambaDeployment created → its pod created (operator, Deployment and ReplicaSet controllers)
#   schedule   pod created → bound to the real node
#   start      bound → runtime container running (sandbox, CNI, image already in containerd, container start)
#   load       running → the runtime's "model loaded" log line (process start, checkpoint load)
#   probe      loaded → pod Ready (startup and readiness probes; probe periods 10 s and 5 s)
# Needs a running cluster (make cluster-up) and no other operator watching all namespaces; runs the
# operator itself (dist/, `make build`). Kubernetes times have 1-second resolution; the log line has ms.
# Usage: bash tools/bench/real-node-ready.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${1:-3}"
NAMESPACE=bench-real-node
kubectl() { .tools/bin/kubectl --kubeconfig .cluster/kubeconfig "$@"; }
ms() { date -d "$1" +%s%3N; }

kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/jambadeployments.serving.jamba.dev --timeout=60s >/dev/null
node dist/operator/cmd/main.js --kubeconfig .cluster/kubeconfig --metrics-addr 127.0.0.1:0 >/tmp/real-node-bench-operator.log 2>&1 &
operator=$!
trap 'kill -TERM $operator 2>/dev/null; wait $operator 2>/dev/null || true' EXIT

printf '%s\n' "run total_ms operator_ms schedule_ms start_ms load_ms probe_ms"
for ((i = 1; i <= RUNS; i++)); do
  kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait=true >/dev/null
  kubectl create namespace "$NAMESPACE" >/dev/null
  until kubectl -n "$NAMESPACE" get serviceaccount default >/dev/null 2>&1; do sleep 0.2; done
  sed "s#path: /var/lib/jamba/jamba-tiny#path: $PWD/test/fixtures/jamba-tiny#" examples/jamba-tiny-cpu.yaml | kubectl -n "$NAMESPACE" apply -f - >/dev/null
  kubectl -n "$NAMESPACE" wait jd/jamba-tiny --for=condition=Ready --timeout=300s >/dev/null
  jd_created=$(kubectl -n "$NAMESPACE" get jd jamba-tiny -o jsonpath='{.metadata.creationTimestamp}')
  pod=$(kubectl -n "$NAMESPACE" get pods -l app.kubernetes.io/instance=jamba-tiny -o jsonpath='{.items[0].metadata.name}')
  uid=$(kubectl -n "$NAMESPACE" get pod "$pod" -o jsonpath='{.metadata.uid}')
  pod_created=$(kubectl -n "$NAMESPACE" get pod "$pod" -o jsonpath='{.metadata.creationTimestamp}')
  scheduled=$(kubectl -n "$NAMESPACE" get pod "$pod" -o jsonpath='{.status.conditions[?(@.type=="PodScheduled")].lastTransitionTime}')
  started=$(kubectl -n "$NAMESPACE" get pod "$pod" -o jsonpath='{.status.containerStatuses[0].state.running.startedAt}')
  ready=$(kubectl -n "$NAMESPACE" get pod "$pod" -o jsonpath='{.status.conditions[?(@.type=="Ready")].lastTransitionTime}')
  log=".cluster/node/pod-logs/${NAMESPACE}_${pod}_${uid}/runtime/0.log"
  loaded=$(grep -m1 '"model loaded"' "$log" | sed -E 's/.*"ts":"([^"]+)".*/\1/')
  printf '%s %s %s %s %s %s %s\n' "$i" \
    "$(($(ms "$ready") - $(ms "$jd_created")))" "$(($(ms "$pod_created") - $(ms "$jd_created")))" \
    "$(($(ms "$scheduled") - $(ms "$pod_created")))" "$(($(ms "$started") - $(ms "$scheduled")))" \
    "$(($(ms "$loaded") - $(ms "$started")))" "$(($(ms "$ready") - $(ms "$loaded")))"
done
kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait=false >/dev/null

#!/usr/bin/env bash
# JambaDeployment create → Ready on the real node, split into its stages, RUNS times (default 3):
#   download   (cold cache only) download Job created → complete (pod start, listing, fetch, verify)
#   operator   JambaDeployment created (cold cache: download Job complete) → its pod created
#              (operator, Deployment and ReplicaSet controllers)
#   schedule   pod created → bound to the real node
#   start      bound → runtime container running (sandbox, CNI, image already in containerd, container start)
#   load       running → the runtime's "model loaded" log line (process start, checkpoint load)
#   probe      loaded → pod Ready (startup and readiness probes)
# Default source: a hostPath holding test/fixtures/jamba-tiny. With --hub-cache: a huggingFace source,
# the same checkpoint served by the Hub test server (tools/hub-server, on the real node's address) into a
# cache claim (a local volume on the node, empty at each run): first a JambaDeployment on the empty
# claim (cold: the download Job runs before the serving pod), then a second one of the same revision
# (warm: the claim holds it, no Job). The download is not throttled.
# Needs a running cluster (make cluster-up) and no other operator watching all namespaces; runs the
# operator itself (dist/, `make build`). Kubernetes times have 1-second resolution; the log line has ms.
# Usage: bash tools/bench/real-node-ready.sh [RUNS] [--hub-cache]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${1:-3}"
MODE="${2:-}"
[[ -z $MODE || $MODE == --hub-cache ]] || { echo "usage: $0 [RUNS] [--hub-cache]" >&2; exit 2; }
NAMESPACE=bench-real-node
REPO=ai21labs/jamba-tiny
kubectl() { .tools/bin/kubectl --kubeconfig .cluster/kubeconfig "$@"; }
ms() { date -d "$1" +%s%3N; }
pids=()
claims=()
cleanup() {
  for ((k = ${#pids[@]} - 1; k >= 0; k--)); do kill -TERM "${pids[k]}" 2>/dev/null || true; wait "${pids[k]}" 2>/dev/null || true; done
  if ((${#claims[@]})); then rm -rf "${claims[@]}"; fi
}
trap cleanup EXIT

kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/jambadeployments.serving.jamba.dev --timeout=60s >/dev/null
node dist/operator/cmd/main.js --kubeconfig .cluster/kubeconfig --metrics-addr 127.0.0.1:0 >/tmp/real-node-bench-operator.log 2>&1 &
pids+=($!)

# The JambaDeployment NAME of examples/jamba-tiny-cpu.yaml, its hostPath source replaced by SOURCE (YAML lines).
manifest() {
  local name=$1 source=$2
  sed -e "s#^  name: jamba-tiny#  name: $name#" -e "/^      hostPath:/,/^        path:/c\\$source" examples/jamba-tiny-cpu.yaml
}

# NAME CREATED_MS FROM_MS: "total operator schedule start load probe" in ms for the JambaDeployment's pod
# (total from CREATED_MS, the operator stage from FROM_MS).
stages() {
  local name=$1 created=$2 from=$3 pod uid pod_created scheduled started ready log loaded
  pod=$(kubectl -n "$NAMESPACE" get pods -l "app.kubernetes.io/instance=$name" -o jsonpath='{.items[0].metadata.name}')
  uid=$(kubectl -n "$NAMESPACE" get pod "$pod" -o jsonpath='{.metadata.uid}')
  pod_created=$(kubectl -n "$NAMESPACE" get pod "$pod" -o jsonpath='{.metadata.creationTimestamp}')
  scheduled=$(kubectl -n "$NAMESPACE" get pod "$pod" -o jsonpath='{.status.conditions[?(@.type=="PodScheduled")].lastTransitionTime}')
  started=$(kubectl -n "$NAMESPACE" get pod "$pod" -o jsonpath='{.status.containerStatuses[0].state.running.startedAt}')
  ready=$(kubectl -n "$NAMESPACE" get pod "$pod" -o jsonpath='{.status.conditions[?(@.type=="Ready")].lastTransitionTime}')
  log=".cluster/node/pod-logs/${NAMESPACE}_${pod}_${uid}/runtime/0.log"
  loaded=$(grep -m1 '"model loaded"' "$log" | sed -E 's/.*"ts":"([^"]+)".*/\1/')
  printf '%s %s %s %s %s %s' "$(($(ms "$ready") - created))" "$(($(ms "$pod_created") - from))" "$(($(ms "$scheduled") - $(ms "$pod_created")))" \
    "$(($(ms "$started") - $(ms "$scheduled")))" "$(($(ms "$loaded") - $(ms "$started")))" "$(($(ms "$ready") - $(ms "$loaded")))"
}

# NAME SOURCE: applies it, waits for Ready; sets CREATED_MS.
apply_and_wait() {
  manifest "$1" "$2" | kubectl -n "$NAMESPACE" apply -f - >/dev/null
  kubectl -n "$NAMESPACE" wait "jd/$1" --for=condition=Ready --timeout=300s >/dev/null
  CREATED_MS=$(ms "$(kubectl -n "$NAMESPACE" get jd "$1" -o jsonpath='{.metadata.creationTimestamp}')")
}

fresh_namespace() {
  kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait=true >/dev/null
  kubectl create namespace "$NAMESPACE" >/dev/null
  until kubectl -n "$NAMESPACE" get serviceaccount default >/dev/null 2>&1; do sleep 0.2; done
}

if [[ -z $MODE ]]; then
  printf '%s\n' "run total_ms operator_ms schedule_ms start_ms load_ms probe_ms"
  for ((i = 1; i <= RUNS; i++)); do
    fresh_namespace
    apply_and_wait jamba-tiny "      hostPath:\n        path: $PWD/test/fixtures/jamba-tiny"
    printf '%s %s\n' "$i" "$(stages jamba-tiny "$CREATED_MS" "$CREATED_MS")"
  done
  kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait=false >/dev/null
  exit 0
fi

# --hub-cache: the Hub test server where the node's pods reach this machine (the real node's address).
node_ip=$(kubectl get node real-node -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
hub_out=$(mktemp)
node dist/tools/hub-server/main.js --repo "$REPO=$PWD/test/fixtures/jamba-tiny" --host "$node_ip" >"$hub_out" &
pids+=($!)
until [[ -s $hub_out ]]; do sleep 0.1; done
endpoint=$(sed -E 's/.*"endpoint":"([^"]+)".*/\1/' "$hub_out")
rm -f "$hub_out"
source="      huggingFace:\n        repo: $REPO\n        endpoint: $endpoint\n        cacheClaimName: hf-cache"

printf '%s\n' "run cache total_ms download_ms operator_ms schedule_ms start_ms load_ms probe_ms"
for ((i = 1; i <= RUNS; i++)); do
  fresh_namespace
  claim=$(mktemp -d /tmp/jamba-bench-cache-XXXXXX)
  claims+=("$claim")
  chmod 777 "$claim" # the runtime image's user (65532) writes the download
  pv="bench-real-node-cache-$i"
  kubectl delete pv "$pv" --ignore-not-found --wait=true >/dev/null
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: $pv}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: bench-local
  local: {path: $claim}
  claimRef: {namespace: $NAMESPACE, name: hf-cache}
  nodeAffinity:
    required:
      nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [real-node]}]}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: hf-cache, namespace: $NAMESPACE}
spec: {accessModes: [ReadWriteOnce], storageClassName: bench-local, volumeName: $pv, resources: {requests: {storage: 1Gi}}}
YAML
  kubectl -n "$NAMESPACE" wait pvc/hf-cache --for=jsonpath='{.status.phase}'=Bound --timeout=60s >/dev/null

  apply_and_wait cold "$source"
  job=$(kubectl -n "$NAMESPACE" get jobs -l serving.jamba.dev/model-cache -o jsonpath='{.items[0].metadata.name}')
  job_created=$(ms "$(kubectl -n "$NAMESPACE" get job "$job" -o jsonpath='{.metadata.creationTimestamp}')")
  job_done=$(ms "$(kubectl -n "$NAMESPACE" get job "$job" -o jsonpath='{.status.completionTime}')")
  read -r total rest <<<"$(stages cold "$CREATED_MS" "$job_done")"
  printf '%s cold %s %s %s\n' "$i" "$total" "$((job_done - job_created))" "$rest"

  apply_and_wait warm "$source"
  read -r total rest <<<"$(stages warm "$CREATED_MS" "$CREATED_MS")"
  printf '%s warm %s - %s\n' "$i" "$total" "$rest"
  kubectl delete namespace "$NAMESPACE" --wait=true >/dev/null
  kubectl delete pv "$pv" --wait=false >/dev/null
done

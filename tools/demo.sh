#!/usr/bin/env bash
# The main job on the embedded default (`make demo`): the local GPU cluster, the operator reconciling a
# JambaDeployment for Jamba-1.5-Large onto fake 8×H100 nodes, and the runtime serving the tiny Jamba
# fixture checkpoint with ExpertsInt8 on the CPU backend, answering OpenAI requests.
# The cluster stays up afterwards (`make cluster-down` stops it); the operator and runtime it starts here
# are stopped on exit, by their recorded PIDs.
set -euo pipefail
cd "$(dirname "$0")/.."

OPERATOR_METRICS_ADDR=${OPERATOR_METRICS_ADDR:-127.0.0.1:18080}
RUNTIME_PORT=${RUNTIME_PORT:-18000}
NAMESPACE=${DEMO_NAMESPACE:-jamba-demo}
LOGS=.cluster/logs
kubectl() { .tools/bin/kubectl --kubeconfig .cluster/kubeconfig "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

[ -f dist/runtime/cmd/main.js ] && [ -f dist/operator/cmd/main.js ] || { echo "demo: run 'npm run build' first (make demo does)" >&2; exit 1; }

step "Local control plane (etcd, kube-apiserver, controller-manager, scheduler, KWOK GPU nodes)"
bash tools/cluster/up.sh
kubectl get nodes -o custom-columns='NAME:.metadata.name,GPUS:.status.allocatable.nvidia\.com/gpu,PRODUCT:.metadata.labels.nvidia\.com/gpu\.product,GPU_MEM_MIB:.metadata.labels.nvidia\.com/gpu\.memory,READY:.status.conditions[?(@.type=="Ready")].status'

step "JambaDeployment CRD and the operator"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/jambadeployments.serving.jamba.dev --timeout=60s >/dev/null
mkdir -p "$LOGS"
node dist/operator/cmd/main.js --kubeconfig .cluster/kubeconfig --metrics-addr "$OPERATOR_METRICS_ADDR" >"$LOGS/demo-operator.log" 2>&1 &
pids+=($!)
echo "operator pid $! (log $LOGS/demo-operator.log, metrics http://$OPERATOR_METRICS_ADDR/metrics)"

step "A JambaDeployment for Jamba-1.5-Large (ExpertsInt8, 8 GPUs per replica)"
# Start from a clean slate so the demo can be run again on the same cluster.
kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait=true --timeout=180s >/dev/null
kubectl delete pv "$NAMESPACE-jamba-large-weights" --ignore-not-found >/dev/null
kubectl create namespace "$NAMESPACE" >/dev/null
# The example reads weights from a pre-filled ReadOnlyMany PVC; here a static hostPath volume plays it
# (KWOK runs no container, so nothing is read from it).
kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: $NAMESPACE-jamba-large-weights}
spec:
  capacity: {storage: 1Ti}
  accessModes: [ReadOnlyMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: /models}
  claimRef: {namespace: $NAMESPACE, name: jamba-large-weights}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: jamba-large-weights, namespace: $NAMESPACE}
spec:
  accessModes: [ReadOnlyMany]
  storageClassName: ""
  volumeName: $NAMESPACE-jamba-large-weights
  resources: {requests: {storage: 1Ti}}
YAML
kubectl -n "$NAMESPACE" apply -f examples/jamba-1.5-large.yaml
name=$(kubectl -n "$NAMESPACE" get -f examples/jamba-1.5-large.yaml -o jsonpath='{.metadata.name}')
kubectl -n "$NAMESPACE" wait "jd/$name" --for=condition=Ready --timeout=180s
kubectl -n "$NAMESPACE" get jd,deployment,pods,service,pdb -o wide

step "What the API server refuses: Jamba-1.5-Large unquantized on 8 × 80 GB"
sed -e 's/quantization: ExpertsInt8/quantization: None/' examples/jamba-1.5-large.yaml \
  | kubectl -n "$NAMESPACE" apply --dry-run=server -f - 2>&1 | sed 's/^/  /' || true

step "The runtime: tiny Jamba fixture, ExpertsInt8, CPU backend, OpenAI API on 127.0.0.1:$RUNTIME_PORT"
node dist/runtime/cmd/main.js serve --model test/fixtures/jamba-tiny --quantization expertsint8 \
  --host 127.0.0.1 --port "$RUNTIME_PORT" >"$LOGS/demo-runtime.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do curl -fsS "http://127.0.0.1:$RUNTIME_PORT/ready" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "http://127.0.0.1:$RUNTIME_PORT/ready" >/dev/null || { echo "runtime did not become ready; see $LOGS/demo-runtime.log" >&2; exit 1; }
echo '(the fixture has random weights: the text is nonsense, but token for token what Hugging Face computes)'
echo '$ curl /v1/completions'
curl -fsS "http://127.0.0.1:$RUNTIME_PORT/v1/completions" -H 'content-type: application/json' \
  -d '{"model":"jamba-tiny","prompt":"Once upon a time","max_tokens":16,"temperature":0}'
echo
echo '$ curl /v1/chat/completions'
curl -fsS "http://127.0.0.1:$RUNTIME_PORT/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"jamba-tiny","messages":[{"role":"user","content":"Tell me about the river."}],"max_tokens":16,"temperature":0}'
echo
echo '$ curl /metrics | grep ^jamba_'
curl -fsS "http://127.0.0.1:$RUNTIME_PORT/metrics" | grep -E '^jamba_(prompt|generation)_tokens_total|^jamba_request_success_total|^jamba_mamba_state_slots' || true

step "Done. The cluster is still up: .tools/bin/kubectl --kubeconfig .cluster/kubeconfig get jd -A; 'make cluster-down' stops it."

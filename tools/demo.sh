#!/usr/bin/env bash
# The main job on the embedded default (`make demo`): the local cluster, the operator reconciling a
# JambaDeployment for Jamba-1.5-Large onto fake 8×H100 nodes (scheduling and validation), and a CPU
# JambaDeployment whose real pod (the locally built runtime image, on the real node) serves the tiny Jamba
# fixture checkpoint and answers OpenAI requests through its Service's ClusterIP.
# The cluster stays up afterwards (`make cluster-down` stops it); the operator it starts here is stopped
# on exit, by its recorded PID.
set -euo pipefail
cd "$(dirname "$0")/.."

OPERATOR_METRICS_ADDR=${OPERATOR_METRICS_ADDR:-127.0.0.1:18080}
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

step "Local cluster (etcd, kube-apiserver, controller-manager, scheduler, KWOK GPU nodes, one real node)"
bash tools/images/build.sh
bash tools/cluster/up.sh
kubectl get nodes -o custom-columns='NAME:.metadata.name,GPUS:.status.allocatable.nvidia\.com/gpu,PRODUCT:.metadata.labels.nvidia\.com/gpu\.product,GPU_MEM_MIB:.metadata.labels.nvidia\.com/gpu\.memory,READY:.status.conditions[?(@.type=="Ready")].status'

step "JambaDeployment CRD and the operator"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/jambadeployments.serving.jamba.dev --timeout=60s >/dev/null
mkdir -p "$LOGS"
# Autoscaling decisions every 2 s (default 10 s), so the autoscaling act below reacts within the demo's time.
node dist/operator/cmd/main.js --kubeconfig .cluster/kubeconfig --metrics-addr "$OPERATOR_METRICS_ADDR" --autoscaler-interval 2 >"$LOGS/demo-operator.log" 2>&1 &
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

step "A JambaDeployment on the CPU (gpusPerReplica: 0): a real pod on the real node, default image, tiny fixture checkpoint"
sed "s#path: /var/lib/jamba/jamba-tiny#path: $PWD/test/fixtures/jamba-tiny#" examples/jamba-tiny-cpu.yaml | kubectl -n "$NAMESPACE" apply -f -
kubectl -n "$NAMESPACE" wait jd/jamba-tiny --for=condition=Ready --timeout=300s
kubectl -n "$NAMESPACE" get jd jamba-tiny
kubectl -n "$NAMESPACE" get pods -l app.kubernetes.io/instance=jamba-tiny -o wide
kubectl -n "$NAMESPACE" get pods -l app.kubernetes.io/instance=jamba-tiny \
  -o custom-columns='POD:.metadata.name,IMAGE:.spec.containers[0].image,CONTAINER:.status.containerStatuses[0].containerID' 
service_ip=$(kubectl -n "$NAMESPACE" get service jamba-tiny -o jsonpath='{.spec.clusterIP}')
url="http://$service_ip:8000"
echo "Service jamba-tiny: ClusterIP $service_ip (kube-proxy on the real node routes it to the pod)"
echo '(the fixture has random weights: the text is nonsense, but token for token what Hugging Face computes)'
echo "\$ curl $url/v1/completions"
curl -fsS "$url/v1/completions" -H 'content-type: application/json' \
  -d '{"model":"jamba-tiny","prompt":"Once upon a time","max_tokens":16,"temperature":0}'
echo
echo "\$ curl $url/v1/chat/completions"
curl -fsS "$url/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"jamba-tiny","messages":[{"role":"user","content":"Tell me about the river."}],"max_tokens":16,"temperature":0}'
echo
echo "\$ curl $url/metrics | grep ^jamba_"
curl -fsS "$url/metrics" | grep -E '^jamba_(prompt|generation)_tokens_total|^jamba_request_success_total|^jamba_mamba_state_slots' || true

step "Autoscaling on tokens/s: the CPU JambaDeployment under a streaming load that rises, then falls (live)"
echo "(min 1, max 2 replicas; each line: load, tokens/s offered and streamed back, replicas desired and ready, failures;"
echo " each decision as the operator records it in status.scalingDecisions)"
node dist/tools/demo/autoscaling-demo.js --kubeconfig .cluster/kubeconfig --namespace "$NAMESPACE" --name jamba-tiny
kubectl -n "$NAMESPACE" get jd jamba-tiny

step "Done. The cluster is still up: .tools/bin/kubectl --kubeconfig .cluster/kubeconfig get jd -A; 'make cluster-down' stops it."

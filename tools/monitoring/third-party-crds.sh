#!/usr/bin/env bash
# Prints the paths of third-party CRD manifests, taken from their Go modules at the versions pinned
# (and hash-checked by go.sum) in tools/go/<dir>/, for the tests to install into the local cluster:
#   prometheus-operator   monitoring.coreos.com (ServiceMonitor, PodMonitor, PrometheusRule, ...)
#   inference-extension   inference.networking.k8s.io InferencePool (Gateway API Inference Extension)
# Usage: third-party-crds.sh NAME
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export GOTOOLCHAIN=local

case "${1:-}" in
  prometheus-operator) dir=prometheus-operator module=github.com/prometheus-operator/prometheus-operator sub=example/prometheus-operator-crd glob='monitoring.coreos.com_*.yaml' ;;
  inference-extension) dir=inference-extension module=sigs.k8s.io/gateway-api-inference-extension sub=config/crd/bases glob='inference.networking.k8s.io_*.yaml' ;;
  *) echo "usage: $0 prometheus-operator|inference-extension" >&2; exit 2 ;;
esac

src="$(cd "$ROOT/tools/go/$dir" && go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -n "$src" && -d "$src/$sub" ]] || { echo "third-party-crds: $module has no $sub (tools/go/$dir)" >&2; exit 1; }
ls "$src/$sub"/$glob

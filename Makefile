# Every target installs what it needs. Built Go tools are cached outside the clone
# (JAMBA_TOOLS_CACHE, default ~/.cache/jamba-serving) and linked into .tools/bin.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export JAMBA_TOOLS_CACHE ?= $(HOME)/.cache/jamba-serving
KUBECONFIG_LOCAL := $(CURDIR)/.cluster/kubeconfig

.PHONY: all deps build typecheck tools native microbenchmarks gpu-bundle cluster-up cluster-down test test-unit demo run fixtures bench-runtime bench-operator bench-fuzz bench-download bench-soak bench-autoscaling demo-autoscaling clean

all: build

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

deps: node_modules/.installed

build: deps
	npm run build

typecheck: deps
	npm run typecheck

# The CUDA backend's native library (sm_90a + sm_80), with the pinned CUDA 13.0 toolchain from PyPI
# when no nvcc is installed; cached by source hash, so CI compiles it (it cannot rot) but only once.
native:
	bash runtime/native/build.sh

# The GPU microbenchmarks (tools/gpu/*_microbench.cu) compiled, so that they keep building against the
# kernels they include; cached by source hash.
microbenchmarks:
	bash tools/gpu/build-microbenchmarks.sh

# What the GPU machine needs beside the working tree (tools/gpu/README.md).
gpu-bundle: build native
	bash tools/gpu/bundle.sh

# kubectl, helm, etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kwok (built from Go modules).
tools:
	bash tools/cluster/build-tools.sh

# The runtime and operator images (images/*.Dockerfile), built with buildah without a Docker engine,
# cached by content; cluster-up loads them into the real node under the names the CRD and chart use.
.PHONY: images
images:
	bash tools/images/build.sh

cluster-up: tools images
	bash tools/cluster/up.sh

cluster-down:
	bash tools/cluster/down.sh

# The whole suite: jest's global setup starts the local control plane (or reuses one that is up)
# and its teardown stops what it started.
test: deps tools typecheck build native microbenchmarks
	npm test

# Main job on the embedded default: the local GPU cluster, the operator and a runtime serving the
# tiny fixture checkpoint on the CPU backend.
demo: deps tools build
	bash tools/demo.sh

# The operator against the local cluster.
run: build
	node dist/operator/cmd/main.js --kubeconfig $(KUBECONFIG_LOCAL)

# Regenerates the committed reference fixtures (needs torch + transformers; not part of CI).
fixtures:
	bash tools/fixtures/generate.sh

bench-runtime: build
	node dist/tools/bench/runtime-bench.js

bench-operator: build tools
	node dist/tools/bench/operator-bench.js

# The HTTP fuzzer against the runtime CLI: thousands of cases (the test runs hundreds).
# Download throughput on loopback: ours vs curl (and huggingface_hub when PYTHON names a Python that has it).
bench-download: build
	node dist/tools/bench/download-bench.js $(if $(PYTHON),--python $(PYTHON))

bench-fuzz: build
	node dist/tools/bench/fuzz-bench.js

# The runtime CLI under mixed load with disconnects for 10 minutes: heap, KV blocks, state slots.
bench-soak: build
	node dist/tools/bench/soak.js

# A compressed square-wave load with the autoscaler on, and off at min and at max (docs/BENCHMARKS.md).
bench-autoscaling: build cluster-up
	node dist/tools/bench/autoscaling-bench.js

# The autoscaler live: 90 s of rising and falling load, one readable line a second and each decision.
demo-autoscaling: build cluster-up
	node dist/tools/bench/autoscaling-bench.js --modes on --seconds 90 --cycles 2 --live

clean:
	rm -rf dist .tools .cluster

#!/usr/bin/env bash
# Builds the Go tools the local cluster and the tests use, at the versions pinned in
# tools/go/<module>/go.mod, and links them into .tools/bin/.
#
# Each binary is cached under $JAMBA_TOOLS_CACHE/bin/<name>-<version>-<key>/ where <key> hashes
# everything that changes the output (the module's go.mod and go.sum, the package, the link flags,
# the Go version and target). A second run, or a fresh clone on the same machine, only relinks.
#
# Usage: build-tools.sh [NAME...]   (no names: every tool in the table below)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${JAMBA_TOOLS_CACHE:-$HOME/.cache/jamba-serving}"
BIN_DIR="$ROOT/.tools/bin"
SHARE_DIR="$ROOT/.tools/share"
# The machine's Go, never a toolchain download; the modules say `go 1.26.0`.
export GOTOOLCHAIN=local

# One line per tool: name, module dir under tools/go/, the pinned module, its version, the main package.
# The version is checked against the module dir's go.mod, so the two cannot drift apart.
TOOLS=(
  "etcd                     etcd        go.etcd.io/etcd/server/v3  v3.7.3   go.etcd.io/etcd/server/v3"
  "kube-apiserver           kubernetes  k8s.io/kubernetes          v1.36.3  k8s.io/kubernetes/cmd/kube-apiserver"
  "kube-controller-manager  kubernetes  k8s.io/kubernetes          v1.36.3  k8s.io/kubernetes/cmd/kube-controller-manager"
  "kube-scheduler           kubernetes  k8s.io/kubernetes          v1.36.3  k8s.io/kubernetes/cmd/kube-scheduler"
  "kubectl                  kubernetes  k8s.io/kubernetes          v1.36.3  k8s.io/kubernetes/cmd/kubectl"
  "kubelet                  kubernetes-node  k8s.io/kubernetes          v1.36.3  k8s.io/kubernetes/cmd/kubelet"
  "kube-proxy               kubernetes-node  k8s.io/kubernetes          v1.36.3  k8s.io/kubernetes/cmd/kube-proxy"
  "crictl                   cri-tools   sigs.k8s.io/cri-tools      v1.37.0  sigs.k8s.io/cri-tools/cmd/crictl"
  "kwok                     kwok        sigs.k8s.io/kwok           v0.8.0   sigs.k8s.io/kwok/cmd/kwok"
  "helm                     helm        helm.sh/helm/v3            v3.22.0  helm.sh/helm/v3/cmd/helm"
  "prometheus               prometheus  github.com/prometheus/prometheus  v0.316.0  github.com/prometheus/prometheus/cmd/prometheus"
  "promtool                 prometheus  github.com/prometheus/prometheus  v0.316.0  github.com/prometheus/prometheus/cmd/promtool"
  "promql-operands          prometheus  github.com/prometheus/prometheus  v0.316.0  jamba.dev/tools/prometheus/promql-operands"
  "otlp-sink                otlp        go.opentelemetry.io/proto/otlp    v1.11.1   jamba.dev/tools/otlp"
)

die() { echo "build-tools: ERROR: $*" >&2; exit 1; }
log() { echo "build-tools: $*" >&2; }

# The -X flags the upstream release builds set, so `--version` and the API server's /version tell the truth.
version_ldflags() {
  local module="$1" version="$2"
  case "$module" in
    k8s.io/kubernetes)
      local minor="${version#v1.}"; minor="${minor%%.*}"
      local pkg
      for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
          "$pkg" "$version" "$pkg" "$pkg" "$minor" "$pkg"
      done
      ;;
    sigs.k8s.io/kwok) printf -- '-X sigs.k8s.io/kwok/pkg/consts.Version=%s' "${version#v}" ;;
    helm.sh/helm/v3)  printf -- '-X helm.sh/helm/v3/internal/version.version=%s' "$version" ;;
    # Module v0.3MM.P is Prometheus 3.MM.P.
    github.com/prometheus/prometheus)
      local v="${version#v0.}"
      printf -- '-X github.com/prometheus/common/version.Version=3.%s.%s' "$((${v%%.*} - 300))" "${v#*.}" ;;
  esac
}

# Build tags: Prometheus with only the service discoveries we use (Kubernetes; file and static are built in).
build_tags() {
  case "$1" in
    github.com/prometheus/prometheus) printf -- 'remove_all_sd,enable_kubernetes_sd' ;;
  esac
}

# Data a tool needs beside its binary, taken from its pinned module: KWOK's stock Stages (the
# "fast" set: nodes become Ready and keep a lease, pods become Running and Ready, deleted pods go).
install_data() {
  local name="$1" moddir="$2" module="$3" dest="$4"
  case "$name" in
    kwok)
      local src
      src="$(cd "$moddir" && go list -m -f '{{.Dir}}' "$module")" || die "locating $module source"
      mkdir -p "$dest/stages"
      local d f
      for d in node/fast node/heartbeat-with-lease pod/fast; do
        for f in "$src/kustomize/stage/$d"/*.yaml; do
          [[ "$(basename "$f")" == kustomization.yaml ]] && continue
          cp "$f" "$dest/stages/"
        done
      done
      ls "$dest/stages"/*.yaml >/dev/null 2>&1 || die "no KWOK stages found in $src/kustomize/stage"
      ;;
  esac
}

check_pinned() {
  local gomod="$1" module="$2" version="$3"
  awk -v m="$module" -v v="$version" '
    ($1 == m && $2 == v) || ($1 == "require" && $2 == m && $3 == v) { found = 1 }
    END { exit found ? 0 : 1 }' "$gomod" \
    || die "$gomod does not require $module $version (update the TOOLS table or the module)"
}

build_one() {
  local name="$1" moddir_rel="$2" module="$3" version="$4" package="$5"
  local moddir="$ROOT/tools/go/$moddir_rel"
  [[ -f "$moddir/go.mod" && -f "$moddir/go.sum" ]] || die "$name: missing $moddir/go.mod or go.sum"
  check_pinned "$moddir/go.mod" "$module" "$version"

  local ldflags
  ldflags="-s -w $(version_ldflags "$module" "$version")"
  local tags key
  tags="$(build_tags "$module")"
  key="$( { cat "$moddir/go.mod" "$moddir/go.sum"; echo "$package|$ldflags|$GO_IDENTITY|build-tools-v1"; [[ -z "$tags" ]] || echo "tags=$tags"; } \
          | sha256sum | cut -c1-16)"
  local entry="$CACHE/bin/$name-$version-$key"

  if [[ -x "$entry/$name" ]]; then
    log "$name $version: cached ($entry)"
  else
    log "$name $version: building $package (this takes minutes on a cold Go cache)"
    local tmp="$entry.tmp.$$" start=$SECONDS
    rm -rf "$tmp"; mkdir -p "$tmp"
    if ! (cd "$moddir" && go build -trimpath -tags="$tags" -ldflags="$ldflags" -o "$tmp/$name" "$package") >"$tmp/build.log" 2>&1; then
      cat "$tmp/build.log" >&2
      rm -rf "$tmp"
      die "$name: 'go build $package' failed in tools/go/$moddir_rel (log above)"
    fi
    install_data "$name" "$moddir" "$module" "$tmp"
    rm -f "$tmp/build.log"
    rm -rf "$entry"; mv "$tmp" "$entry"
    log "$name $version: built in $((SECONDS - start)) s"
  fi

  ln -sfn "$entry/$name" "$BIN_DIR/$name"
  if [[ -d "$entry/stages" ]]; then
    mkdir -p "$SHARE_DIR/$name"
    ln -sfn "$entry/stages" "$SHARE_DIR/$name/stages"
  fi
}

main() {
  command -v go >/dev/null || die "the go command is not on PATH (Go 1.26 is needed)"
  command -v sha256sum >/dev/null || die "sha256sum is not on PATH"
  mkdir -p "$CACHE/bin" "$BIN_DIR"
  GO_IDENTITY="$(go env GOVERSION GOOS GOARCH CGO_ENABLED | tr '\n' ' ')" || die "'go env' failed"

  local wanted=("$@") line name found=0
  for name in "${wanted[@]}"; do
    printf '%s\n' "${TOOLS[@]}" | awk -v n="$name" '$1 == n { f = 1 } END { exit !f }' \
      || die "unknown tool '$name' (known: $(printf '%s\n' "${TOOLS[@]}" | awk '{printf "%s ", $1}'))"
  done

  # One build at a time per cache: jest's global setup and `make tools` may race.
  exec 9>"$CACHE/.lock"
  flock 9

  for line in "${TOOLS[@]}"; do
    # shellcheck disable=SC2086
    set -- $line
    if ((${#wanted[@]})); then
      found=0
      for name in "${wanted[@]}"; do [[ "$name" == "$1" ]] && found=1; done
      ((found)) || continue
    fi
    build_one "$@"
  done
}

main "$@"

#!/usr/bin/env bash
# Builds the project's images from images/*.Dockerfile without a Docker engine: Debian's buildah builds
# the same Dockerfiles users build with Docker, FROM a Debian base made by mmdebstrap and a Node build
# image made from this machine's Node; nothing is pulled from a registry.
#
# Cached outside the clone ($JAMBA_TOOLS_CACHE/images), keyed by content:
#   base       debian-bookworm-<key>.tar     key: suite, variant, this script's base recipe
#   images     <name>-<key>.oci.tar           key: the build context's files, the Dockerfile, the base and Node keys
# buildah's own layer cache (--layers) makes a rebuild after a source change recompile only what changed.
# Writes .tools/images.list ("NAME ARCHIVE" per image), which tools/cluster/node.sh imports into the real
# node's containerd under NAME, the name the CRD and the chart use by default (IfNotPresent: never pulled).
# When this checkout's real node is running, the images go into it at once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../cluster/lib.sh"
T0=$SECONDS

CACHE_DIR="$JAMBA_TOOLS_CACHE/images"
LIST="$ROOT/.tools/images.list"
SUITE=bookworm
BASE_NAME="docker.io/library/debian:bookworm-slim"
NODE_VERSION="$(node --version)"
NODE_BUILD_NAME="localhost/jamba-serving/node-build:${NODE_VERSION#v}-$SUITE"
VERSION="$(awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' "$ROOT/charts/jamba-operator/Chart.yaml")"
# name, Dockerfile: the names are the defaults of the CRD (runtime.image) and the chart (image.repository).
IMAGES=(
  "ghcr.io/jamba-serving/jamba-runtime:$VERSION images/runtime.Dockerfile"
  "ghcr.io/jamba-serving/jamba-operator:$VERSION images/operator.Dockerfile"
)
# What the Dockerfiles COPY; nothing else (no host node_modules, dist, .cluster, .tools) enters the context.
CONTEXT_PATHS=(package.json package-lock.json tsconfig.json tsconfig.build.json common runtime operator)

mkdir -p "$LOGS"
# buildah runs RUN steps with an OCI runtime; Debian installs buildah without one (runc is only recommended).
install_debian_packages "the image build" buildah mmdebstrap runc
mkdir -p "$CACHE_DIR" "$ROOT/.tools"
exec 8>"$CACHE_DIR/.lock"
flock 8  # one build at a time per machine: buildah's storage is shared

has_image() { buildah inspect --type image --format '{{index .ImageAnnotations "dev.jamba.key"}}' "$1" 2>/dev/null; }

# The Debian base: mmdebstrap's minbase (has libstdc++, which Node needs), under the name the Dockerfiles use.
base_image() {
  BASE_KEY="$(printf '%s|minbase|ca-certificates|v1' "$SUITE" | sha256sum | cut -c1-16)"
  local tar="$CACHE_DIR/debian-$SUITE-$BASE_KEY.tar"
  if [[ ! -s "$tar" ]]; then
    log "images: mmdebstrap $SUITE (minbase) → $tar"
    mmdebstrap --quiet --format=tar --variant=minbase --include=ca-certificates "$SUITE" "$tar.tmp" >"$LOGS/mmdebstrap.log" 2>&1 \
      || { tail -n 20 "$LOGS/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $LOGS/mmdebstrap.log)"; }
    mv "$tar.tmp" "$tar"
  fi
  [[ "$(has_image "$BASE_NAME")" == "$BASE_KEY" ]] && return 0
  local c
  c="$(buildah from scratch)"
  buildah add --quiet "$c" "$tar" / >/dev/null
  buildah config --cmd /bin/bash --annotation "dev.jamba.key=$BASE_KEY" "$c"
  buildah commit --quiet --rm "$c" "$BASE_NAME" >/dev/null
}

# The build stage's Node (node + npm), from this machine's installation, on the same base.
node_build_image() {
  local node_bin npm_dir
  node_bin="$(readlink -f "$(command -v node)")"
  npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
  [[ -f "$npm_dir/package.json" ]] || die "cannot find npm's directory (found $npm_dir)"
  NODE_KEY="$( { echo "$BASE_KEY"; sha256sum "$node_bin"; cat "$npm_dir/package.json"; } | sha256sum | cut -c1-16)"
  [[ "$(has_image "$NODE_BUILD_NAME")" == "$NODE_KEY" ]] && return 0
  log "images: $NODE_BUILD_NAME from $node_bin and $npm_dir"
  local c
  c="$(buildah from --pull=never "$BASE_NAME")"
  buildah copy --quiet "$c" "$node_bin" /usr/local/bin/node >/dev/null
  buildah copy --quiet "$c" "$npm_dir" /usr/local/lib/node_modules/npm >/dev/null
  buildah run --network=host "$c" -- ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
  buildah run --network=host "$c" -- ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
  buildah config --annotation "dev.jamba.key=$NODE_KEY" "$c"
  buildah commit --quiet --rm "$c" "$NODE_BUILD_NAME" >/dev/null
}

# The build context, as a reproducible tar (sorted, no times or owners), and its hash.
make_context() {
  CONTEXT="$(mktemp -d)"
  (cd "$ROOT" && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
      --exclude='*.test.ts' --exclude='runtime/native/build' --exclude='node_modules' -cf - "${CONTEXT_PATHS[@]}") >"$CONTEXT.tar"
  CONTEXT_KEY="$(sha256sum "$CONTEXT.tar" | cut -c1-16)"
  tar -xf "$CONTEXT.tar" -C "$CONTEXT"
  rm -f "$CONTEXT.tar"
}

build_one() {
  local name="$1" dockerfile="$2" key archive short start=$SECONDS
  key="$( { echo "$CONTEXT_KEY $BASE_KEY $NODE_KEY"; cat "$ROOT/$dockerfile"; } | sha256sum | cut -c1-16)"
  short="$(basename "${name%%:*}")"
  archive="$CACHE_DIR/$short-$key.oci.tar"
  if [[ ! -s "$archive" ]]; then
    log "images: building $name from $dockerfile"
    # npm in the build stage reuses this machine's npm cache, and trusts what this machine's Node trusts.
    local extra=(--volume "$HOME/.npm:/root/.npm")
    if [[ -n "${NODE_EXTRA_CA_CERTS:-}" && -f "$NODE_EXTRA_CA_CERTS" ]]; then
      extra+=(--volume "$NODE_EXTRA_CA_CERTS:/etc/jamba-build-ca.crt:ro" --build-arg "NODE_EXTRA_CA_CERTS=/etc/jamba-build-ca.crt")
    fi
    mkdir -p "$HOME/.npm"
    buildah bud --quiet --pull=never --network=host --layers "${extra[@]}" \
      --build-arg "NODE_IMAGE=$NODE_BUILD_NAME" --build-arg "BASE_IMAGE=$BASE_NAME" \
      -f "$ROOT/$dockerfile" -t "$name" "$CONTEXT" >"$LOGS/image-$short.log" 2>&1 \
      || { tail -n 30 "$LOGS/image-$short.log" >&2; die "building $name failed (log: $LOGS/image-$short.log)"; }
    buildah push --quiet "$name" "oci-archive:$archive.tmp:$name" >/dev/null
    mv "$archive.tmp" "$archive"
    log "images: $name built in $((SECONDS - start)) s ($(du -m "$archive" | cut -f1) MiB archive)"
  fi
  echo "$name $archive" >>"$LIST.tmp"
}

main() {
  mkdir -p "$LOGS"
  base_image
  node_build_image
  make_context
  trap 'rm -rf "$CONTEXT"' EXIT
  rm -f "$LIST.tmp"
  local line
  for line in "${IMAGES[@]}"; do
    # shellcheck disable=SC2086
    build_one $line
  done
  mv "$LIST.tmp" "$LIST"
  # This checkout's real node, when it is up, gets them now.
  load_config
  node_names
  if [[ -n "$(pid_of containerd)" ]]; then node_import_built_images; fi
  log "images ready in $((SECONDS - T0)) s (list: $LIST)"
}

main

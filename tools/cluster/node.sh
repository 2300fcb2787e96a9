# The real node (sourced by up.sh and down.sh): containerd + runc + a CNI bridge + kubelet on this
# machine, and kube-proxy, so that pods without a GPU request run for real next to the KWOK nodes.
# shellcheck shell=bash
#
# Several checkouts may run a cluster on one machine at once, so everything machine-wide is named
# after this cluster (NODE_ID, a hash of the cluster directory) and lives in its own ranges (NODE_SLOT):
#   containerd     its own socket, root and state under .cluster/node/ (never /run/containerd)
#   kubelet        its own root dir, pod log dir, ports (API server port + 7 and + 8), and cgroup root
#                  /jamba-NODE_ID (pods live under /jamba-NODE_ID/kubepods in every cgroup v1 hierarchy)
#   pod network    bridge jmbbNODE_ID, pods 10.213.NODE_SLOT.0/24 (host-local IPAM, no masquerade)
#   Services       10.214.NODE_SLOT.0/24 (the API server's service range for this cluster)
#   kube-proxy     in its own network namespace jamba-NODE_ID, so its iptables chains never meet another
#                  cluster's; the host routes the Service range over a veth pair (10.215.NODE_SLOT.1 on the
#                  host, .2 in the namespace), kube-proxy DNATs and masquerades there; a relay (socat) on
#                  the host end of the pair lets it reach the API server, which listens on loopback only.
# Machine-wide settings the node changes, on purpose: net.ipv4.ip_forward=1 (host → pod routing), and
# the kubelet's own kernel defaults (protectKernelDefaults: false): vm.overcommit_memory=1,
# vm.panic_on_oom=0, kernel.panic=10, kernel.panic_on_oops=1 (docs/LOCAL-CLUSTER.md).

NODE_DIR="$CLUSTER_DIR/node"
JAMBA_TOOLS_CACHE="${JAMBA_TOOLS_CACHE:-$HOME/.cache/jamba-serving}"
REAL_NODE_NAME="${REAL_NODE_NAME:-real-node}"
# Taint of the KWOK CPU node: non-GPU pods go to the real node unless they tolerate it on purpose.
KWOK_CPU_TAINT_KEY="jamba.dev/kwok-cpu-node"
# The packages the node needs from Debian (installed by up.sh when missing).
NODE_PACKAGES=(containerd runc containernetworking-plugins iptables socat buildah)
CNI_BIN_DIR="${CNI_BIN_DIR:-/usr/lib/cni}"
PAUSE_IMAGE="localhost/jamba-serving/pause:1"
NODE_COMPONENTS=(containerd apiserver-relay kubelet kube-proxy)

node_names() {
  NODE_ID="$(printf '%s' "$CLUSTER_DIR" | sha256sum | cut -c1-6)"
  NODE_SLOT="$(node_slot)"
  NETNS="jamba-$NODE_ID"
  HOST_VETH="jmbh$NODE_ID"
  NS_VETH="jmbn$NODE_ID"
  BRIDGE="jmbb$NODE_ID"
  CGROUP_ROOT="/jamba-$NODE_ID"
  POD_SUBNET="10.213.$NODE_SLOT.0/24"
  LINK_HOST_IP="10.215.$NODE_SLOT.1"
  LINK_NS_IP="10.215.$NODE_SLOT.2"
  CONTAINERD_SOCK="$NODE_DIR/containerd.sock"
  KUBELET_PORT="${KUBELET_PORT:-$((APISERVER_PORT + 7))}"
  KUBELET_HEALTHZ_PORT="${KUBELET_HEALTHZ_PORT:-$((APISERVER_PORT + 8))}"
}

crictl_node() { "$BIN/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" --image-endpoint "unix://$CONTAINERD_SOCK" --timeout 30s "$@"; }
ctr_node() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# Why this machine cannot run the real node, or nothing.
node_unsupported_reason() {
  [[ "$(id -u)" == 0 ]] || { echo "the real node needs root (containerd, runc, network namespaces, iptables, cgroups)"; return; }
  [[ -d /sys/fs/cgroup/memory && -d /sys/fs/cgroup/cpu ]] \
    || { echo "the kubelet is set up for cgroup v1 hierarchies (cgroupDriver cgroupfs, failCgroupV1 false); /sys/fs/cgroup/memory and /cpu are missing"; return; }
  command -v apt-get >/dev/null || command -v containerd >/dev/null \
    || { echo "containerd is not installed and there is no apt-get to install ${NODE_PACKAGES[*]} (a Debian-based host is expected)"; return; }
  command -v ip >/dev/null || { echo "the ip command (iproute2) is missing"; return; }
}

# Installs those of the given Debian packages that are missing; "why" says who needs them. apt's own
# lock serialises concurrent installs (several checkouts, the image build and the node at once).
install_debian_packages() {
  local why="$1" missing=() p
  shift
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null || die "$why needs the Debian packages ${missing[*]}, and there is no apt-get to install them"
  log "installing Debian packages $why needs: ${missing[*]}"
  mkdir -p "$LOGS"
  { apt-get update -q -o DPkg::Lock::Timeout=600 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}"; } \
    >"$LOGS/apt-get.log" 2>&1 || { tail -n 20 "$LOGS/apt-get.log" >&2; die "apt-get install ${missing[*]} failed (log: $LOGS/apt-get.log)"; }
}

node_install_packages() { install_debian_packages "the real node" "${NODE_PACKAGES[@]}"; }

# Another cluster on this machine already uses our slot's ranges (a hash collision): say how to move.
node_check_free() {
  if grep -qE "^(10\.213|10\.214|10\.215)\.$NODE_SLOT\.0/" <<<"$(ip route show)"; then
    ip route show | grep -E "^(10\.213|10\.214|10\.215)\.$NODE_SLOT\.0/" >&2
    die "the real node's address ranges (slot $NODE_SLOT: 10.213/10.214/10.215.$NODE_SLOT.0/24) are routed already, by another cluster's real node or something else; run 'make cluster-down' there, or pick another slot with REAL_NODE_SLOT=1..250"
  fi
  local port
  for port in "$KUBELET_PORT" "$KUBELET_HEALTHZ_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port $port (kubelet) is in use; set KUBELET_PORT/KUBELET_HEALTHZ_PORT"; fi
  done
}

# The sandbox ("pause") image, built once from pause.c and cached by the source's hash.
node_pause_archive() {
  local src="$ROOT/tools/cluster/node/pause.c" key dir
  key="$(sha256sum "$src" | cut -c1-16)"
  dir="$JAMBA_TOOLS_CACHE/images"
  PAUSE_ARCHIVE="$dir/pause-$key.oci.tar"
  [[ -s "$PAUSE_ARCHIVE" ]] && return 0
  mkdir -p "$dir"
  local tmp; tmp="$(mktemp -d)"
  gcc -static -O2 -o "$tmp/pause" "$src" || die "compiling $src failed (gcc with static glibc is needed)"
  local c
  c="$(buildah from scratch)" || die "buildah from scratch failed"
  buildah copy --quiet "$c" "$tmp/pause" /pause >/dev/null
  buildah config --entrypoint '["/pause"]' --user 65535:65535 "$c"
  buildah commit --quiet --rm "$c" "$PAUSE_IMAGE" >/dev/null || die "buildah commit of the pause image failed"
  buildah push --quiet "$PAUSE_IMAGE" "oci-archive:$tmp/pause.tar:$PAUSE_IMAGE" || die "buildah push of the pause image failed"
  mv "$tmp/pause.tar" "$PAUSE_ARCHIVE"
  rm -rf "$tmp"
}

# (Not `ctr | grep -q`: grep's early exit would fail the pipeline under pipefail.)
node_has_image() { grep -qxF "$1" <<<"$(ctr_node images ls -q)"; }

# node_import_image ARCHIVE NAME: loads an OCI archive into the node's containerd unless this very
# archive (its path holds its content key) was the last one imported under NAME.
node_import_image() {
  local archive="$1" name="$2" marker
  marker="$NODE_DIR/imported/$(printf '%s' "$name" | tr '/:' '__')"
  if [[ "$(cat "$marker" 2>/dev/null)" == "$archive" ]] && node_has_image "$name"; then return 0; fi
  ctr_node images import "$archive" >/dev/null || die "importing $archive into the node's containerd failed"
  node_has_image "$name" || die "$archive did not contain the image $name"
  mkdir -p "$NODE_DIR/imported"
  echo "$archive" >"$marker"
}

node_network_up() {
  ip netns add "$NETNS"
  ip link add "$HOST_VETH" type veth peer name "$NS_VETH"
  ip link set "$NS_VETH" netns "$NETNS"
  ip addr add "$LINK_HOST_IP/30" dev "$HOST_VETH"
  ip link set "$HOST_VETH" up
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" addr add "$LINK_NS_IP/30" dev "$NS_VETH"
  ip -n "$NETNS" link set "$NS_VETH" up
  ip -n "$NETNS" route add default via "$LINK_HOST_IP"
  ip netns exec "$NETNS" sysctl -qw net.ipv4.ip_forward=1
  ip route add "$SERVICE_CIDR" via "$LINK_NS_IP" dev "$HOST_VETH"
  sysctl -qw net.ipv4.ip_forward=1
}

node_network_down() {
  ip netns del "$NETNS" 2>/dev/null || true
  ip link del "$HOST_VETH" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
}

node_write_configs() {
  mkdir -p "$NODE_DIR/cni/net.d" "$NODE_DIR/containerd" "$NODE_DIR/pod-logs"
  ensure_kubelet_serving_cert "$LINK_HOST_IP"
  cat >"$NODE_DIR/cni/net.d/10-jamba.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "jamba-$NODE_ID",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{ "subnet": "$POD_SUBNET" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    }
  ]
}
EOF
  cat >"$NODE_DIR/containerd.toml" <<EOF
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Root here lacks CAP_SYS_RESOURCE: it cannot give a container a lower oom_score_adj than its own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$NODE_DIR/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$NODE_DIR/cni/net.d"
EOF
  cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $LINK_HOST_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
imageServiceEndpoint: unix://$CONTAINERD_SOCK
# This VM has cgroup v1 hierarchies and containerd 1.6 without systemd.
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupRoot: $CGROUP_ROOT
failSwapOn: false
# The kubelet sets its kernel defaults (vm.overcommit_memory=1, kernel.panic=10, ...): see node.sh.
protectKernelDefaults: false
podLogsDir: $NODE_DIR/pod-logs
# Served with a certificate from the cluster CA (the API server checks it: kubectl logs, exec, port-forward).
tlsCertFile: $PKI/kubelet-server.crt
tlsPrivateKeyFile: $PKI/kubelet-server.key
# Who calls: a client certificate from the cluster CA (the API server's) or a bearer token, checked
# with a TokenReview; what they may do: asked of the API server (SubjectAccessReview), as kubeadm sets it up.
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true, cacheTTL: 30s}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
  webhook: {cacheAuthorizedTTL: 30s, cacheUnauthorizedTTL: 5s}
# The disk and memory belong to the whole machine: evict only when it is really out.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
# Locally built images cannot be pulled again: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 30
resolvConf: /etc/resolv.conf
nodeStatusUpdateFrequency: 5s
EOF
  cat >"$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $NODE_DIR/kube-proxy.kubeconfig
mode: iptables
hostnameOverride: $REAL_NODE_NAME
clusterCIDR: $POD_SUBNET
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the machine-wide conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables:
  # Replies from pods must come back through this namespace to be un-NATed.
  masqueradeAll: true
  localhostNodePorts: false
EOF
  # kube-proxy inside the namespace reaches the API server through the relay on the host end of the pair;
  # the API server's certificate names localhost.
  write_kubeconfig "$NODE_DIR/kube-proxy.kubeconfig" kube-proxy system:kube-proxy
  sed -i "s#server: https://127.0.0.1:$APISERVER_PORT#server: https://$LINK_HOST_IP:$APISERVER_PORT\n    tls-server-name: localhost#" "$NODE_DIR/kube-proxy.kubeconfig"
  write_kubeconfig "$NODE_DIR/kubelet.kubeconfig" kubelet "system:node:$REAL_NODE_NAME"
}

# The binaries the node runs from Debian get a link in .tools/bin, so their PIDs are checked like the rest.
node_link_binaries() {
  ln -sfn "$(command -v containerd)" "$BIN/containerd"
  ln -sfn "$(command -v socat)" "$BIN/apiserver-relay"
}

node_cgroups() {
  local verb="$1" h
  for h in /sys/fs/cgroup/*/; do
    [[ -f "$h/cgroup.procs" ]] || continue
    case "$verb" in
      create) mkdir -p "$h${CGROUP_ROOT#/}" ;;
      remove)
        # Deepest first; a cgroup with a process left in it cannot go (and says so).
        [[ -d "$h${CGROUP_ROOT#/}" ]] && find "$h${CGROUP_ROOT#/}" -depth -type d -exec rmdir {} + 2>/dev/null
        [[ -d "$h${CGROUP_ROOT#/}" ]] && log "cgroup $h${CGROUP_ROOT#/} is still in use"
        ;;
    esac
  done
  return 0
}

node_ready() { [[ "$(kctl get node "$REAL_NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]; }
kube_proxy_healthy() { ip netns exec "$NETNS" curl --silent --fail --max-time 3 "http://127.0.0.1:10256/healthz"; }

node_up() {
  local why
  why="$(node_unsupported_reason)"
  [[ -z "$why" ]] || die "this machine cannot run the real node: $why. The real-pod tests need it; nothing is skipped."
  node_names
  node_install_packages
  require_tools kubelet kube-proxy crictl
  node_check_free
  node_link_binaries
  node_pause_archive
  # Every start is a new node: pod state from a previous run is dropped; images (containerd/root) stay.
  node_unmount_all
  rm -rf "$NODE_DIR/kubelet" "$NODE_DIR/pod-logs" "$NODE_DIR/cni" "$NODE_DIR/containerd/state" "$NODE_DIR/containerd/runc"
  mkdir -p "$NODE_DIR"
  node_write_configs
  node_network_up
  node_cgroups create

  start_component containerd --config "$NODE_DIR/containerd.toml" --log-level warn
  wait_until 60 "containerd ready on $CONTAINERD_SOCK" crictl_node info \
    || { tail -n 30 "$LOGS/containerd.log" >&2; die "containerd did not start (log: $LOGS/containerd.log)"; }
  node_import_image "$PAUSE_ARCHIVE" "$PAUSE_IMAGE"
  node_import_built_images

  start_component apiserver-relay "TCP-LISTEN:$APISERVER_PORT,bind=$LINK_HOST_IP,fork,reuseaddr" "TCP:127.0.0.1:$APISERVER_PORT"
  start_component kubelet \
    --config="$NODE_DIR/kubelet.yaml" \
    --kubeconfig="$NODE_DIR/kubelet.kubeconfig" \
    --root-dir="$NODE_DIR/kubelet" \
    --cert-dir="$NODE_DIR/kubelet/pki" \
    --hostname-override="$REAL_NODE_NAME" \
    --node-ip="$LINK_HOST_IP" \
    --node-labels="type=real,jamba.dev/real-node=true"
  COMPONENT_NETNS="$NETNS" start_component kube-proxy --config="$NODE_DIR/kube-proxy.yaml"

  wait_until 120 "real node $REAL_NODE_NAME Ready (containerd, kubelet, CNI bridge $BRIDGE, pods $POD_SUBNET)" node_ready \
    || { tail -n 40 "$LOGS/kubelet.log" >&2; die "the real node did not become Ready (log: $LOGS/kubelet.log)"; }
  wait_until 60 "kube-proxy healthy (namespace $NETNS, Services $SERVICE_CIDR)" kube_proxy_healthy \
    || { tail -n 30 "$LOGS/kube-proxy.log" >&2; die "kube-proxy did not become healthy (log: $LOGS/kube-proxy.log)"; }
}

# Locally built images (tools/images/build.sh lists their OCI archives in .tools/images.list) go into the
# node's containerd under the names the CRD and the chart use, so IfNotPresent never pulls them.
node_import_built_images() {
  local list="$ROOT/.tools/images.list" name archive
  [[ -f "$list" ]] || return 0
  while read -r name archive; do
    [[ -n "$name" && -s "$archive" ]] && node_import_image "$archive" "$name"
  done <"$list"
  return 0
}

node_unmount_all() {
  [[ -d "$NODE_DIR" ]] || return 0
  local m
  # Deepest first.
  while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(awk -v d="$NODE_DIR/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
}

# Shims of this node's containerd (they outlive it when containers are left).
node_shim_pids() {
  local proc
  for proc in /proc/[0-9]*; do
    grep -q -- "containerd-shim.*-address $CONTAINERD_SOCK " <<<"$({ tr '\0' ' ' <"$proc/cmdline"; } 2>/dev/null)" && echo "${proc#/proc/}"
  done
  return 0
}

node_down() {
  node_names
  stop_components 15 kubelet
  # Pods first (their CNI teardown needs containerd), then containerd, whose shims then exit.
  if [[ -n "$(pid_of containerd)" ]]; then
    crictl_node rmp --all --force >/dev/null 2>&1 || log "crictl rmp failed; containers are stopped with containerd below"
  fi
  stop_components 15 containerd
  local pid
  for pid in $(node_shim_pids); do
    log "containerd shim $pid outlived containerd; stopping it"
    kill -TERM "$pid" 2>/dev/null || true
  done
  local i
  for ((i = 0; i < 50; i++)); do [[ -z "$(node_shim_pids)" ]] && break; sleep 0.1; done
  for pid in $(node_shim_pids); do kill -KILL "$pid" 2>/dev/null || true; done
  stop_components 15 kube-proxy apiserver-relay
  node_unmount_all
  node_network_down
  node_cgroups remove
}

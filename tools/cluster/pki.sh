# Certificates and kubeconfigs for the local cluster (sourced by up.sh).
# shellcheck shell=bash
#
# Laid out as kubeadm does: one CA signs the serving certificates of etcd, kube-apiserver and the real
# node's kubelet and the client certificates of the API server (to etcd and to the kubelet), the admin, the controller manager, the scheduler and
# KWOK; a front-proxy CA signs the API server's aggregation-layer client certificate; the
# service-account signing key stands apart. Keys are ECDSA P-256 (fast to make).
PKI_LAYOUT=4  # bump when the set of files changes, so an older .cluster/pki is regenerated

# openssl's chatter goes to a log; a failure names the step.
_openssl() { openssl "$@" 2>>"$PKI/openssl.log" || die "openssl $1 failed (see $PKI/openssl.log)"; }

_new_key() { _openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# _new_ca NAME CN: a self-signed CA, NAME.key + NAME.crt.
_new_ca() {
  _new_key "$PKI/$1.key"
  _openssl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/$1.crt"
}

# _sign NAME SUBJECT EXTENSIONS [CA]: NAME.key + NAME.crt signed by CA (default: ca).
_sign() {
  local name="$1" subject="$2" extensions="$3" ca="${4:-ca}"
  _new_key "$PKI/$name.key"
  _openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr"
  printf '%b\n' "$extensions" >"$PKI/$name.ext"
  _openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt"
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

_client_ext='basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth'
_server_ext() {
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s' "$1"
}

# The first address of the service range is the `kubernetes` Service's cluster IP.
_kubernetes_service_ip() {
  local base="${SERVICE_CIDR%/*}"
  echo "${base%.*}.$(( ${base##*.} + 1 ))"
}

ensure_pki() {
  # Reused across restarts so kubeconfigs handed out stay valid; `make clean` removes them.
  [[ "$(cat "$PKI/complete" 2>/dev/null)" == "$PKI_LAYOUT" ]] && return 0
  command -v openssl >/dev/null || die "openssl is not on PATH"
  rm -rf "$PKI"; mkdir -p "$PKI"; chmod 700 "$PKI"
  _new_ca ca jamba-local-ca
  _new_ca front-proxy-ca jamba-local-front-proxy-ca
  _sign etcd-server "/CN=etcd-server" "$(_server_ext 'DNS:localhost,IP:127.0.0.1')"
  _sign apiserver-etcd-client "/CN=kube-apiserver-etcd-client" "$_client_ext"
  _sign apiserver "/CN=kube-apiserver" "$(_server_ext "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$(_kubernetes_service_ip)")"
  _sign admin "/O=system:masters/CN=jamba-admin" "$_client_ext"
  _sign kube-controller-manager "/CN=system:kube-controller-manager" "$_client_ext"
  _sign kube-scheduler "/CN=system:kube-scheduler" "$_client_ext"
  # KWOK writes the status of every fake node and its pods, which only a cluster admin may do.
  _sign kwok "/O=system:masters/CN=kwok-controller" "$_client_ext"
  # The real node (node.sh): the kubelet as a member of system:nodes (Node authorizer), and kube-proxy
  # (bound to system:node-proxier by the API server's bootstrap policy).
  _sign kubelet "/O=system:nodes/CN=system:node:$REAL_NODE_NAME" "$_client_ext"
  _sign kube-proxy "/CN=system:kube-proxy" "$_client_ext"
  # The API server to the kubelet (logs, exec, port-forward), as kubeadm's apiserver-kubelet-client; the
  # kubelet authorizes it through the API server (webhook), where system:masters may do anything.
  _sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$_client_ext"
  _sign front-proxy-client "/CN=front-proxy-client" "$_client_ext" front-proxy-ca
  _new_key "$PKI/sa.key"
  _openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
  chmod 600 "$PKI"/*.key
  echo "$PKI_LAYOUT" >"$PKI/complete"
}

# ensure_kubelet_serving_cert ADDRESS: the kubelet's serving certificate, signed by the cluster CA for
# the node's name and address, so that the API server (--kubelet-certificate-authority) trusts it.
# Made at every node start: the address depends on the node's slot.
ensure_kubelet_serving_cert() {
  _sign kubelet-server "/CN=$REAL_NODE_NAME" "$(_server_ext "DNS:$REAL_NODE_NAME,IP:$1")"
  chmod 600 "$PKI/kubelet-server.key"
}

# write_kubeconfig FILE CERT_NAME USER: a self-contained kubeconfig (certificates embedded).
write_kubeconfig() {
  local file="$1" cert="$2" user="$3"
  local tmp="$file.tmp.$$"
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: jamba-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$cert.crt")
    client-key-data: $(base64 -w0 <"$PKI/$cert.key")
contexts:
- name: $user@jamba-local
  context:
    cluster: jamba-local
    user: $user
current-context: $user@jamba-local
EOF
  chmod 600 "$tmp"
  mv "$tmp" "$file"
}

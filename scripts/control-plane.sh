#!/usr/bin/env bash
# A real Kubernetes control plane (etcd + kube-apiserver) on 127.0.0.1, for tests and for trying
# the operator by hand. No scheduler, controller-manager or kubelet: objects exist, pods do not.
#
#   scripts/control-plane.sh up DIR     start both, wait for /readyz, write DIR/kubeconfig, DIR/env
#   scripts/control-plane.sh down DIR   stop both by their PIDs (DIR/*.pid)
#
# Flags follow kubebuilder's envtest: etcd without fsync, RBAC authorization, generated serving
# and client certificates, service-account signing keys, the ServiceAccount admission plugin off
# (no token controller runs). The binaries come from scripts/install-kube-tools.sh.
set -euo pipefail

usage() { echo "usage: $0 up|down DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

stop_pid() {
  local file=$1
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

if [ "$cmd" = down ]; then
  stop_pid "$dir/kube-apiserver.pid"
  stop_pid "$dir/etcd.pid"
  exit 0
fi
[ "$cmd" = up ] || usage

here=$(cd "$(dirname "$0")" && pwd)
bin=$(bash "$here/install-kube-tools.sh")
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pki="$dir/pki"
mkdir -p "$pki"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Certificates: one CA signs the API server's serving certificate and the admin's client
# certificate (group system:masters); a separate key pair signs service-account tokens.
if [ ! -f "$pki/admin.crt" ]; then
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=iter8-test-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
      -subj "/CN=kube-apiserver" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
      -subj "/O=system:masters/CN=admin" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile admin.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext
  )
fi

etcd_port=$(free_port)
peer_port=$(free_port)
api_port=$(free_port)

"$bin/etcd" --name iter8-test --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "iter8-test=http://127.0.0.1:$peer_port" \
  --unsafe-no-fsync --log-level warn >"$dir/etcd.log" 2>&1 &
echo $! >"$dir/etcd.pid"

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break
  kill -0 "$(cat "$dir/etcd.pid")" 2>/dev/null || { echo "etcd exited; see $dir/etcd.log" >&2; tail -20 "$dir/etcd.log" >&2; exit 1; }
  sleep 0.1
done

"$bin/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
  --cert-dir "$pki" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --authorization-mode RBAC \
  --service-account-issuer "https://127.0.0.1:$api_port" \
  --service-account-key-file "$pki/sa.pub" \
  --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range 10.0.0.0/24 \
  --disable-admission-plugins ServiceAccount \
  --allow-privileged=true \
  --profiling=false \
  >"$dir/kube-apiserver.log" 2>&1 &
echo $! >"$dir/kube-apiserver.pid"

cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: iter8-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: iter8-test
  context:
    cluster: iter8-test
    user: admin
current-context: iter8-test
EOF

cat >"$dir/env" <<EOF
export KUBECONFIG=$dir/kubeconfig
export PATH=$bin:\$PATH
EOF

ready=""
for _ in $(seq 1 600); do
  if curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$api_port/readyz" >/dev/null 2>&1; then
    ready=yes
    break
  fi
  if ! kill -0 "$(cat "$dir/kube-apiserver.pid")" 2>/dev/null; then
    echo "kube-apiserver exited; see $dir/kube-apiserver.log" >&2
    tail -20 "$dir/kube-apiserver.log" >&2
    "$0" down "$dir"
    exit 1
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "kube-apiserver not ready after 60 s; see $dir/kube-apiserver.log" >&2
  "$0" down "$dir"
  exit 1
fi
echo "control plane up: https://127.0.0.1:$api_port (source $dir/env)"

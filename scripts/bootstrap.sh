#!/usr/bin/env bash
# Installs what building and testing ringkv needs on a Debian machine, and nothing that is
# already there. Safe to run again and again.
set -euo pipefail

need=()
# RocksDB's bindings are generated with bindgen, which needs libclang itself (libclang.so or
# libclang-N.so; libclang-cpp.so, which other LLVM packages bring, is not it); its C++ needs g++.
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* >/dev/null 2>&1 \
  && ! ldconfig -p 2>/dev/null | grep -Eq 'libclang(-[0-9.]+)?\.so'; then
  need+=(libclang-dev)
fi
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# The fault-injection suite cuts links with iptables inside network namespaces it creates
# with unshare (util-linux, always present on Debian) and brings their loopback up with ip.
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || need+=(iptables)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need+=(iproute2)
# ringkv-bench's etcd target speaks etcd's gRPC API; its client generates code with protoc.
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
# The Python TLS test makes its certificates with the openssl command.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The operations pack's tests check the alert rules with promtool (Debian's prometheus) and
# the systemd unit with systemd-analyze.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The container and Kubernetes files are checked offline: compose.yaml by docker-compose's
# schema (`docker-compose config`), the kustomize overlays rendered by `kubectl kustomize`
# (then validated by kubernetes-validate, in .venv). The entrypoint's readiness wait uses curl.
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
command -v curl >/dev/null 2>&1 || need+=(curl)
# The Python bindings are built and tested in a virtualenv (Debian splits venv out of python3).
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)

# --peers: the stores benches/compare.sh measures ringkv against.
if [ "${1:-}" = "--peers" ]; then
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
  command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || need+=(etcd-server)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "bootstrap: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy >/dev/null 2>&1 || true

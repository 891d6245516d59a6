#!/usr/bin/env bash
# Install the system packages sessionraft needs, only those missing. Needs root (or sudo) when
# something is missing.
#   scripts/install-deps.sh            build dependencies (clang/libclang for rocksdb's bindgen)
#                                      and openssl (scripts/dev-certs.sh, the TLS test)
#   scripts/install-deps.sh --cluster  also what scripts/cluster.sh uses (curl, python3, procps,
#                                      haproxy as the load balancer)
#   scripts/install-deps.sh --bench    what --cluster installs, and scripts/bench.sh's baselines
#                                      (redis-server, redis-tools, etcd-server, etcd-client)
#   scripts/install-deps.sh --all      also what the tests and operator scripts use (chromium and
#                                      chromium-driver for the browser tests, haproxy; iptables and
#                                      libfaketime for scripts/chaos.sh; redis-server, etcd-server and
#                                      etcd-client for scripts/bench.sh's baselines)
set -euo pipefail

want=(clang libclang-dev openssl)
case "${1:-}" in
--all)
    # tests: real browser (chromium + chromedriver); curl, python3 and haproxy for the operator
    # scripts; iptables, iproute2 (ss) and libfaketime for scripts/chaos.sh
    want+=(iproute2 iptables procps curl python3 haproxy chromium chromium-driver libfaketime redis-server redis-tools)
    # scripts/bench.sh's other baseline (redis-server is above): a 3-member etcd cluster (etcd 3.4)
    # and etcdctl
    want+=(etcd-server etcd-client)
    ;;
--cluster)
    want+=(procps curl python3 haproxy)
    ;;
--bench)
    want+=(procps curl python3 haproxy redis-server redis-tools etcd-server etcd-client)
    ;;
esac

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
echo "installing: ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

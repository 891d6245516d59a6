#!/usr/bin/env bash
# Install what sessionraft needs, only what is missing. Needs root (or sudo) when a system
# package is missing.
#   scripts/install-deps.sh            build dependencies (clang/libclang for rocksdb's bindgen)
#                                      and openssl (scripts/dev-certs.sh, the TLS test)
#   scripts/install-deps.sh --cluster  also what scripts/cluster.sh uses (curl, python3, procps,
#                                      haproxy as the load balancer)
#   scripts/install-deps.sh --bench    what --cluster installs, and scripts/bench.sh's baselines
#                                      (redis-server, redis-tools, etcd-server, etcd-client) and
#                                      its second HTTP load tool (wrk)
#   scripts/install-deps.sh --resp-clients
#                                      the real Redis clients of tests/it/resp_clients.rs: redis-cli
#                                      (redis-tools), redis-server, haproxy; `npm ci` of the
#                                      Express app (tests/resp_clients/express/node_modules, from
#                                      its package-lock.json) and a Python venv for the Flask app
#                                      (tests/resp_clients/flask/.venv, from its pinned
#                                      requirements.txt); both redone only when their pins change
#   scripts/install-deps.sh --all      all of the above, and what the other tests and operator
#                                      scripts use (chromium and chromium-driver for the browser
#                                      tests; iptables and libfaketime for scripts/chaos.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

want=(clang libclang-dev openssl)
resp_clients=false
case "${1:-}" in
--all)
    # tests: real browser (chromium + chromedriver); curl, python3 and haproxy for the operator
    # scripts; iptables, iproute2 (ss) and libfaketime for scripts/chaos.sh
    want+=(iproute2 iptables procps curl python3 haproxy chromium chromium-driver libfaketime redis-server redis-tools)
    # scripts/bench.sh's other baseline (redis-server is above): a 3-member etcd cluster (etcd 3.4)
    # and etcdctl
    want+=(etcd-server etcd-client wrk)
    resp_clients=true
    ;;
--cluster)
    want+=(procps curl python3 haproxy)
    ;;
--bench)
    want+=(procps curl python3 haproxy redis-server redis-tools etcd-server etcd-client wrk)
    ;;
--resp-clients)
    want+=(procps curl python3 haproxy redis-server redis-tools)
    resp_clients=true
    ;;
esac
if $resp_clients; then
    # `python3 -m venv` needs Debian's ensurepip; Node and npm from Debian only when the machine
    # has none (the pinned clients want Node >= 20; Debian 12's is 18)
    want+=(python3-venv)
    command -v node >/dev/null && command -v npm >/dev/null || want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
    echo "installing: ${missing[*]}" >&2
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! $resp_clients; then
    exit 0
fi

# The content hash of the files that pin a client's packages, kept next to what they installed:
# nothing is reinstalled while it matches.
pin_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }

express=tests/resp_clients/express
stamp="$express/node_modules/.sessionraft-pins"
want_hash=$(pin_hash "$express/package.json" "$express/package-lock.json")
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want_hash" ]]; then
    echo "installing the Express client app's packages (npm ci in $express)" >&2
    (cd "$express" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want_hash" >"$stamp"
fi

flask=tests/resp_clients/flask
stamp="$flask/.venv/.sessionraft-pins"
want_hash=$(pin_hash "$flask/requirements.txt")
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want_hash" ]]; then
    echo "installing the Flask client app's packages (a venv in $flask/.venv)" >&2
    rm -rf "$flask/.venv"
    python3 -m venv "$flask/.venv"
    "$flask/.venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
        --require-virtualenv -r "$flask/requirements.txt"
    echo "$want_hash" >"$stamp"
fi

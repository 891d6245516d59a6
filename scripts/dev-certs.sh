#!/usr/bin/env bash
# Make a local DEVELOPMENT certificate authority and a TLS certificate for every node of a
# cluster configuration, for the `[tls]` section of cluster.toml.
#
#   scripts/dev-certs.sh [--config cluster.toml] [--out DIR] [--node ID=HOST[,HOST...]]...
#                        [--lb HOST[,HOST...]] [--client NAME]... [--force]
#
#   --config FILE   the configuration whose [[node]]s get certificates (default: the repository's
#                   cluster.toml); read with `sessionraft nodes --json` (a configuration that
#                   takes its secrets from the environment needs them set here too)
#   --out DIR       where the files go (default: certs/ next to the configuration):
#                   ca.crt, ca.key, node<ID>.crt, node<ID>.key (keys mode 600), and lb.crt,
#                   lb.key when it has a [load_balancer] (HAProxy's HTTPS frontend,
#                   scripts/cluster.sh)
#   --node ID=HOSTS also a certificate for a node outside the configuration (one to be added
#                   later with `sessionraft cluster add-node`), valid for the given IPs and/or
#                   DNS names (e.g. --node 4=10.0.0.14,sessionraft-3.sessionraft)
#   --lb HOSTS      also (or instead of [load_balancer] addr) name these IPs and/or DNS names in
#                   lb.crt (scripts/hosts.sh --tls: the load balancer's host name)
#   --client NAME   also a client certificate for an application server, for a Redis-protocol
#                   door with `[resp] tls_auth_clients = "yes"` (or "optional"):
#                   client-NAME.crt, client-NAME.key (CN = NAME, extendedKeyUsage clientAuth
#                   only, 825 days; NAME of letters, digits, '.', '_', '-'); e.g.
#                   redis-cli --tls --cacert ca.crt --cert client-app.crt --key client-app.key
#   --force         make a new CA (and so new node certificates) even if one exists
#
# The CA (EC P-256, 10 years) is kept when it exists, so running the script again only issues
# what is missing: a node certificate is kept while it is signed by the CA, names exactly the
# node's hosts and is valid for 30 more days. Node certificates (EC P-256, 825 days) carry a
# subjectAltName for every host the node is reached at — its http_addr, raft_addr and
# resp_addr: an IP SAN for an IP address, a DNS SAN for a name (listen addresses and the
# unspecified 0.0.0.0 / :: are not names of the node and get none) — plus DNS:localhost and
# IP:127.0.0.1 (a health check on the node's own machine). The load balancer's certificate
# (lb.crt, same rules) names the host of [load_balancer] addr, localhost and 127.0.0.1. Prints
# the [tls] snippet to paste into the config.
#
# Environment: SESSIONRAFT_BIN (default target/release/sessionraft).
# Needs openssl (scripts/install-deps.sh installs it) and python3.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
    echo "dev-certs.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

config="$repo/cluster.toml"
out=""
force=0
extra=()
clients=()
lb_hosts=""
while (($#)); do
    case "$1" in
    --config) config=${2:?--config needs a file}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --node) extra+=("${2:?--node needs ID=HOST[,HOST...]}"); shift 2 ;;
    --client) clients+=("${2:?--client needs a NAME}"); shift 2 ;;
    --lb) lb_hosts=${2:?--lb needs HOST[,HOST...]}; shift 2 ;;
    --force) force=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
done

[[ -f $config ]] || die "no configuration at $config"
for name in "${clients[@]}"; do
    [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] ||
        die "--client $name: a name of letters, digits, '.', '_' and '-' (at most 64)"
done
config_dir=$(cd "$(dirname "$config")" && pwd)
out=${out:-$config_dir/certs}
bin=${SESSIONRAFT_BIN:-$repo/target/release/sessionraft}
[[ -x $bin ]] || die "$bin is missing: build it first (cargo build --release --workspace)"
if ! command -v openssl >/dev/null; then
    "$repo/scripts/install-deps.sh"
    command -v openssl >/dev/null || die "openssl is missing (apt-get install openssl)"
fi

command -v python3 >/dev/null || die "python3 is missing (apt-get install python3)"

# id -> the node's subjectAltName ("IP:10.0.0.11, DNS:node1.example, DNS:localhost, ...") and
# the same as `openssl x509 -ext subjectAltName` prints it: the configuration's nodes (read by
# field name from `sessionraft nodes --json`), then the --node ones.
nodes_json=$("$bin" nodes --json --config "$config") || die "cannot read the nodes of $config"
lb_addr=$("$bin" lb-addr --config "$config") || die "cannot read the load balancer of $config"
sans=$(LB_ADDR="$lb_addr" LB_HOSTS="$lb_hosts" python3 -c '
import os
import ipaddress, json, re, sys

NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


def fail(message):
    sys.exit("dev-certs.sh: " + message)


def host_of(addr):
    """The host of HOST:PORT or [IPv6]:PORT."""
    host = addr.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def entry(host, where):
    """("IP", address) or ("DNS", name); None for an unspecified address."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.lower().rstrip(".")
        if not NAME.fullmatch(name) or name.rsplit(".", 1)[-1].isdigit():
            fail(f"{where}: {host!r} is neither an IP address nor a DNS name")
        return ("DNS", name)
    return None if ip.is_unspecified else ("IP", ip)


def printed(kind, value):
    """As openssl prints it: IPv6 uncompressed, upper-case groups without leading zeros."""
    if kind == "DNS":
        return "DNS:" + value
    if value.version == 6:
        return "IP Address:" + ":".join(f"{int(g, 16):X}" for g in value.exploded.split(":"))
    return f"IP Address:{value}"


hosts = {}
for node in json.loads(sys.stdin.read()):
    where = "node " + str(node["id"])
    hosts[int(node["id"])] = [
        (host_of(node[key]), f"{where} {key}")
        for key in ("http_addr", "raft_addr", "resp_addr")
        if node.get(key)
    ]
for spec in sys.argv[1:]:
    m = re.fullmatch(r"([0-9]+)=([^=]+)", spec)
    if not m:
        fail(f"--node {spec}: expected ID=HOST[,HOST...]")
    hosts[int(m[1])] = [(h.strip(), "--node " + spec) for h in m[2].split(",") if h.strip()]
if not hosts:
    fail("no nodes")
lb = os.environ.get("LB_ADDR", "").strip()
lb_hosts = [h.strip() for h in os.environ.get("LB_HOSTS", "").split(",") if h.strip()]
ids = sorted(hosts) + (["lb"] if lb or lb_hosts else [])
if lb or lb_hosts:
    hosts["lb"] = ([(host_of(lb), "[load_balancer] addr")] if lb else []) + [
        (h, "--lb") for h in lb_hosts
    ]
for node_id in ids:
    entries = []
    for host, where in hosts[node_id] + [("localhost", ""), ("127.0.0.1", "")]:
        e = entry(host, where)
        if e is not None and e not in entries:
            entries.append(e)
    san = ", ".join(f"{kind}:{value}" for kind, value in entries)
    print(f"{node_id}\t{san}\t" + ", ".join(printed(*e) for e in entries))
' "${extra[@]}" <<<"$nodes_json")
declare -A san_of=() san_want=()
while IFS=$'\t' read -r id san want; do
    [[ -n $id ]] || continue
    san_of[$id]=$san
    san_want[$id]=$want
done <<<"$sans"
((${#san_of[@]} > 0)) || die "$config has no nodes"

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A new EC P-256 private key (PKCS#8 PEM), mode 600 from the start.
new_key() {
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null)
    chmod 600 "$1"
}

ca_crt="$out/ca.crt"
ca_key="$out/ca.key"
if ((force == 0)) && [[ -f $ca_crt && -f $ca_key ]]; then
    echo "keeping the CA $ca_crt (--force makes a new one)" >&2
else
    cat >"$work/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = sessionraft development CA
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    new_key "$ca_key"
    openssl req -x509 -new -key "$ca_key" -sha256 -days 3650 -config "$work/ca.cnf" \
        -extensions v3_ca -out "$ca_crt"
    chmod 644 "$ca_crt"
    echo "made a new development CA: $ca_crt" >&2
fi

# The SAN line openssl prints for a certificate ("IP Address:127.0.0.1, DNS:localhost").
san_printed() {
    openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | sed -n '2{s/^ *//;p}'
}

for id in $(printf '%s\n' "${!san_of[@]}" | sort -n); do
    name=node$id
    cn="sessionraft node $id"
    if [[ $id == lb ]]; then
        name=lb
        cn="sessionraft load balancer"
    fi
    crt="$out/$name.crt"
    key="$out/$name.key"
    san=${san_of[$id]}
    want=${san_want[$id]}
    if [[ -f $crt && -f $key ]] &&
        openssl verify -CAfile "$ca_crt" "$crt" >/dev/null 2>&1 &&
        openssl x509 -in "$crt" -noout -checkend $((30 * 86400)) >/dev/null &&
        [[ $(san_printed "$crt") == "$want" ]]; then
        echo "keeping $crt ($san)" >&2
        continue
    fi
    cat >"$work/node.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    new_key "$key"
    openssl req -new -key "$key" -subj "/CN=$cn" -out "$work/node.csr"
    openssl x509 -req -in "$work/node.csr" -CA "$ca_crt" -CAkey "$ca_key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 \
        -extfile "$work/node.ext" -out "$crt" 2>/dev/null
    chmod 644 "$crt"
    echo "issued $crt ($san)" >&2
done

# Client certificates (--client NAME): kept while signed by the CA for client use, naming NAME
# and valid 30 more days.
for name in "${clients[@]}"; do
    crt="$out/client-$name.crt"
    key="$out/client-$name.key"
    if [[ -f $crt && -f $key ]] &&
        openssl verify -CAfile "$ca_crt" -purpose sslclient "$crt" >/dev/null 2>&1 &&
        openssl x509 -in "$crt" -noout -checkend $((30 * 86400)) >/dev/null &&
        [[ $(openssl x509 -in "$crt" -noout -subject -nameopt RFC2253) == "subject=CN=$name" ]]; then
        echo "keeping $crt (client $name)" >&2
        continue
    fi
    cat >"$work/client.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    new_key "$key"
    openssl req -new -key "$key" -subj "/CN=$name" -out "$work/client.csr"
    openssl x509 -req -in "$work/client.csr" -CA "$ca_crt" -CAkey "$ca_key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 \
        -extfile "$work/client.ext" -out "$crt" 2>/dev/null
    chmod 644 "$crt"
    echo "issued client certificate $crt (CN=$name)" >&2
done

# Paths in the snippet: relative to the configuration's directory when inside it.
rel=$(realpath -m --relative-to="$config_dir" "$out")
case "$rel" in ../*) rel=$out ;; esac
cat <<EOF

# Paste into $config (every node and every CLI of the cluster needs the same section; the CA
# key ca.key stays with whoever issues certificates and is not needed by the nodes):
[tls]
cert_dir = "$rel"
ca = "$rel/ca.crt"
EOF

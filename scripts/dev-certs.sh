#!/usr/bin/env bash
# Make a local DEVELOPMENT certificate authority and a TLS certificate for every node of a
# cluster configuration, for the `[tls]` section of cluster.toml.
#
#   scripts/dev-certs.sh [--config cluster.toml] [--out DIR] [--node ID=IP[,IP...]]... [--force]
#
#   --config FILE   the configuration whose [[node]]s get certificates (default: the repository's
#                   cluster.toml); read with `sessionraft nodes`
#   --out DIR       where the files go (default: certs/ next to the configuration):
#                   ca.crt, ca.key, node<ID>.crt, node<ID>.key (keys mode 600)
#   --node ID=IPS   also a certificate for a node outside the configuration (one to be added
#                   later with `sessionraft cluster add-node`), valid for the given IPs
#   --force         make a new CA (and so new node certificates) even if one exists
#
# The CA (EC P-256, 10 years) is kept when it exists, so running the script again only issues
# what is missing: a node certificate is kept while it is signed by the CA, names the node's IPs
# and is valid for 30 more days. Node certificates (EC P-256, 825 days) carry IP SANs for the
# node's HTTP and Raft IPs plus DNS:localhost. Prints the [tls] snippet to paste into the config.
#
# Environment: SESSIONRAFT_BIN (default target/release/sessionraft).
# Needs openssl (scripts/install-deps.sh installs it).
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
while (($#)); do
    case "$1" in
    --config) config=${2:?--config needs a file}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --node) extra+=("${2:?--node needs ID=IP[,IP...]}"); shift 2 ;;
    --force) force=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
done

[[ -f $config ]] || die "no configuration at $config"
config_dir=$(cd "$(dirname "$config")" && pwd)
out=${out:-$config_dir/certs}
bin=${SESSIONRAFT_BIN:-$repo/target/release/sessionraft}
[[ -x $bin ]] || die "$bin is missing: build it first (cargo build --release --workspace)"
if ! command -v openssl >/dev/null; then
    "$repo/scripts/install-deps.sh"
    command -v openssl >/dev/null || die "openssl is missing (apt-get install openssl)"
fi

# The IP of IP:PORT or [IPv6]:PORT.
ip_of() {
    local host=${1%:*}
    host=${host#[}
    echo "${host%]}"
}

# id -> "IP,IP" of every node: the configuration's, then --node ones.
declare -A ips=()
nodes=$("$bin" nodes --config "$config") || die "cannot read the nodes of $config"
while IFS=$'\t' read -r id http _data_dir raft; do
    [[ -n $id ]] || continue
    list=$(ip_of "$http")
    raft_ip=$(ip_of "${raft:-$http}")
    [[ $raft_ip == "$list" ]] || list+=",$raft_ip"
    ips[$id]=$list
done <<<"$nodes"
for spec in "${extra[@]}"; do
    [[ $spec =~ ^[0-9]+=[^=]+$ ]] || die "--node $spec: expected ID=IP[,IP...]"
    ips[${spec%%=*}]=${spec#*=}
done
((${#ips[@]} > 0)) || die "$config has no nodes"

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

# subjectAltName value for "IP,IP": IP:a, IP:b, DNS:localhost
san_of() {
    local san="" ip
    IFS=, read -ra list <<<"$1"
    for ip in "${list[@]}"; do san+="IP:$ip, "; done
    echo "${san}DNS:localhost"
}

# The SAN line openssl prints for a certificate ("IP Address:127.0.0.1, DNS:localhost").
san_printed() {
    openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | sed -n '2{s/^ *//;p}'
}

for id in $(printf '%s\n' "${!ips[@]}" | sort -n); do
    crt="$out/node$id.crt"
    key="$out/node$id.key"
    san=$(san_of "${ips[$id]}")
    want=${san//IP:/IP Address:}
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
    openssl req -new -key "$key" -subj "/CN=sessionraft node $id" -out "$work/node.csr"
    openssl x509 -req -in "$work/node.csr" -CA "$ca_crt" -CAkey "$ca_key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 \
        -extfile "$work/node.ext" -out "$crt" 2>/dev/null
    chmod 644 "$crt"
    echo "issued $crt ($san)" >&2
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

#!/usr/bin/env bash
# Measures `sessionraft import` for the README ("Move in from Redis"): for each size, a fresh
# redis-server (cache settings) filled with N sessions (`SET sess:<id> <JSON> EX 86400`), and for
# each rate limit a fresh 3-node cluster (scripts/cluster.sh: HAProxy in front) that one
# `sessionraft import` fills through the load balancer. Prints, per run, the import's keys/s and
# what it cost the source: redis-server's CPU (share of one core, from /proc/PID/stat) and the
# commands per second it served (INFO stats), over the import's duration.
#
#   scripts/bench-import.sh [--sessions 100000,1000000] [--rates 10000,0] [--value-bytes 200]
#                           [--port-base 7000] [--out FILE]
#
# --rates: `import --rate` values (keys/s; 0 = no limit). --port-base: the cluster's ports are
# those of the embedded cluster.toml moved by (BASE - 7000) (7100 -> BASE+100 ...); the
# redis-server gets BASE+379. Needs a quiet machine for figures worth printing; everything it
# starts is stopped by pid on exit. Markdown rows go to stdout (and --out, appended).
set -euo pipefail
cd "$(dirname "$0")/.."

sessions=100000,1000000
rates=10000,0
value_bytes=200
port_base=7000
out=""
while (($#)); do
    case "$1" in
    --sessions) sessions=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --value-bytes) value_bytes=$2; shift 2 ;;
    --port-base) port_base=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "bench-import.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

bin=${SESSIONRAFT_BIN:-target/release/sessionraft}
[[ -x $bin ]] || { echo "bench-import.sh: $bin missing: cargo build --release --workspace" >&2; exit 2; }
command -v redis-server >/dev/null || scripts/install-deps.sh --bench

work=$(mktemp -d /tmp/bench-import.XXXXXX)
redis_pid=""
cleanup() {
    if [[ -f $work/cluster.toml ]]; then
        SESSIONRAFT_CONFIG=$work/cluster.toml SESSIONRAFT_RUN_DIR=$work/run SESSIONRAFT_BIN=$bin \
            scripts/cluster.sh down >/dev/null 2>&1 || true
    fi
    [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# the embedded cluster.toml with its 7xxx ports moved to the base (data dirs under $work)
python3 - "$port_base" "$work/cluster.toml" <<'EOF'
import re, subprocess, sys
base, dest = int(sys.argv[1]), sys.argv[2]
text = open("cluster.toml").read()
text = re.sub(r"127\.0\.0\.1:7(\d\d\d)\b", lambda m: f"127.0.0.1:{base + int(m.group(1))}", text)
open(dest, "w").write(text)
EOF
lb_resp=$("$bin" lb-addr --resp --config "$work/cluster.toml")
redis_port=$((port_base + 379))
cluster() {
    SESSIONRAFT_CONFIG=$work/cluster.toml SESSIONRAFT_RUN_DIR=$work/run SESSIONRAFT_BIN=$bin \
        scripts/cluster.sh "$@"
}

# redis-server's CPU ticks (user + system) and commands served so far
source_counters() {
    local ticks cmds
    ticks=$(awk '{print $14 + $15}' "/proc/$redis_pid/stat")
    cmds=$(redis-cli -p "$redis_port" INFO stats | tr -d '\r' | awk -F: '/^total_commands_processed:/ {print $2}')
    echo "$ticks $cmds"
}

row() {
    echo "$1"
    [[ -z $out ]] || echo "$1" >>"$out"
}

row "| sessions | --rate | seconds | keys/s | source CPU (one core) | source commands/s |"
row "|---:|---:|---:|---:|---:|---:|"
hz=$(getconf CLK_TCK)
for n in ${sessions//,/ }; do
    [[ -n $redis_pid ]] && { kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; }
    mkdir -p "$work/redis"
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$work/redis" >"$work/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 100); do redis-cli -p "$redis_port" PING >/dev/null 2>&1 && break; sleep 0.1; done
    # N sessions of about value_bytes bytes, as connect-redis stores them (JSON, a day to live)
    python3 - "$n" "$value_bytes" <<'EOF' | redis-cli -p "$redis_port" --pipe >/dev/null
import os, sys
n, size = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
for i in range(n):
    key = b"sess:" + os.urandom(16).hex().encode()
    value = b'{"cookie":{"httpOnly":true,"path":"/"},"counter":%d,"pad":"' % i
    value += b"x" * max(0, size - len(value) - 2) + b'"}'
    args = [b"SET", key, value, b"EX", b"86400"]
    out.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
EOF
    got=$(redis-cli -p "$redis_port" DBSIZE)
    [[ $got == "$n" ]] || { echo "bench-import.sh: the source holds $got keys, not $n" >&2; exit 1; }
    for rate in ${rates//,/ }; do
        cluster down >/dev/null 2>&1 || true
        rm -rf "$work/data" "$work/run"
        cluster up >"$work/cluster-up.log" 2>&1 || { cat "$work/cluster-up.log" >&2; exit 1; }
        read -r ticks0 cmds0 < <(source_counters)
        t0=$(date +%s.%N)
        "$bin" import --from "redis://127.0.0.1:$redis_port" --to "redis://$lb_resp" \
            --config "$work/cluster.toml" --rate "$rate" --json >"$work/summary.json" 2>"$work/import.log" \
            || { tail -5 "$work/import.log" >&2; exit 1; }
        t1=$(date +%s.%N)
        read -r ticks1 cmds1 < <(source_counters)
        copied=$(redis-cli -h "${lb_resp%:*}" -p "${lb_resp##*:}" DBSIZE)
        [[ $copied == "$n" ]] || { echo "bench-import.sh: the cluster holds $copied keys, not $n" >&2; exit 1; }
        python3 - "$n" "$rate" "$t0" "$t1" "$ticks0" "$ticks1" "$cmds0" "$cmds1" "$hz" "$work/summary.json" <<'EOF' | while read -r line; do row "$line"; done
import json, sys
n, rate = int(sys.argv[1]), int(sys.argv[2])
t0, t1, k0, k1, c0, c1, hz = (float(x) for x in sys.argv[3:10])
s = json.load(open(sys.argv[10]))
secs = t1 - t0
cpu = (k1 - k0) / hz / secs * 100
print(f"| {n:,} | {rate or 'none'} | {secs:.1f} | {n / secs:,.0f} | {cpu:.0f}% | {(c1 - c0) / secs:,.0f} |")
assert s["failed"] == 0 and s["created"] == n, s
EOF
    done
done

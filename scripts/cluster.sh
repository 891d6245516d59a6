#!/usr/bin/env bash
# Operate a local sessionraft cluster from cluster.toml.
#
#   scripts/cluster.sh up            install what is missing, build if needed, start every node,
#                                    wait until all are ready, print the URLs
#   scripts/cluster.sh down          stop every node (SIGTERM, then SIGKILL after 10 s), by pid
#   scripts/cluster.sh status        table: node, pid, role, term, leader, applied, health
#   scripts/cluster.sh start N | stop N | kill N | restart N | logs N [-f]
#
# Environment: SESSIONRAFT_CONFIG (default: ./cluster.toml), SESSIONRAFT_RUN_DIR (default: ./run,
# holds pid files and logs). Processes are only ever signalled through the pid files this script
# wrote, after checking the pid still runs the sessionraft binary: nothing is killed by name.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONFIG="${SESSIONRAFT_CONFIG:-$ROOT/cluster.toml}"
RUN_DIR="${SESSIONRAFT_RUN_DIR:-$ROOT/run}"
BIN="${SESSIONRAFT_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sessionraft}"
READY_TIMEOUT="${SESSIONRAFT_READY_TIMEOUT:-60}"

die() { echo "cluster.sh: $*" >&2; exit 1; }

build() {
    "$ROOT/scripts/install-deps.sh"
    if [[ ! -x "$BIN" || "${SESSIONRAFT_REBUILD:-0}" == 1 ]]; then
        echo "building sessionraft (release; the first build compiles RocksDB, ~10 min)..." >&2
        # the same build as scripts/test.sh: one set of features, RocksDB compiled once
        (cd "$ROOT" && cargo build --release --workspace --all-targets)
    fi
}

# id <TAB> http_addr <TAB> data_dir, one line per node
nodes() { "$BIN" nodes --config "$CONFIG"; }
node_field() { nodes | awk -F'\t' -v id="$1" -v f="$2" '$1 == id { print $f }'; }

pid_file() { echo "$RUN_DIR/node$1.pid"; }
log_file() { echo "$RUN_DIR/logs/node$1.log"; }

# The recorded pid of node N if it is alive and still our binary; empty otherwise.
live_pid() {
    local f pid
    f="$(pid_file "$1")"
    [[ -f "$f" ]] || return 0
    pid="$(cat "$f")"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "sessionraft serve"; then
        echo "$pid"
    fi
}

start_node() {
    local id="$1" pid
    [[ -n "$(node_field "$id" 1)" ]] || die "no node $id in $CONFIG"
    pid="$(live_pid "$id")"
    if [[ -n "$pid" ]]; then
        echo "node $id already running (pid $pid)"
        return 0
    fi
    mkdir -p "$RUN_DIR/logs"
    # setsid: the node survives this shell; its pid is recorded for every later signal
    setsid "$BIN" serve --config "$CONFIG" --node "$id" >>"$(log_file "$id")" 2>&1 < /dev/null &
    echo $! >"$(pid_file "$id")"
    echo "node $id started (pid $!, log $(log_file "$id"))"
}

signal_node() {
    local id="$1" sig="$2" pid
    pid="$(live_pid "$id")"
    if [[ -z "$pid" ]]; then
        rm -f "$(pid_file "$id")"
        echo "node $id is not running"
        return 0
    fi
    kill "-$sig" "$pid"
    if [[ "$sig" == KILL ]]; then
        rm -f "$(pid_file "$id")"
        echo "node $id killed (pid $pid)"
        return 0
    fi
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "node $id did not stop in 10 s; SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pid_file "$id")"
    echo "node $id stopped"
}

wait_ready() {
    local id addr deadline=$((SECONDS + READY_TIMEOUT))
    for id in "$@"; do
        addr="$(node_field "$id" 2)"
        until curl -fsS -m 2 "http://$addr/readyz" >/dev/null 2>&1; do
            if [[ -z "$(live_pid "$id")" ]]; then
                tail -n 20 "$(log_file "$id")" >&2 || true
                die "node $id exited; see $(log_file "$id")"
            fi
            ((SECONDS < deadline)) || die "node $id not ready after ${READY_TIMEOUT}s; see $(log_file "$id")"
            sleep 0.2
        done
    done
}

cmd_up() {
    build
    local ids
    ids="$(nodes | cut -f1)"
    for id in $ids; do start_node "$id"; done
    # shellcheck disable=SC2086
    wait_ready $ids
    echo
    echo "sessionraft is up ($(echo $ids | wc -w) nodes):"
    for id in $ids; do
        echo "  node $id: demo http://$(node_field "$id" 2)/   dashboard http://$(node_field "$id" 2)/cluster"
    done
    echo "stop it with: scripts/cluster.sh down"
}

cmd_down() {
    [[ -x "$BIN" ]] || die "no binary at $BIN"
    local id
    for id in $(nodes | cut -f1); do signal_node "$id" TERM; done
}

cmd_status() {
    printf '%-5s %-8s %-22s %-10s %6s %7s %9s %s\n' node pid address role term leader applied health
    local id addr pid st ready
    while IFS=$'\t' read -r id addr _; do
        pid="$(live_pid "$id")"
        st="$(curl -fsS -m 2 "http://$addr/cluster/status" 2>/dev/null || true)"
        ready="$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://$addr/readyz" 2>/dev/null || true)"
        if [[ -n "$st" ]]; then
            python3 - "$id" "${pid:--}" "$addr" "$ready" "$st" <<'PY'
import json, sys
node, pid, addr, ready, raw = sys.argv[1:6]
s = json.loads(raw)
dash = lambda v: "-" if v is None else v
health = "ready" if ready == "200" else "not-ready"
print(f"{node:<5} {pid:<8} {addr:<22} {s['role']:<10} {s['term']:>6} {dash(s['leader']):>7} {dash(s['applied_index']):>9} {health}")
PY
        else
            printf '%-5s %-8s %-22s %-10s %6s %7s %9s %s\n' "$id" "${pid:--}" "$addr" unreachable - - - down
        fi
    done < <(nodes)
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
start) [[ -n "${2:-}" ]] || die "usage: start N"; build; start_node "$2"; wait_ready "$2" ;;
stop) [[ -n "${2:-}" ]] || die "usage: stop N"; signal_node "$2" TERM ;;
kill) [[ -n "${2:-}" ]] || die "usage: kill N"; signal_node "$2" KILL ;;
restart) [[ -n "${2:-}" ]] || die "usage: restart N"; signal_node "$2" TERM; start_node "$2"; wait_ready "$2" ;;
logs)
    [[ -n "${2:-}" ]] || die "usage: logs N [-f]"
    if [[ "${3:-}" == -f ]]; then tail -n 100 -f "$(log_file "$2")"; else tail -n 200 "$(log_file "$2")"; fi
    ;;
*) sed -n '2,12p' "$0"; exit 2 ;;
esac

#!/usr/bin/env bash
# Operate a local sessionraft cluster from cluster.toml, behind an HAProxy load balancer.
#
#   scripts/cluster.sh up               install what is missing, build if needed, start every node
#                                       (not already running), wait until all are ready, start
#                                       HAProxy on the [load_balancer] address, print the URLs
#                                       (load balancer first; its Redis URL too when the config has a
#                                       [load_balancer] resp_addr and nodes have a resp_addr: a TCP
#                                       frontend over the nodes' Redis-protocol ports, each node
#                                       health-checked on its HTTP /readyz). Running it twice starts
#                                       nothing twice.
#   scripts/cluster.sh down             stop HAProxy and every node (SIGTERM, then SIGKILL after 10 s)
#   scripts/cluster.sh status           table: node, pid, role, term, leader, applied, health, and a
#                                       line for the load balancer (pid, address, servers UP)
#   scripts/cluster.sh lb-status        each HAProxy backend server: pxname, svname, status, last check
#   scripts/cluster.sh start N | stop N | kill N | restart N
#                                       one node: start (and wait until ready), SIGTERM, SIGKILL, both
#   scripts/cluster.sh logs N [-f]      a node's log; `logs haproxy [-f]` the load balancer's
#   scripts/cluster.sh rolling-restart  restart every node, one at a time, followers first and the
#                                       leader last; each must be ready, caught up with the leader
#                                       and UP in HAProxy before the next one goes down
#   scripts/cluster.sh add-node N HTTP RAFT
#                                       start node N (not in the config; data in RUN_DIR/data/nodeN),
#                                       add it to the cluster (learner, catch up, voter), add it to
#                                       HAProxy (reload). On refusal the node is stopped and
#                                       forgotten. Data left by an earlier node N is moved aside.
#   scripts/cluster.sh remove-node N    remove node N from the cluster; then stop it and take it
#                                       out of HAProxy (reload). On refusal nothing changes.
#
# Environment: SESSIONRAFT_CONFIG (default: ./cluster.toml), SESSIONRAFT_RUN_DIR (default: ./run),
# SESSIONRAFT_READY_TIMEOUT (seconds a node may take to become ready, default 60),
# SESSIONRAFT_LB_ADDR (IP:PORT of the load balancer; overrides the config's [load_balancer] addr),
# SESSIONRAFT_LB_RESP_ADDR (IP:PORT of its Redis-protocol frontend; overrides [load_balancer]
# resp_addr; only with a load balancer),
# SESSIONRAFT_BIN, SESSIONRAFT_HAPROXY (binaries), SESSIONRAFT_REBUILD=1 (rebuild on up/start).
#
# RUN_DIR holds the state: nodeN.pid, haproxy.pid, haproxy.cfg (generated), logs/, and
#   extra-nodes    nodes added with add-node: `id<TAB>http<TAB>data_dir<TAB>raft` per line. Every
#                  command covers them like config nodes (up starts them again after a down). They
#                  have no Redis-protocol port: the RESP frontend leaves them out.
#   removed-nodes  ids of config nodes removed with remove-node, one per line. The script cannot
#                  edit the config file: these nodes stay in it but are skipped by up, HAProxy and
#                  rolling-restart, and `start N` refuses them. Bring one back with `add-node N`
#                  (its config addresses and data dir are reused), or drop it from the config.
# Start from scratch: `down`, then delete RUN_DIR and the data dirs.
#
# Processes are only ever signalled through the pid files this script wrote, after checking in
# /proc/PID/cmdline that the pid still runs that node (or that HAProxy on RUN_DIR/haproxy.cfg):
# nothing is killed by name.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
CONFIG="$(abspath "${SESSIONRAFT_CONFIG:-$ROOT/cluster.toml}")"
RUN_DIR="$(abspath "${SESSIONRAFT_RUN_DIR:-$ROOT/run}")"
BIN="${SESSIONRAFT_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sessionraft}"
READY_TIMEOUT="${SESSIONRAFT_READY_TIMEOUT:-60}"
EXTRA_FILE="$RUN_DIR/extra-nodes"
REMOVED_FILE="$RUN_DIR/removed-nodes"
HAPROXY_CFG="$RUN_DIR/haproxy.cfg"
HAPROXY_PID="$RUN_DIR/haproxy.pid"
HAPROXY_LOG="$RUN_DIR/logs/haproxy.log"
LB_BACKEND=nodes # the HAProxy backend holding the nodes (pxname in the stats CSV)
RESP_BACKEND=resp # the TCP backend over the nodes' resp_addr (its servers are named nodeN too)

die() { echo "cluster.sh: $*" >&2; exit 1; }
warn() { echo "cluster.sh: $*" >&2; }

[[ "$READY_TIMEOUT" =~ ^[0-9]+$ ]] || die "SESSIONRAFT_READY_TIMEOUT must be a number of seconds"

# Milliseconds since the epoch, and "1.234s" since a value of it.
now_ms() { local t="${EPOCHREALTIME//[.,]/}"; echo $((10#$t / 1000)); }
since() { local d=$(($(now_ms) - $1)); printf '%d.%03ds' $((d / 1000)) $((d % 1000)); }

build() {
    "$ROOT/scripts/install-deps.sh" --cluster
    if [[ ! -x "$BIN" || "${SESSIONRAFT_REBUILD:-0}" == 1 ]]; then
        echo "building sessionraft (release; the first build compiles RocksDB, ~10 min)..." >&2
        # the same build as scripts/test.sh: one set of features, RocksDB compiled once
        (cd "$ROOT" && cargo build --release --workspace --all-targets)
    fi
}

# ---------------------------------------------------------------------------------------------
# Serialize the commands that start or change things (up, start, restart, rolling-restart,
# add-node, remove-node) per RUN_DIR. Children never inherit the lock's descriptor (9>&-).
LOCK_DEPTH=0
lock() {
    if ((LOCK_DEPTH == 0)); then
        mkdir -p "$RUN_DIR"
        exec 9>>"$RUN_DIR/.lock"
        if ! flock -n 9; then
            echo "waiting for another scripts/cluster.sh command on $RUN_DIR to finish..." >&2
            flock 9
        fi
    fi
    LOCK_DEPTH=$((LOCK_DEPTH + 1))
}
unlock() {
    LOCK_DEPTH=$((LOCK_DEPTH - 1))
    if ((LOCK_DEPTH == 0)); then
        flock -u 9
        exec 9>&-
    fi
}

# ---------------------------------------------------------------------------------------------
# Nodes: `id<TAB>http_addr<TAB>data_dir<TAB>raft_addr<TAB>resp_addr` lines (resp_addr `-` when
# the node has none), from the config and extra-nodes (4 fields: no resp_addr).
CONFIG_NODES=""
LB_ADDR=""
LB_RESP_ADDR=""

# Reads the config once (the binary validates it). With `quiet`, failures are not fatal (down
# must work with a broken config or no binary at all: it goes by the pid files).
load_config() {
    local raw help
    if [[ ! -x "$BIN" ]]; then
        [[ "${1:-}" == quiet ]] && return 0
        die "no binary at $BIN (scripts/cluster.sh up builds it)"
    fi
    if ! raw="$("$BIN" nodes --config "$CONFIG" 2>&1)"; then
        [[ "${1:-}" == quiet ]] && return 0
        die "cannot read $CONFIG: $raw"
    fi
    # older binaries print 3 columns (raft_addr is then the http_addr) or 4 (no resp_addr)
    CONFIG_NODES="$(awk -F'\t' 'NF >= 3 && $1 ~ /^[0-9]+$/ {
        print $1 "\t" $2 "\t" $3 "\t" ((NF >= 4 && $4 != "") ? $4 : $2) "\t" ((NF >= 5 && $5 != "") ? $5 : "-") }' <<<"$raw")"
    if [[ -n "${SESSIONRAFT_LB_ADDR:-}" ]]; then
        LB_ADDR="$SESSIONRAFT_LB_ADDR"
    else
        help="$("$BIN" --help 2>/dev/null || true)"
        if grep -qE '^[[:space:]]+lb-addr([[:space:]]|$)' <<<"$help"; then
            if ! LB_ADDR="$("$BIN" lb-addr --config "$CONFIG" 2>&1)"; then
                [[ "${1:-}" == quiet ]] && LB_ADDR="" && return 0
                die "cannot read the load balancer address of $CONFIG: $LB_ADDR"
            fi
            LB_ADDR="${LB_ADDR//[[:space:]]/}"
        fi
    fi
    if [[ -n "${SESSIONRAFT_LB_RESP_ADDR:-}" ]]; then
        LB_RESP_ADDR="$SESSIONRAFT_LB_RESP_ADDR"
    elif [[ -n "$LB_ADDR" ]] && "$BIN" lb-addr --help 2>/dev/null | grep -q -- '--resp'; then
        if ! LB_RESP_ADDR="$("$BIN" lb-addr --config "$CONFIG" --resp 2>&1)"; then
            [[ "${1:-}" == quiet ]] && LB_RESP_ADDR="" && return 0
            die "cannot read the load balancer's resp_addr of $CONFIG: $LB_RESP_ADDR"
        fi
        LB_RESP_ADDR="${LB_RESP_ADDR//[[:space:]]/}"
    fi
    # HAProxy still running from an earlier config or environment: its addresses are in its config
    if [[ -z "$LB_ADDR" && -n "$(haproxy_live_pid)" ]]; then
        LB_ADDR="$(awk '$1 == "bind" { print $2; exit }' "$HAPROXY_CFG")"
        LB_RESP_ADDR="$(awk '$1 == "frontend" { f = $2 } f == "resp" && $1 == "bind" { print $2; exit }' "$HAPROXY_CFG")"
    fi
}

extra_nodes() {
    if [[ -f "$EXTRA_FILE" ]]; then awk -F'\t' 'NF >= 4 && $1 ~ /^[0-9]+$/' "$EXTRA_FILE"; fi
}
# config nodes, then added nodes (a config node wins over an extra-nodes line with its id)
all_nodes() {
    { if [[ -n "$CONFIG_NODES" ]]; then printf '%s\n' "$CONFIG_NODES"; fi; extra_nodes; } |
        awk -F'\t' '!seen[$1]++'
}
# all nodes but the removed ones: what up, HAProxy and rolling-restart cover
active_nodes() {
    local removed=""
    if [[ -f "$REMOVED_FILE" ]]; then removed="$(tr '\n' ' ' <"$REMOVED_FILE")"; fi
    all_nodes | awk -F'\t' -v removed=" $removed " 'index(removed, " " $1 " ") == 0'
}
node_line() { all_nodes | awk -F'\t' -v id="$1" '$1 == id'; }
# `id<TAB>resp_addr<TAB>http_addr` of the active nodes that have a resp_addr
resp_nodes() { active_nodes | awk -F'\t' 'NF >= 5 && $5 != "-" && $5 != "" { print $1 "\t" $5 "\t" $2 }'; }
# the RESP frontend is served: a load balancer with a resp_addr and at least one node with one
resp_lb() { [[ -n "$LB_ADDR" && -n "$LB_RESP_ADDR" && -n "$(resp_nodes)" ]]; }
node_resp() { local r; r="$(node_field "$1" 5)"; [[ "$r" == - ]] || echo "$r"; }
node_field() { node_line "$1" | cut -f"$2"; }
is_config_node() { [[ -n "$CONFIG_NODES" ]] && awk -F'\t' -v id="$1" '$1 == id { f = 1 } END { exit !f }' <<<"$CONFIG_NODES"; }
is_extra() { ! is_config_node "$1" && extra_nodes | awk -F'\t' -v id="$1" '$1 == id { f = 1 } END { exit !f }'; }
is_removed() { [[ -f "$REMOVED_FILE" ]] && grep -qx "$1" "$REMOVED_FILE"; }
drop_line() { # drop_line FILE ID: remove the lines of FILE whose first field is ID
    [[ -f "$1" ]] || return 0
    awk -F'\t' -v id="$2" '$1 != id' "$1" >"$1.tmp"
    mv "$1.tmp" "$1"
}
valid_id() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

pid_file() { echo "$RUN_DIR/node$1.pid"; }
log_file() { echo "$RUN_DIR/logs/node$1.log"; }

# argv of a process, one element per line (empty if it is gone)
proc_args() { tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null || true; }

# The recorded pid of node N if it is alive and still `sessionraft serve ... --node N`.
live_pid() {
    local f pid args
    f="$(pid_file "$1")"
    [[ -f "$f" ]] || return 0
    pid="$(<"$f")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
    args="$(proc_args "$pid")"
    local argv0="${args%%$'\n'*}"
    if [[ "${argv0##*/}" == sessionraft && $'\n'"$args"$'\n' == *$'\n'serve$'\n'*$'\n'--node$'\n'"$1"$'\n'* ]]; then
        echo "$pid"
    fi
}

# The recorded pid of the HAProxy master if it is alive and runs RUN_DIR/haproxy.cfg.
is_our_haproxy() {
    local args argv0
    args="$(proc_args "$1")"
    argv0="${args%%$'\n'*}"
    [[ "${argv0##*/}" == *haproxy* && $'\n'"$args"$'\n' == *$'\n'-f$'\n'"$HAPROXY_CFG"$'\n'* ]]
}
haproxy_live_pid() {
    local pid
    [[ -f "$HAPROXY_PID" ]] || return 0
    pid="$(<"$HAPROXY_PID")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && is_our_haproxy "$pid"; then
        echo "$pid"
    fi
}

http_code() { curl -s -o /dev/null -w '%{http_code}' -m 2 "$1" 2>/dev/null || true; }
status_json() { curl -fsS -m 2 "http://$1/cluster/status" 2>/dev/null || true; }
# json_get JSON KEY...: each top-level KEY's value on its own line ("" for null or missing)
json_get() {
    python3 - "$@" <<'PY'
import json, sys
try:
    d = json.loads(sys.argv[1])
except ValueError:
    d = {}
for k in sys.argv[2:]:
    v = d.get(k) if isinstance(d, dict) else None
    print("" if v is None else v)
PY
}

# ---------------------------------------------------------------------------------------------
# Node processes

start_node() {
    local id="$1" http data raft pid
    local args=(serve --config "$CONFIG" --node "$id")
    [[ -n "$(node_line "$id")" ]] || die "no node $id in $CONFIG nor in $EXTRA_FILE"
    if is_removed "$id"; then
        die "node $id was removed from the cluster (listed in $REMOVED_FILE); bring it back with: scripts/cluster.sh add-node $id"
    fi
    lock
    pid="$(live_pid "$id")"
    if [[ -n "$pid" ]]; then
        echo "node $id already running (pid $pid)"
        unlock
        return 0
    fi
    if is_extra "$id"; then
        IFS=$'\t' read -r _ http data raft < <(node_line "$id")
        args+=(--http "$http" --raft "$raft" --data-dir "$data")
        mkdir -p "$(dirname "$data")"
    fi
    mkdir -p "$RUN_DIR/logs"
    # setsid: the node survives this shell; its pid is recorded for every later signal
    setsid "$BIN" "${args[@]}" >>"$(log_file "$id")" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$(pid_file "$id")"
    # Until the forked shell has exec'd the binary, /proc/PID/cmdline is still bash's and
    # live_pid would call the node gone: wait for the exec (or the exit) before going on.
    for _ in $(seq 1 100); do
        if [[ -n "$(live_pid "$id")" ]] || ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.05
    done
    echo "node $id started (pid $pid, log $(log_file "$id"))"
    unlock
}

# wait_exit_or_kill PID LABEL: wait up to 10 s for PID (already signalled) to exit, then SIGKILL it.
wait_exit_or_kill() {
    local pid="$1" label="$2"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "$label did not stop in 10 s; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
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
    wait_exit_or_kill "$pid" "node $id"
    rm -f "$(pid_file "$id")"
    echo "node $id stopped"
}

# wait_http ID PATH DEADLINE: until node ID answers 200 on PATH. Returns 1 (with a message) if
# its process exits or $SECONDS reaches DEADLINE first.
wait_http() {
    local id="$1" path="$2" deadline="$3" addr
    addr="$(node_field "$id" 2)"
    until [[ "$(http_code "http://$addr$path")" == 200 ]]; do
        if [[ -z "$(live_pid "$id")" ]]; then
            tail -n 20 "$(log_file "$id")" >&2 || true
            warn "node $id exited; see $(log_file "$id")"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            warn "node $id: no 200 from $path after ${READY_TIMEOUT}s; see $(log_file "$id")"
            return 1
        fi
        sleep 0.2
    done
}

wait_ready() {
    local id deadline=$((SECONDS + READY_TIMEOUT))
    for id in "$@"; do
        wait_http "$id" /readyz "$deadline" || exit 1
    done
}

# ---------------------------------------------------------------------------------------------
# HAProxy

HAPROXY=""
find_haproxy() {
    local c
    HAPROXY="${SESSIONRAFT_HAPROXY:-$(command -v haproxy || true)}"
    for c in /usr/sbin/haproxy /usr/local/sbin/haproxy; do
        if [[ -z "$HAPROXY" && -x "$c" ]]; then HAPROXY="$c"; fi
    done
    [[ -n "$HAPROXY" && -x "$HAPROXY" ]] || die "haproxy not found (scripts/install-deps.sh --cluster installs it)"
}

haproxy_cfg() {
    cat <<EOF
# Generated by scripts/cluster.sh from $CONFIG (do not edit: up, add-node and
# remove-node rewrite it, then reload HAProxy with SIGUSR2 to the master).
global
    log stdout format raw local0 info
    maxconn 4096
    # old workers still holding long requests (SSE) after a reload are stopped after this
    hard-stop-after 30s

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    # a fresh connection to a node for every request: a node that stops closes no idle
    # connection under a request HAProxy is sending (that request could not be retried)
    option http-server-close
    # on a reload the old worker answers the next request of an idle keep-alive client with
    # "Connection: close" instead of closing under it (a request racing that close would fail)
    option idle-close-on-response
    timeout connect 1s
    # above the nodes' request deadline (raft.request_deadline_ms, 3 s)
    timeout client 30s
    timeout server 30s
    # /cluster/events (SSE) sends a view every 500 ms, well inside client/server; tunnel covers
    # upgraded connections
    timeout tunnel 1h
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    # a node's /readyz answers in a millisecond or two; one silent for 250 ms (stopped,
    # swapping) fails the check, so that a paused node leaves the rotation within ~0.7 s
    timeout check 250ms
    # resend a request only when it certainly changed nothing: the connection to a node failed,
    # or the node answered 503 (x-sessionraft-outcome: not-applied: it cannot serve now and
    # proposed nothing). A 504 (outcome unknown: a write may have been applied) is never resent,
    # nor is a request whose answer did not come. Each retry goes to another node; L7 retries
    # need the request body buffered.
    retries 3
    retry-on conn-failure 503
    option redispatch 1
    option http-buffer-request

frontend lb
    bind $LB_ADDR
    stats enable
    stats uri /haproxy-stats
    stats refresh 2s
    default_backend $LB_BACKEND

backend $LB_BACKEND
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
EOF
    local id http
    while IFS=$'\t' read -r id http _; do
        # inter 250ms, fastinter: after a first failed check the next come every 100 ms, so a
        # node that turned unready (cut off from the quorum, no leader) or stopped answering is
        # out within 0.35-0.6 s (+ the check timeout when it is silent)
        printf '    server node%s %s check inter 250ms fastinter 100ms fall 2 rise 2\n' "$id" "$http"
    done < <(active_nodes)
    if resp_lb; then haproxy_resp_cfg; fi
}

# The Redis-protocol part: its own defaults (TCP), a frontend on LB_RESP_ADDR and a backend over
# the resp_addr of the active nodes that have one (a node without one is left out).
haproxy_resp_cfg() {
    cat <<EOF

# Redis protocol (RESP): one address for the clients' Redis URL; TCP, one client connection
# to one node for its life. A node is in the rotation while its HTTP /readyz answers 200,
# checked as in the HTTP backend. A connection on a node that goes DOWN stays there (its
# commands get errors until it serves again; the client's reconnect lands elsewhere): no
# shutdown-sessions, since during a leader's failover every survivor is unready for a moment
# and that would cut every client's connection at once.
defaults
    mode tcp
    log global
    option tcplog
    option dontlog-normal
    timeout connect 1s
    # pooled client connections sit idle for long (node-redis, redis-py and redis-rs keep theirs
    # open): well above their keepalives and the nodes' own idle timeout ([resp]
    # idle_timeout_secs, 300 s), so that HAProxy is not the one that cuts them
    timeout client 1h
    timeout server 1h
    timeout check 250ms
    # TCP keepalives on both sides: a peer that vanished is noticed without traffic
    option tcpka
    # a connection a node refused (stopped, restarting) is retried on another node; nothing
    # was sent on it
    retries 3
    option redispatch 1

frontend $RESP_BACKEND
    bind $LB_RESP_ADDR
    default_backend $RESP_BACKEND

backend $RESP_BACKEND
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
EOF
    local id resp http ip
    while IFS=$'\t' read -r id resp http; do
        ip="${http%:*}"
        ip="${ip#[}"
        printf '    server node%s %s check port %s addr %s inter 250ms fastinter 100ms fall 2 rise 2\n' \
            "$id" "$resp" "${http##*:}" "${ip%]}"
    done < <(resp_nodes)
}

# lb_servers [BACKEND...]: `pxname<TAB>svname<TAB>status<TAB>check_status<TAB>lastchg` for each
# server of the backends (default: the nodes backend), from the stats CSV. Returns 1 if the load
# balancer does not answer.
lb_servers() {
    local csv
    [[ -n "$LB_ADDR" ]] || return 1
    csv="$(curl -fsS -m 2 "http://$LB_ADDR/haproxy-stats;csv" 2>/dev/null)" || return 1
    python3 - "$csv" "${@:-$LB_BACKEND}" <<'PY'
import csv, io, sys
text, backends = sys.argv[1], sys.argv[2:]
if text.startswith("# "):
    text = text[2:]
for row in csv.DictReader(io.StringIO(text)):
    if row.get("pxname") in backends and row.get("svname") not in ("FRONTEND", "BACKEND"):
        print("\t".join(row.get(k) or "" for k in ("pxname", "svname", "status", "check_status", "lastchg")))
PY
}
# lb_server_status ID: server nodeID's status in the nodes backend; with a RESP frontend and a
# resp_addr for the node, both statuses joined by `/` unless they agree (UP/DOWN: not in service).
lb_server_status() {
    local b=("$LB_BACKEND")
    if resp_lb && [[ -n "$(node_resp "$1")" ]]; then b+=("$RESP_BACKEND"); fi
    lb_servers "${b[@]}" 2>/dev/null | awk -F'\t' -v s="node$1" '$2 == s { st[++n] = $3 }
        END { if (n == 1 || (n == 2 && st[1] == st[2])) print st[1]; else if (n == 2) print st[1] "/" st[2] }'
}

# wait_lb_up ID DEADLINE: until HAProxy reports server nodeID UP (in both backends when it has a
# Redis-protocol port behind the RESP frontend).
wait_lb_up() {
    local id="$1" deadline="$2" st=""
    while :; do
        st="$(lb_server_status "$id")"
        [[ "$st" == UP ]] && return 0
        if ((SECONDS >= deadline)); then
            warn "HAProxy still reports node$id ${st:-absent} after ${READY_TIMEOUT}s (scripts/cluster.sh lb-status)"
            return 1
        fi
        sleep 0.2
    done
}

# Until the running HAProxy serves exactly the active nodes (after a start or a reload), and on
# the RESP frontend exactly those with a resp_addr.
wait_lb_servers() {
    local want got deadline=$((SECONDS + 10))
    want="$(active_nodes | cut -f1 | sed "s/^/$LB_BACKEND:node/" | sort | tr '\n' ' ')"
    if resp_lb; then
        want="$( (tr ' ' '\n' <<<"$want"; resp_nodes | cut -f1 | sed "s/^/$RESP_BACKEND:node/") | awk NF | sort | tr '\n' ' ')"
    fi
    while :; do
        got="$(lb_servers "$LB_BACKEND" "$RESP_BACKEND" 2>/dev/null | awk -F'\t' '{ print $1 ":" $2 }' | sort | tr '\n' ' ' || true)"
        [[ "$got" == "$want" ]] && return 0
        if ((SECONDS >= deadline)); then
            tail -n 20 "$HAPROXY_LOG" >&2 || true
            die "HAProxy on $LB_ADDR serves [${got% }] instead of [${want% }] after 10 s; see $HAPROXY_LOG"
        fi
        sleep 0.2
    done
}

# lb_sync start|reload: write haproxy.cfg for the active nodes (validated first); reload the
# running HAProxy if the config changed; with `start`, start HAProxy if it is not running.
lb_sync() {
    local mode="$1" tmp pid out
    [[ -n "$LB_ADDR" ]] || return 0
    find_haproxy
    mkdir -p "$RUN_DIR/logs"
    lock
    tmp="$HAPROXY_CFG.new"
    haproxy_cfg >"$tmp"
    if ! out="$("$HAPROXY" -c -f "$tmp" 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "invalid HAProxy config generated at $tmp"
    fi
    pid="$(haproxy_live_pid)"
    if [[ -n "$pid" ]]; then
        if cmp -s "$tmp" "$HAPROXY_CFG"; then
            rm -f "$tmp"
            if [[ "$mode" == start ]]; then echo "haproxy already running (pid $pid, $LB_ADDR)"; fi
        else
            mv "$tmp" "$HAPROXY_CFG"
            # master-worker: the master re-reads the config and starts a new worker, which takes
            # over the listening socket; the old worker finishes its requests
            kill -USR2 "$pid"
            wait_lb_servers
            echo "haproxy reloaded (pid $pid): servers $(active_nodes | cut -f1 | sed 's/^/node/' | tr '\n' ' ')"
        fi
    elif [[ "$mode" == start ]]; then
        mv "$tmp" "$HAPROXY_CFG"
        setsid "$HAPROXY" -W -db -f "$HAPROXY_CFG" >>"$HAPROXY_LOG" 2>&1 </dev/null 9>&- &
        pid=$!
        echo "$pid" >"$HAPROXY_PID"
        local deadline=$((SECONDS + 10))
        until [[ "$(http_code "http://$LB_ADDR/haproxy-stats;csv")" == 200 ]]; do
            if ! kill -0 "$pid" 2>/dev/null; then
                tail -n 20 "$HAPROXY_LOG" >&2 || true
                rm -f "$HAPROXY_PID"
                die "haproxy exited (is $LB_ADDR in use?); see $HAPROXY_LOG"
            fi
            ((SECONDS < deadline)) || die "haproxy (pid $pid) does not answer on $LB_ADDR after 10 s; see $HAPROXY_LOG"
            sleep 0.1
        done
        echo "haproxy started (pid $pid, $LB_ADDR, log $HAPROXY_LOG)"
    else
        mv "$tmp" "$HAPROXY_CFG"
        echo "haproxy is not running (config written to $HAPROXY_CFG; scripts/cluster.sh up starts it)"
    fi
    unlock
}

stop_haproxy() {
    local pid kids k
    pid="$(haproxy_live_pid)"
    if [[ -z "$pid" ]]; then
        if [[ -f "$HAPROXY_PID" ]]; then echo "haproxy is not running"; fi
        rm -f "$HAPROXY_PID"
        return 0
    fi
    # the workers, to make sure none outlives its master
    kids="$(ps -o pid= --ppid "$pid" 2>/dev/null || true)"
    kill -TERM "$pid"
    wait_exit_or_kill "$pid" haproxy
    for k in $kids; do
        for _ in $(seq 1 20); do
            if ! kill -0 "$k" 2>/dev/null || ! is_our_haproxy "$k"; then break; fi
            sleep 0.1
        done
        if kill -0 "$k" 2>/dev/null && is_our_haproxy "$k"; then
            echo "haproxy worker $k still running; SIGKILL" >&2
            kill -KILL "$k" 2>/dev/null || true
        fi
    done
    rm -f "$HAPROXY_PID"
    echo "haproxy stopped"
}

# ---------------------------------------------------------------------------------------------
# Commands

cmd_up() {
    build
    load_config
    lock
    local ids id
    ids="$(active_nodes | cut -f1)"
    [[ -n "$ids" ]] || die "no node to start in $CONFIG"
    if [[ -f "$REMOVED_FILE" ]]; then
        while read -r id; do
            if [[ -n "$id" ]]; then echo "node $id was removed from the cluster ($REMOVED_FILE): not started"; fi
        done <"$REMOVED_FILE"
    fi
    for id in $ids; do start_node "$id"; done
    # shellcheck disable=SC2086
    wait_ready $ids
    if [[ -n "$LB_ADDR" ]]; then
        lb_sync start
        local deadline=$((SECONDS + 10))
        for id in $ids; do
            wait_lb_up "$id" "$deadline" || true
        done
    else
        echo "no load balancer configured ([load_balancer] addr in $CONFIG, or SESSIONRAFT_LB_ADDR): HAProxy not started"
    fi
    unlock
    echo
    echo "sessionraft is up ($(wc -w <<<"$ids") nodes):"
    if [[ -n "$LB_ADDR" ]]; then
        echo "  load balancer: demo: http://$LB_ADDR/  dashboard: http://$LB_ADDR/cluster  (HAProxy stats: http://$LB_ADDR/haproxy-stats)"
        if resp_lb; then
            echo "  load balancer: Redis URL: redis://$LB_RESP_ADDR  (express-session, Flask-Session, RedisSessionStore, redis-cli -u)"
        elif [[ -n "$LB_RESP_ADDR" ]]; then
            echo "  load balancer: no Redis frontend on $LB_RESP_ADDR: no node has a resp_addr"
        fi
    fi
    local resp
    for id in $ids; do
        resp="$(node_resp "$id")"
        echo "  node $id: demo http://$(node_field "$id" 2)/   dashboard http://$(node_field "$id" 2)/cluster${resp:+   Redis redis://$resp}"
    done
    echo "stop it with: scripts/cluster.sh down"
}

cmd_down() {
    load_config quiet
    stop_haproxy
    local ids id f
    # every node this script knows of, and every pid file: down leaves nothing running
    ids="$(all_nodes | cut -f1)"
    shopt -s nullglob
    for f in "$RUN_DIR"/node*.pid; do
        id="${f##*/node}"
        id="${id%.pid}"
        if valid_id "$id"; then ids+=$'\n'"$id"; fi
    done
    shopt -u nullglob
    # all nodes at once (each may take a few seconds to shut down gracefully), then wait for all
    while read -r id; do
        if [[ -n "$id" ]]; then signal_node "$id" TERM & fi
    done < <(sort -nu <<<"$ids")
    wait
}

cmd_status() {
    load_config
    printf '%-5s %-8s %-22s %-10s %6s %7s %9s %s\n' node pid address role term leader applied health
    local id addr pid st ready
    while IFS=$'\t' read -r id addr _; do
        pid="$(live_pid "$id")"
        st="$(status_json "$addr")"
        ready="$(http_code "http://$addr/readyz")"
        if [[ -n "$st" ]]; then
            python3 - "$id" "${pid:--}" "$addr" "$ready" "$st" <<'PY'
import json, sys
node, pid, addr, ready, raw = sys.argv[1:6]
s = json.loads(raw)
dash = lambda v: "-" if v is None else v
health = "ready" if ready == "200" else "not-ready"
print(f"{node:<5} {pid:<8} {addr:<22} {s['role']:<10} {s['term']:>6} {dash(s['leader']):>7} {dash(s['applied_index']):>9} {health}")
PY
        elif is_removed "$id"; then
            printf '%-5s %-8s %-22s %-10s %6s %7s %9s %s\n' "$id" "${pid:--}" "$addr" removed - - - removed
        else
            printf '%-5s %-8s %-22s %-10s %6s %7s %9s %s\n' "$id" "${pid:--}" "$addr" unreachable - - - down
        fi
    done < <(all_nodes)
    pid="$(haproxy_live_pid)"
    if [[ -z "$LB_ADDR" ]]; then
        printf '%-5s %-8s %-22s %-10s %6s %7s %9s %s\n' lb - - haproxy - - - "no load balancer configured"
    elif [[ -z "$pid" ]]; then
        printf '%-5s %-8s %-22s %-10s %6s %7s %9s %s\n' lb - "$LB_ADDR" haproxy - - - "not running"
    else
        local servers up total
        servers="$(lb_servers 2>/dev/null || true)"
        total="$(awk 'NF' <<<"$servers" | wc -l)"
        up="$(awk -F'\t' '$3 == "UP"' <<<"$servers" | wc -l)"
        printf '%-5s %-8s %-22s %-10s %6s %7s %9s %s\n' lb "$pid" "$LB_ADDR" haproxy - - - "$up/$total servers UP"
        if resp_lb; then
            servers="$(lb_servers "$RESP_BACKEND" 2>/dev/null || true)"
            total="$(awk 'NF' <<<"$servers" | wc -l)"
            up="$(awk -F'\t' '$3 == "UP"' <<<"$servers" | wc -l)"
            printf '%-5s %-8s %-22s %-10s %6s %7s %9s %s\n' lb "$pid" "$LB_RESP_ADDR" haproxy - - - \
                "$up/$total servers UP, Redis URL redis://$LB_RESP_ADDR"
        fi
    fi
}

cmd_lb_status() {
    load_config
    [[ -n "$LB_ADDR" ]] || die "no load balancer configured ([load_balancer] addr in $CONFIG, or SESSIONRAFT_LB_ADDR)"
    [[ -n "$(haproxy_live_pid)" ]] || die "haproxy is not running on $LB_ADDR (scripts/cluster.sh up)"
    local servers
    servers="$(lb_servers "$LB_BACKEND" "$RESP_BACKEND")" || die "haproxy does not answer on http://$LB_ADDR/haproxy-stats;csv"
    printf '%-10s %-10s %-10s %-12s %s\n' pxname svname status check last_change
    awk -F'\t' 'NF { printf "%-10s %-10s %-10s %-12s %ss ago\n", $1, $2, $3, ($4 == "" ? "-" : $4), $5 }' <<<"$servers"
}

# The leader's id, as reported by a live node other than $1 (empty if none knows one).
current_leader() {
    local skip="${1:-}" id addr leader
    while IFS=$'\t' read -r id addr _; do
        [[ "$id" != "$skip" && -n "$(live_pid "$id")" ]] || continue
        leader="$(json_get "$(status_json "$addr")" leader)"
        if [[ -n "$leader" ]]; then
            echo "$leader"
            return 0
        fi
    done < <(active_nodes)
}

# The leader's last log index, the leader found through a live node other than $1.
leader_last_index() {
    local leader addr
    leader="$(current_leader "$1")"
    [[ -n "$leader" ]] || return 0
    addr="$(node_field "$leader" 2)"
    [[ -n "$addr" ]] || return 0
    json_get "$(status_json "$addr")" last_log_index
}

cmd_rolling_restart() {
    load_config
    lock
    local ids id use_lb=0 t_all
    mapfile -t ids < <(active_nodes | cut -f1)
    ((${#ids[@]} > 0)) || die "no node in $CONFIG"
    # at most one node may be out at any time: every node must be in service before we start
    local deadline=$((SECONDS + READY_TIMEOUT))
    for id in "${ids[@]}"; do
        [[ -n "$(live_pid "$id")" ]] || die "node $id is not running; start it first (scripts/cluster.sh start $id): a rolling restart takes one node out at a time"
        wait_http "$id" /readyz "$deadline" || die "node $id is not ready; fix it before a rolling restart (scripts/cluster.sh status)"
    done
    if [[ -n "$LB_ADDR" && -n "$(haproxy_live_pid)" ]]; then
        lb_sync reload
        use_lb=1
        for id in "${ids[@]}"; do
            wait_lb_up "$id" "$deadline" || die "HAProxy does not report node$id UP; fix it before a rolling restart (scripts/cluster.sh lb-status)"
        done
    elif [[ -n "$LB_ADDR" ]]; then
        warn "haproxy is not running: not waiting for it between nodes"
    fi

    t_all="$(now_ms)"
    local n=0 total=${#ids[@]} done_ids=" " leader next role
    while ((n < total)); do
        # the next node not restarted yet that is not the leader; the leader when it is the last
        deadline=$((SECONDS + READY_TIMEOUT))
        leader="$(current_leader)"
        while [[ -z "$leader" ]]; do
            ((SECONDS < deadline)) || die "rolling-restart aborted: no node reports a leader after ${READY_TIMEOUT}s"
            sleep 0.2
            leader="$(current_leader)"
        done
        next=""
        for id in "${ids[@]}"; do
            if [[ "$done_ids" != *" $id "* && "$id" != "$leader" ]]; then
                next="$id"
                break
            fi
        done
        if [[ -z "$next" ]]; then
            for id in "${ids[@]}"; do
                if [[ "$done_ids" != *" $id "* ]]; then next="$id"; fi
            done
        fi
        n=$((n + 1))
        role=follower
        [[ "$next" == "$leader" ]] && role=leader
        restart_one "$next" "$role" "$n/$total" "$use_lb"
        done_ids+="$next "
    done
    unlock
    echo "rolling restart done: $total nodes in $(since "$t_all")"
}

# restart_one ID ROLE STEP USE_LB: one step of a rolling restart; exits non-zero on failure.
restart_one() {
    local id="$1" role="$2" step="$3" use_lb="$4" t0 t deadline target applied
    local where="rolling-restart aborted at node $id"
    echo "[$step] node $id ($role): stopping (SIGTERM)"
    t0="$(now_ms)"
    t="$t0"
    signal_node "$id" TERM >/dev/null
    echo "[$step] node $id: stopped after $(since "$t"); starting"
    t="$(now_ms)"
    start_node "$id" >/dev/null
    deadline=$((SECONDS + READY_TIMEOUT))
    wait_http "$id" /readyz "$deadline" || die "$where: not ready within ${READY_TIMEOUT}s (SESSIONRAFT_READY_TIMEOUT)"
    echo "[$step] node $id: ready after $(since "$t")"
    t="$(now_ms)"
    # caught up: applied at least the leader's last log index as of now
    target=""
    until [[ -n "$target" ]]; do
        target="$(leader_last_index "$id")"
        if [[ -z "$target" ]]; then
            ((SECONDS < deadline)) || die "$where: no other node reports a leader and its log index within ${READY_TIMEOUT}s"
            sleep 0.2
        fi
    done
    while :; do
        applied="$(json_get "$(status_json "$(node_field "$id" 2)")" applied_index)"
        [[ -n "$applied" && "$applied" -ge "$target" ]] && break
        [[ -n "$(live_pid "$id")" ]] || die "$where: the node exited; see $(log_file "$id")"
        ((SECONDS < deadline)) || die "$where: applied index ${applied:-none} still below the leader's $target after ${READY_TIMEOUT}s"
        sleep 0.2
    done
    echo "[$step] node $id: caught up (applied $applied >= leader's last log index $target) after $(since "$t")"
    if ((use_lb)); then
        t="$(now_ms)"
        wait_lb_up "$id" "$deadline" || die "$where: HAProxy does not report it UP within ${READY_TIMEOUT}s"
        echo "[$step] node $id: UP in HAProxy after $(since "$t")"
    fi
    echo "[$step] node $id: back in service, $(since "$t0") in all"
}

valid_addr() { [[ "$1" =~ ^([0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9a-fA-F:.]+\]):[0-9]{1,5}$ ]]; }

cmd_add_node() {
    local id="${1:-}" http="${2:-}" raft="${3:-}" readd=0 line
    valid_id "$id" || die "usage: add-node N HTTP RAFT (N: a node id >= 1, HTTP and RAFT: IP:PORT)"
    build
    load_config
    lock
    [[ -z "$(live_pid "$id")" ]] || die "a node $id runs already (pid $(live_pid "$id"))"
    if is_config_node "$id"; then
        # a removed config node comes back with its config addresses and data dir
        is_removed "$id" || die "node $id is in $CONFIG and a member already: nothing to add"
        IFS=$'\t' read -r _ line _ _ < <(node_line "$id")
        [[ -z "$http" || "$http" == "$line" ]] || die "node $id is in $CONFIG with http_addr $line: it keeps its config addresses"
        http="$line"
        raft="$(node_field "$id" 4)"
        [[ -z "${3:-}" || "$3" == "$raft" ]] || die "node $id is in $CONFIG with raft_addr $raft: it keeps its config addresses"
        readd=1
        drop_line "$REMOVED_FILE" "$id"
    else
        [[ -n "$http" && -n "$raft" ]] || die "usage: add-node N HTTP RAFT (N: a node id >= 1, HTTP and RAFT: IP:PORT)"
        valid_addr "$http" || die "HTTP must be IP:PORT, not '$http'"
        valid_addr "$raft" || die "RAFT must be IP:PORT, not '$raft'"
        if is_extra "$id"; then
            die "node $id was added already ($EXTRA_FILE); start it with: scripts/cluster.sh start $id"
        fi
        [[ "$http" != "$LB_ADDR" && "$raft" != "$LB_ADDR" ]] || die "$LB_ADDR is the load balancer's address"
        while IFS=$'\t' read -r _ line _ _; do
            [[ "$http" != "$line" && "$raft" != "$line" ]] || die "$line is used by another node"
        done < <(all_nodes)
        while IFS=$'\t' read -r _ _ _ line _; do
            [[ "$http" != "$line" && "$raft" != "$line" ]] || die "$line is used by another node"
        done < <(all_nodes)
        while read -r line; do
            [[ "$http" != "$line" && "$raft" != "$line" ]] || die "$line is the Redis-protocol address of another node"
        done < <(all_nodes | cut -f5)
        [[ -z "$LB_RESP_ADDR" || ("$http" != "$LB_RESP_ADDR" && "$raft" != "$LB_RESP_ADDR") ]] || die "$LB_RESP_ADDR is the load balancer's Redis-protocol address"
        mkdir -p "$RUN_DIR"
        # recorded before it starts, so that stop/down cover it even if this script is interrupted
        printf '%s\t%s\t%s\t%s\n' "$id" "$http" "$RUN_DIR/data/node$id" "$raft" >>"$EXTRA_FILE"
    fi

    add_failed() {
        warn "$1"
        signal_node "$id" TERM >&2
        if ((readd)); then
            echo "$id" >>"$REMOVED_FILE"
        else
            drop_line "$EXTRA_FILE" "$id"
        fi
        die "node $id was not added; it is stopped$( ((readd)) || echo " and removed from $EXTRA_FILE")"
    }

    # The state of an earlier node with this id would disturb the cluster: it may still believe
    # it is a voter and start elections. It is kept aside; the node joins empty.
    local data stale
    data="$(node_field "$id" 3)"
    if [[ -d "$data" && -n "$(ls -A "$data" 2>/dev/null)" ]]; then
        stale="$data.removed-$(date +%Y%m%dT%H%M%S)"
        mv "$data" "$stale"
        echo "node $id: the data of an earlier node $id moved to $stale; it joins empty"
    fi

    local t0 deadline
    t0="$(now_ms)"
    start_node "$id"
    deadline=$((SECONDS + READY_TIMEOUT))
    wait_http "$id" /healthz "$deadline" || add_failed "node $id did not come up"
    echo "node $id is up; adding it to the cluster (learner, catch up, then voter)..."
    if ! "$BIN" cluster add-node --config "$CONFIG" --id "$id" --http "$http" --raft "$raft"; then
        add_failed "the cluster refused node $id (see the message above)"
    fi
    wait_http "$id" /readyz "$deadline" || die "node $id was added but is not ready within ${READY_TIMEOUT}s; see $(log_file "$id")"
    if [[ -n "$LB_ADDR" ]]; then
        lb_sync reload
        if [[ -n "$(haproxy_live_pid)" ]]; then
            wait_lb_up "$id" "$deadline" || die "node $id was added but HAProxy does not report it UP"
        fi
    fi
    unlock
    echo "node $id added in $(since "$t0"): http://$http/ (raft $raft, log $(log_file "$id"))"
}

cmd_remove_node() {
    local id="${1:-}"
    valid_id "$id" || die "usage: remove-node N"
    load_config
    lock
    ! is_removed "$id" || die "node $id was removed already ($REMOVED_FILE)"
    if ! "$BIN" cluster remove-node --config "$CONFIG" "$id"; then
        die "the cluster refused to remove node $id (see the message above): nothing changed"
    fi
    if is_config_node "$id"; then
        mkdir -p "$RUN_DIR"
        echo "$id" >>"$REMOVED_FILE"
        echo "node $id stays in $CONFIG but is listed in $REMOVED_FILE: up, HAProxy and rolling-restart skip it"
    elif is_extra "$id"; then
        drop_line "$EXTRA_FILE" "$id"
    fi
    # stopped at once: a removed node that missed its removal would start elections. HAProxy
    # redispatches what it sends there meanwhile (connection refused), then drops it.
    signal_node "$id" TERM
    lb_sync reload
    unlock
    echo "node $id removed"
}

cmd_logs() {
    local f
    [[ -n "${1:-}" ]] || die "usage: logs N|haproxy [-f]"
    case "$1" in
    haproxy | lb) f="$HAPROXY_LOG" ;;
    *) f="$(log_file "$1")" ;;
    esac
    [[ -f "$f" ]] || die "no log at $f"
    if [[ "${2:-}" == -f ]]; then tail -n 100 -f "$f"; else tail -n 200 "$f"; fi
}

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

need_id() { [[ -n "${2:-}" ]] || die "usage: $1 N"; }

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
lb-status) cmd_lb_status ;;
start) need_id "$@"; build; load_config; start_node "$2"; wait_ready "$2" ;;
stop) need_id "$@"; signal_node "$2" TERM ;;
kill) need_id "$@"; signal_node "$2" KILL ;;
restart) need_id "$@"; build; load_config; lock; signal_node "$2" TERM; start_node "$2"; wait_ready "$2"; unlock ;;
logs) shift; cmd_logs "$@" ;;
rolling-restart) cmd_rolling_restart ;;
add-node) shift; cmd_add_node "$@" ;;
remove-node) shift; cmd_remove_node "$@" ;;
-h | --help | help) usage ;;
*) usage; exit 2 ;;
esac

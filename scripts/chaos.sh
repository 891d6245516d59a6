#!/usr/bin/env bash
# Chaos runs against a fresh local 3-node sessionraft cluster (plus HAProxy), under load, followed
# by a consistency check of everything the clients saw.
#
#   scripts/chaos.sh SCENARIO [--duration S] [--rate R] [--seed N] [--out DIR] [--users N]
#   scripts/chaos.sh list       the scenarios, one line each
#   scripts/chaos.sh cleanup    remove what a chaos run killed with SIGKILL left behind (its cluster,
#                               iptables chains, tmpfs mounts); a normal run, even a failed or
#                               interrupted one, cleans up after itself
#
# Scenarios (each fault is repeated, with gaps, as long as the duration allows; at least once):
#   kill-leader         SIGKILL the leader, start it again after 2-5 s
#   kill-random         SIGKILL a random node, start it again after 2-5 s
#   pause               SIGSTOP a node (the leader or a random one), SIGCONT after 3-7 s
#   partition-leader    cut the leader off from the other nodes (iptables), heal after 4-8 s
#   partition-minority  cut one follower off from the other nodes, heal after 4-8 s
#   rolling-restart     scripts/cluster.sh rolling-restart (followers first, the leader last)
#   clock-skew          restart a node under libfaketime (CHAOS_CLOCK_SKEW, default a seeded pick
#                       of +20s/-20s/+90s/-90s), 8-12 s later restart it with the real clock
#   disk-full           a node's data dir is on a small tmpfs; fill it (ENOSPC) for 4-7 s, free it;
#                       a node that exited, or is still unready 10 s after, is restarted (recorded as
#                       a disk-full-restart window)
#   wipe-and-rejoin     snapshot the leader, stop a follower, delete its data, start it 1-3 s later:
#                       it rejoins through a snapshot (checked in its log and recorded)
#   mixed               a seeded random schedule of all the above, one at a time, with gaps
#
# Partitions are DROP rules for TCP between the node's IP and each other node's IP, to and from
# this cluster's ports only (another cluster on 127.0.0.11-13 is not touched), in both directions.
# A binary whose nodes connect to their peers from 127.0.0.1 (before outgoing peer connections were
# bound to the node's own IP) can only be cut off inbound (connections to its Raft port): the output
# says which kind of partition a run got.
#
# Defaults: --duration 60 (seconds of load), --rate 50 (requests/s in all), --users 20, --seed
# random (printed; the same seed gives the same schedule: faults, randomly picked nodes, hold
# times and gaps, and the load's seed), --out target/chaos/SCENARIO-YYYYmmdd-HHMMSS (must not exist or be empty).
#
# A run: a temp config (nodes on 127.0.0.11-13, separate HTTP and Raft ports, short Raft timings,
# HAProxy on 127.0.0.1), `cluster.sh up` with its run dir in OUT/cluster; `sessionraft load`
# through the load balancer and straight to every node in the background; the faults, each
# followed by a wait until the cluster is whole again (every node ready and caught up, UP in
# HAProxy); the load's settle and final reads; `sessionraft check`; `cluster.sh down`; iptables
# and mounts removed. Until the binary has `load` / `check`, a curl-based stand-in load and a
# small stand-in checker run instead (said so in the output).
#
# OUT holds: config.toml, faults.jsonl (one line per fault window, written when it closes:
# {"name", "node", "start_ms", "end_ms"}), faults.tsv (the same with details), history.jsonl,
# load.log, check/ (verdict.json, summary.json, report.svg), check.log, ops.log (output of the
# cluster.sh commands), cluster/ (cluster.sh's run dir: pid files, logs/nodeN.log, haproxy.cfg),
# data/ (the nodes' data), bin/sessionraft (the binary of this run, a hard link, so that a rebuild
# does not change a running chaos run; removed at the end unless CHAOS_KEEP_BIN=1).
#
# Exit: 0 the checker found no violation and the cluster recovered from every fault; 1 the checker
# found a violation; 2 bad usage, or the load or the checker could not run; 3 no violation, but the
# cluster did not recover within CHAOS_RECOVER_TIMEOUT seconds after a fault, or a node exited on
# its own (see the output); 130/143 interrupted.
#
# Environment: SESSIONRAFT_BIN (binary; default target/release/sessionraft), CHAOS_SETTLE (seconds
# between the end of the load and its final reads, default 10), CHAOS_RECOVER_TIMEOUT (default 60),
# CHAOS_CLOCK_SKEW (a FAKETIME value, e.g. "+20s", "-2m", "+0 x1.5"), CHAOS_DISK_MB (tmpfs size for
# disk-full, default 64), CHAOS_WARMUP (seconds of load before the first fault, default 3),
# CHAOS_FAKETIME_LIB (default /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1).
#
# Needs root for iptables (partition-*, mixed) and mount (disk-full, mixed), libfaketime for
# clock-skew (scripts/install-deps.sh --all). One chaos run at a time (they share the node IPs).
# Safety: processes are signalled only through the pid files of cluster.sh (after checking
# /proc/PID/cmdline) or as this script's own children; iptables rules live only in the chain
# chaos-PID-in (PID: this script's), hooked into INPUT; every rule, mount, paused node and the
# cluster are removed by an EXIT/INT/TERM trap. Traffic goes to loopback addresses only.
set -euo pipefail
shopt -s lastpipe # the last command of a pipeline runs in this shell (rolling-restart's windows)

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SELF="$ROOT/scripts/chaos.sh"
CLUSTER_SH="$ROOT/scripts/cluster.sh"
SCENARIOS=(kill-leader kill-random pause partition-leader partition-minority rolling-restart clock-skew disk-full wipe-and-rejoin mixed)
FAKETIME_LIB="${CHAOS_FAKETIME_LIB:-/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1}"
STATE_DIR="$ROOT/target/chaos"
NODE_IDS=(1 2 3)

die() { echo "chaos.sh: $*" >&2; exit 2; }
warn() { echo "chaos.sh: $*" >&2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF"; }

now_ms() { local t="${EPOCHREALTIME//[.,]/}"; echo $((10#$t / 1000)); }
fmt_s() { local d="$1" sign=""; if ((d < 0)); then sign="-"; d=$((-d)); fi; printf '%s%d.%03d' "$sign" $((d / 1000)) $((d % 1000)); }
# sleep that a trapped signal interrupts at once
nap() { sleep "$1" 8>&- & wait $! || true; }

# ---------------------------------------------------------------------------------------------
# hidden helpers run as separate processes: the stand-in load and the stand-in checker

# __standin-load OUT TARGETS USERS RATE DURATION SETTLE FINAL_TARGETS
# Each user is a sequential loop of POST /api/counter with its session cookie sent explicitly
# (cookies are per host, the targets are several hosts), round robin over the targets; after
# the duration and the settle, one GET /api/counter per final target. One JSON line per request.
standin_load() {
    local out="$1" users="$3" rate="$4" duration="$5" settle="$6" u
    local -a targets finals
    IFS=, read -r -a targets <<<"$2"
    IFS=, read -r -a finals <<<"$7"
    local t0 interval_ms
    t0="$(now_ms)"
    interval_ms=$((users * 1000 / rate))
    mkdir -p "$out.d"
    for ((u = 1; u <= users; u++)); do
        standin_user "$u" "$out.d" "$t0" "$duration" "$settle" "$interval_ms" "$((interval_ms * (u - 1) / users))" \
            "${#targets[@]}" "${targets[@]}" "${finals[@]}" &
    done
    wait
    cat "$out.d"/u*.jsonl >"$out"
    rm -rf "$out.d"
}

standin_user() {
    local u="$1" dir="$2" t0="$3" duration="$4" settle="$5" interval_ms="$6" offset_ms="$7" nt="$8"
    shift 8
    local -a targets=("${@:1:nt}") finals=("${@:nt+1}")
    local cookie="" i=$((u - 1)) hdr="$dir/u$u.hdr" file="$dir/u$u.jsonl" end=$((t0 + duration * 1000))
    local start stop resp code body counter served target wait_ms re_c='"counter":([0-9]+)' re_s='"served_by":([0-9]+)'
    local re_k=$'[Ss]et-[Cc]ookie: *([^;\r]*)'
    # the users spread over the first interval
    nap "$(fmt_s "$offset_ms")"
    request() { # METHOD TARGET OP
        start="$(now_ms)"
        resp="$(curl -sS --noproxy '*' -m 5 -D "$hdr" ${cookie:+-H "Cookie: $cookie"} -X "$1" "$2/api/counter" -w $'\n%{http_code}' 2>/dev/null || true)"
        stop="$(now_ms)"
        code="${resp##*$'\n'}"
        [[ "$code" =~ ^[0-9]+$ ]] || code=0
        body="${resp%$'\n'*}"
        counter=null
        served=null
        if ((code == 200)) && [[ "$body" =~ $re_c ]]; then counter="${BASH_REMATCH[1]}"; fi
        if [[ "$body" =~ $re_s ]]; then served="${BASH_REMATCH[1]}"; fi
        if ((code == 200)) && [[ -f "$hdr" && "$(<"$hdr")" =~ $re_k ]]; then cookie="${BASH_REMATCH[1]}"; fi
        printf '{"user": %d, "op": "%s", "target": "%s", "start_ms": %d, "end_ms": %d, "status": %d, "counter": %s, "served_by": %s}\n' \
            "$u" "$3" "$2" "$start" "$stop" "$code" "$counter" "$served" >>"$file"
    }
    while (($(now_ms) < end)); do
        target="${targets[i % nt]}"
        i=$((i + 1))
        request POST "$target" incr
        wait_ms=$((start + interval_ms - $(now_ms)))
        if ((wait_ms > 0)); then nap "$(fmt_s "$wait_ms")"; fi
    done
    wait_ms=$((end + settle * 1000 - $(now_ms)))
    if ((wait_ms > 0)); then nap "$(fmt_s "$wait_ms")"; fi
    if [[ -n "$cookie" ]]; then
        for target in "${finals[@]}"; do request GET "$target" final-read; done
    fi
    rm -f "$hdr"
}

# __standin-check HISTORY FAULTS OUTDIR: per user, the counters of successful increments must
# strictly increase, no request may get a 500, and every final read (through every final target)
# must return the same value, at least the last acknowledged counter. Exit 1 on a violation.
standin_check() {
    python3 - "$@" <<'PY'
import json, os, sys
hist, faults_path, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
try:
    ops = [json.loads(l) for l in open(hist) if l.strip()]
    faults = [json.loads(l) for l in open(faults_path) if l.strip()] if os.path.exists(faults_path) else []
except (OSError, ValueError) as e:
    print(f"stand-in check: unreadable input: {e}", file=sys.stderr)
    sys.exit(2)
violations, users, statuses = [], {}, {}
for op in sorted(ops, key=lambda o: (o["user"], o["start_ms"])):
    users.setdefault(op["user"], []).append(op)
    key = f'{op["op"]}:{op["status"]}'
    statuses[key] = statuses.get(key, 0) + 1
for u, uops in users.items():
    last, finals = None, []
    for op in uops:
        if op["status"] == 500:
            violations.append({"user": u, "kind": "http-500", "op": op})
        if op["op"] == "incr" and op["status"] == 200:
            c = op["counter"]
            if last is not None and c <= last:
                violations.append({"user": u, "kind": "counter-not-increasing", "previous": last, "op": op})
            last = c if last is None else max(last, c)
        elif op["op"] == "final-read":
            finals.append(op)
    if last is None:
        continue
    for op in finals:
        if op["status"] != 200:
            violations.append({"user": u, "kind": "final-read-failed", "op": op})
        elif op["counter"] < last:
            violations.append({"user": u, "kind": "final-read-lost-ack", "last_acked": last, "op": op})
    vals = {op["counter"] for op in finals if op["status"] == 200}
    if len(vals) > 1:
        violations.append({"user": u, "kind": "final-reads-disagree", "values": sorted(vals)})
def in_window(op, f):
    return op["start_ms"] < f["end_ms"] and op["end_ms"] > f["start_ms"]
windows = []
for f in faults:
    inc = [o for o in ops if o["op"] == "incr" and in_window(o, f)]
    ok = sum(1 for o in inc if o["status"] == 200)
    windows.append({**f, "requests": len(inc), "ok": ok})
incr = [o for o in ops if o["op"] == "incr"]
summary = {
    "checker": "stand-in (scripts/chaos.sh)",
    "requests": len(incr),
    "ok": sum(1 for o in incr if o["status"] == 200),
    "users": len(users),
    "statuses": statuses,
    "fault_windows": windows,
    "violations": len(violations),
}
json.dump({"valid": not violations, "violations": violations[:200]}, open(os.path.join(out, "verdict.json"), "w"), indent=2)
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
print(f"stand-in check: {summary['requests']} increments, {summary['ok']} ok, {len(users)} users; statuses {statuses}")
for w in windows:
    print(f"  during {w['name']} (node {w['node']}): {w['ok']}/{w['requests']} increments ok")
for v in violations[:10]:
    print("  VIOLATION:", json.dumps(v))
print("stand-in check:", "VALID" if not violations else f"{len(violations)} VIOLATION(S)")
sys.exit(1 if violations else 0)
PY
}

# cleanup of runs that died without their trap (SIGKILL): by the registry in target/chaos/.active
cmd_cleanup() {
    [[ $(id -u) -eq 0 ]] || die "cleanup needs root (iptables, umount)"
    mkdir -p "$STATE_DIR/.active"
    exec 8>>"$STATE_DIR/.lock"
    flock -w 15 8 || die "a chaos run is active (lock $STATE_DIR/.lock held); nothing to clean up"
    local f pid out chain src target
    shopt -s nullglob
    for f in "$STATE_DIR/.active"/*; do
        pid="${f##*/}"
        out="$(<"$f")"
        echo "run $pid ($out): stopping its load and its cluster"
        if [[ -f "$out/load.pid" ]]; then
            local lp
            lp="$(<"$out/load.pid")"
            # its own process group (setsid), if it still is that run's load
            if [[ "$lp" =~ ^[0-9]+$ ]] && tr '\0' '\n' <"/proc/$lp/cmdline" 2>/dev/null | grep -qE '^(load|__standin-load)$' &&
                tr '\0' '\n' <"/proc/$lp/cmdline" 2>/dev/null | grep -qF "$out/"; then
                kill -TERM -- "-$lp" 2>/dev/null || true
            fi
        fi
        SESSIONRAFT_RUN_DIR="$out/cluster" SESSIONRAFT_CONFIG="$out/config.toml" "$CLUSTER_SH" down 8>&- || true
        rm -f "$f"
    done
    shopt -u nullglob
    while read -r chain; do
        pid="${chain#chaos-}"
        pid="${pid%-in}"
        if [[ -d "/proc/$pid" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'chaos\.sh'; then continue; fi
        echo "removing iptables chain $chain"
        while iptables -w -D INPUT -j "$chain" 2>/dev/null; do :; done
        while iptables -w -D OUTPUT -j "$chain" 2>/dev/null; do :; done
        iptables -w -F "$chain"
        iptables -w -X "$chain"
    done < <(iptables -w -S | awk '$1 == "-N" && $2 ~ /^chaos-[0-9]+-in$/ { print $2 }')
    while read -r src target; do
        echo "unmounting $target ($src)"
        umount "$target" 2>/dev/null || umount -l "$target"
    done < <(awk '$1 ~ /^chaos-[0-9]+$/ && $3 == "tmpfs" { print $1, $2 }' /proc/mounts)
    echo "clean"
}

case "${1:-}" in
__standin-load) shift; standin_load "$@"; exit 0 ;;
__standin-check) shift; standin_check "$@"; exit $? ;;
list) printf '%s\n' "${SCENARIOS[@]}"; exit 0 ;;
cleanup) cmd_cleanup; exit 0 ;;
-h | --help | help | "") usage; exit 0 ;;
esac

# ---------------------------------------------------------------------------------------------
# arguments

SCENARIO="$1"
shift
[[ " ${SCENARIOS[*]} " == *" $SCENARIO "* ]] || die "unknown scenario '$SCENARIO': one of ${SCENARIOS[*]} (scripts/chaos.sh --help)"
DURATION=60 RATE=50 USERS=20 SEED="" OUT=""
while (($#)); do
    case "$1" in
    --duration | --rate | --seed | --out | --users)
        [[ $# -ge 2 ]] || die "$1 needs a value"
        case "$1" in
        --duration) DURATION="$2" ;;
        --rate) RATE="$2" ;;
        --seed) SEED="$2" ;;
        --out) OUT="$2" ;;
        --users) USERS="$2" ;;
        esac
        shift 2
        ;;
    *) die "unknown option '$1'" ;;
    esac
done
[[ -z "$SEED" ]] && SEED=$(((RANDOM << 15 | RANDOM) % 1000000))
for v in DURATION RATE USERS SEED; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "--${v,,} must be a whole number"
done
((DURATION >= 5)) || die "--duration must be at least 5 seconds"
((RATE >= 1 && USERS >= 1)) || die "--rate and --users must be at least 1"
SETTLE="${CHAOS_SETTLE:-10}"
RECOVER_TIMEOUT="${CHAOS_RECOVER_TIMEOUT:-60}"
DISK_MB="${CHAOS_DISK_MB:-64}"
WARMUP="${CHAOS_WARMUP:-3}"
for v in SETTLE RECOVER_TIMEOUT DISK_MB WARMUP; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "CHAOS_${v} must be a whole number"
done

needs_iptables=0 needs_tmpfs=0 needs_faketime=0
case "$SCENARIO" in
partition-*) needs_iptables=1 ;;
disk-full) needs_tmpfs=1 ;;
clock-skew) needs_faketime=1 ;;
mixed) needs_iptables=1 needs_tmpfs=1 ;;
esac
if ((needs_iptables || needs_tmpfs)) && [[ $(id -u) -ne 0 ]]; then
    die "$SCENARIO needs root (iptables / mount)"
fi
if ((needs_iptables)); then command -v iptables >/dev/null || die "iptables not found (scripts/install-deps.sh --all)"; fi
HAVE_FAKETIME=0
[[ -f "$FAKETIME_LIB" ]] && HAVE_FAKETIME=1
if ((needs_faketime && !HAVE_FAKETIME)); then
    die "libfaketime not found at $FAKETIME_LIB (scripts/install-deps.sh --all installs it)"
fi

SRC_BIN="${SESSIONRAFT_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sessionraft}"
[[ -x "$SRC_BIN" ]] || die "no binary at $SRC_BIN (build it: cargo build --release --workspace --all-targets)"
for c in curl python3 haproxy flock setsid; do
    command -v "$c" >/dev/null || [[ -x "/usr/sbin/$c" ]] || die "$c not found (scripts/install-deps.sh --cluster)"
done

# ---------------------------------------------------------------------------------------------
# seeded random numbers (a 64-bit LCG in the main shell: never call these in a subshell)

RNG=$((SEED * 2862933555777941757 + 3037000493))
# rand LO HI: REPLY = a number in [LO, HI]
rand() {
    RNG=$((RNG * 6364136223846793005 + 1442695040888963407))
    REPLY=$(($1 + ((RNG >> 33) & 0x7fffffff) % ($2 - $1 + 1)))
}

# ---------------------------------------------------------------------------------------------
# the run directory, one run at a time

mkdir -p "$STATE_DIR/.active"
exec 8>>"$STATE_DIR/.lock"
flock -n 8 || die "another chaos run is active (it holds $STATE_DIR/.lock; after a chaos.sh killed with SIGKILL: scripts/chaos.sh cleanup)"
if [[ -z "$OUT" ]]; then OUT="$STATE_DIR/$SCENARIO-$(date +%Y%m%d-%H%M%S)"; fi
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
if [[ -e "$OUT" && -n "$(ls -A "$OUT" 2>/dev/null)" ]]; then die "$OUT exists and is not empty: each run needs a fresh directory"; fi
mkdir -p "$OUT/bin" "$OUT/data"
OUT="$(cd "$OUT" && pwd)"

# the binary of this run: a hard link survives a rebuild (cargo replaces the file, not the inode)
BIN="$OUT/bin/sessionraft"
ln "$SRC_BIN" "$BIN" 2>/dev/null || cp "$SRC_BIN" "$BIN"
HELP="$("$BIN" --help 2>/dev/null || true)"
has_cmd() { grep -qE "^[[:space:]]+$1([[:space:]]|\$)" <<<"$HELP"; }

CONFIG="$OUT/config.toml"
RUN_DIR="$OUT/cluster"
FAULTS="$OUT/faults.jsonl"
FAULTS_TSV="$OUT/faults.tsv"
OPS_LOG="$OUT/ops.log"
: >"$FAULTS"
: >"$FAULTS_TSV"
: >"$OPS_LOG"

cluster() { SESSIONRAFT_CONFIG="$CONFIG" SESSIONRAFT_RUN_DIR="$RUN_DIR" SESSIONRAFT_BIN="$BIN" "$CLUSTER_SH" "$@" 8>&-; }

# ---------------------------------------------------------------------------------------------
# cleanup: every fault healed, the load stopped, the cluster down, chains and mounts removed

CHAIN="chaos-$$-in"
CHAIN_MADE=0
MOUNTS=()
PAUSED_PID=""
FILLER=""
LOAD_PID=""
OPEN_NAME="" OPEN_NODE="" OPEN_START="" OPEN_DETAIL=""
T0="$(now_ms)"
CLEANING=0

rel() { fmt_s $(($1 - T0)); }
say() { printf '[%8ss] %s\n' "$(rel "$(now_ms)")" "$*"; }

# fault_begin NAME NODE [DETAIL] / fault_end [DETAIL]: one window, written when it closes
fault_begin() { OPEN_NAME="$1" OPEN_NODE="$2" OPEN_START="$(now_ms)" OPEN_DETAIL="${3:-}"; }
fault_end() {
    [[ -n "$OPEN_NAME" ]] || return 0
    local end detail="$OPEN_DETAIL"
    end="$(now_ms)"
    if [[ -n "${1:-}" ]]; then detail="${detail:+$detail; }$1"; fi
    record_window "$OPEN_NAME" "$OPEN_NODE" "$OPEN_START" "$end" "$detail"
    OPEN_NAME=""
}
record_window() { # NAME NODE START END DETAIL
    printf '{"name": "%s", "node": %d, "start_ms": %d, "end_ms": %d}\n' "$1" "$2" "$3" "$4" >>"$FAULTS"
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5//$'\t'/ }" >>"$FAULTS_TSV"
}

proc_args() { tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null || true; }
# the pid of node N from cluster.sh's pid file, if alive and `sessionraft serve ... --node N`
node_pid() {
    local f="$RUN_DIR/node$1.pid" pid args argv0
    [[ -f "$f" ]] || return 0
    pid="$(<"$f")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
    args="$(proc_args "$pid")"
    argv0="${args%%$'\n'*}"
    if [[ "${argv0##*/}" == sessionraft && $'\n'"$args"$'\n' == *$'\n'serve$'\n'*$'\n'--node$'\n'"$1"$'\n'* ]]; then
        echo "$pid"
    fi
}
# SIGCONT the paused node, if it is still the process we stopped
resume_paused() {
    [[ -n "$PAUSED_PID" ]] || return 0
    local args
    args="$(proc_args "$PAUSED_PID")"
    if [[ "${args%%$'\n'*}" == */sessionraft ]]; then kill -CONT "$PAUSED_PID" 2>/dev/null || true; fi
    PAUSED_PID=""
}
heal_partitions() { if ((CHAIN_MADE)); then iptables -w -F "$CHAIN"; fi; }
free_filler() { if [[ -n "$FILLER" ]]; then rm -f "$FILLER"; FILLER=""; fi; }
stop_load() {
    [[ -n "$LOAD_PID" ]] || return 0
    if kill -0 "$LOAD_PID" 2>/dev/null && proc_args "$LOAD_PID" | grep -qE '^(load|__standin-load)$'; then
        # the load runs in its own session (setsid): its process group is ours to stop
        kill -TERM -- "-$LOAD_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$LOAD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$LOAD_PID" 2>/dev/null || true
    fi
    LOAD_PID=""
}

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
    local rc=$? m
    ((CLEANING)) && return
    CLEANING=1
    set +e
    trap '' INT TERM
    resume_paused
    free_filler
    heal_partitions
    fault_end "closed by cleanup" 2>/dev/null || true
    stop_load
    if [[ -d "$RUN_DIR" ]]; then
        echo "stopping the cluster (scripts/cluster.sh down)..."
        cluster down >>"$OPS_LOG" 2>&1 || warn "cluster.sh down failed; see $OPS_LOG"
    fi
    if ((CHAIN_MADE)); then
        while iptables -w -D INPUT -j "$CHAIN" 2>/dev/null; do :; done
        iptables -w -F "$CHAIN" 2>/dev/null || true
        iptables -w -X "$CHAIN" 2>/dev/null || warn "could not delete iptables chain $CHAIN"
    fi
    for m in "${MOUNTS[@]}"; do
        # the node's data outlives the tmpfs, for a post-mortem
        if [[ -d "$m/data" && ! -e "$OUT/data/node$DISK_NODE" ]]; then cp -a "$m/data" "$OUT/data/node$DISK_NODE"; fi
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            mountpoint -q "$m" || break
            umount "$m" 2>/dev/null && break
            sleep 0.5
        done
        if mountpoint -q "$m"; then
            warn "$m still busy; lazy unmount"
            umount -l "$m" || warn "could not unmount $m"
        fi
    done
    # a hard link to a binary that a rebuild replaced keeps ~0.5 GB alive: dropped unless asked
    if [[ "${CHAOS_KEEP_BIN:-0}" != 1 && -n "${BIN:-}" ]]; then rm -f "$BIN"; fi
    rm -f "$STATE_DIR/.active/$$"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "chaos.sh: interrupted (SIGINT): healing and cleaning up" >&2; exit 130' INT
trap 'echo "chaos.sh: terminated (SIGTERM): healing and cleaning up" >&2; exit 143' TERM
# for `chaos.sh cleanup`, should this script die without its trap (SIGKILL)
echo "$OUT" >"$STATE_DIR/.active/$$"

# ---------------------------------------------------------------------------------------------
# the cluster: distinct loopback IPs (so iptables can tell nodes apart), free ports

node_ip() { echo "127.0.0.1$1"; }
read -r LB_PORT P1 R1 P2 R2 P3 R3 < <(python3 - <<'PY'
import random, socket
ips = ["127.0.0.1"] + [f"127.0.0.1{i}" for i in (1, 1, 2, 2, 3, 3)]
used, out = set(), []
for ip in ips:
    for _ in range(500):
        p = random.randint(20000, 32000)  # below the ephemeral range
        if p in used:
            continue
        s = socket.socket()
        try:
            s.bind((ip, p))
        except OSError:
            continue
        finally:
            s.close()
        used.add(p)
        out.append(p)
        break
    else:
        raise SystemExit(f"no free port on {ip}")
print(*out)
PY
)
HTTP_PORT=([1]="$P1" [2]="$P2" [3]="$P3")
RAFT_PORT=([1]="$R1" [2]="$R2" [3]="$R3")
LB_ADDR="127.0.0.1:$LB_PORT"
http_addr() { echo "$(node_ip "$1"):${HTTP_PORT[$1]}"; }
raft_addr() { echo "$(node_ip "$1"):${RAFT_PORT[$1]}"; }
data_dir() { echo "$OUT/data/node$1"; }
ADMIN_TOKEN="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# disk-full: one node (picked now, seeded) gets its data dir on a small tmpfs
DISK_NODE=""
if ((needs_tmpfs)); then
    rand 1 3
    DISK_NODE="$REPLY"
fi
data_path() { # where the config puts node N's data
    if [[ "$1" == "$DISK_NODE" ]]; then echo "$OUT/disk/node$1/data"; else data_dir "$1"; fi
}

{
    cat <<EOF
# generated by scripts/chaos.sh ($SCENARIO, seed $SEED)
[cluster]
name = "chaos-$SCENARIO"
secret = "$SECRET"
admin_token = "$ADMIN_TOKEN"

[raft]
heartbeat_ms = 100
election_timeout_min_ms = 400
election_timeout_max_ms = 800
request_deadline_ms = 3000
rpc_timeout_ms = 1000
# small, so that snapshots and log purges happen within a short run and a wiped node rejoins
# through a snapshot (the node purges in batches of at least min(256, snapshot_logs_since_last)
# entries: with these values a snapshot at index >= 60 purges the log)
snapshot_logs_since_last = 50
max_in_snapshot_log_to_keep = 10

[load_balancer]
addr = "$LB_ADDR"
EOF
    for id in "${NODE_IDS[@]}"; do
        printf '\n[[node]]\nid = %d\nhttp_addr = "%s"\nraft_addr = "%s"\ndata_dir = "%s"\n' \
            "$id" "$(http_addr "$id")" "$(raft_addr "$id")" "$(data_path "$id")"
    done
} >"$CONFIG"
"$BIN" check-config --config "$CONFIG" >/dev/null 2>&1 || {
    "$BIN" check-config --config "$CONFIG" >&2 || true
    die "the generated config $CONFIG is invalid"
}

if [[ -n "$DISK_NODE" ]]; then
    m="$OUT/disk/node$DISK_NODE"
    mkdir -p "$m"
    mount -t tmpfs -o "size=${DISK_MB}m,mode=0755" "chaos-$$" "$m"
    MOUNTS+=("$m")
    mkdir -p "$m/data"
fi
if ((needs_iptables)); then
    iptables -w -N "$CHAIN"
    CHAIN_MADE=1
    iptables -w -I INPUT 1 -j "$CHAIN"
fi

# ---------------------------------------------------------------------------------------------
# the cluster's state, read over HTTP

curl_q() { curl -sS --noproxy '*' -m "${2:-1}" "$1" 2>/dev/null || true; }
# node_status N: ST_ROLE ST_TERM ST_LEADER ST_APPLIED ST_LAST ST_SNAP (ST_ROLE empty: no answer)
node_status() {
    local j
    j="$(curl_q "http://$(http_addr "$1")/cluster/status")"
    ST_ROLE="" ST_TERM="" ST_LEADER="" ST_APPLIED="" ST_LAST="" ST_SNAP=""
    [[ "$j" =~ \"role\":\"([a-z_-]+)\" ]] && ST_ROLE="${BASH_REMATCH[1]}"
    [[ "$j" =~ \"term\":([0-9]+) ]] && ST_TERM="${BASH_REMATCH[1]}"
    [[ "$j" =~ \"leader\":([0-9]+) ]] && ST_LEADER="${BASH_REMATCH[1]}"
    [[ "$j" =~ \"applied_index\":([0-9]+) ]] && ST_APPLIED="${BASH_REMATCH[1]}"
    [[ "$j" =~ \"last_log_index\":([0-9]+) ]] && ST_LAST="${BASH_REMATCH[1]}"
    [[ "$j" =~ \"snapshot_index\":([0-9]+) ]] && ST_SNAP="${BASH_REMATCH[1]}"
    return 0
}
ready() { [[ "$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -m 1 "http://$(http_addr "$1")/readyz" 2>/dev/null)" == 200 ]]; }
lb_node_status() { # N: HAProxy's status of server nodeN (UP, DOWN, ...)
    curl_q "http://$LB_ADDR/haproxy-stats;csv" 2 | awk -F, -v s="node$1" '$1 == "nodes" && $2 == s { print $18 }'
}

# find_leader [TIMEOUT_S]: REPLY = the id of the node that says it leads (highest term)
find_leader() {
    local deadline=$(($(now_ms) + ${1:-15} * 1000)) id best="" best_term=-1
    while :; do
        for id in "${NODE_IDS[@]}"; do
            node_status "$id"
            if [[ "$ST_ROLE" == leader && "$ST_TERM" -gt "$best_term" ]]; then best="$id" best_term="$ST_TERM"; fi
        done
        if [[ -n "$best" ]]; then REPLY="$best"; return 0; fi
        (($(now_ms) < deadline)) || { REPLY=""; return 1; }
        sleep 0.2
    done
}
# a follower, picked with the seeded generator (the leader is excluded)
pick_follower() {
    local leader="$1" id
    local -a f=()
    for id in "${NODE_IDS[@]}"; do [[ "$id" == "$leader" ]] || f+=("$id"); done
    rand 0 $((${#f[@]} - 1))
    REPLY="${f[REPLY]}"
}

RECOVERY_PROBLEMS=()
# wait_healthy: every node running, ready, agreeing on one leader, caught up with the leader's
# last log index as of the first look, UP in HAProxy. A node whose process exited on its own is
# recorded and started again. Returns 1 after RECOVER_TIMEOUT.
wait_healthy() {
    local t0 deadline id target="" leader why
    t0="$(now_ms)"
    deadline=$((t0 + RECOVER_TIMEOUT * 1000))
    while :; do
        why=""
        for id in "${NODE_IDS[@]}"; do
            if [[ -z "$(node_pid "$id")" ]]; then
                say "node $id is not running (exited on its own? see $RUN_DIR/logs/node$id.log); starting it"
                RECOVERY_PROBLEMS+=("node $id exited on its own (before $(rel "$(now_ms)")s)")
                local s
                s="$(now_ms)"
                cluster start "$id" >>"$OPS_LOG" 2>&1 || true
                record_window unexpected-exit-restart "$id" "$s" "$(now_ms)" "node was not running; started again"
            fi
        done
        if ! find_leader 1; then
            why="no leader"
        else
            leader="$REPLY"
            node_status "$leader"
            [[ -n "$target" ]] || target="$ST_LAST"
            for id in "${NODE_IDS[@]}"; do
                node_status "$id"
                if [[ "$ST_LEADER" != "$leader" ]]; then why="node $id follows ${ST_LEADER:-nobody}, not $leader"; break; fi
                if [[ -z "$ST_APPLIED" || "$ST_APPLIED" -lt "$target" ]]; then why="node $id applied ${ST_APPLIED:-?} < $target"; break; fi
                if ! ready "$id"; then why="node $id not ready"; break; fi
                if [[ "$(lb_node_status "$id")" != UP ]]; then why="node $id not UP in HAProxy"; break; fi
            done
        fi
        if [[ -z "$why" ]]; then
            HEALTHY_AFTER_MS=$(($(now_ms) - t0))
            return 0
        fi
        if (($(now_ms) >= deadline)); then
            say "cluster NOT whole after ${RECOVER_TIMEOUT}s: $why"
            RECOVERY_PROBLEMS+=("not recovered within ${RECOVER_TIMEOUT}s after a fault ending at $(rel "$t0")s: $why")
            return 1
        fi
        sleep 0.25
    done
}

# ---------------------------------------------------------------------------------------------
# the nemeses. Each leaves the cluster healed (but maybe not yet whole: wait_healthy follows).

kill_and_restart() { # NAME NODE
    local name="$1" id="$2" pid down t
    pid="$(node_pid "$id")"
    [[ -n "$pid" ]] || { say "$name: node $id is not running; skipped"; return 0; }
    rand 2 5
    down="$REPLY"
    fault_begin "$name" "$id" "SIGKILL pid $pid, down ${down}s"
    cluster kill "$id" >>"$OPS_LOG" 2>&1
    say "$name: SIGKILL node $id (pid $pid); starting it again in ${down}s"
    nap "$down"
    t="$(now_ms)"
    if cluster start "$id" >>"$OPS_LOG" 2>&1; then
        fault_end "ready $(fmt_s $(($(now_ms) - t)))s after start"
        say "$name: node $id ready again"
    else
        fault_end "start FAILED"
        say "$name: node $id did not start (see $OPS_LOG)"
    fi
}

nemesis_kill_leader() {
    find_leader || { say "kill-leader: no leader; skipped"; return 0; }
    kill_and_restart kill-leader "$REPLY"
}
nemesis_kill_random() {
    rand 1 3
    kill_and_restart kill-random "$REPLY"
}

nemesis_pause() {
    local id pid hold what
    rand 0 1
    if ((REPLY == 0)) && find_leader; then id="$REPLY" what=leader; else rand 1 3; id="$REPLY" what=random; fi
    pid="$(node_pid "$id")"
    [[ -n "$pid" ]] || { say "pause: node $id is not running; skipped"; return 0; }
    rand 3 7
    hold="$REPLY"
    fault_begin pause "$id" "SIGSTOP pid $pid ($what node) for ${hold}s"
    PAUSED_PID="$pid"
    kill -STOP "$pid"
    say "pause: SIGSTOP node $id ($what, pid $pid) for ${hold}s"
    nap "$hold"
    resume_paused
    fault_end "SIGCONT"
    say "pause: SIGCONT node $id"
}

# Are this cluster's peer connections bound to the nodes' own IPs? (then the rules below cut
# exactly node-to-node traffic; older binaries connect to peers from 127.0.0.1)
peers_bound() {
    local id addrs=" "
    for id in "${NODE_IDS[@]}"; do addrs+="$(http_addr "$id") $(raft_addr "$id") "; done
    ss -Htn state established 2>/dev/null | awk -v addrs="$addrs" '
        $3 ~ /^127\.0\.0\.1[123]:/ && $4 ~ /^127\.0\.0\.1[123]:/ &&
        (index(addrs, " " $3 " ") || index(addrs, " " $4 " ")) { f = 1 } END { exit !f }'
}
# isolate NODE BOUND: drop the TCP traffic between NODE and every other node of this cluster, both
# ways (by IP and by this cluster's ports: other clusters on the same IPs are not touched). When
# the peers are not bound to their IPs (BOUND=0), also every connection to NODE's Raft port: the
# other nodes then cannot reach it, but it can still reach them (an asymmetric partition).
isolate() {
    local x="$1" y ix iy px py
    ix="$(node_ip "$x")"
    px="${HTTP_PORT[$x]},${RAFT_PORT[$x]}"
    for y in "${NODE_IDS[@]}"; do
        [[ "$y" != "$x" ]] || continue
        iy="$(node_ip "$y")"
        py="${HTTP_PORT[$y]},${RAFT_PORT[$y]}"
        iptables -w -A "$CHAIN" -s "$ix" -d "$iy" -p tcp -m multiport --dports "$py" -j DROP
        iptables -w -A "$CHAIN" -s "$iy" -d "$ix" -p tcp -m multiport --sports "$py" -j DROP
        iptables -w -A "$CHAIN" -s "$iy" -d "$ix" -p tcp -m multiport --dports "$px" -j DROP
        iptables -w -A "$CHAIN" -s "$ix" -d "$iy" -p tcp -m multiport --sports "$px" -j DROP
    done
    if (($2 == 0)); then
        iptables -w -A "$CHAIN" -d "$ix" -p tcp --dport "${RAFT_PORT[$x]}" -j DROP
    fi
}
partition() { # NAME NODE WHAT
    local name="$1" id="$2" hold mode bound=0
    rand 4 8
    hold="$REPLY"
    if peers_bound; then
        bound=1
        mode="full: node-to-node traffic dropped both ways"
    else
        mode="inbound only: peers connect from 127.0.0.1, so only connections to its Raft port are cut"
    fi
    fault_begin "$name" "$id" "iptables isolates node $id ($3) for ${hold}s; $mode"
    isolate "$id" "$bound"
    say "$name: node $id ($3) cut off from the other nodes for ${hold}s ($mode)"
    nap "$hold"
    heal_partitions
    fault_end "healed"
    say "$name: healed"
}
nemesis_partition_leader() {
    find_leader || { say "partition-leader: no leader; skipped"; return 0; }
    partition partition-leader "$REPLY" leader
}
nemesis_partition_minority() {
    find_leader || { say "partition-minority: no leader; skipped"; return 0; }
    pick_follower "$REPLY"
    partition partition-minority "$REPLY" follower
}

nemesis_rolling_restart() {
    local line rcs
    say "rolling-restart: scripts/cluster.sh rolling-restart"
    set +e
    cluster rolling-restart 2>&1 | while IFS= read -r line; do
        printf '%s\n' "$line" >>"$OPS_LOG"
        if [[ "$line" =~ ^\[[0-9]+/[0-9]+\]\ node\ ([0-9]+)\ \(([a-z]+)\):\ stopping ]]; then
            fault_begin rolling-restart "${BASH_REMATCH[1]}" "SIGTERM + start (${BASH_REMATCH[2]})"
            say "rolling-restart: node ${BASH_REMATCH[1]} (${BASH_REMATCH[2]}) stopping"
        elif [[ "$line" =~ ^\[[0-9]+/[0-9]+\]\ node\ ([0-9]+):\ back\ in\ service ]]; then
            fault_end "back in service"
            say "rolling-restart: node ${BASH_REMATCH[1]} back in service"
        fi
    done
    rcs=("${PIPESTATUS[@]}")
    set -e
    if ((rcs[0] != 0)); then
        say "rolling-restart FAILED (exit ${rcs[0]}; see $OPS_LOG)"
        RECOVERY_PROBLEMS+=("rolling-restart failed (exit ${rcs[0]}) at $(rel "$(now_ms)")s")
        fault_end "rolling-restart FAILED (exit ${rcs[0]})"
    fi
}

SKEWS=("+20s" "-20s" "+90s" "-90s")
nemesis_clock_skew() {
    local id pid hold skew t log
    rand 1 3
    id="$REPLY"
    rand 0 $((${#SKEWS[@]} - 1))
    skew="${CHAOS_CLOCK_SKEW:-${SKEWS[REPLY]}}"
    rand 8 12
    hold="$REPLY"
    log="$RUN_DIR/logs/node$id.log"
    fault_begin clock-skew "$id" "restarted under libfaketime FAKETIME=$skew for ${hold}s"
    cluster stop "$id" >>"$OPS_LOG" 2>&1
    # started like cluster.sh starts a node (setsid, same pid file and log), with libfaketime
    # preloaded; env execs the binary, so the recorded pid is the node's
    echo "--- chaos.sh: node $id started under libfaketime FAKETIME=$skew ---" >>"$log"
    setsid env LD_PRELOAD="$FAKETIME_LIB" FAKETIME="$skew" \
        "$BIN" serve --config "$CONFIG" --node "$id" >>"$log" 2>&1 </dev/null 8>&- &
    echo $! >"$RUN_DIR/node$id.pid"
    t="$(now_ms)"
    until ready "$id"; do
        if (($(now_ms) - t > 30000)) || ! kill -0 "$(<"$RUN_DIR/node$id.pid")" 2>/dev/null; then
            say "clock-skew: node $id under libfaketime did not become ready (see $log)"
            OPEN_DETAIL+="; NOT ready under libfaketime"
            break
        fi
        sleep 0.2
    done
    pid="$(node_pid "$id")"
    if [[ -n "$pid" ]] && grep -q libfaketime "/proc/$pid/maps" 2>/dev/null; then
        say "clock-skew: node $id (pid $pid) runs with its clock at $skew for ${hold}s"
    else
        say "clock-skew: WARNING: libfaketime is not mapped in node $id (pid ${pid:-none})"
        OPEN_DETAIL+="; libfaketime NOT mapped"
    fi
    nap "$hold"
    t="$(now_ms)"
    if cluster restart "$id" >>"$OPS_LOG" 2>&1; then
        fault_end "restarted with the real clock, ready after $(fmt_s $(($(now_ms) - t)))s"
        say "clock-skew: node $id restarted with the real clock"
    else
        fault_end "restart with the real clock FAILED"
        say "clock-skew: node $id did not restart (see $OPS_LOG)"
    fi
}

nemesis_disk_full() {
    local id="$DISK_NODE" dir log hold pid t crashed="" nospc0 nospc1
    dir="$OUT/disk/node$id"
    log="$RUN_DIR/logs/node$id.log"
    rand 4 7
    hold="$REPLY"
    pid="$(node_pid "$id")"
    nospc0="$(grep -ci 'no space' "$log" || true)"
    fault_begin disk-full "$id" "tmpfs ${DISK_MB} MiB ($(df -h --output=used "$dir" | tail -1 | xargs) used by the node) filled for ${hold}s"
    FILLER="$dir/chaos-filler"
    dd if=/dev/zero of="$FILLER" bs=1M status=none 2>/dev/null || true
    say "disk-full: node $id's data dir is full ($(df -h --output=used,size "$dir" | tail -1 | xargs)) for ${hold}s"
    t=$(($(now_ms) + hold * 1000))
    while (($(now_ms) < t)); do
        if [[ -z "$crashed" && -z "$(node_pid "$id")" ]]; then
            crashed="$(now_ms)"
            say "disk-full: node $id (pid $pid) exited"
        fi
        sleep 0.2
    done
    free_filler
    nospc1="$(grep -ci 'no space' "$log" || true)"
    fault_end "freed; $((nospc1 - nospc0)) 'no space' log lines"
    say "disk-full: space freed"
    if [[ -z "$crashed" && -z "$(node_pid "$id")" ]]; then crashed="$(now_ms)"; fi
    if [[ -n "$crashed" ]]; then
        t="$(now_ms)"
        cluster start "$id" >>"$OPS_LOG" 2>&1 || say "disk-full: node $id did not start (see $OPS_LOG)"
        record_window disk-full-restart "$id" "$crashed" "$(now_ms)" "node exited during disk-full; started after the space was freed"
        say "disk-full: node $id had exited; started again"
        return 0
    fi
    # alive: it must become ready by itself, else it is restarted
    t=$(($(now_ms) + 10000))
    while ! ready "$id" && (($(now_ms) < t)); do sleep 0.25; done
    if ! ready "$id"; then
        t="$(now_ms)"
        say "disk-full: node $id alive but not ready 10 s after the space was freed; restarting it"
        cluster restart "$id" >>"$OPS_LOG" 2>&1 || say "disk-full: node $id did not restart (see $OPS_LOG)"
        record_window disk-full-restart "$id" "$t" "$(now_ms)" "node alive but not ready 10 s after the space was freed; restarted"
    else
        say "disk-full: node $id survived (ready without a restart)"
    fi
}

# The snapshot is taken while every node is up: openraft (0.9) postpones purging the log while a
# replication to a down follower is in flight, so a snapshot taken during the downtime leaves the
# whole log in place and the wiped node would catch up from the log instead. Whether it rejoined
# through a snapshot is read from its /cluster/status (snapshot_index) and recorded.
nemesis_wipe_and_rejoin() {
    local leader id dir down snap before t deadline log lines ready_ms installed how
    find_leader || { say "wipe-and-rejoin: no leader; skipped"; return 0; }
    leader="$REPLY"
    pick_follower "$leader"
    id="$REPLY"
    dir="$(data_path "$id")"
    [[ "$dir" == "$OUT"/* ]] || die "refusing to wipe $dir (not under $OUT)"
    rand 1 3
    down="$REPLY"
    node_status "$leader"
    before="${ST_SNAP:-0}"
    snap="$(curl -sS --noproxy '*' -m 10 -X POST -H "Authorization: Bearer $ADMIN_TOKEN" "http://$(http_addr "$leader")/admin/snapshot" -w ' %{http_code}' 2>&1 || true)"
    echo "admin/snapshot on node $leader: $snap" >>"$OPS_LOG"
    deadline=$(($(now_ms) + 5000))
    while node_status "$leader" && [[ "${ST_SNAP:-0}" -le "$before" ]] && (($(now_ms) < deadline)); do sleep 0.1; done
    # the purge of the log up to the snapshot follows at the leader's next progress update
    nap 1
    say "wipe-and-rejoin: leader $leader snapshot at index ${ST_SNAP:-none}; wiping node $id"
    fault_begin wipe-and-rejoin "$id" "leader $leader snapshot at ${ST_SNAP:-none}; stopped, data deleted, down ${down}s"
    cluster stop "$id" >>"$OPS_LOG" 2>&1
    find "$dir" -mindepth 1 -delete
    say "wipe-and-rejoin: node $id stopped and its data deleted"
    nap "$down"
    t="$(now_ms)"
    log="$RUN_DIR/logs/node$id.log"
    lines="$(wc -l <"$log")"
    if cluster start "$id" >>"$OPS_LOG" 2>&1; then
        ready_ms=$(($(now_ms) - t))
        deadline=$(($(now_ms) + 5000))
        node_status "$id"
        while [[ -z "$ST_APPLIED" ]] && (($(now_ms) < deadline)); do sleep 0.2; node_status "$id"; done
        installed="$(tail -n +"$((lines + 1))" "$log" | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'snapshot installed id=[^ ]*' | tail -1 || true)"
        if [[ -n "$installed" ]]; then how="through a snapshot (${installed#snapshot })"; else how="WITHOUT a snapshot (no 'snapshot installed' in its log: from the log)"; fi
        fault_end "rejoined, ready after $(fmt_s "$ready_ms")s, $how, applied ${ST_APPLIED:-?}"
        say "wipe-and-rejoin: node $id rejoined $how, applied ${ST_APPLIED:-?}"
    else
        fault_end "start FAILED"
        say "wipe-and-rejoin: node $id did not start (see $OPS_LOG)"
    fi
}

run_fault() {
    case "$1" in
    kill-leader) nemesis_kill_leader ;;
    kill-random) nemesis_kill_random ;;
    pause) nemesis_pause ;;
    partition-leader) nemesis_partition_leader ;;
    partition-minority) nemesis_partition_minority ;;
    rolling-restart) nemesis_rolling_restart ;;
    clock-skew) nemesis_clock_skew ;;
    disk-full) nemesis_disk_full ;;
    wipe-and-rejoin) nemesis_wipe_and_rejoin ;;
    *) die "no nemesis $1" ;;
    esac
}
# about how long a fault takes, heal and recovery included (seconds), for the schedule
fault_estimate() {
    case "$1" in
    kill-*) echo 8 ;;
    pause) echo 9 ;;
    partition-*) echo 10 ;;
    rolling-restart) echo 15 ;;
    clock-skew) echo 16 ;;
    disk-full) echo 12 ;;
    wipe-and-rejoin) echo 9 ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# the run

echo "== chaos $SCENARIO: seed $SEED, duration ${DURATION}s, rate ${RATE}/s, users $USERS, settle ${SETTLE}s"
echo "   run dir $OUT"
[[ -z "$DISK_NODE" ]] || echo "   node $DISK_NODE's data on a ${DISK_MB} MiB tmpfs (disk-full)"
echo "starting the cluster (scripts/cluster.sh up; output in $OPS_LOG)..."
if ! cluster up >>"$OPS_LOG" 2>&1; then
    tail -n 20 "$OPS_LOG" >&2
    die "the cluster did not come up; see $OPS_LOG and $RUN_DIR/logs/"
fi
wait_healthy || die "the fresh cluster is not healthy"
find_leader
echo "cluster up: nodes $(for i in "${NODE_IDS[@]}"; do printf '%s=%s ' "$i" "$(http_addr "$i")"; done)(raft ports ${RAFT_PORT[*]}), leader $REPLY, HAProxy $LB_ADDR"

TARGETS="http://$LB_ADDR"
NODES=""
for id in "${NODE_IDS[@]}"; do
    TARGETS+=",http://$(http_addr "$id")"
    NODES+="${NODES:+,}http://$(http_addr "$id")"
done
HISTORY="$OUT/history.jsonl"
STANDIN=0
if has_cmd load; then
    LOAD_KIND="sessionraft load"
    setsid "$BIN" load --targets "$TARGETS" --users "$USERS" --rate "$RATE" --duration "$DURATION" \
        --seed "$SEED" --out "$HISTORY" --settle "$SETTLE" --final-targets "$TARGETS" \
        >"$OUT/load.log" 2>&1 </dev/null 8>&- &
else
    LOAD_KIND="stand-in curl load (this binary has no 'load' command)"
    STANDIN=1
    setsid bash "$SELF" __standin-load "$HISTORY" "$TARGETS" "$USERS" "$RATE" \
        "$DURATION" "$SETTLE" "$TARGETS" >"$OUT/load.log" 2>&1 </dev/null 8>&- &
fi
LOAD_PID=$!
echo "$LOAD_PID" >"$OUT/load.pid"
T0="$(now_ms)"
echo "load: $LOAD_KIND, pid $LOAD_PID, targets $TARGETS"
say "load started; first fault in ${WARMUP}s"
nap "$WARMUP"

# the schedule: the scenario's fault (or, for mixed, a seeded pick among the others, never the
# same twice in a row), each followed by recovery and a 2-4 s gap, while the next one fits in
END_FAULTS=$((T0 + DURATION * 1000))
CANDIDATES=()
for s in "${SCENARIOS[@]}"; do
    [[ "$s" != mixed ]] || continue
    if [[ "$s" == clock-skew ]] && ((!HAVE_FAKETIME)); then
        warn "mixed: no libfaketime at $FAKETIME_LIB: clock-skew left out"
        continue
    fi
    CANDIDATES+=("$s")
done
n_faults=0 prev=""
while :; do
    if [[ "$SCENARIO" == mixed ]]; then
        while :; do
            rand 0 $((${#CANDIDATES[@]} - 1))
            fault="${CANDIDATES[REPLY]}"
            [[ "$fault" == "$prev" ]] || break
        done
    else
        fault="$SCENARIO"
    fi
    if ((n_faults > 0 && $(now_ms) + $(fault_estimate "$fault") * 1000 > END_FAULTS)); then break; fi
    run_fault "$fault"
    n_faults=$((n_faults + 1))
    prev="$fault"
    if wait_healthy; then
        say "cluster whole again after $(fmt_s "$HEALTHY_AFTER_MS")s"
    fi
    rand 2 4
    gap="$REPLY"
    if (($(now_ms) + gap * 1000 >= END_FAULTS)); then break; fi
    nap "$gap"
done
say "faults done ($n_faults); cluster healed"
LATE=$(($(now_ms) - T0 - (DURATION + SETTLE) * 1000))
if ((LATE > -2000)); then
    warn "the faults ran until $(fmt_s $((LATE)))s after the load's final reads were due (duration + settle): they may have seen an unhealed cluster; raise --duration or CHAOS_SETTLE"
fi

# the load: its duration, settle and final reads
LOAD_RC=0
deadline=$((T0 + (DURATION + SETTLE + 120) * 1000))
say "waiting for the load (duration, ${SETTLE}s settle, final reads)..."
while kill -0 "$LOAD_PID" 2>/dev/null; do
    if (($(now_ms) > deadline)); then
        warn "the load is still running 120 s after duration + settle: stopping it"
        stop_load
        LOAD_RC=124
        break
    fi
    nap 0.5
done
if [[ -n "$LOAD_PID" ]]; then
    wait "$LOAD_PID" || LOAD_RC=$?
    LOAD_PID=""
fi
say "load finished (exit $LOAD_RC; log $OUT/load.log)"

# the checker
CHECK_DIR="$OUT/check"
CHECK_RC=0
CHECK_KIND="no checker"
if [[ ! -s "$HISTORY" ]]; then
    warn "no history at $HISTORY"
    CHECK_RC=2
elif ((!STANDIN)); then
    # the history is sessionraft load's: only sessionraft check reads it
    CHECK_KIND="sessionraft check"
    "$BIN" check --history "$HISTORY" --nodes "$NODES" --faults "$FAULTS" --out "$CHECK_DIR" 8>&- 2>&1 | tee "$OUT/check.log" || CHECK_RC="${PIPESTATUS[0]}"
else
    CHECK_KIND="stand-in checker (for the stand-in load's history)"
    bash "$SELF" __standin-check "$HISTORY" "$FAULTS" "$CHECK_DIR" 8>&- 2>&1 | tee "$OUT/check.log" || CHECK_RC="${PIPESTATUS[0]}"
fi

# the table of faults
echo
echo "faults injected (times from the start of the load; $FAULTS):"
printf '  %-3s %-22s %-4s %9s %9s %8s  %s\n' "#" fault node start end length detail
awk -F'\t' -v t0="$T0" '{
    printf "  %-3d %-22s %-4s %9.3f %9.3f %7.3fs  %s\n", NR, $1, $2, ($3 - t0) / 1000, ($4 - t0) / 1000, ($4 - $3) / 1000, $5
}' "$FAULTS_TSV"
[[ -s "$FAULTS_TSV" ]] || echo "  (none)"

echo
RC=0
case "$CHECK_RC" in
0) echo "verdict: VALID (${CHECK_KIND:-no checker}): $CHECK_DIR/verdict.json" ;;
1) echo "verdict: VIOLATIONS FOUND (${CHECK_KIND}): $CHECK_DIR/verdict.json"; RC=1 ;;
*) echo "verdict: the checker could not run (exit $CHECK_RC; $OUT/check.log)"; RC=2 ;;
esac
if ((LOAD_RC != 0)); then
    echo "the load exited $LOAD_RC (see $OUT/load.log)"
    ((RC == 1)) || RC=2
fi
if ((${#RECOVERY_PROBLEMS[@]} > 0)); then
    echo "recovery problems:"
    printf '  - %s\n' "${RECOVERY_PROBLEMS[@]}"
    ((RC != 0)) || RC=3
fi
[[ -f "$CHECK_DIR/summary.json" ]] && echo "summary: $CHECK_DIR/summary.json"
[[ -f "$CHECK_DIR/report.svg" ]] && echo "report:  $CHECK_DIR/report.svg"
echo "history: $HISTORY   faults: $FAULTS   node logs: $RUN_DIR/logs/"
exit "$RC"

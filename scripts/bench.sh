#!/usr/bin/env bash
# Benchmark sessionraft against two baselines on this machine, one system at a time, and write the
# results as Markdown (plus the raw numbers as JSON).
#
#   scripts/bench.sh [--duration S] [--warmup S] [--quick] [--out FILE] [--only PARTS]
#                    [--trials N] [--sessions N] [--keep]
#   scripts/bench.sh smoke                 start every system, one request to each member, stop it
#                                          (no benchmark; checks the set-up of this machine)
#   scripts/bench.sh report RAW.json [--out FILE]
#                                          write the Markdown again from a raw file
#   scripts/bench.sh summary RAW.json... [--out FILE]
#                                          the targets over several full runs: each run's value,
#                                          the median, how many runs met it (default
#                                          bench/SUMMARY.md); judge a target on the median
#   scripts/bench.sh --compare BIN [--pairs N] [--workloads W,..] [--connections C,..]
#                    [--duration S] [--warmup S] [--quick] [--out FILE]
#                                          A/B: sessionraft's matrix cells, the binary under test
#                                          (SESSIONRAFT_BIN, default target/release/sessionraft) =
#                                          A against BIN = B, in N alternating pairs (default 3),
#                                          each cell on a fresh 3-node cluster, one load tool (A's)
#                                          for both; writes the ratios B/A as Markdown (default
#                                          target/bench/run-*/compare.md, printed too), not
#                                          bench/RESULTS.md. For single changes: a difference
#                                          inside the pairs' spread is noise on this machine.
#
# The systems, each started fresh from this script and stopped before the next one starts (the
# machine has 2 cores: they never compete, and two benchmarks never run at once):
#   sessionraft  3 nodes on 127.0.0.1 from a temp copy of cluster.toml (free ports; its [raft]
#                timings unchanged; no load balancer: the load is spread over the 3 nodes)
#   redis        redis-server on a free port without persistence (--save '' --appendonly no) and
#                target/release/examples/redis_app (actix-web + actix-session's RedisSessionStore,
#                the same POST/GET /api/counter) in front of it
#   etcd         a 3-member etcd cluster (Debian's etcd 3.4) on loopback; its HTTP/JSON gateway
#                (/v3/kv/put, /v3/kv/range) on each member's client port; load over the 3 members
# The matrix, with the same load generator (`sessionraft bench`, closed loop, one cookie / key per
# virtual user, VU i on target i mod n): workloads write, read, mixed (90% reads) x 32 and 256
# connections, for each system (etcd: write = put of --value-bytes 200, read = linearizable range).
# Each sessionraft cell also reports where the time went on the nodes (the mean of each step of a
# write and a read over the cell's window, from their `sessionraft_stage_seconds`).
# Then, on sessionraft:
#   failover     under a light write load (`sessionraft load`, 40 increments/s), SIGKILL the leader
#                --trials times (default 10): the time from the kill to the first successful
#                POST /api/counter through a surviving node (one session, sequential requests,
#                ~10 ms apart); the node is started again and the cluster made whole between trials
#   catchup      a fresh 3-node cluster, `sessionraft bench-backup --sessions N` (default 1000000)
#                restored into it, then a 4th node started and added (scripts/cluster.sh add-node):
#                the time from its start to /readyz 200 and to its applied index reaching the
#                leader's last log index, polled every 100 ms (each poll is two curl processes:
#                at 20 ms they took ~20% of the machine the node was catching up on)
#   memory       VmRSS (and VmHWM) of every node with the N sessions, after the catch-up
#
# Options:
#   --duration S   measured seconds per matrix cell (default 10; --quick: 3)
#   --warmup S     warm-up seconds per cell, not measured (default 2; --quick: 1)
#   --quick        short cells (only the cells: --trials and --sessions keep their defaults)
#   --out FILE     the Markdown (default bench/RESULTS.md); the raw JSON goes next to it, as
#                  raw-YYYYmmdd-HHMMSS.json
#   --only PARTS   comma-separated subset of: sessionraft, redis, etcd (their matrix cells),
#                  failover, catchup (catch-up and memory). Default: all
#   --trials N     failover trials (default 10)
#   --sessions N   sessions for the catch-up and memory (default 1000000)
#   --keep         keep the systems' data directories (default: deleted at the end)
#   --compare BIN  the A/B mode above (B = BIN); with --pairs N (default 3) and, to run fewer
#                  cells, --workloads write,read,mixed and --connections 32,256 (comma lists)
#
# Installs what it needs (`scripts/install-deps.sh --bench`: redis-server, etcd-server,
# etcd-client and what scripts/cluster.sh uses) and builds only when a binary is missing (cargo build --release --workspace
# --all-targets). Needs root (or sudo) for the installs. The run's logs, configs and each cell's
# output stay in target/bench/run-YYYYmmdd-HHMMSS/.
#
# Exit: 0 every measurement was made (whether or not the targets are met: see the report), 1 some
# measurement failed (the report says which), 2 bad usage or the set-up failed, 130/143 interrupted.
#
# Environment: SESSIONRAFT_BIN, BENCH_REDIS_APP (binaries; default target/release/sessionraft and
# target/release/examples/redis_app), BENCH_FAILOVER_RATE (light load, increments/s, default 40),
# BENCH_BACKUP (a backup file to restore for the catch-up instead of generating one with
# bench-backup; --sessions is then the number of sessions it holds, from `sessionraft backup-info`),
# BENCH_CATCHUP_TIMEOUT (seconds node 4 may take to be ready and caught up, default 300: then the
# catch-up is reported as NOT met, with the node's last warning).
#
# Safety: every process this script starts is recorded by pid (sessionraft nodes through the pid
# files of scripts/cluster.sh) and only ever signalled through that pid after checking its command
# line in /proc; an EXIT/INT/TERM trap stops all of them, even when the run fails. Traffic goes to
# 127.0.0.1 only. One run at a time (lock target/bench/.lock); it refuses to start while a
# scripts/chaos.sh run holds target/chaos/.lock.
set -euo pipefail

# the original stdout and stderr: the traps write there even while a redirected function runs
exec 5>&1 6>&2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SELF="$ROOT/scripts/bench.sh"
CLUSTER_SH="$ROOT/scripts/cluster.sh"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
STATE_DIR="$TARGET_DIR/bench"
WORKLOADS=(write read mixed)
CONNECTIONS=(32 256)
VALUE_BYTES=200
PARTS_ALL=(sessionraft redis etcd failover catchup)

die() { echo "bench.sh: $*" >&2; exit 2; }
warn() { echo "bench.sh: $*" >&2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF"; }

now_ms() { local t="${EPOCHREALTIME//[.,]/}"; echo $((10#$t / 1000)); }
fmt_s() { local d="$1" sign=""; if ((d < 0)); then sign="-"; d=$((-d)); fi; printf '%s%d.%03d' "$sign" $((d / 1000)) $((d % 1000)); }
# sleep that a trapped signal interrupts at once
nap() { sleep "$1" 5>&- 6>&- 7>&- & wait $! || true; }
T_START="$(now_ms)"
say() { printf '[%8ss] %s\n' "$(fmt_s $(($(now_ms) - T_START)))" "$*"; }

# ---------------------------------------------------------------------------------------------
# Python helpers (JSON in and out, free ports, the config, the report), one program, by subcommand

py() {
    python3 - "$@" <<'PY'
import json, math, os, random, re, socket, statistics, sys, time

cmd, args = sys.argv[1], sys.argv[2:]

def num(v):
    if v == "null" or v == "":
        return None
    if re.fullmatch(r"-?[0-9]+", v):
        return int(v)
    if re.fullmatch(r"-?[0-9]+\.[0-9]+", v):
        return float(v)
    return v

def find_run(d, system, w, c):
    for r in d.get("runs", []):
        if r["system"] == system and r["workload"] == w and r["connections"] == c:
            return r
    return None

def tput_of(d, system, w, c):
    r = find_run(d, system, w, c)
    return r["result"]["throughput_per_s"] if r and r["status"] == "ok" else None

def n0(v):
    return "–" if v is None else f"{v:,.0f}"

def ms(v):
    return "–" if v is None else (f"{v:.2f}" if v < 100 else f"{v:,.0f}")

def ratio(a, b):
    return None if a is None or not b else a / b

def rx(v):
    return "–" if v is None else f"{v:.2f}×"

def mib(kib):
    return "–" if kib is None else f"{kib / 1024:.1f} MiB"

def secs(v):
    return "–" if v is None else f"{v / 1000:.2f} s"

def targets(d):
    """The issue's targets for one run: dicts with the name, the verdict (True, False, None = not
    measured), the value compared with the limit (a ratio, ms, s or MiB; None when not measured),
    the limit, whether higher is better, and the numbers behind it as text."""
    T = []
    def target(name, value, limit, higher, numbers, ok=None, measured=True):
        if measured and ok is None and value is not None:
            ok = value >= limit if higher else value <= limit
        unit = {"failover": "ms", "catch-up": "s", "RSS": "MiB"}.get(name.split(" ")[0], "×")
        T.append({"name": name, "ok": ok if measured else None, "value": value, "limit": limit,
                  "higher_is_better": higher, "unit": unit, "numbers": numbers})
    def errs(system, w, cc):
        r = find_run(d, system, w, cc)
        e = r["result"]["errors"] if r and r["status"] == "ok" else 0
        return f"; {system} had {e:,} errors" if e else ""
    conns = d.get("settings", {}).get("connections", [32, 256])
    for base, label, limit, w in (("etcd", "session writes ≥ 1.5× etcd put", 1.5, "write"),
                                  ("redis", "session writes ≥ 0.5× Redis app", 0.5, "write"),
                                  ("redis", "session reads ≥ 1.0× Redis app", 1.0, "read")):
        bname = {"etcd": "etcd", "redis": "Redis app"}[base]
        for cc in conns:
            a, b = tput_of(d, "sessionraft", w, cc), tput_of(d, base, w, cc)
            q = ratio(a, b)
            target(f"{label}, {cc} connections", q, limit, True,
                   f"sessionraft {n0(a)}/s vs {bname} {n0(b)}/s = {rx(q)}" + errs("sessionraft", w, cc),
                   measured=q is not None)
    f = d.get("failover")
    if f and f.get("trials"):
        p50 = f.get("p50_ms")
        target("failover p50 ≤ 500 ms", math.inf if p50 is None else p50, 500, False,
               f"p50 {ms(p50)} ms, max {ms(f.get('max_ms'))} ms over {len(f['trials'])} trials"
               + (f" ({f['failed_trials']} without success)" if f.get("failed_trials") else ""))
    else:
        target("failover p50 ≤ 500 ms", None, 500, False, "not measured", measured=False)
    c = d.get("catchup")
    full = c is not None and c.get("sessions") == 1_000_000
    if c and c.get("catchup_ms") is not None:
        target("catch-up of 1M sessions ≤ 10 s", c["catchup_ms"] / 1000, 10, False,
               f"{secs(c['catchup_ms'])} with {c.get('sessions', 0):,} sessions" + ("" if full else " (not the 1M of the target)"),
               measured=full)
    elif c and c.get("caught_up") is False:
        target("catch-up of 1M sessions ≤ 10 s", math.inf, 10, False,
               f"node 4 did not catch up with {c.get('sessions', 0):,} sessions: " + str(c.get("error")).replace("|", "\\|"),
               measured=full)
    else:
        target("catch-up of 1M sessions ≤ 10 s", None, 10, False,
               str((c or {}).get("error") or "not measured").replace("|", "\\|"), measured=False)
    after = d.get("memory", {}).get("after_catchup") or []
    have = [x for x in after if x.get("rss_kib") is not None]
    if have:
        worst = max(have, key=lambda x: x["rss_kib"])
        missing = [str(x["node"]) for x in after if x.get("rss_kib") is None]
        target("RSS ≤ 256 MiB per node at 1M sessions", worst["rss_kib"] / 1024, 256, False,
               f"largest: node {worst['node']} {mib(worst['rss_kib'])}; " + ", ".join(f"node {x['node']} {mib(x['rss_kib'])}" for x in have)
               + (f"; no RSS for node(s) {', '.join(missing)}" if missing else "")
               + ("" if full else f" (with {c.get('sessions', 0):,} sessions, not 1M)"),
               measured=full)
    else:
        target("RSS ≤ 256 MiB per node at 1M sessions", None, 256, False, "not measured", measured=False)
    return T

def verdict(ok):
    return "met" if ok is True else ("**NOT met**" if ok is False else "**NOT measured**")

if cmd == "obj":
    # obj KEY VALUE ...: one JSON object. Values: numbers, "null" and "" as null; a KEY ending in
    # '$' has a string value ("" is null), one ending in '?' a boolean (0 / 1)
    d = {}
    for k, v in zip(args[0::2], args[1::2]):
        if k.endswith("$"):
            d[k[:-1]] = v or None
        elif k.endswith("?"):
            d[k[:-1]] = v not in ("", "0", "false")
        else:
            d[k] = num(v)
    print(json.dumps(d))

elif cmd == "ports":
    # ports N: N distinct free TCP ports on 127.0.0.1, below the ephemeral range
    n, used, out = int(args[0]), set(), []
    while len(out) < n:
        p = random.randint(20000, 32000)
        if p in used:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        used.add(p)
        out.append(p)
    print(*out)

elif cmd == "config":
    # config SRC NAME DATA_ROOT ADDR1 ADDR2 ADDR3: SRC without its [load_balancer] and [[node]]
    # tables (everything else, the [raft] timings included, kept), then 3 nodes on ADDRi
    src, name, data_root, addrs = args[0], args[1], args[2], args[3:]
    out, section = [], None
    for line in open(src).read().splitlines():
        m = re.match(r"\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$", line)
        if m:
            section = m.group(1)
        if section in ("node", "load_balancer"):
            continue
        if section == "cluster" and re.match(r"\s*name\s*=", line):
            line = f'name = "{name}"'
        out.append(line)
    out.insert(0, f"# generated by scripts/bench.sh from {src}: its [[node]] tables replaced, no load balancer")
    for i, a in enumerate(addrs, 1):
        out += ["", "[[node]]", f"id = {i}", f'http_addr = "{a}"', f'raft_addr = "{a}"', f'data_dir = "{data_root}/node{i}"']
    print("\n".join(out))

elif cmd == "meta":
    # meta CONFIG: the run's description from the BM_* environment and the [raft] settings of CONFIG
    import tomllib
    e = os.environ
    defaults = {"heartbeat_ms": 100, "election_timeout_min_ms": 210, "election_timeout_max_ms": 300,
                "snapshot_logs_since_last": 5000, "max_in_snapshot_log_to_keep": 1000,
                "install_snapshot_timeout_ms": 10000, "request_deadline_ms": 3000, "rpc_timeout_ms": 1000}
    with open(args[0], "rb") as f:
        raft = {**defaults, **tomllib.load(f).get("raft", {})}
    opt = lambda k: e.get(k) or None
    print(json.dumps({
        "started": e["BM_STARTED"], "command": e["BM_COMMAND"],
        "machine": {"nproc": int(e["BM_NPROC"]), "cpu": e["BM_CPU"], "mem_total_kib": int(e["BM_MEM"]),
                    "kernel": e["BM_KERNEL"], "os": e["BM_OS"], "disk": e["BM_DISK"],
                    "dsync_writes_per_s": num(e["BM_DSYNC"]), "loadavg_at_start": e["BM_LOADAVG"]},
        "versions": {"sessionraft_git": e["BM_GIT"], "sessionraft_version": e["BM_SR_VERSION"],
                     "sessionraft_binary_mtime": e["BM_SR_MTIME"], "redis": opt("BM_REDIS"),
                     "redis_app_binary_mtime": opt("BM_APP_MTIME"), "etcd": opt("BM_ETCD")},
        "settings": {"quick": e["BM_QUICK"] == "1", "duration_s": int(e["BM_DURATION"]), "warmup_s": int(e["BM_WARMUP"]),
                     "workloads": e["BM_WORKLOADS"].split(), "connections": [int(x) for x in e["BM_CONNECTIONS"].split()],
                     "value_bytes": int(e["BM_VALUE_BYTES"]), "failover_trials": int(e["BM_TRIALS"]),
                     "failover_rate_per_s": int(e["BM_RATE"]), "catchup_sessions": int(e["BM_SESSIONS"]),
                     "parts": e["BM_PARTS"].split(), "raft": raft,
                     "redis_cmd": "redis-server --bind 127.0.0.1 --port P --save '' --appendonly no",
                     "etcd_cmd": "etcd --name eN --data-dir D --listen-client-urls/--listen-peer-urls on 127.0.0.1, "
                                 "--initial-cluster-state new (defaults otherwise)"},
    }, indent=2))

elif cmd == "cell":
    # cell SYSTEM KIND WORKLOAD CONNECTIONS RC STDOUT STDERR: one line of runs.jsonl
    system, kind, workload, conns, rc, out, err = args
    rec = {"system": system, "kind": kind, "workload": workload, "connections": int(conns),
           "status": "failed", "error": None, "result": None}
    text = open(out).read() if os.path.exists(out) else ""
    result = None
    try:
        result = json.loads(text)
    except ValueError:
        for line in reversed(text.splitlines()):
            if line.strip().startswith("{"):
                try:
                    result = json.loads(line)
                    break
                except ValueError:
                    pass
    need = ("ok", "errors", "throughput_per_s", "p50_ms", "p99_ms")
    if int(rc) == 0 and isinstance(result, dict) and all(k in result for k in need):
        rec["status"], rec["result"] = "ok", result
    else:
        tail = open(err).read().strip().splitlines()[-3:] if os.path.exists(err) else []
        why = f"exit {rc}" if int(rc) != 0 else "no JSON result with ok/errors/throughput_per_s/p50_ms/p99_ms on stdout"
        rec["error"] = why + (": " + " / ".join(tail) if tail else "")
        rec["result"] = result if isinstance(result, dict) else None
    print(json.dumps(rec))
    r = rec["result"] or {}
    if rec["status"] == "ok":
        print(f"  -> {r['throughput_per_s']:.0f}/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
              f"ok {r['ok']}, errors {r['errors']}", file=sys.stderr)
    else:
        print(f"  -> FAILED: {rec['error']}", file=sys.stderr)

elif cmd == "compare":
    # compare RUNS.jsonl: the Markdown of an A/B run (cells named sessionraft-A-P / sessionraft-B-P)
    e = os.environ
    cells = {}
    for line in open(args[0]):
        r = json.loads(line)
        side, pair = r["system"].split("-")[1:3]
        cells.setdefault((r["workload"], r["connections"]), {}).setdefault(int(pair), {})[side] = r
    def tp(r):
        return r["result"]["throughput_per_s"] if r and r["status"] == "ok" else None
    def p50(r):
        return r["result"]["p50_ms"] if r and r["status"] == "ok" else None
    def med(xs):
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None
    f0 = lambda v: "–" if v is None else f"{v:,.0f}"
    L = ["# sessionraft A/B", "",
         f"Measured by `scripts/bench.sh --compare` on {time.strftime('%Y-%m-%dT%H:%M:%S%z')}, git {e.get('BM_GIT')}, "
         f"{e.get('BM_NPROC')} cores. A = `{e.get('BM_A')}`, B = `{e.get('BM_B')}`. Every cell: a fresh 3-node "
         f"cluster of that binary, `sessionraft bench` (A's binary as the load tool for both), "
         f"{e.get('BM_WARMUP')} s warm-up + {e.get('BM_DURATION')} s, A then B in each pair.", "",
         "| workload | connections | A (ops/s, per pair) | B (ops/s, per pair) | B ÷ A per pair | median B ÷ A | p50 A → B (ms, medians) |",
         "|---|---:|---|---|---|---:|---|"]
    for (w, c), pairs in cells.items():
        a = [tp(pairs[p].get("A")) for p in sorted(pairs)]
        b = [tp(pairs[p].get("B")) for p in sorted(pairs)]
        ratios = [None if x is None or y is None or x == 0 else y / x for x, y in zip(a, b)]
        m = med(ratios)
        pa = med([p50(pairs[p].get("A")) for p in pairs])
        pb = med([p50(pairs[p].get("B")) for p in pairs])
        L.append(f"| {w} | {c} | {' / '.join(f0(x) for x in a)} | {' / '.join(f0(x) for x in b)} | "
                 f"{' / '.join('–' if r is None else f'{r:.2f}' for r in ratios)} | "
                 f"{'–' if m is None else f'{m:.2f}×'} | "
                 f"{'–' if pa is None else f'{pa:.2f}'} → {'–' if pb is None else f'{pb:.2f}'} |")
    failed = [f"{r['system']} {w}/{c}: {r.get('error')}" for (w, c), pairs in cells.items()
              for p in pairs.values() for r in p.values() if r["status"] != "ok"]
    if failed:
        L += ["", "Failed cells:", ""] + [f"- {x}" for x in failed]
    L += ["", "A ratio inside the spread of the per-pair ratios is noise on this machine; "
          "keep a change only when every pair agrees."]
    print("\n".join(L))

elif cmd == "assemble":
    # assemble WORK RAW: the raw JSON of a run from the pieces in WORK
    work, raw = args
    def load(name, default=None):
        p = os.path.join(work, name)
        return json.load(open(p)) if os.path.exists(p) else default
    def lines(name):
        p = os.path.join(work, name)
        return [json.loads(l) for l in open(p) if l.strip()] if os.path.exists(p) else []
    meta = load("meta.json", {})
    failover = None
    trials = lines("failover.jsonl")
    if trials or os.path.exists(os.path.join(work, "failover.json")):
        failover = {**load("failover.json", {}), "trials": trials}
        ms = sorted(t["ms"] if t.get("ok") else math.inf for t in trials)
        if ms:
            p50 = ms[math.ceil(0.5 * len(ms)) - 1]
            failover["p50_ms"] = None if p50 == math.inf else p50
            failover["max_ms"] = None if ms[-1] == math.inf else ms[-1]
            failover["failed_trials"] = sum(1 for t in trials if not t.get("ok"))
    problems = [l.rstrip("\n") for l in open(os.path.join(work, "problems.txt"))] if os.path.exists(os.path.join(work, "problems.txt")) else []
    doc = {**meta, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "runs": lines("runs.jsonl"), "failover": failover, "catchup": load("catchup.json"),
           "memory": {"after_catchup": lines("memory-catchup.jsonl"), "after_matrix": lines("memory-matrix.jsonl")},
           "problems": [p for p in problems if p]}
    json.dump(doc, open(raw, "w"), indent=2)
    print(raw)

elif cmd == "report":
    # report RAW OUT: the Markdown
    raw, out = args
    d = json.load(open(raw))
    s = d.get("settings", {})
    conns = s.get("connections", [32, 256])
    workloads = s.get("workloads", ["write", "read", "mixed"])
    runs = d.get("runs", [])
    names = {"sessionraft": "sessionraft (3 nodes)", "redis": "Redis app (actix-session + Redis)", "etcd": "etcd (3 members)"}
    def run(system, w, c):
        return find_run(d, system, w, c)
    def tput(system, w, c):
        return tput_of(d, system, w, c)
    L = []
    m, v = d.get("machine", {}), d.get("versions", {})
    L += ["# sessionraft benchmark results", ""]
    L += [f"Measured by `{d.get('command', 'scripts/bench.sh')}` on {d.get('started', '?')} "
          f"(finished {d.get('finished', '?')}). Raw numbers: `{os.path.relpath(raw, os.path.dirname(os.path.abspath(out)))}`."]
    if s.get("quick") or s.get("duration_s", 10) < 10:
        L += ["", f"**Short cells ({s.get('duration_s')} s each): indicative numbers, noisier than a full run.**"]
    L += ["", "## Machine", "", "| | |", "|---|---|"]
    L += [f"| cores (nproc) | {m.get('nproc', '?')} |", f"| CPU | {m.get('cpu', '?')} |",
          f"| RAM | {m.get('mem_total_kib', 0) / 1048576:.1f} GiB |", f"| kernel | {m.get('kernel', '?')} |",
          f"| OS | {m.get('os', '?')} |", f"| disk (all data dirs) | {m.get('disk', '?')} |",
          f"| synced 4 KiB writes (dd oflag=dsync) | {m.get('dsync_writes_per_s', '?')} per second |",
          f"| load average when the run started (1, 5, 15 min) | {m.get('loadavg_at_start', '?')} |"]
    L += ["", "## Versions", "", "| | |", "|---|---|"]
    L += [f"| sessionraft | git {v.get('sessionraft_git', '?')}; `{v.get('sessionraft_version', '?')}`; binary built {v.get('sessionraft_binary_mtime', '?')} |",
          f"| Redis | {v.get('redis') or '–'} |", f"| redis_app | binary built {v.get('redis_app_binary_mtime') or '–'} |",
          f"| etcd | {v.get('etcd') or '–'} |"]
    L += ["", "## Settings", ""]
    rs = s.get("raft", {})
    L += [f"- Every cell: `sessionraft bench`, closed loop, the given number of connections (virtual users, "
          f"each with its own session cookie or key, VU i on target i mod n), {s.get('warmup_s')} s warm-up "
          f"then {s.get('duration_s')} s measured. The load generator runs on the same machine and shares its "
          f"{m.get('nproc', '?')} cores with the system under test (its CPU, in % of one core, is in the tables). "
          "Over the same window the tables give the whole machine's busy CPU (% of all cores) and context switches "
          "per second (`/proc/stat`). "
          "Systems run one at a time.",
          "- Workloads: `write` = POST /api/counter (etcd: put), `read` = GET /api/counter (etcd: linearizable "
          "range), `mixed` = 90% reads, 10% writes. Throughput counts successful operations only.",
          f"- sessionraft: 3 nodes on 127.0.0.1 (one process each, HTTP and Raft on one port), the [raft] settings "
          f"of cluster.toml: heartbeat {rs.get('heartbeat_ms')} ms, election timeout {rs.get('election_timeout_min_ms')}–"
          f"{rs.get('election_timeout_max_ms')} ms, request deadline {rs.get('request_deadline_ms')} ms, snapshot every "
          f"{rs.get('snapshot_logs_since_last')} entries; every log append is fsynced; reads are linearizable (read "
          "barrier); the load spread over the 3 nodes, no load balancer.",
          f"- Redis app: `{s.get('redis_cmd', 'redis-server')}` (no persistence, one process) behind "
          "`examples/redis_app` (actix-web with actix-session's RedisSessionStore, same endpoints); all load to the app.",
          f"- etcd: 3 members on 127.0.0.1, default settings (fsync on, --snapshot-count default), {s.get('value_bytes')}-byte values, "
          "the load spread over the 3 members' HTTP/JSON gateways.",
          f"- Failover: {s.get('failover_trials')} trials; catch-up and memory: {s.get('catchup_sessions', 0):,} sessions."]
    L += ["", "## Throughput and latency", ""]
    for w in workloads:
        for c in conns:
            label = {"write": "write (session POST; etcd put)", "read": "read (session GET; etcd linearizable range)",
                     "mixed": "mixed (90% reads, 10% writes)"}.get(w, w)
            L += [f"### {label}, {c} connections", "",
                  "| system | throughput (ops/s) | p50 (ms) | p99 (ms) | max (ms) | ok | errors | load tool CPU | machine CPU busy | context switches/s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            notes = []
            for system in ("sessionraft", "redis", "etcd"):
                r = run(system, w, c)
                if r is None:
                    L.append(f"| {names[system]} | not run | | | | | | | | |")
                elif r["status"] != "ok":
                    why = (r.get("error") or "").replace("|", "\\|")[:160]
                    L.append(f"| {names[system]} | **FAILED** ({why}) | | | | | | | | |")
                else:
                    x = r["result"]
                    cpu = x.get("load_cpu_percent")
                    busy = x.get("machine_cpu_busy_percent")
                    cs = x.get("context_switches_per_s")
                    L.append(f"| {names[system]} | {n0(x['throughput_per_s'])} | {ms(x['p50_ms'])} | {ms(x['p99_ms'])} | "
                             f"{ms(x.get('max_ms'))} | {x['ok']:,} | {x['errors']:,} | {'–' if cpu is None else f'{cpu:.0f}%'} | "
                             f"{'–' if busy is None else f'{busy:.0f}%'} | {'–' if cs is None else n0(cs)} |")
                    entries = x.get("raft_entries_per_s")
                    if system == "sessionraft" and entries:
                        writes = x["throughput_per_s"] * {"write": 1.0, "mixed": 0.1}.get(w, 0.0)
                        per = f", {writes / entries:.1f} session writes per entry" if writes else ""
                        notes.append(f"{names[system]}: {n0(entries)} Raft log entries/s{per} (each entry: an fsync "
                                     "on every node and an AppendEntries to each follower)")
                    st = x.get("stages") or {}
                    if system == "sessionraft" and st:
                        def sm(k):
                            return f"{st[k]['mean_ms']:.2f} ms" if k in st else "–"
                        notes.append(
                            f"{names[system]}: where the time went, means on the nodes over the window "
                            f"(`sessionraft_stage_seconds`): a write queued in its node's batcher {sm('batch_queue')}; "
                            f"a batch's commit on the leader {sm('commit')} (of it, an AppendEntries carrying entries: "
                            f"round trip {sm('append_rpc')}, the follower's append and fsync {sm('append_follower')}); "
                            f"a follower's batch forwarded to the leader {sm('forward')} (the leader's queue and commit "
                            f"included); a load's read barrier {sm('read_barrier')} (a follower's read-index call "
                            f"{sm('read_index_rpc')})")
                    if x.get("errors") and x.get("first_error"):
                        notes.append(f"{names[system]}: first error: `{str(x['first_error'])[:200]}`")
            sr = tput("sessionraft", w, c)
            L += [""] + [f"- {n}" for n in notes] + ([""] if notes else [])
            L += [f"sessionraft ÷ Redis app: {rx(ratio(sr, tput('redis', w, c)))} · "
                  f"sessionraft ÷ etcd: {rx(ratio(sr, tput('etcd', w, c)))} (throughput)", ""]
    L += ["### Throughput ratios", "", "| workload | connections | sessionraft ÷ Redis app | sessionraft ÷ etcd |", "|---|---:|---:|---:|"]
    for w in workloads:
        for c in conns:
            sr = tput("sessionraft", w, c)
            L.append(f"| {w} | {c} | {rx(ratio(sr, tput('redis', w, c)))} | {rx(ratio(sr, tput('etcd', w, c)))} |")
    f = d.get("failover")
    L += ["", "## Failover (SIGKILL of the leader)", ""]
    if not f:
        L += ["Not measured in this run."]
    else:
        L += [f"{len(f['trials'])} trials under {f.get('load', 'no background load')}. Each: SIGKILL the leader, then "
              "sequential POST /api/counter with one session cookie to the surviving nodes in turn, ~10 ms apart (a "
              "request sent while there is no leader is held by the node, which retries until its request deadline); "
              "the time from the kill to the first 200. Then the node is started again and every node must be ready "
              "and caught up before the next trial.", "",
              f"**p50 {ms(f.get('p50_ms'))} ms, max {ms(f.get('max_ms'))} ms** (nearest rank"
              + (f"; {f['failed_trials']} trial(s) without success within {f.get('timeout_ms', 30000) // 1000} s, counted as infinite" if f.get("failed_trials") else "") + ")", "",
              "| trial | killed leader | kill → first 200 (ms) | requests | served by | new leader | kill → new leader seen (ms) |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
        dash = lambda x: "–" if x is None else x
        for t in f["trials"]:
            L.append(f"| {t['trial']} | {t.get('killed')} | {ms(t['ms']) if t.get('ok') else '**no success** (' + str(t.get('ms')) + ' ms)'} | "
                     f"{dash(t.get('attempts'))} | {dash(t.get('served_by'))} | {dash(t.get('new_leader'))} | {ms(t.get('elected_ms'))} |")
        el = sorted(t["elected_ms"] for t in f["trials"] if t.get("elected_ms") is not None)
        if el:
            L += ["", f"Kill → a survivor reports itself leader of a new term (its /cluster/status, polled every ~10 ms "
                      f"in parallel): p50 {ms(el[math.ceil(0.5 * len(el)) - 1])} ms, max {ms(el[-1])} ms. "
                      "The difference to the first 200 is the held request's retry and the write's commit (the watcher's own polling adds up to ~20 ms either way)."]
    c = d.get("catchup")
    L += ["", "## Catch-up of a 4th node", ""]
    if not c:
        L += ["Not measured in this run."]
    else:
        made = (f"the backup file `{c['backup_file']}` ({c.get('sessions', 0):,} sessions)" if c.get("backup_file") else
                f"`sessionraft bench-backup --sessions {c.get('sessions', 0):,}` ({secs(c.get('backup_ms'))})")
        L += [f"A fresh 3-node cluster; {made}, `sessionraft restore` ({secs(c.get('restore_ms'))}; all 3 nodes applied it after "
              f"{secs(c.get('replicated_ms'))}; sessions gauge on the leader: {c.get('sessions_gauge', '–')}). Then node 4 "
              "started empty and added with `scripts/cluster.sh add-node` (learner, catch-up, voter); "
              "its /readyz and applied index polled every 100 ms.", "",
              "| | |", "|---|---|",
              f"| leader's last log index at node 4's start (target) | {c.get('target_index', '–')} |",
              f"| node 4 start → /readyz 200 | {secs(c.get('start_to_ready_ms'))} |",
              f"| node 4 start → applied index ≥ target | {secs(c.get('start_to_caught_up_ms'))} |",
              f"| **catch-up (the later of the two)** | **{secs(c.get('catchup_ms'))}** |",
              "| `scripts/cluster.sh add-node` in all (to voter) | " + (f"{secs(c.get('add_node_ms'))} (exit {c['add_node_rc']})"
                  if c.get("add_node_rc") is not None else "did not finish (stopped at the timeout)") + " |"]
        if c.get("error"):
            L += ["", f"**Problem:** {c['error']}"]
    mem = d.get("memory", {})
    L += ["", "## Memory (RSS per node)", ""]
    after = mem.get("after_catchup") or []
    if after:
        L += [f"With {(c or {}).get('sessions', 0):,} live sessions, after the restore and the catch-up"
              + (" (node 4 did not catch up: nodes 1–3 only)" if c and c.get("error") else "") + ":", "",
              "| node | VmRSS | VmHWM (peak) | data dir on disk |", "|---:|---:|---:|---:|"]
        for x in after:
            L.append(f"| {x['node']} | {mib(x.get('rss_kib'))} | {mib(x.get('hwm_kib'))} | {mib(x.get('data_kib'))} |")
    else:
        L += ["Not measured at the catch-up size in this run."]
    am = mem.get("after_matrix") or []
    if am:
        L += ["", "After the sessionraft matrix (few sessions; for comparison): " +
              ", ".join(f"node {x['node']} {mib(x.get('rss_kib'))} (peak {mib(x.get('hwm_kib'))})" for x in am) + "."]
    T = targets(d)
    L += ["", "## Targets", "", "| target | result | numbers |", "|---|---|---|"]
    L += [f"| {t['name']} | {verdict(t['ok'])} | {t['numbers']} |" for t in T]
    met = sum(1 for t in T if t["ok"] is True)
    L += ["", f"{met} of {len(T)} targets met."]
    if d.get("problems"):
        L += ["", "## Problems during the run", ""] + [f"- {p}" for p in d["problems"]]
    L.append("")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    open(out, "w").write("\n".join(L))
    print(out)

elif cmd == "summary":
    # summary OUT RAW...: every target across several full runs, the median of each, and the
    # throughput of every cell per run (the baselines move from run to run as much as we do)
    out, raws = args[0], args[1:]
    docs = [json.load(open(r)) for r in raws]
    n = len(docs)
    def val(v, unit, limit=None):
        if v is None:
            return "–"
        if v == math.inf:
            return "failed"
        if unit == "×" and limit is not None and f"{v:.2f}" == f"{limit:.2f}" and v != limit:
            return f"{v:.3f}×"  # 0.996× is not 1.00×
        return {"×": f"{v:.2f}×", "ms": f"{v:,.0f} ms", "s": f"{v:.2f} s", "MiB": f"{v:.1f} MiB"}[unit]
    rel = lambda r: os.path.relpath(r, os.path.dirname(os.path.abspath(out)))
    L = ["# sessionraft benchmark: the targets over several runs", "",
         f"Written by `scripts/bench.sh summary` from {n} full run(s) of `scripts/bench.sh`. One run's "
         "ratios compare systems measured minutes apart on the same machine; on these shared 2 cores a "
         "single run moves by 10–20% from the next, baselines included, so a target is judged here on the "
         "median of its per-run values (each value a ratio within one run, or a time or size).", "",
         "| run | raw numbers | started | sessionraft git | cores |", "|---:|---|---|---|---:|"]
    for i, (r, d) in enumerate(zip(raws, docs), 1):
        L.append(f"| {i} | `{rel(r)}` | {d.get('started', '?')} | {d.get('versions', {}).get('sessionraft_git', '?')} | "
                 f"{d.get('machine', {}).get('nproc', '?')} |")
    gits = {d.get("versions", {}).get("sessionraft_git") for d in docs}
    bins = {(d.get("versions", {}).get("sessionraft_version"), d.get("versions", {}).get("sessionraft_binary_mtime"))
            for d in docs}
    if len(bins) > 1:
        L += ["", "**The runs used different sessionraft binaries**: their spread is not noise alone."]
    elif len(gits) > 1:
        L += ["", f"The same sessionraft binary (built {next(iter(bins))[1]}) in every run; the repository's "
              "state differs between runs (git column)."]
    rows = [targets(d) for d in docs]
    L += ["", "## Targets", "",
          "| target | " + " | ".join(f"run {i}" for i in range(1, n + 1)) + " | median | met in | on the median |",
          "|---|" + "---:|" * n + "---:|---:|---|"]
    met_median = 0
    for k, t0 in enumerate(rows[0]):
        ts = [r[k] for r in rows]
        vals = [t["value"] for t in ts if t["ok"] is not None and t["value"] is not None]
        m = statistics.median(vals) if vals else None
        ok = None if m is None else (m >= t0["limit"] if t0["higher_is_better"] else m <= t0["limit"])
        met_median += ok is True
        L.append(f"| {t0['name']} | " + " | ".join(val(t["value"], t["unit"], t["limit"]) + ("" if t["ok"] is not False else " ✗") for t in ts)
                 + f" | **{val(m, t0['unit'], t0['limit'])}** | {sum(t['ok'] is True for t in ts)} of {n} | {verdict(ok)} |")
    L += ["", f"{met_median} of {len(rows[0])} targets met on the median (✗: missed in that run)."]
    L += ["", "## Throughput per cell (ops/s)", "",
          "| workload | connections | system | " + " | ".join(f"run {i}" for i in range(1, n + 1)) + " | median |",
          "|---|---:|---|" + "---:|" * n + "---:|"]
    s0 = docs[0].get("settings", {})
    for w in s0.get("workloads", ["write", "read", "mixed"]):
        for c in s0.get("connections", [32, 256]):
            for system in ("sessionraft", "redis", "etcd"):
                xs = [tput_of(d, system, w, c) for d in docs]
                have = [x for x in xs if x is not None]
                if not have:
                    continue
                L.append(f"| {w} | {c} | {system} | " + " | ".join(n0(x) for x in xs)
                         + f" | {n0(statistics.median(have))} |")
    L.append("")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    open(out, "w").write("\n".join(L))
    print(out)

else:
    sys.exit(f"py: unknown helper {cmd}")
PY
}

# ---------------------------------------------------------------------------------------------
# subcommands that need no run

case "${1:-}" in
-h | --help | help) usage; exit 0 ;;
report)
    shift
    [[ $# -ge 1 && -f "$1" ]] || die "usage: report RAW.json [--out FILE]"
    raw="$1" out="$ROOT/bench/RESULTS.md"
    if [[ "${2:-}" == --out ]]; then
        [[ -n "${3:-}" ]] || die "--out needs a value"
        out="$3"
    fi
    py report "$raw" "$out"
    exit 0
    ;;
summary)
    shift
    out="$ROOT/bench/SUMMARY.md" raws=()
    while (($#)); do
        case "$1" in
        --out) [[ -n "${2:-}" ]] || die "--out needs a value"; out="$2"; shift 2 ;;
        *) [[ -f "$1" ]] || die "summary: no raw file $1"; raws+=("$1"); shift ;;
        esac
    done
    ((${#raws[@]} >= 1)) || die "usage: summary RAW.json... [--out FILE]"
    py summary "$out" "${raws[@]}"
    exit 0
    ;;
esac

MODE=bench
if [[ "${1:-}" == smoke ]]; then
    MODE=smoke
    shift
fi

# ---------------------------------------------------------------------------------------------
# arguments

DURATION="" WARMUP="" QUICK=0 OUT="$ROOT/bench/RESULTS.md" ONLY="" TRIALS=10 SESSIONS=1000000 KEEP=0
COMPARE_SRC="" PAIRS=3 OUT_GIVEN=0 CMP_WORKLOADS="" CMP_CONNECTIONS=""
ARGS_TEXT="$*"
while (($#)); do
    case "$1" in
    --quick) QUICK=1; shift ;;
    --keep) KEEP=1; shift ;;
    --duration | --warmup | --out | --only | --trials | --sessions | --compare | --pairs | --workloads | --connections)
        [[ $# -ge 2 ]] || die "$1 needs a value"
        case "$1" in
        --duration) DURATION="$2" ;;
        --warmup) WARMUP="$2" ;;
        --out) OUT="$2" OUT_GIVEN=1 ;;
        --compare) COMPARE_SRC="$2" ;;
        --pairs) PAIRS="$2" ;;
        --workloads) CMP_WORKLOADS="$2" ;;
        --connections) CMP_CONNECTIONS="$2" ;;
        --only) ONLY="$2" ;;
        --trials) TRIALS="$2" ;;
        --sessions) SESSIONS="$2" ;;
        esac
        shift 2
        ;;
    *) die "unknown option '$1' (scripts/bench.sh --help)" ;;
    esac
done
if ((QUICK)); then
    DURATION="${DURATION:-3}"
    WARMUP="${WARMUP:-1}"
fi
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
for v in DURATION WARMUP TRIALS SESSIONS PAIRS; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "--${v,,} must be a whole number"
done
((DURATION >= 1)) || die "--duration must be at least 1 second"
((TRIALS >= 1 && SESSIONS >= 1)) || die "--trials and --sessions must be at least 1"
((PAIRS >= 1)) || die "--pairs must be at least 1"
if [[ -n "$COMPARE_SRC" ]]; then
    [[ "$MODE" == bench ]] || die "--compare is a benchmark mode (not with smoke)"
    [[ -z "$ONLY" ]] || die "--compare runs sessionraft's matrix cells only: no --only"
    [[ -x "$COMPARE_SRC" && -f "$COMPARE_SRC" ]] || die "--compare: no executable file at $COMPARE_SRC"
    ONLY=sessionraft
    if [[ -n "$CMP_WORKLOADS" ]]; then
        IFS=, read -r -a WORKLOADS <<<"$CMP_WORKLOADS"
        for w in "${WORKLOADS[@]}"; do [[ "$w" =~ ^(write|read|mixed)$ ]] || die "--workloads: unknown workload '$w' (write, read, mixed)"; done
    fi
    if [[ -n "$CMP_CONNECTIONS" ]]; then
        IFS=, read -r -a CONNECTIONS <<<"$CMP_CONNECTIONS"
        for c in "${CONNECTIONS[@]}"; do [[ "$c" =~ ^[1-9][0-9]*$ ]] || die "--connections: '$c' is not a positive whole number"; done
    fi
elif [[ -n "$CMP_WORKLOADS$CMP_CONNECTIONS" ]]; then
    die "--workloads and --connections choose the cells of --compare only (the full run keeps its matrix)"
fi
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
FAILOVER_RATE="${BENCH_FAILOVER_RATE:-40}"
CATCHUP_TIMEOUT="${BENCH_CATCHUP_TIMEOUT:-300}"
[[ "$CATCHUP_TIMEOUT" =~ ^[0-9]+$ ]] || die "BENCH_CATCHUP_TIMEOUT must be a whole number of seconds"
if ! [[ "$FAILOVER_RATE" =~ ^[0-9]+$ ]] || ((FAILOVER_RATE < 1)); then die "BENCH_FAILOVER_RATE must be a whole number >= 1"; fi

declare -A WANT=()
if [[ -z "$ONLY" ]]; then
    for p in "${PARTS_ALL[@]}"; do WANT[$p]=1; done
else
    IFS=, read -r -a only_parts <<<"$ONLY"
    for p in "${only_parts[@]}"; do
        [[ " ${PARTS_ALL[*]} " == *" $p "* ]] || die "--only: unknown part '$p' (one of: ${PARTS_ALL[*]})"
        WANT[$p]=1
    done
fi
if [[ "$MODE" == smoke ]]; then
    for p in "${PARTS_ALL[@]}"; do WANT[$p]=""; done
    WANT[sessionraft]=1 WANT[redis]=1 WANT[etcd]=1
fi
want() { [[ -n "${WANT[$1]:-}" ]]; }

# ---------------------------------------------------------------------------------------------
# one run at a time; not during a chaos run (both would load the 2 cores)

mkdir -p "$STATE_DIR"
exec 7>>"$STATE_DIR/.lock"
flock -n 7 || die "another scripts/bench.sh runs (it holds $STATE_DIR/.lock)"
if [[ -f "$TARGET_DIR/chaos/.lock" ]] && ! flock -n "$TARGET_DIR/chaos/.lock" true 5>&- 6>&- 7>&-; then
    die "a scripts/chaos.sh run is active ($TARGET_DIR/chaos/.lock): two loads would share the 2 cores"
fi

# ---------------------------------------------------------------------------------------------
# dependencies and binaries

# the baselines (redis-server, etcd) and what scripts/cluster.sh uses, only those missing
"$ROOT/scripts/install-deps.sh" --bench 5>&- 6>&- 7>&-

SRC_BIN="${SESSIONRAFT_BIN:-$TARGET_DIR/release/sessionraft}"
SRC_REDIS_APP="${BENCH_REDIS_APP:-$TARGET_DIR/release/examples/redis_app}"
# (smoke builds nothing for redis_app: without it, it checks redis-server alone)
if [[ ! -x "$SRC_BIN" ]] || { [[ "$MODE" == bench ]] && want redis && [[ ! -x "$SRC_REDIS_APP" ]]; }; then
    echo "building (cargo build --release --workspace --all-targets; the first build compiles RocksDB, ~10 min)..." >&2
    (cd "$ROOT" && cargo build --release --workspace --all-targets) 5>&- 6>&- 7>&-
fi
[[ -x "$SRC_BIN" ]] || die "no binary at $SRC_BIN after the build"
if [[ "$MODE" == bench ]] && want redis && [[ ! -x "$SRC_REDIS_APP" ]]; then
    die "no redis_app at $SRC_REDIS_APP after the build (examples/redis_app.rs)"
fi

HELP="$("$SRC_BIN" --help 2>/dev/null || true)"
has_cmd() { grep -qE "^[[:space:]]+$1([[:space:]]|\$)" <<<"$HELP"; }
if [[ "$MODE" == bench ]]; then
    if want sessionraft || want redis || want etcd; then
        has_cmd bench || die "$SRC_BIN has no 'bench' command (needed for the matrix; --only failover,catchup runs without it)"
    fi
    if want catchup && [[ -n "${BENCH_BACKUP:-}" ]]; then
        [[ -f "$BENCH_BACKUP" ]] || die "BENCH_BACKUP: no file $BENCH_BACKUP"
        info="$("$SRC_BIN" backup-info "$BENCH_BACKUP" 2>&1)" || die "BENCH_BACKUP: $info"
        [[ "$info" =~ :\ ([0-9]+)\ sessions ]] || die "BENCH_BACKUP: no session count in: $info"
        SESSIONS="${BASH_REMATCH[1]}"
        has_cmd restore || die "$SRC_BIN has no 'restore' command (needed for the catch-up)"
    elif want catchup; then
        has_cmd bench-backup || die "$SRC_BIN has no 'bench-backup' command (needed for the catch-up)"
        has_cmd restore || die "$SRC_BIN has no 'restore' command (needed for the catch-up)"
    fi
fi

# ---------------------------------------------------------------------------------------------
# the run directory; the binaries of this run are hard links (a rebuild does not change them)

STAMP="$(date +%Y%m%d-%H%M%S)"
WORK="$STATE_DIR/run-$STAMP"
[[ ! -e "$WORK" ]] || die "$WORK exists"
mkdir -p "$WORK/bin" "$WORK/cells"
BIN="$WORK/bin/sessionraft"
ln "$SRC_BIN" "$BIN" 2>/dev/null || cp "$SRC_BIN" "$BIN"
# the binary the nodes run (the load tool is always $BIN); --compare switches it per cell
SERVE_BIN="$BIN"
BIN_B=""
if [[ -n "$COMPARE_SRC" ]]; then
    # named sessionraft too: scripts/cluster.sh recognizes its nodes by that name
    mkdir -p "$WORK/bin/b"
    BIN_B="$WORK/bin/b/sessionraft"
    ln "$COMPARE_SRC" "$BIN_B" 2>/dev/null || cp "$COMPARE_SRC" "$BIN_B"
    ((OUT_GIVEN)) || OUT="$WORK/compare.md"
fi
REDIS_APP=""
if want redis && [[ -x "$SRC_REDIS_APP" ]]; then
    REDIS_APP="$WORK/bin/redis_app"
    ln "$SRC_REDIS_APP" "$REDIS_APP" 2>/dev/null || cp "$SRC_REDIS_APP" "$REDIS_APP"
fi
: >"$WORK/problems.txt"
problem() { warn "$*"; echo "$*" >>"$WORK/problems.txt"; FAILED=1; }
FAILED=0

read -r -a PORTS < <(py ports 12)
SR_PORT=([1]="${PORTS[0]}" [2]="${PORTS[1]}" [3]="${PORTS[2]}" [4]="${PORTS[3]}")
REDIS_PORT="${PORTS[4]}"
APP_PORT="${PORTS[5]}"
ETCD_CLIENT=([1]="${PORTS[6]}" [2]="${PORTS[7]}" [3]="${PORTS[8]}")
ETCD_PEER=([1]="${PORTS[9]}" [2]="${PORTS[10]}" [3]="${PORTS[11]}")
sr_addr() { echo "127.0.0.1:${SR_PORT[$1]}"; }

# ---------------------------------------------------------------------------------------------
# processes: started here with their pid recorded; signalled only after checking /proc/PID/cmdline

proc_argv0() { local a; a="$(tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline" | sed -n 1p || true)"; echo "${a##*/}"; }
# is_ours PID NAME: PID is alive and its argv[0] (base name) starts with NAME
is_ours() { [[ "$1" =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null && [[ "$(proc_argv0 "$1")" == "$2"* ]]; }
# exec_wait PID NAME: wait (at most 5 s) until PID, just started with `setsid ... &`, runs NAME
# or is gone. Between the fork and the exec its argv[0] is still bash's or setsid's, and an
# is_ours check in that window took a starting process for a dead one (seen once: "redis_app
# exited" while its log said it was serving).
exec_wait() {
    local _
    for _ in $(seq 1 50); do
        if is_ours "$1" "$2" || ! kill -0 "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
}
# stop_pid PID NAME: SIGTERM, SIGKILL after 10 s; only if PID still runs NAME
stop_pid() {
    local pid="$1" name="$2"
    is_ours "$pid" "$name" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        is_ours "$pid" "$name" || break
        sleep 0.1
    done
    if is_ours "$pid" "$name"; then
        warn "$name (pid $pid) did not stop in 10 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

CHILD="" CHILD_NAME=""   # the foreground tool (bench, restore, ...) we wait for
LOAD_PID=""              # failover's background load (own session)
ADD_PID=""               # scripts/cluster.sh add-node in the background
WATCH_PID=""             # failover's leader watcher (a subshell of this script)
REDIS_PID="" APP_PID=""
ETCD_PIDS=()
SR_DIRS=()               # every sessionraft cluster dir of this run (config.toml, run/, data/)
SR_DIR="" SR_CONFIG="" SR_RUN=""
CLEANING=0

# run_child NAME CMD...: CMD in the background (stdout/stderr as redirected by the caller), wait
# for it; its exit status in CHILD_RC. A trapped signal interrupts the wait at once.
run_child() {
    CHILD_NAME="$1"
    shift
    "$@" 5>&- 6>&- 7>&- &
    CHILD=$!
    CHILD_RC=0
    wait "$CHILD" || CHILD_RC=$?
    CHILD=""
}

# the background `scripts/cluster.sh add-node` (its own session): its whole process group
stop_add_node() {
    [[ -n "$ADD_PID" ]] || return 0
    if is_ours "$ADD_PID" bash; then
        kill -TERM -- "-$ADD_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$ADD_PID" 2>/dev/null || break; sleep 0.1; done
        if is_ours "$ADD_PID" bash; then kill -KILL -- "-$ADD_PID" 2>/dev/null || true; fi
    fi
    wait "$ADD_PID" 2>/dev/null || true
    ADD_PID=""
}
yes_no() { if [[ -n "$1" ]]; then echo "$2"; else echo "$3"; fi; }
# last_warning LOG: "; last warning in LOG: ..." (the node's latest WARN/ERROR line, if any)
last_warning() {
    local w
    w="$(sed 's/\x1b\[[0-9;]*m//g' "$1" 2>/dev/null | grep -E ' (WARN|ERROR) ' | tail -n 1 | sed -E 's/^[^ ]+ +//' | cut -c1-300 || true)"
    if [[ -n "$w" ]]; then printf '; last warning in %s: %s' "${1##*/}" "$w"; fi
}

stop_load() {
    [[ -n "$LOAD_PID" ]] || return 0
    if is_ours "$LOAD_PID" sessionraft; then
        # its own session (setsid): the process group is ours to stop
        kill -TERM -- "-$LOAD_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$LOAD_PID" 2>/dev/null || break; sleep 0.1; done
        if is_ours "$LOAD_PID" sessionraft; then kill -KILL -- "-$LOAD_PID" 2>/dev/null || true; fi
    fi
    wait "$LOAD_PID" 2>/dev/null || true
    LOAD_PID=""
}

cluster() {
    SESSIONRAFT_CONFIG="$SR_CONFIG" SESSIONRAFT_RUN_DIR="$SR_RUN" SESSIONRAFT_BIN="$SERVE_BIN" \
        SESSIONRAFT_READY_TIMEOUT=600 SESSIONRAFT_LB_ADDR="" "$CLUSTER_SH" "$@" 5>&- 6>&- 7>&-
}

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
    local rc=$? d
    ((CLEANING)) && return
    CLEANING=1
    set +e
    exec 1>&5 2>&6
    trap '' INT TERM
    if [[ -n "$CHILD" ]]; then stop_pid "$CHILD" "$CHILD_NAME"; fi
    stop_load
    stop_add_node
    if [[ -n "$WATCH_PID" ]]; then stop_pid "$WATCH_PID" bash; fi
    for d in "${SR_DIRS[@]}"; do
        SESSIONRAFT_CONFIG="$d/config.toml" SESSIONRAFT_RUN_DIR="$d/run" SESSIONRAFT_BIN="$BIN" SESSIONRAFT_LB_ADDR="" \
            "$CLUSTER_SH" down >>"$d/ops.log" 2>&1 5>&- 6>&- 7>&- || warn "cluster.sh down failed for $d (see $d/ops.log)"
    done
    if [[ -n "$APP_PID" ]]; then stop_pid "$APP_PID" redis_app; fi
    if [[ -n "$REDIS_PID" ]]; then stop_pid "$REDIS_PID" redis-server; fi
    for d in "${ETCD_PIDS[@]}"; do stop_pid "$d" etcd; done
    if ((!KEEP)); then
        for d in "${SR_DIRS[@]}"; do rm -rf "$d/data" "$d/run/data"; done
        rm -rf "$WORK/etcd/data" "$WORK/redis/data" "$WORK/catchup-backup.bin"
    fi
    # a hard link to a binary that a rebuild replaced keeps ~0.5 GB alive
    rm -rf "${WORK:?}/bin"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench.sh: interrupted (SIGINT): stopping everything" >&6; exit 130' INT
trap 'echo "bench.sh: terminated (SIGTERM): stopping everything" >&6; exit 143' TERM

# ---------------------------------------------------------------------------------------------
# sessionraft: clusters from temp copies of cluster.toml, through scripts/cluster.sh

curl_q() { curl -sS --noproxy '*' -m "${2:-2}" "$1" 2>/dev/null || true; }
http_code() { curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -m "${2:-2}" "$1" 2>/dev/null || true; }
# node_status N: ST_ROLE ST_TERM ST_LEADER ST_APPLIED ST_LAST ST_SESSIONS (ST_ROLE empty: no answer)
node_status() {
    local j
    j="$(curl_q "http://$(sr_addr "$1")/cluster/status")"
    ST_ROLE="" ST_TERM="" ST_LEADER="" ST_APPLIED="" ST_LAST="" ST_SESSIONS=""
    [[ "$j" =~ \"role\":\"([a-z_-]+)\" ]] && ST_ROLE="${BASH_REMATCH[1]}"
    [[ "$j" =~ \"term\":([0-9]+) ]] && ST_TERM="${BASH_REMATCH[1]}"
    [[ "$j" =~ \"leader\":([0-9]+) ]] && ST_LEADER="${BASH_REMATCH[1]}"
    [[ "$j" =~ \"applied_index\":([0-9]+) ]] && ST_APPLIED="${BASH_REMATCH[1]}"
    [[ "$j" =~ \"last_log_index\":([0-9]+) ]] && ST_LAST="${BASH_REMATCH[1]}"
    [[ "$j" =~ \"sessions_estimated\":([0-9]+) ]] && ST_SESSIONS="${BASH_REMATCH[1]}"
    return 0
}
node_ready() { [[ "$(http_code "http://$(sr_addr "$1")/readyz" 1)" == 200 ]]; }
# node_pid N: node N's pid from cluster.sh's pid file, if alive and `sessionraft serve ... --node N`
node_pid() {
    local f="$SR_RUN/node$1.pid" pid args
    [[ -f "$f" ]] || return 0
    pid="$(<"$f")"
    is_ours "$pid" sessionraft || return 0
    args="$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" || true)"
    if [[ $'\n'"$args"$'\n' == *$'\n'serve$'\n'*$'\n'--node$'\n'"$1"$'\n'* ]]; then echo "$pid"; fi
}

# find_leader IDS...: REPLY = the node that says it leads (highest term), or "" (returns 1)
find_leader() {
    local id best="" best_term=-1
    for id in "$@"; do
        node_status "$id"
        if [[ "$ST_ROLE" == leader && "$ST_TERM" -gt "$best_term" ]]; then best="$id" best_term="$ST_TERM"; fi
    done
    REPLY="$best"
    [[ -n "$best" ]]
}

# wait_whole TIMEOUT_S IDS...: every node ready, following one leader, applied up to the leader's
# last log index as of the first look. Returns 1 (WHY says why) after TIMEOUT_S.
wait_whole() {
    local deadline=$(($(now_ms) + $1 * 1000)) target="" leader id
    shift
    while :; do
        WHY=""
        if ! find_leader "$@"; then
            WHY="no leader"
        else
            leader="$REPLY"
            node_status "$leader"
            [[ -n "$target" ]] || target="$ST_LAST"
            for id in "$@"; do
                node_status "$id"
                if [[ "$ST_LEADER" != "$leader" ]]; then WHY="node $id follows ${ST_LEADER:-nobody}, not $leader"; break; fi
                if [[ -z "$ST_APPLIED" || "$ST_APPLIED" -lt "$target" ]]; then WHY="node $id applied ${ST_APPLIED:-?} < $target"; break; fi
                if ! node_ready "$id"; then WHY="node $id not ready"; break; fi
            done
        fi
        [[ -n "$WHY" ]] || return 0
        (($(now_ms) < deadline)) || return 1
        nap 0.2
    done
}

# sr_setup NAME: a new cluster dir WORK/NAME with a config (3 nodes on this run's ports)
sr_setup() {
    SR_DIR="$WORK/$1"
    SR_CONFIG="$SR_DIR/config.toml"
    SR_RUN="$SR_DIR/run"
    mkdir -p "$SR_DIR/data" "$SR_RUN"
    SR_DIRS+=("$SR_DIR")
    py config "$ROOT/cluster.toml" "sessionraft-bench" "$SR_DIR/data" "$(sr_addr 1)" "$(sr_addr 2)" "$(sr_addr 3)" >"$SR_CONFIG"
    if ! "$BIN" check-config --config "$SR_CONFIG" >/dev/null 2>&1; then
        "$BIN" check-config --config "$SR_CONFIG" >&2 || true
        die "the generated config $SR_CONFIG is invalid"
    fi
}
sr_up() {
    say "sessionraft: starting 3 nodes (scripts/cluster.sh up; $SR_DIR/ops.log)"
    if ! cluster up >>"$SR_DIR/ops.log" 2>&1; then
        tail -n 20 "$SR_DIR/ops.log" >&2
        die "the sessionraft cluster did not come up; see $SR_DIR/ops.log and $SR_RUN/logs/"
    fi
    wait_whole 60 1 2 3 || die "the fresh sessionraft cluster is not whole after 60 s: $WHY"
    find_leader 1 2 3
    say "sessionraft: up on $(sr_addr 1), $(sr_addr 2), $(sr_addr 3); leader node $REPLY"
}
sr_down() {
    say "sessionraft: stopping (scripts/cluster.sh down)"
    cluster down >>"$SR_DIR/ops.log" 2>&1 || problem "scripts/cluster.sh down failed for $SR_DIR (see its ops.log)"
}
sr_targets() { echo "http://$(sr_addr 1),http://$(sr_addr 2),http://$(sr_addr 3)"; }

# rss_line N LABEL FILE: one JSON line of node N's memory (VmRSS, VmHWM in KiB, data dir size)
rss_record() {
    local id="$1" file="$2" pid rss="" hwm="" data="" dir
    pid="$(node_pid "$id")"
    if [[ -n "$pid" ]]; then
        rss="$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)"
        hwm="$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)"
    fi
    if ((id <= 3)); then dir="$SR_DIR/data/node$id"; else dir="$SR_RUN/data/node$id"; fi
    if [[ -d "$dir" ]]; then data="$(du -sk "$dir" 2>/dev/null | cut -f1)"; fi
    py obj node "$id" pid "${pid:-null}" rss_kib "${rss:-null}" hwm_kib "${hwm:-null}" data_kib "${data:-null}" >>"$file"
    say "  node $id: VmRSS ${rss:-?} KiB, VmHWM ${hwm:-?} KiB, data ${data:-?} KiB"
}

# ---------------------------------------------------------------------------------------------
# Redis and the Redis-backed app

redis_up() {
    mkdir -p "$WORK/redis/data"
    say "redis: starting redis-server on 127.0.0.1:$REDIS_PORT (no persistence)"
    setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --dir "$WORK/redis/data" --daemonize no --protected-mode yes \
        >"$WORK/redis/redis.log" 2>&1 </dev/null 5>&- 6>&- 7>&- &
    REDIS_PID=$!
    exec_wait "$REDIS_PID" redis-server
    local deadline=$(($(now_ms) + 15000))
    until [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)" == PONG ]]; do
        is_ours "$REDIS_PID" redis-server || { tail -n 20 "$WORK/redis/redis.log" >&2; die "redis-server exited; see $WORK/redis/redis.log"; }
        (($(now_ms) < deadline)) || die "redis-server does not answer PING after 15 s; see $WORK/redis/redis.log"
        nap 0.1
    done
    if [[ -z "$REDIS_APP" ]]; then return 0; fi
    say "redis: starting redis_app on 127.0.0.1:$APP_PORT"
    setsid "$REDIS_APP" "127.0.0.1:$APP_PORT" "redis://127.0.0.1:$REDIS_PORT" \
        >"$WORK/redis/redis_app.log" 2>&1 </dev/null 5>&- 6>&- 7>&- &
    APP_PID=$!
    exec_wait "$APP_PID" redis_app
    deadline=$(($(now_ms) + 30000))
    until [[ "$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -m 2 -X POST "http://127.0.0.1:$APP_PORT/api/counter" 2>/dev/null || true)" == 200 ]]; do
        is_ours "$APP_PID" redis_app || { tail -n 20 "$WORK/redis/redis_app.log" >&2; die "redis_app exited; see $WORK/redis/redis_app.log"; }
        (($(now_ms) < deadline)) || die "redis_app gives no 200 on POST /api/counter after 30 s; see $WORK/redis/redis_app.log"
        nap 0.1
    done
    say "redis: up (redis-server pid $REDIS_PID, redis_app pid $APP_PID)"
}
redis_down() {
    say "redis: stopping redis_app and redis-server"
    if [[ -n "$APP_PID" ]]; then stop_pid "$APP_PID" redis_app; fi
    APP_PID=""
    if [[ -n "$REDIS_PID" ]]; then stop_pid "$REDIS_PID" redis-server; fi
    REDIS_PID=""
}

# ---------------------------------------------------------------------------------------------
# etcd: 3 members on loopback

etcd_endpoints() { echo "http://127.0.0.1:${ETCD_CLIENT[1]},http://127.0.0.1:${ETCD_CLIENT[2]},http://127.0.0.1:${ETCD_CLIENT[3]}"; }
etcd_up() {
    local i initial="" token
    token="sessionraft-bench-$$"
    mkdir -p "$WORK/etcd/data"
    for i in 1 2 3; do initial+="${initial:+,}e$i=http://127.0.0.1:${ETCD_PEER[$i]}"; done
    say "etcd: starting 3 members (clients on ${ETCD_CLIENT[1]}, ${ETCD_CLIENT[2]}, ${ETCD_CLIENT[3]})"
    for i in 1 2 3; do
        setsid etcd --name "e$i" --data-dir "$WORK/etcd/data/e$i" \
            --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
            --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
            --listen-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
            --initial-cluster "$initial" --initial-cluster-token "$token" --initial-cluster-state new \
            --logger zap --log-level warn \
            >"$WORK/etcd/e$i.log" 2>&1 </dev/null 5>&- 6>&- 7>&- &
        ETCD_PIDS+=("$!")
        exec_wait "$!" etcd
    done
    local deadline=$(($(now_ms) + 30000)) healthy pid range
    while :; do
        healthy="$(ETCDCTL_API=3 etcdctl --endpoints "$(etcd_endpoints)" endpoint health 2>&1 | grep -c 'is healthy' || true)"
        ((healthy == 3)) && break
        for pid in "${ETCD_PIDS[@]}"; do
            is_ours "$pid" etcd || { tail -n 20 "$WORK"/etcd/e*.log >&2; die "an etcd member exited; see $WORK/etcd/"; }
        done
        (($(now_ms) < deadline)) || die "etcd: $healthy of 3 members healthy after 30 s; see $WORK/etcd/"
        nap 0.2
    done
    # the HTTP/JSON gateway the benchmark uses, on every member
    for i in 1 2 3; do
        curl -fsS --noproxy '*' -m 5 -X POST "http://127.0.0.1:${ETCD_CLIENT[$i]}/v3/kv/put" \
            -d '{"key":"YmVuY2gtY2hlY2s=","value":"b2s="}' >/dev/null 2>&1 || die "etcd member e$i: POST /v3/kv/put failed"
        range="$(curl -fsS --noproxy '*' -m 5 -X POST "http://127.0.0.1:${ETCD_CLIENT[$i]}/v3/kv/range" \
            -d '{"key":"YmVuY2gtY2hlY2s="}' 2>&1 || true)"
        [[ "$range" == *'"kvs"'* ]] || die "etcd member e$i: POST /v3/kv/range returned no kvs: $range"
    done
    say "etcd: up (pids ${ETCD_PIDS[*]}), put/range through the gateway of every member"
}
etcd_down() {
    local pid
    say "etcd: stopping the 3 members"
    for pid in "${ETCD_PIDS[@]}"; do stop_pid "$pid" etcd; done
    ETCD_PIDS=()
}

# ---------------------------------------------------------------------------------------------
# the matrix

# cell SYSTEM KIND TARGETS WORKLOAD CONNECTIONS
cell() {
    local system="$1" kind="$2" targets="$3" w="$4" c="$5" name
    name="$system-$w-$c"
    local args=(bench --targets "$targets" --workload "$w" --connections "$c" --duration "$DURATION"
        --warmup "$WARMUP" --kind "$kind" --json)
    if [[ "$kind" == etcd ]]; then args+=(--value-bytes "$VALUE_BYTES"); fi
    say "$system: $w, $c connections (${WARMUP}s warm-up + ${DURATION}s)"
    printf '%q ' "$BIN" "${args[@]}" >"$WORK/cells/$name.cmd"
    run_child sessionraft "$BIN" "${args[@]}" >"$WORK/cells/$name.json" 2>"$WORK/cells/$name.err"
    py cell "$system" "$kind" "$w" "$c" "$CHILD_RC" "$WORK/cells/$name.json" "$WORK/cells/$name.err" >>"$WORK/runs.jsonl"
    if [[ "$(tail -n 1 "$WORK/runs.jsonl")" == *'"status": "failed"'* ]]; then
        problem "$system $w/$c failed (see $WORK/cells/$name.err)"
    fi
    nap 1
}
matrix() { # SYSTEM KIND TARGETS
    local w c
    for w in "${WORKLOADS[@]}"; do
        for c in "${CONNECTIONS[@]}"; do cell "$1" "$2" "$3" "$w" "$c"; done
    done
}

# ---------------------------------------------------------------------------------------------
# failover: SIGKILL the leader, time to the first successful POST through a survivor

# leader_watch OLD_TERM T0 OUT IDS...: OUT = "MS ID" once one of IDS says it leads in a term
# above OLD_TERM (MS since T0); gives up 30 s after T0. Runs in the background during a trial.
leader_watch() {
    local old="$1" t0="$2" out="$3" id
    shift 3
    while (($(now_ms) - t0 < 30000)); do
        for id in "$@"; do
            node_status "$id"
            if [[ "$ST_ROLE" == leader && "${ST_TERM:-0}" -gt "$old" ]]; then
                echo "$(($(now_ms) - t0)) $id" >"$out"
                return 0
            fi
        done
        sleep 0.01
    done
}

failover() {
    local dir="$WORK/failover" trial leader pid s1 s2 jar t0 t1 code attempts served new_leader ok
    local timeout_ms=30000 body re_s='"served_by":([0-9]+)' target old_term elected_ms
    mkdir -p "$dir"
    wait_whole 60 1 2 3 || die "failover: the cluster is not whole before the first trial: $WHY"
    local load_desc="no background load (this binary has no 'load' command)"
    if has_cmd load; then
        load_desc="a light write load (\`sessionraft load\`, $FAILOVER_RATE increments/s open loop, 8 users, all 3 nodes)"
        setsid "$BIN" load --targets "$(sr_targets)" --users 8 --rate "$FAILOVER_RATE" --mix inc=100 \
            --duration $((TRIALS * 60 + 120)) --settle 0 --seed 1 --out "$dir/load-history.jsonl" \
            >"$dir/load.log" 2>&1 </dev/null 5>&- 6>&- 7>&- &
        LOAD_PID=$!
        nap 2
    else
        problem "failover measured without background load: $BIN has no 'load' command"
    fi
    py obj "load\$" "$load_desc" timeout_ms "$timeout_ms" rate "$FAILOVER_RATE" >"$WORK/failover.json"
    : >"$WORK/failover.jsonl"
    say "failover: $TRIALS trials under $load_desc"
    for ((trial = 1; trial <= TRIALS; trial++)); do
        if ! wait_whole 120 1 2 3; then
            problem "failover: the cluster was not whole 120 s after trial $((trial - 1)): $WHY; stopped after $((trial - 1)) trials"
            break
        fi
        nap 1
        find_leader 1 2 3 || { problem "failover: no leader before trial $trial"; break; }
        leader="$REPLY"
        node_status "$leader"
        old_term="${ST_TERM:-0}"
        s1=$((leader % 3 + 1))
        s2=$(((leader + 1) % 3 + 1))
        jar="$dir/jar-$trial"
        rm -f "$jar"
        # the session exists before the kill
        code="$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -m 5 -c "$jar" -b "$jar" -X POST "http://$(sr_addr "$s1")/api/counter" || true)"
        [[ "$code" == 200 ]] || { problem "failover: trial $trial: POST before the kill answered $code"; continue; }
        pid="$(node_pid "$leader")"
        [[ -n "$pid" ]] || { problem "failover: trial $trial: no recorded pid for leader $leader"; break; }
        rm -f "$dir/elected-$trial"
        t0="$(now_ms)"
        kill -KILL "$pid"
        leader_watch "$old_term" "$t0" "$dir/elected-$trial" "$s1" "$s2" 5>&- 6>&- 7>&- &
        WATCH_PID=$!
        attempts=0 ok=0 served="" t1=""
        while :; do
            target=$s1
            ((attempts % 2 == 0)) || target=$s2
            attempts=$((attempts + 1))
            body="$(curl -s --noproxy '*' -m 5 -c "$jar" -b "$jar" -X POST -w $'\n%{http_code}' "http://$(sr_addr "$target")/api/counter" 2>/dev/null || true)"
            code="${body##*$'\n'}"
            if [[ "$code" == 200 ]]; then
                t1="$(now_ms)"
                ok=1
                [[ "$body" =~ $re_s ]] && served="${BASH_REMATCH[1]}"
                break
            fi
            if (($(now_ms) - t0 > timeout_ms)); then t1="$(now_ms)"; break; fi
            sleep 0.01
        done
        wait "$WATCH_PID" || true
        WATCH_PID=""
        elected_ms="" new_leader=""
        if [[ -s "$dir/elected-$trial" ]]; then read -r elected_ms new_leader <"$dir/elected-$trial"; fi
        py obj trial "$trial" killed "$leader" "ok?" "$ok" ms $((t1 - t0)) attempts "$attempts" \
            served_by "${served:-null}" new_leader "${new_leader:-null}" elected_ms "${elected_ms:-null}" \
            >>"$WORK/failover.jsonl"
        if ((ok)); then
            say "failover trial $trial: killed leader $leader; new leader ${new_leader:-?} after ${elected_ms:-?} ms; first 200 after $((t1 - t0)) ms ($attempts requests, served by ${served:-?})"
        else
            problem "failover trial $trial: no successful POST within $((timeout_ms / 1000)) s after killing leader $leader"
        fi
        if ! cluster start "$leader" >>"$SR_DIR/ops.log" 2>&1; then
            problem "failover: node $leader did not start again after trial $trial (see $SR_DIR/ops.log)"
            break
        fi
    done
    stop_load
    wait_whole 120 1 2 3 || problem "failover: the cluster was not whole 120 s after the last trial: $WHY"
}

# ---------------------------------------------------------------------------------------------
# catch-up of a 4th node after restoring N sessions; memory of every node

catchup() {
    local backup="$WORK/catchup-backup.bin" t t_call t_start="" t_ready="" t_caught="" target="" leader
    local add_rc="" t_added="" err=""
    sr_setup catchup
    sr_up
    local backup_ms=null
    if [[ -n "${BENCH_BACKUP:-}" ]]; then
        say "catch-up: restoring $BENCH_BACKUP ($SESSIONS sessions; BENCH_BACKUP)"
        backup="$BENCH_BACKUP"
        CHILD_RC=0
    else
        say "catch-up: sessionraft bench-backup --sessions $SESSIONS"
        t="$(now_ms)"
        run_child sessionraft "$BIN" bench-backup --sessions "$SESSIONS" --out "$backup" >"$SR_DIR/bench-backup.log" 2>&1
        backup_ms=$(($(now_ms) - t))
        say "catch-up: backup written in $(fmt_s "$backup_ms") s ($(du -h "$backup" 2>/dev/null | cut -f1)); restoring it"
    fi
    if ((CHILD_RC != 0)); then
        problem "catch-up: bench-backup failed (exit $CHILD_RC; $SR_DIR/bench-backup.log)"
        py obj sessions "$SESSIONS" "error\$" "bench-backup failed (exit $CHILD_RC)" >"$WORK/catchup.json"
        sr_down
        return 0
    fi
    t="$(now_ms)"
    run_child sessionraft "$BIN" restore --config "$SR_CONFIG" --from "$backup" >"$SR_DIR/restore.log" 2>&1
    local restore_ms=$(($(now_ms) - t))
    if ((CHILD_RC != 0)); then
        problem "catch-up: restore failed (exit $CHILD_RC; $SR_DIR/restore.log)"
        py obj sessions "$SESSIONS" backup_ms "$backup_ms" "error\$" "restore failed (exit $CHILD_RC)" >"$WORK/catchup.json"
        sr_down
        return 0
    fi
    wait_whole 600 1 2 3 || problem "catch-up: the 3 nodes did not all apply the restore within 600 s: $WHY"
    local replicated_ms=$(($(now_ms) - t))
    find_leader 1 2 3
    leader="$REPLY"
    local gauge
    node_status "$leader"
    gauge="$ST_SESSIONS"
    say "catch-up: restored in $(fmt_s "$restore_ms") s, on all 3 nodes after $(fmt_s "$replicated_ms") s (sessions gauge: ${gauge:-?})"
    if [[ -z "${BENCH_BACKUP:-}" ]]; then rm -f "$backup"; fi
    nap 2

    say "catch-up: starting node 4 on $(sr_addr 4) and adding it (scripts/cluster.sh add-node)"
    local pidf="$SR_RUN/node4.pid"
    t_call="$(now_ms)"
    # in a session of its own: at a timeout, its process group (cluster.sh and the `sessionraft
    # cluster add-node` it waits for) is stopped as a whole
    SESSIONRAFT_CONFIG="$SR_CONFIG" SESSIONRAFT_RUN_DIR="$SR_RUN" SESSIONRAFT_BIN="$BIN" SESSIONRAFT_READY_TIMEOUT=600 \
        SESSIONRAFT_LB_ADDR="" setsid "$CLUSTER_SH" add-node 4 "$(sr_addr 4)" "$(sr_addr 4)" >>"$SR_DIR/ops.log" 2>&1 5>&- 6>&- 7>&- &
    ADD_PID=$!
    local deadline=$((t_call + CATCHUP_TIMEOUT * 1000)) now timed_out=0
    while :; do
        now="$(now_ms)"
        if [[ -z "$t_start" && -s "$pidf" ]]; then t_start="$now"; fi
        if [[ -n "$t_start" && -z "$t_ready" ]] && node_ready 4; then t_ready="$(now_ms)"; fi
        if [[ -n "$t_start" && -z "$target" ]]; then
            find_leader 1 2 3 && node_status "$REPLY" && target="$ST_LAST"
        fi
        if [[ -n "$target" && -z "$t_caught" ]]; then
            node_status 4
            if [[ -n "$ST_APPLIED" && "$ST_APPLIED" -ge "$target" ]]; then t_caught="$(now_ms)"; fi
        fi
        if [[ -z "$add_rc" ]] && ! kill -0 "$ADD_PID" 2>/dev/null; then
            add_rc=0
            wait "$ADD_PID" || add_rc=$?
            ADD_PID=""
            t_added="$(now_ms)"
            if ((add_rc != 0)); then
                node_status 4
                err="scripts/cluster.sh add-node exited $add_rc after $(fmt_s $((t_added - t_call))) s (see $SR_DIR/ops.log): node 4 $(yes_no "$t_ready" "/readyz 200 seen" "/readyz never 200"), applied ${ST_APPLIED:-none} of ${target:-?}$(last_warning "$SR_RUN/logs/node4.log")"
                problem "catch-up: $err"
                break
            fi
        fi
        [[ -n "$t_ready" && -n "$t_caught" && -n "$add_rc" ]] && break
        if ((now > deadline)); then
            timed_out=1
            node_status 4
            err="node 4 not ready and caught up within ${CATCHUP_TIMEOUT} s (BENCH_CATCHUP_TIMEOUT): $(yes_no "$t_ready" "/readyz 200 seen" "/readyz never 200"), applied ${ST_APPLIED:-none} of ${target:-?}$(last_warning "$SR_RUN/logs/node4.log")"
            problem "catch-up: $err"
            stop_add_node
            break
        fi
        # Not faster: each round forks up to two curls, and at 20 ms they took ~20% of the
        # machine's CPU from the node being measured (perf, bench/PROFILE.md round 5).
        sleep 0.1
    done
    local ready_ms="null" caught_ms="null" catchup_ms="null" add_ms="null"
    if [[ -n "$t_start" && -n "$t_ready" ]]; then ready_ms=$((t_ready - t_start)); fi
    if [[ -n "$t_start" && -n "$t_caught" ]]; then caught_ms=$((t_caught - t_start)); fi
    if [[ "$ready_ms" != null && "$caught_ms" != null ]]; then
        catchup_ms=$((ready_ms > caught_ms ? ready_ms : caught_ms))
    fi
    if [[ -n "$t_added" ]]; then add_ms=$((t_added - ${t_start:-$t_call})); fi
    say "catch-up: node 4 ready after ${ready_ms} ms, caught up (index ${target:-?}) after ${caught_ms} ms from its start; add-node done after ${add_ms} ms (exit ${add_rc:-?})"
    py obj sessions "$SESSIONS" "backup_file\$" "${BENCH_BACKUP:-}" backup_ms "$backup_ms" restore_ms "$restore_ms" replicated_ms "$replicated_ms" \
        sessions_gauge "${gauge:-null}" target_index "${target:-null}" start_to_ready_ms "$ready_ms" \
        start_to_caught_up_ms "$caught_ms" catchup_ms "$catchup_ms" add_node_ms "$add_ms" \
        add_node_rc "${add_rc:-null}" "error\$" "$err" "timed_out?" "$timed_out" \
        "caught_up?" "$([[ -n "$t_ready" && -n "$t_caught" ]] && echo 1 || echo 0)" >"$WORK/catchup.json"

    local id ids=(1 2 3 4)
    if [[ -z "$err" ]]; then
        wait_whole 120 1 2 3 4 || problem "memory: the 4 nodes were not whole 120 s after the catch-up: $WHY"
    else
        ids=(1 2 3) # node 4 does not hold the sessions
    fi
    nap 2
    say "memory with $SESSIONS sessions (nodes ${ids[*]}):"
    : >"$WORK/memory-catchup.jsonl"
    for id in "${ids[@]}"; do rss_record "$id" "$WORK/memory-catchup.jsonl"; done
    sr_down
}

# ---------------------------------------------------------------------------------------------
# smoke: every system up, one request to each member, down

if [[ "$MODE" == smoke ]]; then
    sr_setup smoke
    sr_up
    for id in 1 2 3; do
        code="$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -m 5 -X POST "http://$(sr_addr "$id")/api/counter" || true)"
        [[ "$code" == 200 ]] || die "sessionraft node $id: POST /api/counter answered $code"
        say "sessionraft node $id: POST /api/counter 200"
    done
    sr_down
    redis_up
    if [[ -n "$REDIS_APP" ]]; then say "redis_app: POST /api/counter 200"; else say "redis: no redis_app at $SRC_REDIS_APP (redis-server only)"; fi
    redis_down
    etcd_up
    etcd_down
    say "smoke: every system started, answered and stopped"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# the run

machine_disk() {
    local src fs size rota="" dev
    read -r src fs < <(findmnt -n -T "$WORK" -o SOURCE,FSTYPE)
    size="$(df -h --output=size "$WORK" | tail -n 1 | tr -d ' ')"
    dev="${src##*/}"
    dev="$(lsblk -no PKNAME "$src" 2>/dev/null | sed -n 1p || true)"
    [[ -n "$dev" ]] || dev="${src##*/}"
    if [[ -r "/sys/block/$dev/queue/rotational" ]]; then
        if [[ "$(<"/sys/block/$dev/queue/rotational")" == 0 ]]; then rota=", non-rotational"; else rota=", rotational per the kernel"; fi
    fi
    echo "$src ($fs, $size$rota)"
}
dsync_rate() { # synced 4 KiB writes per second on the disk of the data dirs
    local f="$WORK/dsync.test" t n=500
    t="$(now_ms)"
    dd if=/dev/zero of="$f" bs=4k count="$n" oflag=dsync 2>/dev/null || { rm -f "$f"; echo "?"; return; }
    t=$(($(now_ms) - t))
    rm -f "$f"
    echo $((n * 1000 / (t > 0 ? t : 1)))
}
git_rev() {
    local rev
    rev="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
    if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then rev+=" (with uncommitted changes)"; fi
    echo "$rev"
}

# --compare: A then B for every cell, PAIRS times, each on a fresh cluster; then only the ratios
if [[ -n "$BIN_B" ]]; then
    say "A/B run $WORK: A = $SRC_BIN, B = $COMPARE_SRC; $PAIRS pairs per cell; cells ${WARMUP}s + ${DURATION}s"
    : >"$WORK/runs.jsonl"
    for w in "${WORKLOADS[@]}"; do
        for c in "${CONNECTIONS[@]}"; do
            for ((pair = 1; pair <= PAIRS; pair++)); do
                for side in A B; do
                    if [[ "$side" == A ]]; then SERVE_BIN="$BIN"; else SERVE_BIN="$BIN_B"; fi
                    sr_setup "ab-$w-$c-$pair-$side"
                    sr_up
                    cell "sessionraft-$side-$pair" session "$(sr_targets)" "$w" "$c"
                    sr_down
                done
            done
        done
    done
    SERVE_BIN="$BIN"
    mkdir -p "$(dirname "$OUT")"
    BM_A="$SRC_BIN" BM_B="$COMPARE_SRC" BM_GIT="$(git_rev)" BM_DURATION="$DURATION" BM_WARMUP="$WARMUP" \
        BM_NPROC="$(nproc)" py compare "$WORK/runs.jsonl" >"$OUT"
    cat "$OUT"
    say "A/B: written to $OUT"
    ((!FAILED)) || exit 1
    exit 0
fi

parts="$(for p in "${PARTS_ALL[@]}"; do if want "$p"; then printf '%s ' "$p"; fi; done)"
say "benchmark run $WORK: parts ${parts% }; cells ${WARMUP}s + ${DURATION}s; failover $TRIALS trials; catch-up $SESSIONS sessions"
redis_ver="" etcd_ver="" app_mtime=""
if want redis; then
    redis_ver="$(redis-server --version 2>/dev/null | sed -n 1p)"
    [[ -z "$REDIS_APP" ]] || app_mtime="$(date -r "$REDIS_APP" '+%Y-%m-%d %H:%M:%S %z')"
fi
if want etcd; then etcd_ver="$(etcd --version 2>/dev/null | sed -n 1p)"; fi
sr_setup matrix # also gives the [raft] settings of the report
BM_STARTED="$(date '+%Y-%m-%dT%H:%M:%S%z')" BM_COMMAND="scripts/bench.sh${ARGS_TEXT:+ $ARGS_TEXT}" \
    BM_NPROC="$(nproc)" BM_CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
    BM_MEM="$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)" BM_KERNEL="$(uname -r)" \
    BM_OS="$(awk -F= '$1 == "PRETTY_NAME" { gsub(/"/, "", $2); print $2 }' /etc/os-release 2>/dev/null || true)" BM_DISK="$(machine_disk)" BM_DSYNC="$(dsync_rate)" \
    BM_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)" \
    BM_GIT="$(git_rev)" BM_SR_VERSION="$("$BIN" --version 2>/dev/null | sed -n 1p)" \
    BM_SR_MTIME="$(date -r "$BIN" '+%Y-%m-%d %H:%M:%S %z')" BM_REDIS="$redis_ver" BM_APP_MTIME="$app_mtime" \
    BM_ETCD="$etcd_ver" BM_QUICK="$QUICK" BM_DURATION="$DURATION" BM_WARMUP="$WARMUP" \
    BM_WORKLOADS="${WORKLOADS[*]}" BM_CONNECTIONS="${CONNECTIONS[*]}" BM_VALUE_BYTES="$VALUE_BYTES" \
    BM_TRIALS="$TRIALS" BM_RATE="$FAILOVER_RATE" BM_SESSIONS="$SESSIONS" BM_PARTS="$parts" \
    py meta "$SR_CONFIG" >"$WORK/meta.json"
: >"$WORK/runs.jsonl"

if want sessionraft || want failover; then
    sr_up
    if want sessionraft; then
        matrix sessionraft session "$(sr_targets)"
        say "memory after the matrix:"
        : >"$WORK/memory-matrix.jsonl"
        for id in 1 2 3; do rss_record "$id" "$WORK/memory-matrix.jsonl"; done
    fi
    if want failover; then failover; fi
    sr_down
fi
if want redis; then
    redis_up
    matrix redis session "http://127.0.0.1:$APP_PORT"
    redis_down
fi
if want etcd; then
    etcd_up
    matrix etcd etcd "$(etcd_endpoints)"
    etcd_down
fi
if want catchup; then catchup; fi

RAW="$(dirname "$OUT")/raw-$STAMP.json"
mkdir -p "$(dirname "$OUT")"
py assemble "$WORK" "$RAW" >/dev/null
py report "$RAW" "$OUT" >/dev/null
say "results: $OUT (raw: $RAW; logs: $WORK)"
sed -n '/^## Targets/,$p' "$OUT"
if ((FAILED)); then exit 1; fi

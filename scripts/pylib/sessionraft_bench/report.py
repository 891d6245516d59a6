"""The written results: the targets of a run, the Markdown report of a raw file, the summary over
several raw files, the A/B (--compare) Markdown, and the raw JSON assembled from a run's pieces.

Everything here is pure (documents in, text out) except the `write_*` and `assemble` functions,
which read and write the files. The text is byte for byte what scripts/bench.sh's Python heredoc
wrote (the tests compare with its outputs, kept in tests/fixtures/bench/).
"""

import json
import math
import os
import statistics
import time

from . import overload as overload_part

WORKLOADS_DEFAULT = ["write", "read", "mixed"]
CONNECTIONS_DEFAULT = [32, 256]
SYSTEMS = ("sessionraft", "redis", "etcd")


def now_text():
    """The local time as the reports write it (2026-11-27T03:36:12+0000)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ---------------------------------------------------------------------------------------------
# lookups and number formats


def find_run(d, system, w, c):
    """The record of one matrix cell of raw document `d` (None when not run)."""
    for r in d.get("runs", []):
        if r["system"] == system and r["workload"] == w and r["connections"] == c:
            return r
    return None


def tput_of(d, system, w, c):
    """The throughput of a cell that succeeded, else None."""
    r = find_run(d, system, w, c)
    return r["result"]["throughput_per_s"] if r and r["status"] == "ok" else None


def find_read_cell(d, system, consistency, w, c):
    """The record of one cell of the `reads` part (issue 18; consistency None for the Redis app),
    None when not run."""
    for r in (d.get("session_reads") or {}).get("cells", []):
        if (r["system"] == system and r.get("read_consistency") == consistency and r["workload"] == w
                and r["connections"] == c):
            return r
    return None


def read_tput(d, system, consistency, w, c):
    """The throughput of a `reads` cell that succeeded, else None."""
    r = find_read_cell(d, system, consistency, w, c)
    return r["result"]["throughput_per_s"] if r and r["status"] == "ok" else None


def read_cpu_per_op(d, system, consistency, w, c):
    """The servers' CPU per request (µs) of a `reads` cell that succeeded and measured it (the
    tool's `--server-pids`), else None."""
    r = find_read_cell(d, system, consistency, w, c)
    return (r["result"].get("server_cpu_us_per_op") if r and r["status"] == "ok" else None)


def n0(v):
    return "–" if v is None else f"{v:,.0f}"


def ms(v):
    return "–" if v is None else (f"{v:.2f}" if v < 100 else f"{v:,.0f}")


def ratio(a, b):
    """a / b, None when either is missing or b is 0."""
    return None if a is None or not b else a / b


def rx(v):
    return "–" if v is None else f"{v:.2f}×"


def mib(kib):
    return "–" if kib is None else f"{kib / 1024:.1f} MiB"


def secs(v):
    return "–" if v is None else f"{v / 1000:.2f} s"


def nearest_rank_p50(sorted_values):
    """The nearest-rank median of an ascending list (the lower middle for an even count)."""
    return sorted_values[math.ceil(0.5 * len(sorted_values)) - 1]


def median_or_none(xs):
    """statistics.median of the values that are not None; None when there are none."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------------------------------------
# targets


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

    conns = d.get("settings", {}).get("connections", CONNECTIONS_DEFAULT)
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
               f"{secs(c['catchup_ms'])} with {c.get('sessions', 0):,} sessions"
               + ("" if full else " (not the 1M of the target)"),
               measured=full)
    elif c and c.get("caught_up") is False:
        target("catch-up of 1M sessions ≤ 10 s", math.inf, 10, False,
               f"node 4 did not catch up with {c.get('sessions', 0):,} sessions: "
               + str(c.get("error")).replace("|", "\\|"),
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
               f"largest: node {worst['node']} {mib(worst['rss_kib'])}; "
               + ", ".join(f"node {x['node']} {mib(x['rss_kib'])}" for x in have)
               + (f"; no RSS for node(s) {', '.join(missing)}" if missing else "")
               + ("" if full else f" (with {c.get('sessions', 0):,} sessions, not 1M)"),
               measured=full)
    else:
        target("RSS ≤ 256 MiB per node at 1M sessions", None, 256, False, "not measured", measured=False)
    if d.get("session_reads") is not None:
        T += reads_targets(d)
    if d.get("resp") is not None:
        T += resp_targets(d)
    if d.get("overload") is not None:
        T += overload_part.targets(d["overload"])
    return T


READS_CONNECTIONS = (32, 256)


def reads_targets(d):
    """The targets of issue 18, from the `reads` part (one-thread load tool): session-token reads
    ≥ 1.25× the Redis app's reads at 32 and at 256 connections, session writes at 256
    connections ≥ 2× etcd's puts (the etcd matrix cell, its load tool at its default threads).
    The same dicts as targets()."""
    T = []

    def errs(rec):
        e = rec["result"]["errors"] if rec and rec["status"] == "ok" else 0
        return f"; sessionraft had {e:,} errors" if e else ""

    for c in READS_CONNECTIONS:
        a, b = read_tput(d, "sessionraft", "session", "read", c), read_tput(d, "redis", None, "read", c)
        q = ratio(a, b)
        T.append({"name": f"session-token reads ≥ 1.25× Redis app, {c} connections", "ok": None if q is None else q >= 1.25,
                  "value": q, "limit": 1.25, "higher_is_better": True, "unit": "×",
                  "numbers": f"sessionraft (session mode) {n0(a)}/s vs Redis app {n0(b)}/s = {rx(q)}"
                             + errs(find_read_cell(d, "sessionraft", "session", "read", c))})
    a, b = read_tput(d, "sessionraft", "session", "write", 256), tput_of(d, "etcd", "write", 256)
    q = ratio(a, b)
    T.append({"name": "session writes ≥ 2× etcd put, 256 connections (one-thread load tool)",
              "ok": None if q is None else q >= 2.0, "value": q, "limit": 2.0, "higher_is_better": True, "unit": "×",
              "numbers": f"sessionraft (session mode) {n0(a)}/s vs etcd {n0(b)}/s = {rx(q)}"
                         + errs(find_read_cell(d, "sessionraft", "session", "write", 256))})
    return T


RESP_CONNECTIONS = (32, 256)
RESP_LABELS = {"sessionraft": "sessionraft RESP", "redis-cache": "Redis, cache", "redis-durable": "Redis, durable",
               "etcd": "etcd (3 members)"}
RESP_REDIS_CMDS = {"redis-cache": "--save '' --appendonly no",
                   "redis-durable": "--save '' --appendonly yes --appendfsync always"}


def find_resp_cell(d, system, test, c):
    """The record of one cell of the `resp` part (issue 20), None when not run."""
    for r in (d.get("resp") or {}).get("cells", []):
        if r["system"] == system and r["test"] == test and r["connections"] == c:
            return r
    return None


def resp_tput(d, system, test, c):
    """The throughput of a `resp` cell that succeeded, else None."""
    r = find_resp_cell(d, system, test, c)
    return r["result"]["throughput_per_s"] if r and r["status"] == "ok" else None


def resp_targets(d):
    """The targets of issue 20, from the `resp` part (one-thread load tools): sessionraft's RESP
    SET ≥ 2× etcd's puts and RESP GET ≥ 2× etcd's linearizable ranges, at 32 and at 256
    connections. The same dicts as targets()."""
    T = []
    for test, base in (("set", "etcd put"), ("get", "etcd linearizable range")):
        for c in RESP_CONNECTIONS:
            a, b = resp_tput(d, "sessionraft", test, c), resp_tput(d, "etcd", test, c)
            q = ratio(a, b)
            r = find_resp_cell(d, "sessionraft", test, c)
            why = "" if q is not None or not r or r["status"] == "ok" else f" (sessionraft: {r.get('error')})"
            T.append({"name": f"RESP {test.upper()} ≥ 2× {base}, {c} connections (one-thread load tools)",
                      "ok": None if q is None else q >= 2.0, "value": q, "limit": 2.0, "higher_is_better": True,
                      "unit": "×",
                      "numbers": (f"sessionraft RESP {n0(a)}/s vs etcd {n0(b)}/s = {rx(q)}" + why).replace("|", "\\|")})
    return T


def resp_section(d):
    """The lines of the report's section "Redis protocol (RESP)" (issue 20) of raw document `d`;
    [] when the run had no `resp` part."""
    rp = d.get("resp")
    if rp is None:
        return []
    s = d.get("settings", {})
    node = rp.get("sessionraft_node")
    tool = f"redis-benchmark --threads {rp.get('load_threads', 1)}" if rp.get("threads_option", True) else "redis-benchmark"
    L = ["", "## Redis protocol (RESP): sessionraft, Redis and etcd (one-thread load tools)", "",
         f"RESP cells: `{tool} -t set|get -c C -n N -d {rp.get('value_bytes')} -r {rp.get('keyspace')} --csv` "
         f"({rp.get('redis_benchmark') or 'redis-benchmark'}; one load thread: on this machine's "
         f"{d.get('machine', {}).get('nproc', '?')} cores the tool's own CPU moves the ratios), a probe and "
         f"{s.get('warmup_s')} s of warm-up, then N sized for ~{s.get('duration_s')} s from the last rate; per "
         "connection count SET, then GET of the same key space. sessionraft: a fresh 3-node cluster (the generated "
         "config, every node with a resp_addr), all load to "
         + (f"node {node}, the leader, on its resp_addr `{rp.get('sessionraft_resp_addr')}`" if node else "the leader")
         + " (a SET is a Raft write, committed on a majority and applied; a GET a linearizable read). Redis: "
         f"redis-server alone as a cache (`{RESP_REDIS_CMDS['redis-cache']}`) and durable "
         f"(`{RESP_REDIS_CMDS['redis-durable']}`), one process each. etcd: a fresh 3-member cluster, "
         f"`sessionraft bench --kind etcd --threads 1` (put of {s.get('value_bytes')}-byte values; linearizable "
         "range), the load spread over the 3 members' HTTP/JSON gateways, as the etcd matrix cells.", "",
         "| system | command | connections | throughput (ops/s) | p50 (ms) | p99 (ms) | max (ms) | requests |",
         "|---|---|---:|---:|---:|---:|---:|---:|"]
    cmd = {("etcd", "set"): "put", ("etcd", "get"): "range (linearizable)"}
    for r in rp.get("cells", []):
        label = RESP_LABELS.get(r["system"], r["system"])
        what = cmd.get((r["system"], r["test"]), r["test"].upper())
        if r["status"] != "ok":
            why = (r.get("error") or "").replace("|", "\\|")[:200]
            L.append(f"| {label} | {what} | {r['connections']} | **FAILED** ({why}) | | | | |")
            continue
        x = r["result"]
        L.append(f"| {label} | {what} | {r['connections']} | {n0(x['throughput_per_s'])} | {ms(x.get('p50_ms'))} | "
                 f"{ms(x.get('p99_ms'))} | {ms(x.get('max_ms'))} | {n0(r.get('requests'))} |")
    for r in rp.get("cells", []):
        x = r.get("result") or {}
        if r["status"] == "ok" and x.get("errors"):
            L += ["", f"- {r['system']} {r['test']}/{r['connections']}: {x['errors']:,} errors"
                      + (f"; first: `{str(x.get('first_error'))[:200]}`" if x.get("first_error") else "")]
    rt = resp_tput
    L += ["", "| ratio (throughput) | 32 connections | 256 connections |", "|---|---:|---:|"]
    for test, other, label in (("set", "etcd", "RESP SET ÷ etcd put"), ("get", "etcd", "RESP GET ÷ etcd linearizable range"),
                               ("set", "redis-cache", "RESP SET ÷ Redis cache SET"),
                               ("get", "redis-cache", "RESP GET ÷ Redis cache GET"),
                               ("set", "redis-durable", "RESP SET ÷ Redis durable SET"),
                               ("get", "redis-durable", "RESP GET ÷ Redis durable GET")):
        L.append(f"| {label} | " + " | ".join(rx(ratio(rt(d, "sessionraft", test, c), rt(d, other, test, c)))
                                               for c in RESP_CONNECTIONS) + " |")
    T = resp_targets(d)
    L += ["", "Targets of issue 20 (also in the table of all targets below); the ratios to Redis are reported as "
          "they are:", "", "| target | result | numbers |", "|---|---|---|"]
    L += [f"| {t['name']} | {verdict(t['ok'])} | {t['numbers']} |" for t in T]
    return L


def verdict(ok):
    return "met" if ok is True else ("**NOT met**" if ok is False else "**NOT measured**")


def reads_section(d):
    """The lines of the report's section "Session-token reads (one-thread load tool)" (issue 18)
    of raw document `d`; [] when the run had no `reads` part."""
    sr = d.get("session_reads")
    if sr is None:
        return []
    s = d.get("settings", {})
    threads = sr.get("load_threads", 1)
    L = ["", "## Session-token reads (one-thread load tool)", "",
         f"Every cell: `sessionraft bench --threads {threads}` (the load tool on one thread: on this machine's "
         f"{d.get('machine', {}).get('nproc', '?')} cores its own CPU moves the ratios), {s.get('warmup_s')} s warm-up "
         f"then {s.get('duration_s')} s measured. sessionraft: a fresh 3-node cluster per mode, the generated config "
         "with `[raft] read_consistency = \"session\"` (the cookie carries a token; a fresh follower serves the load "
         "from its own replica) or `\"linearizable\"` (a read index for every load), the load spread over the 3 "
         "nodes; the session-mode cluster runs the reads, then the writes. Redis app: as in the matrix, all load to "
         "the app. etcd's puts: the etcd matrix cell (its load tool at the default threads)"
         + ("" if tput_of(d, "etcd", "write", 256) is not None else ", not measured in this run") + ".", "",
         "| cell | throughput (ops/s) | p50 (ms) | p99 (ms) | max (ms) | ok | errors | load tool CPU "
         "| machine CPU busy | context switches/s | loads made safe (per s) |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    labels = {"read": "read (GET)", "write": "write (POST)"}
    for r in sr.get("cells", []):
        system = ("sessionraft, " + f"{r.get('read_consistency')} mode" if r["system"] == "sessionraft"
                  else "Redis app")
        label = f"{system}: {labels.get(r['workload'], r['workload'])}, {r['connections']} connections"
        if r["status"] != "ok":
            why = (r.get("error") or "").replace("|", "\\|")[:160]
            L.append(f"| {label} | **FAILED** ({why}) | | | | | | | | | |")
            continue
        x = r["result"]
        cpu, busy, cs = x.get("load_cpu_percent"), x.get("machine_cpu_busy_percent"), x.get("context_switches_per_s")
        paths = x.get("read_paths_per_s") or {}
        L.append(f"| {label} | {n0(x['throughput_per_s'])} | {ms(x['p50_ms'])} | {ms(x['p99_ms'])} | "
                 f"{ms(x.get('max_ms'))} | {x['ok']:,} | {x['errors']:,} | "
                 f"{'–' if cpu is None else f'{cpu:.0f}%'} | {'–' if busy is None else f'{busy:.0f}%'} | "
                 f"{'–' if cs is None else n0(cs)} | "
                 + (" · ".join(f"{k} {n0(paths[k])}" for k in sorted(paths)) if paths else "–") + " |")
    for r in sr.get("cells", []):
        x = r.get("result") or {}
        if r["status"] == "ok" and x.get("errors") and x.get("first_error"):
            mode = f", {r.get('read_consistency')} mode" if r["system"] == "sessionraft" else " app"
            L += ["", f"- {r['system']}{mode} {r['workload']}/{r['connections']}: first error: "
                      f"`{str(x['first_error'])[:200]}`"]
    L += ["", "`loads made safe`: `sessionraft_read_index_total` by how, summed over the nodes: `local` a token "
          "read served from a follower's own replica, `lease` / `round` a read index on the leader (a follower's "
          "read-index call included; a write's load counts too).", ""]

    def q(a, b):
        return rx(ratio(a, b))

    rt = read_tput
    L += ["| ratio (throughput) | 32 connections | 256 connections |", "|---|---:|---:|"]
    L.append("| session reads ÷ Redis app reads | "
             + " | ".join(q(rt(d, "sessionraft", "session", "read", c), rt(d, "redis", None, "read", c))
                          for c in READS_CONNECTIONS) + " |")
    L.append("| linearizable reads ÷ Redis app reads | "
             + " | ".join(q(rt(d, "sessionraft", "linearizable", "read", c), rt(d, "redis", None, "read", c))
                          for c in READS_CONNECTIONS) + " |")
    L.append("| session reads ÷ linearizable reads | "
             + " | ".join(q(rt(d, "sessionraft", "session", "read", c), rt(d, "sessionraft", "linearizable", "read", c))
                          for c in READS_CONNECTIONS) + " |")
    L.append("| session writes ÷ etcd puts | "
             + " | ".join(q(rt(d, "sessionraft", "session", "write", c), tput_of(d, "etcd", "write", c))
                          for c in READS_CONNECTIONS) + " |")
    cpu = {(s, rc, c): read_cpu_per_op(d, s, rc, "read", c) for s, rc in (("sessionraft", "session"),
                                                                        ("sessionraft", "linearizable"),
                                                                        ("redis", None))
           for c in READS_CONNECTIONS}
    if any(v is not None for v in cpu.values()):
        def us(v):
            return "–" if v is None else f"{v:.1f}"

        L += ["", "CPU per read of the system under test (µs of user + system CPU per successful read, over the "
                  "measured window: the 3 nodes together, or redis_app and redis-server together; "
                  "`sessionraft bench --server-pids`):", "",
              "| CPU per read | 32 connections | 256 connections |", "|---|---:|---:|"]
        for (s, rc), label in ((("sessionraft", "session"), "sessionraft, session mode"),
                               (("sessionraft", "linearizable"), "sessionraft, linearizable mode"),
                               (("redis", None), "Redis app")):
            L.append(f"| {label} | " + " | ".join(us(cpu[(s, rc, c)]) for c in READS_CONNECTIONS) + " |")
        L.append("| session mode ÷ Redis app | "
                 + " | ".join(rx(ratio(cpu[("sessionraft", "session", c)], cpu[("redis", None, c)]))
                              for c in READS_CONNECTIONS) + " |")
    T = reads_targets(d)
    L += ["", "Targets of issue 18 (also in the table of all targets below):", "",
          "| target | result | numbers |", "|---|---|---|"]
    L += [f"| {t['name']} | {verdict(t['ok'])} | {t['numbers']} |" for t in T]
    return L


# ---------------------------------------------------------------------------------------------
# the report of one run


def report_markdown(d, raw, out):
    """The Markdown of raw document `d`, read from the file `raw`, to be written to `out` (the
    text names the raw file relative to the directory of `out`)."""
    s = d.get("settings", {})
    conns = s.get("connections", CONNECTIONS_DEFAULT)
    workloads = s.get("workloads", WORKLOADS_DEFAULT)
    names = {"sessionraft": "sessionraft (3 nodes)", "redis": "Redis app (actix-session + Redis)",
             "etcd": "etcd (3 members)"}

    def run(system, w, c):
        return find_run(d, system, w, c)

    def tput(system, w, c):
        return tput_of(d, system, w, c)

    L = []
    m, v = d.get("machine", {}), d.get("versions", {})
    L += ["# sessionraft benchmark results", ""]
    L += [f"Measured by `{d.get('command', 'scripts/bench.sh')}` on {d.get('started', '?')} "
          f"(finished {d.get('finished', '?')}). Raw numbers: "
          f"`{os.path.relpath(raw, os.path.dirname(os.path.abspath(out)))}`."]
    if s.get("quick") or s.get("duration_s", 10) < 10:
        L += ["", f"**Short cells ({s.get('duration_s')} s each): indicative numbers, noisier than a full run.**"]
    L += ["", "## Machine", "", "| | |", "|---|---|"]
    L += [f"| cores (nproc) | {m.get('nproc', '?')} |", f"| CPU | {m.get('cpu', '?')} |",
          f"| RAM | {m.get('mem_total_kib', 0) / 1048576:.1f} GiB |", f"| kernel | {m.get('kernel', '?')} |",
          f"| OS | {m.get('os', '?')} |", f"| disk (all data dirs) | {m.get('disk', '?')} |",
          f"| synced 4 KiB writes (dd oflag=dsync) | {m.get('dsync_writes_per_s', '?')} per second |",
          f"| load average when the run started (1, 5, 15 min) | {m.get('loadavg_at_start', '?')} |"]
    L += ["", "## Versions", "", "| | |", "|---|---|"]
    L += [f"| sessionraft | git {v.get('sessionraft_git', '?')}; `{v.get('sessionraft_version', '?')}`; "
          f"binary built {v.get('sessionraft_binary_mtime', '?')} |",
          f"| Redis | {v.get('redis') or '–'} |",
          f"| redis_app | binary built {v.get('redis_app_binary_mtime') or '–'} |",
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
          f"- etcd: 3 members on 127.0.0.1, default settings (fsync on, --snapshot-count default), "
          f"{s.get('value_bytes')}-byte values, "
          "the load spread over the 3 members' HTTP/JSON gateways.",
          f"- Failover: {s.get('failover_trials')} trials; catch-up and memory: {s.get('catchup_sessions', 0):,} sessions."]
    L += ["", "## Throughput and latency", ""]
    for w in workloads:
        for c in conns:
            label = {"write": "write (session POST; etcd put)", "read": "read (session GET; etcd linearizable range)",
                     "mixed": "mixed (90% reads, 10% writes)"}.get(w, w)
            L += [f"### {label}, {c} connections", "",
                  "| system | throughput (ops/s) | p50 (ms) | p99 (ms) | max (ms) | ok | errors | load tool CPU "
                  "| machine CPU busy | context switches/s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            notes = []
            for system in SYSTEMS:
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
                             f"{ms(x.get('max_ms'))} | {x['ok']:,} | {x['errors']:,} | "
                             f"{'–' if cpu is None else f'{cpu:.0f}%'} | "
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
    L += ["### Throughput ratios", "", "| workload | connections | sessionraft ÷ Redis app | sessionraft ÷ etcd |",
          "|---|---:|---:|---:|"]
    for w in workloads:
        for c in conns:
            sr = tput("sessionraft", w, c)
            L.append(f"| {w} | {c} | {rx(ratio(sr, tput('redis', w, c)))} | {rx(ratio(sr, tput('etcd', w, c)))} |")
    L += reads_section(d)
    L += resp_section(d)
    if d.get("overload") is not None:
        L += overload_part.section(d["overload"])
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
              + (f"; {f['failed_trials']} trial(s) without success within {f.get('timeout_ms', 30000) // 1000} s, "
                 "counted as infinite" if f.get("failed_trials") else "") + ")", "",
              "| trial | killed leader | kill → first 200 (ms) | requests | served by | new leader | kill → new leader seen (ms) |",
              "|---:|---:|---:|---:|---:|---:|---:|"]

        def dash(x):
            return "–" if x is None else x

        for t in f["trials"]:
            L.append(f"| {t['trial']} | {t.get('killed')} | "
                     f"{ms(t['ms']) if t.get('ok') else '**no success** (' + str(t.get('ms')) + ' ms)'} | "
                     f"{dash(t.get('attempts'))} | {dash(t.get('served_by'))} | {dash(t.get('new_leader'))} | "
                     f"{ms(t.get('elected_ms'))} |")
        el = sorted(t["elected_ms"] for t in f["trials"] if t.get("elected_ms") is not None)
        if el:
            L += ["", f"Kill → a survivor reports itself leader of a new term (its /cluster/status, polled every ~10 ms "
                      f"in parallel): p50 {ms(nearest_rank_p50(el))} ms, max {ms(el[-1])} ms. "
                      "The difference to the first 200 is the held request's retry and the write's commit (the watcher's "
                      "own polling adds up to ~20 ms either way)."]
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
              "| `scripts/cluster.sh add-node` in all (to voter) | "
              + (f"{secs(c.get('add_node_ms'))} (exit {c['add_node_rc']})"
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
    return "\n".join(L)


def _write(out, text):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)


def write_report(raw, out):
    """Read the raw file, write its Markdown to `out`; returns `out`."""
    with open(raw) as f:
        d = json.load(f)
    _write(out, report_markdown(d, raw, out))
    return out


# ---------------------------------------------------------------------------------------------
# the summary over several runs


def summary_value(v, unit, limit=None):
    """A target's value as the summary writes it ('failed' for infinity; a ratio that rounds to
    its limit without being it gets 3 decimals: 0.996× is not 1.00×)."""
    if v is None:
        return "–"
    if v == math.inf:
        return "failed"
    if unit == "×" and limit is not None and f"{v:.2f}" == f"{limit:.2f}" and v != limit:
        return f"{v:.3f}×"
    return {"×": f"{v:.2f}×", "ms": f"{v:,.0f} ms", "s": f"{v:.2f} s", "MiB": f"{v:.1f} MiB",
            "writes": f"{v:,.0f}"}[unit]


def summary_markdown(docs, raws, out):
    """Every target across several full runs (raw documents `docs`, read from the files `raws`),
    the median of each, and the throughput of every cell per run."""
    n = len(docs)
    val = summary_value

    def rel(r):
        return os.path.relpath(r, os.path.dirname(os.path.abspath(out)))

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
    names = []
    for r in rows:  # every target of any run, in the order they first appear
        names += [t["name"] for t in r if t["name"] not in names]
    first = {}
    for r in rows:
        for t in r:
            first.setdefault(t["name"], t)
    for name in names:
        t0 = first[name]
        ts = [next((t for t in r if t["name"] == name),
                   {**t0, "ok": None, "value": None}) for r in rows]
        vals = [t["value"] for t in ts if t["ok"] is not None and t["value"] is not None]
        m = statistics.median(vals) if vals else None
        ok = None if m is None else (m >= t0["limit"] if t0["higher_is_better"] else m <= t0["limit"])
        met_median += ok is True
        L.append(f"| {t0['name']} | "
                 + " | ".join(val(t["value"], t["unit"], t["limit"]) + ("" if t["ok"] is not False else " ✗") for t in ts)
                 + f" | **{val(m, t0['unit'], t0['limit'])}** | {sum(t['ok'] is True for t in ts)} of {n} | {verdict(ok)} |")
    L += ["", f"{met_median} of {len(names)} targets met on the median (✗: missed in that run)."]
    L += ["", "## Throughput per cell (ops/s)", "",
          "| workload | connections | system | " + " | ".join(f"run {i}" for i in range(1, n + 1)) + " | median |",
          "|---|---:|---|" + "---:|" * n + "---:|"]
    s0 = docs[0].get("settings", {})
    for w in s0.get("workloads", WORKLOADS_DEFAULT):
        for c in s0.get("connections", CONNECTIONS_DEFAULT):
            for system in SYSTEMS:
                xs = [tput_of(d, system, w, c) for d in docs]
                have = [x for x in xs if x is not None]
                if not have:
                    continue
                L.append(f"| {w} | {c} | {system} | " + " | ".join(n0(x) for x in xs)
                         + f" | {n0(statistics.median(have))} |")
    L.append("")
    return "\n".join(L)


def write_summary(out, raws):
    """Read the raw files, write the summary to `out`; returns `out`."""
    docs = []
    for r in raws:
        with open(r) as f:
            docs.append(json.load(f))
    _write(out, summary_markdown(docs, raws, out))
    return out


# ---------------------------------------------------------------------------------------------
# --compare


def compare_markdown(records, *, a, b, git, nproc, warmup, duration, when=None):
    """The Markdown of an A/B run from its cell records (systems named sessionraft-A-P /
    sessionraft-B-P, P the pair), in the order they ran."""
    when = when or now_text()
    cells = {}
    for r in records:
        side, pair = r["system"].split("-")[1:3]
        cells.setdefault((r["workload"], r["connections"]), {}).setdefault(int(pair), {})[side] = r

    def tp(r):
        return r["result"]["throughput_per_s"] if r and r["status"] == "ok" else None

    def p50(r):
        return r["result"]["p50_ms"] if r and r["status"] == "ok" else None

    med = median_or_none

    def f0(v):
        return "–" if v is None else f"{v:,.0f}"

    L = ["# sessionraft A/B", "",
         f"Measured by `scripts/bench.sh --compare` on {when}, git {git}, "
         f"{nproc} cores. A = `{a}`, B = `{b}`. Every cell: a fresh 3-node "
         f"cluster of that binary, `sessionraft bench` (A's binary as the load tool for both), "
         f"{warmup} s warm-up + {duration} s, A then B in each pair.", "",
         "| workload | connections | A (ops/s, per pair) | B (ops/s, per pair) | B ÷ A per pair | median B ÷ A "
         "| p50 A → B (ms, medians) |",
         "|---|---:|---|---|---|---:|---|"]
    for (w, c), pairs in cells.items():
        av = [tp(pairs[p].get("A")) for p in sorted(pairs)]
        bv = [tp(pairs[p].get("B")) for p in sorted(pairs)]
        ratios = [None if x is None or y is None or x == 0 else y / x for x, y in zip(av, bv)]
        m = med(ratios)
        pa = med([p50(pairs[p].get("A")) for p in pairs])
        pb = med([p50(pairs[p].get("B")) for p in pairs])
        L.append(f"| {w} | {c} | {' / '.join(f0(x) for x in av)} | {' / '.join(f0(x) for x in bv)} | "
                 f"{' / '.join('–' if r is None else f'{r:.2f}' for r in ratios)} | "
                 f"{'–' if m is None else f'{m:.2f}×'} | "
                 f"{'–' if pa is None else f'{pa:.2f}'} → {'–' if pb is None else f'{pb:.2f}'} |")
    failed = [f"{r['system']} {w}/{c}: {r.get('error')}" for (w, c), pairs in cells.items()
              for p in pairs.values() for r in p.values() if r["status"] != "ok"]
    if failed:
        L += ["", "Failed cells:", ""] + [f"- {x}" for x in failed]
    L += ["", "A ratio inside the spread of the per-pair ratios is noise on this machine; "
          "keep a change only when every pair agrees."]
    return "\n".join(L) + "\n"


def read_jsonl(path):
    """The JSON lines of a file (blank lines skipped); [] when it does not exist."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------------------------
# the raw file of a run


def failover_stats(trials):
    """p50_ms, max_ms (nearest rank; a trial without success counts as infinite, then None) and
    failed_trials of a list of trial records; {} for no trials."""
    xs = sorted(t["ms"] if t.get("ok") else math.inf for t in trials)
    if not xs:
        return {}
    p50 = nearest_rank_p50(xs)
    return {"p50_ms": None if p50 == math.inf else p50,
            "max_ms": None if xs[-1] == math.inf else xs[-1],
            "failed_trials": sum(1 for t in trials if not t.get("ok"))}


def assemble_doc(work, finished=None):
    """The raw JSON document of a run from the pieces in its directory `work` (meta.json,
    runs.jsonl, failover.json/.jsonl, catchup.json, memory-*.jsonl, problems.txt)."""

    def load(name, default=None):
        p = os.path.join(work, name)
        if not os.path.exists(p):
            return default
        with open(p) as f:
            return json.load(f)

    meta = load("meta.json", {})
    failover = None
    trials = read_jsonl(os.path.join(work, "failover.jsonl"))
    if trials or os.path.exists(os.path.join(work, "failover.json")):
        failover = {**load("failover.json", {}), "trials": trials}
        failover.update(failover_stats(trials))
    problems = []
    p = os.path.join(work, "problems.txt")
    if os.path.exists(p):
        with open(p) as f:
            problems = [line.rstrip("\n") for line in f]
    return {**meta, "finished": finished or now_text(),
            "runs": read_jsonl(os.path.join(work, "runs.jsonl")), "failover": failover,
            "catchup": load("catchup.json"),
            "memory": {"after_catchup": read_jsonl(os.path.join(work, "memory-catchup.jsonl")),
                       "after_matrix": read_jsonl(os.path.join(work, "memory-matrix.jsonl"))},
            "problems": [p for p in problems if p],
            **reads_doc(work), **resp_doc(work), **overload_doc(work)}


def reads_doc(work):
    """{"session_reads": {"load_threads", "cells"}} when the run had the `reads` part (its
    reads.jsonl), else {} (the raw file of a run without it is unchanged)."""
    p = os.path.join(work, "reads.jsonl")
    if not os.path.exists(p):
        return {}
    recs = read_jsonl(p)
    threads = sorted({r.get("load_threads") for r in recs if r.get("load_threads") is not None})
    return {"session_reads": {"load_threads": threads[0] if len(threads) == 1 else None, "cells": recs}}


def resp_doc(work):
    """{"resp": {the part's settings (resp.json), "cells"}} when the run had the `resp` part (its
    resp.jsonl), else {}."""
    p = os.path.join(work, "resp.jsonl")
    if not os.path.exists(p):
        return {}
    settings = {}
    q = os.path.join(work, "resp.json")
    if os.path.exists(q):
        with open(q) as f:
            settings = json.load(f)
    return {"resp": {**settings, "cells": read_jsonl(p)}}


def overload_doc(work):
    """{"overload": the part's record (overload.json)} when the run had the `overload` part, else {}."""
    p = os.path.join(work, "overload.json")
    if not os.path.exists(p):
        return {}
    with open(p) as f:
        return {"overload": json.load(f)}


def assemble(work, raw):
    """Write the raw JSON of the run in `work` to `raw`; returns `raw`."""
    doc = assemble_doc(work)
    with open(raw, "w") as f:
        json.dump(doc, f, indent=2)
    return raw

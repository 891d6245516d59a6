"""The `overload` part (issue 29): an open arrival rate above capacity, on a fresh 3-node cluster.

1. capacity: closed-loop writes (`sessionraft bench --workload write --connections 32`,
   --capacity-duration seconds, default 5) over the 3 nodes;
2. the open loop: increments (`POST /api/counter`) arriving at FACTOR x that capacity
   (BENCH_OVERLOAD_FACTOR, default 3) for --overload-duration seconds (default 20) after the
   run's --warmup (`sessionraft bench --rate R --connections SESSIONS`: arrivals on schedule
   whatever the answers, latency from each one's scheduled arrival, one request in flight per
   session, BENCH_OVERLOAD_SESSIONS sessions, default 16384, which is also the cap on requests in
   flight), then every session's counter read and checked against its acknowledged increments;
3. meanwhile every node's VmRSS (/proc/PID/status) sampled every 0.25 s.

Targets (issue 29): served (200/s) >= 90 % of the capacity, p99 of the admitted (200) requests
<= the cluster's [raft] request_deadline_ms, the highest RSS of each node <= 256 MiB, no
acknowledged write lost (and none invented). WORK/overload.json holds the record; the report has
a section and the targets.

The pure half (commands, parsing, the verdicts and the Markdown) is tested on its own;
run_overload() runs the part on a Run (run.py)."""

import json
import os
import re
import sys
import time
import tomllib

from . import cells, procs
from .common import say
from .systems import Sessionraft

CAPACITY_CONNECTIONS = 32
FACTOR = 3.0
# Above what a cluster that refuses in time ever holds (capacity x request deadline, by Little's
# law, with the capacities seen here), so that the server's refusals bound the load, not the
# tool's cap; each may hold a connection (the tool raises its open-file limit to match)
SESSIONS = 16384
SERVED_SHARE = 0.9
RSS_LIMIT_MIB = 256
DEFAULT_DEADLINE_MS = 3000
SAMPLE_S = 0.25


def request_deadline_ms(config_text):
    """[raft] request_deadline_ms of a cluster config (its default, 3000, when absent)."""
    raft = tomllib.loads(config_text).get("raft") or {}
    v = raft.get("request_deadline_ms", DEFAULT_DEADLINE_MS)
    return int(v)


def open_loop_rate(capacity, factor=FACTOR):
    """The arrival rate of the open loop: FACTOR x CAPACITY, a whole number, at least 1."""
    return max(1, round(capacity * factor))


def open_loop_command(binary, targets, rate, sessions, duration, warmup, ca=None, timeout_s=10):
    """The argv of `sessionraft bench` in its open loop."""
    argv = [binary, "bench", "--targets", targets, "--workload", "write", "--kind", "session",
            "--rate", str(rate), "--connections", str(sessions), "--duration", str(duration),
            "--warmup", str(warmup), "--timeout", str(timeout_s), "--json"]
    if ca is not None:
        argv += ["--ca", ca]
    return argv


def vm_rss_kib(status_text):
    """VmRSS in KiB from the text of /proc/PID/status, None when absent."""
    m = re.search(r"^VmRSS:\s+([0-9]+)\s+kB", status_text, re.M)
    return int(m.group(1)) if m else None


def targets(ov):
    """The targets of the part's record OV: dicts as report.targets() makes them."""
    T = []
    cap = (ov.get("capacity") or {}).get("throughput_per_s")
    r = ov.get("open_loop") or {}
    measured = bool(r) and ov.get("open_loop_status") == "ok"
    served = r.get("throughput_per_s") if measured else None
    share = served / cap if served is not None and cap else None
    deadline = ov.get("request_deadline_ms")

    def add(name, ok, value, limit, higher, unit, numbers):
        T.append({"name": name, "ok": ok, "value": value, "limit": limit, "higher_is_better": higher,
                  "unit": unit, "numbers": numbers})

    rate = ov.get("rate_per_s")
    capped = (f"; in-flight cap hit: {r['not_sent_in_flight_cap']:,} arrivals not sent"
              if measured and r.get("not_sent_in_flight_cap") else "")
    add(f"open loop at {ov.get('factor', FACTOR):g}× capacity: served ≥ {SERVED_SHARE:.0%} of capacity",
        None if share is None else share >= SERVED_SHARE, share, SERVED_SHARE, True, "×",
        f"{_n0(served)}/s served of {_n0(rate)}/s offered; capacity (closed loop, {CAPACITY_CONNECTIONS} "
        f"connections) {_n0(cap)}/s" + (f" = {share:.2f}×" if share is not None else "") + capped)
    p99 = r.get("p99_ms") if measured and r.get("ok") else None
    add("open loop: p99 of admitted requests ≤ request deadline",
        None if p99 is None or deadline is None else p99 <= deadline, p99, deadline, False, "ms",
        f"p99 {_ms(p99)} (from the scheduled arrival) vs request_deadline_ms {deadline}")
    rss = ov.get("max_rss_kib") or {}
    worst = max((v for v in rss.values() if v is not None), default=None)
    per = ", ".join(f"node {k} {_mib(v)}" for k, v in sorted(rss.items()))
    add(f"open loop: RSS ≤ {RSS_LIMIT_MIB} MiB per node",
        None if worst is None or len(rss) < 3 else worst <= RSS_LIMIT_MIB * 1024,
        None if worst is None else round(worst / 1024, 1), RSS_LIMIT_MIB, False, "MiB",
        f"highest VmRSS sampled: {per or 'none'}")
    c = r.get("check") if measured else None
    if c is None:
        add("open loop: no acknowledged write lost", None, None, 0, False, "writes", "not checked")
    else:
        ok = c.get("lost_writes", 0) == 0 and c.get("invented_writes", 0) == 0
        add("open loop: no acknowledged write lost", ok if c.get("sessions_unreadable", 0) == 0 else False,
            c.get("lost_writes"), 0, False, "writes",
            f"{c.get('sessions_checked', 0):,} sessions read: {c.get('lost_writes', 0)} acknowledged writes lost, "
            f"{c.get('invented_writes', 0)} invented, {c.get('sessions_unreadable', 0)} sessions unreadable"
            + (f" ({c['first_problem']})" if c.get("first_problem") else ""))
    return T


def section(ov):
    """The lines of the report's section for the part's record OV."""
    L = ["", "## Open-loop overload (issue 29)", ""]
    cap = ov.get("capacity") or {}
    L += [f"Capacity: closed-loop `sessionraft bench --workload write --connections {CAPACITY_CONNECTIONS}` over "
          f"the 3 nodes for {ov.get('capacity_duration_s')} s: {_n0(cap.get('throughput_per_s'))}/s"
          + (f" (FAILED: {ov['capacity_error']})" if ov.get("capacity_error") else "") + "."]
    r = ov.get("open_loop") or {}
    if not r:
        L += ["", f"The open loop did not run{': ' + ov['open_loop_error'] if ov.get('open_loop_error') else '.'}"]
        return L
    L += ["", f"Open loop: `POST /api/counter` arriving at {_n0(ov.get('rate_per_s'))}/s "
              f"({ov.get('factor', FACTOR):g}× capacity) for {r.get('duration_s')} s after {r.get('warmup_s')} s not "
              f"measured, on {r.get('sessions')} sessions (at most one request in flight each), latency from each "
              "request's scheduled arrival (no coordinated omission).", "",
          "| | |", "|---|---:|",
          f"| arrivals scheduled | {_n0(r.get('scheduled'))} |",
          f"| not sent: every session busy (in-flight cap) | {_n0(r.get('not_sent_in_flight_cap'))} |",
          f"| most in flight | {_n0(r.get('max_in_flight'))} |",
          f"| 200 (acknowledged) | {_n0(r.get('ok'))} = {_n0(r.get('throughput_per_s'))}/s |",
          f"| 503 (refused, not applied) | {_n0(r.get('refused_503'))} |",
          f"| 504 (outcome unknown) | {_n0(r.get('unknown_504'))} |",
          f"| other statuses | {', '.join(f'{k}: {v:,}' for k, v in (r.get('other_status') or {}).items()) or '0'} |",
          f"| transport errors | {_n0(r.get('transport_errors'))} |",
          f"| admitted latency p50 / p99 / max | {_ms(r.get('p50_ms'))} / {_ms(r.get('p99_ms'))} / "
          f"{_ms(r.get('max_ms'))} |",
          f"| 503 latency p50 / p99 | {_ms(r.get('refused_p50_ms'))} / {_ms(r.get('refused_p99_ms'))} |",
          f"| the tool's dispatch lag p99 / max | {_ms(r.get('dispatch_lag_p99_ms'))} / "
          f"{_ms(r.get('dispatch_lag_max_ms'))} |",
          f"| the tool's CPU, machine busy | {_pct(r.get('load_cpu_percent'))} of a core, "
          f"{_pct(r.get('machine_cpu_busy_percent'))} |"]
    if r.get("not_sent_in_flight_cap"):
        L += ["", "**The in-flight cap was hit**: the tool offered less than the rate. A cluster that refuses what it "
                  "cannot serve within its deadline holds at most capacity × request deadline requests (Little's law): "
                  "it held more, or the tool fell behind (its dispatch lag above); raise BENCH_OVERLOAD_SESSIONS to see "
                  "further."]
    if ov.get("open_loop_error"):
        L += ["", f"**Problem:** {ov['open_loop_error']}"]
    L += ["", "| target | result | numbers |", "|---|---|---|"]
    for t in targets(ov):
        L.append(f"| {t['name']} | {_verdict(t['ok'])} | {t['numbers']} |")
    return L


def _verdict(ok):
    return "met" if ok is True else ("**NOT met**" if ok is False else "**NOT measured**")


def _n0(v):
    return "?" if v is None else f"{v:,.0f}"


def _ms(v):
    return "?" if v is None else f"{v:.1f} ms"


def _pct(v):
    return "?" if v is None else f"{v:.0f}%"


def _mib(kib):
    return "?" if kib is None else f"{kib / 1024:.0f} MiB"


# ---------------------------------------------------------------------------------------------
# the part on a run


def _node_rss(sr, ids):
    """{node: VmRSS KiB or None} now."""
    out = {}
    for i in ids:
        pid = sr.node_pid(i)
        try:
            with open(f"/proc/{pid}/status") as f:
                out[i] = vm_rss_kib(f.read()) if pid is not None else None
        except OSError:
            out[i] = None
    return out


def run_overload(run):
    """The `overload` part of a run: WORK/overload.json (and WORK/overload-rss.jsonl, the samples)."""
    o = run.opts
    factor = float(os.environ.get("BENCH_OVERLOAD_FACTOR") or FACTOR)
    sessions = int(os.environ.get("BENCH_OVERLOAD_SESSIONS") or SESSIONS)
    sr = Sessionraft(run, "overload", run.bin).setup()
    with open(sr.config) as f:
        deadline = request_deadline_ms(f.read())
    ov = {"factor": factor, "sessions": sessions, "request_deadline_ms": deadline,
          "capacity_duration_s": o.capacity_duration, "overload_duration_s": o.overload_duration,
          "capacity": None, "open_loop": None, "open_loop_status": "failed", "max_rss_kib": {}}
    path = os.path.join(run.work, "overload.json")
    sr.up()
    try:
        base = os.path.join(run.work, "cells", "overload-capacity")
        argv = cells.bench_command(run.bin, sr.targets(), "write", CAPACITY_CONNECTIONS, o.capacity_duration, 1,
                                   "session", ca=run.ca_for(sr.targets()))
        say(f"overload: capacity, closed-loop writes, {CAPACITY_CONNECTIONS} connections (1s warm-up + "
            f"{o.capacity_duration}s)")
        with open(base + ".cmd", "w") as f:
            f.write(cells.quoted(argv))
        rc = run.run_child(argv, base + ".json", base + ".err")
        rec = cells.cell_record("sessionraft", "session", "write", CAPACITY_CONNECTIONS, rc, base + ".json",
                                base + ".err")
        print(cells.cell_line(rec), file=sys.stderr, flush=True)
        if rec["status"] != "ok":
            ov["capacity_error"] = rec["error"]
            run.problem(f"overload: the capacity cell failed (see {base}.err)")
            return
        ov["capacity"] = rec["result"]
        rate = open_loop_rate(rec["result"]["throughput_per_s"], factor)
        ov["rate_per_s"] = rate
        base = os.path.join(run.work, "cells", "overload-open-loop")
        argv = open_loop_command(run.bin, sr.targets(), rate, sessions, o.overload_duration, o.warmup,
                                 ca=run.ca_for(sr.targets()))
        say(f"overload: open loop, {rate}/s ({factor:g}x capacity) on {sessions} sessions ({o.warmup}s + "
            f"{o.overload_duration}s, then every session read); sampling every node's VmRSS")
        with open(base + ".cmd", "w") as f:
            f.write(cells.quoted(argv))
        rc = _run_sampling(run, sr, argv, base, os.path.join(run.work, "overload-rss.jsonl"), ov["max_rss_kib"])
        with open(base + ".json", errors="replace") as f:
            result = cells.parse_result(f.read())
        if isinstance(result, dict) and result.get("mode") == "open-loop":
            ov["open_loop"] = result
            # exit 1 with a result: the check found a wrong counter (a verdict, not a failed run)
            ov["open_loop_status"] = "ok" if rc == 0 or result.get("check") else "failed"
            print(f"  -> {result['throughput_per_s']:.0f}/s served of {rate}/s; p99 admitted {result['p99_ms']:.1f} ms; "
                  f"503 {result['refused_503']}, 504 {result['unknown_504']}; lost writes "
                  f"{result['check']['lost_writes']}", file=sys.stderr, flush=True)
        else:
            with open(base + ".err", errors="replace") as f:
                tail = f.read().strip().splitlines()[-3:]
            ov["open_loop_error"] = f"exit {rc}: " + " / ".join(tail)
            run.problem(f"overload: the open loop failed (see {base}.err)")
    finally:
        ov["max_rss_kib"] = {str(k): v for k, v in ov["max_rss_kib"].items()}
        with open(path, "w") as f:
            json.dump(ov, f, indent=2)
        sr.down()


def _run_sampling(run, sr, argv, base, samples_path, max_rss):
    """ARGV (stdout to BASE.json, stderr to BASE.err) while sampling the nodes' VmRSS every
    SAMPLE_S into SAMPLES_PATH (JSON lines) and MAX_RSS ({node: highest KiB}); its exit status."""
    from .run import exit_status
    with open(base + ".json", "wb") as fo, open(base + ".err", "wb") as fe:
        p = procs.start(argv, stdout=fo, stderr=fe)
    run.child = (p, os.path.basename(argv[0]))
    t0 = time.monotonic()
    with open(samples_path, "w") as samples:
        while True:
            rss = _node_rss(sr, (1, 2, 3))
            for k, v in rss.items():
                if v is not None:
                    max_rss[k] = max(max_rss.get(k) or 0, v)
            samples.write(json.dumps({"t_s": round(time.monotonic() - t0, 2), "rss_kib": rss}) + "\n")
            if p.poll() is not None:
                break
            time.sleep(SAMPLE_S)
    run.child = None
    return exit_status(p.wait())


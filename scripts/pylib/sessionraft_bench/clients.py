"""The `clients` part (issue 29): the clients people actually run, on sessionraft's Redis-protocol
door against one durable redis-server (`--appendonly yes --appendfsync always`), the two systems
alternating over --pairs pairs (default 3), each system started fresh for each of its turns:

  express   tests/resp_clients/express (express-session + connect-redis + node-redis: one
            connection, so concurrent requests reach the store pipelined), POST /api/counter
            (a session read and a session write per request), 32 connections, the project's own
            one-thread load tool (`sessionraft bench --kind session --workload write --threads 1`)
  flask     tests/resp_clients/flask (Flask-Session over redis-py), the same load
  set-p16   `redis-benchmark -P 16 -t set -c 32 --threads 1 -d 200`, straight to the store

Each cell's sessionraft/redis ratio per pair, and their median and spread, go to WORK/clients.md
(printed too) and the records to WORK/clients.jsonl. The apps' dependencies come from
`scripts/install-deps.sh --resp-clients` (node_modules, .venv); BENCH_CLIENTS_DIR names another
checkout's tests/resp_clients that has them.

The pure half (the plan, the commands, the table) is tested on its own; run_clients() runs the
part on a Run (run.py)."""

import contextlib
import json
import os
import statistics
import sys
import time

from . import cells, procs
from .common import Usage, nap, now_ms, say
from .resp import _read, benchmark_command, parse_csv, server_errors
from .systems import Redis, Sessionraft, free_ports, http_code

CONNECTIONS = 32
PIPELINE = 16
DURABLE = ("--save", "", "--appendonly", "yes", "--appendfsync", "always")
SYSTEMS = ("sessionraft", "redis-durable")
LABELS = {"sessionraft": "sessionraft RESP (3 nodes, to the leader)",
          "redis-durable": "redis-server --appendonly yes --appendfsync always"}
CELLS = ("express", "flask", "set-p16")
CELL_LABELS = {"express": "Express app (express-session, connect-redis, node-redis), POST /api/counter, 32 conns",
               "flask": "Flask app (Flask-Session, redis-py), POST /api/counter, 32 conns",
               "set-p16": f"redis-benchmark -P {PIPELINE} -t set -c {CONNECTIONS} --threads 1 -d 200"}


def plan_clients(pairs, systems=SYSTEMS):
    """(pair, system) in the order they run: the first of the two SYSTEMS alternates from pair to
    pair, so neither always runs on a machine the other just warmed up."""
    out = []
    for i in range(pairs):
        order = systems if i % 2 == 0 else tuple(reversed(systems))
        out.extend((i, s) for s in order)
    return out


def app_command(clients_dir, app, listen):
    """The argv that serves APP (express or flask) from CLIENTS_DIR on LISTEN (host:port)."""
    if app == "express":
        return ["node", os.path.join(clients_dir, "express", "app.js"), listen]
    return [os.path.join(clients_dir, "flask", ".venv", "bin", "python"),
            os.path.join(clients_dir, "flask", "app.py"), listen]


def app_missing(clients_dir, app):
    """Why APP cannot run from CLIENTS_DIR, or None."""
    need = (os.path.join(clients_dir, "express", "node_modules", "express-session") if app == "express"
            else os.path.join(clients_dir, "flask", ".venv", "bin", "python"))
    if not os.path.exists(need):
        return f"{need} is missing: run scripts/install-deps.sh --resp-clients (or set BENCH_CLIENTS_DIR)"
    return None


def pipelined_set_command(host, port, requests):
    """redis-benchmark -P 16 -t set -c 32, one load thread, 200-byte values, CSV."""
    argv = benchmark_command(host, port, "set", CONNECTIONS, requests, 200, 1)
    return argv[:1] + ["-P", str(PIPELINE)] + argv[1:]


def table(records, pairs):
    """The Markdown of the part: per cell, each pair's two throughputs and ratio, then the median
    ratio and its spread (min-max over the pairs)."""
    return pairs_table("## Real clients: sessionraft vs durable Redis, alternating pairs (issue 29)",
                       f"{LABELS['sessionraft']} vs {LABELS['redis-durable']}; each system fresh for each turn.",
                       CELLS, CELL_LABELS, SYSTEMS, ("sessionraft /s", "redis durable /s"), records, pairs)


def pairs_table(title, intro, cells_, cell_labels, systems, headers, records, pairs):
    """Alternating pairs as Markdown: per cell of CELLS_, each pair's throughputs of the two
    SYSTEMS (A, B; their column HEADERS) and A/B, then the median ratio and its spread (min-max
    over the pairs). RECORDS: dicts with pair, system, cell, status and throughput_per_s."""
    by = {(r["cell"], r["pair"], r["system"]): r for r in records}
    sa, sb = systems
    lines = [title, "", intro, "",
             f"| cell | pair | {headers[0]} | {headers[1]} | ratio |", "|---|---:|---:|---:|---:|"]
    summary = []
    for cell in cells_:
        ratios = []
        for i in range(pairs):
            a, b = by.get((cell, i, sa)), by.get((cell, i, sb))
            va = _rate(a)
            vb = _rate(b)
            ratio = va / vb if va is not None and vb else None
            if ratio is not None:
                ratios.append(ratio)
            lines.append(f"| {cell} | {i + 1} | {_fmt(va, a)} | {_fmt(vb, b)} | "
                         f"{f'{ratio:.2f}x' if ratio is not None else '-'} |")
        if ratios:
            summary.append(f"- {cell_labels[cell]}: median {statistics.median(ratios):.2f}x "
                           f"(spread {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} pairs)")
        else:
            summary.append(f"- {cell_labels[cell]}: no complete pair")
    return "\n".join(lines + ["", *summary, ""])


def _rate(rec):
    if rec is None or rec["status"] != "ok":
        return None
    return rec["throughput_per_s"]


def _fmt(v, rec):
    if v is not None:
        return f"{v:,.0f}"
    return "FAILED" if rec is not None else "-"


# ---------------------------------------------------------------------------------------------
# the part on a run


class AppFailed(Exception):
    """An app of tests/resp_clients/ could not be started (why, in words)."""


@contextlib.contextmanager
def running_app(run, clients_dir, app, redis_url, base):
    """APP (express or flask) from CLIENTS_DIR on a free port over REDIS_URL, its output in
    BASE.app.log, until it answers POST /api/counter with 200; yields its listen address
    (host:port) and stops it by pid afterwards. Raises AppFailed."""
    why = app_missing(clients_dir, app)
    if why:
        raise AppFailed(why)
    (port,) = free_ports(1)
    listen = f"127.0.0.1:{port}"
    env = dict(os.environ, REDIS_URL=redis_url, PYTHONDONTWRITEBYTECODE="1")
    with open(base + ".app.log", "wb") as f:
        p = procs.start(app_command(clients_dir, app, listen), stdout=f, session=True, env=env)
    name = "node" if app == "express" else "python"
    run.children.append((p, name, True))
    try:
        deadline = now_ms() + 30000
        while http_code(f"http://{listen}/api/counter", 2, ("-X", "POST")) != "200":
            if p.poll() is not None:
                raise AppFailed(f"the {app} app exited; see {base}.app.log")
            if now_ms() >= deadline:
                raise AppFailed(f"no 200 on POST /api/counter after 30 s; see {base}.app.log")
            nap(0.2)
        say(f"the {app} app serves on {listen} over {redis_url}")
        yield listen
    finally:
        procs.stop(p, name, group=True)
        run.forget(p)


class ClientsPart:
    def __init__(self, run):
        self.run, self.o = run, run.opts
        self.path = os.path.join(run.work, "clients.jsonl")
        self.clients_dir = os.environ.get("BENCH_CLIENTS_DIR") or os.path.join(run.root, "tests", "resp_clients")
        self.records = []

    def write(self, rec):
        self.records.append(rec)
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if rec["status"] == "ok":
            print(f"  -> {rec['throughput_per_s']:.0f}/s", file=sys.stderr, flush=True)
        else:
            print(f"  -> FAILED: {rec['error']}", file=sys.stderr, flush=True)
            self.run.problem(f"clients: {rec['cell']} on {rec['system']} (pair {rec['pair'] + 1}) failed: {rec['error']}")

    def rec(self, pair, system, cell, status, throughput=None, error=None, detail=None):
        return {"pair": pair, "system": system, "cell": cell, "status": status, "throughput_per_s": throughput,
                "error": error, "detail": detail}

    def app_cell(self, pair, system, app, redis_url):
        o, run = self.o, self.run
        base = os.path.join(run.work, "cells", f"clients-{pair}-{system}-{app}")
        say(f"clients: pair {pair + 1}, {LABELS[system]}: the {app} app "
            f"({o.warmup}s warm-up + {o.duration}s, one-thread load tool)")
        try:
            with running_app(run, self.clients_dir, app, redis_url, base) as listen:
                argv = cells.bench_command(run.bin, f"http://{listen}", "write", CONNECTIONS, o.duration, o.warmup,
                                           "session", threads=1)
                with open(base + ".cmd", "w") as f:
                    f.write(cells.quoted(argv))
                rc = run.run_child(argv, base + ".json", base + ".err")
                m = cells.cell_record(system, "session", "write", CONNECTIONS, rc, base + ".json", base + ".err")
                r = m.get("result") or {}
                self.write(self.rec(pair, system, app, m["status"], r.get("throughput_per_s"), m.get("error"),
                                    {k: r.get(k) for k in ("p50_ms", "p99_ms", "errors")}))
        except AppFailed as e:
            self.write(self.rec(pair, system, app, "failed", error=str(e)))
        nap(1)

    def set_cell(self, pair, system, host, port):
        o, run = self.o, self.run
        base = os.path.join(run.work, "cells", f"clients-{pair}-{system}-set-p16")
        say(f"clients: pair {pair + 1}, {LABELS[system]}: {CELL_LABELS['set-p16']}")
        requests, rec = 20000, None
        for step in ("probe", "measured"):
            argv = pipelined_set_command(host, port, requests)
            with open(f"{base}.{step}.cmd", "w") as f:
                f.write(cells.quoted(argv))
            t0 = time.monotonic()
            rc = run.run_child(argv, f"{base}.{step}.csv", f"{base}.{step}.err")
            took = time.monotonic() - t0
            out = _read(f"{base}.{step}.csv")
            errs = server_errors(out) + server_errors(_read(f"{base}.{step}.err"))
            row = parse_csv(out).get("set")
            if rc != 0 or errs or not row or "throughput_per_s" not in row:
                why = errs[0] if errs else f"exit {rc}" if rc != 0 else "no CSV row for SET"
                rec = self.rec(pair, system, "set-p16", "failed", error=why)
                break
            rec = self.rec(pair, system, "set-p16", "ok", row["throughput_per_s"],
                           detail={"requests": requests, "elapsed_s": round(took, 3),
                                   **{k: row.get(k) for k in ("p50_ms", "p99_ms")}})
            # the measured run: about --duration seconds at the probe's rate
            requests = max(20000, min(int(row["throughput_per_s"] * o.duration), 50_000_000))
        self.write(rec)

    def turn(self, pair, system):
        run = self.run
        if system == "sessionraft":
            sr = Sessionraft(run, f"clients-sessionraft-{pair}", run.bin, resp=True).setup()
            try:
                sr.up()
                node = sr.find_leader((1, 2, 3))
                if node is None:
                    raise Usage("no leader after the cluster came up")
                host, port = sr.resp_addr(node).rsplit(":", 1)
                say(f"clients: sessionraft's clients go to node {node}, the leader, on {host}:{port}")
                for app in ("express", "flask"):
                    self.app_cell(pair, system, app, f"redis://{host}:{port}")
                self.set_cell(pair, system, host, int(port))
            finally:
                sr.down()
        else:
            r = Redis(run, name=f"clients-redis-{pair}", persistence=DURABLE, app=False)
            r.up()
            try:
                for app in ("express", "flask"):
                    self.app_cell(pair, system, app, f"redis://127.0.0.1:{r.port}")
                self.set_cell(pair, system, "127.0.0.1", r.port)
            finally:
                r.down()

    def go(self):
        pairs = self.o.pairs
        open(self.path, "w").close()
        for pair, system in plan_clients(pairs):
            self.turn(pair, system)
        text = table(self.records, pairs)
        with open(os.path.join(self.run.work, "clients.md"), "w") as f:
            f.write(text)
        sys.stdout.write(text)
        sys.stdout.flush()


def run_clients(run):
    """The `clients` part of a run: WORK/clients.jsonl, WORK/clients.md."""
    ClientsPart(run).go()


"""The `resp` part (issue 20): sessionraft's Redis-protocol door measured with Debian's
`redis-benchmark -t set|get` (one load thread), side by side with redis-server as a cache and as a
durable store, and with etcd's puts and linearizable ranges (`sessionraft bench --kind etcd`, one
load thread too).

The pure half (the plan, the redis-benchmark command and its CSV, the requests a cell needs, a
cell's record) is tested on its own; run_resp() runs the part on a Run (run.py)."""

import csv
import io
import json
import os
import subprocess
import sys
import time

from . import cells, procs
from .cli import VALUE_BYTES
from .common import Usage, nap, say
from .systems import Etcd, Redis, Sessionraft

CONNECTIONS = (32, 256)
TESTS = ("set", "get")                       # in this order per connection count: GET reads what SET wrote
LOAD_THREADS = 1
KEYSPACE = 100000                            # redis-benchmark -r: keys key:000000000000 .. key:000000099999
SYSTEMS = ("sessionraft", "redis-cache", "redis-durable", "etcd")
LABELS = {"sessionraft": "sessionraft RESP (3 nodes, to the leader)", "redis-cache": "Redis, cache",
          "redis-durable": "Redis, durable", "etcd": "etcd (3 members)"}
# the persistence of each redis-server (the rest of its command line as in the matrix)
REDIS_PERSISTENCE = {"redis-cache": ("--save", "", "--appendonly", "no"),
                     "redis-durable": ("--save", "", "--appendonly", "yes", "--appendfsync", "always")}
ETCD_WORKLOAD = {"set": "write", "get": "read"}  # put; linearizable range
PROBE_MIN_REQUESTS = 2000
MAX_REQUESTS = 50_000_000


def plan_resp(connections=CONNECTIONS):
    """(system, test, connections) of every cell, in the order they run: per system (each
    started fresh), per connection count, SET then GET."""
    return [(s, t, c) for s in SYSTEMS for c in connections for t in TESTS]


def cell_name(system, test, connections):
    return f"resp-{system}-{test}-{connections}"


def benchmark_command(host, port, test, connections, requests, value_bytes=200, threads=LOAD_THREADS,
                      keyspace=KEYSPACE, tls_ca=None):
    """The argv of one redis-benchmark run: TEST (set or get) over CONNECTIONS connections,
    REQUESTS requests in all, VALUE_BYTES-byte values, random keys out of KEYSPACE, THREADS load
    threads (None: the tool's default, one event loop), CSV on stdout; over TLS verifying TLS_CA
    when given."""
    argv = ["redis-benchmark", "-h", host, "-p", str(port), "-t", test, "-c", str(connections),
            "-n", str(requests), "-d", str(value_bytes), "-r", str(keyspace)]
    if tls_ca is not None:
        argv += ["--tls", "--cacert", tls_ca]
    if threads is not None:
        argv += ["--threads", str(threads)]
    return argv + ["--csv"]


def supports_threads(help_text):
    """redis-benchmark's --help lists --threads (6.0 and later)."""
    return "--threads" in help_text


_CSV_FIELDS = {"rps": "throughput_per_s", "avg_latency_ms": "avg_ms", "min_latency_ms": "min_ms",
               "p50_latency_ms": "p50_ms", "p95_latency_ms": "p95_ms", "p99_latency_ms": "p99_ms",
               "max_latency_ms": "max_ms"}


def parse_csv(text):
    """redis-benchmark --csv output: {test (lower case): {throughput_per_s, avg_ms, min_ms, p50_ms,
    p95_ms, p99_ms, max_ms}}. Redis 6's two-column form ("SET","12345.67") gives the throughput
    alone. Lines that are not CSV rows of a test (warnings, progress) are skipped."""
    out = {}
    rows = [r for r in csv.reader(io.StringIO(text.replace("\r", "\n"))) if r]
    header = None
    for r in rows:
        if r[0] == "test":
            header = r
            continue
        if len(r) < 2:
            continue
        try:
            nums = [float(x) for x in r[1:]]
        except ValueError:
            continue
        names = header[1:] if header and len(header) == len(r) else ["rps"]
        out[r[0].lower()] = {_CSV_FIELDS.get(k, k): v for k, v in zip(names, nums)}
    return out


def server_errors(text):
    """The `Error from server: ...` lines redis-benchmark printed (7.0 stops at the first)."""
    return [line.strip() for line in text.replace("\r", "\n").splitlines() if line.startswith("Error from server")]


def requests_for(rate, seconds, connections):
    """Requests for a run of about SECONDS at RATE per second: at least 10 per connection and
    PROBE_MIN_REQUESTS, at most MAX_REQUESTS."""
    n = int(rate * seconds) if rate and rate > 0 else 0
    return min(max(n, 10 * connections, PROBE_MIN_REQUESTS), MAX_REQUESTS)


def record(system, test, connections, rc, out_text, err_text, *, requests, elapsed_s, tool, threads, target,
           node=None):
    """The record of one redis-benchmark cell: ok when it exited 0, printed no server error and a
    CSV row for TEST; else failed, with why."""
    rec = {"system": system, "test": test, "connections": int(connections), "status": "failed", "error": None,
           "load_tool": tool, "load_threads": threads, "requests": requests, "elapsed_s": elapsed_s,
           "target": target, "node": node, "result": None}
    row = parse_csv(out_text).get(test)
    errs = server_errors(err_text) + server_errors(out_text)
    if rc == 0 and row and not errs and "throughput_per_s" in row:
        rec["status"] = "ok"
        rec["result"] = {**row, "errors": 0}
        return rec
    if errs:
        why = f"server error: {errs[0][len('Error from server: '):] if errs[0].startswith('Error from server: ') else errs[0]}"
    elif rc != 0:
        tail = [x for x in err_text.replace("\r", "\n").splitlines() if x.strip()][-3:]
        why = f"exit {rc}" + (": " + " / ".join(tail) if tail else "")
    else:
        why = f"no CSV row for {test.upper()} on stdout"
    rec["error"] = why
    return rec


def etcd_record(system, test, connections, matrix_rec, *, tool, threads, target):
    """A `sessionraft bench --kind etcd` cell (cells.cell_record) as a record of this part."""
    r = matrix_rec.get("result") or {}
    rec = {"system": system, "test": test, "connections": int(connections), "status": matrix_rec["status"],
           "error": matrix_rec.get("error"), "load_tool": tool, "load_threads": threads, "requests": r.get("ok"),
           "elapsed_s": r.get("duration_s"), "target": target, "node": None, "result": None}
    if matrix_rec["status"] == "ok":
        rec["result"] = {k: r.get(k) for k in ("throughput_per_s", "p50_ms", "p99_ms", "max_ms", "errors")}
        rec["result"]["first_error"] = r.get("first_error")
    return rec


def failed_record(system, test, connections, why, *, tool, threads, target, node=None):
    return {"system": system, "test": test, "connections": int(connections), "status": "failed", "error": why,
            "load_tool": tool, "load_threads": threads, "requests": None, "elapsed_s": None, "target": target,
            "node": node, "result": None}


def cell_line(rec):
    r = rec["result"] or {}
    if rec["status"] == "ok":
        return (f"  -> {r['throughput_per_s']:.0f}/s, p50 {r.get('p50_ms') or 0:.2f} ms, p99 {r.get('p99_ms') or 0:.2f} ms"
                + (f", {rec['requests']:,} requests in {rec['elapsed_s']:.1f} s" if rec.get("elapsed_s") else ""))
    return f"  -> FAILED: {rec['error']}"


# ---------------------------------------------------------------------------------------------
# the part on a run


def ping(host, port, timeout_s=3, tls_ca=None):
    """`redis-cli PING` against HOST:PORT (over TLS verifying TLS_CA when given): (True, 'PONG') or
    (False, what came back)."""
    tls = ["--tls", "--cacert", tls_ca] if tls_ca is not None else []
    try:
        r = subprocess.run(["redis-cli", "-h", host, "-p", str(port), *tls, "PING"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout_s} s"
    except OSError as e:
        return False, str(e)
    text = r.stdout.decode(errors="replace").strip()
    return text == "PONG", text or f"exit {r.returncode}, nothing printed"


class RespPart:
    def __init__(self, run):
        self.run, self.o = run, run.opts
        self.path = os.path.join(run.work, "resp.jsonl")
        self.threads = LOAD_THREADS
        self.version = ""

    def write(self, rec, problem=True):
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(cell_line(rec), file=sys.stderr, flush=True)
        if rec["status"] != "ok" and problem:
            self.run.problem(f"resp: {rec['system']} {rec['test'].upper()}/{rec['connections']} failed: {rec['error']}")

    def tool(self):
        return f"redis-benchmark --threads {self.threads}" if self.threads is not None else "redis-benchmark"

    def bench_once(self, base, host, port, test, c, n, tls_ca=None):
        """One redis-benchmark run (stdout to BASE.csv, stderr to BASE.err): (exit status, stdout,
        stderr, seconds). Stopped (by pid) when it takes far longer than its requests should."""
        argv = benchmark_command(host, port, test, c, n, VALUE_BYTES, self.threads, tls_ca=tls_ca)
        with open(base + ".cmd", "w") as f:
            f.write(cells.quoted(argv))
        limit = 60 + 4 * (self.o.duration + self.o.warmup)
        t0 = time.monotonic()
        with open(base + ".csv", "wb") as fo, open(base + ".err", "wb") as fe:
            p = procs.start(argv, stdout=fo, stderr=fe)
        self.run.child = (p, "redis-benchmark")
        try:
            rc = p.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            procs.stop(p, "redis-benchmark")
            rc = None
        self.run.child = None
        elapsed = time.monotonic() - t0
        out, err = _read(base + ".csv"), _read(base + ".err")
        if rc is None:
            err += f"\nstopped after {limit} s (the server stopped answering?)"
            rc = 124
        return (rc if rc >= 0 else 128 - rc), out, err, elapsed

    def cell(self, system, test, c, host, port, node=None, tls_ca=None, name=None):
        """Probe (which warms up too), warm-up sized from the probe, then the measured run sized
        for --duration seconds from the last rate (over TLS verifying TLS_CA when given); the
        record, also written. NAME: the cell's files (default from system, test, c)."""
        o = self.o
        base = os.path.join(self.run.work, "cells", name or cell_name(system, test, c))
        target = f"{host}:{port}"
        say(f"resp: {LABELS[system]}: {test.upper()}, {c} connections, {self.tool()} "
            f"(probe + {o.warmup}s warm-up + ~{o.duration}s)")
        n = max(PROBE_MIN_REQUESTS, 20 * c)
        rc, out, err, el = self.bench_once(base + ".probe", host, port, test, c, n, tls_ca)
        rec = record(system, test, c, rc, out, err, requests=n, elapsed_s=round(el, 3), tool=self.tool(),
                     threads=self.threads, target=target, node=node)
        if rec["status"] == "ok" and o.warmup > 0:
            n = requests_for(rec["result"]["throughput_per_s"], o.warmup, c)
            rc, out, err, el = self.bench_once(base + ".warmup", host, port, test, c, n, tls_ca)
            rec = record(system, test, c, rc, out, err, requests=n, elapsed_s=round(el, 3), tool=self.tool(),
                         threads=self.threads, target=target, node=node)
        if rec["status"] == "ok":
            n = requests_for(rec["result"]["throughput_per_s"], o.duration, c)
            rc, out, err, el = self.bench_once(base, host, port, test, c, n, tls_ca)
            rec = record(system, test, c, rc, out, err, requests=n, elapsed_s=round(el, 3), tool=self.tool(),
                         threads=self.threads, target=target, node=node)
        self.write(rec)
        nap(1)
        return rec

    def sessionraft(self, conns):
        run = self.run
        sr = None
        started = False
        why = None
        node = addr = None
        try:
            sr = Sessionraft(run, "resp-sessionraft", run.bin, resp=True).setup()
            started = True
            sr.up()
            node = sr.find_leader((1, 2, 3))
            if node is None:
                why = "no leader after the cluster came up"
            else:
                addr = sr.resp_addr(node)
                ok, answer = ping(*addr.rsplit(":", 1), tls_ca=sr.ca)
                if not ok:
                    why = (f"node {node} (the leader) does not answer the Redis protocol on its resp_addr {addr}: "
                           f"PING -> {answer} (a binary without issue 20's RESP listener?)")
        except Usage as e:
            why = no_resp_listener(str(e))
        if why is None:
            say(f"resp: sessionraft's load goes to node {node}, the leader, on {addr}")
            with open(os.path.join(run.work, "resp.json"), "r+") as f:
                meta = json.load(f)
                meta.update(sessionraft_node=node, sessionraft_resp_addr=addr)
                f.seek(0)
                f.truncate()
                json.dump(meta, f)
            host, port = addr.rsplit(":", 1)
            for c in conns:
                for t in TESTS:
                    self.cell("sessionraft", t, c, host, int(port), node, tls_ca=sr.ca)
        else:
            self.run.problem(f"resp: sessionraft not measured: {why}")
            for c in conns:
                for t in TESTS:
                    self.write(failed_record("sessionraft", t, c, why, tool=self.tool(), threads=self.threads,
                                             target=addr, node=node), problem=False)
        if started:
            sr.down()

    def redis(self, system, conns):
        r = Redis(self.run, name=f"resp-{system}", persistence=REDIS_PERSISTENCE[system], app=False)
        r.up()
        for c in conns:
            for t in TESTS:
                self.cell(system, t, c, "127.0.0.1", r.port)
        r.down()

    def etcd(self, conns):
        run, o = self.run, self.o
        etcd = Etcd(run)
        etcd.up()
        tool = f"sessionraft bench --kind etcd --threads {LOAD_THREADS}"
        for c in conns:
            for t in TESTS:
                w = ETCD_WORKLOAD[t]
                base = os.path.join(run.work, "cells", cell_name("etcd", t, c))
                argv = cells.bench_command(run.bin, etcd.endpoints(), w, c, o.duration, o.warmup, "etcd",
                                           VALUE_BYTES, LOAD_THREADS)
                say(f"resp: etcd: {w} ({'put' if t == 'set' else 'linearizable range'}), {c} connections, "
                    f"{LOAD_THREADS}-thread load tool ({o.warmup}s warm-up + {o.duration}s)")
                with open(base + ".cmd", "w") as f:
                    f.write(cells.quoted(argv))
                rc = run.run_child(argv, base + ".json", base + ".err")
                m = cells.cell_record("etcd", "etcd", w, c, rc, base + ".json", base + ".err")
                self.write(etcd_record("etcd", t, c, m, tool=tool, threads=LOAD_THREADS, target=etcd.endpoints()))
                nap(1)
        etcd.down()

    def detect_tool(self):
        """redis-benchmark's version, and whether it takes --threads."""
        help_text = _out(["redis-benchmark", "--help"])
        self.threads = LOAD_THREADS if supports_threads(help_text) else None
        self.version = _out(["redis-benchmark", "--version"]).strip()

    def go(self):
        self.detect_tool()
        open(self.path, "w").close()
        with open(os.path.join(self.run.work, "resp.json"), "w") as f:
            json.dump({"redis_benchmark": self.version, "load_threads": self.threads or 1,
                       "threads_option": self.threads is not None, "keyspace": KEYSPACE,
                       "value_bytes": VALUE_BYTES, "sessionraft_node": None,
                       "sessionraft_resp_addr": None}, f)
        conns = list(CONNECTIONS)
        self.sessionraft(conns)
        self.redis("redis-cache", conns)
        self.redis("redis-durable", conns)
        self.etcd(conns)


def no_resp_listener(why):
    """A failed set-up's message, shorter when the binary rejects the nodes' resp_addr (it was
    built without the Redis-protocol listener)."""
    if "resp_addr" in why and "unknown field" in why:
        return ("this sessionraft binary has no Redis-protocol listener: check-config rejects [[node]] resp_addr "
                "(rebuild with the RESP server of issue 20)")
    return why


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _out(cmd):
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError:
        return ""
    return r.stdout.decode(errors="replace")


def run_resp(run):
    """The `resp` part of a run: its cells in WORK/resp.jsonl, its settings in WORK/resp.json."""
    RespPart(run).go()

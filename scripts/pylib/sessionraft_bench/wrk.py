"""The `wrk` part (issue 29, --only wrk): the HTTP ratio cells again with a second load tool,
`wrk -t1` (Debian's wrk 4, one thread), the two systems alternating over --pairs pairs (default
3; the first system of a pair alternates; each system fresh for each of its turns):

  reads-32, reads-256   GET /api/counter with a session cookie: sessionraft (a fresh 3-node
                        cluster) against examples/redis_app (actix-session's RedisSessionStore
                        over redis-server without persistence), 32 and 256 connections
  express-32            POST /api/counter on the Express app of tests/resp_clients/express
                        (express-session + connect-redis + node-redis) over sessionraft's
                        Redis-protocol door (the leader) against over one durable redis-server
                        (--appendonly yes --appendfsync always), 32 connections

wrk drives one address with one thread, so the cluster's read cells go to one node: a follower
(its reads are local token reads) unless BENCH_WRK_NODE=leader. The sessions are made before the
clock starts, one per connection (a POST /api/counter each, through curl, the cookie kept), and
a generated Lua script sends them round robin; its done() prints one JSON line (requests,
duration, errors by kind, latency percentiles), which is what the cell's numbers come from (wrk's
own text is parsed too, as a cross-check). A warm-up run of --warmup seconds precedes each
measured run of --duration seconds. Throughput counts 2xx/3xx answers only (wrk's requests minus
its "Non-2xx or 3xx responses").

Per cell each pair's ratio sessionraft/baseline, the median and the spread, in WORK/wrk.md
(printed) and the records in WORK/wrk.jsonl.

The pure half (the Lua script, the command, the parsing, the table) is tested on its own;
run_wrk() runs the part on a Run (run.py)."""

import json
import os
import re
import sys

from .clients import DURABLE, AppFailed, pairs_table, plan_clients, running_app
from .common import Usage, nap, say
from .systems import Redis, Sessionraft, curl

SYSTEMS = ("sessionraft", "baseline")
CELLS = ("reads-32", "reads-256", "express-32")
CELL_LABELS = {"reads-32": "session reads, GET /api/counter, 32 conns (sessionraft vs the actix-session + Redis app)",
               "reads-256": "session reads, GET /api/counter, 256 conns (sessionraft vs the actix-session + Redis app)",
               "express-32": "Express app, POST /api/counter, 32 conns (over sessionraft's door vs durable Redis)"}
THREADS = 1
TIMEOUT_S = 10


def cell_connections(cell):
    """The connections of a cell (its name ends with them)."""
    return int(cell.rsplit("-", 1)[1])


def lua_string(text):
    """TEXT as a Lua string literal (double quotes, backslashes and quotes escaped)."""
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"not a one-line value: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lua_script(method, path, cookies):
    """The wrk script of a cell: METHOD PATH (a POST with an empty body, Content-Length: 0), each
    request with the next of COOKIES (name=value pairs) round robin; done() prints one JSON line
    `{"wrk": {...}}` with the run's counts and latencies (µs)."""
    if method not in ("GET", "POST"):
        raise ValueError(f"method {method}")
    if not cookies:
        raise ValueError("no session cookie")
    body = '""' if method == "POST" else "nil"
    lines = [f"-- scripts/bench.sh, the wrk part: {method} {path}, round robin over {len(cookies)} session cookies",
             "local cookies = {"]
    lines += [f"  {lua_string(c)}," for c in cookies]
    lines += ["}",
              "local n = 0",
              "request = function()",
              "  n = n % #cookies + 1",
              f"  return wrk.format({lua_string(method)}, {lua_string(path)}, {{ [\"Cookie\"] = cookies[n] }}, {body})",
              "end",
              "done = function(summary, latency, requests)",
              "  local e = summary.errors",
              "  local f = math.floor",
              '  io.write(string.format(\'{"wrk": {"duration_us": %d, "requests": %d, "bytes": %d, "connect": %d, '
              '"read": %d, "write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
              '"mean_us": %d}}\\n\',',
              "    f(summary.duration), f(summary.requests), f(summary.bytes), f(e.connect), f(e.read), f(e.write),",
              "    f(e.status), f(e.timeout), f(latency:percentile(50)), f(latency:percentile(99)), f(latency.max),",
              "    f(latency.mean)))",
              "end", ""]
    return "\n".join(lines)


def wrk_command(url, connections, seconds, script, threads=THREADS, timeout_s=TIMEOUT_S):
    """The argv of one wrk run."""
    return ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", f"{timeout_s}s",
            "--latency", "-s", script, url]


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def wrk_ms(text):
    """A wrk duration (`812.00us`, `1.23ms`, `2.00s`, `1.00m`) in ms."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk_text(text):
    """wrk's own report: requests, seconds, requests_per_s (wrk's, every answer), non_2xx,
    socket errors (connect, read, write, timeout: 0 when not printed), p50_ms and p99_ms (with
    --latency), latency_avg_ms. {} when TEXT has no "requests in" line."""
    out = {}
    m = re.search(r"^\s*([0-9]+) requests in ([0-9.]+)(us|ms|s|m|h),", text, re.M)
    if not m:
        return {}
    out["requests"] = int(m.group(1))
    out["seconds"] = wrk_ms(m.group(2) + m.group(3)) / 1000
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    out["requests_per_s"] = float(m.group(1)) if m else None
    m = re.search(r"^\s*Non-2xx or 3xx responses:\s+([0-9]+)", text, re.M)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)", text)
    out.update(zip(("connect", "read", "write", "timeout"), (int(x) for x in m.groups()) if m else (0, 0, 0, 0)))
    m = re.search(r"^\s*Latency\s+([0-9.]+[a-z]+)\s", text, re.M)
    out["latency_avg_ms"] = wrk_ms(m.group(1)) if m else None
    for q in ("50", "99"):
        m = re.search(rf"^\s*{q}%\s+([0-9.]+[a-z]+)\s*$", text, re.M)
        out[f"p{q}_ms"] = wrk_ms(m.group(1)) if m else None
    return out


def parse_wrk_json(text):
    """The line done() printed, as a dict (None when absent)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith('{"wrk"'):
            try:
                return json.loads(line)["wrk"]
            except (ValueError, KeyError):
                return None
    return None


def cell_result(text):
    """A cell's numbers from wrk's stdout: (result, None) or (None, why). Throughput counts the
    2xx/3xx answers over the run's duration; errors = non-2xx/3xx + socket errors."""
    j, t = parse_wrk_json(text), parse_wrk_text(text)
    if j is None:
        return None, "no JSON line from the script's done() on wrk's stdout"
    secs = j["duration_us"] / 1e6
    if secs <= 0:
        return None, "wrk ran for 0 s"
    ok = j["requests"] - j["status"]
    errors = j["status"] + j["connect"] + j["read"] + j["write"] + j["timeout"]
    if ok <= 0:
        return None, f"no 2xx answer ({j['status']} non-2xx, socket errors {errors - j['status']})"
    return {"throughput_per_s": round(ok / secs, 1), "ok": ok, "errors": errors, "seconds": round(secs, 3),
            "p50_ms": j["p50_us"] / 1000, "p99_ms": j["p99_us"] / 1000, "max_ms": j["max_us"] / 1000,
            "wrk_requests_per_s": t.get("requests_per_s")}, None


def set_cookie_pair(headers_text):
    """The name=value of the first Set-Cookie in response headers (None without one)."""
    m = re.search(r"^set-cookie:\s*([^;\r\n]+)", headers_text, re.M | re.I)
    return m.group(1).strip() if m and "=" in m.group(1) else None


def table(records, pairs, node_role):
    return pairs_table("## A second load tool: wrk -t1, alternating pairs (issue 29)",
                       f"`wrk -t{THREADS}` (one thread) with a generated Lua script, one session cookie per "
                       f"connection; sessionraft's read cells on one node (a {node_role}), the baseline's on the "
                       "actix-session + Redis app; the Express cell over sessionraft's door (the leader) vs durable "
                       "redis-server. Each system fresh for each turn.",
                       CELLS, CELL_LABELS, SYSTEMS, ("sessionraft /s", "baseline /s"), records, pairs)


# ---------------------------------------------------------------------------------------------
# the part on a run


class WrkPart:
    def __init__(self, run):
        self.run, self.o = run, run.opts
        self.path = os.path.join(run.work, "wrk.jsonl")
        self.clients_dir = os.environ.get("BENCH_CLIENTS_DIR") or os.path.join(run.root, "tests", "resp_clients")
        self.node_role = os.environ.get("BENCH_WRK_NODE") or "follower"
        if self.node_role not in ("follower", "leader"):
            raise Usage("BENCH_WRK_NODE must be follower or leader")
        self.records = []

    def write(self, rec):
        self.records.append(rec)
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if rec["status"] == "ok":
            print(f"  -> {rec['throughput_per_s']:.0f}/s", file=sys.stderr, flush=True)
        else:
            print(f"  -> FAILED: {rec['error']}", file=sys.stderr, flush=True)
            self.run.problem(f"wrk: {rec['cell']} on {rec['system']} (pair {rec['pair'] + 1}) failed: {rec['error']}")

    def cookies(self, url, n):
        """N sessions made through URL (POST), their cookies."""
        out = []
        for _ in range(n):
            c = set_cookie_pair(curl(["-X", "POST", "-D", "-", "-o", "/dev/null", url], 5))
            if c is None:
                raise AppFailed(f"POST {url} set no session cookie")
            out.append(c)
        return out

    def cell(self, pair, system, cell, base_url, method, target_label):
        o, run = self.o, self.run
        c = cell_connections(cell)
        base = os.path.join(run.work, "cells", f"wrk-{pair}-{system}-{cell}")
        rec = {"pair": pair, "system": system, "cell": cell, "status": "failed", "throughput_per_s": None,
               "error": None, "target": target_label, "result": None}
        url = f"{base_url}/api/counter"
        say(f"wrk: pair {pair + 1}, {system} ({target_label}): {cell} ({o.warmup}s warm-up + {o.duration}s)")
        try:
            cookies = self.cookies(url, c)
        except AppFailed as e:
            rec["error"] = str(e)
            return self.write(rec)
        script = base + ".lua"
        with open(script, "w") as f:
            f.write(lua_script(method, "/api/counter", cookies))
        if o.warmup > 0:
            run.run_child(wrk_command(url, c, o.warmup, script), base + ".warmup.out")
        argv = wrk_command(url, c, o.duration, script)
        with open(base + ".cmd", "w") as f:
            f.write(" ".join(argv) + "\n")
        rc = run.run_child(argv, base + ".out", base + ".err")
        with open(base + ".out", errors="replace") as f:
            result, why = cell_result(f.read())
        if rc != 0 or result is None:
            rec["error"] = why or f"exit {rc}"
        else:
            rec.update(status="ok", throughput_per_s=result["throughput_per_s"], result=result)
        self.write(rec)
        nap(1)

    def express(self, pair, system, redis_url):
        base = os.path.join(self.run.work, "cells", f"wrk-{pair}-{system}-express-app")
        try:
            with running_app(self.run, self.clients_dir, "express", redis_url, base) as listen:
                self.cell(pair, system, "express-32", f"http://{listen}", "POST", f"Express app over {redis_url}")
        except AppFailed as e:
            self.write({"pair": pair, "system": system, "cell": "express-32", "status": "failed",
                        "throughput_per_s": None, "error": str(e), "target": redis_url, "result": None})

    def turn(self, pair, system):
        run = self.run
        if system == "sessionraft":
            sr = Sessionraft(run, f"wrk-sessionraft-{pair}", run.bin, resp=True).setup()
            try:
                sr.up()
                leader = sr.find_leader((1, 2, 3))
                if leader is None:
                    raise Usage("no leader after the cluster came up")
                node = leader if self.node_role == "leader" else next(i for i in (1, 2, 3) if i != leader)
                for cell in ("reads-32", "reads-256"):
                    self.cell(pair, system, cell, f"{sr.scheme}://{sr.addr(node)}", "GET",
                              f"node {node}, the {self.node_role}")
                host, port = sr.resp_addr(leader).rsplit(":", 1)
                self.express(pair, system, f"redis://{host}:{port}")
            finally:
                sr.down()
        else:
            if not run.redis_app:
                for cell in ("reads-32", "reads-256"):
                    self.write({"pair": pair, "system": system, "cell": cell, "status": "failed",
                                "throughput_per_s": None, "error": f"no redis_app at {run.src_app}", "result": None})
            else:
                r = Redis(run, name=f"wrk-redis-{pair}")
                r.up()
                try:
                    for cell in ("reads-32", "reads-256"):
                        self.cell(pair, system, cell, r.url(), "GET", "the actix-session + Redis app")
                finally:
                    r.down()
            r = Redis(run, name=f"wrk-redis-durable-{pair}", persistence=DURABLE, app=False)
            r.up()
            try:
                self.express(pair, system, f"redis://127.0.0.1:{r.port}")
            finally:
                r.down()

    def go(self):
        pairs = self.o.pairs
        open(self.path, "w").close()
        for pair, system in plan_clients(pairs, SYSTEMS):
            self.turn(pair, system)
        text = table(self.records, pairs, self.node_role)
        with open(os.path.join(self.run.work, "wrk.md"), "w") as f:
            f.write(text)
        sys.stdout.write(text)
        sys.stdout.flush()


def run_wrk(run):
    """The `wrk` part of a run: WORK/wrk.jsonl, WORK/wrk.md."""
    WrkPart(run).go()


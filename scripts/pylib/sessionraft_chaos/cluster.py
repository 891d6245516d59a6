"""The run's cluster: scripts/cluster.sh commands (output appended to ops.log), and the nodes'
state over HTTP (/cluster/status, /readyz, HAProxy's stats CSV)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import procs
from .config import Layout
from .record import Recorder, now_ms
from .schedule import NODE_IDS

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def trust_ca(ca: Path) -> None:
    """https:// requests of this process verify against the cluster CA alone (CHAOS_TLS=1)."""
    global _OPENER
    ctx = ssl.create_default_context(cafile=str(ca))
    _OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                          urllib.request.HTTPSHandler(context=ctx))


def http(url: str, timeout: float, method: str = "GET",
         headers: dict | None = None) -> tuple[int, str]:
    """(status, body); status 0 when there was no answer."""
    req = urllib.request.Request(url, method=method, headers=headers or {},
                                 data=b"" if method == "POST" else None)
    try:
        with _OPENER.open(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        try:
            body = e.read().decode(errors="replace")
        except Exception:  # noqa: BLE001 - the body of an error is a detail
            body = ""
        return e.code, body
    except Exception as e:  # noqa: BLE001 - refused, reset, timed out: no answer
        return 0, str(e)


@dataclass
class NodeStatus:
    role: str = ""
    term: int | None = None
    leader: int | None = None
    applied: int | None = None
    last: int | None = None
    snapshot: int | None = None


def parse_status(body: str) -> NodeStatus:
    """/cluster/status JSON (an empty status, role '', when it is not)."""
    try:
        j = json.loads(body)
    except ValueError:
        return NodeStatus()
    if not isinstance(j, dict):
        return NodeStatus()

    def num(k):
        v = j.get(k)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    role = j.get("role")
    return NodeStatus(role=role if isinstance(role, str) else "", term=num("term"),
                      leader=num("leader"), applied=num("applied_index"),
                      last=num("last_log_index"), snapshot=num("snapshot_index"))


def parse_lb_csv(csv: str, node_id: int) -> str:
    """HAProxy's status (UP, DOWN, ...) of server nodeN of backend 'nodes' in its stats CSV."""
    for line in csv.splitlines():
        f = line.split(",")
        if len(f) > 17 and f[0] == "nodes" and f[1] == f"node{node_id}":
            return f[17]
    return ""


class Cluster:
    def __init__(self, cluster_sh: Path, config: Path, run_dir: Path, bin_path: Path,
                 ops_log: Path, layout: Layout):
        self.cluster_sh = cluster_sh
        self.config = config
        self.run_dir = run_dir
        self.bin = bin_path
        self.ops_log = ops_log
        self.layout = layout

    # ------------------------------------------------------------------ cluster.sh

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(SESSIONRAFT_CONFIG=str(self.config), SESSIONRAFT_RUN_DIR=str(self.run_dir),
                   SESSIONRAFT_BIN=str(self.bin))
        return env

    def sh(self, *args: str) -> int:
        """scripts/cluster.sh ARGS, output appended to ops.log; its exit code."""
        return procs.run_logged([str(self.cluster_sh), *args], self.ops_log, self.env())

    def sh_lines(self, args: list[str], on_line: Callable[[str], None]) -> int:
        """scripts/cluster.sh ARGS, each line of its output (stdout and stderr) appended to
        ops.log and given to on_line; its exit code. A signal meanwhile stops the calls to
        on_line, but the command runs to its end (its output still logged), then it is raised."""
        p = subprocess.Popen([str(self.cluster_sh), *args], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env(),
                             text=True, errors="replace")
        pending: procs.Interrupted | None = None
        with open(self.ops_log, "a") as log:
            while True:
                try:
                    line = p.stdout.readline()
                    if not line:
                        break
                    log.write(line)
                    log.flush()
                    if pending is None:
                        on_line(line.rstrip("\n"))
                except procs.Interrupted as e:
                    pending = pending or e
        p.stdout.close()
        try:
            rc = procs.exit_code(procs.wait_through(p))
        except procs.Interrupted as e:
            pending = pending or e
        if pending is not None:
            raise pending
        return rc

    # ------------------------------------------------------------------ state

    def node_pid(self, n: int) -> int | None:
        return procs.node_pid(self.run_dir, n)

    def status(self, n: int) -> NodeStatus:
        code, body = http(f"{self.layout.http_url(n)}/cluster/status", 1)
        return parse_status(body) if code == 200 else NodeStatus()

    def ready(self, n: int) -> bool:
        return http(f"{self.layout.http_url(n)}/readyz", 1)[0] == 200

    def lb_status(self, n: int) -> str:
        code, body = http(f"{self.layout.lb_url}/haproxy-stats;csv", 2)
        return parse_lb_csv(body, n) if code == 200 else ""

    def find_leader(self, timeout_s: float = 15) -> int | None:
        """The node that says it leads (the highest term), polling up to timeout_s."""
        deadline = now_ms() + timeout_s * 1000
        while True:
            best, best_term = None, -1
            for n in NODE_IDS:
                st = self.status(n)
                if st.role == "leader" and (st.term or 0) > best_term:
                    best, best_term = n, st.term or 0
            if best is not None:
                return best
            if now_ms() >= deadline:
                return None
            time.sleep(0.2)

    def wait_healthy(self, rec: Recorder, timeout_s: int, problems: list[str],
                     sleep: Callable[[float], None] = time.sleep) -> int | None:
        """Waits until every node runs, is ready, follows one leader, has applied the leader's
        last log index as of the first look, and is UP in HAProxy. A node whose process exited on
        its own is recorded and started again. Returns the ms it took, None after timeout_s."""
        t0 = now_ms()
        deadline = t0 + timeout_s * 1000
        target = None
        while True:
            why = ""
            for n in NODE_IDS:
                if self.node_pid(n) is None:
                    rec.say(f"node {n} is not running (exited on its own? see "
                            f"{self.run_dir}/logs/node{n}.log); starting it")
                    problems.append(f"node {n} exited on its own (before {rec.rel(now_ms())}s)")
                    s = now_ms()
                    self.sh("start", str(n))
                    rec.record("unexpected-exit-restart", n, s, now_ms(),
                               "node was not running; started again")
            leader = self.find_leader(1)
            if leader is None:
                why = "no leader"
            else:
                if target is None:
                    target = self.status(leader).last
                for n in NODE_IDS:
                    st = self.status(n)
                    if st.leader != leader:
                        why = (f"node {n} follows "
                               f"{st.leader if st.leader is not None else 'nobody'}, not {leader}")
                        break
                    if st.applied is None or st.applied < (target or 0):
                        why = (f"node {n} applied "
                               f"{st.applied if st.applied is not None else '?'} < "
                               f"{target if target is not None else ''}")
                        break
                    if not self.ready(n):
                        why = f"node {n} not ready"
                        break
                    if self.lb_status(n) != "UP":
                        why = f"node {n} not UP in HAProxy"
                        break
            if not why:
                return now_ms() - t0
            if now_ms() >= deadline:
                rec.say(f"cluster NOT whole after {timeout_s}s: {why}")
                problems.append(f"not recovered within {timeout_s}s after a fault ending at "
                                f"{rec.rel(t0)}s: {why}")
                return None
            sleep(0.25)

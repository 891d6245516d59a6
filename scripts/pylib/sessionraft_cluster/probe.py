"""The nodes over HTTP: /readyz, /healthz, /cluster/status; waiting until a node answers, and
the leader as the live nodes report it. Every request is direct (no proxy from the
environment) and bounded by 2 s, as `curl -m 2` was."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Callable

from . import clock, tls
from .console import Exit, warn
from .procs import node_live_pid, show_tail
from .rundir import RunDir
from .topology import Node, Topology

TIMEOUT_S = 2.0

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout: float = TIMEOUT_S) -> tuple[int, str]:
    """(HTTP status, body); status 0 when there was no answer."""
    try:
        opener = _opener
        if url.startswith("https://"):
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                 urllib.request.HTTPSHandler(context=tls.context()))
        with opener.open(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        try:
            body = e.read().decode(errors="replace")
        except OSError:
            body = ""
        return e.code, body
    except (OSError, ValueError, urllib.error.URLError):
        return 0, ""


def http_code(url: str) -> int:
    return http_get(url)[0]


def parse_status(body: str) -> dict | None:
    """A /cluster/status body as a dict (None when it is not a JSON object)."""
    try:
        d = json.loads(body)
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


def status(addr: str) -> dict | None:
    """Node at addr's /cluster/status (None: no 200 with a JSON object)."""
    code, body = http_get(tls.url(addr, "/cluster/status"))
    return parse_status(body) if code == 200 else None


def field(st: dict | None, key: str) -> str:
    """A top-level value as the shell's json_get printed it ("" for null or missing)."""
    v = st.get(key) if st else None
    return "" if v is None else str(v)


# what a node that answers /cluster/status without a `version` runs: a build from before versions
# meant something (0.1.0, or a development build that also called itself 0.1.0)
OLD_VERSION = "0.1.0 or older"


def node_version(st: dict | None) -> str:
    """The release a node runs, from its /cluster/status ("" when there is no answer)."""
    if st is None:
        return ""
    return field(st, "version") or OLD_VERSION


def wait_http(run: RunDir, node: Node, path: str, until: float, timeout_s: int) -> bool:
    """Until node answers 200 on path. False (with a message) if its process exits or the
    deadline passes first."""
    while http_code(tls.url(node.http, path)) != 200:
        if node_live_pid(run, node.id) is None:
            show_tail(run.log_file(node.id))
            warn(f"node {node.id} exited; see {run.log_file(node.id)}")
            return False
        if clock.expired(until):
            warn(f"node {node.id}: no 200 from {path} after {timeout_s}s; see {run.log_file(node.id)}")
            return False
        clock.sleep(0.2)
    return True


def wait_ready(topo: Topology, ids: list[str], timeout_s: int) -> None:
    """Until every node of ids answers 200 on /readyz, within one deadline; Exit(1) if not."""
    until = clock.deadline(timeout_s)
    for node_id in ids:
        node = topo.node(node_id)
        if node is None or not wait_http(topo.run, node, "/readyz", until, timeout_s):
            raise Exit(1)


def current_leader(topo: Topology, skip: str | None = None,
                   status_of: Callable[[str], dict | None] = status) -> str:
    """The leader's id as reported by a live active node other than skip ("" if none knows)."""
    for n in topo.active():
        if n.id == skip or node_live_pid(topo.run, n.id) is None:
            continue
        leader = field(status_of(n.http), "leader")
        if leader:
            return leader
    return ""


def leader_last_index(topo: Topology, skip: str) -> str:
    """The leader's last log index, the leader found through a live node other than skip
    ("" when unknown)."""
    leader = current_leader(topo, skip)
    node = topo.node(leader) if leader else None
    if node is None:
        return ""
    return field(status(node.http), "last_log_index")

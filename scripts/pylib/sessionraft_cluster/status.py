"""`status` (one row per node — pid, address, role, term, leader, applied index, health, the
version it runs (`0.1.0 or older` when its /cluster/status has none) — and a
row for the load balancer) and `lb-status` (HAProxy's view of every server). The rows are built
by pure functions from what was fetched, so that their layout is tested on canned answers."""

from __future__ import annotations

from . import haproxy, tls
from .console import Die, say
from .probe import http_code, node_version, status
from .procs import haproxy_live_pid, node_live_pid
from .settings import Settings
from .topology import Topology

ROW = "%-5s %-8s %-22s %-10s %6s %7s %9s %s"
NODE_ROW = ROW[: ROW.rindex("%s")] + "%-9s %s"  # a node's row: health, then the version it runs
LB_ROW = "%-10s %-10s %-10s %-12s %s"


def row(*cols: object) -> str:
    return ROW % cols


def header() -> str:
    return NODE_ROW % ("node", "pid", "address", "role", "term", "leader", "applied", "health", "version")


def dash(v: object) -> object:
    return "-" if v is None else v


def node_row(node_id: str, pid: int | None, addr: str, ready_code: int, st: dict | None,
             removed: bool) -> str:
    """A node's row from its /cluster/status (None: no answer) and its /readyz status code."""
    pid_s = "-" if pid is None else str(pid)
    if st is not None:
        health = "ready" if ready_code == 200 else "not-ready"
        return NODE_ROW % (node_id, pid_s, addr, dash(st.get("role")), dash(st.get("term")), dash(st.get("leader")),
                           dash(st.get("applied_index")), health, node_version(st))
    if removed:
        return row(node_id, pid_s, addr, "removed", "-", "-", "-", "removed")
    return row(node_id, pid_s, addr, "unreachable", "-", "-", "-", "down")


def up_count(servers: list[haproxy.Server]) -> str:
    return f"{sum(1 for s in servers if s.status == 'UP')}/{len(servers)}"


def lb_rows(lb_addr: str, pid: int | None, lb_resp_addr: str, resp_served: bool,
            nodes_servers: list[haproxy.Server], resp_servers: list[haproxy.Server]) -> list[str]:
    """The load balancer's rows."""
    if not lb_addr:
        return [row("lb", "-", "-", "haproxy", "-", "-", "-", "no load balancer configured")]
    if pid is None:
        return [row("lb", "-", lb_addr, "haproxy", "-", "-", "-", "not running")]
    out = [row("lb", pid, lb_addr, "haproxy", "-", "-", "-", f"{up_count(nodes_servers)} servers UP")]
    if resp_served:
        out.append(row("lb", pid, lb_resp_addr, "haproxy", "-", "-", "-",
                       f"{up_count(resp_servers)} servers UP, Redis URL {redis_scheme()}://{lb_resp_addr}"))
    return out


def redis_scheme() -> str:
    """rediss with [tls] (the load balancer passes the nodes' TLS through), else redis."""
    return "rediss" if tls.files() is not None else "redis"


def show_status(topo: Topology) -> None:
    say(header())
    for n in topo.all():
        st = status(n.http)
        ready = http_code(tls.url(n.http, "/readyz"))
        say(node_row(n.id, node_live_pid(topo.run, n.id), n.http, ready, st, topo.is_removed(n.id)))
    pid = haproxy_live_pid(topo.run)
    nodes_servers: list[haproxy.Server] = []
    resp_servers: list[haproxy.Server] = []
    if topo.lb_addr and pid is not None:
        nodes_servers = haproxy.servers(topo.lb_addr) or []
        if topo.resp_lb():
            resp_servers = haproxy.servers(topo.lb_addr, (haproxy.RESP_BACKEND,)) or []
    for line in lb_rows(topo.lb_addr, pid, topo.lb_resp_addr, topo.resp_lb(), nodes_servers, resp_servers):
        say(line)


def lb_status_lines(servers: list[haproxy.Server]) -> list[str]:
    out = [LB_ROW % ("pxname", "svname", "status", "check", "last_change")]
    for s in servers:
        out.append(LB_ROW % (s.pxname, s.svname, s.status, s.check_status or "-", f"{s.lastchg}s ago"))
    return out


def show_lb_status(s: Settings, topo: Topology) -> None:
    if not topo.lb_addr:
        raise Die(f"no load balancer configured ([load_balancer] addr in {s.config}, or SESSIONRAFT_LB_ADDR)")
    if haproxy_live_pid(topo.run) is None:
        raise Die(f"haproxy is not running on {topo.lb_addr} (scripts/cluster.sh up)")
    servers = haproxy.servers(topo.lb_addr, (haproxy.LB_BACKEND, haproxy.RESP_BACKEND))
    if servers is None:
        raise Die(f"haproxy does not answer on {tls.url(topo.lb_addr, '/haproxy-stats;csv')}")
    for line in lb_status_lines(servers):
        say(line)

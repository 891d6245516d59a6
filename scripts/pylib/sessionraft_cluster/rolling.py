"""`rolling-restart`: every active node restarted, one at a time, followers first and the leader
last; each must be ready, caught up with the leader (applied at least the leader's last log
index as of its return) and UP in HAProxy before the next one goes down. At most one node is out
at any time: every node must be running, ready (and UP) before the first goes down.

The order is decided afresh before each step (the leader may change meanwhile): the first node
in config order not restarted yet that is not the leader; the leader when it is the last."""

from __future__ import annotations

from typing import Callable

from . import clock, haproxy, probe
from .clock import now_ms, since
from .console import Die, quiet, say, warn
from .procs import haproxy_live_pid, node_live_pid, signal_node
from .settings import Settings
from .topology import Topology


def next_node(ids: list[str], done: list[str], leader: str) -> str:
    """The next node to restart: the first not done that is not the leader; else the last not
    done (the leader)."""
    left = [i for i in ids if i not in done]
    return next((i for i in left if i != leader), left[-1])


def restart_in_order(ids: list[str], wait_leader: Callable[[], str],
                     restart: Callable[[str, str, str], None]) -> None:
    """Restarts every node of ids once: restart(id, "follower"|"leader", "n/total"), the leader
    asked for (wait_leader) before each step."""
    done: list[str] = []
    for n in range(1, len(ids) + 1):
        leader = wait_leader()
        nxt = next_node(ids, done, leader)
        restart(nxt, "leader" if nxt == leader else "follower", f"{n}/{len(ids)}")
        done.append(nxt)


def lb_in_service(s: Settings, topo: Topology, ids: list[str], until: float, before: str) -> bool:
    """Whether HAProxy runs (then its config is brought in line and every node of ids must be UP
    in it, else Die: "fix it before BEFORE"); a warning when it is configured but not running."""
    if topo.lb_addr and haproxy_live_pid(topo.run) is not None:
        haproxy.sync(s, topo, "reload")
        for node_id in ids:
            if not haproxy.wait_up(topo, node_id, until, s.ready_timeout):
                raise Die(f"HAProxy does not report node{node_id} UP; fix it before {before} "
                          "(scripts/cluster.sh lb-status)")
        return True
    if topo.lb_addr:
        warn("haproxy is not running: not waiting for it between nodes")
    return False


def wait_leader(s: Settings, topo: Topology, aborted: str) -> str:
    """The leader's id once a live node reports one; Die (`ABORTED: no node reports a leader`)
    after SESSIONRAFT_READY_TIMEOUT."""
    until = clock.deadline(s.ready_timeout)
    leader = probe.current_leader(topo)
    while not leader:
        if clock.expired(until):
            raise Die(f"{aborted}: no node reports a leader after {s.ready_timeout}s")
        clock.sleep(0.2)
        leader = probe.current_leader(topo)
    return leader


def wait_applied(topo: Topology, node_id: str, target: int, until: float, timeout_s: int, where: str) -> int:
    """Until node N's applied index reaches target; the index it reached. Die (`WHERE: ...`) if
    the node exits or the deadline passes first."""
    run = topo.run
    node = topo.node(node_id)
    while True:
        applied = probe.field(probe.status(node.http), "applied_index")
        if applied and int(applied) >= target:
            return int(applied)
        if node_live_pid(run, node_id) is None:
            raise Die(f"{where}: the node exited; see {run.log_file(node_id)}")
        if clock.expired(until):
            raise Die(f"{where}: applied index {applied or 'none'} still below the leader's {target} "
                      f"after {timeout_s}s")
        clock.sleep(0.2)


def rolling_restart(s: Settings, topo: Topology, start_node: Callable[..., None]) -> None:
    """The command. start_node(s, topo, id, out) starts one node (commands.start_node)."""
    run = topo.run
    with run.lock():
        ids = [n.id for n in topo.active()]
        if not ids:
            raise Die(f"no node in {s.config}")
        # at most one node may be out at any time: every node must be in service before we start
        until = clock.deadline(s.ready_timeout)
        for node_id in ids:
            if node_live_pid(run, node_id) is None:
                raise Die(f"node {node_id} is not running; start it first (scripts/cluster.sh start {node_id}): "
                          "a rolling restart takes one node out at a time")
            if not probe.wait_http(run, topo.node(node_id), "/readyz", until, s.ready_timeout):
                raise Die(f"node {node_id} is not ready; fix it before a rolling restart (scripts/cluster.sh status)")
        use_lb = lb_in_service(s, topo, ids, until, "a rolling restart")

        t_all = now_ms()

        def restart(node_id: str, role: str, step: str) -> None:
            restart_one(s, topo, node_id, role, step, use_lb, start_node)

        restart_in_order(ids, lambda: wait_leader(s, topo, "rolling-restart aborted"), restart)
    say(f"rolling restart done: {len(ids)} nodes in {since(t_all)}")


def restart_one(s: Settings, topo: Topology, node_id: str, role: str, step: str, use_lb: bool,
                start_node: Callable[..., None]) -> None:
    """One step: SIGTERM, start, ready, caught up, UP in HAProxy. Die on a failure."""
    run = topo.run
    node = topo.node(node_id)
    where = f"rolling-restart aborted at node {node_id}"
    say(f"[{step}] node {node_id} ({role}): stopping (SIGTERM)")
    t0 = t = now_ms()
    signal_node(run, node_id, "TERM", out=quiet)
    say(f"[{step}] node {node_id}: stopped after {since(t)}; starting")
    t = now_ms()
    start_node(s, topo, node_id, out=quiet)
    until = clock.deadline(s.ready_timeout)
    if not probe.wait_http(run, node, "/readyz", until, s.ready_timeout):
        raise Die(f"{where}: not ready within {s.ready_timeout}s (SESSIONRAFT_READY_TIMEOUT)")
    say(f"[{step}] node {node_id}: ready after {since(t)}")
    t = now_ms()
    # caught up: applied at least the leader's last log index as of now
    target = ""
    while not target:
        target = probe.leader_last_index(topo, node_id)
        if not target:
            if clock.expired(until):
                raise Die(f"{where}: no other node reports a leader and its log index within {s.ready_timeout}s")
            clock.sleep(0.2)
    applied = wait_applied(topo, node_id, int(target), until, s.ready_timeout, where)
    say(f"[{step}] node {node_id}: caught up (applied {applied} >= leader's last log index {target}) "
        f"after {since(t)}")
    if use_lb:
        t = now_ms()
        if not haproxy.wait_up(topo, node_id, until, s.ready_timeout):
            raise Die(f"{where}: HAProxy does not report it UP within {s.ready_timeout}s")
        say(f"[{step}] node {node_id}: UP in HAProxy after {since(t)}")
    say(f"[{step}] node {node_id}: back in service, {since(t0)} in all")

"""`add-node N HTTP RAFT` and `remove-node N`: the cluster's membership changed through
`sessionraft cluster add-node|remove-node`, with the node's process, the run dir's extra-nodes /
removed-nodes and HAProxy kept in step.

add-node starts node N (not in the config: data in RUN_DIR/data/nodeN, recorded in extra-nodes
before it starts; a config node removed earlier comes back with its config addresses and data
dir), adds it (learner, catch up, voter), then puts it behind HAProxy (reload). On refusal the
node is stopped and forgotten. Data left by an earlier node N is moved aside: it may still
believe it is a voter and start elections.

remove-node removes node N from the cluster, then stops it (a removed node that missed its
removal would start elections; HAProxy redispatches what it sends there meanwhile) and takes it
out of HAProxy. On refusal nothing changes."""

from __future__ import annotations

import os
import subprocess
import time

from . import clock, haproxy, tls
from .clock import now_ms, since
from .commands import start_node
from .console import Die, err, flush, say, warn
from .probe import wait_http
from .procs import haproxy_live_pid, node_live_pid, signal_node
from .rundir import RunDir, valid_id
from .settings import Settings, build
from .topology import Topology, load, valid_addr

ADD_USAGE = "usage: add-node N HTTP RAFT (N: a node id >= 1, HTTP and RAFT: HOST:PORT, an IP or a DNS name)"


def check_new_addresses(topo: Topology, http: str, raft: str) -> None:
    """Die unless HTTP and RAFT are addresses no node and no load balancer frontend has."""
    if not valid_addr(http):
        raise Die(f"HTTP must be HOST:PORT (an IP or a DNS name), not '{http}'")
    if not valid_addr(raft):
        raise Die(f"RAFT must be HOST:PORT (an IP or a DNS name), not '{raft}'")
    lb = topo.lb_addr
    if lb and lb in (http, raft):
        raise Die(f"{lb} is the load balancer's address")
    nodes = topo.all()
    for used in [n.http for n in nodes] + [n.raft for n in nodes]:
        if used in (http, raft):
            raise Die(f"{used} is used by another node")
    for n in nodes:
        if n.resp and n.resp in (http, raft):
            raise Die(f"{n.resp} is the Redis-protocol address of another node")
    lb_resp = topo.lb_resp_addr
    if lb_resp and lb_resp in (http, raft):
        raise Die(f"{lb_resp} is the load balancer's Redis-protocol address")


def add_node(s: Settings, run: RunDir, args: list[str]) -> None:
    node_id, http, raft = (args + ["", "", ""])[:3]
    if not valid_id(node_id):
        raise Die(ADD_USAGE)
    build(s)
    topo = load(s, run)
    with run.lock():
        pid = node_live_pid(run, node_id)
        if pid is not None:
            raise Die(f"a node {node_id} runs already (pid {pid})")
        readd = topo.is_config_node(node_id)
        if readd:
            # a removed config node comes back with its config addresses and data dir
            if not topo.is_removed(node_id):
                raise Die(f"node {node_id} is in {s.config} and a member already: nothing to add")
            node = topo.node(node_id)
            if http and http != node.http:
                raise Die(f"node {node_id} is in {s.config} with http_addr {node.http}: it keeps its config addresses")
            if raft and raft != node.raft:
                raise Die(f"node {node_id} is in {s.config} with raft_addr {node.raft}: it keeps its config addresses")
            http, raft = node.http, node.raft
            run.drop_removed(node_id)
        else:
            if not http or not raft:
                raise Die(ADD_USAGE)
            if topo.is_extra(node_id):
                raise Die(f"node {node_id} was added already ({run.extra_file}); "
                          f"start it with: scripts/cluster.sh start {node_id}")
            check_new_addresses(topo, http, raft)
            # recorded before it starts, so that stop/down cover it even if this is interrupted
            run.add_extra(node_id, http, run.data_dir(node_id), raft)

        def failed(message: str) -> Die:
            warn(message)
            signal_node(run, node_id, "TERM", out=err)
            if readd:
                run.add_removed(node_id)
            else:
                run.drop_extra(node_id)
            return Die(f"node {node_id} was not added; it is stopped"
                       + ("" if readd else f" and removed from {run.extra_file}"))

        # The state of an earlier node with this id would disturb the cluster: it may still
        # believe it is a voter and start elections. It is kept aside; the node joins empty.
        data = topo.node(node_id).data_dir
        if os.path.isdir(data) and os.listdir(data):
            stale = f"{data}.removed-{time.strftime('%Y%m%dT%H%M%S')}"
            os.rename(data, stale)
            say(f"node {node_id}: the data of an earlier node {node_id} moved to {stale}; it joins empty")

        t0 = now_ms()
        start_node(s, topo, node_id)
        until = clock.deadline(s.ready_timeout)
        node = topo.node(node_id)
        if not wait_http(run, node, "/healthz", until, s.ready_timeout):
            raise failed(f"node {node_id} did not come up")
        say(f"node {node_id} is up; adding it to the cluster (learner, catch up, then voter)...")
        flush()
        rc = subprocess.call([s.bin, "cluster", "add-node", "--config", s.config, "--id", node_id,
                              "--http", http, "--raft", raft])
        if rc != 0:
            raise failed(f"the cluster refused node {node_id} (see the message above)")
        if not wait_http(run, node, "/readyz", until, s.ready_timeout):
            raise Die(f"node {node_id} was added but is not ready within {s.ready_timeout}s; "
                      f"see {run.log_file(node_id)}")
        if topo.lb_addr:
            haproxy.sync(s, topo, "reload")
            if haproxy_live_pid(run) is not None and not haproxy.wait_up(topo, node_id, until, s.ready_timeout):
                raise Die(f"node {node_id} was added but HAProxy does not report it UP")
    say(f"node {node_id} added in {since(t0)}: {tls.url(http, '/')} (raft {raft}, log {run.log_file(node_id)})")


def remove_node(s: Settings, run: RunDir, args: list[str]) -> None:
    node_id = args[0] if args else ""
    if not valid_id(node_id):
        raise Die("usage: remove-node N")
    topo = load(s, run)
    with run.lock():
        if topo.is_removed(node_id):
            raise Die(f"node {node_id} was removed already ({run.removed_file})")
        flush()
        rc = subprocess.call([s.bin, "cluster", "remove-node", "--config", s.config, node_id])
        if rc != 0:
            raise Die(f"the cluster refused to remove node {node_id} (see the message above): nothing changed")
        if topo.is_config_node(node_id):
            run.add_removed(node_id)
            say(f"node {node_id} stays in {s.config} but is listed in {run.removed_file}: "
                "up, HAProxy and rolling-restart skip it")
        elif topo.is_extra(node_id):
            run.drop_extra(node_id)
        # stopped at once: a removed node that missed its removal would start elections. HAProxy
        # redispatches what it sends there meanwhile (connection refused), then drops it.
        signal_node(run, node_id, "TERM")
        haproxy.sync(s, topo, "reload")
    say(f"node {node_id} removed")

"""The commands on nodes: up, down, start N, stop N, kill N, restart N, logs N|haproxy."""

from __future__ import annotations

import os
import threading

from . import clock, haproxy, tls
from .console import Die, Say, say
from .procs import cmdline, node_live_pid, signal_node, start_node_process
from .rundir import RunDir
from .settings import Settings, build, require_node_name
from .probe import http_code, wait_ready
from .topology import Topology, load


def node_binary(s: Settings, run: RunDir, node_id: str) -> str:
    """The binary node N is started with: --bin (s.node_bin), else the one recorded for it
    (RUN_DIR/nodeN.bin: by an earlier --bin or upgrade), else SESSIONRAFT_BIN's (s.bin)."""
    return s.node_bin or run.node_bin(node_id) or s.bin


def start_node(s: Settings, topo: Topology, node_id: str, out: Say = say) -> None:
    """Starts node N unless it runs (a node of the config, or of extra-nodes with its addresses
    and data dir on the command line), with node_binary(); records its pid, and its binary when
    given with --bin."""
    run = topo.run
    node = topo.node(node_id)
    if node is None:
        raise Die(f"no node {node_id} in {s.config} nor in {run.extra_file}")
    if topo.is_removed(node_id):
        raise Die(f"node {node_id} was removed from the cluster (listed in {run.removed_file}); "
                  f"bring it back with: scripts/cluster.sh add-node {node_id}")
    with run.lock():
        pid = node_live_pid(run, node_id)
        if pid is not None:
            running = (cmdline(pid) or [""])[0]
            other = f"; it runs {running}, not {s.node_bin} (see upgrade)" if s.node_bin and running != s.node_bin else ""
            out(f"node {node_id} already running (pid {pid}){other}")
            return
        # Nothing of ours runs as node N, so nothing may answer on its address: something that
        # does (a node of another run dir, an orphan) would answer the readiness probes in the
        # new node's stead while the new one fails to bind and exits.
        answered = http_code(tls.url(node.http, "/healthz"))
        if answered:
            raise Die(f"node {node_id} is not running from {run.path}, yet {node.http} already answers "
                      f"(HTTP {answered}): another process holds its address (a node started from "
                      f"another run dir?); stop that process first")
        binary = node_binary(s, run, node_id)
        require_node_name(binary)  # also SESSIONRAFT_BIN's, not only --bin's
        if s.node_bin:
            run.set_node_bin(node_id, s.node_bin)
        argv = [binary, "serve", "--config", s.config, "--node", node_id]
        if topo.is_extra(node_id):
            argv += ["--http", node.http, "--raft", node.raft, "--data-dir", node.data_dir]
            os.makedirs(os.path.dirname(node.data_dir) or ".", exist_ok=True)
        # a session of its own: the node survives this program; its pid is recorded for every
        # later signal
        pid = start_node_process(run, node_id, argv)
        recorded = f", binary {binary} ({run.bin_file(node_id)})" if binary != s.bin else ""
        out(f"node {node_id} started (pid {pid}, log {run.log_file(node_id)}{recorded})")


def up(s: Settings, run: RunDir) -> None:
    build(s)
    topo = load(s, run)
    with run.lock():
        ids = [n.id for n in topo.active()]
        if not ids:
            raise Die(f"no node to start in {s.config}")
        for node_id in run.removed_ids():
            say(f"node {node_id} was removed from the cluster ({run.removed_file}): not started")
        for node_id in ids:
            start_node(s, topo, node_id)
        wait_ready(topo, ids, s.ready_timeout)
        if topo.lb_addr:
            haproxy.sync(s, topo, "start")
            until = clock.deadline(10)
            for node_id in ids:
                haproxy.wait_up(topo, node_id, until, s.ready_timeout)
        else:
            say(f"no load balancer configured ([load_balancer] addr in {s.config}, or SESSIONRAFT_LB_ADDR): "
                "HAProxy not started")
    say()
    say(f"sessionraft is up ({len(ids)} nodes):")
    for line in urls(topo, ids):
        say(line)
    say("stop it with: scripts/cluster.sh down")


def urls(topo: Topology, ids: list[str]) -> list[str]:
    """The URLs `up` prints: the load balancer's (and its Redis URL), then each node's."""
    out = []
    lb = topo.lb_addr
    redis = "rediss" if tls.files() is not None else "redis"
    if lb:
        out.append(f"  load balancer: demo: {tls.url(lb, '/')}  dashboard: {tls.url(lb, '/cluster')}  "
                   f"(HAProxy stats: {tls.url(lb, '/haproxy-stats')})")
        if topo.resp_lb():
            out.append(f"  load balancer: Redis URL: {redis}://{topo.lb_resp_addr}  "
                       "(express-session, Flask-Session, RedisSessionStore, redis-cli -u)")
        elif topo.lb_resp_addr:
            out.append(f"  load balancer: no Redis frontend on {topo.lb_resp_addr}: no node has a resp_addr")
    for node_id in ids:
        n = topo.node(node_id)
        resp = f"   Redis {redis}://{n.resp}" if n.resp else ""
        out.append(f"  node {node_id}: demo {tls.url(n.http, '/')}   dashboard {tls.url(n.http, '/cluster')}{resp}")
    return out


def down(s: Settings, run: RunDir) -> None:
    """HAProxy, then every node this program knows of and every pid file, all at once (each may
    take a few seconds to shut down gracefully): down leaves nothing running."""
    topo = load(s, run, quiet=True)
    haproxy.stop(topo)
    ids = sorted({n.id for n in topo.all()} | set(run.pid_file_ids()), key=int)
    threads = [threading.Thread(target=signal_node, args=(run, node_id, "TERM")) for node_id in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def start(s: Settings, run: RunDir, node_id: str) -> None:
    build(s)
    topo = load(s, run)
    start_node(s, topo, node_id)
    wait_ready(topo, [node_id], s.ready_timeout)


def restart(s: Settings, run: RunDir, node_id: str) -> None:
    build(s)
    topo = load(s, run)
    with run.lock():
        signal_node(run, node_id, "TERM")
        start_node(s, topo, node_id)
        wait_ready(topo, [node_id], s.ready_timeout)


def logs(run: RunDir, args: list[str]) -> None:
    """A node's log (or HAProxy's): its last 200 lines, or with -f the last 100 and what follows."""
    if not args or not args[0]:
        raise Die("usage: logs N|haproxy [-f]")
    path = run.haproxy_log if args[0] in ("haproxy", "lb") else run.log_file(args[0])
    if not os.path.isfile(path):
        raise Die(f"no log at {path}")
    argv = ["tail", "-n", "100", "-f", path] if args[1:2] == ["-f"] else ["tail", "-n", "200", path]
    os.execvp("tail", argv)


def stop_or_kill(run: RunDir, node_id: str, sig: str) -> None:
    signal_node(run, node_id, sig)


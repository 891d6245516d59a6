"""`upgrade BIN [--order followers-first|leader-first|IDS]`: the rolling upgrade of a running
cluster to the binary BIN, one node at a time: stop it (SIGTERM, SIGKILL after 10 s), start it
again with BIN on the same config, node id and data dir, wait until it is ready (/readyz 200),
has applied the leader's last log index as read just before it went down (caught up), and is UP
in HAProxy (when HAProxy runs); then the next. A progress line per node; at the end the cluster
version the nodes report (`cluster_version` in /cluster/status, when they have it).

Refused before anything is touched when BIN does not run (`BIN --version`) or cannot read the
config, when a node is not running or not ready, when a membership change is in progress (a
node reports `membership_joint`, or a member is a learner), when the members are not the nodes
this program runs, or when no node reports a leader. The first node that does not come back
ends the upgrade: the nodes after it keep their binary.

Orders: followers-first (default: the followers in config order, the leader last — leadership
moves once), leader-first (the leader first, then the others followers first), or IDS (every
active node once, e.g. 3,1,2). The leader is asked for again before each step.

Each node upgraded is recorded as running BIN (RUN_DIR/nodeN.bin): later start, restart,
rolling-restart and up start it with BIN."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from . import clock, haproxy, probe, tls
from .clock import now_ms
from .commands import start_node
from .console import Die, quiet, say, warn
from .procs import cmdline, node_live_pid, signal_node
from .rolling import lb_in_service, next_node as followers_first_next, wait_applied, wait_leader
from .rundir import RunDir
from .settings import Settings, executable, with_bin
from .topology import Topology, load

USAGE = ("usage: upgrade BIN [--order followers-first|leader-first|IDS] "
         "(BIN: the new sessionraft binary; IDS: every node once, e.g. 3,1,2)")
ORDERS = ("followers-first", "leader-first")
# how long a node that runs may take to become ready before the upgrade is refused
READY_GRACE_S = 5
# how long the cluster version is waited for at the end
CLUSTER_VERSION_WAIT_S = 10


# ---------------------------------------------------------------------- the command line, the order

@dataclass(frozen=True)
class Order:
    kind: str  # "followers-first", "leader-first" or "ids"
    ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        return ",".join(self.ids) if self.kind == "ids" else self.kind


def parse_order(text: str) -> Order:
    """--order's value. Die when it is neither an order's name nor ids separated by commas."""
    if text in ORDERS:
        return Order(text)
    ids = tuple(i.strip() for i in text.split(","))
    if not all(re.fullmatch(r"[1-9][0-9]*", i) for i in ids):
        raise Die(f"--order must be followers-first, leader-first or node ids like 3,1,2, not '{text}'")
    if len(set(ids)) != len(ids):
        raise Die(f"--order {text}: a node is named twice")
    return Order("ids", ids)


def parse_args(args: list[str]) -> tuple[str, Order]:
    """(BIN, order) from `BIN [--order X]` (also --order=X, before or after BIN). Die with the
    usage otherwise."""
    path = ""
    order = Order("followers-first")
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--order":
            if i + 1 >= len(args):
                raise Die(USAGE)
            order = parse_order(args[i + 1])
            i += 2
            continue
        if a.startswith("--order="):
            order = parse_order(a[len("--order="):])
        elif a.startswith("-") or path:
            raise Die(USAGE)
        else:
            path = a
        i += 1
    if not path:
        raise Die(USAGE)
    return path, order


def check_order(order: Order, ids: list[str]) -> None:
    """Die unless an order of ids names every node to upgrade, and only those."""
    if order.kind != "ids":
        return
    unknown = [i for i in order.ids if i not in ids]
    missing = [i for i in ids if i not in order.ids]
    if unknown:
        raise Die(f"--order {order}: no node {', '.join(unknown)} in this cluster (its nodes: {','.join(ids)})")
    if missing:
        raise Die(f"--order {order} leaves out node {', '.join(missing)}: every node is upgraded, "
                  f"name them all (its nodes: {','.join(ids)})")


def next_node(order: Order, ids: list[str], done: list[str], leader: str) -> str:
    """The next node to upgrade, the leader being `leader` now."""
    left = [i for i in ids if i not in done]
    if order.kind == "ids":
        return next(i for i in order.ids if i not in done)
    if order.kind == "leader-first" and not done and leader in left:
        return leader
    return followers_first_next(ids, done, leader)


# ---------------------------------------------------------------------- versions

def parse_version(text: str) -> str:
    """`sessionraft 0.2.0` (what --version prints) -> `0.2.0` ("" when there is none)."""
    m = re.search(r"\b([0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.+-]*)?)\b", text)
    return m[1] if m else ""


def binary_version(path: str) -> tuple[str, str]:
    """(version, "") of `PATH --version`, or ("", why it failed)."""
    if not executable(path):
        return "", "no executable there"
    try:
        p = subprocess.run([path, "--version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "", str(e)
    out = p.stdout.decode(errors="replace").strip()
    if p.returncode != 0:
        return "", f"exit code {p.returncode}" + (f": {out.splitlines()[-1]}" if out else "")
    version = parse_version(out)
    return (version, "") if version else ("", f"no version in its output: {out!r}")


def release_line(version: str) -> str:
    """MAJOR.MINOR of a version (`0.2.0` -> `0.2`; `0.2` stays)."""
    m = re.match(r"([0-9]+\.[0-9]+)", version)
    return m[1] if m else version


# ---------------------------------------------------------------------- refusals

@dataclass(frozen=True)
class NodeState:
    """A node as found before the upgrade: its live pid (None: not running), its /readyz status
    code (0: no answer) and its /cluster/status (None: no answer)."""
    id: str
    pid: int | None
    ready: int
    status: dict | None


def refusals(nodes: list[NodeState]) -> list[str]:
    """Why the cluster cannot be upgraded now ([]: it can): a node not running, not answering or
    not ready; a membership change in progress (joint consensus, or a learner); members that are
    not these nodes; no leader."""
    out: list[str] = []
    ids = [n.id for n in nodes]
    for n in nodes:
        if n.pid is None:
            out.append(f"node {n.id} is not running (scripts/cluster.sh start {n.id})")
        elif n.status is None:
            out.append(f"node {n.id} does not answer /cluster/status")
        elif n.ready != 200:
            out.append(f"node {n.id} is not ready (/readyz: {n.ready or 'no answer'}; scripts/cluster.sh status)")
    answering = [n for n in nodes if n.status is not None]
    joint = [n.id for n in answering if n.status.get("membership_joint") is True]
    if joint:
        out.append(f"a membership change is in progress (joint consensus, reported by node {', '.join(joint)}): "
                   "wait until it completes")
    learners: dict[str, str] = {}
    members: dict[str, str] = {}
    for n in answering:
        for m in n.status.get("members") or []:
            if not isinstance(m, dict) or "id" not in m:
                continue
            mid = str(m["id"])
            members.setdefault(mid, n.id)
            if m.get("voter") is False:
                learners.setdefault(mid, n.id)
    for mid, seen_by in sorted(learners.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0):
        out.append(f"member {mid} is a learner (a node being added, as node {seen_by} reports): "
                   "wait until add-node completes, or remove it")
    for mid in sorted(members, key=lambda k: int(k) if k.isdigit() else 0):
        if mid not in ids:
            out.append(f"member {mid} (as node {members[mid]} reports) is not a node of this cluster.sh run "
                       "(config or extra-nodes): it could not be upgraded")
    if members:
        for n in answering:
            if n.id not in members:
                out.append(f"node {n.id} is not a member of the cluster (as its members report)")
    if answering and not any(n.status.get("leader") is not None for n in answering):
        out.append("no node reports a leader")
    return out


def gather(topo: Topology, ids: list[str]) -> list[NodeState]:
    out = []
    for node_id in ids:
        node = topo.node(node_id)
        pid = node_live_pid(topo.run, node_id)
        if pid is None:
            out.append(NodeState(node_id, None, 0, None))
            continue
        out.append(NodeState(node_id, pid, probe.http_code(tls.url(node.http, "/readyz")), probe.status(node.http)))
    return out


def check_cluster(topo: Topology, ids: list[str]) -> None:
    """Die with every refusal unless the cluster can be upgraded; a node that runs is given
    READY_GRACE_S to become ready."""
    until = clock.deadline(READY_GRACE_S)
    while True:
        found = refusals(gather(topo, ids))
        if not found:
            return
        if clock.expired(until) or any(node_live_pid(topo.run, i) is None for i in ids):
            break
        clock.sleep(0.5)
    for why in found:
        warn(f"upgrade refused: {why}")
    raise Die("upgrade refused: nothing was changed")


# ---------------------------------------------------------------------- the lines

def seconds(ms: int) -> str:
    """`0.4 s`."""
    return f"{ms / 1000:.1f} s"


def step_line(step: str, node_id: str, role: str, pid: int, old_bin: str) -> str:
    """Printed as a node goes down."""
    return f"upgrade {step}: node {node_id} ({role}): stopping (pid {pid}, {old_bin or 'binary unknown'})"


def done_line(step: str, node_id: str, role: str, old: str, new: str, ready_ms: int, index: int,
              lb_ms: int | None = None) -> str:
    """Printed once a node is back: `upgrade 2/3: node 2 (follower) 0.1.0 -> 0.2.0: ready in
    0.4 s, caught up to index 1234[, UP in HAProxy after 0.5 s]` (ready: since it was started
    again)."""
    lb = "" if lb_ms is None else f", UP in HAProxy after {seconds(lb_ms)}"
    return (f"upgrade {step}: node {node_id} ({role}) {old or 'unknown'} -> {new or 'unknown'}: "
            f"ready in {seconds(ready_ms)}, caught up to index {index}{lb}")


def cluster_version_line(value: str | None, expected: str, waited_s: int) -> str:
    """The last line: the cluster version the leader reports (None: the field is absent)."""
    if value is None:
        return "cluster version: not reported (no cluster_version in /cluster/status)"
    if release_line(value) == expected:
        return f"cluster version: {value}"
    return f"cluster version: {value} (not {expected} after {waited_s} s; scripts/cluster.sh status)"


# ---------------------------------------------------------------------- the command

def upgrade(s: Settings, run: RunDir, args: list[str]) -> None:
    path, order = parse_args(args)
    s = with_bin(s, path)
    new_version, why = binary_version(s.bin)
    if not new_version:
        raise Die(f"upgrade refused: {s.bin} --version failed ({why}): nothing was changed")
    topo = load(s, run)  # BIN reads the config (Die with its error otherwise)
    with run.lock():
        ids = [n.id for n in topo.active()]
        if not ids:
            raise Die(f"no node in {s.config}")
        check_order(order, ids)
        check_cluster(topo, ids)
        use_lb = lb_in_service(s, topo, ids, clock.deadline(s.ready_timeout), "an upgrade")
        say(f"upgrade: {len(ids)} nodes to {new_version} ({s.bin}), order {order}")
        t_all = now_ms()
        done: list[str] = []
        for n in range(1, len(ids) + 1):
            leader = wait_leader(s, topo, "upgrade stopped")
            node_id = next_node(order, ids, done, leader)
            step = f"{n}/{len(ids)}"
            try:
                upgrade_one(s, topo, node_id, "leader" if node_id == leader else "follower", leader, step,
                            new_version, use_lb)
            except Die as e:
                left = [i for i in ids if i not in done and i != node_id]
                raise Die(f"{e.message}\n  upgraded: {', '.join(done) or 'none'}; not touched (old binary): "
                          f"{', '.join(left) or 'none'}") from e
            done.append(node_id)
    say(f"upgrade done: {len(ids)} nodes run {new_version} ({s.bin}), in {seconds(now_ms() - t_all)}")
    say(wait_cluster_version(topo, release_line(new_version)))


def leader_last_index(topo: Topology, leader: str, until: float, where: str) -> int:
    """The leader's last log index now (Die if it does not say within the deadline)."""
    node = topo.node(leader)
    while True:
        last = probe.field(probe.status(node.http), "last_log_index") if node else ""
        if last:
            return int(last)
        if clock.expired(until):
            raise Die(f"{where}: the leader (node {leader}) does not report its last log index")
        clock.sleep(0.2)


def upgrade_one(s: Settings, topo: Topology, node_id: str, role: str, leader: str, step: str,
                new_version: str, use_lb: bool) -> None:
    """One node: down, up with s.bin (recorded), ready, caught up, UP in HAProxy. Die on a
    failure."""
    run = topo.run
    node = topo.node(node_id)
    where = f"upgrade stopped at node {node_id} ({step})"
    until = clock.deadline(s.ready_timeout)
    old = probe.node_version(probe.status(node.http))
    pid = node_live_pid(run, node_id)
    if pid is None:
        raise Die(f"{where}: the node is not running")
    old_bin = (cmdline(pid) or [""])[0]
    target = leader_last_index(topo, leader, until, where)
    say(step_line(step, node_id, role, pid, old_bin))
    signal_node(run, node_id, "TERM", out=quiet)
    try:
        t = now_ms()
        start_node(s, topo, node_id, out=quiet)  # with s.bin, recorded as node_id's binary
        until = clock.deadline(s.ready_timeout)
        if not probe.wait_http(run, node, "/readyz", until, s.ready_timeout):
            if node_live_pid(run, node_id) is None:
                raise Die(f"{where}: the node exited; see {run.log_file(node_id)}")
            raise Die(f"{where}: not ready within {s.ready_timeout}s (SESSIONRAFT_READY_TIMEOUT); "
                      f"see {run.log_file(node_id)}")
        ready_ms = now_ms() - t
        applied = wait_applied(topo, node_id, target, until, s.ready_timeout, where)
        new = probe.node_version(probe.status(node.http)) or new_version
        lb_ms = None
        if use_lb:
            t = now_ms()
            if not haproxy.wait_up(topo, node_id, until, s.ready_timeout):
                raise Die(f"{where}: HAProxy does not report it UP within {s.ready_timeout}s")
            lb_ms = now_ms() - t
    except Die as e:
        back = f"scripts/cluster.sh restart {node_id} --bin {old_bin}" if old_bin else \
            f"scripts/cluster.sh restart {node_id} --bin OLD_BIN"
        raise Die(f"{e.message}\n  node {node_id} is recorded to run {s.bin} ({run.bin_file(node_id)}); "
                  f"to go back: {back}") from e
    say(done_line(step, node_id, role, old, new, ready_ms, applied, lb_ms))


def wait_cluster_version(topo: Topology, expected: str, wait_s: int = CLUSTER_VERSION_WAIT_S) -> str:
    """The cluster_version line, once the leader reports `expected` or after wait_s (the
    version rises once every voter runs the new release; it may take a heartbeat or two)."""
    until = clock.deadline(wait_s)
    value: str | None = None
    while True:
        leader = probe.current_leader(topo)
        node = topo.node(leader) if leader else None
        st = probe.status(node.http) if node else None
        if st is not None:
            v = st.get("cluster_version")
            value = None if v is None else str(v)
            if value is None or release_line(value) == expected:
                break  # a node that does not report it now never will
        if clock.expired(until):
            break
        clock.sleep(0.5)
    return cluster_version_line(value, expected, wait_s)


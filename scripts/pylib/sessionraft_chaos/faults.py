"""The faults (nemeses). Each one leaves the cluster healed, though maybe not yet whole
(run.py waits for that next), and records its window with the run's Recorder.

kill-leader / kill-random   SIGKILL (cluster.sh kill), start again after the fault's hold
pause                       SIGSTOP through the pid file, SIGCONT after the hold (the leader or
                            a random node); pause-leader: always the leader; pause-follower: one
                            of the two followers
partition-leader/-minority  DROP rules in the run's iptables chain (netfilter.py), flushed after;
                            --on hosts: the node's link cut (hosts.py), brought up after
rolling-restart             cluster.sh rolling-restart, one window per node from its output
clock-skew                  the node restarted under libfaketime, later with the real clock
disk-full                   the node's tmpfs filled (ENOSPC) for the hold, then freed
wipe-and-rejoin             leader snapshot, follower stopped, its data deleted, started again

Compared with the bash script: the parameters come pre-drawn with the Fault (schedule.py), so
a fault whose nominal path fails draws nothing more. pause of the leader when no leader is
found is skipped (bash paused a random node instead).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from . import netfilter, procs
from .cluster import http
from .record import fmt_s, now_ms
from .schedule import NODE_IDS, Fault

if TYPE_CHECKING:  # pragma: no cover
    from .run import Run


def followers(leader: int) -> list[int]:
    return [n for n in NODE_IDS if n != leader]


def count_no_space(log: Path) -> int:
    """Lines of the log that mention 'no space' (any case), like grep -ci."""
    try:
        return sum(1 for line in log.read_text(errors="replace").splitlines()
                   if "no space" in line.lower())
    except OSError:
        return 0


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def snapshot_installed(log_tail: str) -> str:
    """The last 'snapshot installed id=...' in the log lines (colours stripped), or ''."""
    found = re.findall(r"snapshot installed id=\S*", ANSI.sub("", log_tail))
    return found[-1] if found else ""


def df(path: Path, fields: str) -> str:
    """`df -h --output=FIELDS PATH`, the values only, one space apart."""
    try:
        out = subprocess.run(["df", "-h", f"--output={fields}", str(path)],
                             capture_output=True, text=True).stdout
    except OSError:
        return "?"
    lines = out.strip().splitlines()
    return " ".join(lines[-1].split()) if lines else "?"


def fill(path: Path) -> None:
    """Writes zeros to path until the file system is full (ENOSPC)."""
    block = bytes(1 << 20)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError:
        return
    try:
        while True:
            os.write(fd, block)
    except OSError:  # ENOSPC: full, as wanted (anything else: as full as it gets)
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------

def kill_and_restart(run: Run, name: str, node: int, down: int) -> None:
    pid = run.cluster.node_pid(node)
    if pid is None:
        run.rec.say(f"{name}: node {node} is not running; skipped")
        return
    run.rec.begin(name, node, f"SIGKILL pid {pid}, down {down}s")
    run.must(run.cluster.sh("kill", str(node)), f"cluster.sh kill {node}")
    run.rec.say(f"{name}: SIGKILL node {node} (pid {pid}); starting it again in {down}s")
    run.nap(down)
    t = now_ms()
    if run.cluster.sh("start", str(node)) == 0:
        run.rec.end(f"ready {fmt_s(now_ms() - t)}s after start")
        run.rec.say(f"{name}: node {node} ready again")
    else:
        run.rec.end("start FAILED")
        run.rec.say(f"{name}: node {node} did not start (see {run.ops_log})")


def kill_leader(run: Run, f: Fault) -> None:
    leader = run.cluster.find_leader()
    if leader is None:
        run.rec.say("kill-leader: no leader; skipped")
        return
    kill_and_restart(run, "kill-leader", leader, f.hold)


def kill_random(run: Run, f: Fault) -> None:
    kill_and_restart(run, "kill-random", f.node, f.hold)


def pause(run: Run, f: Fault) -> None:
    """pause (the leader or a random node, as drawn) and pause-leader."""
    if f.leader:
        node, what = run.cluster.find_leader(), "leader"
        if node is None:
            run.rec.say(f"{f.name}: no leader; skipped")
            return
    else:
        node, what = f.node, "random"
    pause_node(run, f.name, node, what, f.hold)


def pause_follower(run: Run, f: Fault) -> None:
    leader = run.cluster.find_leader()
    if leader is None:
        run.rec.say("pause-follower: no leader; skipped")
        return
    pause_node(run, "pause-follower", followers(leader)[f.follower], "follower", f.hold)


def pause_node(run: Run, name: str, node: int, what: str, hold: int) -> None:
    pid = run.cluster.node_pid(node)
    if pid is None:
        run.rec.say(f"{name}: node {node} is not running; skipped")
        return
    run.rec.begin(name, node, f"SIGSTOP pid {pid} ({what} node) for {hold}s")
    with run.signals.critical():
        run.paused_pid = pid
        os.kill(pid, signal.SIGSTOP)
    run.rec.say(f"{name}: SIGSTOP node {node} ({what}, pid {pid}) for {hold}s")
    run.nap(hold)
    run.resume_paused()
    run.rec.end("SIGCONT")
    run.rec.say(f"{name}: SIGCONT node {node}")


def partition(run: Run, name: str, node: int, what: str, hold: int) -> None:
    if run.o.on == "hosts":
        cut_link(run, name, node, what, hold)
        return
    try:
        ss = subprocess.run(["ss", "-Htn", "state", "established"], capture_output=True,
                            text=True).stdout
    except OSError:
        ss = ""
    bound = netfilter.peers_bound(ss, run.layout)
    if bound:
        mode = "full: node-to-node traffic dropped both ways"
    else:
        mode = ("inbound only: peers connect from 127.0.0.1, so only connections to its Raft "
                "port are cut")
    run.rec.begin(name, node, f"iptables isolates node {node} ({what}) for {hold}s; {mode}")
    run.chain.isolate(run.layout, node, bound)
    run.rec.say(f"{name}: node {node} ({what}) cut off from the other nodes for {hold}s ({mode})")
    run.nap(hold)
    run.chain.heal()
    run.rec.end("healed")
    run.rec.say(f"{name}: healed")


def cut_link(run: Run, name: str, node: int, what: str, hold: int) -> None:
    """On hosts: the node's link is taken down (its switch port), every packet to and from it
    lost, the load balancer's too; brought up after the hold."""
    run.rec.begin(name, node, f"node {node}'s link cut ({what}) for {hold}s: its switch port "
                  "down, every packet to and from its host lost")
    run.cluster.cut(node)
    run.rec.say(f"{name}: node {node} ({what}) link cut for {hold}s")
    run.nap(hold)
    run.cluster.heal(node)
    run.rec.end("link up")
    run.rec.say(f"{name}: healed")


def partition_leader(run: Run, f: Fault) -> None:
    leader = run.cluster.find_leader()
    if leader is None:
        run.rec.say("partition-leader: no leader; skipped")
        return
    partition(run, "partition-leader", leader, "leader", f.hold)


def partition_minority(run: Run, f: Fault) -> None:
    leader = run.cluster.find_leader()
    if leader is None:
        run.rec.say("partition-minority: no leader; skipped")
        return
    partition(run, "partition-minority", followers(leader)[f.follower], "follower", f.hold)


ROLL_STOP = re.compile(r"^\[[0-9]+/[0-9]+\] node ([0-9]+) \(([a-z]+)\): stopping")
ROLL_BACK = re.compile(r"^\[[0-9]+/[0-9]+\] node ([0-9]+): back in service")


def rolling_restart(run: Run, f: Fault) -> None:
    run.rec.say("rolling-restart: scripts/cluster.sh rolling-restart")

    def on_line(line: str) -> None:
        m = ROLL_STOP.match(line)
        if m:
            run.rec.begin("rolling-restart", int(m[1]), f"SIGTERM + start ({m[2]})")
            run.rec.say(f"rolling-restart: node {m[1]} ({m[2]}) stopping")
            return
        m = ROLL_BACK.match(line)
        if m:
            run.rec.end("back in service")
            run.rec.say(f"rolling-restart: node {m[1]} back in service")

    rc = run.cluster.sh_lines(["rolling-restart"], on_line)
    if rc != 0:
        run.rec.say(f"rolling-restart FAILED (exit {rc}; see {run.ops_log})")
        run.problems.append(f"rolling-restart failed (exit {rc}) at {run.rec.rel(now_ms())}s")
        run.rec.end(f"rolling-restart FAILED (exit {rc})")


def clock_skew(run: Run, f: Fault) -> None:
    node = f.node
    skew = run.o.clock_skew or f.skew
    log = run.run_dir / "logs" / f"node{node}.log"
    run.rec.begin("clock-skew", node, f"restarted under libfaketime FAKETIME={skew} for {f.hold}s")
    run.must(run.cluster.sh("stop", str(node)), f"cluster.sh stop {node}")
    # started like cluster.sh starts a node (own session, same pid file and log), with
    # libfaketime preloaded
    with open(log, "a") as lf:
        lf.write(f"--- chaos.sh: node {node} started under libfaketime FAKETIME={skew} ---\n")
    env = dict(os.environ, LD_PRELOAD=str(run.faketime_lib), FAKETIME=skew)
    with run.signals.critical(), open(log, "ab") as lf:
        p = subprocess.Popen([str(run.bin), "serve", "--config", str(run.config), "--node",
                              str(node)], stdin=subprocess.DEVNULL, stdout=lf,
                             stderr=subprocess.STDOUT, env=env, start_new_session=True)
        (run.run_dir / f"node{node}.pid").write_text(f"{p.pid}\n")
        procs.reap_in_background(p)
    t = now_ms()
    while not run.cluster.ready(node):
        if now_ms() - t > 30000 or p.returncode is not None or not procs.alive(p.pid):
            run.rec.say(f"clock-skew: node {node} under libfaketime did not become ready "
                        f"(see {log})")
            run.rec.add_detail("NOT ready under libfaketime")
            break
        run.nap(0.2)
    pid = run.cluster.node_pid(node)
    try:
        mapped = pid is not None and "libfaketime" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        mapped = False
    if mapped:
        run.rec.say(f"clock-skew: node {node} (pid {pid}) runs with its clock at {skew} "
                    f"for {f.hold}s")
    else:
        run.rec.say(f"clock-skew: WARNING: libfaketime is not mapped in node {node} "
                    f"(pid {pid or 'none'})")
        run.rec.add_detail("libfaketime NOT mapped")
    run.nap(f.hold)
    t = now_ms()
    if run.cluster.sh("restart", str(node)) == 0:
        run.rec.end(f"restarted with the real clock, ready after {fmt_s(now_ms() - t)}s")
        run.rec.say(f"clock-skew: node {node} restarted with the real clock")
    else:
        run.rec.end("restart with the real clock FAILED")
        run.rec.say(f"clock-skew: node {node} did not restart (see {run.ops_log})")


def disk_full(run: Run, f: Fault) -> None:
    node = run.disk_node
    d = run.out / "disk" / f"node{node}"
    log = run.run_dir / "logs" / f"node{node}.log"
    hold = f.hold
    pid = run.cluster.node_pid(node)
    nospc0 = count_no_space(log)
    run.rec.begin("disk-full", node, f"tmpfs {run.disk_mb} MiB ({df(d, 'used')} used by the "
                  f"node) filled for {hold}s")
    run.filler = d / "chaos-filler"
    fill(run.filler)
    run.rec.say(f"disk-full: node {node}'s data dir is full ({df(d, 'used,size')}) for {hold}s")
    crashed = None
    t = now_ms() + hold * 1000
    while now_ms() < t:
        if crashed is None and run.cluster.node_pid(node) is None:
            crashed = now_ms()
            run.rec.say(f"disk-full: node {node} (pid {pid}) exited")
        run.nap(0.2)
    run.free_filler()
    nospc1 = count_no_space(log)
    run.rec.end(f"freed; {nospc1 - nospc0} 'no space' log lines")
    run.rec.say("disk-full: space freed")
    if crashed is None and run.cluster.node_pid(node) is None:
        crashed = now_ms()
    if crashed is not None:
        if run.cluster.sh("start", str(node)) != 0:
            run.rec.say(f"disk-full: node {node} did not start (see {run.ops_log})")
        run.rec.record("disk-full-restart", node, crashed, now_ms(),
                       "node exited during disk-full; started after the space was freed")
        run.rec.say(f"disk-full: node {node} had exited; started again")
        return
    # alive: it must become ready by itself, else it is restarted
    t = now_ms() + 10000
    while not run.cluster.ready(node) and now_ms() < t:
        run.nap(0.25)
    if not run.cluster.ready(node):
        t = now_ms()
        run.rec.say(f"disk-full: node {node} alive but not ready 10 s after the space was freed; "
                    "restarting it")
        if run.cluster.sh("restart", str(node)) != 0:
            run.rec.say(f"disk-full: node {node} did not restart (see {run.ops_log})")
        run.rec.record("disk-full-restart", node, t, now_ms(),
                       "node alive but not ready 10 s after the space was freed; restarted")
    else:
        run.rec.say(f"disk-full: node {node} survived (ready without a restart)")


def wipe_and_rejoin(run: Run, f: Fault) -> None:
    """The snapshot is taken while every node is up: openraft (0.9) postpones purging the log
    while a replication to a down follower is in flight, so a snapshot taken during the downtime
    leaves the whole log in place and the wiped node would catch up from the log instead.
    Whether it rejoined through a snapshot is read from its log and recorded."""
    leader = run.cluster.find_leader()
    if leader is None:
        run.rec.say("wipe-and-rejoin: no leader; skipped")
        return
    node = followers(leader)[f.follower]
    data = run.data_dirs[node]
    if run.out not in data.parents:
        run.die(f"refusing to wipe {data} (not under {run.out})")
    down = f.hold
    before = run.cluster.status(leader).snapshot or 0
    url = f"{run.layout.http_url(leader)}/admin/snapshot"
    code, body = http(url, 10, "POST", {"Authorization": f"Bearer {run.admin_token}"})
    with open(run.ops_log, "a") as ops:
        ops.write(f"admin/snapshot on node {leader}: {body} {code:03d}\n")
    deadline = now_ms() + 5000
    st = run.cluster.status(leader)
    while (st.snapshot or 0) <= before and now_ms() < deadline:
        run.nap(0.1)
        st = run.cluster.status(leader)
    # the purge of the log up to the snapshot follows at the leader's next progress update
    run.nap(1)
    snap = st.snapshot if st.snapshot is not None else "none"
    run.rec.say(f"wipe-and-rejoin: leader {leader} snapshot at index {snap}; wiping node {node}")
    run.rec.begin("wipe-and-rejoin", node,
                  f"leader {leader} snapshot at {snap}; stopped, data deleted, down {down}s")
    run.must(run.cluster.sh("stop", str(node)), f"cluster.sh stop {node}")
    wipe(data)
    run.rec.say(f"wipe-and-rejoin: node {node} stopped and its data deleted")
    run.nap(down)
    t = now_ms()
    log = run.run_dir / "logs" / f"node{node}.log"
    size = log.stat().st_size if log.exists() else 0
    if run.cluster.sh("start", str(node)) == 0:
        ready_ms = now_ms() - t
        deadline = now_ms() + 5000
        st = run.cluster.status(node)
        while st.applied is None and now_ms() < deadline:
            run.nap(0.2)
            st = run.cluster.status(node)
        with open(log, "rb") as lf:
            lf.seek(size)
            installed = snapshot_installed(lf.read().decode(errors="replace"))
        if installed:
            how = f"through a snapshot ({installed[len('snapshot '):]})"
        else:
            how = "WITHOUT a snapshot (no 'snapshot installed' in its log: from the log)"
        applied = st.applied if st.applied is not None else "?"
        run.rec.end(f"rejoined, ready after {fmt_s(ready_ms)}s, {how}, applied {applied}")
        run.rec.say(f"wipe-and-rejoin: node {node} rejoined {how}, applied {applied}")
    else:
        run.rec.end("start FAILED")
        run.rec.say(f"wipe-and-rejoin: node {node} did not start (see {run.ops_log})")


def wipe(data: Path) -> None:
    """Deletes everything in data (not data itself; a missing data dir holds nothing)."""
    if not data.is_dir():
        return
    for child in data.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


NEMESES = {
    "kill-leader": kill_leader,
    "kill-random": kill_random,
    "pause": pause,
    "pause-leader": pause,
    "pause-follower": pause_follower,
    "partition-leader": partition_leader,
    "partition-minority": partition_minority,
    "rolling-restart": rolling_restart,
    "clock-skew": clock_skew,
    "disk-full": disk_full,
    "wipe-and-rejoin": wipe_and_rejoin,
}

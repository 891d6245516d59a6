"""Catch-up and memory: a fresh 3-node cluster, N sessions restored into it (a synthetic backup
from `sessionraft bench-backup`, or BENCH_BACKUP), then a 4th node started and added with
`scripts/cluster.sh add-node`: the time from its start to /readyz 200 and to its applied index
reaching the leader's last log index; then every node's memory."""

import json
import os
import re
import subprocess
import time

from . import procs
from .common import fmt_s, nap, now_ms, say
from .systems import Sessionraft


def last_warning(log):
    """"; last warning in LOG: ..." (the node's latest WARN/ERROR line, colours and the time stamp
    removed, at most 300 characters), or ''."""
    try:
        with open(log, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    found = ""
    for line in text.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if re.search(r" (WARN|ERROR) ", line):
            found = line
    if not found:
        return ""
    found = re.sub(r"^[^ ]+ +", "", found, count=1)[:300]
    return f"; last warning in {os.path.basename(log)}: {found}"


def catchup_times(t_start, t_ready, t_caught, t_added, t_call):
    """(start→ready, start→caught up, catch-up = the later of both, add-node duration) in ms, each
    None when not measured."""
    ready = t_ready - t_start if t_start is not None and t_ready is not None else None
    caught = t_caught - t_start if t_start is not None and t_caught is not None else None
    catchup = max(ready, caught) if ready is not None and caught is not None else None
    added = t_added - (t_start if t_start is not None else t_call) if t_added is not None else None
    return ready, caught, catchup, added


def _write(path, doc):
    with open(path, "w") as f:
        f.write(json.dumps(doc) + "\n")


def run_catchup(run):
    """The catch-up part; writes catchup.json and memory-catchup.jsonl."""
    opts, sessions = run.opts, run.sessions
    backup = os.path.join(run.work, "catchup-backup.bin")
    sr = Sessionraft(run, "catchup", run.bin).setup()
    sr.up()
    backup_ms = None
    env_backup = os.environ.get("BENCH_BACKUP") or ""
    if env_backup:
        say(f"catch-up: restoring {env_backup} ({sessions} sessions; BENCH_BACKUP)")
        backup, rc = env_backup, 0
    else:
        say(f"catch-up: sessionraft bench-backup --sessions {sessions}")
        t = now_ms()
        rc = run.run_child([run.bin, "bench-backup", "--sessions", str(sessions), "--out", backup],
                           os.path.join(sr.dir, "bench-backup.log"))
        backup_ms = now_ms() - t
        size = subprocess.run(["du", "-h", backup], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL).stdout.decode().split("\t", 1)[0].strip()
        say(f"catch-up: backup written in {fmt_s(backup_ms)} s ({size}); restoring it")
    out = os.path.join(run.work, "catchup.json")
    if rc != 0:
        run.problem(f"catch-up: bench-backup failed (exit {rc}; {sr.dir}/bench-backup.log)")
        _write(out, {"sessions": sessions, "error": f"bench-backup failed (exit {rc})"})
        sr.down()
        return
    t = now_ms()
    rc = run.run_child([run.bin, "restore", "--config", sr.config, "--from", backup],
                       os.path.join(sr.dir, "restore.log"))
    restore_ms = now_ms() - t
    if rc != 0:
        run.problem(f"catch-up: restore failed (exit {rc}; {sr.dir}/restore.log)")
        _write(out, {"sessions": sessions, "backup_ms": backup_ms, "error": f"restore failed (exit {rc})"})
        sr.down()
        return
    ok, why = sr.wait_whole(600, (1, 2, 3))
    if not ok:
        run.problem(f"catch-up: the 3 nodes did not all apply the restore within 600 s: {why}")
    replicated_ms = now_ms() - t
    leader = sr.find_leader((1, 2, 3))
    gauge = sr.status(leader)["sessions"] if leader is not None else None
    say(f"catch-up: restored in {fmt_s(restore_ms)} s, on all 3 nodes after {fmt_s(replicated_ms)} s "
        f"(sessions gauge: {'?' if gauge is None else gauge})")
    if not env_backup and os.path.exists(backup):
        os.remove(backup)
    nap(2)

    say(f"catch-up: starting node 4 on {sr.addr(4)} and adding it (scripts/cluster.sh add-node)")
    pidf = os.path.join(sr.rundir, "node4.pid")
    t_call = now_ms()
    # in a session of its own: at a timeout, its process group (cluster.sh and the `sessionraft
    # cluster add-node` it waits for) is stopped as a whole
    with open(sr.ops_log, "ab") as log:
        add = procs.start([run.cluster_sh, "add-node", "4", sr.addr(4), sr.addr(4)], stdout=log, session=True,
                          env=sr.env(binary=run.bin))
    run.add_node = add
    run.children.append((add, "bash", True))
    deadline = t_call + opts.catchup_timeout * 1000
    t_start = t_ready = t_caught = t_added = target = add_rc = None
    err, timed_out = "", False

    def state_of_node4():
        st = sr.status(4)
        applied = "none" if st["applied"] is None else st["applied"]
        seen = "/readyz 200 seen" if t_ready is not None else "/readyz never 200"
        return f"{seen}, applied {applied} of {'?' if target is None else target}"

    while True:
        now = now_ms()
        if t_start is None and os.path.exists(pidf) and os.path.getsize(pidf) > 0:
            t_start = now
        if t_start is not None and t_ready is None and sr.ready(4):
            t_ready = now_ms()
        if t_start is not None and target is None:
            lead = sr.find_leader((1, 2, 3))
            if lead is not None:
                target = sr.status(lead)["last"]
        if target is not None and t_caught is None:
            st = sr.status(4)
            if st["applied"] is not None and st["applied"] >= target:
                t_caught = now_ms()
        if add_rc is None and add.poll() is not None:
            add_rc = add.returncode if add.returncode >= 0 else 128 - add.returncode
            run.add_node = None
            run.forget(add)
            t_added = now_ms()
            if add_rc != 0:
                err = (f"scripts/cluster.sh add-node exited {add_rc} after {fmt_s(t_added - t_call)} s "
                       f"(see {sr.dir}/ops.log): node 4 {state_of_node4()}"
                       + last_warning(os.path.join(sr.rundir, "logs", "node4.log")))
                run.problem(f"catch-up: {err}")
                break
        if t_ready is not None and t_caught is not None and add_rc is not None:
            break
        if now > deadline:
            timed_out = True
            err = (f"node 4 not ready and caught up within {opts.catchup_timeout} s (BENCH_CATCHUP_TIMEOUT): "
                   f"{state_of_node4()}" + last_warning(os.path.join(sr.rundir, "logs", "node4.log")))
            run.problem(f"catch-up: {err}")
            run.stop_add_node()
            break
        # Not faster: each round forks up to two curls, and at 20 ms they took ~20% of the
        # machine's CPU from the node being measured (perf, bench/PROFILE.md round 5).
        time.sleep(0.1)
    ready_ms, caught_ms, catchup_ms, add_ms = catchup_times(t_start, t_ready, t_caught, t_added, t_call)
    n = lambda v: "null" if v is None else v  # noqa: E731
    say(f"catch-up: node 4 ready after {n(ready_ms)} ms, caught up (index {'?' if target is None else target}) after "
        f"{n(caught_ms)} ms from its start; add-node done after {n(add_ms)} ms (exit {'?' if add_rc is None else add_rc})")
    _write(out, {"sessions": sessions, "backup_file": env_backup or None, "backup_ms": backup_ms,
                 "restore_ms": restore_ms, "replicated_ms": replicated_ms, "sessions_gauge": gauge,
                 "target_index": target, "start_to_ready_ms": ready_ms, "start_to_caught_up_ms": caught_ms,
                 "catchup_ms": catchup_ms, "add_node_ms": add_ms, "add_node_rc": add_rc, "error": err or None,
                 "timed_out": timed_out, "caught_up": t_ready is not None and t_caught is not None})
    ids = (1, 2, 3, 4)
    if not err:
        ok, why = sr.wait_whole(120, (1, 2, 3, 4))
        if not ok:
            run.problem(f"memory: the 4 nodes were not whole 120 s after the catch-up: {why}")
    else:
        ids = (1, 2, 3)  # node 4 does not hold the sessions
    nap(2)
    say(f"memory with {sessions} sessions (nodes {' '.join(map(str, ids))}):")
    sr.record_memory(ids, os.path.join(run.work, "memory-catchup.jsonl"))
    sr.down()

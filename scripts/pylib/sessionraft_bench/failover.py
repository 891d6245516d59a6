"""Failover: under a light write load, SIGKILL the leader --trials times; each trial's time from
the kill to the first successful POST /api/counter through a survivor (and, from a watcher
polling in parallel, to a survivor reporting itself leader of a newer term)."""

import json
import os
import re
import signal
import subprocess
import threading
import time

from . import procs
from .common import Usage, nap, now_ms, say

TIMEOUT_MS = 30000


def survivors(leader):
    """The two other nodes of 1-3, in the order the trial asks them."""
    return leader % 3 + 1, (leader + 1) % 3 + 1


def load_command(binary, targets, rate, trials, history, ca=None):
    """`sessionraft load` for the whole run: 8 users, increments only, open loop at RATE/s (https
    targets verified against CA)."""
    argv = [binary, "load", "--targets", targets, "--users", "8", "--rate", str(rate), "--mix", "inc=100",
            "--duration", str(trials * 60 + 120), "--settle", "0", "--seed", "1", "--out", history]
    return argv + (["--ca", ca] if ca else [])


def post_counter(addr, jar, write_out=False, scheme="http", ca=None):
    """POST /api/counter through curl with the cookie jar: (http code text, body)."""
    args = ["curl", "-s", "--noproxy", "*", "-m", "5", "-c", jar, "-b", jar, "-X", "POST"]
    args += ["--cacert", ca] if ca else []
    if write_out:
        args += ["-w", "\n%{http_code}", f"{scheme}://{addr}/api/counter"]
    else:
        args += ["-o", "/dev/null", "-w", "%{http_code}", f"{scheme}://{addr}/api/counter"]
    r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = r.stdout.decode(errors="replace")
    if not write_out:
        return out, ""
    body, _, code = out.rpartition("\n")
    return code, body


def served_by(body):
    m = re.search(r'"served_by":([0-9]+)', body)
    return int(m.group(1)) if m else None


class LeaderWatch(threading.Thread):
    """Polls IDS (~every 10 ms) until one says it leads in a term above OLD_TERM; `.seen` is then
    (ms since T0, id), also written to OUT as "MS ID". Gives up 30 s after T0."""

    def __init__(self, cluster, old_term, t0, out, ids):
        super().__init__(daemon=True)
        self.cluster, self.old_term, self.t0, self.out, self.ids = cluster, old_term, t0, out, ids
        self.seen = None
        self.stop = threading.Event()

    def run(self):
        while now_ms() - self.t0 < TIMEOUT_MS and not self.stop.is_set():
            for i in self.ids:
                st = self.cluster.status(i)
                if st["role"] == "leader" and (st["term"] or 0) > self.old_term:
                    self.seen = (now_ms() - self.t0, i)
                    with open(self.out, "w") as f:
                        f.write(f"{self.seen[0]} {i}\n")
                    return
            time.sleep(0.01)


def trial_record(trial, killed, ok, ms, attempts, served, new_leader, elected_ms):
    return {"trial": trial, "killed": killed, "ok": ok, "ms": ms, "attempts": attempts, "served_by": served,
            "new_leader": new_leader, "elected_ms": elected_ms}


def run_failover(run, sr):
    """The failover part on the running cluster SR; writes failover.json and failover.jsonl."""
    d = os.path.join(run.work, "failover")
    os.makedirs(d, exist_ok=True)
    ok, why = sr.wait_whole(60, (1, 2, 3))
    if not ok:
        raise Usage(f"failover: the cluster is not whole before the first trial: {why}")
    load_desc = "no background load (this binary has no 'load' command)"
    if run.has_cmd("load"):
        load_desc = (f"a light write load (`sessionraft load`, {run.opts.failover_rate} increments/s open loop, "
                     "8 users, all 3 nodes)")
        with open(os.path.join(d, "load.log"), "wb") as log:
            p = procs.start(load_command(run.bin, sr.targets(), run.opts.failover_rate, run.opts.trials,
                                         os.path.join(d, "load-history.jsonl"), sr.ca), stdout=log, session=True)
        run.load = p
        run.children.append((p, "sessionraft", True))
        nap(2)
    else:
        run.problem(f"failover measured without background load: {run.bin} has no 'load' command")
    with open(os.path.join(run.work, "failover.json"), "w") as f:
        f.write(json.dumps({"load": load_desc, "timeout_ms": TIMEOUT_MS, "rate": run.opts.failover_rate}) + "\n")
    trials_file = os.path.join(run.work, "failover.jsonl")
    open(trials_file, "w").close()
    say(f"failover: {run.opts.trials} trials under {load_desc}")
    for trial in range(1, run.opts.trials + 1):
        ok, why = sr.wait_whole(120, (1, 2, 3))
        if not ok:
            run.problem(f"failover: the cluster was not whole 120 s after trial {trial - 1}: {why}; "
                        f"stopped after {trial - 1} trials")
            break
        nap(1)
        leader = sr.find_leader((1, 2, 3))
        if leader is None:
            run.problem(f"failover: no leader before trial {trial}")
            break
        old_term = sr.status(leader)["term"] or 0
        s1, s2 = survivors(leader)
        jar = os.path.join(d, f"jar-{trial}")
        if os.path.exists(jar):
            os.remove(jar)
        # the session exists before the kill
        code, _ = post_counter(sr.addr(s1), jar, scheme=sr.scheme, ca=sr.ca)
        if code != "200":
            run.problem(f"failover: trial {trial}: POST before the kill answered {code}")
            continue
        pid = sr.node_pid(leader)
        if pid is None:
            run.problem(f"failover: trial {trial}: no recorded pid for leader {leader}")
            break
        elected_file = os.path.join(d, f"elected-{trial}")
        if os.path.exists(elected_file):
            os.remove(elected_file)
        t0 = now_ms()
        os.kill(pid, signal.SIGKILL)
        watch = LeaderWatch(sr, old_term, t0, elected_file, (s1, s2))
        run.watch = watch
        watch.start()
        attempts, ok, served, t1 = 0, False, None, None
        while True:
            target = s1 if attempts % 2 == 0 else s2
            attempts += 1
            code, body = post_counter(sr.addr(target), jar, write_out=True, scheme=sr.scheme, ca=sr.ca)
            if code == "200":
                t1, ok, served = now_ms(), True, served_by(body)
                break
            if now_ms() - t0 > TIMEOUT_MS:
                t1 = now_ms()
                break
            time.sleep(0.01)
        watch.join()
        run.watch = None
        elected_ms, new_leader = watch.seen if watch.seen else (None, None)
        rec = trial_record(trial, leader, ok, t1 - t0, attempts, served, new_leader, elected_ms)
        with open(trials_file, "a") as f:
            f.write(json.dumps(rec) + "\n")
        q = lambda v: "?" if v is None else v  # noqa: E731
        if ok:
            say(f"failover trial {trial}: killed leader {leader}; new leader {q(new_leader)} after {q(elected_ms)} ms; "
                f"first 200 after {t1 - t0} ms ({attempts} requests, served by {q(served)})")
        else:
            run.problem(f"failover trial {trial}: no successful POST within {TIMEOUT_MS // 1000} s after killing "
                        f"leader {leader}")
        if sr.cluster_sh("start", str(leader)) != 0:
            run.problem(f"failover: node {leader} did not start again after trial {trial} (see {sr.dir}/ops.log)")
            break
    run.stop_load()
    ok, why = sr.wait_whole(120, (1, 2, 3))
    if not ok:
        run.problem(f"failover: the cluster was not whole 120 s after the last trial: {why}")

"""`scripts/chaos.sh cleanup`: remove what a chaos run killed with SIGKILL left behind (a normal
run, even a failed or interrupted one, cleans up after itself).

By the registry target/chaos/.active/PID (holding the run's OUT): its load (its process group,
if the pid still runs that run's load) and its cluster (cluster.sh down; a run --on hosts:
scripts/hosts.sh down, every namespace and link it made); then every iptables
chain chaos-PID-in whose run is gone, and every tmpfs mounted as chaos-PID.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import netfilter, procs


def stale_mounts(proc_mounts: str) -> list[tuple[str, str]]:
    """(source, mount point) of the tmpfs mounts named chaos-PID in /proc/mounts."""
    out = []
    for line in proc_mounts.splitlines():
        f = line.split()
        if len(f) >= 3 and re.fullmatch(r"chaos-[0-9]+", f[0]) and f[2] == "tmpfs":
            out.append((f[0], f[1].replace("\\040", " ")))
    return out


def cleanup(root: Path) -> int:
    state = root / "target" / "chaos"
    if os.geteuid() != 0:
        print("chaos.sh: cleanup needs root (iptables, umount)", file=sys.stderr)
        return 2
    (state / ".active").mkdir(parents=True, exist_ok=True)
    fd = os.open(state / ".lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    deadline = time.monotonic() + 15
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if time.monotonic() > deadline:
                print(f"chaos.sh: a chaos run is active (lock {state}/.lock held); nothing to "
                      "clean up", file=sys.stderr)
                return 2
            time.sleep(0.2)
    for f in sorted((state / ".active").iterdir()):
        pid = f.name
        out = f.read_text().strip()
        print(f"run {pid} ({out}): stopping its load and its cluster", flush=True)
        lp = procs.read_pid_file(Path(out) / "load.pid")
        if lp is not None and procs.is_load(procs.cmdline(lp), Path(out)):
            procs.signal_group(lp, signal.SIGTERM)
        env = dict(os.environ, SESSIONRAFT_RUN_DIR=f"{out}/cluster",
                   SESSIONRAFT_CONFIG=f"{out}/config.toml")
        subprocess.run([str(root / "scripts" / "cluster.sh"), "down"], env=env,
                       stdin=subprocess.DEVNULL)
        if (Path(out) / "hosts" / "state.json").is_file():  # a run --on hosts
            subprocess.run([str(root / "scripts" / "hosts.sh"), "--state", f"{out}/hosts",
                            "down"], stdin=subprocess.DEVNULL)
        f.unlink()
    listing = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout
    for chain in netfilter.stale_chains(listing):
        pid = netfilter.chain_pid(chain)
        if procs.alive(pid) and procs.is_chaos_run(procs.cmdline(pid)):
            continue
        print(f"removing iptables chain {chain}", flush=True)
        netfilter.remove_chain(chain, netfilter.run_quiet, hooks=("INPUT", "OUTPUT"))
        netfilter.run_checked(netfilter.ipt("-X", chain))
    for src, target in stale_mounts(Path("/proc/mounts").read_text()):
        print(f"unmounting {target} ({src})", flush=True)
        if subprocess.run(["umount", target], stderr=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["umount", "-l", target])
    print("clean")
    return 0

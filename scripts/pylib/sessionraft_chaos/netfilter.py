"""Partitions with iptables, only ever in the run's own chain chaos-PID-in (hooked into INPUT).

isolate() drops the TCP traffic between a node and every other node of this cluster, both ways,
by IP and by this cluster's ports (another cluster on 127.0.0.11-13 is not touched). When the
peers are not bound to their own IPs (an older binary connects to its peers from 127.0.0.1),
only connections to the node's Raft port can be cut: the others cannot reach it, it can still
reach them (an asymmetric partition).
"""

from __future__ import annotations

import re
import subprocess
from typing import Callable, Sequence

from .config import Layout, node_ip
from .schedule import NODE_IDS

Runner = Callable[[Sequence[str]], int]


def ipt(*args: str) -> list[str]:
    return ["iptables", "-w", *args]


def chain_name(pid: int) -> str:
    return f"chaos-{pid}-in"


def isolate_rules(chain: str, layout: Layout, x: int, bound: bool) -> list[list[str]]:
    """The iptables commands that cut node x off from the other nodes."""
    ix = node_ip(x)
    px = f"{layout.http_ports[x]},{layout.raft_ports[x]}"
    cmds = []
    for y in NODE_IDS:
        if y == x:
            continue
        iy = node_ip(y)
        py = f"{layout.http_ports[y]},{layout.raft_ports[y]}"
        mp = ["-p", "tcp", "-m", "multiport"]
        cmds += [
            ipt("-A", chain, "-s", ix, "-d", iy, *mp, "--dports", py, "-j", "DROP"),
            ipt("-A", chain, "-s", iy, "-d", ix, *mp, "--sports", py, "-j", "DROP"),
            ipt("-A", chain, "-s", iy, "-d", ix, *mp, "--dports", px, "-j", "DROP"),
            ipt("-A", chain, "-s", ix, "-d", iy, *mp, "--sports", px, "-j", "DROP"),
        ]
    if not bound:
        cmds.append(ipt("-A", chain, "-d", ix, "-p", "tcp", "--dport", str(layout.raft_ports[x]),
                        "-j", "DROP"))
    return cmds


def peers_bound(ss_output: str, layout: Layout) -> bool:
    """Whether `ss -Htn state established` shows a connection between two of this cluster's
    node IPs (127.0.0.11-13) to or from one of its ports: then the peers connect from their own
    IPs and the rules cut exactly node-to-node traffic."""
    addrs = set()
    for n in NODE_IDS:
        addrs.add(layout.http_addr(n))
        addrs.add(layout.raft_addr(n))
    node = re.compile(r"^127\.0\.0\.1[123]:")
    for line in ss_output.splitlines():
        f = line.split()
        if len(f) < 4:
            continue
        local, peer = f[2], f[3]
        if node.match(local) and node.match(peer) and (local in addrs or peer in addrs):
            return True
    return False


def run_quiet(argv: Sequence[str]) -> int:
    return subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode


def run_checked(argv: Sequence[str]) -> int:
    """Runs an iptables command; its failure stops the run (as `set -e` did)."""
    rc = subprocess.run(list(argv), stdin=subprocess.DEVNULL).returncode
    if rc != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed (exit {rc})")
    return rc


class Chain:
    """The run's chain. create() makes it and hooks it into INPUT; isolate() adds a partition;
    heal() flushes it; remove() unhooks and deletes it (every hook, even one added twice)."""

    def __init__(self, name: str, run: Runner = run_checked, run_quiet: Runner = run_quiet):
        self.name = name
        self.made = False
        self._run = run
        self._quiet = run_quiet

    def create(self) -> None:
        self._run(ipt("-N", self.name))
        self.made = True
        self._run(ipt("-I", "INPUT", "1", "-j", self.name))

    def isolate(self, layout: Layout, node: int, bound: bool) -> None:
        for cmd in isolate_rules(self.name, layout, node, bound):
            self._run(cmd)

    def heal(self) -> None:
        if self.made:
            self._run(ipt("-F", self.name))

    def remove(self) -> bool:
        """Returns False when the chain could not be deleted."""
        if not self.made:
            return True
        remove_chain(self.name, self._quiet)
        ok = self._quiet(ipt("-X", self.name)) == 0
        self.made = not ok
        return ok


def remove_chain(name: str, run: Runner, hooks: Sequence[str] = ("INPUT",)) -> None:
    """Unhooks chain name from hooks (as often as it is hooked) and flushes it (no -X)."""
    for hook in hooks:
        for _ in range(1000):
            if run(ipt("-D", hook, "-j", name)) != 0:
                break
    run(ipt("-F", name))


def stale_chains(iptables_s: str) -> list[str]:
    """Chains chaos-PID-in from the output of `iptables -S`."""
    out = []
    for line in iptables_s.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] == "-N" and re.fullmatch(r"chaos-[0-9]+-in", f[1]):
            out.append(f[1])
    return out


def chain_pid(chain: str) -> int:
    return int(chain[len("chaos-"):-len("-in")])

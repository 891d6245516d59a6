"""`--on hosts`: the run's cluster on hosts made of network namespaces (scripts/hosts.sh, the
package sessionraft_hosts) instead of scripts/cluster.sh on loopback addresses.

Each node runs in a host of its own as its Kubernetes pod would (the ConfigMap's cluster.toml:
peers by name, the manifest's Raft timings; plus this run's small snapshots and read
consistency through the environment), HAProxy in a namespace of its own with its listeners on
127.0.0.1. What differs from loopback for the faults:

    kill-*, pause*        the same signals, by the pid hosts.sh recorded (checked to run inside
                          the run's own namespace)
    partition-*           the node's link is cut (its switch port down: a pulled cable), not
                          iptables; healed by bringing it up
    the others            not supported here (cli.py refuses them)

The nodes are read through HAProxy's one-node listeners (each node's own /cluster/status,
/readyz, /cluster/digest), the users go through its load balancer (and, with --via all, the
one-node listeners). The hosts' state directory is OUT/hosts (its hosts/NAME/node.log are the
node logs). With CHAOS_TLS=1 the hosts run with [tls] (`hosts.sh up --tls`: certificates by host
name in OUT/hosts/certs), HAProxy's listeners are HTTPS, and the run trusts that CA alone.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sessionraft_hosts import plan as hosts_plan
from sessionraft_hosts import system as hosts_system
from sessionraft_hosts.state import Dir as HostsDir
from sessionraft_hosts.state import StateError

from . import procs
from .cli import HOSTS_SCENARIOS as SUPPORTED  # noqa: F401 - the one list lives in cli.py
from .cluster import Cluster, trust_ca


@dataclass(frozen=True)
class HostsLayout:
    """The addresses chaos.sh uses, on hosts: the load balancer and each node's one-node
    listener, all on 127.0.0.1 (Layout's interface)."""

    lb_port: int
    direct_ports: dict[int, int]
    scheme: str = "http"  # https with --tls (CHAOS_TLS=1)

    @property
    def lb_addr(self) -> str:
        return f"127.0.0.1:{self.lb_port}"

    @property
    def lb_url(self) -> str:
        return f"{self.scheme}://{self.lb_addr}"

    def http_addr(self, n: int) -> str:
        return f"127.0.0.1:{self.direct_ports[n]}"

    def http_url(self, n: int) -> str:
        return f"{self.scheme}://{self.http_addr(n)}"

    @property
    def raft_ports(self) -> dict[int, int]:
        return {n: hosts_plan.HTTP_PORT for n in self.direct_ports}


def layout_of(state: dict) -> HostsLayout:
    """From sessionraft_hosts' state.json (as a dict)."""
    ports = state["lb"]["ports"]
    return HostsLayout(int(ports["lb"]), {hosts_plan.node_id_of(name): int(p)
                                          for name, p in ports["direct"].items()},
                       "https" if state.get("tls") else "http")


def node_env(read_consistency: str) -> list[str]:
    """The `--env` pairs of the run's nodes: chaos.sh's small snapshots (a wiped or lagging node
    catches up through one) and the read mode when one is asked for."""
    env = ["SESSIONRAFT_RAFT__SNAPSHOT_LOGS_SINCE_LAST=50",
           "SESSIONRAFT_RAFT__MAX_IN_SNAPSHOT_LOG_TO_KEEP=10"]
    if read_consistency:
        env.append(f"SESSIONRAFT_RAFT__READ_CONSISTENCY={read_consistency}")
    return env


def up_argv(script: Path, state_dir: Path, bin_path: Path, read_consistency: str,
            tls: bool = False) -> list[str]:
    argv = [str(script), "--state", str(state_dir), "up", "--bin", str(bin_path)]
    if tls:
        argv.append("--tls")
    for e in node_env(read_consistency):
        argv += ["--env", e]
    return argv


class HostsCluster(Cluster):
    """Cluster's interface (sh, node_pid, status, ready, lb_status, find_leader, wait_healthy)
    over scripts/hosts.sh."""

    def __init__(self, hosts_sh: Path, state_dir: Path, bin_path: Path, ops_log: Path,
                 read_consistency: str = "", tls: bool = False):
        super().__init__(hosts_sh, state_dir / "cluster.toml", state_dir, bin_path, ops_log,
                         None)
        self.hosts_sh = hosts_sh
        self.state_dir = state_dir
        self.read_consistency = read_consistency
        self.tls = tls

    def _state(self) -> dict:
        return json.loads((self.state_dir / "state.json").read_text())

    def hosts(self, *args: str) -> int:
        """scripts/hosts.sh --state DIR ARGS, output appended to ops.log; its exit code."""
        return procs.run_logged([str(self.hosts_sh), "--state", str(self.state_dir), *args],
                                self.ops_log)

    def sh(self, *args: str) -> int:
        """cluster.sh's commands, done on the hosts: up, down, start N (waits until ready),
        stop N, kill N, restart N."""
        cmd, rest = args[0], list(args[1:])
        if cmd == "up":
            rc = procs.run_logged(up_argv(self.hosts_sh, self.state_dir, self.bin,
                                          self.read_consistency, self.tls), self.ops_log)
            if rc == 0:
                self.layout = layout_of(self._state())
                if self.tls:
                    trust_ca(self.ca())
            return rc
        if cmd == "down":
            return self.hosts("down")
        if cmd in ("stop", "kill"):
            return self.hosts(cmd, *rest)
        if cmd == "start":
            rc = self.hosts("start", *rest)
            return rc if rc != 0 else self.wait_ready(int(rest[0]))
        if cmd == "restart":
            rc = self.hosts("stop", *rest)
            return rc if rc != 0 else self.sh("start", *rest)
        raise ValueError(f"{cmd}: not a command of a run across hosts")

    def ca(self) -> Path:
        """The cluster CA of a --tls run (hosts.sh's DIR/certs)."""
        return self.state_dir / "certs" / "ca.crt"

    def wait_ready(self, n: int, timeout_s: float = 30) -> int:
        deadline = time.monotonic() + timeout_s
        while not self.ready(n):
            if time.monotonic() > deadline or self.node_pid(n) is None:
                return 1
            time.sleep(0.1)
        return 0

    def cut(self, n: int) -> None:
        if self.hosts("cut", str(n)) != 0:
            raise RuntimeError(f"hosts.sh cut {n} failed (see {self.ops_log})")

    def heal(self, n: int) -> None:
        if self.hosts("heal", str(n)) != 0:
            raise RuntimeError(f"hosts.sh heal {n} failed (see {self.ops_log})")

    def heal_all(self) -> None:
        """Every cut link up again (the cleanup's heal; the hosts go with `down` anyway)."""
        try:
            st = self._state()
        except (OSError, ValueError):
            return
        for name, h in st.get("hosts", {}).items():
            if h.get("link") == "cut" and h.get("ip"):
                self.hosts("heal", name)

    def node_pid(self, n: int) -> int | None:
        """Node n's pid while it runs inside its host (hosts.sh's record, checked)."""
        try:
            st = HostsDir(self.state_dir).load()
        except (StateError, OSError):
            return None
        name = hosts_plan.host_name(n - 1)
        h = st.hosts.get(name)
        if h is None or h.pid is None:
            return None
        ns = hosts_plan.Names(st.rid).host(name)
        return h.pid if hosts_system.in_netns(h.pid, ns) else None

    def node_log(self, n: int) -> Path:
        return self.state_dir / "hosts" / hosts_plan.host_name(n - 1) / "node.log"


def check_host_tools() -> str | None:
    """Why a run across hosts cannot start here (None: it can)."""
    if os.geteuid() != 0:
        return "--on hosts needs root (network namespaces)"
    for tool in ("ip", "haproxy"):
        if not any(os.access(f"{d}/{tool}", os.X_OK) for d in
                   ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin")):
            return f"{tool} not found (scripts/install-deps.sh --cluster)"
    return None

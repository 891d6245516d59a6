"""The nodes a command covers and the load balancer's addresses.

Config nodes come from the binary (`sessionraft nodes --config FILE --json`, or the older
tab-separated listing `id, http, data_dir, raft, resp|-`; older still: 3 or 4 columns), which
validates the config; nodes added with add-node from RUN_DIR/extra-nodes; config nodes removed
with remove-node are listed in RUN_DIR/removed-nodes and left out of up, HAProxy and
rolling-restart. The run dir's files are read again at every question (add-node and remove-node
change them while a command runs).

Addresses are `host:port` strings, the host an IP, `[v6]` or a DNS name; they are passed on as
they are (HAProxy server lines and `sessionraft cluster add-node` take names).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field

from . import tls
from .console import Die
from .procs import haproxy_live_pid
from .rundir import RunDir, read_lines
from .settings import Settings, executable
from .tls import TlsFiles, parse as parse_tls

HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS = re.compile(
    rf"(?:[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}|\[[0-9a-fA-F:.]+\]|{HOST_LABEL}(?:\.{HOST_LABEL})*):[0-9]{{1,5}}"
)


def valid_addr(addr: str) -> bool:
    """IP:PORT, [IPv6]:PORT or NAME:PORT (a DNS name)."""
    return ADDRESS.fullmatch(addr) is not None


def split_addr(addr: str) -> tuple[str, str]:
    """(host, port) of `host:port`; an IPv6 host keeps its brackets (`[::1]`, as HAProxy's
    `addr` takes it)."""
    host, _, port = addr.rpartition(":")
    return host, port


@dataclass(frozen=True)
class Node:
    id: str
    http: str
    data_dir: str
    raft: str
    resp: str | None = None  # the Redis-protocol address (None: the node has none)


def parse_nodes_tsv(text: str) -> list[Node]:
    """`sessionraft nodes` output: `id<TAB>http<TAB>data_dir[<TAB>raft[<TAB>resp|-]]` lines
    (older binaries print 3 columns: raft_addr is then the http_addr; or 4: no resp_addr).
    Other lines are ignored."""
    out = []
    for line in text.splitlines():
        f = line.split("\t")
        if len(f) < 3 or not re.fullmatch(r"[0-9]+", f[0]):
            continue
        raft = f[3] if len(f) >= 4 and f[3] != "" else f[1]
        resp = f[4] if len(f) >= 5 and f[4] not in ("", "-") else None
        out.append(Node(f[0], f[1], f[2], raft, resp))
    return out


def parse_nodes_json(text: str) -> list[Node]:
    """`sessionraft nodes --json`: an array of objects with the fields id, http_addr,
    raft_addr, resp_addr (null when none), data_dir (and the *_listen ones, not used here).
    ValueError when it is not that."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("not a JSON array")
    out = []
    for n in data:
        if not isinstance(n, dict) or "id" not in n or "http_addr" not in n:
            raise ValueError(f"not a node: {n!r}")
        http = str(n["http_addr"])
        out.append(Node(str(n["id"]), http, str(n.get("data_dir") or ""),
                        str(n.get("raft_addr") or http), str(n["resp_addr"]) if n.get("resp_addr") else None))
    return out


def parse_extra(lines: list[list[str]]) -> list[Node]:
    """extra-nodes lines (`id, http, data_dir, raft`; a 5th field is a resp_addr)."""
    return [Node(f[0], f[1], f[2], f[3], f[4] if len(f) >= 5 and f[4] not in ("", "-") else None)
            for f in lines]


def addrs_from_haproxy_cfg(text: str) -> tuple[str, str]:
    """(lb_addr, lb_resp_addr) bound by a generated haproxy.cfg: the first `bind`, and the
    `bind` of frontend resp ("" when absent)."""
    lb = resp = ""
    frontend = ""
    for line in text.splitlines():
        f = line.split()
        if len(f) < 2:
            continue
        if f[0] == "frontend":
            frontend = f[1]
        elif f[0] == "bind":
            if not lb:
                lb = f[1]
            if frontend == "resp" and not resp:
                resp = f[1]
    return lb, resp


@dataclass
class Topology:
    run: RunDir
    config_nodes: list[Node] = field(default_factory=list)
    lb_addr: str = ""
    lb_resp_addr: str = ""
    tls: TlsFiles | None = None  # the config's [tls] (None: plain HTTP)

    def extra_nodes(self) -> list[Node]:
        return parse_extra(self.run.extra_lines())

    def removed(self) -> set[str]:
        return {t for line in read_lines(self.run.removed_file) for t in line.split()}

    def all(self) -> list[Node]:
        """Config nodes, then added nodes (a config node wins over an extra-nodes line with its
        id; the first line of an id wins)."""
        seen: set[str] = set()
        out = []
        for n in self.config_nodes + self.extra_nodes():
            if n.id not in seen:
                seen.add(n.id)
                out.append(n)
        return out

    def active(self) -> list[Node]:
        """All nodes but the removed ones: what up, HAProxy and rolling-restart cover."""
        removed = self.removed()
        return [n for n in self.all() if n.id not in removed]

    def node(self, node_id: str) -> Node | None:
        return next((n for n in self.all() if n.id == node_id), None)

    def resp_nodes(self) -> list[Node]:
        """The active nodes that have a resp_addr."""
        return [n for n in self.active() if n.resp]

    def resp_lb(self) -> bool:
        """The RESP frontend is served: a load balancer with a resp_addr and at least one node
        with one."""
        return bool(self.lb_addr and self.lb_resp_addr and self.resp_nodes())

    def is_config_node(self, node_id: str) -> bool:
        return any(n.id == node_id for n in self.config_nodes)

    def is_extra(self, node_id: str) -> bool:
        return not self.is_config_node(node_id) and any(n.id == node_id for n in self.extra_nodes())

    def is_removed(self, node_id: str) -> bool:
        return self.run.is_removed(node_id)


def _run(argv: list[str], merge: bool = True) -> tuple[int, str]:
    """(exit code, stdout — with stderr when merge — without trailing newlines)."""
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT if merge else subprocess.DEVNULL)
    except OSError as e:
        return 127, str(e)
    return p.returncode, p.stdout.decode(errors="replace").rstrip("\n")


def read_config_nodes(bin_path: str, config: str) -> tuple[list[Node] | None, bool, str]:
    """(nodes or None, whether the binary has `nodes --json`, error text)."""
    rc, out = _run([bin_path, "nodes", "--config", config, "--json"], merge=False)
    if rc == 0:
        try:
            return parse_nodes_json(out), True, ""
        except ValueError:
            pass
    rc, out = _run([bin_path, "nodes", "--config", config])
    if rc != 0:
        return None, False, out
    return parse_nodes_tsv(out), False, ""


def read_tls(bin_path: str, config: str) -> TlsFiles | None:
    """The config's [tls] files (`sessionraft tls-files`); None without [tls], or with a binary
    from before that command (which serves no TLS the tools here would need to know of)."""
    rc, out = _run([bin_path, "tls-files", "--config", config], merge=False)
    if rc != 0:
        return None
    try:
        return parse_tls(out)
    except ValueError as e:
        raise Die(f"cannot read the [tls] section of {config}: {e}") from e


def load(s: Settings, run: RunDir, quiet: bool = False) -> Topology:
    """The config read once through the binary (which validates it). With quiet, failures are
    not fatal (down must work with a broken config or no binary at all: it goes by the pid
    files)."""
    topo = Topology(run)
    if not executable(s.bin):
        if quiet:
            return topo
        raise Die(f"no binary at {s.bin} (scripts/cluster.sh up builds it)")
    nodes, new_binary, error = read_config_nodes(s.bin, s.config)
    if nodes is None:
        if quiet:
            return topo
        raise Die(f"cannot read {s.config}: {error}")
    topo.config_nodes = nodes
    topo.tls = read_tls(s.bin, s.config)
    tls.use(topo.tls)
    if s.lb_addr:
        topo.lb_addr = s.lb_addr
    elif new_binary or re.search(r"^\s+lb-addr(\s|$)", _run([s.bin, "--help"], merge=False)[1], re.M):
        rc, out = _run([s.bin, "lb-addr", "--config", s.config])
        if rc != 0:
            if quiet:
                return topo
            raise Die(f"cannot read the load balancer address of {s.config}: {out}")
        topo.lb_addr = "".join(out.split())
    if s.lb_resp_addr:
        topo.lb_resp_addr = s.lb_resp_addr
    elif topo.lb_addr and (new_binary or "--resp" in _run([s.bin, "lb-addr", "--help"], merge=False)[1]):
        rc, out = _run([s.bin, "lb-addr", "--config", s.config, "--resp"])
        if rc != 0:
            if quiet:
                topo.lb_resp_addr = ""
                return topo
            raise Die(f"cannot read the load balancer's resp_addr of {s.config}: {out}")
        topo.lb_resp_addr = "".join(out.split())
    # HAProxy still running from an earlier config or environment: its addresses are in its config
    if not topo.lb_addr and haproxy_live_pid(run) is not None:
        try:
            with open(run.haproxy_cfg) as f:
                topo.lb_addr, topo.lb_resp_addr = addrs_from_haproxy_cfg(f.read())
        except OSError:
            pass
    return topo

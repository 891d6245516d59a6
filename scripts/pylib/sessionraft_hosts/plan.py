"""What a run makes, as data: the names of its namespaces and links, its subnet and addresses,
the `ip` commands that make and remove them, the hosts files, the nodes' configuration,
environment and command lines. Pure functions only (no command is run here), so that the unit
tests can check every one of them without root.

The picture (RID: the run's id, e.g. 3fa9c):

    sr-RID-switch   bridge br0; port pN for host N (its veth's other end), plb for the LB
    sr-RID-sessionraft-0 .. -2   eth0 (10.A.B.x/24), lo; the node (`sessionraft serve`)
    sr-RID-lb       eth0 (10.A.B.2/24), lo; HAProxy, whose client-side listeners are bound in
                    the root namespace's loopback (through the handle sr-RID-root)

Nothing is made in the root namespace: no interface, no route, no address. The only things the
machine sees are the named handles under /var/run/netns, the directories /etc/netns/sr-RID-*
(each host's /etc/hosts and /etc/resolv.conf) and HAProxy's listeners on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

#: The StatefulSet's name: hosts are sessionraft-0, sessionraft-1, ... (node id = ordinal + 1).
SET_NAME = "sessionraft"
#: The headless Service: a host's full name is sessionraft-N.sessionraft.
SERVICE = "sessionraft"
#: The ports every node listens on inside its host (those of deploy/kubernetes).
HTTP_PORT = 7101
RESP_PORT = 7201
#: HAProxy's port inside its own namespace (as deploy/haproxy.cfg).
LB_PORT = 7100
#: The LB's host name in every hosts file.
LB_NAME = "sessionraft-lb"
#: Last octets: the LB, the first hosts (11, 12, ...), then every later address (a host made
#: again gets a new one, never one used before in the run).
LB_OCTET = 2
FIRST_HOST_OCTET = 11
FIRST_LATER_OCTET = 21
LAST_OCTET = 254
#: The width of the address column of the hosts files: every rewrite keeps the file's length.
IP_WIDTH = 15

PREFIX = "sr-"
RID_RE = re.compile(r"^[0-9a-f]{5}$")


class PlanError(Exception):
    """A request the plan cannot satisfy (bad host name, no free address, ...)."""


# ---------------------------------------------------------------------------------- names

def host_name(ordinal: int) -> str:
    return f"{SET_NAME}-{ordinal}"


def fqdn(name: str) -> str:
    return f"{name}.{SERVICE}"


def ordinal_of(name: str) -> int:
    m = re.fullmatch(rf"{re.escape(SET_NAME)}-(\d+)", name)
    if not m:
        raise PlanError(f"not a host name: {name!r} (sessionraft-N)")
    return int(m.group(1))


def node_id_of(name: str) -> int:
    """The node id a host's name gives (the StatefulSet rule: sessionraft-0 is node 1)."""
    return ordinal_of(name) + 1


def parse_host(arg: str, names: Iterable[str]) -> str:
    """A host named on the command line: its name, or its node id (`2` = sessionraft-1)."""
    names = list(names)
    if arg.isdigit():
        name = host_name(int(arg) - 1)
    else:
        name = arg
    if name not in names:
        raise PlanError(f"no host {arg!r} in this run (hosts: {', '.join(names)})")
    return name


@dataclass(frozen=True)
class Names:
    """The names of one run's namespaces and links. Every namespace starts with sr-RID-, so that
    two runs (different RIDs) never share one."""

    rid: str

    def __post_init__(self) -> None:
        if not RID_RE.match(self.rid):
            raise PlanError(f"bad run id {self.rid!r}")

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.rid}-"

    @property
    def switch(self) -> str:
        return f"{self.prefix}switch"

    @property
    def lb(self) -> str:
        return f"{self.prefix}lb"

    @property
    def root(self) -> str:
        """The handle naming the root namespace (HAProxy binds its listeners there)."""
        return f"{self.prefix}root"

    def host(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @staticmethod
    def port(name: str) -> str:
        """The switch's port (inside sr-RID-switch only) of a host: p0, p1, ...; plb."""
        return "plb" if name == LB_NAME else f"p{ordinal_of(name)}"


# ---------------------------------------------------------------------------------- subnet

def networks_in_use(route_text: str, addr_text: str, resolv_text: str = "") -> list:
    """The IPv4 networks and addresses the machine uses, from `ip -4 route show table all`,
    `ip -4 -o addr show` and /etc/resolv.conf (its nameservers)."""
    nets = []
    for line in route_text.splitlines():
        words = line.split()
        if not words:
            continue
        first = words[0]
        if first in ("broadcast", "local", "unicast", "multicast", "anycast") and len(words) > 1:
            first = words[1]
        if first == "default":
            continue
        try:
            nets.append(ipaddress.ip_network(first, strict=False))
        except ValueError:
            continue
    for line in addr_text.splitlines():
        m = re.search(r"\sinet\s+(\S+)", line)
        if m:
            try:
                nets.append(ipaddress.ip_interface(m.group(1)).network)
            except ValueError:
                pass
    for line in resolv_text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                nets.append(ipaddress.ip_network(words[1]))
            except ValueError:
                pass
    return [n for n in nets if n.version == 4]


def pick_subnet(draw: int, in_use: list) -> ipaddress.IPv4Network:
    """A 10.A.B.0/24 (A in 100-199) that overlaps nothing in `in_use`; `draw` (any integer)
    picks where the search starts, so that parallel runs usually differ (they would not clash
    anyway: each run has its own switch)."""
    for i in range(100 * 256):
        k = (draw + i * 7919) % (100 * 256)
        net = ipaddress.ip_network(f"10.{100 + k // 256}.{k % 256}.0/24")
        if not any(net.overlaps(u) for u in in_use):
            return net
    raise PlanError("no free 10.100-199.x.0/24")


def address(subnet: str, octet: int) -> str:
    net = ipaddress.ip_network(subnet)
    if not 1 <= octet <= LAST_OCTET:
        raise PlanError(f"octet {octet} out of range")
    return str(net.network_address + octet)


# ---------------------------------------------------------------------------------- commands

def switch_commands(n: Names) -> list[list[str]]:
    """The switch: a namespace of its own holding bridge br0 (no STP: ports forward at once)."""
    sw = n.switch
    return [
        ["ip", "netns", "add", sw],
        ["ip", "-n", sw, "link", "set", "lo", "up"],
        ["ip", "-n", sw, "link", "add", "br0", "type", "bridge", "stp_state", "0",
         "forward_delay", "0"],
        ["ip", "-n", sw, "link", "set", "br0", "up"],
    ]


def host_commands(n: Names, name: str, ip: str, prefixlen: int) -> list[list[str]]:
    """A host (or the LB): its namespace, lo up, a veth pair made inside the switch with its
    host end created straight in the host's namespace as eth0 (never in the root namespace),
    the switch end in the bridge, the address."""
    ns = n.host(name) if name != LB_NAME else n.lb
    sw, port = n.switch, Names.port(name)
    return [
        ["ip", "netns", "add", ns],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
        ["ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns",
         ns],
        ["ip", "-n", sw, "link", "set", port, "master", "br0"],
        ["ip", "-n", sw, "link", "set", port, "up"],
        ["ip", "-n", ns, "addr", "add", f"{ip}/{prefixlen}", "dev", "eth0"],
        ["ip", "-n", ns, "link", "set", "eth0", "up"],
    ]


def remove_host_commands(n: Names, name: str) -> list[list[str]]:
    """The veth first (both ends go at once; a namespace's own devices are destroyed only
    asynchronously after it is deleted, which would make a port of the same name fail to be
    made again), then the namespace."""
    ns = n.host(name) if name != LB_NAME else n.lb
    return [
        ["ip", "-n", n.switch, "link", "del", Names.port(name)],
        ["ip", "netns", "delete", ns],
    ]


def link_commands(n: Names, name: str, up: bool) -> list[list[str]]:
    """A link cut (or healed): the host's port on the switch down (up). The host's eth0 loses
    its carrier; its packets, and those sent to it, are dropped: as a pulled cable."""
    return [["ip", "-n", n.switch, "link", "set", Names.port(name), "up" if up else "down"]]


# ---------------------------------------------------------------------------------- files

def hosts_line(name: str, ip: str | None) -> str:
    """One host's line; an absent host (deleted) a comment of the same length."""
    col = ip if ip is not None else "#absent"
    if len(col) > IP_WIDTH:
        raise PlanError(f"address {col} wider than {IP_WIDTH}")
    return f"{col:<{IP_WIDTH}} {fqdn(name)} {name}\n"


def hosts_file(rid: str, hosts: dict[str, str | None], lb_ip: str | None) -> str:
    """/etc/hosts of every namespace of the run: localhost, every host by its full and short
    name, the LB. Its length does not depend on the addresses: it is rewritten in place (a bind
    mount of `ip netns exec` follows the file's inode, not its name) and a reader never sees a
    line half old, half new."""
    text = (f"# generated by scripts/hosts.sh (run {rid}): every host of the run by name\n"
            f"{'127.0.0.1':<{IP_WIDTH}} localhost\n"
            f"{'::1':<{IP_WIDTH}} localhost ip6-localhost ip6-loopback\n")
    for name in sorted(hosts, key=ordinal_of):
        text += hosts_line(name, hosts[name])
    col = lb_ip if lb_ip is not None else "#absent"
    text += f"{col:<{IP_WIDTH}} {LB_NAME}.{SERVICE} {LB_NAME}\n"
    return text


#: /etc/resolv.conf of every namespace: a name missing from the hosts file fails at once
#: (nothing listens on the namespace's own loopback), and no query ever leaves it.
RESOLV_CONF = "# generated by scripts/hosts.sh: no DNS inside the run's hosts\n" \
              "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"


def config_from_configmap(yaml_text: str) -> str:
    """The `cluster.toml: |` block of deploy/kubernetes/configmap.yaml, unindented."""
    lines = yaml_text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "cluster.toml: |":
            base = len(line) - len(line.lstrip())
            out: list[str] = []
            indent = None
            for body in lines[i + 1:]:
                if body.strip() == "":
                    out.append("")
                    continue
                ind = len(body) - len(body.lstrip())
                if ind <= base:
                    break
                if indent is None:
                    indent = ind
                out.append(body[indent:] if ind >= indent else body.lstrip())
            while out and out[-1] == "":
                out.pop()
            return "\n".join(out) + "\n"
    raise PlanError("no `cluster.toml: |` block in the ConfigMap")


def run_config(manifest_toml: str, data_mount: Path, nodes: int) -> str:
    """The run's cluster.toml: the manifest's, with the pods' `data_dir = "/data"` replaced by
    the run's mount point (the same path for every node, as in the pods; each node's process
    sees its own host's directory there). Checks that the manifest names exactly `nodes` nodes
    and gives no IP address."""
    ids = re.findall(r"^\s*id\s*=\s*(\d+)", manifest_toml, re.M)
    if len(ids) != nodes:
        raise PlanError(f"the manifest has {len(ids)} nodes, the run {nodes}")
    for addr in re.findall(r'^\s*\w*addr\s*=\s*"([^"]*)"', manifest_toml, re.M):
        host = addr.rsplit(":", 1)[0].strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            continue
        raise PlanError(f"the manifest gives an IP address ({addr}): names only")
    text, count = re.subn(r'^(\s*data_dir\s*=\s*)"/data"', rf'\1"{data_mount}"',
                          manifest_toml, flags=re.M)
    if count != nodes:
        raise PlanError(f'expected data_dir = "/data" for every node, found {count}')
    return f"# generated by scripts/hosts.sh from deploy/kubernetes/configmap.yaml\n{text}"


def node_env(name: str, config: Path, secrets: dict[str, str],
             extra: dict[str, str]) -> dict[str, str]:
    """A pod's environment: its host name (the node id comes from its ordinal), every listener
    on all interfaces, the configuration file, the secrets; then the run's extra variables
    (e.g. SESSIONRAFT_RAFT__SNAPSHOT_LOGS_SINCE_LAST=50). Nothing else: the process starts
    with exactly this (env -i)."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME": name,
        "SESSIONRAFT_CONFIG": str(config),
        "SESSIONRAFT_LISTEN__IP": "0.0.0.0",
    }
    env.update(secrets)
    env.update(extra)
    return env


#: Run inside the host's namespace (and the mount namespace `ip netns exec` gives every
#: command): the host's own data directory bound over the run's mount point, then the command.
MOUNT_THEN_EXEC = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'


def in_host(n: Names, name: str, data_src: Path, data_mount: Path, env: dict[str, str],
            argv: list[str]) -> list[str]:
    """The command line running argv in host `name`, as its pod: the host's network namespace
    and /etc/hosts, its data directory at the run's mount point, exactly env."""
    return ["ip", "netns", "exec", n.host(name), "/bin/sh", "-c", MOUNT_THEN_EXEC, "sh",
            str(data_src), str(data_mount), "env", "-i",
            *[f"{k}={v}" for k, v in sorted(env.items())], *argv]


def serve_argv(binary: Path) -> list[str]:
    """`sessionraft serve`, no flag: the id comes from HOSTNAME, the file from
    SESSIONRAFT_CONFIG, as in the StatefulSet."""
    return [str(binary), "serve"]

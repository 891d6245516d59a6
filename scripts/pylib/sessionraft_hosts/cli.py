"""The command line of scripts/hosts.sh (see __init__.py for the commands)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import ops, plan, system
from .state import Dir, StateError

ROOT = Path(__file__).resolve().parents[3]


def parse_env(pairs: list[str]) -> dict[str, str]:
    """KEY=VALUE pairs (--env); a key must look like an environment variable."""
    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k or not all(c.isalnum() or c == "_" for c in k):
            raise argparse.ArgumentTypeError(f"--env {p!r}: expected KEY=VALUE")
        out[k] = v
    return out


def default_binary() -> Path:
    if os.environ.get("SESSIONRAFT_BIN"):
        return Path(os.environ["SESSIONRAFT_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    return target / "release" / "sessionraft"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/hosts.sh",
        description="Hosts made of Linux network namespaces (as root), a sessionraft node in "
                    "each with the environment the Kubernetes manifest gives a pod, HAProxy in "
                    "front; events as JSON lines on stdout.")
    p.add_argument("--state", default=os.environ.get("SESSIONRAFT_HOSTS_DIR"),
                   help="the run's state directory (or SESSIONRAFT_HOSTS_DIR)")
    sub = p.add_subparsers(dest="cmd", required=True)

    u = sub.add_parser("up", help="make the switch, the hosts, HAProxy; start every node")
    u.add_argument("--hosts", type=int, default=3)
    u.add_argument("--bin", type=Path, default=None,
                   help="sessionraft binary (default: SESSIONRAFT_BIN, else "
                        "$CARGO_TARGET_DIR/release/sessionraft)")
    u.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment of every node and exec (repeatable)")
    u.add_argument("--manifest", type=Path,
                   default=ROOT / "deploy" / "kubernetes" / "configmap.yaml",
                   help="the ConfigMap whose cluster.toml the nodes read")
    u.add_argument("--no-start", action="store_true", help="do not start the nodes")
    u.add_argument("--tls", action="store_true",
                   help="[tls] on every node (scripts/dev-certs.sh: certificates by host name, "
                        "in DIR/certs); HAProxy serves HTTPS and checks the nodes over HTTPS")

    sub.add_parser("down", help="stop everything, remove every namespace, link and file made")
    sub.add_parser("status", help="the run: hosts, addresses, pids, URLs, HAProxy's servers")
    sub.add_parser("lb-reload", help="HAProxy re-reads its configuration (and the names)")
    for cmd, what in (("start", "start the host's node"),
                      ("stop", "SIGTERM the host's node (SIGKILL after 10 s)"),
                      ("kill", "SIGKILL the host's node"),
                      ("cut", "take the host's link down (a pulled cable)"),
                      ("heal", "bring the host's link up again"),
                      ("delete", "SIGKILL the node, remove the host (its name no longer "
                                 "resolves)")):
        c = sub.add_parser(cmd, help=what)
        c.add_argument("host", help="sessionraft-N, or the node id")
    for cmd, what in (("reip", "make the host again under its name with a new IP, same data"),
                      ("wipe", "make the host again under its name with a new IP, empty data")):
        c = sub.add_parser(cmd, help=what)
        c.add_argument("host")
        c.add_argument("--kill", action="store_true", help="SIGKILL the node (default SIGTERM)")
        c.add_argument("--no-start", action="store_true", help="do not start the node")
    e = sub.add_parser("exec", help="run a command inside a host, as in its pod "
                                    "(`sessionraft ...` runs the run's binary)")
    e.add_argument("host")
    e.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    e.add_argument("argv", nargs=argparse.REMAINDER)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    if not a.state:
        p.error("--state DIR (or SESSIONRAFT_HOSTS_DIR) is required")
    d = Dir(Path(a.state))
    try:
        if a.cmd == "up":
            return ops.up(d, a.bin or default_binary(), a.hosts, parse_env(a.env), a.manifest,
                          not a.no_start, a.tls)
        if a.cmd == "down":
            return ops.down(d)
        if a.cmd == "status":
            return ops.status(d)
        if a.cmd == "lb-reload":
            return ops.lb_reload(d)
        if a.cmd == "start":
            return ops.start(d, a.host)
        if a.cmd in ("stop", "kill"):
            return ops.stop(d, a.host, kill=a.cmd == "kill")
        if a.cmd in ("reip", "wipe"):
            return ops.remake(d, a.host, wipe=a.cmd == "wipe", kill=a.kill,
                              start_node=not a.no_start)
        if a.cmd == "delete":
            return ops.delete(d, a.host)
        if a.cmd in ("cut", "heal"):
            return ops.link(d, a.host, up_=a.cmd == "heal")
        if a.cmd == "exec":
            argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
            return ops.exec_in(d, a.host, argv, parse_env(a.env))
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    except (ops.OpError, StateError, plan.PlanError, system.CommandFailed) as e:
        print(f"hosts.sh: {e}", file=sys.stderr, flush=True)
        return 1
    p.error(f"unknown command {a.cmd}")
    return 2

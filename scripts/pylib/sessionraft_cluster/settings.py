"""The environment of a command, read once: where the config, the run dir, the binaries are,
how long a node may take to become ready, load balancer overrides; and the build step of `up`,
`start`, `restart` and `add-node` (scripts/install-deps.sh --cluster, then cargo when the binary
is missing or SESSIONRAFT_REBUILD=1).

    SESSIONRAFT_CONFIG         the cluster's config (default ROOT/cluster.toml)
    SESSIONRAFT_RUN_DIR        pid files, logs, haproxy.cfg, extra-nodes, removed-nodes (default ROOT/run)
    SESSIONRAFT_READY_TIMEOUT  seconds a node may take to become ready (default 60)
    SESSIONRAFT_LB_ADDR        HOST:PORT of the load balancer (overrides [load_balancer] addr)
    SESSIONRAFT_LB_RESP_ADDR   HOST:PORT of its Redis-protocol frontend (overrides [load_balancer] resp_addr)
    SESSIONRAFT_BIN            the sessionraft binary (default CARGO_TARGET_DIR or ROOT/target, /release/sessionraft)
    SESSIONRAFT_HAPROXY        the haproxy binary (default: haproxy on PATH, /usr/sbin, /usr/local/sbin)
    SESSIONRAFT_REBUILD=1      rebuild on up/start/restart/add-node

`--bin BIN` (up, start, restart, add-node; upgrade's BIN) replaces SESSIONRAFT_BIN for the command
and is the binary the nodes it starts run (recorded per node in the run dir, see rundir.py): no
build then. A node's binary: --bin, else the one recorded for it, else SESSIONRAFT_BIN's.

Relative paths are taken from the caller's working directory ($PWD, as the shell had them).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Mapping

from .console import Die, Exit, flush

# ROOT as scripts/cluster.sh computed it: the launcher puts ROOT/scripts/pylib on PYTHONPATH, so
# this file's path goes through the same (unresolved) directory
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@dataclass(frozen=True)
class Settings:
    root: str
    config: str
    run_dir: str
    bin: str
    ready_timeout: int
    lb_addr: str = ""  # SESSIONRAFT_LB_ADDR ("" when unset)
    lb_resp_addr: str = ""  # SESSIONRAFT_LB_RESP_ADDR ("" when unset)
    haproxy: str = ""  # SESSIONRAFT_HAPROXY ("" when unset)
    rebuild: bool = False
    node_bin: str = ""  # --bin BIN: the nodes this command starts run it ("" when not given)


def abspath(path: str, pwd: str) -> str:
    """The shell's abspath: a relative path is put under pwd, nothing is normalized."""
    return path if path.startswith("/") else f"{pwd}/{path}"


def logical_cwd(env: Mapping[str, str]) -> str:
    """$PWD when it names the working directory (a path through symlinks, as the shell
    keeps it), else the physical working directory."""
    cwd = os.getcwd()
    pwd = env.get("PWD", "")
    try:
        if pwd.startswith("/") and os.path.samefile(pwd, cwd):
            return pwd
    except OSError:
        pass
    return cwd


def from_env(env: Mapping[str, str] | None = None, root: str = ROOT, pwd: str | None = None) -> Settings:
    """The settings of this command. Die when SESSIONRAFT_READY_TIMEOUT is not a number."""
    env = os.environ if env is None else env
    pwd = logical_cwd(env) if pwd is None else pwd
    timeout = env.get("SESSIONRAFT_READY_TIMEOUT") or "60"
    if not re.fullmatch(r"[0-9]+", timeout):
        raise Die("SESSIONRAFT_READY_TIMEOUT must be a number of seconds")
    target = env.get("CARGO_TARGET_DIR") or f"{root}/target"
    return Settings(
        root=root,
        config=abspath(env.get("SESSIONRAFT_CONFIG") or f"{root}/cluster.toml", pwd),
        run_dir=abspath(env.get("SESSIONRAFT_RUN_DIR") or f"{root}/run", pwd),
        bin=env.get("SESSIONRAFT_BIN") or f"{target}/release/sessionraft",
        ready_timeout=int(timeout),
        lb_addr=env.get("SESSIONRAFT_LB_ADDR", ""),
        lb_resp_addr=env.get("SESSIONRAFT_LB_RESP_ADDR", ""),
        haproxy=env.get("SESSIONRAFT_HAPROXY", ""),
        rebuild=env.get("SESSIONRAFT_REBUILD", "0") == "1",
    )


def with_bin(s: Settings, path: str, env: Mapping[str, str] | None = None, pwd: str | None = None) -> Settings:
    """s with `--bin PATH`: the binary of this command and of the nodes it starts. Die unless
    it is named `sessionraft` (a node is told from other processes by its /proc/PID/cmdline,
    `.../sessionraft serve ... --node N`: a node run from another name would count as gone)."""
    env = os.environ if env is None else env
    pwd = logical_cwd(env) if pwd is None else pwd
    path = abspath(path, pwd)
    require_node_name(path)
    return replace(s, bin=path, node_bin=path)


def require_node_name(path: str) -> None:
    """Die unless the binary at path is named `sessionraft` (see with_bin: a node run from
    another name would count as gone, and run on unrecognised)."""
    if os.path.basename(path) != "sessionraft":
        raise Die(f"{path}: the binary must be named sessionraft (put it in a directory of its own, "
                  "e.g. DIR/0.2.0/sessionraft): nodes are recognised by that name")


def split_bin(args: list[str]) -> tuple[list[str], str]:
    """(args without `--bin BIN` / `--bin=BIN`, BIN or ""). Die on a `--bin` without a value."""
    rest: list[str] = []
    path = ""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--bin":
            if i + 1 >= len(args) or not args[i + 1]:
                raise Die("--bin needs a path to a sessionraft binary")
            path = args[i + 1]
            i += 2
            continue
        if a.startswith("--bin="):
            path = a[len("--bin="):]
            if not path:
                raise Die("--bin needs a path to a sessionraft binary")
        else:
            rest.append(a)
        i += 1
    return rest, path


def executable(path: str) -> bool:
    return os.access(path, os.X_OK)


def build(s: Settings) -> None:
    """What is missing installed (haproxy, ...), the binary built if it is missing (or
    SESSIONRAFT_REBUILD=1). A failure ends the command with the failed step's exit code."""
    flush()
    rc = subprocess.call([f"{s.root}/scripts/install-deps.sh", "--cluster"])
    if rc != 0:
        raise Exit(rc)
    if s.node_bin:
        # a binary of the operator's choice: never built here
        if not executable(s.node_bin):
            raise Die(f"--bin {s.node_bin}: no executable there")
        return
    if not executable(s.bin) or s.rebuild:
        print("building sessionraft (release; the first build compiles RocksDB, ~10 min)...",
              file=sys.stderr, flush=True)
        # only what the cluster runs: the node binary (no test binary, no example)
        rc = subprocess.call(["cargo", "build", "--release", "-p", "sessionraft-node", "--bin", "sessionraft"],
                             cwd=s.root)
        if rc != 0:
            raise Exit(rc)

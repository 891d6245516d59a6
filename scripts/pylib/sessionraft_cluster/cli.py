"""The command line of scripts/cluster.sh (the shell script's, plus --bin and upgrade):

    up [--bin BIN] | down | status | lb-status | rolling-restart
    start N [--bin BIN] | stop N | kill N | restart N [--bin BIN] | logs N|haproxy [-f]
    add-node N HTTP RAFT [--bin BIN] | remove-node N
    upgrade BIN [--order followers-first|leader-first|IDS] | -h | --help | help

Extra arguments are ignored, as they were. Exit codes: 0 done; 1 failed (a `cluster.sh: ...`
message on stderr); 2 no or an unknown command (the usage on stdout); the exit code of
install-deps.sh or cargo when the build step fails; 130 on Ctrl-C.
"""

from __future__ import annotations

import re
import sys
from typing import Callable

from . import commands, membership, rolling, settings, status, upgrade
from .console import Die, Exit, warn
from .procs import signal_node
from .rundir import RunDir
from .topology import load

NEED_ID = ("start", "stop", "kill", "restart")
TAKE_BIN = ("up", "start", "restart", "add-node")  # the commands that start nodes: --bin BIN


def usage(root: str = settings.ROOT) -> str:
    """The header comment of scripts/cluster.sh (after the #! line, up to the first code line)."""
    lines = []
    try:
        with open(f"{root}/scripts/cluster.sh") as f:
            text = f.read().splitlines()
    except OSError:
        return (__doc__ or "") + "\n"
    for line in text[1:]:
        if not line.startswith("#"):
            break
        lines.append(re.sub(r"^# ?", "", line))
    return "".join(line + "\n" for line in lines)


def dispatch(argv: list[str]) -> Callable[[], None] | None:
    """What argv asks for, as a call (None: no such command). Die on a missing node id.
    Settings are read first (a bad SESSIONRAFT_READY_TIMEOUT ends every command, help included)."""
    s = settings.from_env()
    cmd, args = (argv[0] if argv else ""), argv[1:]
    if cmd in TAKE_BIN:
        args, bin_path = settings.split_bin(args)
        if bin_path:
            s = settings.with_bin(s, bin_path)
    run = RunDir(s.run_dir)
    if cmd in NEED_ID and not (args and args[0]):
        raise Die(f"usage: {cmd} N")
    node_id = args[0] if args else ""
    table: dict[str, Callable[[], None]] = {
        "up": lambda: commands.up(s, run),
        "down": lambda: commands.down(s, run),
        "status": lambda: status.show_status(load(s, run)),
        "lb-status": lambda: status.show_lb_status(s, load(s, run)),
        "start": lambda: commands.start(s, run, node_id),
        "stop": lambda: signal_node(run, node_id, "TERM"),
        "kill": lambda: signal_node(run, node_id, "KILL"),
        "restart": lambda: commands.restart(s, run, node_id),
        "logs": lambda: commands.logs(run, args),
        "rolling-restart": lambda: rolling.rolling_restart(s, load(s, run), commands.start_node),
        "add-node": lambda: membership.add_node(s, run, args),
        "remove-node": lambda: membership.remove_node(s, run, args),
        "upgrade": lambda: upgrade.upgrade(s, run, args),
        "-h": lambda: sys.stdout.write(usage()),
        "--help": lambda: sys.stdout.write(usage()),
        "help": lambda: sys.stdout.write(usage()),
    }
    return table.get(cmd)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        action = dispatch(argv)
        if action is None:
            sys.stdout.write(usage())
            return 2
        action()
    except Die as e:
        warn(e.message)
        return e.code
    except Exit as e:
        return e.code
    except KeyboardInterrupt:
        return 130
    return 0

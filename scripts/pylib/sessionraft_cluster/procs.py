"""Node and HAProxy processes. A process is only ever signalled through a pid file this program
(or the shell script before it) wrote, after checking in /proc/PID/cmdline that the pid still
runs that node (`sessionraft serve ... --node N`) or HAProxy on RUN_DIR/haproxy.cfg: nothing is
killed by name.

Processes are started in a session of their own (they outlive this program), with stdin from
/dev/null and stdout/stderr appended to their log; a thread reaps each while this program runs,
so that one that exits is not left as a zombie that still answers `kill -0`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Sequence

from . import clock
from .console import Say, err, say
from .rundir import RunDir, read_pid, remove, write_pid

PROC = "/proc"


def cmdline(pid: int) -> list[str] | None:
    """The arguments of a process (None: no such process or no access; [] for a zombie)."""
    try:
        with open(f"{PROC}/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw:
        return []
    return raw.decode(errors="replace").rstrip("\0").split("\0")


def parse_stat(text: str) -> tuple[str, int]:
    """(state, ppid) from the text of /proc/PID/stat (the command name may hold spaces and
    parentheses: the fields after it follow the last ')')."""
    rest = text[text.rindex(")") + 1 :].split()
    return rest[0], int(rest[1])


def stat(pid: int) -> tuple[str, int] | None:
    try:
        with open(f"{PROC}/{pid}/stat") as f:
            return parse_stat(f.read())
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    """`kill -0 PID` succeeds. A zombie counts as alive: a node whose main thread has exited
    shows as one while its other threads still hold its ports and its RocksDB lock; it is
    gone only once reaped (this program reaps what it started, see spawn)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def children(pid: int) -> list[int]:
    """The pids whose parent is pid."""
    out = []
    for name in os.listdir(PROC):
        if name.isdigit():
            st = stat(int(name))
            if st is not None and st[1] == pid:
                out.append(int(name))
    return sorted(out)


def is_node(args: Sequence[str] | None, node_id: str) -> bool:
    """`.../sessionraft serve ... --node ID ...`"""
    if not args or os.path.basename(args[0]) != "sessionraft" or "serve" not in args[1:]:
        return False
    i = args.index("serve", 1)
    return any(args[j] == "--node" and args[j + 1] == node_id for j in range(i + 1, len(args) - 1))


def is_haproxy(args: Sequence[str] | None, cfg: str) -> bool:
    """`.../*haproxy* ... -f CFG ...`"""
    if not args or "haproxy" not in os.path.basename(args[0]):
        return False
    return any(args[j] == "-f" and args[j + 1] == cfg for j in range(1, len(args) - 1))


def node_live_pid(run: RunDir, node_id: str) -> int | None:
    """The recorded pid of node N if it is alive and still `sessionraft serve ... --node N`."""
    pid = read_pid(run.pid_file(node_id))
    if pid is None or not alive(pid):
        return None
    return pid if is_node(cmdline(pid), node_id) else None


def haproxy_live_pid(run: RunDir) -> int | None:
    """The recorded pid of the HAProxy master if it is alive and runs RUN_DIR/haproxy.cfg."""
    pid = read_pid(run.haproxy_pid)
    if pid is None or not alive(pid):
        return None
    return pid if is_haproxy(cmdline(pid), run.haproxy_cfg) else None


def spawn(argv: Sequence[str], log: str) -> int:
    """Starts argv in a session of its own, output appended to log; its pid, once its
    /proc/PID/cmdline shows the program (or it is gone): Popen returns as soon as the child's
    exec has switched to the new program's memory, before the kernel put its arguments there,
    and a cmdline check in between would find [] and call the node gone."""
    with open(log, "ab") as f:
        p = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=True, close_fds=True)
    threading.Thread(target=p.wait, daemon=True).start()
    for _ in range(500):
        if cmdline(p.pid) != []:
            break
        clock.sleep(0.01)
    return p.pid


def tail(path: str, n: int = 20) -> list[str]:
    """The last n lines of a file ([] when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            data = f.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-n:]


def show_tail(path: str, n: int = 20) -> None:
    """The last lines of a log on stderr."""
    for line in tail(path, n):
        err(line)


def start_node_process(run: RunDir, node_id: str, argv: Sequence[str]) -> int:
    """Starts a node, records its pid in nodeN.pid; its pid."""
    os.makedirs(run.logs, exist_ok=True)
    pid = spawn(argv, run.log_file(node_id))
    write_pid(run.pid_file(node_id), pid)
    return pid


def wait_exit_or_kill(pid: int, label: str) -> None:
    """Waits up to 10 s for pid (already signalled) to exit, then SIGKILLs it."""
    for _ in range(100):
        if not alive(pid):
            return
        clock.sleep(0.1)
    err(f"{label} did not stop in 10 s; SIGKILL")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def signal_node(run: RunDir, node_id: str, sig: str, out: Say = say) -> None:
    """`stop N` (sig TERM: SIGTERM, wait up to 10 s, then SIGKILL) or `kill N` (sig KILL)."""
    pid = node_live_pid(run, node_id)
    if pid is None:
        remove(run.pid_file(node_id))
        out(f"node {node_id} is not running")
        return
    try:
        os.kill(pid, signal.SIGKILL if sig == "KILL" else signal.SIGTERM)
    except ProcessLookupError:
        pass
    if sig == "KILL":
        remove(run.pid_file(node_id))
        out(f"node {node_id} killed (pid {pid})")
        return
    wait_exit_or_kill(pid, f"node {node_id}")
    remove(run.pid_file(node_id))
    out(f"node {node_id} stopped")

"""Processes: pid files and /proc/PID/cmdline checks (nothing is signalled by name), the run's
own children, and SIGINT/SIGTERM handling.

A signal raises Interrupted (130 for SIGINT, 143 for SIGTERM) in the main thread, like the bash
trap did: at once during a sleep, but only after a foreground command (cluster.sh ...) finished,
and only after a critical section (a child started and its pid recorded) ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

PROC = Path("/proc")


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: heal, clean up, exit with code."""

    def __init__(self, code: int, signame: str):
        super().__init__(signame)
        self.code = code
        self.signame = signame


class Signals:
    """SIGINT/SIGTERM -> Interrupted, deferred within critical sections."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending: Interrupted | None = None

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handler)
        signal.signal(signal.SIGTERM, self._handler)

    @staticmethod
    def ignore() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def _handler(self, signum, _frame) -> None:
        exc = (Interrupted(130, "SIGINT") if signum == signal.SIGINT
               else Interrupted(143, "SIGTERM"))
        if self.depth:
            if self.pending is None:
                self.pending = exc
            return
        raise exc

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A signal arriving inside is raised when the section ends."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0 and self.pending is not None:
                exc, self.pending = self.pending, None
                raise exc


def wait_through(p: subprocess.Popen) -> int:
    """Waits for a foreground child; a signal meanwhile is raised once it has exited (as bash
    runs a trap only after the foreground command)."""
    first: Interrupted | None = None
    while True:
        try:
            rc = p.wait()
            break
        except Interrupted as e:
            first = first or e
    if first is not None:
        raise first
    return rc


def exit_code(rc: int) -> int:
    """A Popen return code as the shell reports it (killed by signal N: 128 + N)."""
    return 128 - rc if rc < 0 else rc


def run_logged(argv: Sequence[str], log: Path, env: dict | None = None) -> int:
    """Runs a command to its end, stdout and stderr appended to log; returns its exit code."""
    with open(log, "ab") as f:
        p = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=f,
                             stderr=subprocess.STDOUT, env=env)
        return exit_code(wait_through(p))


def reap_in_background(p: subprocess.Popen) -> None:
    """A child left running (a node started under libfaketime) is reaped when it exits, so that
    it does not linger as a zombie that `kill -0` still finds."""
    threading.Thread(target=p.wait, daemon=True).start()


def cmdline(pid: int) -> list[str] | None:
    """The arguments of a process (None: no such process, or no access)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return []
    return raw.decode(errors="replace").rstrip("\0").split("\0")


def read_pid_file(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_node(args: Sequence[str] | None, node_id: int) -> bool:
    """`.../sessionraft serve ... --node ID ...`"""
    if not args or os.path.basename(args[0]) != "sessionraft" or "serve" not in args:
        return False
    i = args.index("serve")
    return any(args[j] == "--node" and args[j + 1] == str(node_id)
               for j in range(i + 1, len(args) - 1))


def is_sessionraft(args: Sequence[str] | None) -> bool:
    return bool(args) and args[0].endswith("/sessionraft")


def is_load(args: Sequence[str] | None, out: Path | None = None) -> bool:
    """The run's load (`sessionraft load ...`; with out: one whose arguments name a file in out)."""
    if not args or not any(a in ("load", "__standin-load") for a in args):
        return False
    return out is None or any(f"{out}/" in a for a in args)


def is_chaos_run(args: Sequence[str] | None) -> bool:
    """A running chaos run: the bash script, or this program (exec'd by it, same pid)."""
    return bool(args) and any("chaos.sh" in a or "sessionraft_chaos" in a for a in args)


def node_pid(run_dir: Path, node_id: int) -> int | None:
    """The pid of node N from cluster.sh's pid file, if alive and running that node."""
    pid = read_pid_file(run_dir / f"node{node_id}.pid")
    if pid is None or not alive(pid):
        return None
    return pid if is_node(cmdline(pid), node_id) else None


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, sig)


def stop_load(pid: int, out: Path | None = None) -> None:
    """Stops the load (its own session: its process group is ours to stop) if pid still is it:
    SIGTERM, up to 5 s, SIGKILL."""
    if not alive(pid) or not is_load(cmdline(pid), out):
        return
    signal_group(pid, signal.SIGTERM)
    for _ in range(50):
        if not alive(pid) or not cmdline(pid):  # gone, or a zombie waiting for us
            break
        time.sleep(0.1)
    signal_group(pid, signal.SIGKILL)

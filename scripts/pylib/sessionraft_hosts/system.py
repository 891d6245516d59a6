"""The parts that touch the machine: running `ip`, processes by pid (checked against
/proc/PID/cmdline before any signal; nothing is signalled by name), files rewritten in place.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

NETNS_DIR = Path("/var/run/netns")
ETC_NETNS = Path("/etc/netns")


class CommandFailed(Exception):
    def __init__(self, argv: list[str], rc: int, err: str):
        super().__init__(f"{' '.join(argv)}: exit {rc}: {err.strip()}")
        self.argv, self.rc, self.err = argv, rc, err


def run(argv: list[str], check: bool = True,
        env: dict | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       errors="replace", env=env)
    if check and p.returncode != 0:
        raise CommandFailed(argv, p.returncode, p.stderr)
    return p


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def netns_pids(name: str) -> list[int]:
    """The processes in namespace `name` (one of the run's own: never the root handle)."""
    if not netns_exists(name):
        return []
    p = run(["ip", "netns", "pids", name], check=False)
    return [int(w) for w in p.stdout.split() if w.isdigit()]


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def alive(pid: int | None) -> bool:
    """Running (a zombie, killed but not yet reaped by whoever inherited it, is not)."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def in_netns(pid: int, name: str) -> bool:
    """Whether pid runs (not a zombie) inside network namespace `name`: a recorded pid is
    signalled only while it is in one of the run's own namespaces, so that a pid reused by
    another process is never touched."""
    if not alive(pid):
        return False
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return False


def signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def stop(pid: int, netns: str, term_timeout_s: float = 10.0, kill: bool = False) -> str:
    """SIGTERM (or SIGKILL when kill) pid if it runs in the run's namespace `netns`, SIGKILL
    after term_timeout_s; how it ended: 'not-running', 'terminated', 'killed'."""
    if not in_netns(pid, netns):
        return "not-running"
    if not kill:
        signal_pid(pid, signal.SIGTERM)
        if wait_gone(pid, term_timeout_s):
            return "terminated"
    signal_pid(pid, signal.SIGKILL)
    wait_gone(pid, 5)
    return "killed"


def spawn(argv: list[str], log: Path) -> int:
    """Starts argv in a session of its own, detached (it outlives this command), its output
    appended to log; its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True, close_fds=True)
    return p.pid


def write_in_place(path: Path, text: str) -> None:
    """Rewrites path without replacing its inode (`ip netns exec` bind-mounts the file itself:
    a new file under the same name would not be seen by the processes already running)."""
    data = text.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)

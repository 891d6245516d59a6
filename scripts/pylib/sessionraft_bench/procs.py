"""Processes: started here with their pid recorded, signalled only after checking their command
line in /proc (a pid that was reused by another program is never touched)."""

import os
import signal
import subprocess
import time

from .common import warn

PROC = "/proc"


def proc_cmdline(pid, proc=PROC):
    """The argv of a running process ([] when it is gone, a zombie, or not readable)."""
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]] if raw else []


def proc_argv0(pid, proc=PROC):
    """The base name of a process's argv[0] ('' when there is none)."""
    argv = proc_cmdline(pid, proc)
    return argv[0].rsplit("/", 1)[-1] if argv else ""


def alive(pid):
    """kill -0: the pid exists (a zombie included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_ours(pid, name, proc=PROC):
    """PID is alive and its argv[0] (base name) starts with NAME."""
    if isinstance(pid, str):
        if not pid.isdigit():
            return False
        pid = int(pid)
    if pid is None or pid <= 0:
        return False
    return alive(pid) and proc_argv0(pid, proc).startswith(name)


def is_node(pid, node_id, proc=PROC):
    """PID runs `sessionraft ... serve ... --node N` (N = node_id)."""
    if not is_ours(pid, "sessionraft", proc):
        return False
    argv = proc_cmdline(pid, proc)
    if "serve" not in argv:
        return False
    rest = argv[argv.index("serve") + 1:]
    return any(a == "--node" and b == str(node_id) for a, b in zip(rest, rest[1:]))


def gone(p):
    """A child (Popen) has exited (and is reaped)."""
    return p.poll() is not None


def exec_wait(p, name):
    """Wait (at most 5 s) until the child P, just started, runs NAME or is gone: between the fork
    and the exec its argv[0] is still ours, and an is_ours check in that window would take a
    starting process for a dead one."""
    for _ in range(50):
        if gone(p) or is_ours(p.pid, name):
            return
        time.sleep(0.1)


def _signal(pid, sig, group):
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(p, name, group=False, grace_s=10.0):
    """SIGTERM the child P (its whole process group when GROUP: it runs in a session of its own),
    SIGKILL after GRACE_S; only while it still runs NAME. Reaps it."""
    if p is None or p.poll() is not None:
        return
    if not is_ours(p.pid, name):
        return  # gone, or the pid runs another program: not ours to signal (nor to wait for)
    _signal(p.pid, signal.SIGTERM, group)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if p.poll() is not None or not is_ours(p.pid, name):
            break
        time.sleep(0.1)
    if p.poll() is None and is_ours(p.pid, name):
        if not group:
            warn(f"{name} (pid {p.pid}) did not stop in {grace_s:.0f} s: SIGKILL")
        _signal(p.pid, signal.SIGKILL, group)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def start(cmd, *, stdout, stderr=subprocess.STDOUT, session=False, env=None, cwd=None):
    """A child with stdin from /dev/null; in a session of its own when SESSION (setsid), else in
    a process group of its own (a Ctrl-C on the terminal reaches this program, which stops it, as
    bash did with its background jobs)."""
    kw = {"start_new_session": True} if session else {"process_group": 0}
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env,
                            cwd=cwd, **kw)

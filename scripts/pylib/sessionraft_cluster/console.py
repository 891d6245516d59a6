"""What the operator sees: lines on stdout (one write per line, so that lines printed by
threads do not interleave), `cluster.sh: ...` warnings on stderr, and the two ways a command
ends early: Die (a message, exit 1) and Exit (a code only, the message was printed already)."""

from __future__ import annotations

import sys
import threading
from typing import Callable

PROG = "cluster.sh"

_lock = threading.Lock()

Say = Callable[[str], None]  # where a step's progress lines go (say, err or quiet)


class Exit(Exception):
    """End the command with this exit code (whatever had to be said was said)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = shell_code(code)


class Die(Exit):
    """End the command with `cluster.sh: MESSAGE` on stderr and exit 1 (the shell's die)."""

    def __init__(self, message: str):
        super().__init__(1)
        self.message = message

    def __str__(self) -> str:
        return self.message


def shell_code(rc: int) -> int:
    """A Popen return code as the shell reports it (killed by signal N: 128 + N)."""
    return 128 - rc if rc < 0 else rc


def say(line: str = "") -> None:
    """One line on stdout."""
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def err(line: str) -> None:
    """One line on stderr, as it is."""
    with _lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def warn(message: str) -> None:
    """`cluster.sh: MESSAGE` on stderr."""
    err(f"{PROG}: {message}")


def quiet(_line: str = "") -> None:
    """A `say` that prints nothing (the shell's `>/dev/null` on a step's output)."""


def flush() -> None:
    """Before a child writes to the same stdout/stderr."""
    with _lock:
        sys.stdout.flush()
        sys.stderr.flush()

"""What every part of a run shares: the messages (say, warn), the ways a run ends early (Usage =
exit 2, Interrupted = 130/143), the clock, and the signal handling that bash's traps did."""

import contextlib
import signal
import sys
import time

_T_START = time.monotonic()


class Usage(Exception):
    """Bad usage or a failed set-up: `bench.sh: MESSAGE` on stderr, exit 2 (bash's `die`)."""


class Interrupted(Exception):
    """SIGINT (exit 130) or SIGTERM (exit 143) arrived; everything is stopped on the way out."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum

    @property
    def code(self):
        return 130 if self.signum == signal.SIGINT else 143

    @property
    def message(self):
        if self.signum == signal.SIGINT:
            return "bench.sh: interrupted (SIGINT): stopping everything"
        return "bench.sh: terminated (SIGTERM): stopping everything"


def now_ms():
    """Milliseconds on a monotonic clock (differences only)."""
    return int(time.monotonic() * 1000)


def fmt_s(d):
    """Milliseconds as seconds with 3 decimals (bash's fmt_s: integer arithmetic, no rounding)."""
    sign = ""
    if d < 0:
        sign, d = "-", -d
    return f"{sign}{d // 1000}.{d % 1000:03d}"


def say(msg):
    """A progress line on stdout: `[    1.234s] msg`, the time since the program started."""
    print(f"[{fmt_s(int((time.monotonic() - _T_START) * 1000)):>8}s] {msg}", flush=True)


def warn(msg):
    print(f"bench.sh: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# signals: raise Interrupted where the program is, or, inside `deferred()`, once the block is done
# (bash ran its traps only after a foreground command such as scripts/cluster.sh had finished)

_defer = 0
_pending = None


def _handler(signum, _frame):
    global _pending
    if _defer:
        _pending = signum
        return
    raise Interrupted(signum)


def install_signal_handlers():
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def ignore_signals():
    """For the cleanup: it is not interrupted again."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@contextlib.contextmanager
def deferred():
    """A signal that arrives inside the block takes effect when the block ends."""
    global _defer, _pending
    _defer += 1
    try:
        yield
    finally:
        _defer -= 1
        if not _defer and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)


def nap(seconds):
    """A sleep that a signal interrupts at once (outside `deferred`)."""
    time.sleep(seconds)

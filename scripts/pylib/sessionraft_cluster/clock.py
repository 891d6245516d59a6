"""Time as the operator reads it: wall-clock milliseconds and `1.234s` durations; deadlines on
the monotonic clock."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def fmt_ms(ms: int) -> str:
    """`1.234s`."""
    return f"{ms // 1000}.{ms % 1000:03d}s"


def since(t_ms: int) -> str:
    """The time since t_ms (a now_ms() value) as `1.234s`."""
    return fmt_ms(max(0, now_ms() - t_ms))


def deadline(seconds: float) -> float:
    """A deadline `seconds` from now, for expired()."""
    return time.monotonic() + seconds


def expired(at: float) -> bool:
    return time.monotonic() >= at


def sleep(seconds: float) -> None:
    time.sleep(seconds)

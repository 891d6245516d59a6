"""The seeded fault schedule.

The random numbers come from the same 64-bit linear congruential generator as the bash
scripts/chaos.sh had (state = seed * 2862933555777941757 + 3037000493, then
state = state * 6364136223846793005 + 1442695040888963407 mod 2**64, a draw in [lo, hi] is
lo + ((state >> 33) & 0x7fffffff) % (hi - lo + 1)), and the draws are made in the same order:
for disk-full and mixed first the node whose data dir goes on the tmpfs, then for each fault the
fault itself (mixed: a pick among the candidates, never the same twice in a row), its parameters
(node, hold time, ...), and the gap after it. So a seed gives the same schedule as before as long
as every fault ran its nominal path (a leader was found, the picked node was running); the old
script drew some numbers only on the other paths (see faults.py), the new one never does.

pause-leader and pause-follower (the pause of one kind of node, for a targeted run) are not in
mixed's pool (MIXED_POOL, the bash script's faults in its order): mixed draws exactly what it
drew before they existed.

Whether a fault still fits is decided at run time (run.py: the next fault runs while
now + its estimate <= the end of the load), so how many faults run depends on how long each
took; plan() simulates that with the estimates alone, for a preview and for the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

MASK64 = (1 << 64) - 1

SCENARIOS = (
    "kill-leader",
    "kill-random",
    "pause",
    "pause-leader",
    "pause-follower",
    "partition-leader",
    "partition-minority",
    "rolling-restart",
    "clock-skew",
    "disk-full",
    "wipe-and-rejoin",
    "mixed",
)
FAULTS = tuple(s for s in SCENARIOS if s != "mixed")
# what mixed picks from, in this order (the draws index it): never change it, or a seed's mixed
# schedule changes
MIXED_POOL = (
    "kill-leader",
    "kill-random",
    "pause",
    "partition-leader",
    "partition-minority",
    "rolling-restart",
    "clock-skew",
    "disk-full",
    "wipe-and-rejoin",
)
NODE_IDS = (1, 2, 3)
SKEWS = ("+20s", "-20s", "+90s", "-90s")

# hold (or down) time in seconds of each fault, inclusive; rolling-restart has none
HOLD_RANGES = {
    "kill-leader": (2, 5),
    "kill-random": (2, 5),
    "pause": (3, 7),
    "pause-leader": (3, 7),
    "pause-follower": (3, 7),
    "partition-leader": (4, 8),
    "partition-minority": (4, 8),
    "rolling-restart": None,
    "clock-skew": (8, 12),
    "disk-full": (4, 7),
    "wipe-and-rejoin": (1, 3),
}
GAP_RANGE = (2, 4)

# about how long a fault takes, heal and recovery included (seconds), for the schedule
ESTIMATES = {
    "kill-leader": 8,
    "kill-random": 8,
    "pause": 9,
    "pause-leader": 9,
    "pause-follower": 9,
    "partition-leader": 10,
    "partition-minority": 10,
    "rolling-restart": 15,
    "clock-skew": 16,
    "disk-full": 12,
    "wipe-and-rejoin": 9,
}


class Lcg:
    """The bash script's generator: the same seed gives the same numbers."""

    def __init__(self, seed: int):
        self.state = (seed * 2862933555777941757 + 3037000493) & MASK64

    def rand(self, lo: int, hi: int) -> int:
        """A number in [lo, hi]."""
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & MASK64
        return lo + ((self.state >> 33) & 0x7FFFFFFF) % (hi - lo + 1)


@dataclass(frozen=True)
class Fault:
    """One fault of the schedule, with everything drawn for it.

    node: the node for kill-random, clock-skew, and pause when it pauses a random node;
    leader: pause and pause-leader, True to pause the leader; follower: partition-minority,
    wipe-and-rejoin and pause-follower, the index (0 or 1) among the two followers in id order; hold: seconds the
    fault lasts (down time for kill-* and wipe-and-rejoin), 0 for rolling-restart; skew: the
    FAKETIME value of clock-skew (unless CHAOS_CLOCK_SKEW is set); gap: seconds after recovery.
    """

    name: str
    hold: int = 0
    gap: int = 0
    node: int | None = None
    leader: bool = False
    follower: int | None = None
    skew: str | None = None


def needs_tmpfs(scenario: str) -> bool:
    return scenario in ("disk-full", "mixed")


def needs_iptables(scenario: str) -> bool:
    return scenario.startswith("partition-") or scenario == "mixed"


def needs_faketime(scenario: str) -> bool:
    return scenario == "clock-skew"


def candidates(have_faketime: bool) -> list[str]:
    """The faults mixed picks from (clock-skew only with libfaketime)."""
    return [f for f in MIXED_POOL if f != "clock-skew" or have_faketime]


class Schedule:
    """The seeded schedule of one run: disk_node, then faults() one after another."""

    def __init__(self, seed: int, scenario: str, have_faketime: bool = True):
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}")
        self.scenario = scenario
        self.rng = Lcg(seed)
        self.candidates = candidates(have_faketime)
        # disk-full: one node (picked first) gets its data dir on a small tmpfs
        self.disk_node = self.rng.rand(1, 3) if needs_tmpfs(scenario) else None

    def faults(self) -> Iterator[Fault]:
        """The endless sequence of faults; the run stops taking them when the next does not fit."""
        prev = None
        while True:
            if self.scenario == "mixed":
                while True:
                    name = self.candidates[self.rng.rand(0, len(self.candidates) - 1)]
                    if name != prev:
                        break
            else:
                name = self.scenario
            fault = self._draw(name)
            prev = name
            yield fault

    def _draw(self, name: str) -> Fault:
        r = self.rng.rand
        kw: dict = {}
        if name == "kill-leader":
            kw["hold"] = r(2, 5)
        elif name == "kill-random":
            kw["node"] = r(1, 3)
            kw["hold"] = r(2, 5)
        elif name == "pause":
            kw["leader"] = r(0, 1) == 0
            if not kw["leader"]:
                kw["node"] = r(1, 3)
            kw["hold"] = r(3, 7)
        elif name == "pause-leader":
            kw["leader"] = True
            kw["hold"] = r(3, 7)
        elif name == "pause-follower":
            kw["follower"] = r(0, 1)
            kw["hold"] = r(3, 7)
        elif name == "partition-leader":
            kw["hold"] = r(4, 8)
        elif name == "partition-minority":
            kw["follower"] = r(0, 1)
            kw["hold"] = r(4, 8)
        elif name == "rolling-restart":
            pass
        elif name == "clock-skew":
            kw["node"] = r(1, 3)
            kw["skew"] = SKEWS[r(0, len(SKEWS) - 1)]
            kw["hold"] = r(8, 12)
        elif name == "disk-full":
            kw["hold"] = r(4, 7)
        elif name == "wipe-and-rejoin":
            kw["follower"] = r(0, 1)
            kw["hold"] = r(1, 3)
        else:
            raise ValueError(f"no fault {name!r}")
        return Fault(name=name, gap=r(*GAP_RANGE), **kw)


def fits(n_done: int, now_ms: int, fault: str, end_ms: int) -> bool:
    """Whether the next fault runs: the first always does, later ones if their estimate fits."""
    return n_done == 0 or now_ms + ESTIMATES[fault] * 1000 <= end_ms


def gap_fits(now_ms: int, gap_s: int, end_ms: int) -> bool:
    """Whether the run waits for the gap and goes on (else the faults are done)."""
    return now_ms + gap_s * 1000 < end_ms


def plan(seed: int, scenario: str, duration_s: int, warmup_s: int = 3,
         have_faketime: bool = True) -> list[tuple[int, Fault]]:
    """The schedule as it runs when every fault takes exactly its estimate: (start seconds
    from the start of the load, fault) in order."""
    sched = Schedule(seed, scenario, have_faketime)
    end = duration_s * 1000
    t = warmup_s * 1000
    out: list[tuple[int, Fault]] = []
    for fault in sched.faults():
        if not fits(len(out), t, fault.name, end):
            break
        out.append((t // 1000, fault))
        t += ESTIMATES[fault.name] * 1000
        if not gap_fits(t, fault.gap, end):
            break
        t += fault.gap * 1000
    return out

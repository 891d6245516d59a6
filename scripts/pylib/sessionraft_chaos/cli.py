"""The command line of scripts/chaos.sh (unchanged from the bash script):

    scripts/chaos.sh SCENARIO [--duration S] [--rate R] [--seed N] [--out DIR] [--users N]
                     [--via all|lb] [--on loopback|hosts]
    scripts/chaos.sh list | cleanup | --help

and the environment it reads. Bad input: a message on stderr ('chaos.sh: ...') and exit 2.
"""

from __future__ import annotations

import os
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .schedule import SCENARIOS

#: The scenarios `--on hosts` plays (hosts.py: SUPPORTED; kept here so that parsing needs no
#: import of the hosts package).
HOSTS_SCENARIOS = ("kill-leader", "kill-random", "pause", "pause-leader", "pause-follower",
                   "partition-leader", "partition-minority")

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


class UsageError(Exception):
    """Bad usage or an unmet requirement: exit 2 with 'chaos.sh: MESSAGE'."""


@dataclass
class Options:
    scenario: str
    duration: int = 60
    rate: int = 50
    users: int = 20
    seed: int = 0
    out: str = ""
    via: str = "all"  # --via: "all" (the load balancer and every node) or "lb" (only HAProxy)
    on: str = "loopback"  # --on: "loopback" (cluster.sh) or "hosts" (scripts/hosts.sh)
    settle: int = 10
    recover_timeout: int = 60
    disk_mb: int = 64
    warmup: int = 3
    faketime_lib: Path = field(default_factory=lambda: Path(DEFAULT_FAKETIME_LIB))
    clock_skew: str = ""
    keep_bin: bool = False
    read_consistency: str = ""  # CHAOS_READ_CONSISTENCY: session | linearizable | "" (default)
    tls: bool = False  # CHAOS_TLS=1: the cluster with [tls] (scripts/dev-certs.sh), https everywhere
    bin: Path | None = None  # SESSIONRAFT_BIN, else CARGO_TARGET_DIR or ROOT/target, /release


def whole(s: str) -> bool:
    return re.fullmatch(r"[0-9]+", s) is not None


def parse(argv: list[str], env: dict | None = None, root: Path = ROOT,
          rng: random.Random | None = None) -> Options:
    """Options of a run (argv without the program name; argv[0] is the scenario)."""
    env = os.environ if env is None else env
    if not argv:
        raise UsageError("no scenario (scripts/chaos.sh --help)")
    scenario, rest = argv[0], argv[1:]
    if scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario '{scenario}': one of {' '.join(SCENARIOS)} "
                         "(scripts/chaos.sh --help)")
    raw = {"duration": "60", "rate": "50", "users": "20", "seed": "", "out": "", "via": "all",
           "on": "loopback"}
    i = 0
    while i < len(rest):
        opt = rest[i]
        if opt in ("--duration", "--rate", "--seed", "--out", "--users", "--via", "--on"):
            if i + 1 >= len(rest):
                raise UsageError(f"{opt} needs a value")
            raw[opt[2:]] = rest[i + 1]
            i += 2
        else:
            raise UsageError(f"unknown option '{opt}'")
    if raw["seed"] == "":
        raw["seed"] = str((rng or random.SystemRandom()).randrange(1000000))
    for k in ("duration", "rate", "users", "seed"):
        if not whole(raw[k]):
            raise UsageError(f"--{k} must be a whole number")
    o = Options(scenario=scenario, duration=int(raw["duration"]), rate=int(raw["rate"]),
                users=int(raw["users"]), seed=int(raw["seed"]), out=raw["out"], via=raw["via"],
                on=raw["on"])
    if o.via not in ("all", "lb"):
        raise UsageError("--via must be all (the load balancer and every node) or lb")
    if o.on not in ("loopback", "hosts"):
        raise UsageError("--on must be loopback (scripts/cluster.sh) or hosts (scripts/hosts.sh)")
    if o.on == "hosts" and scenario not in HOSTS_SCENARIOS:
        raise UsageError(f"{scenario} does not run --on hosts (these do: "
                         f"{' '.join(HOSTS_SCENARIOS)})")
    if o.duration < 5:
        raise UsageError("--duration must be at least 5 seconds")
    if o.rate < 1 or o.users < 1:
        raise UsageError("--rate and --users must be at least 1")
    for name, attr, default in (("SETTLE", "settle", "10"),
                                ("RECOVER_TIMEOUT", "recover_timeout", "60"),
                                ("DISK_MB", "disk_mb", "64"), ("WARMUP", "warmup", "3")):
        v = env.get(f"CHAOS_{name}", default)
        if not whole(v):
            raise UsageError(f"CHAOS_{name} must be a whole number")
        setattr(o, attr, int(v))
    o.faketime_lib = Path(env.get("CHAOS_FAKETIME_LIB") or DEFAULT_FAKETIME_LIB)
    o.clock_skew = env.get("CHAOS_CLOCK_SKEW", "")
    o.keep_bin = env.get("CHAOS_KEEP_BIN", "0") == "1"
    o.read_consistency = env.get("CHAOS_READ_CONSISTENCY", "")
    if o.read_consistency not in ("", "session", "linearizable"):
        raise UsageError("CHAOS_READ_CONSISTENCY must be session or linearizable")
    o.tls = env.get("CHAOS_TLS", "0") == "1"
    target = env.get("CARGO_TARGET_DIR") or str(root / "target")
    o.bin = Path(env.get("SESSIONRAFT_BIN") or f"{target}/release/sessionraft")
    return o


def usage(root: Path = ROOT) -> str:
    """The header comment of scripts/chaos.sh (after the #! line, up to the first code line)."""
    lines = []
    try:
        text = (root / "scripts" / "chaos.sh").read_text().splitlines()
    except OSError:
        return (__doc__ or "") + "\n"
    for line in text[1:]:
        if not line.startswith("#"):
            break
        lines.append(re.sub(r"^# ?", "", line))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    first = argv[0] if argv else ""
    try:
        if first in ("", "-h", "--help", "help"):
            sys.stdout.write(usage())
            return 0
        if first == "list":
            print("\n".join(SCENARIOS))
            return 0
        if first == "cleanup":
            from .cleanup import cleanup  # noqa: PLC0415

            return cleanup(root=ROOT)
        if first.startswith("__standin-"):
            raise UsageError(f"{first}: the stand-in load and checker are gone (the binary has "
                             "`sessionraft load` and `sessionraft check`)")
        opts = parse(argv)
    except UsageError as e:
        print(f"chaos.sh: {e}", file=sys.stderr)
        return 2
    from .run import run  # noqa: PLC0415

    return run(opts, root=ROOT)

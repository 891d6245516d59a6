"""The command line of scripts/bench.sh: the usage text (its header comment), the `report` and
`summary` subcommands, and the options of a run (`parse_run_args`), checked as bash did, with its
messages; bad usage raises Usage (exit 2)."""

import dataclasses
import os
import re
import sys

from . import report
from .common import Usage

PARTS_ALL = ("sessionraft", "redis", "etcd", "reads", "resp", "clients", "overload", "failover", "catchup")
# asked for by name only (--only), not part of a full run
PARTS_ON_DEMAND = ("resp-tls", "wrk")
WORKLOADS_ALL = ("write", "read", "mixed")
WORKLOADS = ["write", "read", "mixed"]
CONNECTIONS = [32, 256]
VALUE_BYTES = 200


def root_dir():
    """The repository: this file is ROOT/scripts/pylib/sessionraft_bench/cli.py."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def usage_text(script):
    """The header comment of scripts/bench.sh (after the #! line, up to the first line that is
    not a comment), without the '# ' (what `awk` printed for --help)."""
    out = []
    with open(script) as f:
        lines = f.read().splitlines()
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        out.append(re.sub(r"^# ?", "", line, count=1))
    return "".join(x + "\n" for x in out)


def bash_split(text, sep=","):
    """`IFS=, read -r -a` of TEXT: the fields, a single trailing separator ignored."""
    xs = text.split(sep)
    if len(xs) > 1 and xs[-1] == "":
        xs.pop()
    return xs


@dataclasses.dataclass
class Options:
    mode: str = "bench"            # bench or smoke
    duration: int = 10
    warmup: int = 2
    quick: bool = False
    out: str = ""                  # absolute
    out_given: bool = False
    parts: tuple = PARTS_ALL       # the parts wanted, in PARTS_ALL's order
    trials: int = 10
    sessions: int = 1000000
    keep: bool = False
    compare: str = ""              # B's binary (--compare)
    pairs: int = 3
    workloads: list = dataclasses.field(default_factory=lambda: list(WORKLOADS))
    connections: list = dataclasses.field(default_factory=lambda: list(CONNECTIONS))
    failover_rate: int = 40
    catchup_timeout: int = 300
    args_text: str = ""            # the options as given, for the report's command
    tls: bool = False              # --tls: every sessionraft cluster with [tls] (https, rediss)
    overload_duration: int = 20    # the open loop's measured seconds (the overload part)
    capacity_duration: int = 5     # the closed-loop capacity cell before it

    def want(self, part):
        return part in self.parts


_VALUED = ("--duration", "--warmup", "--out", "--only", "--trials", "--sessions", "--compare", "--pairs",
           "--workloads", "--connections", "--overload-duration", "--capacity-duration")


def parse_run_args(argv, env=None, cwd=None, root=None):
    """The options of a benchmark run (or `smoke`); argv without the program name."""
    env = os.environ if env is None else env
    cwd = os.getcwd() if cwd is None else cwd
    root = root or root_dir()
    o = Options(out=os.path.join(root, "bench", "RESULTS.md"))
    argv = list(argv)
    if argv[:1] == ["smoke"]:
        o.mode = "smoke"
        argv = argv[1:]
    o.args_text = " ".join(argv)
    v = {"duration": "", "warmup": "", "trials": "10", "sessions": "1000000", "pairs": "3",
         "overload-duration": "20", "capacity-duration": "5"}
    only = cmp_workloads = cmp_connections = ""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--quick":
            o.quick = True
            i += 1
        elif a == "--keep":
            o.keep = True
            i += 1
        elif a == "--tls":
            o.tls = True
            i += 1
        elif a in _VALUED:
            if i + 1 >= len(argv):
                raise Usage(f"{a} needs a value")
            x = argv[i + 1]
            if a == "--out":
                o.out, o.out_given = x, True
            elif a == "--compare":
                o.compare = x
            elif a == "--only":
                only = x
            elif a == "--workloads":
                cmp_workloads = x
            elif a == "--connections":
                cmp_connections = x
            else:
                v[a[2:]] = x
            i += 2
        else:
            raise Usage(f"unknown option '{a}' (scripts/bench.sh --help)")
    if o.quick:
        v["duration"] = v["duration"] or "3"
        v["warmup"] = v["warmup"] or "1"
    v["duration"] = v["duration"] or "10"
    v["warmup"] = v["warmup"] or "2"
    for k in ("duration", "warmup", "trials", "sessions", "pairs", "overload-duration", "capacity-duration"):
        if not re.fullmatch(r"[0-9]+", v[k]):
            raise Usage(f"--{k} must be a whole number")
    o.duration, o.warmup, o.trials, o.sessions, o.pairs, o.overload_duration, o.capacity_duration = (
        int(v[k]) for k in ("duration", "warmup", "trials", "sessions", "pairs", "overload-duration",
                            "capacity-duration"))
    if o.duration < 1:
        raise Usage("--duration must be at least 1 second")
    if o.trials < 1 or o.sessions < 1:
        raise Usage("--trials and --sessions must be at least 1")
    if o.pairs < 1:
        raise Usage("--pairs must be at least 1")
    if o.overload_duration < 1 or o.capacity_duration < 1:
        raise Usage("--overload-duration and --capacity-duration must be at least 1 second")
    if o.compare:
        if o.mode != "bench":
            raise Usage("--compare is a benchmark mode (not with smoke)")
        if only:
            raise Usage("--compare runs sessionraft's matrix cells only: no --only")
        c = o.compare if os.path.isabs(o.compare) else os.path.join(cwd, o.compare)
        if not (os.path.isfile(c) and os.access(c, os.X_OK)):
            raise Usage(f"--compare: no executable file at {o.compare}")
        only = "sessionraft"
        if cmp_workloads:
            o.workloads = bash_split(cmp_workloads)
            for w in o.workloads:
                if w not in WORKLOADS_ALL:
                    raise Usage(f"--workloads: unknown workload '{w}' (write, read, mixed)")
        if cmp_connections:
            cs = bash_split(cmp_connections)
            for c in cs:
                if not re.fullmatch(r"[1-9][0-9]*", c):
                    raise Usage(f"--connections: '{c}' is not a positive whole number")
            o.connections = [int(c) for c in cs]
    elif cmp_workloads or cmp_connections:
        raise Usage("--workloads and --connections choose the cells of --compare only (the full run keeps its matrix)")
    if not o.out.startswith("/"):
        o.out = f"{cwd}/{o.out}"
    rate = env.get("BENCH_FAILOVER_RATE") or "40"
    timeout = env.get("BENCH_CATCHUP_TIMEOUT") or "300"
    if not re.fullmatch(r"[0-9]+", timeout):
        raise Usage("BENCH_CATCHUP_TIMEOUT must be a whole number of seconds")
    if not re.fullmatch(r"[0-9]+", rate) or int(rate) < 1:
        raise Usage("BENCH_FAILOVER_RATE must be a whole number >= 1")
    o.failover_rate, o.catchup_timeout = int(rate), int(timeout)
    if only:
        wanted = set()
        for p in bash_split(only):
            if p not in PARTS_ALL + PARTS_ON_DEMAND:
                raise Usage(f"--only: unknown part '{p}' (one of: {' '.join(PARTS_ALL + PARTS_ON_DEMAND)})")
            wanted.add(p)
        o.parts = tuple(p for p in PARTS_ALL + PARTS_ON_DEMAND if p in wanted)
        if "resp-tls" in o.parts and o.tls:
            raise Usage("--only resp-tls compares with and without TLS itself: no --tls")
    if o.mode == "smoke":
        o.parts = ("sessionraft", "redis", "etcd")
    return o


def cmd_report(args, root):
    """`report RAW.json [--out FILE]`: prints the file written."""
    if not args or not os.path.isfile(args[0]):
        raise Usage("usage: report RAW.json [--out FILE]")
    raw, out = args[0], os.path.join(root, "bench", "RESULTS.md")
    if args[1:2] == ["--out"]:
        if len(args) < 3 or not args[2]:
            raise Usage("--out needs a value")
        out = args[2]
    print(report.write_report(raw, out))


def cmd_summary(args, root):
    """`summary RAW.json... [--out FILE]`: prints the file written."""
    out, raws = os.path.join(root, "bench", "SUMMARY.md"), []
    i = 0
    while i < len(args):
        if args[i] == "--out":
            if i + 1 >= len(args) or not args[i + 1]:
                raise Usage("--out needs a value")
            out = args[i + 1]
            i += 2
        else:
            if not os.path.isfile(args[i]):
                raise Usage(f"summary: no raw file {args[i]}")
            raws.append(args[i])
            i += 1
    if not raws:
        raise Usage("usage: summary RAW.json... [--out FILE]")
    print(report.write_summary(out, raws))


def main(argv=None):
    """The program: returns its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    root = os.environ.get("BENCH_ROOT") or root_dir()
    first = argv[0] if argv else ""
    try:
        if first in ("-h", "--help", "help"):
            sys.stdout.write(usage_text(os.path.join(root, "scripts", "bench.sh")))
            return 0
        if first == "report":
            cmd_report(argv[1:], root)
            return 0
        if first == "summary":
            cmd_summary(argv[1:], root)
            return 0
        opts = parse_run_args(argv, root=root)
    except Usage as e:
        print(f"bench.sh: {e}", file=sys.stderr)
        return 2
    from . import run
    return run.main(opts, root)

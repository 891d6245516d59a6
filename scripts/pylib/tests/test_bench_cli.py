"""sessionraft_bench.cli: scripts/bench.sh's command line (good ones parsed, bad ones exit 2 with
bash's message), its usage text, and the `report` / `summary` subcommands."""

import contextlib
import io
import os
import shutil
import stat
import tempfile
import unittest

from sessionraft_bench import cli
from sessionraft_bench.common import Usage

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
RAW = os.path.join(ROOT, "bench", "raw-20261127-033612.json")


def parse(*argv, env=None):
    return cli.parse_run_args(list(argv), env=env or {}, cwd="/cwd", root="/repo")


class ParseTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bench-cli-")
        self.addCleanup(shutil.rmtree, self.tmp)
        self.exe = os.path.join(self.tmp, "sessionraft")
        with open(self.exe, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(self.exe, stat.S_IRWXU)

    def bad(self, message, *argv, env=None):
        with self.assertRaises(Usage) as e:
            parse(*argv, env=env)
        self.assertEqual(str(e.exception), message)

    def test_defaults(self):
        o = parse()
        self.assertEqual((o.mode, o.duration, o.warmup, o.quick, o.trials, o.sessions, o.keep, o.pairs),
                         ("bench", 10, 2, False, 10, 1000000, False, 3))
        self.assertEqual(o.out, "/repo/bench/RESULTS.md")
        self.assertEqual(o.parts, cli.PARTS_ALL)
        self.assertEqual((o.workloads, o.connections), (["write", "read", "mixed"], [32, 256]))
        self.assertEqual((o.failover_rate, o.catchup_timeout), (40, 300))
        self.assertEqual(o.args_text, "")

    def test_quick_shortens_the_cells_only(self):
        o = parse("--quick")
        self.assertEqual((o.duration, o.warmup, o.trials, o.sessions), (3, 1, 10, 1000000))
        o = parse("--quick", "--duration", "5")
        self.assertEqual((o.duration, o.warmup), (5, 1))

    def test_options(self):
        o = parse("--duration", "7", "--warmup", "0", "--out", "x/R.md", "--only", "catchup,sessionraft",
                  "--trials", "1", "--sessions", "5", "--keep")
        self.assertEqual((o.duration, o.warmup, o.trials, o.sessions, o.keep), (7, 0, 1, 5, True))
        self.assertEqual(o.out, "/cwd/x/R.md")
        self.assertTrue(o.out_given)
        self.assertEqual(o.parts, ("sessionraft", "catchup"))  # in the run's order
        self.assertEqual(o.args_text, "--duration 7 --warmup 0 --out x/R.md --only catchup,sessionraft "
                                      "--trials 1 --sessions 5 --keep")
        self.assertEqual(parse("--out", "/abs/R.md").out, "/abs/R.md")

    def test_smoke_runs_the_three_systems(self):
        o = parse("smoke")
        self.assertEqual(o.mode, "smoke")
        self.assertEqual(o.parts, ("sessionraft", "redis", "etcd"))
        self.assertEqual(parse("smoke", "--only", "failover").parts, ("sessionraft", "redis", "etcd"))

    def test_environment(self):
        o = parse(env={"BENCH_FAILOVER_RATE": "5", "BENCH_CATCHUP_TIMEOUT": "9"})
        self.assertEqual((o.failover_rate, o.catchup_timeout), (5, 9))
        o = parse(env={"BENCH_FAILOVER_RATE": "", "BENCH_CATCHUP_TIMEOUT": ""})
        self.assertEqual((o.failover_rate, o.catchup_timeout), (40, 300))

    def test_compare(self):
        o = parse("--compare", self.exe, "--pairs", "1", "--workloads", "write,mixed", "--connections", "32,4", "--quick")
        self.assertEqual(o.compare, self.exe)
        self.assertEqual((o.pairs, o.workloads, o.connections), (1, ["write", "mixed"], [32, 4]))
        self.assertEqual(o.parts, ("sessionraft",))
        self.assertEqual(parse("--compare", self.exe, "--workloads", "read,").workloads, ["read"])

    def test_bad_command_lines(self):
        self.bad("unknown option '--bogus' (scripts/bench.sh --help)", "--bogus")
        self.bad("unknown option 'report' (scripts/bench.sh --help)", "--quick", "report")
        self.bad("--duration needs a value", "--duration")
        self.bad("--out needs a value", "--quick", "--out")
        self.bad("--duration must be a whole number", "--duration", "1.5")
        self.bad("--warmup must be a whole number", "--warmup", "-1")
        self.bad("--trials must be a whole number", "--trials", "x")
        self.bad("--sessions must be a whole number", "--sessions", "")
        self.bad("--pairs must be a whole number", "--pairs", "two")
        self.bad("--duration must be at least 1 second", "--duration", "0")
        self.bad("--trials and --sessions must be at least 1", "--trials", "0")
        self.bad("--trials and --sessions must be at least 1", "--sessions", "0")
        self.bad("--pairs must be at least 1", "--pairs", "0")
        self.bad("--only: unknown part 'redis2' (one of: sessionraft redis etcd reads resp clients overload failover catchup resp-tls wrk)",
                 "--only", "redis,redis2")
        self.bad("--only: unknown part '' (one of: sessionraft redis etcd reads resp clients overload failover catchup resp-tls wrk)", "--only", "redis,,etcd")
        self.bad("--workloads and --connections choose the cells of --compare only (the full run keeps its matrix)",
                 "--workloads", "write")
        self.bad("BENCH_CATCHUP_TIMEOUT must be a whole number of seconds", env={"BENCH_CATCHUP_TIMEOUT": "1m"})
        self.bad("BENCH_FAILOVER_RATE must be a whole number >= 1", env={"BENCH_FAILOVER_RATE": "0"})
        self.bad("BENCH_FAILOVER_RATE must be a whole number >= 1", env={"BENCH_FAILOVER_RATE": "x"})

    def test_bad_compare_lines(self):
        self.bad("--compare is a benchmark mode (not with smoke)", "smoke", "--compare", self.exe)
        self.bad("--compare runs sessionraft's matrix cells only: no --only", "--compare", self.exe, "--only", "redis")
        missing = os.path.join(self.tmp, "nope")
        self.bad(f"--compare: no executable file at {missing}", "--compare", missing)
        self.bad(f"--compare: no executable file at {self.tmp}", "--compare", self.tmp)
        self.bad("--workloads: unknown workload 'writes' (write, read, mixed)",
                 "--compare", self.exe, "--workloads", "write,writes")
        self.bad("--connections: '0' is not a positive whole number", "--compare", self.exe, "--connections", "32,0")
        self.bad("--connections: '032' is not a positive whole number", "--compare", self.exe, "--connections", "032")

    def test_bash_split(self):
        self.assertEqual(cli.bash_split("a,b"), ["a", "b"])
        self.assertEqual(cli.bash_split("a,"), ["a"])
        self.assertEqual(cli.bash_split("a,,"), ["a", ""])
        self.assertEqual(cli.bash_split(",a"), ["", "a"])
        self.assertEqual(cli.bash_split(","), [""])


class MainTest(unittest.TestCase):
    """cli.main: the exit status and the messages of the subcommands that need no run."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bench-main-")
        self.addCleanup(shutil.rmtree, self.tmp)

    def main(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(list(argv))
        return rc, out.getvalue(), err.getvalue()

    def test_help_is_the_header_of_bench_sh(self):
        rc, out, err = self.main("--help")
        self.assertEqual((rc, err), (0, ""))
        self.assertTrue(out.startswith("Benchmark sessionraft against two baselines"), out[:80])
        self.assertIn("  scripts/bench.sh smoke ", out)
        self.assertTrue(out.endswith("scripts/chaos.sh run holds target/chaos/.lock.\n"), out[-80:])
        self.assertNotIn("set -euo", out)
        self.assertEqual(self.main("help")[1], out)
        self.assertEqual(self.main("-h")[1], out)

    def test_usage_text_stops_at_the_first_line_that_is_not_a_comment(self):
        p = os.path.join(self.tmp, "s.sh")
        with open(p, "w") as f:
            f.write("#!/bin/sh\n# one\n#\n#   two\n#three\nset -e\n# not this\n")
        self.assertEqual(cli.usage_text(p), "one\n\n  two\nthree\n")

    def test_report_and_summary(self):
        out = os.path.join(self.tmp, "R.md")
        self.assertEqual(self.main("report", RAW, "--out", out), (0, out + "\n", ""))
        self.assertTrue(os.path.getsize(out) > 0)
        out = os.path.join(self.tmp, "S.md")
        self.assertEqual(self.main("summary", RAW, RAW, "--out", out), (0, out + "\n", ""))
        with open(out) as f:
            self.assertIn("from 2 full run(s)", f.read())

    def test_bad_subcommand_lines_exit_2(self):
        missing = os.path.join(self.tmp, "missing.json")
        cases = [
            (("report",), "bench.sh: usage: report RAW.json [--out FILE]\n"),
            (("report", missing), "bench.sh: usage: report RAW.json [--out FILE]\n"),
            (("report", RAW, "--out"), "bench.sh: --out needs a value\n"),
            (("report", RAW, "--out", ""), "bench.sh: --out needs a value\n"),
            (("summary",), "bench.sh: usage: summary RAW.json... [--out FILE]\n"),
            (("summary", RAW, missing), f"bench.sh: summary: no raw file {missing}\n"),
            (("summary", RAW, "--out"), "bench.sh: --out needs a value\n"),
            (("--only", "x"), "bench.sh: --only: unknown part 'x' (one of: sessionraft redis etcd reads resp clients overload failover catchup resp-tls wrk)\n"),
            (("smoke", "--bogus"), "bench.sh: unknown option '--bogus' (scripts/bench.sh --help)\n"),
        ]
        for argv, message in cases:
            with self.subTest(argv=argv):
                self.assertEqual(self.main(*argv), (2, "", message))


if __name__ == "__main__":
    unittest.main()

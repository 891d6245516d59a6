"""sessionraft_chaos.cli: the command line and environment of scripts/chaos.sh; bad input exits 2
with a message."""

import contextlib
import io
import random
import unittest
from pathlib import Path

from sessionraft_chaos import cli
from sessionraft_chaos.schedule import SCENARIOS


def run_main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


class ParseTest(unittest.TestCase):
    def test_defaults(self):
        o = cli.parse(["mixed"], env={}, root=Path("/r"), rng=random.Random(1))
        self.assertEqual((o.scenario, o.duration, o.rate, o.users, o.out), ("mixed", 60, 50, 20, ""))
        self.assertTrue(0 <= o.seed < 1000000)
        self.assertEqual((o.settle, o.recover_timeout, o.disk_mb, o.warmup), (10, 60, 64, 3))
        self.assertEqual(o.bin, Path("/r/target/release/sessionraft"))
        self.assertEqual(o.faketime_lib, Path(cli.DEFAULT_FAKETIME_LIB))
        self.assertFalse(o.keep_bin)

    def test_options_and_environment(self):
        env = {"CHAOS_SETTLE": "4", "CHAOS_RECOVER_TIMEOUT": "30", "CHAOS_DISK_MB": "16",
               "CHAOS_WARMUP": "0", "CHAOS_CLOCK_SKEW": "+5s", "CHAOS_KEEP_BIN": "1",
               "CHAOS_FAKETIME_LIB": "/x/lib.so", "SESSIONRAFT_BIN": "/b/sr",
               "CARGO_TARGET_DIR": "/t"}
        o = cli.parse(["pause", "--duration", "40", "--rate", "7", "--seed", "0012", "--out",
                       "o", "--users", "3", "--via", "lb"], env=env)
        self.assertEqual((o.duration, o.rate, o.seed, o.out, o.users), (40, 7, 12, "o", 3))
        self.assertEqual((o.via, cli.parse(["pause"], env=env).via), ("lb", "all"))
        self.assertEqual((o.settle, o.recover_timeout, o.disk_mb, o.warmup), (4, 30, 16, 0))
        self.assertEqual((o.clock_skew, o.keep_bin), ("+5s", True))
        self.assertEqual((o.faketime_lib, o.bin), (Path("/x/lib.so"), Path("/b/sr")))
        self.assertEqual(cli.parse(["pause"], env={"CARGO_TARGET_DIR": "/t"}).bin,
                         Path("/t/release/sessionraft"))

    def test_the_last_value_of_an_option_wins(self):
        self.assertEqual(cli.parse(["pause", "--rate", "3", "--rate", "4"], env={}).rate, 4)

    def test_bad_input(self):
        cases = [
            (["nope"], "unknown scenario 'nope': one of kill-leader"),
            (["pause", "--duration"], "--duration needs a value"),
            (["pause", "--bogus", "1"], "unknown option '--bogus'"),
            (["pause", "extra"], "unknown option 'extra'"),
            (["pause", "--duration", "1.5"], "--duration must be a whole number"),
            (["pause", "--rate", "-1"], "--rate must be a whole number"),
            (["pause", "--users", "x"], "--users must be a whole number"),
            (["pause", "--seed", "s"], "--seed must be a whole number"),
            (["pause", "--duration", "4"], "--duration must be at least 5 seconds"),
            (["pause", "--rate", "0"], "--rate and --users must be at least 1"),
            (["pause", "--users", "0"], "--rate and --users must be at least 1"),
            (["pause", "--via", "nodes"], "--via must be all (the load balancer and every node) or lb"),
        ]
        for argv, msg in cases:
            rc, out, err = run_main(argv)
            self.assertEqual(rc, 2, argv)
            self.assertEqual(out, "", argv)
            self.assertTrue(err.startswith(f"chaos.sh: {msg}"), (argv, err))

    def test_bad_environment(self):
        for var in ("CHAOS_SETTLE", "CHAOS_RECOVER_TIMEOUT", "CHAOS_DISK_MB", "CHAOS_WARMUP"):
            with self.assertRaises(cli.UsageError) as e:
                cli.parse(["pause"], env={var: "1s"})
            self.assertEqual(str(e.exception), f"{var} must be a whole number")


class MainTest(unittest.TestCase):
    def test_list(self):
        rc, out, _ = run_main(["list"])
        self.assertEqual((rc, out.split()), (0, list(SCENARIOS)))

    def test_help_is_the_header_of_chaos_sh(self):
        for argv in ([], ["-h"], ["--help"], ["help"]):
            rc, out, _ = run_main(argv)
            self.assertEqual(rc, 0)
            self.assertTrue(out.startswith("Chaos runs against a fresh local 3-node"), out[:80])
            self.assertIn("scripts/chaos.sh SCENARIO [--duration S]", out)
            self.assertNotIn("exec python3", out)
            self.assertFalse(any(line.startswith("#") for line in out.splitlines()))

    def test_chaos_sh_stays_short_and_only_execs_the_program(self):
        text = (cli.ROOT / "scripts" / "chaos.sh").read_text()
        code = [line for line in text.splitlines() if line and not line.startswith("#")]
        self.assertLess(len(code), 10, code)
        self.assertEqual(code[-1], 'exec python3 -m sessionraft_chaos "$@"')


if __name__ == "__main__":
    unittest.main()

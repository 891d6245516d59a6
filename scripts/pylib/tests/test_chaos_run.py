"""sessionraft_chaos.run, faults and cleanup: the parts that need no cluster and no root (the
verdict and exit code, locks, the binary's commands, the commands run, log parsing)."""

import contextlib
import fcntl
import io
import os
import subprocess
import tempfile
import unittest
from pathlib import Path
from unittest import mock

from sessionraft_chaos import cleanup, cli, faults, run
from sessionraft_chaos.cli import Options
from sessionraft_chaos.schedule import Fault

HELP = """Usage: sessionraft <COMMAND>

Commands:
  serve         Run one node
  check-config  Check a config file
  load          Drive a cluster
  check         Check a history
"""


class VerdictTest(unittest.TestCase):
    def v(self, check_rc, load_rc=0, problems=()):
        return run.verdict_lines(check_rc, load_rc, list(problems), Path("/o"), Path("/o/check"))

    def test_exit_codes(self):
        self.assertEqual(self.v(0), (["verdict: VALID (sessionraft check): /o/check/verdict.json"], 0))
        self.assertEqual(self.v(1)[1], 1)
        self.assertEqual(self.v(1)[0][0],
                         "verdict: VIOLATIONS FOUND (sessionraft check): /o/check/verdict.json")
        self.assertEqual(self.v(2), (["verdict: the checker could not run (exit 2; /o/check.log)"], 2))
        self.assertEqual(self.v(0, load_rc=124)[1], 2)
        self.assertEqual(self.v(0, load_rc=124)[0][1], "the load exited 124 (see /o/load.log)")
        self.assertEqual(self.v(1, load_rc=1)[1], 1)  # violations win
        lines, rc = self.v(0, problems=["node 2 exited on its own (before 3.000s)"])
        self.assertEqual(rc, 3)
        self.assertEqual(lines[1:], ["recovery problems:",
                                     "  - node 2 exited on its own (before 3.000s)"])
        self.assertEqual(self.v(1, problems=["x"])[1], 1)
        self.assertEqual(self.v(2, problems=["x"])[1], 2)


class CommandsTest(unittest.TestCase):
    def test_has_cmd(self):
        self.assertTrue(run.has_cmd(HELP, "load"))
        self.assertTrue(run.has_cmd(HELP, "check"))
        self.assertFalse(run.has_cmd(HELP.replace("  load ", "  loading "), "load"))
        self.assertFalse(run.has_cmd("Usage: sessionraft load", "load"))

    def test_load_and_check_command_lines(self):
        o = Options(scenario="mixed", duration=40, rate=50, users=20, seed=7, settle=10)
        t = "http://127.0.0.1:1,http://127.0.0.11:2"
        self.assertEqual(run.load_argv(Path("/o/bin/sessionraft"), t, o, Path("/o/history.jsonl")),
                         ["/o/bin/sessionraft", "load", "--targets", t, "--users", "20", "--rate",
                          "50", "--duration", "40", "--seed", "7", "--out", "/o/history.jsonl",
                          "--settle", "10", "--final-targets", t])
        # --via lb: the load goes through HAProxy only; its final reads still read every node
        lb, every = "http://127.0.0.1:1", "http://127.0.0.1:1,http://127.0.0.11:2"
        self.assertEqual(run.load_argv(Path("/b"), lb, o, Path("/h"), every)[2:4],
                         ["--targets", lb])
        self.assertEqual(run.load_argv(Path("/b"), lb, o, Path("/h"), every)[-2:],
                         ["--final-targets", every])
        self.assertEqual(run.check_argv(Path("/b"), Path("/o/h"), "n1,n2", Path("/o/f"),
                                        Path("/o/check")),
                         ["/b", "check", "--history", "/o/h", "--nodes", "n1,n2", "--faults",
                          "/o/f", "--out", "/o/check"])
        self.assertEqual(run.check_argv(Path("/b"), Path("/o/h"), "n1", Path("/o/f"),
                                        Path("/o/check"), Path("/o/terms.jsonl"))[-2:],
                         ["--terms", "/o/terms.jsonl"])

    def test_with_tls_the_urls_are_https_and_the_tools_trust_the_ca(self):
        from sessionraft_chaos.config import Layout
        lay = Layout(1000, {1: 1001}, {1: 1101}, scheme="https")
        self.assertEqual(lay.lb_url, "https://127.0.0.1:1000")
        self.assertEqual(lay.http_url(1), "https://127.0.0.11:1001")
        self.assertEqual(Layout(1000, {1: 1001}, {1: 1101}).http_url(1), "http://127.0.0.11:1001")
        o = Options(scenario="kill-leader", duration=10, rate=5, users=2, seed=1, settle=1)
        self.assertEqual(run.load_argv(Path("/b"), lay.lb_url, o, Path("/h"), None, Path("/c/ca.crt"))[-2:],
                         ["--ca", "/c/ca.crt"])
        self.assertEqual(run.check_argv(Path("/b"), Path("/h"), "n1", Path("/f"), Path("/o"), None,
                                        Path("/c/ca.crt"))[-2:], ["--ca", "/c/ca.crt"])
        self.assertTrue(cli.parse(["kill-leader"], {"CHAOS_TLS": "1"}).tls)
        self.assertFalse(cli.parse(["kill-leader"], {}).tls)

    def test_fault_windows_line(self):
        summary = {"fault_windows_ms": {"count": 2, "p50": 812.5, "max": 1505.25}}
        self.assertEqual(run.fault_windows_line(summary),
                         "fault windows (longest time without a successful operation while "
                         "some waited, from a fault's start to 3 s after its end): 2 faults, "
                         "p50 0.812s, max 1.505s")
        # no faults, a checker without the figures, no summary
        self.assertIsNone(run.fault_windows_line({"fault_windows_ms": {"count": 0}}))
        self.assertIsNone(run.fault_windows_line({"ops": {}}))
        self.assertIsNone(run.fault_windows_line(None))

    def test_read_summary(self):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "summary.json"
            self.assertIsNone(run.read_summary(p))
            p.write_text("[1]")
            self.assertIsNone(run.read_summary(p))
            p.write_text('{"faults": []}')
            self.assertEqual(run.read_summary(p), {"faults": []})


class FaultHelpersTest(unittest.TestCase):
    def test_followers(self):
        self.assertEqual(faults.followers(2), [1, 3])

    def test_snapshot_installed_in_a_coloured_log(self):
        log = ("\x1b[2m2026\x1b[0m INFO snapshot installed id=3-57-1 size=100\n"
               "INFO \x1b[32msnapshot installed id=4-80-2\x1b[0m done\n")
        self.assertEqual(faults.snapshot_installed(log), "snapshot installed id=4-80-2")
        self.assertEqual(faults.snapshot_installed("nothing\n"), "")
        # the id ends at the end of its line (grep -o's reading, as in the bash script)
        self.assertEqual(faults.snapshot_installed("snapshot installed id=2-2-203\n), x"),
                         "snapshot installed id=2-2-203")

    def test_count_no_space(self):
        with tempfile.TemporaryDirectory() as d:
            log = Path(d) / "n.log"
            log.write_text("ok\nERROR No space left on device\nno space\nspace\n")
            self.assertEqual(faults.count_no_space(log), 2)
            self.assertEqual(faults.count_no_space(Path(d) / "missing"), 0)

    def test_wipe_deletes_the_contents_only(self):
        with tempfile.TemporaryDirectory() as d:
            data = Path(d) / "data"
            (data / "db" / "x").mkdir(parents=True)
            (data / "f").write_text("1")
            faults.wipe(data)
            self.assertEqual(list(data.iterdir()), [])
            faults.wipe(Path(d) / "missing")  # a node that never wrote: nothing to delete

    def test_pause_follower_and_pause_leader_pick_their_node(self):
        for fault, leader, want in ((Fault("pause-follower", hold=4, follower=1), 2, 3),
                                    (Fault("pause-follower", hold=4, follower=0), 1, 2),
                                    (Fault("pause-leader", hold=3, leader=True), 3, 3)):
            r = FakeRun(leader)
            with mock.patch.object(faults.os, "kill") as kill:
                faults.NEMESES[fault.name](r, fault)
            kill.assert_called_once_with(1000 + want, faults.signal.SIGSTOP)
            self.assertEqual(r.rec.windows, [(fault.name, want)])
            self.assertEqual(r.naps, [fault.hold])
            self.assertTrue(r.resumed)
        r = FakeRun(None)
        with mock.patch.object(faults.os, "kill") as kill:
            faults.pause_follower(r, Fault("pause-follower", hold=4, follower=0))
        kill.assert_not_called()
        self.assertEqual(r.rec.said, ["pause-follower: no leader; skipped"])

    def test_every_fault_has_a_nemesis(self):
        from sessionraft_chaos.schedule import FAULTS
        self.assertEqual(set(faults.NEMESES), set(FAULTS))


class FakeRun:
    """What a pause needs of a Run: the leader, pid 1000 + node, a recorder, naps."""

    class Rec:
        def __init__(self):
            self.windows, self.said = [], []

        def begin(self, name, node, detail=""):
            self.windows.append((name, node))

        def end(self, more=""):
            pass

        def say(self, msg):
            self.said.append(msg)

    def __init__(self, leader):
        self.cluster = mock.Mock()
        self.cluster.find_leader.return_value = leader
        self.cluster.node_pid.side_effect = lambda n: 1000 + n
        self.signals = mock.Mock()
        self.signals.critical.return_value = contextlib.nullcontext()
        self.rec = self.Rec()
        self.naps = []
        self.resumed = False
        self.paused_pid = None

    def nap(self, s):
        self.naps.append(s)

    def resume_paused(self):
        self.resumed = self.paused_pid is not None


class CleanupTest(unittest.TestCase):
    def test_stale_mounts(self):
        mounts = ("tmpfs /run tmpfs rw 0 0\n"
                  "chaos-123 /r/target/chaos/x/disk/node2 tmpfs rw,size=65536k 0 0\n"
                  "chaos-9 /mnt/a\\040b tmpfs rw 0 0\n"
                  "chaos-77 /srv ext4 rw 0 0\n")
        self.assertEqual(cleanup.stale_mounts(mounts),
                         [("chaos-123", "/r/target/chaos/x/disk/node2"), ("chaos-9", "/mnt/a b")])


@unittest.skipUnless(all(run.find_cmd(c) for c in ("curl", "haproxy", "flock", "setsid")),
                     "needs what scripts/cluster.sh needs (scripts/install-deps.sh --cluster)")
class RunRefusesTest(unittest.TestCase):
    """A run against a fake checkout (ROOT with scripts/ and target/) and a fake binary."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        (self.root / "scripts").mkdir()
        self.bin = self.root / "sessionraft"
        self.bin.write_text("#!/bin/sh\ncat <<'EOF'\n" + HELP + "EOF\n")
        self.bin.chmod(0o755)

    def tearDown(self):
        self.tmp.cleanup()

    def go(self, **kw):
        o = Options(scenario="kill-random", seed=1, bin=self.bin,
                    out=str(self.root / "out"), **kw)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = run.run(o, self.root)
        return rc, err.getvalue()

    def hold(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(["flock", "-n", str(path), "sleep", "30"])

    def test_no_binary(self):
        self.bin.unlink()
        rc, err = self.go()
        self.assertEqual(rc, 2)
        self.assertIn(f"chaos.sh: no binary at {self.bin}", err)

    def test_binary_without_load(self):
        self.bin.write_text("#!/bin/sh\necho '  serve'\n")
        rc, err = self.go()
        self.assertEqual(rc, 2)
        self.assertIn("has no 'load' command", err)

    def test_one_chaos_run_at_a_time(self):
        holder = self.hold(self.root / "target/chaos/.lock")
        try:
            self.wait_held(self.root / "target/chaos/.lock")
            rc, err = self.go()
        finally:
            holder.kill()
            holder.wait()
        self.assertEqual(rc, 2)
        self.assertIn("another chaos run is active", err)
        self.assertFalse((self.root / "out").exists())

    def test_not_while_a_bench_run_holds_its_lock(self):
        env_target = os.environ.pop("CARGO_TARGET_DIR", None)
        holder = self.hold(self.root / "target/bench/.lock")
        try:
            self.wait_held(self.root / "target/bench/.lock")
            rc, err = self.go()
        finally:
            holder.kill()
            holder.wait()
            if env_target is not None:
                os.environ["CARGO_TARGET_DIR"] = env_target
        self.assertEqual(rc, 2)
        self.assertIn("a scripts/bench.sh run is active", err)

    def test_out_must_be_fresh(self):
        (self.root / "out").mkdir()
        (self.root / "out" / "x").write_text("")
        rc, err = self.go()
        self.assertEqual(rc, 2)
        self.assertIn("exists and is not empty: each run needs a fresh directory", err)

    def wait_held(self, path):
        import time
        for _ in range(50):
            if run.lock_held(path):
                return
            time.sleep(0.05)
        self.fail(f"{path} not held")

    def test_lock_held(self):
        p = self.root / "l"
        self.assertFalse(run.lock_held(p))  # no file
        p.write_text("")
        self.assertFalse(run.lock_held(p))
        fd = os.open(p, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # another open file description: blocked by ours
            self.assertTrue(run.lock_held(p))
        finally:
            os.close(fd)


if __name__ == "__main__":
    unittest.main()

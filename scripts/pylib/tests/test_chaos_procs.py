"""sessionraft_chaos.procs: processes are only signalled through pid files after a
/proc/PID/cmdline check; SIGINT/SIGTERM handling."""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

from sessionraft_chaos import procs


def fake(argv0, *args, session=False):
    """A sleeping python process whose command line is argv0 -c CODE ARGS..."""
    return subprocess.Popen([argv0, "-c", "import time; time.sleep(30)", *args],
                            executable=sys.executable, start_new_session=session)


class CmdlineTest(unittest.TestCase):
    def test_is_node(self):
        self.assertTrue(procs.is_node(["/x/sessionraft", "serve", "--config", "c", "--node", "2"], 2))
        self.assertTrue(procs.is_node(["sessionraft", "serve", "--node", "2", "--config", "c"], 2))
        self.assertFalse(procs.is_node(["/x/sessionraft", "serve", "--config", "c", "--node", "2"], 3))
        self.assertFalse(procs.is_node(["/x/sessionraft", "load", "--node", "2"], 2))
        self.assertFalse(procs.is_node(["/x/sessionraft", "--node", "2", "serve"], 2))
        self.assertFalse(procs.is_node(["/x/other", "serve", "--node", "2"], 2))
        self.assertFalse(procs.is_node(["/x/sessionraft", "serve", "--node"], 2))
        self.assertFalse(procs.is_node([], 2))
        self.assertFalse(procs.is_node(None, 2))

    def test_is_load_and_chaos_run(self):
        args = ["/o/bin/sessionraft", "load", "--out", "/o/history.jsonl"]
        self.assertTrue(procs.is_load(args))
        self.assertTrue(procs.is_load(args, Path("/o")))
        self.assertFalse(procs.is_load(args, Path("/p")))
        self.assertFalse(procs.is_load(["/o/bin/sessionraft", "serve"]))
        self.assertTrue(procs.is_chaos_run(["bash", "/r/scripts/chaos.sh", "mixed"]))
        self.assertTrue(procs.is_chaos_run(["python3", "-m", "sessionraft_chaos", "mixed"]))
        self.assertFalse(procs.is_chaos_run(["python3", "-m", "http.server"]))
        self.assertFalse(procs.is_chaos_run(None))

    def test_cmdline_of_a_real_process(self):
        self.assertIn("python", os.path.basename(procs.cmdline(os.getpid())[0]))
        self.assertIsNone(procs.cmdline(2 ** 22 + 12345))

    def test_node_pid_checks_the_pid_file_and_the_command_line(self):
        with tempfile.TemporaryDirectory() as d:
            run_dir = Path(d)
            self.assertIsNone(procs.node_pid(run_dir, 1))  # no pid file
            (run_dir / "node1.pid").write_text("garbage\n")
            self.assertIsNone(procs.node_pid(run_dir, 1))
            p = fake(f"{d}/sessionraft", "serve", "--config", "c", "--node", "1")
            other = fake(f"{d}/not-sessionraft", "serve", "--config", "c", "--node", "2")
            try:
                time.sleep(0.2)
                (run_dir / "node1.pid").write_text(f"{p.pid}\n")
                (run_dir / "node2.pid").write_text(f"{other.pid}\n")
                (run_dir / "node3.pid").write_text(f"{p.pid}\n")  # a pid running another node
                self.assertEqual(procs.node_pid(run_dir, 1), p.pid)
                self.assertIsNone(procs.node_pid(run_dir, 2))
                self.assertIsNone(procs.node_pid(run_dir, 3))
            finally:
                p.kill()
                other.kill()
                p.wait()
                other.wait()
            self.assertIsNone(procs.node_pid(run_dir, 1))  # gone

    def test_stop_load_signals_only_the_load(self):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d)
            load = fake(f"{d}/bin/sessionraft", "load", "--out", f"{d}/history.jsonl", session=True)
            bystander = fake(f"{d}/bin/sessionraft", "serve", "--node", "1", session=True)
            try:
                time.sleep(0.2)
                procs.stop_load(bystander.pid, out)
                procs.stop_load(load.pid, Path("/elsewhere"))
                time.sleep(0.1)
                self.assertIsNone(bystander.poll())
                self.assertIsNone(load.poll())
                procs.stop_load(load.pid, out)
                self.assertEqual(load.wait(timeout=5), -signal.SIGTERM)
            finally:
                for p in (load, bystander):
                    p.kill()
                    p.wait()

    def test_exit_code(self):
        self.assertEqual([procs.exit_code(0), procs.exit_code(3), procs.exit_code(-15)],
                         [0, 3, 143])

    def test_run_logged_appends_output(self):
        with tempfile.TemporaryDirectory() as d:
            log = Path(d) / "ops.log"
            log.write_text("before\n")
            rc = procs.run_logged(["sh", "-c", "echo out; echo err >&2; exit 4"], log)
            self.assertEqual(rc, 4)
            self.assertEqual(log.read_text(), "before\nout\nerr\n")


class SignalsTest(unittest.TestCase):
    def setUp(self):
        self.saved = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
        self.sig = procs.Signals()
        self.sig.install()

    def tearDown(self):
        signal.signal(signal.SIGINT, self.saved[0])
        signal.signal(signal.SIGTERM, self.saved[1])

    def test_a_signal_interrupts_a_sleep(self):
        with self.assertRaises(procs.Interrupted) as e:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        self.assertEqual((e.exception.code, e.exception.signame), (143, "SIGTERM"))

    def test_a_signal_in_a_critical_section_is_raised_at_its_end(self):
        done = False
        with self.assertRaises(procs.Interrupted) as e:
            with self.sig.critical():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                done = True
        self.assertTrue(done)
        self.assertEqual(e.exception.code, 130)

    def test_a_foreground_command_runs_to_its_end(self):
        with tempfile.TemporaryDirectory() as d:
            log = Path(d) / "log"
            p = subprocess.Popen(["sh", "-c", f"sleep 0.3; echo finished > {log}"])
            threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
            with self.assertRaises(procs.Interrupted):
                procs.wait_through(p)
            self.assertEqual(log.read_text(), "finished\n")


if __name__ == "__main__":
    unittest.main()

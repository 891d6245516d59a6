"""sessionraft_cluster.rundir and procs: pid files, the run dir's files and lock, and processes
signalled only after their /proc/PID/cmdline is checked (stand-in processes are sleeping pythons
named like a node or HAProxy)."""

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from sessionraft_cluster import procs, rundir
from sessionraft_cluster.rundir import RunDir


def fake(argv0, *args):
    """A sleeping python whose command line is argv0 -c CODE ARGS..."""
    return subprocess.Popen([argv0, "-c", "import time; time.sleep(30)", *args], executable=sys.executable)


def settle():
    """Until a just-started stand-in has exec'd (its cmdline is python's, not the fork's)."""
    time.sleep(0.2)


class PidFileTest(unittest.TestCase):
    def test_read_pid(self):
        with tempfile.TemporaryDirectory() as d:
            f = f"{d}/node1.pid"
            self.assertIsNone(rundir.read_pid(f))
            for text, want in (("123\n", 123), ("123", 123), (" 123 \n", 123), ("", None), ("12a\n", None),
                               ("-5\n", None)):
                with open(f, "w") as fh:
                    fh.write(text)
                self.assertEqual(rundir.read_pid(f), want, repr(text))
            rundir.write_pid(f, 42)
            self.assertEqual(Path(f).read_text(), "42\n")

    def test_pid_file_ids(self):
        with tempfile.TemporaryDirectory() as d:
            for name in ("node1.pid", "node12.pid", "node0.pid", "nodex.pid", "node01.pid", "haproxy.pid", "node3.log"):
                open(f"{d}/{name}", "w").close()
            self.assertEqual(RunDir(d).pid_file_ids(), ["1", "12"])
            self.assertEqual(RunDir(f"{d}/missing").pid_file_ids(), [])

    def test_layout(self):
        r = RunDir("/x/run")
        self.assertEqual((r.pid_file("2"), r.log_file("2"), r.data_dir("4")),
                         ("/x/run/node2.pid", "/x/run/logs/node2.log", "/x/run/data/node4"))
        self.assertEqual((r.extra_file, r.removed_file, r.haproxy_cfg, r.haproxy_pid, r.haproxy_log, r.lock_file),
                         ("/x/run/extra-nodes", "/x/run/removed-nodes", "/x/run/haproxy.cfg", "/x/run/haproxy.pid",
                          "/x/run/logs/haproxy.log", "/x/run/.lock"))

    def test_extra_and_removed_files_keep_the_shell_format(self):
        with tempfile.TemporaryDirectory() as d:
            r = RunDir(d)
            r.add_extra("4", "127.0.0.1:7004", f"{d}/data/node4", "127.0.0.1:7104")
            r.add_extra("5", "h5:7005", f"{d}/data/node5", "h5:7105")
            self.assertEqual(Path(r.extra_file).read_text(),
                             f"4\t127.0.0.1:7004\t{d}/data/node4\t127.0.0.1:7104\n5\th5:7005\t{d}/data/node5\th5:7105\n")
            r.drop_extra("4")
            self.assertEqual([f[0] for f in r.extra_lines()], ["5"])
            r.add_removed("2")
            r.add_removed("3")
            self.assertEqual(Path(r.removed_file).read_text(), "2\n3\n")
            self.assertTrue(r.is_removed("3"))
            self.assertFalse(r.is_removed("1"))
            r.drop_removed("2")
            self.assertEqual(r.removed_ids(), ["3"])

    def test_the_lock_is_reentrant_and_exclusive(self):
        import fcntl

        with tempfile.TemporaryDirectory() as d:
            r = RunDir(f"{d}/run")

            def taken() -> bool:
                fd = os.open(r.lock_file, os.O_WRONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return False
                except BlockingIOError:
                    return True
                finally:
                    os.close(fd)

            with r.lock():
                with r.lock():
                    self.assertTrue(taken())
                self.assertTrue(taken())
            self.assertFalse(taken())


class CmdlineTest(unittest.TestCase):
    def test_is_node(self):
        self.assertTrue(procs.is_node(["/x/sessionraft", "serve", "--config", "c", "--node", "2"], "2"))
        self.assertTrue(procs.is_node(["sessionraft", "serve", "--node", "2", "--http", "h:1"], "2"))
        self.assertFalse(procs.is_node(["/x/sessionraft", "serve", "--config", "c", "--node", "2"], "3"))
        self.assertFalse(procs.is_node(["/x/sessionraft", "load", "--node", "2"], "2"))
        self.assertFalse(procs.is_node(["/x/sessionraft", "--node", "2", "serve"], "2"))
        self.assertFalse(procs.is_node(["/x/sessionraft-old", "serve", "--node", "2"], "2"))
        self.assertFalse(procs.is_node(["/x/sessionraft", "serve", "--node"], "2"))
        self.assertFalse(procs.is_node([], "2"))
        self.assertFalse(procs.is_node(None, "2"))

    def test_is_haproxy(self):
        self.assertTrue(procs.is_haproxy(["/usr/sbin/haproxy", "-W", "-db", "-f", "/r/haproxy.cfg"], "/r/haproxy.cfg"))
        self.assertFalse(procs.is_haproxy(["/usr/sbin/haproxy", "-W", "-f", "/other/haproxy.cfg"], "/r/haproxy.cfg"))
        self.assertFalse(procs.is_haproxy(["/bin/cat", "-f", "/r/haproxy.cfg"], "/r/haproxy.cfg"))

    def test_parse_stat(self):
        self.assertEqual(procs.parse_stat("123 (a (weird) name) S 77 123 123 0 -1"), ("S", 77))
        self.assertEqual(procs.parse_stat("9 (haproxy) Z 1 9 9"), ("Z", 1))


class ProcessTest(unittest.TestCase):
    def test_node_live_pid_checks_the_pid_file_and_the_command_line(self):
        with tempfile.TemporaryDirectory() as d:
            r = RunDir(d)
            self.assertIsNone(procs.node_live_pid(r, "1"))
            node = fake(f"{d}/sessionraft", "serve", "--config", "c", "--node", "1")
            other = fake(f"{d}/not-sessionraft", "serve", "--config", "c", "--node", "2")
            try:
                settle()
                rundir.write_pid(r.pid_file("1"), node.pid)
                rundir.write_pid(r.pid_file("2"), other.pid)
                rundir.write_pid(r.pid_file("3"), node.pid)  # a pid running another node
                self.assertEqual(procs.node_live_pid(r, "1"), node.pid)
                self.assertIsNone(procs.node_live_pid(r, "2"))
                self.assertIsNone(procs.node_live_pid(r, "3"))
                self.assertIn(node.pid, procs.children(os.getpid()))
            finally:
                for p in (node, other):
                    p.kill()
                    p.wait()
            self.assertFalse(procs.alive(node.pid))
            self.assertIsNone(procs.node_live_pid(r, "1"))

    def test_stop_and_kill_go_by_the_pid_file(self):
        with tempfile.TemporaryDirectory() as d:
            r = RunDir(d)
            a = fake(f"{d}/sessionraft", "serve", "--node", "1")
            b = fake(f"{d}/sessionraft", "serve", "--node", "2")
            bystander = fake(f"{d}/sessionraft", "serve", "--node", "3")
            try:
                settle()
                rundir.write_pid(r.pid_file("1"), a.pid)
                rundir.write_pid(r.pid_file("2"), b.pid)
                lines = []
                procs.signal_node(r, "1", "TERM", out=lines.append)
                procs.signal_node(r, "2", "KILL", out=lines.append)
                procs.signal_node(r, "3", "TERM", out=lines.append)  # no pid file: untouched
                self.assertEqual(lines, ["node 1 stopped", f"node 2 killed (pid {b.pid})", "node 3 is not running"])
                self.assertEqual(a.wait(5), -15)
                self.assertEqual(b.wait(5), -9)
                self.assertIsNone(bystander.poll())
                self.assertEqual(os.listdir(d), [])
            finally:
                for p in (a, b, bystander):
                    p.kill()
                    p.wait()

    def test_spawn_detaches_and_appends_to_the_log(self):
        with tempfile.TemporaryDirectory() as d:
            log = f"{d}/x.log"
            with open(log, "w") as f:
                f.write("before\n")
            pid = procs.spawn([sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid(), flush=True)"], log)
            for _ in range(100):
                if not procs.alive(pid):
                    break
                time.sleep(0.05)
            self.assertFalse(procs.alive(pid))
            self.assertEqual(Path(log).read_text(), "before\nTrue\n")
            self.assertEqual(procs.tail(log, 1), ["True"])

    def test_spawn_returns_once_the_command_line_is_readable(self):
        with tempfile.TemporaryDirectory() as d:
            for _ in range(30):
                pid = procs.spawn([sys.executable, "-c", "import time; time.sleep(30)", "serve"], f"{d}/log")
                try:
                    self.assertEqual(procs.cmdline(pid)[-1], "serve")
                finally:
                    os.kill(pid, 9)

    def test_wait_exit_or_kill_kills_one_that_ignores_sigterm(self):
        # the child says when it ignores SIGTERM (a fixed wait lost the race on a busy machine:
        # the SIGTERM came before the handler and the child died of it, -15)
        p = subprocess.Popen([sys.executable, "-c",
                              "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                              "print('ignoring', flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(p.stdout.readline().strip(), "ignoring")
            procs.os.kill(p.pid, 15)
            err = io.StringIO()
            real_sleep = procs.clock.sleep
            procs.clock.sleep = lambda s: real_sleep(0.001)  # 100 polls in ~0.1 s, not 10 s
            try:
                with contextlib.redirect_stderr(err):
                    procs.wait_exit_or_kill(p.pid, "node 9")
            finally:
                procs.clock.sleep = real_sleep
            self.assertEqual(p.wait(5), -9)
            self.assertEqual(err.getvalue(), "node 9 did not stop in 10 s; SIGKILL\n")
        finally:
            p.kill()
            p.wait()


if __name__ == "__main__":
    unittest.main()

"""sessionraft_cluster.cli and settings: the command line, the environment, exit codes (no
cluster needed: only commands that fail before reaching one, and --help)."""

import contextlib
import io
import os
import tempfile
import unittest
from unittest import mock

from sessionraft_cluster import cli, settings
from sessionraft_cluster.console import Die


def run_main(argv, **env):
    """(exit code, stdout, stderr) of cli.main(argv) under env (on top of a clean one)."""
    out, err = io.StringIO(), io.StringIO()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONRAFT_")}
    with mock.patch.dict(os.environ, {**base, **env}, clear=True), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


class SettingsTest(unittest.TestCase):
    def test_defaults(self):
        s = settings.from_env({}, root="/r", pwd="/p")
        self.assertEqual((s.config, s.run_dir, s.bin, s.ready_timeout),
                         ("/r/cluster.toml", "/r/run", "/r/target/release/sessionraft", 60))
        self.assertEqual((s.lb_addr, s.lb_resp_addr, s.haproxy, s.rebuild), ("", "", "", False))

    def test_environment(self):
        s = settings.from_env({
            "SESSIONRAFT_CONFIG": "cfg/c.toml", "SESSIONRAFT_RUN_DIR": "/abs/run",
            "CARGO_TARGET_DIR": "/t", "SESSIONRAFT_READY_TIMEOUT": "5", "SESSIONRAFT_LB_ADDR": "lb:1",
            "SESSIONRAFT_LB_RESP_ADDR": "lb:2", "SESSIONRAFT_HAPROXY": "/h", "SESSIONRAFT_REBUILD": "1",
        }, root="/r", pwd="/p")
        self.assertEqual((s.config, s.run_dir, s.bin, s.ready_timeout), ("/p/cfg/c.toml", "/abs/run",
                                                                         "/t/release/sessionraft", 5))
        self.assertEqual((s.lb_addr, s.lb_resp_addr, s.haproxy, s.rebuild), ("lb:1", "lb:2", "/h", True))
        self.assertEqual(settings.from_env({"SESSIONRAFT_BIN": "b", "CARGO_TARGET_DIR": "/t"},
                                           root="/r", pwd="/p").bin, "b")
        # empty means unset, as ${VAR:-default} did
        self.assertEqual(settings.from_env({"SESSIONRAFT_CONFIG": "", "SESSIONRAFT_READY_TIMEOUT": ""},
                                           root="/r", pwd="/p").config, "/r/cluster.toml")

    def test_a_bad_ready_timeout(self):
        for bad in ("x", "-1", "1.5", " 5"):
            with self.assertRaises(Die) as e:
                settings.from_env({"SESSIONRAFT_READY_TIMEOUT": bad}, root="/r", pwd="/p")
            self.assertEqual(str(e.exception), "SESSIONRAFT_READY_TIMEOUT must be a number of seconds")

    def test_logical_cwd(self):
        with tempfile.TemporaryDirectory() as d:
            os.symlink(d, f"{d}-link")
            try:
                with contextlib.chdir(f"{d}-link"):
                    self.assertEqual(settings.logical_cwd({"PWD": f"{d}-link"}), f"{d}-link")
                    self.assertEqual(settings.logical_cwd({"PWD": "/nonexistent"}), os.path.realpath(d))
            finally:
                os.remove(f"{d}-link")


class CommandLineTest(unittest.TestCase):
    def test_help_is_the_launchers_header(self):
        code, out, _ = run_main(["--help"])
        self.assertEqual(code, 0)
        self.assertTrue(out.startswith("Operate a local sessionraft cluster from cluster.toml"), out[:200])
        self.assertIn("scripts/cluster.sh rolling-restart", out)
        self.assertIn("SESSIONRAFT_RUN_DIR", out)
        self.assertNotIn("set -euo", out)
        self.assertEqual(run_main(["help"])[:2], (0, out))
        self.assertEqual(run_main(["-h"])[:2], (0, out))

    def test_no_or_an_unknown_command_prints_the_usage_and_exits_2(self):
        help_text = run_main(["--help"])[1]
        self.assertEqual(run_main([]), (2, help_text, ""))
        self.assertEqual(run_main(["frobnicate", "1"]), (2, help_text, ""))

    def test_commands_that_need_a_node_id(self):
        for cmd in ("start", "stop", "kill", "restart"):
            self.assertEqual(run_main([cmd]), (1, "", f"cluster.sh: usage: {cmd} N\n"))
            self.assertEqual(run_main([cmd, ""]), (1, "", f"cluster.sh: usage: {cmd} N\n"))

    def test_usage_errors(self):
        with tempfile.TemporaryDirectory() as d:
            env = {"SESSIONRAFT_RUN_DIR": d, "SESSIONRAFT_BIN": f"{d}/none"}
            self.assertEqual(run_main(["logs"], **env), (1, "", "cluster.sh: usage: logs N|haproxy [-f]\n"))
            self.assertEqual(run_main(["logs", "3"], **env), (1, "", f"cluster.sh: no log at {d}/logs/node3.log\n"))
            self.assertEqual(run_main(["remove-node", "0"], **env), (1, "", "cluster.sh: usage: remove-node N\n"))
            code, _, err = run_main(["add-node", "x"], **env)
            self.assertEqual((code, err.split(" (")[0]), (1, "cluster.sh: usage: add-node N HTTP RAFT"))
            self.assertEqual(run_main(["status"], SESSIONRAFT_READY_TIMEOUT="x", **env),
                             (1, "", "cluster.sh: SESSIONRAFT_READY_TIMEOUT must be a number of seconds\n"))
            self.assertEqual(run_main(["status"], **env),
                             (1, "", f"cluster.sh: no binary at {d}/none (scripts/cluster.sh up builds it)\n"))

    def test_stop_and_down_need_no_binary_nor_config(self):
        with tempfile.TemporaryDirectory() as d:
            env = {"SESSIONRAFT_RUN_DIR": d, "SESSIONRAFT_BIN": f"{d}/none"}
            self.assertEqual(run_main(["stop", "7"], **env), (0, "node 7 is not running\n", ""))
            self.assertEqual(run_main(["kill", "7"], **env), (0, "node 7 is not running\n", ""))
            with open(f"{d}/node2.pid", "w") as f:
                f.write("999999999\n")
            with open(f"{d}/haproxy.pid", "w") as f:
                f.write("999999999\n")
            self.assertEqual(run_main(["down"], **env), (0, "haproxy is not running\nnode 2 is not running\n", ""))
            self.assertEqual(sorted(os.listdir(d)), [])


if __name__ == "__main__":
    unittest.main()

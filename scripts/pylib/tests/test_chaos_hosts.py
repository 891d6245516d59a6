"""sessionraft_chaos --on hosts: the option, the scenarios it plays, the layout read from
scripts/hosts.sh's state, the nodes' environment (no root needed)."""

import random
import tempfile
import unittest
from pathlib import Path

from sessionraft_chaos import cli
from sessionraft_chaos.cli import UsageError
from sessionraft_chaos.hosts import SUPPORTED, HostsCluster, layout_of, node_env, up_argv


def parse(*argv, env=None):
    return cli.parse(list(argv), env=env or {}, root=Path("/r"), rng=random.Random(1))


class OptionTest(unittest.TestCase):
    def test_loopback_by_default(self):
        self.assertEqual(parse("kill-leader").on, "loopback")

    def test_on_hosts(self):
        o = parse("partition-leader", "--on", "hosts", "--via", "lb")
        self.assertEqual((o.on, o.via), ("hosts", "lb"))

    def test_bad_values_and_unsupported_scenarios(self):
        with self.assertRaises(UsageError):
            parse("kill-leader", "--on", "moon")
        with self.assertRaises(UsageError):
            parse("kill-leader", "--on")
        for scenario in ("disk-full", "clock-skew", "rolling-restart", "wipe-and-rejoin",
                         "mixed"):
            with self.assertRaises(UsageError):
                parse(scenario, "--on", "hosts")
            parse(scenario)  # still fine on loopback

    def test_the_issues_scenarios_run_on_hosts(self):
        for scenario in ("kill-leader", "partition-leader", "partition-minority",
                         "kill-random", "pause-leader", "pause-follower", "pause"):
            self.assertIn(scenario, SUPPORTED)
            self.assertEqual(parse(scenario, "--on", "hosts").on, "hosts")

    def test_the_help_names_the_option(self):
        self.assertIn("--on loopback|hosts", cli.usage(Path(__file__).resolve().parents[3]))


STATE = {"lb": {"ports": {"lb": 5100, "resp": 5200,
                          "direct": {"sessionraft-0": 5301, "sessionraft-1": 5302,
                                     "sessionraft-2": 5303}}}}


class LayoutTest(unittest.TestCase):
    def test_nodes_are_read_through_their_one_node_listeners(self):
        lay = layout_of(STATE)
        self.assertEqual(lay.lb_url, "http://127.0.0.1:5100")
        self.assertEqual(lay.http_url(1), "http://127.0.0.1:5301")
        self.assertEqual(lay.http_url(3), "http://127.0.0.1:5303")
        self.assertEqual(lay.http_addr(2), "127.0.0.1:5302")
        self.assertEqual(lay.raft_ports, {1: 7101, 2: 7101, 3: 7101})

    def test_https_on_a_tls_run(self):
        lay = layout_of({**STATE, "tls": True})
        self.assertEqual(lay.lb_url, "https://127.0.0.1:5100")
        self.assertEqual(lay.http_url(2), "https://127.0.0.1:5302")


class NodesTest(unittest.TestCase):
    def test_environment(self):
        self.assertEqual(node_env(""), ["SESSIONRAFT_RAFT__SNAPSHOT_LOGS_SINCE_LAST=50",
                                        "SESSIONRAFT_RAFT__MAX_IN_SNAPSHOT_LOG_TO_KEEP=10"])
        self.assertIn("SESSIONRAFT_RAFT__READ_CONSISTENCY=linearizable",
                      node_env("linearizable"))

    def test_up(self):
        argv = up_argv(Path("/r/scripts/hosts.sh"), Path("/o/hosts"), Path("/o/bin/sessionraft"),
                       "session")
        self.assertEqual(argv[:6], ["/r/scripts/hosts.sh", "--state", "/o/hosts", "up", "--bin",
                                    "/o/bin/sessionraft"])
        self.assertEqual(argv[6::2], ["--env"] * 3)
        self.assertNotIn("--tls", argv)
        tls = up_argv(Path("/r/scripts/hosts.sh"), Path("/o/hosts"), Path("/o/bin/sessionraft"),
                      "", tls=True)
        self.assertEqual(tls[6], "--tls")

    def test_no_pid_without_a_run(self):
        with tempfile.TemporaryDirectory() as t:
            c = HostsCluster(Path("/r/scripts/hosts.sh"), Path(t), Path("/b"), Path(t) / "ops")
            self.assertIsNone(c.node_pid(1))
            self.assertEqual(c.node_log(2), Path(t) / "hosts" / "sessionraft-1" / "node.log")
            with self.assertRaises(ValueError):
                c.sh("rolling-restart")


if __name__ == "__main__":
    unittest.main()

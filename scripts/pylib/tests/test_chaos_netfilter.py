"""sessionraft_chaos.netfilter: the exact iptables commands of a partition, its heal, and the
removal of the run's chain."""

import unittest

from sessionraft_chaos.config import Layout
from sessionraft_chaos.netfilter import (Chain, chain_name, chain_pid, isolate_rules,
                                         peers_bound, remove_chain, stale_chains)

LAYOUT = Layout(20000, {1: 21001, 2: 21002, 3: 21003}, {1: 22001, 2: 22002, 3: 22003})
W = ["iptables", "-w"]


class Recorder:
    """A fake runner: records the commands; `-D` succeeds deletes times."""

    def __init__(self, deletes=0, fail=()):
        self.cmds = []
        self.deletes = deletes
        self.fail = fail

    def __call__(self, argv):
        self.cmds.append(list(argv))
        if "-D" in argv:
            if self.deletes > 0:
                self.deletes -= 1
                return 0
            return 1
        return 1 if argv[2] in self.fail else 0


class RulesTest(unittest.TestCase):
    def test_partition_of_node_2_both_ways(self):
        mp = ["-p", "tcp", "-m", "multiport"]
        c = "chaos-77-in"
        want = []
        for y, iy, py in ((1, "127.0.0.11", "21001,22001"), (3, "127.0.0.13", "21003,22003")):
            want += [
                W + ["-A", c, "-s", "127.0.0.12", "-d", iy, *mp, "--dports", py, "-j", "DROP"],
                W + ["-A", c, "-s", iy, "-d", "127.0.0.12", *mp, "--sports", py, "-j", "DROP"],
                W + ["-A", c, "-s", iy, "-d", "127.0.0.12", *mp, "--dports", "21002,22002",
                     "-j", "DROP"],
                W + ["-A", c, "-s", "127.0.0.12", "-d", iy, *mp, "--sports", "21002,22002",
                     "-j", "DROP"],
            ]
        self.assertEqual(isolate_rules(c, LAYOUT, 2, True), want)

    def test_unbound_peers_also_cut_connections_to_the_raft_port(self):
        rules = isolate_rules("chaos-77-in", LAYOUT, 3, False)
        self.assertEqual(len(rules), 9)
        self.assertEqual(rules[-1], W + ["-A", "chaos-77-in", "-d", "127.0.0.13", "-p", "tcp",
                                         "--dport", "22003", "-j", "DROP"])
        self.assertEqual(rules[:8], isolate_rules("chaos-77-in", LAYOUT, 3, True))

    def test_every_rule_is_in_the_runs_chain_only(self):
        for node in (1, 2, 3):
            for rule in isolate_rules("chaos-5-in", LAYOUT, node, False):
                self.assertEqual(rule[:4], W + ["-A", "chaos-5-in"])
                self.assertNotIn("INPUT", rule)

    def test_chain_lifecycle(self):
        run, quiet = Recorder(), Recorder(deletes=2)
        ch = Chain(chain_name(1234), run=run, run_quiet=quiet)
        self.assertEqual(ch.name, "chaos-1234-in")
        ch.heal()  # nothing made yet: nothing run
        self.assertTrue(ch.remove())
        self.assertEqual(run.cmds + quiet.cmds, [])
        ch.create()
        ch.isolate(LAYOUT, 1, True)
        ch.heal()
        self.assertEqual(run.cmds[:2], [W + ["-N", "chaos-1234-in"],
                                        W + ["-I", "INPUT", "1", "-j", "chaos-1234-in"]])
        self.assertEqual(run.cmds[2:10], isolate_rules("chaos-1234-in", LAYOUT, 1, True))
        self.assertEqual(run.cmds[10:], [W + ["-F", "chaos-1234-in"]])
        self.assertTrue(ch.remove())
        # unhooked as often as it was hooked (here twice), flushed, deleted
        self.assertEqual(quiet.cmds, [W + ["-D", "INPUT", "-j", "chaos-1234-in"]] * 3 +
                         [W + ["-F", "chaos-1234-in"], W + ["-X", "chaos-1234-in"]])
        self.assertFalse(ch.made)

    def test_failed_delete_is_reported(self):
        ch = Chain("chaos-1-in", run=Recorder(), run_quiet=Recorder(fail=("-X",)))
        ch.create()
        self.assertFalse(ch.remove())

    def test_cleanup_unhooks_input_and_output(self):
        quiet = Recorder(deletes=1)
        remove_chain("chaos-9-in", quiet, hooks=("INPUT", "OUTPUT"))
        self.assertEqual(quiet.cmds, [W + ["-D", "INPUT", "-j", "chaos-9-in"],
                                      W + ["-D", "INPUT", "-j", "chaos-9-in"],
                                      W + ["-D", "OUTPUT", "-j", "chaos-9-in"],
                                      W + ["-F", "chaos-9-in"]])

    def test_stale_chains(self):
        listing = "\n".join(["-P INPUT ACCEPT", "-N chaos-123-in", "-N chaos-x-in",
                             "-N other", "-A INPUT -j chaos-123-in", "-N chaos-45-in"])
        self.assertEqual(stale_chains(listing), ["chaos-123-in", "chaos-45-in"])
        self.assertEqual(chain_pid("chaos-123-in"), 123)


class PeersBoundTest(unittest.TestCase):
    def test_bound_when_two_node_ips_talk_on_this_clusters_ports(self):
        ss = ("0 0 127.0.0.12:40000 127.0.0.11:22001\n"
              "0 0 127.0.0.1:5000 127.0.0.1:6000\n")
        self.assertTrue(peers_bound(ss, LAYOUT))

    def test_not_bound_from_127_0_0_1_or_another_cluster(self):
        ss = ("0 0 127.0.0.1:40000 127.0.0.11:22001\n"  # from 127.0.0.1: an old binary
              "0 0 127.0.0.12:40001 127.0.0.11:29999\n"  # another cluster's ports
              "garbage\n")
        self.assertFalse(peers_bound(ss, LAYOUT))
        self.assertFalse(peers_bound("", LAYOUT))


if __name__ == "__main__":
    unittest.main()

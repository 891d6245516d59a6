"""sessionraft_cluster.upgrade (and --bin): the order of a rolling upgrade, the refusals from
canned /cluster/status answers, the progress lines, versions; the command line up to where a
cluster would be needed (a refused upgrade changes nothing)."""

import contextlib
import io
import os
import stat
import tempfile
import unittest
from unittest import mock

from sessionraft_cluster import cli, commands, settings, upgrade
from sessionraft_cluster.console import Die
from sessionraft_cluster.rundir import RunDir
from sessionraft_cluster.upgrade import NodeState, Order


def run_main(argv, **env):
    """(exit code, stdout, stderr) of cli.main(argv) under env (on top of a clean one)."""
    out, err = io.StringIO(), io.StringIO()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONRAFT_")}
    with mock.patch.dict(os.environ, {**base, **env}, clear=True), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def script(path, body):
    """An executable shell script at path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


class ArgsTest(unittest.TestCase):
    def test_bin_and_order(self):
        self.assertEqual(upgrade.parse_args(["/b/sessionraft"]), ("/b/sessionraft", Order("followers-first")))
        self.assertEqual(upgrade.parse_args(["b", "--order", "leader-first"]), ("b", Order("leader-first")))
        self.assertEqual(upgrade.parse_args(["--order=3,1,2", "b"]), ("b", Order("ids", ("3", "1", "2"))))
        self.assertEqual(str(Order("ids", ("3", "1", "2"))), "3,1,2")
        self.assertEqual(str(Order("followers-first")), "followers-first")

    def test_usage_errors(self):
        for args in ([], ["--order", "leader-first"], ["a", "b"], ["a", "--order"], ["a", "--force"]):
            with self.assertRaises(Die) as e:
                upgrade.parse_args(args)
            self.assertTrue(str(e.exception).startswith("usage: upgrade BIN"), args)

    def test_bad_orders(self):
        for text, why in (("random", "must be followers-first"), ("1,,2", "must be followers-first"),
                          ("0,1", "must be followers-first"), ("1,2,1", "named twice")):
            with self.assertRaises(Die) as e:
                upgrade.parse_order(text)
            self.assertIn(why, str(e.exception), text)

    def test_an_order_of_ids_names_every_node_once(self):
        upgrade.check_order(Order("ids", ("3", "1", "2")), ["1", "2", "3"])
        upgrade.check_order(Order("leader-first"), ["1", "2", "3"])
        with self.assertRaises(Die) as e:
            upgrade.check_order(Order("ids", ("3", "1")), ["1", "2", "3"])
        self.assertIn("leaves out node 2", str(e.exception))
        with self.assertRaises(Die) as e:
            upgrade.check_order(Order("ids", ("3", "1", "2", "4")), ["1", "2", "3"])
        self.assertIn("no node 4", str(e.exception))


class OrderTest(unittest.TestCase):
    def run_cluster(self, order, ids, leader, elect):
        """Every step of an upgrade of a fake cluster: (node, role) in order. Upgrading the
        leader moves leadership to elect(down_node, done)."""
        state = {"leader": leader}
        done, steps = [], []
        for _ in ids:
            nxt = upgrade.next_node(order, ids, done, state["leader"])
            steps.append((nxt, "leader" if nxt == state["leader"] else "follower"))
            if nxt == state["leader"]:
                state["leader"] = elect(nxt, done)
            done.append(nxt)
        return steps

    @staticmethod
    def first_other(node, done):
        """The election's winner: the first node that is not the one going down."""
        return next(i for i in ["1", "2", "3"] if i != node)

    def test_followers_first_moves_leadership_once(self):
        self.assertEqual(self.run_cluster(Order("followers-first"), ["1", "2", "3"], "2", self.first_other),
                         [("1", "follower"), ("3", "follower"), ("2", "leader")])

    def test_leader_first_then_followers_first(self):
        # the leader (3) first; 1 wins the election, so 2 goes next and 1 last
        self.assertEqual(self.run_cluster(Order("leader-first"), ["1", "2", "3"], "3", self.first_other),
                         [("3", "leader"), ("2", "follower"), ("1", "leader")])

    def test_ids_as_given_whoever_leads(self):
        self.assertEqual(self.run_cluster(Order("ids", ("3", "1", "2")), ["1", "2", "3"], "1", self.first_other),
                         [("3", "follower"), ("1", "leader"), ("2", "leader")])

    def test_leader_first_with_an_unknown_leader(self):
        self.assertEqual(upgrade.next_node(Order("leader-first"), ["1", "2", "3"], [], "9"), "1")

    def test_a_single_node(self):
        for order in (Order("followers-first"), Order("leader-first"), Order("ids", ("1",))):
            self.assertEqual(upgrade.next_node(order, ["1"], [], "1"), "1")


def member(i, voter=True):
    return {"id": i, "addr": f"127.0.0.1:710{i}", "voter": voter, "matched_index": None}


def st(node_id, leader=1, members=(1, 2, 3), learners=(), **extra):
    """A canned /cluster/status of node node_id."""
    return {"id": node_id, "role": "leader" if node_id == leader else "follower", "term": 2, "leader": leader,
            "last_log_index": 40, "applied_index": 40,
            "members": [member(i, i not in learners) for i in members], **extra}


def healthy(**extra):
    return [NodeState(str(i), 100 + i, 200, st(i, **extra)) for i in (1, 2, 3)]


class RefusalsTest(unittest.TestCase):
    def test_a_healthy_cluster_of_either_release(self):
        self.assertEqual(upgrade.refusals(healthy()), [])  # 0.1.0: no version, no membership_joint
        self.assertEqual(upgrade.refusals(healthy(version="0.2.0", membership_joint=False,
                                                  cluster_version="0.2")), [])

    def test_nodes_down_or_not_ready(self):
        nodes = healthy()
        nodes[0] = NodeState("1", None, 0, None)
        nodes[1] = NodeState("2", 102, 503, st(2))
        nodes[2] = NodeState("3", 103, 0, None)
        self.assertEqual(upgrade.refusals(nodes), [
            "node 1 is not running (scripts/cluster.sh start 1)",
            "node 2 is not ready (/readyz: 503; scripts/cluster.sh status)",
            "node 3 does not answer /cluster/status",
        ])

    def test_a_membership_change_in_progress(self):
        nodes = healthy()
        nodes[0] = NodeState("1", 101, 200, st(1, membership_joint=True))
        self.assertEqual(upgrade.refusals(nodes), [
            "a membership change is in progress (joint consensus, reported by node 1): wait until it completes"])

    def test_a_learner(self):
        nodes = [NodeState(str(i), 100 + i, 200, st(i, members=(1, 2, 3, 4), learners=(4,))) for i in (1, 2, 3)]
        nodes.append(NodeState("4", 104, 200, st(4, members=(1, 2, 3, 4), learners=(4,))))
        self.assertEqual(upgrade.refusals(nodes), [
            "member 4 is a learner (a node being added, as node 1 reports): wait until add-node completes, "
            "or remove it"])

    def test_members_that_are_not_these_nodes(self):
        nodes = [NodeState(str(i), 100 + i, 200, st(i, members=(1, 2, 5))) for i in (1, 2, 3)]
        self.assertEqual(upgrade.refusals(nodes), [
            "member 5 (as node 1 reports) is not a node of this cluster.sh run (config or extra-nodes): "
            "it could not be upgraded",
            "node 3 is not a member of the cluster (as its members report)",
        ])

    def test_no_leader(self):
        nodes = [NodeState(str(i), 100 + i, 200, st(i, leader=None)) for i in (1, 2, 3)]
        self.assertEqual(upgrade.refusals(nodes), ["no node reports a leader"])


class VersionsTest(unittest.TestCase):
    def test_parse_version(self):
        self.assertEqual(upgrade.parse_version("sessionraft 0.2.0\n"), "0.2.0")
        self.assertEqual(upgrade.parse_version("sessionraft 1.10.3-rc.1"), "1.10.3-rc.1")
        self.assertEqual(upgrade.parse_version("sessionraft"), "")

    def test_release_line(self):
        self.assertEqual(upgrade.release_line("0.2.0"), "0.2")
        self.assertEqual(upgrade.release_line("0.2"), "0.2")
        self.assertEqual(upgrade.release_line("1.10.3-rc.1"), "1.10")

    def test_binary_version(self):
        with tempfile.TemporaryDirectory() as d:
            good = script(f"{d}/good/sessionraft", 'echo "sessionraft 0.2.0"')
            bad = script(f"{d}/bad/sessionraft", 'echo "error: unexpected argument" >&2; exit 2')
            mute = script(f"{d}/mute/sessionraft", "echo hello")
            self.assertEqual(upgrade.binary_version(good), ("0.2.0", ""))
            self.assertEqual(upgrade.binary_version(bad), ("", "exit code 2: error: unexpected argument"))
            self.assertEqual(upgrade.binary_version(mute), ("", "no version in its output: 'hello'"))
            self.assertEqual(upgrade.binary_version(f"{d}/none/sessionraft"), ("", "no executable there"))


class LinesTest(unittest.TestCase):
    def test_done_line(self):
        self.assertEqual(upgrade.done_line("2/3", "2", "follower", "0.1.0 or older", "0.2.0", 412, 1234),
                         "upgrade 2/3: node 2 (follower) 0.1.0 or older -> 0.2.0: ready in 0.4 s, "
                         "caught up to index 1234")
        self.assertEqual(upgrade.done_line("3/3", "1", "leader", "0.2.0", "0.2.0", 1250, 7, lb_ms=360),
                         "upgrade 3/3: node 1 (leader) 0.2.0 -> 0.2.0: ready in 1.2 s, caught up to index 7, "
                         "UP in HAProxy after 0.4 s")
        self.assertEqual(upgrade.done_line("1/1", "1", "leader", "", "", 0, 0),
                         "upgrade 1/1: node 1 (leader) unknown -> unknown: ready in 0.0 s, caught up to index 0")

    def test_step_line(self):
        self.assertEqual(upgrade.step_line("1/3", "3", "follower", 4242, "/old/sessionraft"),
                         "upgrade 1/3: node 3 (follower): stopping (pid 4242, /old/sessionraft)")

    def test_cluster_version_line(self):
        self.assertEqual(upgrade.cluster_version_line("0.2", "0.2", 10), "cluster version: 0.2")
        self.assertEqual(upgrade.cluster_version_line("0.2.0", "0.2", 10), "cluster version: 0.2.0")
        self.assertEqual(upgrade.cluster_version_line("0.1", "0.2", 10),
                         "cluster version: 0.1 (not 0.2 after 10 s; scripts/cluster.sh status)")
        self.assertEqual(upgrade.cluster_version_line(None, "0.2", 10),
                         "cluster version: not reported (no cluster_version in /cluster/status)")


class BinTest(unittest.TestCase):
    def test_split_bin(self):
        self.assertEqual(settings.split_bin(["1", "--bin", "/b/sessionraft"]), (["1"], "/b/sessionraft"))
        self.assertEqual(settings.split_bin(["--bin=/b/sessionraft", "1"]), (["1"], "/b/sessionraft"))
        self.assertEqual(settings.split_bin(["1", "-f"]), (["1", "-f"], ""))
        for bad in (["--bin"], ["--bin="], ["1", "--bin", ""]):
            with self.assertRaises(Die):
                settings.split_bin(bad)

    def test_with_bin(self):
        s = settings.from_env({}, root="/r", pwd="/p")
        b = settings.with_bin(s, "old/sessionraft", env={}, pwd="/p")
        self.assertEqual((b.bin, b.node_bin, b.config), ("/p/old/sessionraft", "/p/old/sessionraft", s.config))
        with self.assertRaises(Die) as e:
            settings.with_bin(s, "/b/sessionraft-0.2.0", env={}, pwd="/p")
        self.assertIn("must be named sessionraft", str(e.exception))

    def test_the_binary_of_a_node(self):
        with tempfile.TemporaryDirectory() as d:
            run = RunDir(d)
            s = settings.from_env({"SESSIONRAFT_BIN": "/env/sessionraft"}, root="/r", pwd="/p")
            self.assertEqual(commands.node_binary(s, run, "1"), "/env/sessionraft")
            run.set_node_bin("1", "/new/sessionraft")
            self.assertEqual(run.node_bin("1"), "/new/sessionraft")
            self.assertIsNone(run.node_bin("2"))
            self.assertEqual(os.listdir(d), ["node1.bin"])
            # recorded (by upgrade, by --bin) wins over SESSIONRAFT_BIN; --bin over both
            self.assertEqual(commands.node_binary(s, run, "1"), "/new/sessionraft")
            self.assertEqual(commands.node_binary(s, run, "2"), "/env/sessionraft")
            flag = settings.with_bin(s, "/flag/sessionraft", env={}, pwd="/p")
            self.assertEqual(commands.node_binary(flag, run, "1"), "/flag/sessionraft")


class CommandLineTest(unittest.TestCase):
    def test_refused_before_anything_is_touched(self):
        with tempfile.TemporaryDirectory() as d:
            env = {"SESSIONRAFT_RUN_DIR": f"{d}/run", "SESSIONRAFT_BIN": f"{d}/none"}
            code, out, err = run_main(["upgrade"], **env)
            self.assertEqual((code, out), (1, ""))
            self.assertTrue(err.startswith("cluster.sh: usage: upgrade BIN"), err)
            self.assertEqual(run_main(["upgrade", f"{d}/missing/sessionraft"], **env),
                             (1, "", f"cluster.sh: upgrade refused: {d}/missing/sessionraft --version failed "
                                     "(no executable there): nothing was changed\n"))
            bad = script(f"{d}/bad/sessionraft", "exit 3")
            self.assertEqual(run_main(["upgrade", bad], **env),
                             (1, "", f"cluster.sh: upgrade refused: {bad} --version failed (exit code 3): "
                                     "nothing was changed\n"))
            code, _, err = run_main(["upgrade", f"{d}/sessionraft-0.2.0"], **env)
            self.assertEqual(code, 1)
            self.assertIn("must be named sessionraft", err)
            # a binary that runs but cannot read the config: its error, nothing started
            reader = script(f"{d}/new/sessionraft",
                            'case "$1" in --version) echo "sessionraft 0.2.0";; '
                            '*) echo "error: invalid cluster.toml: unknown field" >&2; exit 1;; esac')
            code, out, err = run_main(["upgrade", reader, "--order", "3,1,2"], **env)
            self.assertEqual((code, out), (1, ""))
            self.assertIn("cannot read", err)
            self.assertIn("unknown field", err)
            self.assertFalse(os.path.exists(f"{d}/run"), "nothing written in the run dir")

    def test_bin_on_commands_that_start_nodes(self):
        with tempfile.TemporaryDirectory() as d:
            env = {"SESSIONRAFT_RUN_DIR": d, "SESSIONRAFT_BIN": f"{d}/none"}
            code, _, err = run_main(["start", "--bin", f"{d}/x/other"], **env)
            self.assertEqual(code, 1)
            self.assertIn("must be named sessionraft", err)
            self.assertEqual(run_main(["start", "--bin", f"{d}/x/sessionraft"], **env),
                             (1, "", "cluster.sh: usage: start N\n"))
            self.assertEqual(run_main(["up", "--bin"], **env),
                             (1, "", "cluster.sh: --bin needs a path to a sessionraft binary\n"))

    def test_help_names_upgrade(self):
        out = run_main(["--help"])[1]
        self.assertIn("scripts/cluster.sh upgrade BIN [--order followers-first|leader-first|IDS]", out)
        self.assertIn("--bin BIN (up, start, restart, add-node)", out)


if __name__ == "__main__":
    unittest.main()

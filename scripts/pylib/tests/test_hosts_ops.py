"""sessionraft_hosts: the state file, the command line's parsing, and what `down` removes (with
the machine faked: every command recorded, nothing run)."""

import tempfile
import unittest
from pathlib import Path
from unittest import mock

from sessionraft_hosts import cli, ops, system
from sessionraft_hosts.state import Dir, Host, State, StateError


def state(**kw):
    st = State(rid="abcde", subnet="10.123.4.0/24", binary="/bin/sessionraft", next_octet=21,
               **kw)
    st.hosts = {"sessionraft-0": Host(ip="10.123.4.11", pid=101),
                "sessionraft-1": Host(ip=None)}
    st.lb.pid = 200
    st.lb.ports = {"lb": 5100, "resp": 5200, "direct": {"sessionraft-0": 5301,
                                                        "sessionraft-1": 5302}}
    return st


class StateTest(unittest.TestCase):
    def test_round_trip(self):
        st = state(netns=["sr-abcde-switch"], etc_netns=["/etc/netns/sr-abcde-lb"])
        back = State.from_json(st.to_json())
        self.assertEqual(back, st)
        self.assertIsInstance(back.hosts["sessionraft-0"], Host)

    def test_other_versions_are_refused(self):
        with self.assertRaises(StateError):
            State.from_json('{"version": 99}')
        with self.assertRaises(StateError):
            State.from_json("not json")

    def test_saved_private(self):
        with tempfile.TemporaryDirectory() as t:
            d = Dir(Path(t))
            d.save(state())
            self.assertEqual(d.state_file.stat().st_mode & 0o777, 0o600)
            self.assertEqual(d.load(), state())
            with self.assertRaises(StateError):
                Dir(Path(t) / "none").load()


class CliTest(unittest.TestCase):
    def test_env_pairs(self):
        self.assertEqual(cli.parse_env(["A_B=1", "C=x=y", "D="]),
                         {"A_B": "1", "C": "x=y", "D": ""})
        for bad in (["novalue"], ["=1"], ["A-B=1"]):
            with self.assertRaises(Exception):
                cli.parse_env(bad)

    def test_commands_parse(self):
        p = cli.parser()
        a = p.parse_args(["--state", "/s", "reip", "2", "--kill"])
        self.assertEqual((a.cmd, a.host, a.kill, a.no_start), ("reip", "2", True, False))
        a = p.parse_args(["--state", "/s", "exec", "sessionraft-0", "--", "sessionraft",
                          "cluster", "rejoin-node", "3"])
        self.assertEqual(a.argv[-4:], ["sessionraft", "cluster", "rejoin-node", "3"])
        a = p.parse_args(["--state", "/s", "up", "--env", "X=1", "--env", "Y=2"])
        self.assertEqual(a.env, ["X=1", "Y=2"])


class TeardownTest(unittest.TestCase):
    """`down` removes what the run recorded, only that, and never signals a process of the
    root namespace."""

    def run_teardown(self, st, existing):
        cmds, stopped, pids_asked = [], [], []

        def run(argv, check=True):
            cmds.append(list(argv))
            if argv[:3] == ["ip", "netns", "delete"]:
                existing.discard(argv[3])
            return mock.Mock(returncode=0, stdout="", stderr="")

        def netns_pids(name):
            pids_asked.append(name)
            return [999]

        with tempfile.TemporaryDirectory() as t, \
                mock.patch.object(system, "run", run), \
                mock.patch.object(system, "netns_exists", lambda n: n in existing), \
                mock.patch.object(system, "netns_pids", netns_pids), \
                mock.patch.object(system, "in_netns", lambda pid, ns: True), \
                mock.patch.object(system, "stop",
                                  lambda pid, ns, *a, **k: stopped.append((pid, ns))), \
                mock.patch.object(system, "ETC_NETNS", Path(t) / "etc-netns"):
            etc = Path(t) / "etc-netns"
            for name in ("sr-abcde-lb", "sr-other-lb"):
                (etc / name).mkdir(parents=True)
            st.etc_netns = [str(etc / "sr-abcde-lb"), str(etc / "sr-other-lb")]
            ops.teardown(ops.Run(Dir(Path(t) / "state"), st))
            left = sorted(p.name for p in etc.iterdir()) if etc.exists() else []
        return cmds, stopped, pids_asked, left

    def test_everything_recorded_and_nothing_else(self):
        st = state(netns=["sr-abcde-switch", "sr-abcde-sessionraft-0", "sr-abcde-lb",
                          "sr-other-switch"], root_handle="sr-abcde-root")
        existing = {"sr-abcde-switch", "sr-abcde-sessionraft-0", "sr-abcde-lb",
                    "sr-abcde-root", "sr-other-switch"}
        cmds, stopped, pids_asked, left = self.run_teardown(st, existing)
        self.assertEqual(stopped[:2], [(101, "sr-abcde-sessionraft-0"), (200, "sr-abcde-lb")])
        self.assertNotIn("sr-abcde-root", pids_asked)
        self.assertNotIn("sr-other-switch", pids_asked)
        self.assertIn(["ip", "-n", "sr-abcde-switch", "link", "del", "p0"], cmds)
        self.assertIn(["ip", "-n", "sr-abcde-switch", "link", "del", "plb"], cmds)
        deleted = [c[3] for c in cmds if c[:3] == ["ip", "netns", "delete"]]
        self.assertEqual(deleted, ["sr-abcde-lb", "sr-abcde-sessionraft-0", "sr-abcde-switch",
                                   "sr-abcde-root"])
        self.assertEqual(left, ["sr-other-lb"])
        self.assertEqual(existing, {"sr-other-switch"})

    def test_after_a_failure_half_way(self):
        """Recorded but never made (the command making it failed): nothing to remove."""
        st = state(netns=["sr-abcde-switch", "sr-abcde-sessionraft-0"])
        cmds, _, _, _ = self.run_teardown(st, {"sr-abcde-switch"})
        deleted = [c[3] for c in cmds if c[:3] == ["ip", "netns", "delete"]]
        self.assertEqual(deleted, ["sr-abcde-switch"])


if __name__ == "__main__":
    unittest.main()

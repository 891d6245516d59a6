"""sessionraft_cluster.topology: the nodes from `sessionraft nodes` (JSON, or the tab-separated
listing of older binaries), merged with extra-nodes and removed-nodes; loading through a stand-in
binary; addresses."""

import json
import stat
import tempfile
import textwrap
import unittest
from pathlib import Path

from sessionraft_cluster import settings, topology
from sessionraft_cluster.console import Die
from sessionraft_cluster.rundir import RunDir
from sessionraft_cluster.topology import Node, Topology

JSON_NODES = json.dumps([
    {"id": 1, "http_addr": "sessionraft-0.sessionraft:7001", "raft_addr": "sessionraft-0.sessionraft:7101",
     "resp_addr": "sessionraft-0.sessionraft:6379", "data_dir": "/data",
     "http_listen": "0.0.0.0:7001", "raft_listen": "0.0.0.0:7101", "resp_listen": None},
    {"id": 2, "http_addr": "127.0.0.1:7002", "raft_addr": "127.0.0.1:7102", "resp_addr": None,
     "data_dir": "data/node2", "http_listen": None, "raft_listen": None, "resp_listen": None},
])


class ParseTest(unittest.TestCase):
    def test_json(self):
        self.assertEqual(topology.parse_nodes_json(JSON_NODES), [
            Node("1", "sessionraft-0.sessionraft:7001", "/data", "sessionraft-0.sessionraft:7101",
                 "sessionraft-0.sessionraft:6379"),
            Node("2", "127.0.0.1:7002", "data/node2", "127.0.0.1:7102", None),
        ])
        with self.assertRaises(ValueError):
            topology.parse_nodes_json('{"id": 1}')
        with self.assertRaises(ValueError):
            topology.parse_nodes_json("1\t127.0.0.1:7001\td\t127.0.0.1:7101\t-")

    def test_tab_separated_of_every_age(self):
        text = ("1\t127.0.0.1:7001\tdata/node1\t127.0.0.1:7101\t127.0.0.1:7301\n"
                "2\t127.0.0.1:7002\tdata/node2\t127.0.0.1:7102\t-\n"
                "3\t127.0.0.1:7003\tdata/node3\t127.0.0.1:7103\n"
                "4\t127.0.0.1:7004\tdata/node4\n"
                "warning: something\n"
                "x\ty\tz\n")
        self.assertEqual(topology.parse_nodes_tsv(text), [
            Node("1", "127.0.0.1:7001", "data/node1", "127.0.0.1:7101", "127.0.0.1:7301"),
            Node("2", "127.0.0.1:7002", "data/node2", "127.0.0.1:7102", None),
            Node("3", "127.0.0.1:7003", "data/node3", "127.0.0.1:7103", None),
            Node("4", "127.0.0.1:7004", "data/node4", "127.0.0.1:7004", None),  # raft = http
        ])

    def test_addresses(self):
        for ok in ("127.0.0.1:7001", "[::1]:7001", "[fe80::1]:80", "sessionraft-1.sessionraft:7101",
                   "localhost:1", "db:65535"):
            self.assertTrue(topology.valid_addr(ok), ok)
        for bad in ("127.0.0.1", "7001", ":7001", "host:", "-bad:1", "a b:1", "h:123456", "http://h:1"):
            self.assertFalse(topology.valid_addr(bad), bad)
        self.assertEqual(topology.split_addr("[::1]:7001"), ("[::1]", "7001"))
        self.assertEqual(topology.split_addr("sessionraft-0.sessionraft:7001"), ("sessionraft-0.sessionraft", "7001"))


class MergeTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.run = RunDir(self.dir.name)
        cfg = [Node("1", "127.0.0.1:7001", "d1", "127.0.0.1:7101", "127.0.0.1:7301"),
               Node("2", "127.0.0.1:7002", "d2", "127.0.0.1:7102", "127.0.0.1:7302"),
               Node("3", "127.0.0.1:7003", "d3", "127.0.0.1:7103")]
        self.topo = Topology(self.run, cfg, "127.0.0.1:7000", "127.0.0.1:7379")

    def tearDown(self):
        self.dir.cleanup()

    def test_extra_and_removed_nodes(self):
        self.run.add_extra("4", "127.0.0.1:7004", f"{self.dir.name}/data/node4", "127.0.0.1:7104")
        self.run.add_extra("2", "127.0.0.1:9999", "x", "127.0.0.1:9998")  # a config node wins
        self.run.add_removed("1")
        self.assertEqual([n.id for n in self.topo.all()], ["1", "2", "3", "4"])
        self.assertEqual(self.topo.node("2").http, "127.0.0.1:7002")
        self.assertEqual([n.id for n in self.topo.active()], ["2", "3", "4"])
        self.assertEqual([n.id for n in self.topo.resp_nodes()], ["2"])
        self.assertTrue(self.topo.resp_lb())
        self.assertTrue(self.topo.is_extra("4"))
        self.assertFalse(self.topo.is_extra("2"))
        self.assertTrue(self.topo.is_removed("1"))
        # the files are read again at every question
        self.run.drop_removed("1")
        self.run.drop_extra("4")
        self.assertEqual([n.id for n in self.topo.active()], ["1", "2", "3"])

    def test_no_resp_frontend_without_a_node_that_has_one(self):
        self.run.add_removed("1")
        self.run.add_removed("2")
        self.assertFalse(self.topo.resp_lb())

    def test_conflicting_addresses_are_refused(self):
        from sessionraft_cluster.membership import check_new_addresses

        check_new_addresses(self.topo, "127.0.0.1:7004", "127.0.0.1:7104")
        check_new_addresses(self.topo, "node4.example:7004", "node4.example:7004")
        for http, raft, msg in (
            ("127.0.0.1:7000", "127.0.0.1:7104", "127.0.0.1:7000 is the load balancer's address"),
            ("127.0.0.1:7004", "127.0.0.1:7101", "127.0.0.1:7101 is used by another node"),
            ("127.0.0.1:7002", "127.0.0.1:7104", "127.0.0.1:7002 is used by another node"),
            ("127.0.0.1:7302", "127.0.0.1:7104", "127.0.0.1:7302 is the Redis-protocol address of another node"),
            ("127.0.0.1:7379", "127.0.0.1:7104", "127.0.0.1:7379 is the load balancer's Redis-protocol address"),
            ("7004", "127.0.0.1:7104", "HTTP must be HOST:PORT (an IP or a DNS name), not '7004'"),
        ):
            with self.assertRaises(Die) as e:
                check_new_addresses(self.topo, http, raft)
            self.assertEqual(str(e.exception), msg)


def stand_in(d: str, script: str) -> str:
    """An executable stand-in for the sessionraft binary."""
    path = Path(d) / "sessionraft"
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


class LoadTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.run = RunDir(f"{self.dir.name}/run")

    def tearDown(self):
        self.dir.cleanup()

    def settings(self, bin_path, **env):
        env = {"SESSIONRAFT_BIN": bin_path, "SESSIONRAFT_CONFIG": "/c/cluster.toml", **env}
        return settings.from_env(env, root="/r", pwd="/p")

    def test_a_binary_with_nodes_json(self):
        nodes = JSON_NODES.replace('"', '\\"')
        b = stand_in(self.dir.name, f"""\
            case "$1 $4 $5" in
            "nodes --json ") echo "{nodes}" ;;
            "lb-addr  ") echo 127.0.0.1:7000 ;;
            "lb-addr --resp ") echo " 127.0.0.1:7379" ;;
            *) echo "unexpected: $*" >&2; exit 9 ;;
            esac
            """)
        topo = topology.load(self.settings(b), self.run)
        self.assertEqual([n.id for n in topo.config_nodes], ["1", "2"])
        self.assertEqual((topo.lb_addr, topo.lb_resp_addr), ("127.0.0.1:7000", "127.0.0.1:7379"))

    def test_an_older_binary_tab_separated_without_lb_addr(self):
        b = stand_in(self.dir.name, """\
            case "$1" in
            nodes) [ "$4" = --json ] && { echo "error: unexpected argument '--json'" >&2; exit 2; }
                   printf '1\\t127.0.0.1:7001\\td1\\n2\\t127.0.0.1:7002\\td2\\n' ;;
            --help) echo "Commands:"; echo "  serve  run a node"; echo "  nodes  list" ;;
            *) exit 9 ;;
            esac
            """)
        topo = topology.load(self.settings(b), self.run)
        self.assertEqual(topo.config_nodes, [Node("1", "127.0.0.1:7001", "d1", "127.0.0.1:7001"),
                                             Node("2", "127.0.0.1:7002", "d2", "127.0.0.1:7002")])
        self.assertEqual(topo.lb_addr, "")
        over = topology.load(self.settings(b, SESSIONRAFT_LB_ADDR="127.0.0.1:1",
                                           SESSIONRAFT_LB_RESP_ADDR="127.0.0.1:2"), self.run)
        self.assertEqual((over.lb_addr, over.lb_resp_addr), ("127.0.0.1:1", "127.0.0.1:2"))

    def test_a_broken_config(self):
        b = stand_in(self.dir.name, 'echo "error: bad config: node 2: http_addr: invalid" >&2; exit 1\n')
        with self.assertRaises(Die) as e:
            topology.load(self.settings(b), self.run)
        self.assertEqual(str(e.exception),
                         "cannot read /c/cluster.toml: error: bad config: node 2: http_addr: invalid")
        self.assertEqual(topology.load(self.settings(b), self.run, quiet=True).config_nodes, [])

    def test_no_binary(self):
        s = self.settings(f"{self.dir.name}/none")
        with self.assertRaises(Die) as e:
            topology.load(s, self.run)
        self.assertEqual(str(e.exception), f"no binary at {self.dir.name}/none (scripts/cluster.sh up builds it)")
        self.assertEqual(topology.load(s, self.run, quiet=True).all(), [])


if __name__ == "__main__":
    unittest.main()

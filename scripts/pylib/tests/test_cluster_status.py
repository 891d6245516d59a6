"""sessionraft_cluster.status and the URLs of `up`: rows from canned /cluster/status answers and
HAProxy stats, laid out as the shell script printed them (expected lines produced by its printf
and its heredoc program)."""

import json
import tempfile
import unittest

from sessionraft_cluster import commands, status
from sessionraft_cluster.haproxy import Server
from sessionraft_cluster.rundir import RunDir
from sessionraft_cluster.topology import Node, Topology

LEADER = json.loads('{"role":"leader","term":3,"leader":1,"applied_index":42,"last_log_index":42}')
CANDIDATE = json.loads('{"role":"candidate","term":4,"leader":null,"applied_index":null}')


class StatusTableTest(unittest.TestCase):
    def test_header(self):
        self.assertEqual(status.header(),
                         "node  pid      address                role         term  leader   applied health    version")

    def test_rows_from_canned_status(self):
        self.assertEqual(status.node_row("1", 12345, "127.0.0.1:7001", 200, LEADER, False),
                         "1     12345    127.0.0.1:7001         leader          3       1        42 ready     0.1.0 or older")
        self.assertEqual(status.node_row("2", None, "127.0.0.1:7002", 503, CANDIDATE, False),
                         "2     -        127.0.0.1:7002         candidate       4       -         - not-ready 0.1.0 or older")
        self.assertEqual(status.node_row("1", 12345, "127.0.0.1:7001", 200, {**LEADER, "version": "0.2.0"}, False),
                         "1     12345    127.0.0.1:7001         leader          3       1        42 ready     0.2.0")

    def test_rows_of_silent_nodes(self):
        self.assertEqual(status.node_row("3", None, "127.0.0.1:7003", 0, None, False),
                         "3     -        127.0.0.1:7003         unreachable      -       -         - down")
        self.assertEqual(status.node_row("3", None, "127.0.0.1:7003", 0, None, True),
                         "3     -        127.0.0.1:7003         removed         -       -         - removed")
        # a status is shown even for a removed node that still answers
        self.assertTrue(status.node_row("3", 7, "a:1", 200, LEADER, True).endswith(" ready     0.1.0 or older"))

    def test_load_balancer_rows(self):
        up = [Server("nodes", f"node{i}", st, "L7OK", "1") for i, st in ((1, "UP"), (2, "UP"), (3, "DOWN"))]
        self.assertEqual(status.lb_rows("", None, "", False, [], []),
                         ["lb    -        -                      haproxy         -       -         - "
                          "no load balancer configured"])
        self.assertEqual(status.lb_rows("127.0.0.1:7000", None, "", False, [], []),
                         ["lb    -        127.0.0.1:7000         haproxy         -       -         - not running"])
        self.assertEqual(status.lb_rows("127.0.0.1:7000", 999, "", False, up, []),
                         ["lb    999      127.0.0.1:7000         haproxy         -       -         - 2/3 servers UP"])
        rows = status.lb_rows("127.0.0.1:7000", 999, "127.0.0.1:7379", True, up, up[:2])
        self.assertEqual(rows[1], "lb    999      127.0.0.1:7379         haproxy         -       -         - "
                                  "2/2 servers UP, Redis URL redis://127.0.0.1:7379")

    def test_lb_status_lines(self):
        lines = status.lb_status_lines([Server("nodes", "node1", "UP", "L7OK", "12"),
                                        Server("resp", "node1", "DOWN", "", "3")])
        self.assertEqual(lines, ["pxname     svname     status     check        last_change",
                                 "nodes      node1      UP         L7OK         12s ago",
                                 "resp       node1      DOWN       -            3s ago"])


class UpUrlsTest(unittest.TestCase):
    def test_urls(self):
        with tempfile.TemporaryDirectory() as d:
            nodes = [Node("1", "127.0.0.1:7001", "/d/1", "127.0.0.1:7101", "127.0.0.1:7301"),
                     Node("2", "127.0.0.1:7002", "/d/2", "127.0.0.1:7102")]
            topo = Topology(RunDir(d), nodes, "127.0.0.1:7000", "127.0.0.1:7379")
            self.assertEqual(commands.urls(topo, ["1", "2"]), [
                "  load balancer: demo: http://127.0.0.1:7000/  dashboard: http://127.0.0.1:7000/cluster  "
                "(HAProxy stats: http://127.0.0.1:7000/haproxy-stats)",
                "  load balancer: Redis URL: redis://127.0.0.1:7379  "
                "(express-session, Flask-Session, RedisSessionStore, redis-cli -u)",
                "  node 1: demo http://127.0.0.1:7001/   dashboard http://127.0.0.1:7001/cluster   "
                "Redis redis://127.0.0.1:7301",
                "  node 2: demo http://127.0.0.1:7002/   dashboard http://127.0.0.1:7002/cluster",
            ])
            no_resp = Topology(RunDir(d), nodes[1:], "127.0.0.1:7000", "127.0.0.1:7379")
            self.assertEqual(commands.urls(no_resp, [])[1],
                             "  load balancer: no Redis frontend on 127.0.0.1:7379: no node has a resp_addr")
            self.assertEqual(commands.urls(Topology(RunDir(d), nodes[1:]), []), [])


if __name__ == "__main__":
    unittest.main()

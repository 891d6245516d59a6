"""sessionraft_cluster.haproxy: the config it renders (byte for byte the shell script's, whose
output is kept in fixtures/cluster/), names in server lines, the stats CSV."""

import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from sessionraft_cluster import haproxy
from sessionraft_cluster.topology import Node, addrs_from_haproxy_cfg

FIXTURES = Path(__file__).parent / "fixtures" / "cluster"
CONFIG = "/etc/sessionraft/cluster.toml"

# the nodes the fixtures were rendered from by the shell script's haproxy_cfg (see its README)
HTTP_NODES = [Node("1", "127.0.0.1:7001", "/d/1", "127.0.0.1:7101"),
              Node("2", "127.0.0.1:7002", "/d/2", "127.0.0.1:7102"),
              Node("4", "127.0.0.1:7004", "/run/data/node4", "127.0.0.1:7104")]
RESP_NODES = [Node("1", "127.0.0.1:7001", "/d/1", "127.0.0.1:7101", "127.0.0.1:7301"),
              Node("2", "127.0.0.2:7002", "/d/2", "127.0.0.2:7102", "127.0.0.2:7302"),
              Node("3", "127.0.0.3:7003", "/d/3", "127.0.0.3:7103")]

STATS_CSV = (
    "# pxname,svname,qcur,scur,status,weight,check_status,lastchg,\n"
    "lb,FRONTEND,,0,OPEN,,,,\n"
    "nodes,node1,0,0,UP,1,L7OK,12,\n"
    "nodes,node2,0,0,DOWN,1,L4CON,3,\n"
    "nodes,node3,0,0,UP,1,,40,\n"
    "nodes,BACKEND,0,0,UP,2,,100,\n"
    "resp,FRONTEND,,0,OPEN,,,,\n"
    "resp,node1,0,0,UP,1,L7OK,12,\n"
    "resp,node2,0,0,UP,1,L7OK,2,\n"
    "resp,BACKEND,0,0,UP,2,,100,\n"
)


class RenderTest(unittest.TestCase):
    def test_http_only_is_the_shell_scripts_config(self):
        got = haproxy.render(CONFIG, "127.0.0.1:7000", HTTP_NODES)
        self.assertEqual(got, (FIXTURES / "haproxy-http.cfg").read_text())

    def test_with_the_resp_frontend_is_the_shell_scripts_config(self):
        resp = [n for n in RESP_NODES if n.resp]
        got = haproxy.render(CONFIG, "127.0.0.1:7000", RESP_NODES, "127.0.0.1:7379", resp)
        self.assertEqual(got, (FIXTURES / "haproxy-resp.cfg").read_text())

    def test_names_are_passed_on(self):
        nodes = [Node("1", "sessionraft-0.sessionraft:7001", "/data", "sessionraft-0.sessionraft:7101",
                      "sessionraft-0.sessionraft:6379")]
        got = haproxy.render(CONFIG, "lb.example:7000", nodes, "lb.example:6379", nodes)
        self.assertIn("    bind lb.example:7000\n", got)
        self.assertIn("    server node1 sessionraft-0.sessionraft:7001 check inter 250ms", got)
        self.assertIn("    server node1 sessionraft-0.sessionraft:6379 check port 7001 "
                      "addr sessionraft-0.sessionraft inter 250ms", got)

    def test_the_addresses_of_a_running_config_are_read_back(self):
        self.assertEqual(addrs_from_haproxy_cfg((FIXTURES / "haproxy-resp.cfg").read_text()),
                         ("127.0.0.1:7000", "127.0.0.1:7379"))
        self.assertEqual(addrs_from_haproxy_cfg((FIXTURES / "haproxy-http.cfg").read_text()),
                         ("127.0.0.1:7000", ""))

    def test_an_ipv6_health_check_address_keeps_its_brackets(self):
        nodes = [Node("1", "[::1]:7001", "/d/1", "[::1]:7101", "[::1]:7301")]
        got = haproxy.render(CONFIG, "[::1]:7000", nodes, "[::1]:7379", nodes)
        self.assertIn("    server node1 [::1]:7301 check port 7001 addr [::1] inter 250ms", got)

    @unittest.skipUnless(shutil.which("haproxy") or Path("/usr/sbin/haproxy").exists(), "no haproxy")
    def test_haproxy_accepts_it_ipv6_included(self):
        exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
        nodes = RESP_NODES + [Node("5", "[::1]:7005", "/d/5", "[::1]:7105", "[::1]:7305")]
        resp = [n for n in nodes if n.resp]
        with tempfile.NamedTemporaryFile("w", suffix=".cfg") as f:
            f.write(haproxy.render(CONFIG, "127.0.0.1:7000", nodes, "127.0.0.1:7379", resp))
            f.flush()
            out = subprocess.run([exe, "-c", "-f", f.name], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)


class StatsTest(unittest.TestCase):
    def test_servers_of_the_backends_in_csv_order(self):
        rows = haproxy.parse_stats(STATS_CSV)
        self.assertEqual([(r.svname, r.status, r.check_status, r.lastchg) for r in rows],
                         [("node1", "UP", "L7OK", "12"), ("node2", "DOWN", "L4CON", "3"), ("node3", "UP", "", "40")])
        both = haproxy.parse_stats(STATS_CSV, (haproxy.LB_BACKEND, haproxy.RESP_BACKEND))
        self.assertEqual([f"{r.pxname}:{r.svname}" for r in both],
                         ["nodes:node1", "nodes:node2", "nodes:node3", "resp:node1", "resp:node2"])

    def test_a_servers_status_over_both_backends(self):
        rows = haproxy.parse_stats(STATS_CSV, (haproxy.LB_BACKEND, haproxy.RESP_BACKEND))
        self.assertEqual(haproxy.combined_status(rows, "1"), "UP")
        self.assertEqual(haproxy.combined_status(rows, "2"), "DOWN/UP")
        self.assertEqual(haproxy.combined_status(rows, "3"), "UP")
        self.assertEqual(haproxy.combined_status(rows, "9"), "")


if __name__ == "__main__":
    unittest.main()

"""sessionraft_hosts.haproxy: the configuration (servers by name, listeners in the root
namespace's loopback, one-node backends) and the stats CSV."""

import re
import unittest

from sessionraft_cluster.haproxy import HaproxyTls
from sessionraft_hosts import haproxy

NAMES = ["sessionraft-1", "sessionraft-0", "sessionraft-2"]
PORTS = haproxy.Ports(5100, 5200, {"sessionraft-0": 5301, "sessionraft-1": 5302,
                                   "sessionraft-2": 5303})


def render(generation=4):
    return haproxy.render("sr-abcde-root", PORTS, NAMES, "/s/lb/haproxy.sock", generation)


def render_tls():
    tls = HaproxyTls(ca="/s/certs/ca.crt", lb_pem="/s/lb/haproxy-lb.pem")
    return haproxy.render("sr-abcde-root", PORTS, NAMES, "/s/lb/haproxy.sock", 4, tls)


class TlsTest(unittest.TestCase):
    def test_http_listeners_serve_https_and_the_redis_protocol_passes_tls_through(self):
        binds = re.findall(r"^\s*bind (.*)$", render_tls(), re.M)
        pem = " ssl crt /s/lb/haproxy-lb.pem"
        self.assertIn(f"127.0.0.1:5100 namespace sr-abcde-root{pem}", binds)
        self.assertIn(f":7100{pem}", binds)
        for port in (5301, 5302, 5303):
            self.assertIn(f"127.0.0.1:{port} namespace sr-abcde-root{pem}", binds)
        self.assertIn("127.0.0.1:5200 namespace sr-abcde-root", binds)  # resp: no ssl

    def test_every_node_verified_by_its_name_against_the_ca(self):
        cfg = render_tls()
        servers = re.findall(r"^\s*server (node\d) (\S+):(\d+)(.*)$", cfg, re.M)
        self.assertEqual(len(servers), 9)  # nodes, resp, direct
        for _, host, port, opts in servers:
            self.assertIn(f"check-ssl verify required ca-file /s/certs/ca.crt", opts)
            self.assertIn(f"check-sni {host} verifyhost {host}", opts)
            # HTTP re-encrypted to the node (with SNI); the Redis protocol is TLS end to end
            if port == "7201":
                self.assertNotIn(" ssl ", opts + " ")
            else:
                self.assertIn(f" ssl check-ssl", opts)
                self.assertIn(f"sni str({host})", opts)

    def test_without_tls_nothing_of_it(self):
        self.assertNotIn("ssl", render())


class RenderTest(unittest.TestCase):
    def test_servers_by_name_checked_on_readyz(self):
        cfg = render()
        nodes = cfg.split("\nbackend nodes\n")[1].split("defaults")[0]
        self.assertIn("option httpchk GET /readyz", nodes)
        self.assertEqual(re.findall(r"server (\S+) (\S+)", nodes), [
            ("node1", "sessionraft-0.sessionraft:7101"),
            ("node2", "sessionraft-1.sessionraft:7101"),
            ("node3", "sessionraft-2.sessionraft:7101"),
        ])
        resp = cfg.split("\nbackend resp\n")[1].split("defaults")[0]
        self.assertIn("server node2 sessionraft-1.sessionraft:7201 port 7101", resp)

    def test_no_ip_address_of_a_host(self):
        self.assertIsNone(re.search(r"\b10\.\d+\.\d+\.\d+", render()))

    def test_client_listeners_are_on_loopback_in_the_root_namespace(self):
        binds = re.findall(r"^\s*bind (.*)$", render(), re.M)
        self.assertIn("127.0.0.1:5100 namespace sr-abcde-root", binds)
        self.assertIn("127.0.0.1:5200 namespace sr-abcde-root", binds)
        for port in (5301, 5302, 5303):
            self.assertIn(f"127.0.0.1:{port} namespace sr-abcde-root", binds)
        for b in binds:
            self.assertTrue(b.startswith("127.0.0.1:") or b == ":7100", b)

    def test_unresolved_names_do_not_stop_haproxy(self):
        for line in re.findall(r"^\s*default-server .*$", render(), re.M):
            self.assertIn("init-addr libc,none", line)

    def test_direct_backends_reach_one_node_only(self):
        cfg = render()
        for nid, name, port in ((1, "sessionraft-0", 5301), (3, "sessionraft-2", 5303)):
            front = cfg.split(f"frontend direct{nid}\n")[1].split("backend")[0]
            self.assertIn(f"127.0.0.1:{port}", front)
            back = cfg.split(f"\nbackend direct{nid}\n")[1].split("\n\n")[0]
            self.assertEqual(re.findall(r"server (\S+) (\S+)", back),
                             [(f"node{nid}", f"{name}.sessionraft:7101")])
        direct_defaults = cfg.split("# one node each")[1].split("frontend")[0]
        self.assertIn("retries 0", direct_defaults)
        self.assertNotIn("redispatch", direct_defaults)

    def test_the_generation_is_served_and_seamless_reloads(self):
        cfg = render(generation=7)
        self.assertIn('string "7" if { path /hosts-generation }', cfg)
        self.assertIn("stats socket /s/lb/haproxy.sock mode 600 level admin expose-fd listeners",
                      cfg)

    def test_the_settings_of_the_deployed_load_balancer(self):
        cfg = render()
        for line in ("retry-on conn-failure 503", "option redispatch 1", "timeout check 250ms",
                     "check inter 250ms fastinter 100ms fall 2 rise 2",
                     "option http-buffer-request"):
            self.assertIn(line, cfg)


class StatsTest(unittest.TestCase):
    CSV = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,"
           "wretr,wredis,status,weight\n"
           "lb,FRONTEND,,,0,1,4096,3,,,,,,,,,,OPEN,\n"
           "nodes,node1,0,0,0,1,,1,,,,,,0,0,0,0,UP,1\n"
           "nodes,node2,0,0,0,1,,1,,,,,,0,0,0,0,DOWN,1\n"
           "nodes,node3,0,0,0,1,,1,,,,,,0,0,0,0,MAINT (resolution),1\n"
           "nodes,BACKEND,0,0,0,1,,1,,,,,,0,0,0,0,UP,2\n"
           "resp,node1,0,0,0,1,,1,,,,,,0,0,0,0,DOWN,1\n")

    def test_servers_of_a_backend(self):
        self.assertEqual(haproxy.parse_stats(self.CSV),
                         {"node1": "UP", "node2": "DOWN", "node3": "MAINT (resolution)"})
        self.assertEqual(haproxy.parse_stats(self.CSV, "resp"), {"node1": "DOWN"})
        self.assertEqual(haproxy.parse_stats(""), {})


if __name__ == "__main__":
    unittest.main()

"""sessionraft_cluster with a [tls] config: the HAProxy config it renders (HTTPS frontend with
the load balancer's certificate, re-encryption to the nodes verifying the cluster CA, the Redis
frontend passing TLS through, every /readyz check over HTTPS), the `sessionraft tls-files`
answer, the URLs it prints and probes."""

import os
import shutil
import stat
import subprocess
import tempfile
import unittest

from sessionraft_cluster import commands, haproxy, tls
from sessionraft_cluster.console import Die
from sessionraft_cluster.rundir import RunDir
from sessionraft_cluster.topology import Node, Topology

CONFIG = "/etc/sessionraft/cluster.toml"
TLS = haproxy.HaproxyTls(ca="/etc/sessionraft/certs/ca.crt", lb_pem="/run/sr/haproxy-lb.pem")
IP_NODES = [Node("1", "127.0.0.1:7001", "/d/1", "127.0.0.1:7101", "127.0.0.1:7301"),
            Node("2", "127.0.0.2:7002", "/d/2", "127.0.0.2:7102", "127.0.0.2:7302")]
NAMED = [Node("1", "sessionraft-0.sessionraft:7001", "/d/1", "sessionraft-0.sessionraft:7101",
              "sessionraft-0.sessionraft:6379")]
CHECK = "inter 250ms fastinter 100ms fall 2 rise 2"


class RenderTlsTest(unittest.TestCase):
    def test_the_http_frontend_terminates_with_the_lb_certificate_and_reencrypts(self):
        got = haproxy.render(CONFIG, "127.0.0.1:7000", IP_NODES, tls=TLS)
        self.assertIn("    bind 127.0.0.1:7000 ssl crt /run/sr/haproxy-lb.pem\n", got)
        self.assertIn("frontend lb\n", got)
        self.assertIn("    mode http\n", got)
        self.assertIn("    retry-on conn-failure 503\n", got)  # L7 retries kept
        self.assertIn(f"    server node1 127.0.0.1:7001 check ssl check-ssl verify required "
                      f"ca-file /etc/sessionraft/certs/ca.crt {CHECK}\n", got)
        self.assertIn("    option httpchk GET /readyz\n", got)
        self.assertNotIn("verify none", got)
        self.assertNotIn("frontend resp", got)

    def test_the_redis_frontend_passes_tls_through_and_checks_readyz_over_https(self):
        got = haproxy.render(CONFIG, "127.0.0.1:7000", IP_NODES, "127.0.0.1:7379", IP_NODES, TLS)
        resp = got[got.index("frontend resp"):]
        self.assertIn("    bind 127.0.0.1:7379\n", resp)  # no ssl: the node's own handshake
        self.assertNotIn(" ssl crt", resp)
        self.assertIn(f"    server node2 127.0.0.2:7302 check port 7002 addr 127.0.0.2 check-ssl "
                      f"verify required ca-file /etc/sessionraft/certs/ca.crt {CHECK}\n", resp)
        # the TCP part is mode tcp
        tcp = got[got.index("\ndefaults\n    mode tcp"):]
        self.assertIn("frontend resp", tcp)

    def test_named_nodes_are_verified_by_name(self):
        got = haproxy.render(CONFIG, "lb.example:7000", NAMED, "lb.example:6379", NAMED, TLS)
        host = "sessionraft-0.sessionraft"
        self.assertIn(f"    server node1 {host}:7001 check ssl check-ssl verify required ca-file "
                      f"{TLS.ca} sni str({host}) check-sni {host} verifyhost {host} {CHECK}\n", got)
        self.assertIn(f"    server node1 {host}:6379 check port 7001 addr {host} check-ssl verify "
                      f"required ca-file {TLS.ca} check-sni {host} verifyhost {host} {CHECK}\n", got)

    def test_without_tls_nothing_changes(self):
        self.assertEqual(haproxy.render(CONFIG, "127.0.0.1:7000", IP_NODES, "127.0.0.1:7379", IP_NODES),
                         haproxy.render(CONFIG, "127.0.0.1:7000", IP_NODES, "127.0.0.1:7379", IP_NODES, None))

    @unittest.skipUnless(shutil.which("haproxy") and shutil.which("openssl"), "needs haproxy and openssl")
    def test_haproxy_accepts_the_tls_config(self):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-days", "2", "-subj", "/CN=t", "-keyout", f"{d}/k", "-out", f"{d}/ca.crt"],
                           check=True, capture_output=True)
            with open(f"{d}/lb.pem", "w") as f, open(f"{d}/ca.crt") as c, open(f"{d}/k") as k:
                f.write(c.read() + k.read())
            nodes = IP_NODES + [Node("3", "localhost:7003", "/d/3", "localhost:7103", "localhost:7303")]
            cfg = haproxy.render(CONFIG, "127.0.0.1:7000", nodes, "127.0.0.1:7379", nodes,
                                 haproxy.HaproxyTls(ca=f"{d}/ca.crt", lb_pem=f"{d}/lb.pem"))
            with open(f"{d}/h.cfg", "w") as f:
                f.write(cfg)
            r = subprocess.run([shutil.which("haproxy"), "-c", "-f", f"{d}/h.cfg"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class TlsFilesTest(unittest.TestCase):
    def tearDown(self):
        tls.use(None)

    def test_parse(self):
        self.assertIsNone(tls.parse(""))
        f = tls.parse('{"ca":"/c/ca.crt","cert_dir":"/c"}\n')
        self.assertEqual(f, tls.TlsFiles("/c/ca.crt", "/c"))
        self.assertEqual(f.lb_crt, "/c/lb.crt")
        with self.assertRaises(ValueError):
            tls.parse('{"ca":null}')

    def test_scheme_and_context(self):
        self.assertEqual(tls.url("127.0.0.1:7001", "/readyz"), "http://127.0.0.1:7001/readyz")
        self.assertIsNone(tls.context())
        tls.use(tls.TlsFiles("/nonexistent/ca.crt", "/nonexistent"))
        self.assertEqual(tls.url("127.0.0.1:7001", "/readyz"), "https://127.0.0.1:7001/readyz")
        ctx = tls.context()
        self.assertTrue(ctx.check_hostname)

    def test_printed_urls_follow_the_scheme(self):
        with tempfile.TemporaryDirectory() as d:
            topo = Topology(RunDir(d), IP_NODES, "127.0.0.1:7000", "127.0.0.1:7379")
            tls.use(tls.TlsFiles("/c/ca.crt", "/c"))
            lines = "\n".join(commands.urls(topo, ["1"]))
            self.assertIn("demo: https://127.0.0.1:7000/", lines)
            self.assertIn("Redis URL: rediss://127.0.0.1:7379", lines)
            self.assertIn("node 1: demo https://127.0.0.1:7001/", lines)
            self.assertIn("Redis rediss://127.0.0.1:7301", lines)
            self.assertNotIn("http://", lines)

    def test_the_lb_pem_is_written_mode_600_or_named_missing(self):
        with tempfile.TemporaryDirectory() as d:
            files = tls.TlsFiles(f"{d}/ca.crt", d)
            with self.assertRaises(Die) as e:
                haproxy.write_lb_pem(files, f"{d}/lb.pem")
            self.assertIn("dev-certs.sh", str(e.exception))
            for name, body in (("lb.crt", "CERT"), ("lb.key", "KEY\n")):
                with open(f"{d}/{name}", "w") as f:
                    f.write(body)
            haproxy.write_lb_pem(files, f"{d}/lb.pem")
            with open(f"{d}/lb.pem") as f:
                self.assertEqual(f.read(), "CERT\nKEY\n")
            self.assertEqual(stat.S_IMODE(os.stat(f"{d}/lb.pem").st_mode), 0o600)


if __name__ == "__main__":
    unittest.main()

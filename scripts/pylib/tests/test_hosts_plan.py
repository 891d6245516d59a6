"""sessionraft_hosts.plan: names, subnet, the exact `ip` commands, hosts files, the nodes'
configuration, environment and command lines (no root needed: nothing is run)."""

import ipaddress
import unittest
from pathlib import Path

from sessionraft_hosts import plan
from sessionraft_hosts.plan import Names, PlanError

ROOT = Path(__file__).resolve().parents[3]
CONFIGMAP = ROOT / "deploy" / "kubernetes" / "configmap.yaml"


class NamesTest(unittest.TestCase):
    def test_host_names_follow_the_statefulset(self):
        self.assertEqual(plan.host_name(0), "sessionraft-0")
        self.assertEqual(plan.fqdn("sessionraft-2"), "sessionraft-2.sessionraft")
        self.assertEqual(plan.node_id_of("sessionraft-0"), 1)
        self.assertEqual(plan.node_id_of("sessionraft-2"), 3)
        with self.assertRaises(PlanError):
            plan.ordinal_of("web-1")

    def test_a_host_is_named_by_name_or_node_id(self):
        names = ["sessionraft-0", "sessionraft-1", "sessionraft-2"]
        self.assertEqual(plan.parse_host("2", names), "sessionraft-1")
        self.assertEqual(plan.parse_host("sessionraft-2", names), "sessionraft-2")
        with self.assertRaises(PlanError):
            plan.parse_host("4", names)
        with self.assertRaises(PlanError):
            plan.parse_host("sessionraft-9", names)

    def test_every_namespace_carries_the_run_id(self):
        n = Names("3fa9c")
        for ns in (n.switch, n.lb, n.root, n.host("sessionraft-1")):
            self.assertTrue(ns.startswith("sr-3fa9c-"), ns)
        self.assertEqual(n.host("sessionraft-1"), "sr-3fa9c-sessionraft-1")
        self.assertEqual(Names.port("sessionraft-1"), "p1")
        self.assertEqual(Names.port(plan.LB_NAME), "plb")
        with self.assertRaises(PlanError):
            Names("../x")

    def test_interface_names_fit_ifnamsiz(self):
        for name in ("sessionraft-0", "sessionraft-99", plan.LB_NAME):
            self.assertLessEqual(len(Names.port(name)), 15)


class SubnetTest(unittest.TestCase):
    ROUTES = ("default via 192.0.2.1 dev eth0\n"
              "192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n"
              "local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1\n"
              "broadcast 192.0.2.255 dev eth0 table local proto kernel scope link\n"
              "10.100.0.0/16 via 192.0.2.9 dev eth0\n")
    ADDRS = "2: eth0    inet 10.150.7.3/24 brd 10.150.7.255 scope global eth0\n"

    def test_networks_in_use_from_routes_addresses_and_resolvers(self):
        nets = plan.networks_in_use(self.ROUTES, self.ADDRS, "nameserver 10.255.255.53\n")
        self.assertIn(ipaddress.ip_network("192.0.2.0/24"), nets)
        self.assertIn(ipaddress.ip_network("127.0.0.0/8"), nets)
        self.assertIn(ipaddress.ip_network("10.100.0.0/16"), nets)
        self.assertIn(ipaddress.ip_network("10.150.7.0/24"), nets)
        self.assertIn(ipaddress.ip_network("10.255.255.53/32"), nets)

    def test_the_subnet_overlaps_nothing_in_use(self):
        nets = plan.networks_in_use(self.ROUTES, self.ADDRS)
        for draw in (0, 1, 7, 255, 256 * 50 + 7, 12345678):
            net = plan.pick_subnet(draw, nets)
            self.assertEqual(net.prefixlen, 24)
            self.assertTrue(net.subnet_of(ipaddress.ip_network("10.0.0.0/8")))
            self.assertFalse(any(net.overlaps(u) for u in nets), net)
        # draw 0 starts at 10.100.0.0/24, in use: the search moves on
        self.assertNotEqual(str(plan.pick_subnet(0, nets)), "10.100.0.0/24")

    def test_no_subnet_left(self):
        with self.assertRaises(PlanError):
            plan.pick_subnet(0, [ipaddress.ip_network("10.0.0.0/8")])

    def test_addresses(self):
        self.assertEqual(plan.address("10.123.4.0/24", 11), "10.123.4.11")
        with self.assertRaises(PlanError):
            plan.address("10.123.4.0/24", 255)


class CommandsTest(unittest.TestCase):
    n = Names("abcde")

    def test_the_switch_is_a_bridge_in_its_own_namespace(self):
        sw = "sr-abcde-switch"
        self.assertEqual(plan.switch_commands(self.n), [
            ["ip", "netns", "add", sw],
            ["ip", "-n", sw, "link", "set", "lo", "up"],
            ["ip", "-n", sw, "link", "add", "br0", "type", "bridge", "stp_state", "0",
             "forward_delay", "0"],
            ["ip", "-n", sw, "link", "set", "br0", "up"],
        ])

    def test_a_host_never_touches_the_root_namespace(self):
        cmds = plan.host_commands(self.n, "sessionraft-1", "10.1.2.12", 24)
        ns, sw = "sr-abcde-sessionraft-1", "sr-abcde-switch"
        self.assertEqual(cmds, [
            ["ip", "netns", "add", ns],
            ["ip", "-n", ns, "link", "set", "lo", "up"],
            ["ip", "-n", sw, "link", "add", "p1", "type", "veth", "peer", "name", "eth0",
             "netns", ns],
            ["ip", "-n", sw, "link", "set", "p1", "master", "br0"],
            ["ip", "-n", sw, "link", "set", "p1", "up"],
            ["ip", "-n", ns, "addr", "add", "10.1.2.12/24", "dev", "eth0"],
            ["ip", "-n", ns, "link", "set", "eth0", "up"],
        ])
        # every command names one of the run's namespaces (`ip netns add` creates it)
        for argv in cmds:
            self.assertTrue(argv[:3] == ["ip", "netns", "add"] or argv[1] == "-n", argv)
            self.assertTrue(any(a.startswith("sr-abcde-") for a in argv), argv)

    def test_the_lb_is_a_host_of_its_own(self):
        cmds = plan.host_commands(self.n, plan.LB_NAME, "10.1.2.2", 24)
        self.assertEqual(cmds[0], ["ip", "netns", "add", "sr-abcde-lb"])
        self.assertIn("plb", cmds[2])

    def test_removal_takes_the_link_first(self):
        self.assertEqual(plan.remove_host_commands(self.n, "sessionraft-2"), [
            ["ip", "-n", "sr-abcde-switch", "link", "del", "p2"],
            ["ip", "netns", "delete", "sr-abcde-sessionraft-2"],
        ])

    def test_a_link_cut_is_the_switch_port_down(self):
        self.assertEqual(plan.link_commands(self.n, "sessionraft-0", False),
                         [["ip", "-n", "sr-abcde-switch", "link", "set", "p0", "down"]])
        self.assertEqual(plan.link_commands(self.n, "sessionraft-0", True),
                         [["ip", "-n", "sr-abcde-switch", "link", "set", "p0", "up"]])


class HostsFileTest(unittest.TestCase):
    HOSTS = {"sessionraft-1": "10.1.2.12", "sessionraft-0": "10.1.2.11",
             "sessionraft-2": "10.1.2.13"}

    def test_every_host_by_full_and_short_name(self):
        text = plan.hosts_file("abcde", self.HOSTS, "10.1.2.2")
        lines = text.splitlines()
        self.assertIn("10.1.2.11       sessionraft-0.sessionraft sessionraft-0", lines)
        self.assertIn("10.1.2.12       sessionraft-1.sessionraft sessionraft-1", lines)
        self.assertIn("10.1.2.13       sessionraft-2.sessionraft sessionraft-2", lines)
        self.assertIn("10.1.2.2        sessionraft-lb.sessionraft sessionraft-lb", lines)
        self.assertIn("127.0.0.1       localhost", lines)
        # in ordinal order
        self.assertLess(text.index("sessionraft-0"), text.index("sessionraft-1"))

    def test_the_length_never_changes(self):
        """A rewrite in place never leaves a reader half of an old line."""
        a = plan.hosts_file("abcde", self.HOSTS, "10.1.2.2")
        moved = dict(self.HOSTS, **{"sessionraft-1": "10.1.2.254"})
        b = plan.hosts_file("abcde", moved, "10.1.2.2")
        gone = dict(self.HOSTS, **{"sessionraft-0": None})
        c = plan.hosts_file("abcde", gone, "10.1.2.2")
        self.assertEqual(len(a), len(b))
        self.assertEqual(len(a), len(c))
        self.assertNotEqual(a, b)

    def test_an_absent_host_is_a_comment(self):
        text = plan.hosts_file("abcde", dict(self.HOSTS, **{"sessionraft-0": None}), "10.1.2.2")
        line = next(x for x in text.splitlines() if "sessionraft-0" in x)
        self.assertTrue(line.startswith("#"), line)

    def test_no_dns_leaves_a_host(self):
        self.assertIn("nameserver 127.0.0.1", plan.RESOLV_CONF)


class ConfigTest(unittest.TestCase):
    def test_the_configmaps_cluster_toml(self):
        text = plan.config_from_configmap(CONFIGMAP.read_text())
        self.assertTrue(text.startswith("[cluster]\n"), text[:40])
        self.assertIn('http_addr = "sessionraft-0.sessionraft:7101"', text)
        self.assertNotIn("apiVersion", text)
        self.assertNotIn("\n    ", text.split("[[node]]")[1])  # unindented

    def test_block_extraction(self):
        yaml = ("kind: ConfigMap\ndata:\n  cluster.toml: |\n    [a]\n    x = 1\n\n"
                "    [[node]]\n      indented = 2\nother: 1\n")
        self.assertEqual(plan.config_from_configmap(yaml),
                         "[a]\nx = 1\n\n[[node]]\n  indented = 2\n")
        with self.assertRaises(PlanError):
            plan.config_from_configmap("kind: ConfigMap\n")

    def test_the_run_config_mounts_every_nodes_data_at_one_path(self):
        manifest = plan.config_from_configmap(CONFIGMAP.read_text())
        text = plan.run_config(manifest, Path("/run/x/mnt/data"), 3)
        self.assertEqual(text.count('data_dir = "/run/x/mnt/data"'), 3)
        self.assertNotIn('"/data"', text)
        with self.assertRaises(PlanError):
            plan.run_config(manifest, Path("/m"), 5)

    def test_an_ip_in_the_manifest_is_refused(self):
        toml = ('[[node]]\nid = 1\nhttp_addr = "10.0.0.1:7101"\ndata_dir = "/data"\n')
        with self.assertRaises(PlanError):
            plan.run_config(toml, Path("/m"), 1)
        ok = ('[[node]]\nid = 1\nhttp_addr = "sessionraft-0.sessionraft:7101"\n'
              'data_dir = "/data"\n')
        self.assertIn('data_dir = "/m"', plan.run_config(ok, Path("/m"), 1))

    def test_a_pods_environment(self):
        env = plan.node_env("sessionraft-2", Path("/s/cluster.toml"),
                            {"SESSIONRAFT_CLUSTER_SECRET": "s"},
                            {"SESSIONRAFT_RAFT__SNAPSHOT_LOGS_SINCE_LAST": "50"})
        self.assertEqual(env["HOSTNAME"], "sessionraft-2")
        self.assertEqual(env["SESSIONRAFT_LISTEN__IP"], "0.0.0.0")
        self.assertEqual(env["SESSIONRAFT_CONFIG"], "/s/cluster.toml")
        self.assertEqual(env["SESSIONRAFT_CLUSTER_SECRET"], "s")
        self.assertEqual(env["SESSIONRAFT_RAFT__SNAPSHOT_LOGS_SINCE_LAST"], "50")
        self.assertNotIn("SESSIONRAFT_NODE_ID", env)  # the id comes from HOSTNAME
        for k, v in env.items():  # no host's address anywhere (0.0.0.0 is "every interface")
            if k != "SESSIONRAFT_LISTEN__IP":
                with self.assertRaises(ValueError):
                    ipaddress.ip_address(v.split(":")[0])

    def test_a_command_in_a_host(self):
        argv = plan.in_host(Names("abcde"), "sessionraft-1", Path("/s/hosts/sessionraft-1/data"),
                            Path("/s/mnt/data"), {"HOSTNAME": "sessionraft-1", "A": "1"},
                            plan.serve_argv(Path("/bin/sessionraft")))
        self.assertEqual(argv[:4], ["ip", "netns", "exec", "sr-abcde-sessionraft-1"])
        self.assertEqual(argv[4:10], ["/bin/sh", "-c", plan.MOUNT_THEN_EXEC, "sh",
                                      "/s/hosts/sessionraft-1/data", "/s/mnt/data"])
        self.assertEqual(argv[10:], ["env", "-i", "A=1", "HOSTNAME=sessionraft-1",
                                     "/bin/sessionraft", "serve"])


if __name__ == "__main__":
    unittest.main()

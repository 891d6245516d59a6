"""The `clients` part of scripts/bench.sh (issue 29): the alternating plan, the commands it runs
(the apps, redis-benchmark -P 16) and the table of ratios with their spread."""

import unittest

from sessionraft_bench import cli, clients


class ClientsPart(unittest.TestCase):
    def test_pairs_alternate_which_system_goes_first(self):
        self.assertEqual(clients.plan_clients(3), [
            (0, "sessionraft"), (0, "redis-durable"),
            (1, "redis-durable"), (1, "sessionraft"),
            (2, "sessionraft"), (2, "redis-durable")])

    def test_commands(self):
        self.assertEqual(clients.app_command("/c", "express", "127.0.0.1:9"), ["node", "/c/express/app.js", "127.0.0.1:9"])
        self.assertEqual(clients.app_command("/c", "flask", "127.0.0.1:9"),
                         ["/c/flask/.venv/bin/python", "/c/flask/app.py", "127.0.0.1:9"])
        argv = clients.pipelined_set_command("127.0.0.1", 7, 1000)
        self.assertEqual(argv[:3], ["redis-benchmark", "-P", "16"])
        for flag, value in (("-t", "set"), ("-c", "32"), ("-n", "1000"), ("-d", "200"), ("--threads", "1")):
            self.assertEqual(argv[argv.index(flag) + 1], value, flag)
        self.assertEqual(clients.DURABLE[-4:], ("--appendonly", "yes", "--appendfsync", "always"))

    def test_table_ratios_median_and_spread(self):
        recs = []
        for pair, (a, b) in enumerate([(800, 1000), (900, 1000), (400, 1000)]):
            recs.append({"pair": pair, "system": "sessionraft", "cell": "express", "status": "ok", "throughput_per_s": a})
            recs.append({"pair": pair, "system": "redis-durable", "cell": "express", "status": "ok", "throughput_per_s": b})
        recs.append({"pair": 0, "system": "sessionraft", "cell": "flask", "status": "failed", "throughput_per_s": None})
        text = clients.table(recs, 3)
        self.assertIn("| express | 1 | 800 | 1,000 | 0.80x |", text)
        self.assertIn("median 0.80x (spread 0.40-0.90x over 3 pairs)", text)
        self.assertIn("| flask | 1 | FAILED | - | - |", text)
        self.assertIn("Flask app (Flask-Session, redis-py), POST /api/counter, 32 conns: no complete pair", text)

    def test_only_clients_is_a_part(self):
        o = cli.parse_run_args(["--only", "clients", "--pairs", "4"], env={}, cwd="/tmp", root="/tmp")
        self.assertEqual((o.parts, o.pairs), (("clients",), 4))


if __name__ == "__main__":
    unittest.main()

"""sessionraft_bench: --tls and the resp-tls part (issue 28): the options, the commands over TLS,
and the part's table."""

import unittest

from sessionraft_bench import cells, cli, resp, resp_tls
from sessionraft_bench.common import Usage
from sessionraft_bench.failover import load_command


def parse(*argv):
    return cli.parse_run_args(list(argv), env={}, cwd="/w", root="/r")


def rec(pair, side, test, c, rate):
    return {"pair": pair, "side": side, "test": test, "connections": c,
            "status": "ok" if rate else "failed", "result": {"throughput_per_s": rate} if rate else None}


class OptionsTest(unittest.TestCase):
    def test_tls_flag(self):
        self.assertFalse(parse().tls)
        self.assertTrue(parse("--tls").tls)

    def test_resp_tls_is_asked_for_by_name_only(self):
        self.assertNotIn("resp-tls", parse().parts)
        self.assertEqual(parse("--only", "resp-tls").parts, ("resp-tls",))
        self.assertEqual(parse("--only", "resp,resp-tls").parts, ("resp", "resp-tls"))
        with self.assertRaises(Usage):
            parse("--only", "resp-tls", "--tls")


class CommandsTest(unittest.TestCase):
    def test_redis_benchmark_over_tls(self):
        plain = resp.benchmark_command("127.0.0.1", 7201, "set", 32, 1000)
        self.assertNotIn("--tls", plain)
        tls = resp.benchmark_command("127.0.0.1", 7201, "set", 32, 1000, tls_ca="/c/ca.crt")
        i = tls.index("--tls")
        self.assertEqual(tls[i:i + 3], ["--tls", "--cacert", "/c/ca.crt"])
        self.assertEqual(tls[-1], "--csv")

    def test_sessionraft_bench_and_load_verify_the_ca(self):
        argv = cells.bench_command("/b", "https://127.0.0.1:1", "read", 32, 10, 2, "session", ca="/c/ca.crt")
        self.assertEqual(argv[argv.index("--ca") + 1], "/c/ca.crt")
        self.assertNotIn("--ca", cells.bench_command("/b", "http://127.0.0.1:1", "read", 32, 10, 2, "session"))
        load = load_command("/b", "https://x", 40, 1, "/h", "/c/ca.crt")
        self.assertEqual(load[-2:], ["--ca", "/c/ca.crt"])


class TableTest(unittest.TestCase):
    def test_ratios_per_pair_median_and_range(self):
        records = []
        for pair, (p, t) in enumerate([(100.0, 80.0), (110.0, 77.0), (90.0, 81.0)], start=1):
            for test in ("set", "get"):
                for c in (32, 256):
                    records += [rec(pair, "plain", test, c, p), rec(pair, "tls", test, c, t)]
        md = resp_tls.table(records, "redis-benchmark 7.0.15")
        row = next(line for line in md.splitlines() if line.startswith("| SET | 32 |"))
        self.assertIn("| 100, 110, 90 | 80, 77, 81 |", row)
        self.assertIn("0.80, 0.70, 0.90", row)
        self.assertIn("| 0.80 | 0.70–0.90 |", row)
        self.assertIn("3 pair(s)", md)

    def test_a_failed_cell_is_shown_and_left_out_of_the_ratios(self):
        records = [rec(1, "plain", "get", 256, 100.0), rec(1, "tls", "get", 256, None),
                   rec(2, "plain", "get", 256, 100.0), rec(2, "tls", "get", 256, 50.0)]
        row = next(line for line in resp_tls.table(records).splitlines() if line.startswith("| GET | 256 |"))
        self.assertIn("| failed, 50 |", row)
        self.assertIn("| 0.50 | 0.50 | 0.50–0.50 |", row)


if __name__ == "__main__":
    unittest.main()

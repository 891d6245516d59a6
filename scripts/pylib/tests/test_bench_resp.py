"""The `resp` part of scripts/bench.sh (issue 20): redis-benchmark's command and its CSV (real
outputs of Debian's redis-benchmark 7.0.15 in fixtures/bench/resp/: against redis-server, against a
server without CONFIG as sessionraft's door is, and a server error), a cell's record, the generated
config with resp_addr, `--only resp`, and the raw file's "resp" with its report section and
targets."""

import json
import os
import shutil
import tempfile
import tomllib
import unittest

from sessionraft_bench import cli, report, resp, systems

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures", "bench")
RESP_FIX = os.path.join(FIX, "resp")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
OLD_FULL = os.path.join(ROOT, "bench", "raw-20261127-033612.json")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def fixture(name):
    return read(os.path.join(RESP_FIX, name))


class CommandTest(unittest.TestCase):
    def test_plan_runs_set_before_get_per_connection_count(self):
        plan = resp.plan_resp()
        self.assertEqual(plan[:4], [("sessionraft", "set", 32), ("sessionraft", "get", 32),
                                    ("sessionraft", "set", 256), ("sessionraft", "get", 256)])
        self.assertEqual([s for s, _, _ in plan[::4]], ["sessionraft", "redis-cache", "redis-durable", "etcd"])
        self.assertEqual(len(plan), 16)
        self.assertEqual(resp.LOAD_THREADS, 1)

    def test_benchmark_command(self):
        argv = resp.benchmark_command("127.0.0.1", 7201, "set", 256, 300000)
        self.assertEqual(argv, ["redis-benchmark", "-h", "127.0.0.1", "-p", "7201", "-t", "set", "-c", "256",
                                "-n", "300000", "-d", "200", "-r", "100000", "--threads", "1", "--csv"])
        self.assertNotIn("--threads", resp.benchmark_command("h", 1, "get", 32, 10, threads=None))

    def test_threads_option_is_detected_from_the_help(self):
        self.assertTrue(resp.supports_threads(" --threads <num>    Enable multi-thread mode.\n"))
        self.assertFalse(resp.supports_threads(" -c <clients>       Number of parallel connections\n"))

    def test_redis_persistence(self):
        self.assertEqual(resp.REDIS_PERSISTENCE["redis-cache"], systems.CACHE)
        self.assertEqual(resp.REDIS_PERSISTENCE["redis-durable"][-4:], ("--appendonly", "yes", "--appendfsync", "always"))

    def test_requests_for_a_duration(self):
        self.assertEqual(resp.requests_for(25000.0, 10, 32), 250000)
        self.assertEqual(resp.requests_for(10.0, 10, 256), 2560)        # at least 10 per connection
        self.assertEqual(resp.requests_for(10.0, 1, 32), resp.PROBE_MIN_REQUESTS)
        self.assertEqual(resp.requests_for(None, 10, 32), resp.PROBE_MIN_REQUESTS)
        self.assertEqual(resp.requests_for(1e9, 10, 32), resp.MAX_REQUESTS)


class ParseTest(unittest.TestCase):
    def test_real_csv(self):
        rows = resp.parse_csv(fixture("set-32.csv"))
        self.assertEqual(list(rows), ["set"])
        r = rows["set"]
        self.assertEqual(set(r), {"throughput_per_s", "avg_ms", "min_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"})
        self.assertGreater(r["throughput_per_s"], 1000)
        self.assertLessEqual(r["min_ms"], r["p50_ms"])
        self.assertLessEqual(r["p50_ms"], r["p99_ms"])
        self.assertLessEqual(r["p99_ms"], r["max_ms"])
        self.assertIn("get", resp.parse_csv(fixture("get-256.csv")))

    def test_exact_numbers_and_several_tests(self):
        text = ('"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",'
                '"max_latency_ms"\n"SET","82987.55","0.241","0.072","0.183","0.527","0.919","1.703"\n'
                '"GET","89285.71","0.204","0.048","0.175","0.375","0.855","2.063"\n')
        rows = resp.parse_csv(text)
        self.assertEqual(rows["set"], {"throughput_per_s": 82987.55, "avg_ms": 0.241, "min_ms": 0.072, "p50_ms": 0.183,
                                       "p95_ms": 0.527, "p99_ms": 0.919, "max_ms": 1.703})
        self.assertEqual(rows["get"]["throughput_per_s"], 89285.71)

    def test_redis_6_two_columns_and_noise(self):
        text = 'WARNING: Could not fetch server CONFIG\r"SET","12345.67"\n\n"GET","not a number"\n'
        self.assertEqual(resp.parse_csv(text), {"set": {"throughput_per_s": 12345.67}})
        self.assertEqual(resp.parse_csv(""), {})

    def test_server_errors(self):
        self.assertEqual(resp.server_errors(fixture("oom.err")),
                         ["Error from server: OOM command not allowed when used memory > 'maxmemory'."])
        self.assertEqual(resp.server_errors(fixture("noconfig-set.err")), [])


class RecordTest(unittest.TestCase):
    def rec(self, rc, out, err, test="set"):
        return resp.record("redis-cache", test, 32, rc, out, err, requests=20000, elapsed_s=0.25,
                           tool="redis-benchmark --threads 1", threads=1, target="127.0.0.1:6379")

    def test_ok(self):
        r = self.rec(0, fixture("set-32.csv"), fixture("set-32.err"))
        self.assertEqual(r["status"], "ok")
        self.assertIsNone(r["error"])
        self.assertEqual(r["result"]["errors"], 0)
        self.assertEqual((r["requests"], r["elapsed_s"], r["load_threads"], r["connections"]), (20000, 0.25, 1, 32))

    def test_a_server_without_config_is_fine(self):
        self.assertEqual(self.rec(0, fixture("noconfig-set.csv"), fixture("noconfig-set.err"))["status"], "ok")

    def test_a_server_error_fails_the_cell(self):
        r = self.rec(1, fixture("oom.csv"), fixture("oom.err"))
        self.assertEqual(r["status"], "failed")
        self.assertEqual(r["error"], "server error: OOM command not allowed when used memory > 'maxmemory'.")
        # even with exit 0 and a row (older versions went on after an error)
        r = self.rec(0, fixture("set-32.csv"), "Error from server: TRYAGAIN no leader\n")
        self.assertEqual((r["status"], r["error"]), ("failed", "server error: TRYAGAIN no leader"))

    def test_exit_status_and_missing_row(self):
        r = self.rec(124, "", "WARNING: Could not fetch server CONFIG\nstopped after 60 s\n")
        self.assertEqual(r["error"], "exit 124: WARNING: Could not fetch server CONFIG / stopped after 60 s")
        r = self.rec(0, fixture("set-32.csv"), "", test="get")
        self.assertEqual(r["error"], "no CSV row for GET on stdout")

    def test_etcd_record(self):
        m = {"status": "ok", "error": None, "result": {"ok": 1000, "errors": 2, "throughput_per_s": 100.0,
                                                        "p50_ms": 1.0, "p99_ms": 3.0, "max_ms": 9.0}}
        r = resp.etcd_record("etcd", "get", 256, m, tool="sessionraft bench --kind etcd --threads 1", threads=1,
                             target="http://a")
        self.assertEqual(r["result"], {"throughput_per_s": 100.0, "p50_ms": 1.0, "p99_ms": 3.0, "max_ms": 9.0,
                                       "errors": 2, "first_error": None})
        self.assertEqual((r["test"], r["requests"], r["status"]), ("get", 1000, "ok"))
        r = resp.etcd_record("etcd", "set", 32, {"status": "failed", "error": "exit 1", "result": None}, tool="t",
                             threads=1, target="x")
        self.assertEqual((r["status"], r["error"], r["result"]), ("failed", "exit 1", None))

    def test_a_binary_without_the_listener_says_so(self):
        why = ("the generated config /x/config.toml is invalid: error: invalid /x/config.toml: node[0].resp_addr: "
               "unknown field `resp_addr`, expected one of `id`")
        self.assertIn("has no Redis-protocol listener", resp.no_resp_listener(why))
        self.assertEqual(resp.no_resp_listener("the cluster did not come up"), "the cluster did not come up")

    def test_cell_line(self):
        self.assertIn("-> FAILED: why", resp.cell_line(resp.failed_record("sessionraft", "set", 32, "why", tool="t",
                                                                         threads=1, target=None)))
        self.assertIn("20,000 requests", resp.cell_line(self.rec(0, fixture("set-32.csv"), "")))


class ConfigAndCliTest(unittest.TestCase):
    def test_nodes_get_their_resp_addr(self):
        src = read(os.path.join(ROOT, "cluster.toml"))
        addrs = ["127.0.0.1:21001", "127.0.0.1:21002", "127.0.0.1:21003"]
        ra = ["127.0.0.1:22001", "127.0.0.1:22002", "127.0.0.1:22003"]
        doc = tomllib.loads(systems.cluster_config(src, "SRC", "b", "/DATA", addrs, None, ra))
        self.assertEqual([n["resp_addr"] for n in doc["node"]], ra)
        self.assertNotIn("load_balancer", doc)
        plain = tomllib.loads(systems.cluster_config(src, "SRC", "b", "/DATA", addrs))
        self.assertTrue(all("resp_addr" not in n for n in plain["node"]))

    def test_resp_is_a_part(self):
        parse = lambda *a: cli.parse_run_args(list(a), env={}, cwd="/cwd", root="/repo")  # noqa: E731
        self.assertEqual(parse("--only", "resp").parts, ("resp",))
        self.assertEqual(parse("--only", "resp,reads").parts, ("reads", "resp"))
        self.assertIn("resp", parse().parts)
        self.assertEqual(parse("smoke").parts, ("sessionraft", "redis", "etcd"))

    def test_the_help_names_it(self):
        text = cli.usage_text(os.path.join(ROOT, "scripts", "bench.sh"))
        self.assertIn("--only resp", text)
        self.assertIn("redis-benchmark", text)


def cell(system, test, c, tp, status="ok"):
    return {"system": system, "test": test, "connections": c, "status": status,
            "error": None if status == "ok" else "server error: TRYAGAIN", "load_tool": "redis-benchmark --threads 1",
            "load_threads": 1, "requests": int(tp * 10), "elapsed_s": 10.0, "target": "127.0.0.1:1", "node": None,
            "result": None if status != "ok" else {"throughput_per_s": tp, "p50_ms": 1.0, "p99_ms": 2.0,
                                                   "max_ms": 3.0, "errors": 0}}


def resp_doc(sr_set=20000.0, sr_get=50000.0, failed=()):
    cells = []
    for c in (32, 256):
        cells += [cell("sessionraft", "set", c, sr_set, "failed" if ("set", c) in failed else "ok"),
                  cell("sessionraft", "get", c, sr_get)]
        cells += [cell("redis-cache", "set", c, 80000.0), cell("redis-cache", "get", c, 90000.0)]
        cells += [cell("redis-durable", "set", c, 40000.0), cell("redis-durable", "get", c, 90000.0)]
        cells += [cell("etcd", "set", c, 10000.0), cell("etcd", "get", c, 25000.0)]
    return {"redis_benchmark": "redis-benchmark 7.0.15", "load_threads": 1, "threads_option": True,
            "keyspace": 100000, "value_bytes": 200, "sessionraft_node": 2, "sessionraft_resp_addr": "127.0.0.1:7202",
            "cells": cells}


class ReportTest(unittest.TestCase):
    def doc(self, **kw):
        d = json.loads(read(OLD_FULL))
        d["resp"] = resp_doc(**kw)
        return d

    def test_no_resp_part_no_new_targets_nor_section(self):
        d = json.loads(read(OLD_FULL))
        self.assertFalse(any(t["name"].startswith("RESP") for t in report.targets(d)))
        self.assertEqual(report.resp_section(d), [])
        self.assertNotIn("Redis protocol", report.report_markdown(d, OLD_FULL, os.path.join(ROOT, "bench", "x.md")))

    def test_targets_are_inclusive(self):
        T = [t for t in report.targets(self.doc()) if t["name"].startswith("RESP")]
        self.assertEqual([t["name"] for t in T], [
            "RESP SET ≥ 2× etcd put, 32 connections (one-thread load tools)",
            "RESP SET ≥ 2× etcd put, 256 connections (one-thread load tools)",
            "RESP GET ≥ 2× etcd linearizable range, 32 connections (one-thread load tools)",
            "RESP GET ≥ 2× etcd linearizable range, 256 connections (one-thread load tools)"])
        self.assertEqual([t["ok"] for t in T], [True, True, True, True])       # 2.00× met exactly
        self.assertEqual(T[0]["value"], 2.0)
        T = report.resp_targets(self.doc(sr_set=19999.0, sr_get=60000.0))
        self.assertEqual([t["ok"] for t in T], [False, False, True, True])

    def test_a_failed_cell_is_not_measured_with_its_reason(self):
        T = report.resp_targets(self.doc(failed=(("set", 256),)))
        self.assertIsNone(T[1]["ok"])
        self.assertIn("sessionraft: server error: TRYAGAIN", T[1]["numbers"])

    def test_the_section(self):
        L = report.resp_section(self.doc())
        text = "\n".join(L)
        self.assertIn("node 2, the leader, on its resp_addr `127.0.0.1:7202`", text)
        self.assertIn("redis-benchmark --threads 1 -t set|get", text)
        self.assertIn("| RESP SET ÷ etcd put | 2.00× | 2.00× |", L)
        self.assertIn("| RESP GET ÷ etcd linearizable range | 2.00× | 2.00× |", L)
        self.assertIn("| RESP SET ÷ Redis cache SET | 0.25× | 0.25× |", L)
        self.assertIn("| RESP SET ÷ Redis durable SET | 0.50× | 0.50× |", L)
        self.assertIn("| etcd (3 members) | range (linearizable) | 256 | 25,000 | 1.00 | 2.00 | 3.00 | 250,000 |", L)
        failed = "\n".join(report.resp_section(self.doc(failed=(("set", 32),))))
        self.assertIn("| sessionraft RESP | SET | 32 | **FAILED** (server error: TRYAGAIN) |", failed)
        md = report.report_markdown(self.doc(), OLD_FULL, os.path.join(ROOT, "bench", "x.md"))
        self.assertLess(md.index("## Redis protocol (RESP)"), md.index("## Failover"))
        self.assertIn("| RESP GET ≥ 2× etcd linearizable range, 256 connections (one-thread load tools) | met |", md)

    def test_assemble_adds_resp(self):
        work = tempfile.mkdtemp()
        try:
            self.assertNotIn("resp", report.assemble_doc(work))
            d = resp_doc()
            cells = d.pop("cells")
            with open(os.path.join(work, "resp.json"), "w") as f:
                json.dump(d, f)
            with open(os.path.join(work, "resp.jsonl"), "w") as f:
                f.write("".join(json.dumps(c) + "\n" for c in cells))
            got = report.assemble_doc(work)["resp"]
            self.assertEqual(got["cells"], cells)
            self.assertEqual(got["sessionraft_node"], 2)
        finally:
            shutil.rmtree(work)

    def test_summary_shows_the_targets(self):
        d = self.doc()
        md = report.summary_markdown([d, json.loads(read(OLD_FULL))], ["/a/raw-1.json", "/a/raw-2.json"], "/a/S.md")
        self.assertIn("| RESP SET ≥ 2× etcd put, 32 connections (one-thread load tools) | 2.00× | – |", md)


if __name__ == "__main__":
    unittest.main()

"""The `reads` part of scripts/bench.sh (issue 18): its cells and commands, the generated config
with [raft] read_consistency, `--only reads`, the raw file's "session_reads", the report's section
"Session-token reads (one-thread load tool)" with its targets, and the summary over runs with and
without it. (The section's full Markdown is compared with fixtures/bench/report/
report-variant-reads.md by test_bench_report, like every raw file's.)"""

import json
import os
import shutil
import tempfile
import tomllib
import unittest

from sessionraft_bench import cells, cli, report, systems

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures", "bench")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
H = os.path.join(FIX, "helpers")
VARIANT = os.path.join(FIX, "raw", "raw-variant-reads.json")
OLD_FULL = os.path.join(ROOT, "bench", "raw-20261127-033612.json")
ADDRS = ["127.0.0.1:21001", "127.0.0.1:21002", "127.0.0.1:21003"]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def load(path):
    with open(path) as f:
        return json.load(f)


class CellsTest(unittest.TestCase):
    def test_plan(self):
        self.assertEqual(cells.plan_reads(), [
            ("sessionraft", "session", "read", 32), ("sessionraft", "session", "read", 256),
            ("sessionraft", "session", "write", 32), ("sessionraft", "session", "write", 256),
            ("sessionraft", "linearizable", "read", 32), ("sessionraft", "linearizable", "read", 256),
            ("redis", None, "read", 32), ("redis", None, "read", 256)])
        self.assertEqual(cells.READS_LOAD_THREADS, 1)

    def test_names_and_command(self):
        self.assertEqual(cells.reads_cell_name("sessionraft", "session", "read", 32), "reads-sessionraft-session-read-32")
        self.assertEqual(cells.reads_cell_name("redis", None, "read", 256), "reads-redis-read-256")
        argv = cells.bench_command("/b/sessionraft", "http://a", "read", 32, 10, 2, "session", 200, 1)
        self.assertEqual(argv[-3:], ["--json", "--threads", "1"])
        self.assertNotIn("--threads", cells.bench_command("/b/sessionraft", "http://a", "read", 32, 10, 2, "session"))


class ConfigTest(unittest.TestCase):
    def config(self, src_text, rc):
        return systems.cluster_config(src_text, "SRC", "sessionraft-bench", "/DATA", ADDRS, rc)

    def test_each_mode_goes_under_raft_and_keeps_the_rest(self):
        src = read(os.path.join(H, "cluster.toml"))
        plain = tomllib.loads(self.config(src, None))
        self.assertNotIn("read_consistency", plain.get("raft", {}))
        for rc in ("session", "linearizable"):
            with self.subTest(mode=rc):
                text = self.config(src, rc)
                doc = tomllib.loads(text)
                self.assertEqual(doc["raft"]["read_consistency"], rc)
                self.assertEqual({k: v for k, v in doc["raft"].items() if k != "read_consistency"}, plain["raft"])
                self.assertEqual(len(doc["node"]), 3)
                self.assertNotIn("load_balancer", doc)
                lines = text.splitlines()
                self.assertEqual(lines[lines.index("[raft]") + 1], f'read_consistency = "{rc}"')
                self.assertTrue(lines[0].endswith(f"; [raft] read_consistency = {rc}"))
                # everything else is the plain config's, line for line
                rest = [x for x in lines[1:] if not x.startswith("read_consistency")]
                self.assertEqual(rest, self.config(src, None).splitlines()[1:])

    def test_a_read_consistency_of_the_source_is_replaced(self):
        src = '[cluster]\nname = "x"\n\n[raft]\nheartbeat_ms = 50\nread_consistency = "linearizable"  # old\n'
        text = self.config(src, "session")
        self.assertEqual([x for x in text.splitlines() if x.startswith("read_consistency")],
                         ['read_consistency = "session"'])
        self.assertEqual(tomllib.loads(text)["raft"], {"read_consistency": "session", "heartbeat_ms": 50})

    def test_a_source_without_raft_gets_one(self):
        text = self.config('[cluster]\nname = "x"\n\n[[node]]\nid = 9\n', "linearizable")
        doc = tomllib.loads(text)
        self.assertEqual(doc["raft"], {"read_consistency": "linearizable"})
        self.assertEqual([n["id"] for n in doc["node"]], [1, 2, 3])

    def test_the_real_cluster_toml(self):
        src = os.path.join(ROOT, "cluster.toml")
        doc = tomllib.loads(systems.cluster_config(read(src), src, "b", "/DATA", ADDRS, "linearizable"))
        self.assertEqual(doc["raft"]["read_consistency"], "linearizable")
        self.assertEqual(doc["raft"]["heartbeat_ms"], tomllib.loads(read(src))["raft"]["heartbeat_ms"])


class OnlyTest(unittest.TestCase):
    def parse(self, *argv):
        return cli.parse_run_args(list(argv), env={}, cwd="/cwd", root="/repo")

    def test_reads_is_a_part(self):
        self.assertEqual(self.parse("--only", "reads").parts, ("reads",))
        self.assertEqual(self.parse("--only", "reads,etcd").parts, ("etcd", "reads"))
        self.assertIn("reads", self.parse().parts)
        self.assertEqual(self.parse("smoke").parts, ("sessionraft", "redis", "etcd"))

    def test_the_help_names_it(self):
        text = cli.usage_text(os.path.join(ROOT, "scripts", "bench.sh"))
        self.assertIn("reads", text)
        self.assertIn("--threads 1", text)


def reads_rec(system, rc, w, c, tp, status="ok"):
    return {"system": system, "kind": "session", "workload": w, "connections": c, "status": status,
            "error": None if status == "ok" else "exit 1", "read_consistency": rc, "load_threads": 1,
            "result": None if status != "ok" else {"ok": int(tp * 10), "errors": 0, "throughput_per_s": tp,
                                                   "p50_ms": 1.0, "p99_ms": 2.0}}


class TargetsTest(unittest.TestCase):
    def test_no_reads_part_no_new_targets(self):
        d = load(OLD_FULL)
        self.assertEqual(len(report.targets(d)), 9)
        self.assertEqual(report.reads_section(d), [])

    def test_the_variant(self):
        d = load(VARIANT)
        t = report.targets(d)
        self.assertEqual(len(t), 12)
        by = {x["name"]: x for x in t[9:]}
        r32 = by["session-token reads ≥ 1.25× Redis app, 32 connections"]
        self.assertEqual((r32["ok"], r32["limit"], r32["unit"]), (True, 1.25, "×"))
        self.assertAlmostEqual(r32["value"], 27000 / 20000)
        self.assertIs(by["session-token reads ≥ 1.25× Redis app, 256 connections"]["ok"], False)
        w = by["session writes ≥ 2× etcd put, 256 connections (one-thread load tool)"]
        self.assertIs(w["ok"], True)
        self.assertAlmostEqual(w["value"], 11000 / 5237.5)
        self.assertIn("3 errors", w["numbers"])

    def test_limits_are_inclusive_and_missing_cells_not_measured(self):
        d = {"session_reads": {"load_threads": 1, "cells": [
            reads_rec("sessionraft", "session", "read", 32, 125.0), reads_rec("redis", None, "read", 32, 100.0),
            reads_rec("sessionraft", "session", "read", 256, 100.0, status="failed"),
            reads_rec("redis", None, "read", 256, 100.0),
            reads_rec("sessionraft", "session", "write", 256, 200.0)]},
            "runs": [{"system": "etcd", "workload": "write", "connections": 256, "status": "ok",
                      "result": {"throughput_per_s": 100.0, "errors": 0}}]}
        t = report.reads_targets(d)
        self.assertEqual([x["ok"] for x in t], [True, None, True])
        self.assertIsNone(t[1]["value"])
        # the linearizable cells or the Redis app's are not the ones compared
        d["session_reads"]["cells"][0]["read_consistency"] = "linearizable"
        self.assertIsNone(report.reads_targets(d)[0]["ok"])
        # without etcd's put cell, the write target is not measured
        d["runs"] = []
        self.assertIsNone(report.reads_targets(d)[2]["ok"])
        self.assertIn("etcd –/s", report.reads_targets(d)[2]["numbers"])

    def test_the_section(self):
        d = load(VARIANT)
        md = report.report_markdown(d, "/x/raw.json", "/x/R.md")
        self.assertIn("\n## Session-token reads (one-thread load tool)\n", md)
        self.assertLess(md.index("### Throughput ratios"), md.index("## Session-token reads"))
        self.assertLess(md.index("## Session-token reads"), md.index("## Failover"))
        self.assertIn("`sessionraft bench --threads 1`", md)
        self.assertIn("| sessionraft, session mode: read (GET), 32 connections | 27,000 |", md)
        self.assertIn("| lease 900 · local 17,800 · round 0 |", md)
        self.assertIn("| sessionraft, linearizable mode: read (GET), 256 connections | **FAILED** (exit 1: error: "
                      "no request succeeded \\| really) |", md)
        self.assertIn("| session reads ÷ Redis app reads | 1.35× | 1.16× |", md)
        self.assertIn("| session reads ÷ linearizable reads | 1.29× | – |", md)
        self.assertIn("| session writes ÷ etcd puts | 1.95× | 2.10× |", md)
        self.assertIn("\n2 of 12 targets met.\n", md)
        # raw files without the servers' CPU (older tools) have no CPU-per-read table
        self.assertNotIn("CPU per read", md)

    def test_cpu_per_read_table(self):
        d = {"session_reads": {"load_threads": 1, "cells": [
            reads_rec("sessionraft", "session", "read", 32, 125.0), reads_rec("redis", None, "read", 32, 100.0),
            reads_rec("sessionraft", "session", "read", 256, 100.0), reads_rec("redis", None, "read", 256, 100.0)]}}
        cells_ = d["session_reads"]["cells"]
        cells_[0]["result"]["server_cpu_us_per_op"] = 12.0
        cells_[1]["result"]["server_cpu_us_per_op"] = 30.0
        cells_[3]["result"]["server_cpu_us_per_op"] = 25.0
        L = report.reads_section(d)
        self.assertIn("| CPU per read | 32 connections | 256 connections |", L)
        self.assertIn("| sessionraft, session mode | 12.0 | – |", L)
        self.assertIn("| sessionraft, linearizable mode | – | – |", L)
        self.assertIn("| Redis app | 30.0 | 25.0 |", L)
        self.assertIn("| session mode ÷ Redis app | 0.40× | – |", L)

    def test_the_command_names_the_servers(self):
        argv = cells.bench_command("/b/sessionraft", "http://a", "read", 32, 10, 2, "session", 200, 1,
                                   server_pids=[11, 12])
        self.assertEqual(argv[argv.index("--server-pids") + 1], "11,12")
        self.assertNotIn("--server-pids", cells.bench_command("/b/sessionraft", "http://a", "read", 32, 10, 2,
                                                               "session", 200, 1))


class AssembleAndSummaryTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bench-reads-")
        self.addCleanup(shutil.rmtree, self.tmp)

    def test_assemble_adds_session_reads_last(self):
        work = os.path.join(self.tmp, "work")
        shutil.copytree(os.path.join(H, "work"), work)
        old = report.assemble_doc(work, finished="F")
        self.assertNotIn("session_reads", old)
        recs = [reads_rec("sessionraft", "session", "read", 32, 5.0), reads_rec("redis", None, "read", 32, 4.0)]
        with open(os.path.join(work, "reads.jsonl"), "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in recs))
        new = report.assemble_doc(work, finished="F")
        self.assertEqual(list(new), list(old) + ["session_reads"])
        self.assertEqual({k: v for k, v in new.items() if k != "session_reads"}, old)
        self.assertEqual(new["session_reads"], {"load_threads": 1, "cells": recs})

    def test_summary_over_runs_with_and_without_the_part(self):
        raws = [OLD_FULL, VARIANT]
        out = os.path.join(self.tmp, "S.md")
        report.write_summary(out, raws)
        md = read(out)
        row = next(x for x in md.splitlines() if x.startswith("| session-token reads ≥ 1.25× Redis app, 32 connections |"))
        self.assertEqual(row, "| session-token reads ≥ 1.25× Redis app, 32 connections | – | 1.35× | **1.35×** | 1 of 2 | met |")
        self.assertIn("targets met on the median", md)
        self.assertIn(" of 12 targets met on the median", md)


if __name__ == "__main__":
    unittest.main()

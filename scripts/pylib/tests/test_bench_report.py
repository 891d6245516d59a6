"""sessionraft_bench.report: the Markdown of raw files, the summary, the A/B table and the raw
file of a run, compared byte for byte with what the original scripts/bench.sh wrote (the
fixtures in fixtures/bench/, made by fixtures/bench/make.sh from its heredoc)."""

import glob
import json
import math
import os
import shutil
import tempfile
import unittest

from sessionraft_bench import report

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures", "bench")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
COMMITTED_RAWS = sorted(glob.glob(os.path.join(ROOT, "bench", "raw-*.json")))
SYNTHETIC_RAWS = sorted(glob.glob(os.path.join(FIX, "raw", "raw-*.json")))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class Tmp(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bench-test-")
        self.addCleanup(shutil.rmtree, self.tmp)

    def raw_here(self, name):
        """The raw file NAME (committed or synthetic) copied into the temp dir (the report names
        it relative to the Markdown, as in the fixtures)."""
        for p in COMMITTED_RAWS + SYNTHETIC_RAWS:
            if os.path.basename(p) == name:
                dst = os.path.join(self.tmp, name)
                shutil.copy(p, dst)
                return dst
        self.fail(f"no raw file {name}")


class ReportTest(Tmp):
    def test_there_are_raw_files_and_fixtures_for_each(self):
        self.assertGreaterEqual(len(COMMITTED_RAWS), 16)
        for p in COMMITTED_RAWS + SYNTHETIC_RAWS:
            stamp = os.path.basename(p)[len("raw-"):-len(".json")]
            self.assertTrue(os.path.exists(os.path.join(FIX, "report", f"report-{stamp}.md")), p)

    def test_report_of_every_raw_file_is_the_old_scripts(self):
        for p in COMMITTED_RAWS + SYNTHETIC_RAWS:
            name = os.path.basename(p)
            stamp = name[len("raw-"):-len(".json")]
            with self.subTest(raw=name):
                raw = self.raw_here(name)
                out = os.path.join(self.tmp, f"report-{stamp}.md")
                self.assertEqual(report.write_report(raw, out), out)
                self.assertEqual(read(out), read(os.path.join(FIX, "report", f"report-{stamp}.md")))

    def test_report_names_the_raw_file_relative_to_the_output(self):
        raw = self.raw_here("raw-variant-empty.json")
        out = os.path.join(self.tmp, "sub", "dir", "R.md")
        report.write_report(raw, out)
        self.assertIn("Raw numbers: `../../raw-variant-empty.json`.", read(out))

    def test_report_marks_failed_cells_and_short_runs(self):
        with open(os.path.join(FIX, "raw", "raw-variant-quick.json")) as f:
            d = json.load(f)
        md = report.report_markdown(d, "/x/raw.json", "/x/R.md")
        self.assertIn("**Short cells (3 s each)", md)
        self.assertIn("| Redis app (actix-session + Redis) | **FAILED** (exit 1: bench: setup \\| target down", md)
        self.assertIn("| etcd (3 members) | not run |", md)
        self.assertIn("## Problems during the run", md)


class SummaryTest(Tmp):
    def test_summaries_are_the_old_scripts(self):
        with open(os.path.join(FIX, "summary", "inputs.json")) as f:
            sets = json.load(f)
        self.assertTrue(sets)
        for out_name, names in sets.items():
            with self.subTest(summary=out_name):
                raws = [self.raw_here(n) for n in names]
                out = os.path.join(self.tmp, out_name)
                report.write_summary(out, raws)
                self.assertEqual(read(out), read(os.path.join(FIX, "summary", out_name)))

    def test_summary_value(self):
        v = report.summary_value
        self.assertEqual(v(None, "×"), "–")
        self.assertEqual(v(math.inf, "ms"), "failed")
        self.assertEqual(v(0.996, "×", 1.0), "0.996×")   # not 1.00×, which would read as met
        self.assertEqual(v(1.0, "×", 1.0), "1.00×")
        self.assertEqual(v(1.234, "×", 1.5), "1.23×")
        self.assertEqual(v(1234.4, "ms"), "1,234 ms")
        self.assertEqual(v(8.845, "s"), "8.85 s")
        self.assertEqual(v(104.0, "MiB"), "104.0 MiB")


class TargetsTest(unittest.TestCase):
    def doc(self):
        with open(os.path.join(ROOT, "bench", "raw-20261127-033612.json")) as f:
            return json.load(f)

    def test_a_full_run_has_nine_targets_with_verdicts(self):
        t = report.targets(self.doc())
        self.assertEqual(len(t), 9)
        self.assertTrue(all(x["ok"] in (True, False) for x in t))
        by = {x["name"]: x for x in t}
        f = by["failover p50 ≤ 500 ms"]
        self.assertEqual((f["value"], f["ok"], f["unit"]), (391, True, "ms"))
        self.assertEqual(by["catch-up of 1M sessions ≤ 10 s"]["unit"], "s")
        self.assertEqual(by["RSS ≤ 256 MiB per node at 1M sessions"]["value"], 106480 / 1024)

    def test_ratio_targets_compare_against_their_limit(self):
        d = self.doc()
        for r in d["runs"]:
            if r["system"] == "etcd" and r["workload"] == "write" and r["connections"] == 32:
                sr = report.tput_of(d, "sessionraft", "write", 32)
                r["result"]["throughput_per_s"] = sr / 1.5  # exactly the limit: met
            if r["system"] == "etcd" and r["workload"] == "write" and r["connections"] == 256:
                r["status"] = "failed"                       # not measured
        by = {x["name"]: x for x in report.targets(d)}
        self.assertIs(by["session writes ≥ 1.5× etcd put, 32 connections"]["ok"], True)
        self.assertAlmostEqual(by["session writes ≥ 1.5× etcd put, 32 connections"]["value"], 1.5)
        self.assertIsNone(by["session writes ≥ 1.5× etcd put, 256 connections"]["ok"])
        self.assertIsNone(by["session writes ≥ 1.5× etcd put, 256 connections"]["value"])

    def test_failover_without_success_is_infinite_and_not_met(self):
        d = self.doc()
        d["failover"]["p50_ms"] = None
        by = {x["name"]: x for x in report.targets(d)}
        self.assertEqual(by["failover p50 ≤ 500 ms"]["value"], math.inf)
        self.assertIs(by["failover p50 ≤ 500 ms"]["ok"], False)

    def test_catchup_below_1m_sessions_is_not_a_verdict(self):
        d = self.doc()
        d["catchup"]["sessions"] = 1000
        by = {x["name"]: x for x in report.targets(d)}
        self.assertIsNone(by["catch-up of 1M sessions ≤ 10 s"]["ok"])
        self.assertIn("(not the 1M of the target)", by["catch-up of 1M sessions ≤ 10 s"]["numbers"])
        self.assertIsNone(by["RSS ≤ 256 MiB per node at 1M sessions"]["ok"])

    def test_verdict(self):
        self.assertEqual(report.verdict(True), "met")
        self.assertEqual(report.verdict(False), "**NOT met**")
        self.assertEqual(report.verdict(None), "**NOT measured**")


class NumbersTest(unittest.TestCase):
    def test_ratio(self):
        self.assertEqual(report.ratio(3, 2), 1.5)
        self.assertIsNone(report.ratio(None, 2))
        self.assertIsNone(report.ratio(3, 0))
        self.assertIsNone(report.ratio(3, None))

    def test_nearest_rank_p50_takes_the_lower_middle(self):
        self.assertEqual(report.nearest_rank_p50([1]), 1)
        self.assertEqual(report.nearest_rank_p50([1, 2]), 1)
        self.assertEqual(report.nearest_rank_p50([1, 2, 3]), 2)
        self.assertEqual(report.nearest_rank_p50([1, 2, 3, 4]), 2)

    def test_median_skips_missing_values(self):
        self.assertEqual(report.median_or_none([None, 1.0, 3.0]), 2.0)
        self.assertIsNone(report.median_or_none([None]))

    def test_failover_stats(self):
        ok = lambda ms: {"ok": True, "ms": ms}  # noqa: E731
        bad = {"ok": False, "ms": 30001}
        self.assertEqual(report.failover_stats([]), {})
        self.assertEqual(report.failover_stats([ok(400), ok(300), ok(500)]),
                         {"p50_ms": 400, "max_ms": 500, "failed_trials": 0})
        self.assertEqual(report.failover_stats([ok(400), bad]), {"p50_ms": 400, "max_ms": None, "failed_trials": 1})
        self.assertEqual(report.failover_stats([bad, bad, ok(1)]), {"p50_ms": None, "max_ms": None, "failed_trials": 2})

    def test_formats(self):
        self.assertEqual(report.ms(12.345), "12.35")
        self.assertEqual(report.ms(1234.5), "1,234")
        self.assertEqual(report.n0(12345.6), "12,346")
        self.assertEqual(report.mib(2048), "2.0 MiB")
        self.assertEqual(report.secs(8845), "8.85 s")
        self.assertEqual(report.rx(None), "–")


class CompareTest(unittest.TestCase):
    def test_compare_markdown_is_the_old_scripts(self):
        expected = read(os.path.join(FIX, "helpers", "compare.expected.md"))
        when = expected.split(" on ", 1)[1].split(",", 1)[0]  # the old script's clock
        md = report.compare_markdown(report.read_jsonl(os.path.join(FIX, "helpers", "compare-runs.jsonl")),
                                     a="/a/sessionraft", b="/b/sessionraft", git="0123456789ab", nproc=2,
                                     warmup=1, duration=3, when=when)
        self.assertEqual(md, expected)

    def test_one_pair_median_is_its_ratio(self):
        rec = lambda side, tp: {"system": f"sessionraft-{side}-1", "workload": "write", "connections": 4,  # noqa: E731
                                "status": "ok", "error": None,
                                "result": {"throughput_per_s": tp, "p50_ms": 1.0}}
        md = report.compare_markdown([rec("A", 1000.0), rec("B", 1100.0)], a="a", b="b", git="g", nproc=2,
                                     warmup=1, duration=2, when="T")
        row = next(line for line in md.splitlines() if line.startswith("| write | 4 |"))
        self.assertEqual(row, "| write | 4 | 1,000 | 1,100 | 1.10 | 1.10× | 1.00 → 1.00 |")
        self.assertNotIn("Failed cells", md)


class AssembleTest(Tmp):
    def test_assemble_is_the_old_scripts(self):
        work = os.path.join(FIX, "helpers", "work")
        with open(os.path.join(FIX, "helpers", "assemble.expected.json")) as f:
            expected = json.load(f)
        raw = os.path.join(self.tmp, "raw.json")
        report.assemble(work, raw)
        with open(raw) as f:
            got = json.load(f)
        self.assertNotEqual(got["finished"], "")
        got["finished"] = expected["finished"]
        self.assertEqual(got, expected)
        self.assertEqual(list(got), list(expected))  # the same order of keys
        self.assertEqual(got["failover"]["failed_trials"], 1)
        self.assertEqual(got["problems"], ["first problem", "second: a | b"])

    def test_assemble_of_an_empty_run(self):
        doc = report.assemble_doc(self.tmp, finished="F")
        self.assertEqual(doc, {"finished": "F", "runs": [], "failover": None, "catchup": None,
                               "memory": {"after_catchup": [], "after_matrix": []}, "problems": []})


if __name__ == "__main__":
    unittest.main()

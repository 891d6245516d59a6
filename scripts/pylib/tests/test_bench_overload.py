"""The `overload` part of scripts/bench.sh (issue 29): the open loop's command, the request
deadline from the config, VmRSS, and the targets and section made from the part's record."""

import os
import tempfile
import unittest

from sessionraft_bench import cli, overload, report


def record(**over):
    ov = {"factor": 3.0, "sessions": 4096, "request_deadline_ms": 3000, "capacity_duration_s": 5,
          "overload_duration_s": 20, "rate_per_s": 15000, "open_loop_status": "ok",
          "capacity": {"throughput_per_s": 5000.0, "ok": 25000, "errors": 0, "p50_ms": 5, "p99_ms": 20},
          "open_loop": {"mode": "open-loop", "rate_per_s": 15000, "sessions": 4096, "duration_s": 20.0,
                        "warmup_s": 2.0, "scheduled": 300000, "sent": 300000, "not_sent_in_flight_cap": 0,
                        "max_in_flight": 900, "ok": 95000, "refused_503": 205000, "unknown_504": 0,
                        "other_status": {}, "transport_errors": 0, "errors": 205000, "throughput_per_s": 4750.0,
                        "p50_ms": 40.0, "p99_ms": 800.0, "max_ms": 2900.0, "mean_ms": 60.0, "refused_p50_ms": 1.0,
                        "refused_p99_ms": 4.0, "dispatch_lag_p99_ms": 1.2, "dispatch_lag_max_ms": 9.0,
                        "load_cpu_percent": 60.0, "machine_cpu_busy_percent": 98.0,
                        "check": {"sessions_checked": 4096, "sessions_unreadable": 0, "lost_writes": 0,
                                  "sessions_with_lost_writes": 0, "invented_writes": 0,
                                  "sessions_with_invented_writes": 0, "first_problem": None},
                        "first_error": "HTTP 503: overloaded"},
          "max_rss_kib": {"1": 120000, "2": 90000, "3": 95000}}
    ov.update(over)
    return ov


class Commands(unittest.TestCase):
    def test_open_loop_command(self):
        argv = overload.open_loop_command("/b/sessionraft", "http://a,http://b", 15000, 4096, 20, 2)
        self.assertEqual(argv[:2], ["/b/sessionraft", "bench"])
        for flag, value in (("--rate", "15000"), ("--connections", "4096"), ("--duration", "20"), ("--warmup", "2"),
                            ("--workload", "write"), ("--kind", "session"), ("--targets", "http://a,http://b")):
            self.assertEqual(argv[argv.index(flag) + 1], value, flag)
        self.assertIn("--json", argv)
        self.assertNotIn("--ca", argv)
        self.assertEqual(overload.open_loop_command("b", "https://a", 1, 1, 1, 0, ca="/c.crt")[-2:], ["--ca", "/c.crt"])

    def test_rate_is_a_multiple_of_capacity(self):
        self.assertEqual(overload.open_loop_rate(4999.6), 14999)
        self.assertEqual(overload.open_loop_rate(100, 2.5), 250)
        self.assertEqual(overload.open_loop_rate(0), 1)

    def test_request_deadline_from_the_config(self):
        self.assertEqual(overload.request_deadline_ms("[raft]\nrequest_deadline_ms = 2500\n"), 2500)
        self.assertEqual(overload.request_deadline_ms("[cluster]\nname = 'x'\n"), 3000)
        root = cli.root_dir()
        with open(os.path.join(root, "cluster.toml")) as f:
            self.assertGreater(overload.request_deadline_ms(f.read()), 0)

    def test_vm_rss(self):
        text = "Name:\tsessionraft\nVmPeak:\t 900000 kB\nVmRSS:\t  123456 kB\nVmHWM:\t 200000 kB\n"
        self.assertEqual(overload.vm_rss_kib(text), 123456)
        self.assertIsNone(overload.vm_rss_kib("Name:\tkthreadd\n"))


class Targets(unittest.TestCase):
    def verdicts(self, ov):
        return {t["name"]: t["ok"] for t in overload.targets(ov)}

    def test_all_met(self):
        v = self.verdicts(record())
        self.assertEqual(list(v.values()), [True, True, True, True], v)
        served = overload.targets(record())[0]
        self.assertAlmostEqual(served["value"], 0.95)
        self.assertIn("4,750/s served of 15,000/s offered", served["numbers"])

    def test_each_target_can_fail(self):
        ol = record()["open_loop"]
        v = list(self.verdicts(record(open_loop={**ol, "throughput_per_s": 4000.0})).values())
        self.assertEqual(v[0], False)
        v = list(self.verdicts(record(open_loop={**ol, "p99_ms": 3100.0})).values())
        self.assertEqual(v[1], False)
        v = list(self.verdicts(record(max_rss_kib={"1": 300000, "2": 1, "3": 1})).values())
        self.assertEqual(v[2], False)
        lost = {**ol["check"], "lost_writes": 2, "first_problem": "session 9: counter 3, but 5 increments were acknowledged"}
        t = overload.targets(record(open_loop={**ol, "check": lost}))[3]
        self.assertEqual(t["ok"], False)
        self.assertIn("2 acknowledged writes lost", t["numbers"])
        unreadable = {**ol["check"], "sessions_unreadable": 1}
        self.assertEqual(overload.targets(record(open_loop={**ol, "check": unreadable}))[3]["ok"], False)

    def test_not_measured(self):
        v = self.verdicts(record(open_loop=None, open_loop_status="failed", max_rss_kib={}))
        self.assertEqual(list(v.values()), [None, None, None, None])
        # RSS of two nodes only is not a verdict on "per node"
        self.assertIsNone(list(self.verdicts(record(max_rss_kib={"1": 1, "2": 1})).values())[2])


class Section(unittest.TestCase):
    def test_section_and_raw_document(self):
        text = "\n".join(overload.section(record()))
        self.assertIn("## Open-loop overload (issue 29)", text)
        self.assertIn("| 503 (refused, not applied) | 205,000 |", text)
        self.assertIn("| admitted latency p50 / p99 / max | 40.0 ms / 800.0 ms / 2900.0 ms |", text)
        self.assertNotIn("in-flight cap was hit", text)
        ol = record()["open_loop"]
        text = "\n".join(overload.section(record(open_loop={**ol, "not_sent_in_flight_cap": 7})))
        self.assertIn("**The in-flight cap was hit**", text)
        served = overload.targets(record(open_loop={**ol, "not_sent_in_flight_cap": 7}))[0]
        self.assertTrue(served["numbers"].endswith("; in-flight cap hit: 7 arrivals not sent"), served["numbers"])
        with tempfile.TemporaryDirectory() as work:
            self.assertEqual(report.overload_doc(work), {})
            with open(os.path.join(work, "overload.json"), "w") as f:
                import json
                json.dump(record(), f)
            d = report.overload_doc(work)
            self.assertEqual(d["overload"]["rate_per_s"], 15000)
            names = [t["name"] for t in report.targets(d)]
            self.assertIn("open loop: no acknowledged write lost", names)
            self.assertEqual(report.summary_value(0, "writes"), "0")

    def test_options(self):
        o = cli.parse_run_args(["--only", "overload", "--overload-duration", "3", "--capacity-duration", "2"],
                               env={}, cwd="/tmp", root="/tmp")
        self.assertEqual((o.parts, o.overload_duration, o.capacity_duration), (("overload",), 3, 2))
        o = cli.parse_run_args([], env={}, cwd="/tmp", root="/tmp")
        self.assertEqual((o.overload_duration, o.capacity_duration), (20, 5))
        self.assertIn("overload", o.parts)
        for bad in (["--overload-duration", "0"], ["--capacity-duration", "x"]):
            with self.assertRaises(cli.Usage):
                cli.parse_run_args(bad, env={}, cwd="/tmp", root="/tmp")


if __name__ == "__main__":
    unittest.main()

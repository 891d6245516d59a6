"""sessionraft_chaos.record: faults.jsonl / faults.tsv and the printed table."""

import io
import json
import tempfile
import unittest
from pathlib import Path
from unittest import mock

from sessionraft_chaos import record
from sessionraft_chaos.record import Recorder, fault_table, fmt_s, read_tsv


class RecordTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = Path(self.tmp.name)
        self.stream = io.StringIO()

    def tearDown(self):
        self.tmp.cleanup()

    def test_fmt_s(self):
        self.assertEqual([fmt_s(0), fmt_s(1234), fmt_s(5), fmt_s(-50), fmt_s(-61005)],
                         ["0.000", "1.234", "0.005", "-0.050", "-61.005"])

    def test_files_start_empty(self):
        (self.out / "faults.jsonl").write_text("old\n")
        Recorder(self.out)
        self.assertEqual((self.out / "faults.jsonl").read_text(), "")
        self.assertEqual((self.out / "faults.tsv").read_text(), "")

    def test_windows_are_written_when_they_close(self):
        times = iter([1000, 1500, 2600, 3000])
        with mock.patch.object(record, "now_ms", lambda: next(times)):
            rec = Recorder(self.out, self.stream)  # t0 1000
            rec.begin("pause", 2, "SIGSTOP pid 9 (leader node) for 3s")
            self.assertEqual((self.out / "faults.jsonl").read_text(), "")
            rec.add_detail("more")
            rec.end("SIGCONT")
            rec.end("twice: nothing")
            rec.record("disk-full-restart", 3, 2000, 3000, "a\tb")
        lines = (self.out / "faults.jsonl").read_text().splitlines()
        self.assertEqual(lines[0], '{"name": "pause", "node": 2, "start_ms": 1500, "end_ms": 2600}')
        self.assertEqual(json.loads(lines[1]), {"name": "disk-full-restart", "node": 3,
                                                "start_ms": 2000, "end_ms": 3000})
        self.assertEqual(len(lines), 2)
        self.assertEqual((self.out / "faults.tsv").read_text(),
                         "pause\t2\t1500\t2600\tSIGSTOP pid 9 (leader node) for 3s; more; SIGCONT\n"
                         "disk-full-restart\t3\t2000\t3000\ta b\n")

    def test_a_line_break_in_a_detail_stays_in_its_row(self):
        # seen in a real mixed run: a log line ending after "installed id=2-2-203" made the
        # detail span two lines, and the end-of-run table failed on the half row
        rec = Recorder(self.out, self.stream)
        rec.record("wipe-and-rejoin", 1, 10, 20, "through a snapshot (installed id=2-2-203\n), applied 203")
        rows = read_tsv(self.out / "faults.tsv")
        self.assertEqual(rows, [["wipe-and-rejoin", "1", "10", "20",
                                 "through a snapshot (installed id=2-2-203 ), applied 203"]])
        self.assertEqual(len(fault_table(rows, 0)), 2)

    def test_end_without_detail_and_say(self):
        times = iter([0, 100, 200, 12345])
        with mock.patch.object(record, "now_ms", lambda: next(times)):
            rec = Recorder(self.out, self.stream)
            rec.begin("rolling-restart", 1)
            rec.end("back in service")
            rec.say("hello")
        self.assertTrue((self.out / "faults.tsv").read_text().endswith("\tback in service\n"))
        self.assertEqual(self.stream.getvalue(), "[  12.345s] hello\n")

    def test_table(self):
        (self.out / "faults.tsv").write_text("kill-leader\t2\t11000\t14500\tSIGKILL pid 5\n"
                                             "pause\t1\t20000\t23250\t\n")
        lines = fault_table(read_tsv(self.out / "faults.tsv"), 10000)
        self.assertEqual(lines, [
            "  #   fault                  node     start       end   length  detail",
            "  1   kill-leader            2        1.000     4.500   3.500s  SIGKILL pid 5",
            "  2   pause                  1       10.000    13.250   3.250s  ",
        ])
        self.assertEqual(fault_table([], 0)[1:], ["  (none)"])

    def test_table_with_the_checkers_figures(self):
        rows = [["partition-leader", "2", "11000", "16000", "healed"],
                ["pause-follower", "3", "20000", "23250", ""]]
        impacts = [
            {"name": "partition-leader", "window_ms": 1505.25, "term_before": 2, "term_after": 3,
             "elections": [{"t_ms": 11800, "from_term": 2, "to_term": 3, "leader": 1}],
             "long_requests": {"count": 7, "slowest_ms": 3000}},
            # an old run checked without --terms: no elections, no terms
            {"name": "pause-follower", "window_ms": 0, "elections": None, "term_before": None,
             "term_after": None, "long_requests": {"count": 0, "slowest_ms": 4.5}},
        ]
        self.assertEqual(fault_table(rows, 10000, impacts), [
            "  #   fault                  node     start       end   length    window elect"
            "      term  >1s  detail",
            "  1   partition-leader       2        1.000     6.000   5.000s    1.505s     1"
            "      2->3    7  healed",
            "  2   pause-follower         3       10.000    13.250   3.250s    0.000s     -"
            "         -    0  ",
        ])
        # fewer figures than rows (a checker that failed half-way): dashes
        self.assertTrue(fault_table(rows, 10000, impacts[:1])[2].endswith(
            "       -     -         -    -  "))


if __name__ == "__main__":
    unittest.main()

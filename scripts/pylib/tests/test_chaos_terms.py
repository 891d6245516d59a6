"""sessionraft_chaos.terms: the lines of terms.jsonl and the sampler's threads (a fake fetch,
no cluster)."""

import json
import tempfile
import threading
import time
import unittest
from pathlib import Path
from unittest import mock

from sessionraft_chaos import terms
from sessionraft_chaos.terms import TermSampler, sample_line

STATUS = json.dumps({"id": 2, "role": "follower", "term": 5, "leader": 3, "applied_index": 9})


class SampleLineTest(unittest.TestCase):
    def test_an_answer(self):
        self.assertEqual(json.loads(sample_line(1234, 2, 200, STATUS)),
                         {"t_ms": 1234, "node": 2, "term": 5, "leader": 3, "role": "follower"})
        candidate = json.dumps({"role": "candidate", "term": 6, "leader": None})
        self.assertEqual(json.loads(sample_line(1, 1, 200, candidate)),
                         {"t_ms": 1, "node": 1, "term": 6, "leader": None, "role": "candidate"})

    def test_no_answer_or_no_term_is_unreachable(self):
        want = {"t_ms": 7, "node": 3, "term": None, "leader": None, "role": "unreachable"}
        for code, body in ((0, "timed out"), (503, STATUS), (200, "not json"), (200, "{}")):
            self.assertEqual(json.loads(sample_line(7, 3, code, body)), want, (code, body))


class SamplerTest(unittest.TestCase):
    def test_every_node_sampled_and_a_silent_one_does_not_hold_up_the_others(self):
        gate = threading.Event()

        def fetch(url, timeout):
            self.assertEqual(timeout, 0.3)
            self.assertTrue(url.endswith("/cluster/status"), url)
            if "node3" in url:  # paused: answers only after its timeout
                gate.wait(timeout)
                return 0, "timed out"
            return 200, STATUS

        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "terms.jsonl"
            s = TermSampler(path, {n: f"http://node{n}" for n in (1, 2, 3)}, interval_s=0.02,
                            fetch=fetch)
            s.start()
            time.sleep(0.35)
            s.stop()
            lines = [json.loads(x) for x in path.read_text().splitlines()]
            s.stop()  # twice: nothing
        by_node = {n: [x for x in lines if x["node"] == n] for n in (1, 2, 3)}
        # ~17 rounds each for the nodes that answer, one or two for the silent one
        self.assertGreaterEqual(len(by_node[1]), 8)
        self.assertGreaterEqual(len(by_node[2]), 8)
        self.assertLessEqual(len(by_node[3]), 2)
        self.assertGreaterEqual(len(by_node[3]), 1)
        self.assertTrue(all(x["term"] == 5 for x in by_node[1] + by_node[2]))
        self.assertTrue(all(x["role"] == "unreachable" for x in by_node[3]))
        times = [x["t_ms"] for x in by_node[1]]
        self.assertEqual(times, sorted(times))

    def test_t_ms_is_the_history_clock(self):
        with tempfile.TemporaryDirectory() as d, \
                mock.patch.object(terms, "now_ms", lambda: 1718000000123):
            path = Path(d) / "terms.jsonl"
            s = TermSampler(path, {1: "http://n1"}, fetch=lambda u, t: (200, STATUS))
            s.start()
            time.sleep(0.05)
            s.stop()
            self.assertEqual(json.loads(path.read_text().splitlines()[0])["t_ms"],
                             1718000000123)


if __name__ == "__main__":
    unittest.main()

"""The `wrk` part of scripts/bench.sh (issue 29): the generated Lua script, wrk's command and the
parsing of its output (its own text and the JSON line the script's done() prints)."""

import json
import unittest

from sessionraft_bench import cli, clients, wrk

# wrk 4.1's output with --latency (a run against the Express app: some non-2xx answers and
# socket errors), then the line the generated done() prints
OUTPUT = """Running 3s test @ http://127.0.0.1:23456/api/counter
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.87ms    2.10ms  45.20ms   81.25%
    Req/Sec     3.26k   210.33     3.60k    73.33%
  Latency Distribution
     50%    9.50ms
     75%   10.80ms
     90%   12.40ms
     99%   18.91ms
  9765 requests in 3.00s, 2.61MB read
  Non-2xx or 3xx responses: 15
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:   3254.12
Transfer/sec:      0.87MB
{"wrk": {"duration_us": 3000512, "requests": 9765, "bytes": 2736000, "connect": 0, "read": 2, "write": 0, "status": 15, "timeout": 1, "p50_us": 9500, "p99_us": 18910, "max_us": 45200, "mean_us": 9870}}
"""


class LuaScript(unittest.TestCase):
    def test_requests_go_round_robin_over_the_cookies_with_their_method(self):
        s = wrk.lua_script("GET", "/api/counter", ["id=a+b/c=", "id=d"])
        self.assertIn('local cookies = {\n  "id=a+b/c=",\n  "id=d",\n}', s)
        self.assertIn("n = n % #cookies + 1", s)
        self.assertIn('return wrk.format("GET", "/api/counter", { ["Cookie"] = cookies[n] }, nil)', s)
        # a POST carries an empty body, so wrk sends Content-Length: 0
        p = wrk.lua_script("POST", "/api/counter", ["connect.sid=s%3Aabc.def"])
        self.assertIn('return wrk.format("POST", "/api/counter", { ["Cookie"] = cookies[n] }, "")', p)
        self.assertIn("done = function(summary, latency, requests)", p)
        self.assertIn("latency:percentile(99)", p)

    def test_values_are_escaped_and_refused_when_they_cannot_be(self):
        self.assertEqual(wrk.lua_string('a"b\\c'), '"a\\"b\\\\c"')
        with self.assertRaises(ValueError):
            wrk.lua_string("a\nb")
        with self.assertRaises(ValueError):
            wrk.lua_script("GET", "/api/counter", [])
        with self.assertRaises(ValueError):
            wrk.lua_script("DELETE", "/api/counter", ["id=x"])

    def test_the_done_line_is_json_once_filled_in(self):
        # the format string of done(), filled as Lua's string.format would
        s = wrk.lua_script("GET", "/", ["id=x"])
        fmt = s[s.index("string.format('") + len("string.format('"):s.index("\\n',")]
        line = fmt.replace("%d", "1")
        self.assertEqual(json.loads(line)["wrk"]["p99_us"], 1)


class Command(unittest.TestCase):
    def test_one_thread_n_connections_d_seconds(self):
        self.assertEqual(wrk.wrk_command("http://h:1/api/counter", 256, 10, "/w/x.lua"),
                         ["wrk", "-t", "1", "-c", "256", "-d", "10s", "--timeout", "10s", "--latency", "-s",
                          "/w/x.lua", "http://h:1/api/counter"])
        self.assertEqual(wrk.cell_connections("reads-256"), 256)
        self.assertEqual(wrk.cell_connections("express-32"), 32)


class Parsing(unittest.TestCase):
    def test_durations(self):
        self.assertAlmostEqual(wrk.wrk_ms("812.00us"), 0.812)
        self.assertEqual(wrk.wrk_ms("1.50ms"), 1.5)
        self.assertEqual(wrk.wrk_ms("2.00s"), 2000.0)
        self.assertEqual(wrk.wrk_ms("1.00m"), 60000.0)
        with self.assertRaises(ValueError):
            wrk.wrk_ms("fast")

    def test_wrks_own_text(self):
        t = wrk.parse_wrk_text(OUTPUT)
        self.assertEqual((t["requests"], t["seconds"], t["requests_per_s"]), (9765, 3.0, 3254.12))
        self.assertEqual((t["non_2xx"], t["connect"], t["read"], t["write"], t["timeout"]), (15, 0, 2, 0, 1))
        self.assertEqual((t["latency_avg_ms"], t["p50_ms"], t["p99_ms"]), (9.87, 9.5, 18.91))
        # a clean run prints neither the non-2xx nor the socket error line
        clean = "\n".join(x for x in OUTPUT.splitlines() if "Non-2xx" not in x and "Socket" not in x)
        t = wrk.parse_wrk_text(clean)
        self.assertEqual((t["non_2xx"], t["read"], t["timeout"]), (0, 0, 0))
        self.assertEqual(wrk.parse_wrk_text("unable to connect to 127.0.0.1:1 Connection refused"), {})

    def test_a_cell_counts_2xx_only(self):
        r, why = wrk.cell_result(OUTPUT)
        self.assertIsNone(why)
        self.assertEqual((r["ok"], r["errors"]), (9750, 18))
        self.assertAlmostEqual(r["throughput_per_s"], round(9750 / 3.000512, 1))
        self.assertEqual((r["p50_ms"], r["p99_ms"], r["max_ms"]), (9.5, 18.91, 45.2))
        self.assertEqual(r["wrk_requests_per_s"], 3254.12)

    def test_a_cell_without_the_json_or_without_a_2xx_fails_with_why(self):
        r, why = wrk.cell_result(OUTPUT.rsplit("{", 1)[0])
        self.assertIsNone(r)
        self.assertIn("no JSON line", why)
        bad = OUTPUT.replace('"status": 15', '"status": 9765')
        r, why = wrk.cell_result(bad)
        self.assertIsNone(r)
        self.assertIn("no 2xx answer (9765 non-2xx", why)

    def test_set_cookie(self):
        h = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nSet-Cookie: id=abc.12; HttpOnly; Path=/\r\n\r\n"
        self.assertEqual(wrk.set_cookie_pair(h), "id=abc.12")
        self.assertIsNone(wrk.set_cookie_pair("HTTP/1.1 503 Service Unavailable\r\n\r\n"))


class Plan(unittest.TestCase):
    def test_pairs_alternate_and_the_table_has_every_cell(self):
        self.assertEqual(clients.plan_clients(2, wrk.SYSTEMS),
                         [(0, "sessionraft"), (0, "baseline"), (1, "baseline"), (1, "sessionraft")])
        recs = [{"pair": 0, "system": "sessionraft", "cell": "reads-32", "status": "ok", "throughput_per_s": 3000},
                {"pair": 0, "system": "baseline", "cell": "reads-32", "status": "ok", "throughput_per_s": 2000}]
        text = wrk.table(recs, 1, "follower")
        self.assertIn("| reads-32 | 1 | 3,000 | 2,000 | 1.50x |", text)
        self.assertIn("sessionraft's read cells on one node (a follower)", text)
        for cell in wrk.CELLS:
            self.assertIn(wrk.CELL_LABELS[cell], text)

    def test_only_wrk_is_a_part_on_demand(self):
        o = cli.parse_run_args(["--only", "wrk"], env={}, cwd="/tmp", root="/tmp")
        self.assertEqual(o.parts, ("wrk",))
        self.assertNotIn("wrk", cli.parse_run_args([], env={}, cwd="/tmp", root="/tmp").parts)


if __name__ == "__main__":
    unittest.main()

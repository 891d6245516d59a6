"""The `resp-tls` part (issue 28), asked for by name only (`--only resp-tls`): sessionraft's
Redis protocol with TLS against without, on this machine, in one run.

Each pair starts a fresh 3-node cluster without TLS, then one with `[tls]` (scripts/dev-certs.sh,
the run's CA), and runs the same redis-benchmark cells against its leader's door (`-t set`, then
`-t get`, at 32 and 256 connections, one load thread; `--tls --cacert` for the TLS cluster): the
two alternate, so a drift of the machine shows as spread, not as a difference. The Markdown gives
every pair's throughput, the ratio TLS / plain per pair, their median and range.

The pure half (the table) is tested in scripts/pylib/tests/test_bench_resp_tls.py.
"""

import json
import os
import statistics

from .common import say
from .resp import CONNECTIONS, TESTS, RespPart, ping
from .systems import Sessionraft

SIDES = ("plain", "tls")


def cell_name(pair, side, test, connections):
    return f"resp-tls-{pair}-{side}-{test}-{connections}"


def table(records, version=""):
    """The Markdown of the part from its records (dicts with pair, side, test, connections,
    status and result.throughput_per_s)."""
    rate = {}
    for r in records:
        if r.get("status") == "ok" and r.get("result"):
            rate[(r["pair"], r["side"], r["test"], r["connections"])] = r["result"]["throughput_per_s"]
    pairs = sorted({r["pair"] for r in records})
    out = ["## The Redis protocol with TLS against without (resp-tls)", "",
           f"redis-benchmark{f' ({version})' if version else ''}, one load thread, `-d 200 -r 100000`, "
           "against the leader of a fresh 3-node cluster; a cluster without TLS and one with `[tls]` "
           f"alternate, {len(pairs)} pair(s). Ratio: TLS / plain in the same pair.", "",
           "| command | connections | plain SET/GET per s (each pair) | TLS (each pair) | ratio per pair | "
           "median ratio | range |", "|---|---|---|---|---|---|---|"]
    for c in CONNECTIONS:
        for t in TESTS:
            plain = [rate.get((p, "plain", t, c)) for p in pairs]
            tls = [rate.get((p, "tls", t, c)) for p in pairs]
            ratios = [b / a for a, b in zip(plain, tls) if a and b]
            fmt = lambda xs: ", ".join("failed" if x is None else f"{x:,.0f}" for x in xs)  # noqa: E731
            med = f"{statistics.median(ratios):.2f}" if ratios else "-"
            rng = f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios else "-"
            out.append(f"| {t.upper()} | {c} | {fmt(plain)} | {fmt(tls)} | "
                       f"{', '.join(f'{x:.2f}' for x in ratios) or '-'} | {med} | {rng} |")
    return "\n".join(out) + "\n"


def run_resp_tls(run):
    """Runs the part; its records in WORK/resp-tls.jsonl; returns its Markdown."""
    part = RespPart(run)
    part.detect_tool()
    part.path = os.path.join(run.work, "resp-tls.jsonl")
    open(part.path, "w").close()
    records = []
    for pair in range(1, run.opts.pairs + 1):
        for side in SIDES:
            sr = Sessionraft(run, f"resp-tls-{pair}-{side}", run.bin, resp=True, tls=side == "tls").setup()
            sr.up()
            try:
                node = sr.find_leader((1, 2, 3))
                host, port = sr.resp_addr(node or 1).rsplit(":", 1)
                ok, answer = ping(host, port, tls_ca=sr.ca)
                if node is None or not ok:
                    run.problem(f"resp-tls: pair {pair} {side}: no leader or no PONG ({answer})")
                    continue
                say(f"resp-tls: pair {pair}, {side}: node {node}, the leader, on {host}:{port}")
                for c in CONNECTIONS:
                    for t in TESTS:
                        rec = part.cell("sessionraft", t, c, host, int(port), node, tls_ca=sr.ca,
                                        name=cell_name(pair, side, t, c))
                        records.append({**rec, "pair": pair, "side": side})
            finally:
                sr.down()
    with open(os.path.join(run.work, "resp-tls.json"), "w") as f:
        json.dump({"redis_benchmark": part.version, "records": records}, f)
    return table(records, part.version)

"""What a run records and prints: the fault windows (faults.jsonl, faults.tsv), the timestamped
progress lines, and the table of faults at the end."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TextIO


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (the load's history uses the same clock)."""
    return time.time_ns() // 1_000_000


def fmt_s(ms: int) -> str:
    """Milliseconds as seconds with three decimals: 1234 -> '1.234', -50 -> '-0.050'."""
    sign = ""
    if ms < 0:
        sign, ms = "-", -ms
    return f"{sign}{ms // 1000}.{ms % 1000:03d}"


def warn(msg: str) -> None:
    print(f"chaos.sh: {msg}", file=sys.stderr, flush=True)


class Recorder:
    """The fault windows of a run and its progress output.

    A window is written when it closes: one JSON line {"name", "node", "start_ms", "end_ms"} to
    faults.jsonl (read by `sessionraft check`) and the same with a detail column to faults.tsv.
    At most one window is open at a time (begin/end); record() writes one directly.
    """

    def __init__(self, out: Path, out_stream: TextIO | None = None):
        self.jsonl = out / "faults.jsonl"
        self.tsv = out / "faults.tsv"
        self.stream = out_stream
        self.t0 = now_ms()
        self.open: list | None = None  # [name, node, start_ms, detail]
        self.jsonl.write_text("")
        self.tsv.write_text("")

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def rel(self, ms: int) -> str:
        return fmt_s(ms - self.t0)

    def say(self, msg: str) -> None:
        print(f"[{self.rel(now_ms()):>8}s] {msg}", file=self._out(), flush=True)

    def begin(self, name: str, node: int, detail: str = "") -> None:
        self.open = [name, node, now_ms(), detail]

    def add_detail(self, more: str) -> None:
        """Appends to the open window's detail (as '; MORE')."""
        if self.open is not None:
            self.open[3] += f"; {more}"

    def end(self, more: str = "") -> None:
        if self.open is None:
            return
        name, node, start, detail = self.open
        if more:
            detail = f"{detail}; {more}" if detail else more
        self.open = None
        self.record(name, node, start, now_ms(), detail)

    def record(self, name: str, node: int, start_ms: int, end_ms: int, detail: str = "") -> None:
        line = json.dumps({"name": name, "node": int(node), "start_ms": int(start_ms),
                           "end_ms": int(end_ms)})
        with self.jsonl.open("a") as f:
            f.write(line + "\n")
        with self.tsv.open("a") as f:
            # one line per fault: a tab or a line break inside the detail would split the row
            flat = " ".join(detail.split())
            f.write(f"{name}\t{node}\t{start_ms}\t{end_ms}\t{flat}\n")


def read_tsv(path: Path) -> list[list[str]]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            if line:
                rows.append(line.split("\t"))
    return rows


def impact_cells(impact: dict | None) -> tuple[str, str, str, str]:
    """The window, elections, term and >1s cells of a fault's entry in summary.json's faults
    ('-' for what it does not say: elections and terms need the terms file)."""
    if not isinstance(impact, dict):
        return "-", "-", "-", "-"
    window = impact.get("window_ms")
    elections = impact.get("elections")
    before, after = impact.get("term_before"), impact.get("term_after")
    long = impact.get("long_requests") or {}
    return (f"{window / 1000:.3f}s" if isinstance(window, (int, float)) else "-",
            str(len(elections)) if isinstance(elections, list) else "-",
            f"{before}->{after}" if before is not None and after is not None else "-",
            str(long.get("count", "-")))


def fault_table(rows: list[list[str]], t0_ms: int, impacts: list | None = None) -> list[str]:
    """The table printed at the end of a run, from the rows of faults.tsv; with impacts (the
    faults of the checker's summary.json, in the same order) also each fault's window (longest
    time without a successful operation while some waited, from its start to 3 s after its
    end), elections, the cluster's term before -> after, and requests over 1 s."""
    head = "  %-3s %-22s %-4s %9s %9s %8s  " % ("#", "fault", "node", "start", "end", "length")
    if impacts is not None:
        head += "%8s %5s %9s %4s  " % ("window", "elect", "term", ">1s")
    lines = [head + "detail"]
    for i, row in enumerate(rows, 1):
        row = row + [""] * (5 - len(row))
        name, node, start, end, detail = row[:5]
        start_ms, end_ms = int(start), int(end)
        line = "  %-3d %-22s %-4s %9.3f %9.3f %7.3fs  " % (
            i, name, node, (start_ms - t0_ms) / 1000, (end_ms - t0_ms) / 1000,
            (end_ms - start_ms) / 1000)
        if impacts is not None:
            impact = impacts[i - 1] if i - 1 < len(impacts) else None
            line += "%8s %5s %9s %4s  " % impact_cells(impact)
        lines.append(line + detail)
    if not rows:
        lines.append("  (none)")
    return lines

"""The nodes' terms while the load runs: terms.jsonl, read by `sessionraft check --terms`.

A background thread per node asks its GET /cluster/status every 100 ms (0.3 s timeout) and
appends one JSON line per answer:

    {"t_ms": 1718000003123, "node": 2, "term": 5, "leader": 3, "role": "follower"}

t_ms is when the answer arrived, in wall-clock milliseconds since the epoch (record.now_ms, the
clock of the history). A node that does not answer in time (killed, paused, restarting) gives a
line with "term": null, "leader": null, "role": "unreachable"; the checker skips those. One thread
per node, so that a paused node's timeouts do not delay the others' samples.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Callable

from .cluster import http, parse_status
from .record import now_ms

INTERVAL_S = 0.1
TIMEOUT_S = 0.3

# (url, timeout) -> (status, body), status 0 when there was no answer: cluster.http
Fetch = Callable[[str, float], tuple]


def sample_line(t_ms: int, node: int, code: int, body: str) -> str:
    """The terms.jsonl line of one answer (code 0: none)."""
    st = parse_status(body) if code == 200 else None
    if st is None or st.term is None:
        rec = {"t_ms": t_ms, "node": node, "term": None, "leader": None, "role": "unreachable"}
    else:
        rec = {"t_ms": t_ms, "node": node, "term": st.term, "leader": st.leader,
               "role": st.role or "unknown"}
    return json.dumps(rec)


class TermSampler:
    """Samples every node's /cluster/status into path until stop()."""

    def __init__(self, path: Path, urls: dict[int, str], interval_s: float = INTERVAL_S,
                 timeout_s: float = TIMEOUT_S, fetch: Fetch = http):
        self.path = path
        self.urls = urls
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.fetch = fetch
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.file = None

    def start(self) -> None:
        self.file = open(self.path, "a")
        for node, url in sorted(self.urls.items()):
            t = threading.Thread(target=self._poll, args=(node, url), daemon=True,
                                 name=f"terms-node{node}")
            t.start()
            self.threads.append(t)

    def _poll(self, node: int, url: str) -> None:
        while not self.done.is_set():
            began = time.monotonic()
            try:
                code, body = self.fetch(f"{url}/cluster/status", self.timeout_s)
            except Exception:  # noqa: BLE001 - a sample lost is no reason to stop sampling
                code, body = 0, ""
            line = sample_line(now_ms(), node, code, body)
            with self.lock:
                if self.file is None:
                    return
                self.file.write(line + "\n")
                self.file.flush()
            self.done.wait(max(0.0, self.interval_s - (time.monotonic() - began)))

    def stop(self) -> None:
        """Stops the threads (each within its request's timeout) and closes the file."""
        self.done.set()
        for t in self.threads:
            t.join(self.timeout_s + 1)
        with self.lock:
            if self.file is not None:
                self.file.close()
                self.file = None


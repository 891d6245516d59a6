"""The run dir (SESSIONRAFT_RUN_DIR), the state of a cluster run by scripts/cluster.sh:

    nodeN.pid       the pid of node N's `sessionraft serve` (written when it is started)
    nodeN.bin       the binary node N runs when it is not SESSIONRAFT_BIN's (or the default):
                    its absolute path, written by `up|start|restart|add-node --bin BIN` and by
                    `upgrade BIN`; every later start of node N uses it (kept across down)
    haproxy.pid     the pid of the HAProxy master
    haproxy.cfg     generated (haproxy.cfg.new while it is validated)
    logs/nodeN.log, logs/haproxy.log
    extra-nodes     nodes added with add-node: `id<TAB>http<TAB>data_dir<TAB>raft` per line
    removed-nodes   ids of config nodes removed with remove-node, one per line
    data/nodeN      the data of a node added with add-node
    .lock           flock(2) serializing the commands that start or change things

The file formats are those of the former shell script: a run dir it wrote works with this
program and back.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from typing import Iterator

from .console import err


def valid_id(node_id: str) -> bool:
    """A node id: a whole number >= 1 without leading zeros."""
    return re.fullmatch(r"[1-9][0-9]*", node_id) is not None


def read_pid(path: str) -> int | None:
    """The pid a pid file holds (None: no file, or not a number)."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if re.fullmatch(r"[0-9]+", text) else None


def write_pid(path: str, pid: int) -> None:
    with open(path, "w") as f:
        f.write(f"{pid}\n")


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def read_lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def drop_line(path: str, node_id: str) -> None:
    """Remove the lines of a tab-separated file whose first field is node_id."""
    if not os.path.isfile(path):
        return
    keep = [line for line in read_lines(path) if line.split("\t")[0] != node_id]
    with open(path + ".tmp", "w") as f:
        f.write("".join(line + "\n" for line in keep))
    os.replace(path + ".tmp", path)


def append_line(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


class RunDir:
    """The paths of a run dir and its small files. Holds the command's lock (re-entrant)."""

    def __init__(self, path: str):
        self.path = path
        self.extra_file = f"{path}/extra-nodes"
        self.removed_file = f"{path}/removed-nodes"
        self.haproxy_cfg = f"{path}/haproxy.cfg"
        self.haproxy_pid = f"{path}/haproxy.pid"
        self.logs = f"{path}/logs"
        self.haproxy_log = f"{path}/logs/haproxy.log"
        self.lock_file = f"{path}/.lock"
        self._lock_depth = 0
        self._lock_fd: int | None = None

    def pid_file(self, node_id: str) -> str:
        return f"{self.path}/node{node_id}.pid"

    def bin_file(self, node_id: str) -> str:
        return f"{self.path}/node{node_id}.bin"

    def node_bin(self, node_id: str) -> str | None:
        """The binary recorded for node N (None: none recorded)."""
        lines = [line.strip() for line in read_lines(self.bin_file(node_id)) if line.strip()]
        return lines[0] if lines else None

    def set_node_bin(self, node_id: str, path: str) -> None:
        os.makedirs(self.path, exist_ok=True)
        with open(self.bin_file(node_id) + ".tmp", "w") as f:
            f.write(path + "\n")
        os.replace(self.bin_file(node_id) + ".tmp", self.bin_file(node_id))

    def log_file(self, node_id: str) -> str:
        return f"{self.logs}/node{node_id}.log"

    def data_dir(self, node_id: str) -> str:
        """Where a node added with add-node keeps its data."""
        return f"{self.path}/data/node{node_id}"

    def pid_file_ids(self) -> list[str]:
        """The ids of every nodeN.pid file (N a valid id)."""
        try:
            names = os.listdir(self.path)
        except OSError:
            return []
        out = []
        for name in sorted(names):
            m = re.fullmatch(r"node(.*)\.pid", name)
            if m and valid_id(m[1]):
                out.append(m[1])
        return out

    # ------------------------------------------------------------------ extra-nodes, removed-nodes

    def extra_lines(self) -> list[list[str]]:
        """The fields of each extra-nodes line (at least 4, the first a number)."""
        out = []
        for line in read_lines(self.extra_file):
            fields = line.split("\t")
            if len(fields) >= 4 and re.fullmatch(r"[0-9]+", fields[0]):
                out.append(fields)
        return out

    def add_extra(self, node_id: str, http: str, data_dir: str, raft: str) -> None:
        os.makedirs(self.path, exist_ok=True)
        append_line(self.extra_file, f"{node_id}\t{http}\t{data_dir}\t{raft}")

    def drop_extra(self, node_id: str) -> None:
        drop_line(self.extra_file, node_id)

    def removed_ids(self) -> list[str]:
        return [line.strip() for line in read_lines(self.removed_file) if line.strip()]

    def is_removed(self, node_id: str) -> bool:
        return node_id in read_lines(self.removed_file)

    def add_removed(self, node_id: str) -> None:
        os.makedirs(self.path, exist_ok=True)
        append_line(self.removed_file, node_id)

    def drop_removed(self, node_id: str) -> None:
        drop_line(self.removed_file, node_id)

    # ------------------------------------------------------------------ the lock

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serializes the commands that start or change things (up, start, restart,
        rolling-restart, add-node, remove-node) per run dir; re-entrant. Children never
        inherit the descriptor (Python opens files close-on-exec)."""
        if self._lock_depth == 0:
            os.makedirs(self.path, exist_ok=True)
            fd = os.open(self.lock_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                err(f"waiting for another scripts/cluster.sh command on {self.path} to finish...")
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None

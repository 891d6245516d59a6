"""The run's state directory: state.json (everything the run made, every host's address and
process), and the lock that serializes the commands of one run.

Layout of DIR:
    state.json            this file's State (mode 600: it holds the run's test secrets)
    cluster.toml          the nodes' configuration (from deploy/kubernetes/configmap.yaml)
    mnt/data              the mount point every node sees its data directory at (as /data in a pod)
    hosts/NAME/data       host NAME's volume; hosts/NAME/node.log its node's output (appended)
    lb/haproxy.cfg, lb/haproxy.log, lb/haproxy.sock (and lb/haproxy-lb.pem with --tls)
    certs/                with --tls: scripts/dev-certs.sh's CA, node and load balancer certificates
    events.jsonl          every event the commands printed
    .lock                 flock held by a command that changes the run

An object is recorded in state.json *before* it is made, so that `down` removes it even when
the command making it failed half-way (down removes only what exists of what is recorded).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

VERSION = 1


class StateError(Exception):
    """No run in this directory, or a state file this program cannot read."""


@dataclass
class Host:
    ip: str | None = None          # None: the host does not exist now (deleted)
    pid: int | None = None         # its node's process (`ip netns exec ... sessionraft serve`)
    link: str = "up"               # "up" or "cut"
    incarnation: int = 0           # how many times the host was made


@dataclass
class Lb:
    ip: str | None = None
    pid: int | None = None         # HAProxy's master
    ports: dict = field(default_factory=dict)  # lb, resp, direct: {name: port}
    generation: int = 0


@dataclass
class State:
    rid: str
    subnet: str
    binary: str
    next_octet: int
    secrets: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    hosts: dict = field(default_factory=dict)  # name -> Host
    lb: Lb = field(default_factory=Lb)
    # everything made, for `down`: namespaces (never the root handle), /etc/netns dirs
    netns: list = field(default_factory=list)
    etc_netns: list = field(default_factory=list)
    root_handle: str | None = None
    etc_netns_made: bool = False   # /etc/netns itself did not exist before the run
    tls: bool = False              # up --tls: [tls] in cluster.toml, HAProxy over HTTPS
    version: int = VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @staticmethod
    def from_json(text: str) -> State:
        try:
            raw = json.loads(text)
        except ValueError as e:
            raise StateError(f"state.json is not JSON: {e}") from e
        if not isinstance(raw, dict) or raw.get("version") != VERSION:
            raise StateError("state.json of another version of scripts/hosts.sh")
        raw["hosts"] = {k: Host(**v) for k, v in raw.get("hosts", {}).items()}
        raw["lb"] = Lb(**raw.get("lb", {}))
        return State(**raw)


class Dir:
    """A run's state directory."""

    def __init__(self, path: Path):
        self.path = path.resolve()

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def config(self) -> Path:
        return self.path / "cluster.toml"

    @property
    def data_mount(self) -> Path:
        return self.path / "mnt" / "data"

    def host_dir(self, name: str) -> Path:
        return self.path / "hosts" / name

    def data(self, name: str) -> Path:
        return self.host_dir(name) / "data"

    def node_log(self, name: str) -> Path:
        return self.host_dir(name) / "node.log"

    @property
    def certs(self) -> Path:
        return self.path / "certs"

    @property
    def lb_dir(self) -> Path:
        return self.path / "lb"

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    def exists(self) -> bool:
        return self.state_file.is_file()

    def load(self) -> State:
        try:
            return State.from_json(self.state_file.read_text())
        except FileNotFoundError:
            raise StateError(f"no run in {self.path} (scripts/hosts.sh up --state {self.path})")

    def save(self, st: State) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(st.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_file)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

"""The operations of scripts/hosts.sh. Each prints what it did as JSON lines on stdout (one
object per event, with "event" and "t_ms", the Unix time in ms), also appended to
DIR/events.jsonl; messages for people go to stderr.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sessionraft_bench.systems import free_ports

from . import haproxy, plan, system
from .plan import LB_NAME, Names
from .state import Dir, Host, State

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
REPO = Path(__file__).resolve().parents[3]


def opener(ca: Path | None) -> urllib.request.OpenerDirector:
    """No proxy; https verified against the cluster CA alone when ca (up --tls)."""
    if ca is None:
        return _OPENER
    ctx = ssl.create_default_context(cafile=str(ca))
    return urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                       urllib.request.HTTPSHandler(context=ctx))


class OpError(Exception):
    """An operation that cannot be done (printed as `hosts.sh: MESSAGE`, exit 1)."""


def now_ms() -> int:
    return int(time.time() * 1000)


def say(msg: str) -> None:
    print(f"hosts.sh: {msg}", file=sys.stderr, flush=True)


class Run:
    """One run, loaded from (or made in) its state directory."""

    def __init__(self, d: Dir, st: State):
        self.d = d
        self.st = st
        self.n = Names(st.rid)

    # ------------------------------------------------------------------ events, state

    def emit(self, event: str, **fields) -> dict:
        obj = {"event": event, "t_ms": now_ms(), **fields}
        line = json.dumps(obj, sort_keys=True)
        print(line, flush=True)
        try:
            with open(self.d.events, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass
        return obj

    def save(self) -> None:
        self.d.save(self.st)

    def host(self, name: str) -> Host:
        return self.st.hosts[name]

    def names(self) -> list[str]:
        return sorted(self.st.hosts, key=plan.ordinal_of)

    def ns_of(self, name: str) -> str:
        return self.n.lb if name == LB_NAME else self.n.host(name)

    # ------------------------------------------------------------------ making and removing

    def record_netns(self, ns: str) -> None:
        if ns not in self.st.netns:
            self.st.netns.append(ns)
            self.save()

    def make_etc(self, ns: str) -> None:
        d = system.ETC_NETNS / ns
        if not system.ETC_NETNS.exists():
            self.st.etc_netns_made = True
            self.save()
        if str(d) not in self.st.etc_netns:
            self.st.etc_netns.append(str(d))
            self.save()
        d.mkdir(parents=True, exist_ok=True)
        system.write_in_place(d / "resolv.conf", plan.RESOLV_CONF)

    def hosts_text(self) -> str:
        return plan.hosts_file(self.st.rid, {k: v.ip for k, v in self.st.hosts.items()},
                               self.st.lb.ip)

    def write_hosts_files(self) -> None:
        """Every namespace's /etc/hosts, rewritten in place (the same length each time)."""
        text = self.hosts_text()
        for name in [*self.names(), LB_NAME]:
            system.write_in_place(system.ETC_NETNS / self.ns_of(name) / "hosts", text)

    def new_octet(self) -> int:
        o = self.st.next_octet
        if o > plan.LAST_OCTET:
            raise OpError("no address left in the run's subnet")
        self.st.next_octet = o + 1
        return o

    def make_host(self, name: str, octet: int) -> str:
        """The host's namespace, link and address (the hosts files are left to the caller)."""
        ns = self.ns_of(name)
        if system.netns_exists(ns):
            raise OpError(f"namespace {ns} exists already")
        ip = plan.address(self.st.subnet, octet)
        self.record_netns(ns)
        prefixlen = int(self.st.subnet.split("/")[1])
        for argv in plan.host_commands(self.n, name, ip, prefixlen):
            system.run(argv)
        if name == LB_NAME:
            self.st.lb.ip = ip
        else:
            h = self.host(name)
            h.ip, h.link, h.incarnation = ip, "up", h.incarnation + 1
        self.save()
        return ip

    def remove_host(self, name: str) -> None:
        """Every process left in the host's namespace killed, its link and namespace removed."""
        ns = self.ns_of(name)
        for pid in system.netns_pids(ns):
            if system.in_netns(pid, ns):
                system.stop(pid, ns, kill=True)
        for argv in plan.remove_host_commands(self.n, name):
            if argv[:3] == ["ip", "netns", "delete"] and not system.netns_exists(ns):
                continue
            system.run(argv, check=False)
        if system.netns_exists(ns):
            raise OpError(f"namespace {ns} could not be deleted")
        if name == LB_NAME:
            self.st.lb.ip = None
        else:
            self.host(name).ip = None
            self.host(name).pid = None
        self.save()

    # ------------------------------------------------------------------ nodes

    def env_of(self, name: str) -> dict:
        return plan.node_env(name, self.d.config, self.st.secrets, self.st.env)

    def in_host(self, name: str, argv: list[str], extra_env: dict | None = None) -> list[str]:
        env = self.env_of(name)
        env.update(extra_env or {})
        return plan.in_host(self.n, name, self.d.data(name), self.d.data_mount, env, argv)

    def start_node(self, name: str) -> dict:
        h = self.host(name)
        if h.ip is None:
            raise OpError(f"{name} does not exist (deleted): `wipe {name}` makes it again")
        if h.pid is not None and system.in_netns(h.pid, self.ns_of(name)):
            return self.emit("start", host=name, node_id=plan.node_id_of(name), pid=h.pid,
                             already=True)
        self.d.data(name).mkdir(parents=True, exist_ok=True)
        log = self.d.node_log(name)
        with open(log, "a") as f:
            f.write(f"\n==== hosts.sh: start {name} ({h.ip}) at {time.ctime()}\n")
        pid = system.spawn(self.in_host(name, plan.serve_argv(Path(self.st.binary))), log)
        h.pid = pid
        self.save()
        return self.emit("start", host=name, node_id=plan.node_id_of(name), pid=pid, ip=h.ip,
                         log=str(log))

    def stop_node(self, name: str, kill: bool = False, timeout_s: float = 10.0) -> str:
        h = self.host(name)
        how = "not-running"
        if h.pid is not None:
            how = system.stop(h.pid, self.ns_of(name), timeout_s, kill=kill)
        h.pid = None
        self.save()
        return how

    # ------------------------------------------------------------------ HAProxy

    @property
    def scheme(self) -> str:
        return "https" if self.st.tls else "http"

    @property
    def ca(self) -> Path | None:
        return self.d.certs / "ca.crt" if self.st.tls else None

    def lb_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.st.lb.ports['lb']}"

    def lb_pem(self) -> Path:
        return self.d.lb_dir / "haproxy-lb.pem"

    def make_certs(self) -> None:
        """up --tls: scripts/dev-certs.sh for the run's configuration (node certificates naming
        each host's name, lb.crt naming the load balancer's), its [tls] snippet appended to
        cluster.toml; HAProxy's PEM (certificate and key, mode 600)."""
        env = {**os.environ, **self.st.secrets, "SESSIONRAFT_BIN": self.st.binary}
        p = system.run(["bash", str(REPO / "scripts" / "dev-certs.sh"), "--config",
                        str(self.d.config), "--out", str(self.d.certs), "--lb", LB_NAME],
                       check=False, env=env)
        if p.returncode != 0 or "[tls]" not in p.stdout:
            raise OpError(f"scripts/dev-certs.sh failed: {p.stdout.strip()} {p.stderr.strip()}")
        with self.d.config.open("a") as f:
            f.write("\n" + p.stdout[p.stdout.index("[tls]"):])
        pem = self.lb_pem()
        pem.parent.mkdir(parents=True, exist_ok=True)
        text = (self.d.certs / "lb.crt").read_text() + (self.d.certs / "lb.key").read_text()
        fd = os.open(pem, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)

    def lb_files(self) -> tuple[Path, Path, Path]:
        d = self.d.lb_dir
        return d / "haproxy.cfg", d / "haproxy.log", d / "haproxy.sock"

    def write_lb_config(self) -> Path:
        cfg, _, sock = self.lb_files()
        ports = haproxy.Ports(self.st.lb.ports["lb"], self.st.lb.ports["resp"],
                              self.st.lb.ports["direct"])
        tls = (haproxy.HaproxyTls(ca=str(self.ca), lb_pem=str(self.lb_pem()))
               if self.st.tls else None)
        text = haproxy.render(self.n.root, ports, self.names(), str(sock),
                              self.st.lb.generation, tls)
        cfg.parent.mkdir(parents=True, exist_ok=True)
        tmp = cfg.with_suffix(".new")
        tmp.write_text(text)
        p = system.run(["ip", "netns", "exec", self.n.lb, "haproxy", "-c", "-f", str(tmp)],
                       check=False)
        if p.returncode != 0:
            raise OpError(f"haproxy rejects {tmp}: {p.stdout.strip()} {p.stderr.strip()}")
        os.replace(tmp, cfg)
        return cfg

    def lb_generation(self) -> int | None:
        try:
            with opener(self.ca).open(f"{self.lb_url()}/hosts-generation", timeout=1) as r:
                return int(r.read().decode().strip())
        except Exception:  # noqa: BLE001 - not answering (yet)
            return None

    def wait_generation(self, gen: int, timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while self.lb_generation() != gen:
            if time.monotonic() > deadline:
                _, log, _ = self.lb_files()
                raise OpError(f"HAProxy does not run generation {gen} after {timeout_s}s "
                              f"(see {log})")
            time.sleep(0.02)

    def start_lb(self) -> None:
        cfg, log, _ = self.lb_files()
        self.write_lb_config()
        pid = system.spawn(["ip", "netns", "exec", self.n.lb, "haproxy", "-W", "-db", "-f",
                            str(cfg)], log)
        self.st.lb.pid = pid
        self.save()
        self.wait_generation(self.st.lb.generation)
        self.emit("lb-start", pid=pid, url=self.lb_url(), config=str(cfg))

    def reload_lb(self) -> None:
        """HAProxy re-reads its configuration and resolves the names again (seamless: the
        listeners pass to the new worker)."""
        lb = self.st.lb
        if lb.pid is None or not system.in_netns(lb.pid, self.n.lb):
            raise OpError("HAProxy is not running")
        lb.generation += 1
        self.save()
        self.write_lb_config()
        system.signal_pid(lb.pid, 12)  # SIGUSR2: reload
        self.wait_generation(lb.generation)

    def lb_servers(self) -> dict[str, str]:
        try:
            with opener(self.ca).open(f"{self.lb_url()}/haproxy-stats;csv", timeout=2) as r:
                return haproxy.parse_stats(r.read().decode(errors="replace"))
        except Exception:  # noqa: BLE001
            return {}

    # ------------------------------------------------------------------ views

    def describe(self) -> dict:
        ports = self.st.lb.ports
        hosts = []
        for name in self.names():
            h = self.host(name)
            hosts.append({
                "name": name, "fqdn": plan.fqdn(name), "node_id": plan.node_id_of(name),
                "ns": self.ns_of(name), "ip": h.ip, "link": h.link, "pid": h.pid,
                "running": h.pid is not None and system.in_netns(h.pid, self.ns_of(name)),
                "incarnation": h.incarnation,
                "direct_url": f"{self.scheme}://127.0.0.1:{ports['direct'][name]}",
                "data_dir": str(self.d.data(name)), "log": str(self.d.node_log(name)),
            })
        return {
            "run": self.st.rid, "state_dir": str(self.d.path), "subnet": self.st.subnet,
            "config": str(self.d.config), "binary": self.st.binary,
            "lb_url": self.lb_url(), "resp_addr": f"127.0.0.1:{ports['resp']}",
            "tls": self.st.tls, "ca": str(self.ca) if self.ca else None,
            "lb_ns": self.n.lb, "lb_ip": self.st.lb.ip, "lb_pid": self.st.lb.pid,
            "admin_token": self.st.secrets.get("SESSIONRAFT_ADMIN_TOKEN"),
            "resp_password": self.st.secrets.get("SESSIONRAFT_RESP_PASSWORD"),
            "hosts": hosts,
        }


# ---------------------------------------------------------------------------------- helpers

def new_rid() -> str:
    for _ in range(100):
        rid = secrets.token_hex(3)[:5]
        if not any(p.name.startswith(f"{plan.PREFIX}{rid}-")
                   for p in (system.NETNS_DIR.iterdir() if system.NETNS_DIR.is_dir() else [])):
            return rid
    raise OpError("no free run id")


def machine_networks() -> list:
    route = system.run(["ip", "-4", "route", "show", "table", "all"], check=False).stdout
    addrs = system.run(["ip", "-4", "-o", "addr", "show"], check=False).stdout
    try:
        resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        resolv = ""
    return plan.networks_in_use(route, addrs, resolv)


def find_tools() -> None:
    if os.geteuid() != 0:
        raise OpError("needs root (network namespaces)")
    for tool in ("ip", "haproxy", "mount"):
        if shutil.which(tool) is None:
            raise OpError(f"{tool} not found (scripts/install-deps.sh --cluster installs "
                          "haproxy)")


# ---------------------------------------------------------------------------------- commands

def up(d: Dir, binary: Path, hosts: int, env: dict, manifest: Path, start: bool,
       tls: bool = False) -> int:
    find_tools()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise OpError(f"no binary at {binary}")
    with d.locked():
        if d.exists():
            raise OpError(f"{d.path} holds a run already (scripts/hosts.sh down --state "
                          f"{d.path})")
        config = plan.run_config(plan.config_from_configmap(manifest.read_text()),
                                 d.data_mount, hosts)
        rng = random.Random()
        st = State(rid=new_rid(), subnet=str(plan.pick_subnet(rng.randrange(1 << 30),
                                                              machine_networks())),
                   binary=str(binary.resolve()), next_octet=plan.FIRST_LATER_OCTET,
                   env=dict(env), tls=tls,
                   secrets={"SESSIONRAFT_CLUSTER_SECRET": secrets.token_hex(32),
                            "SESSIONRAFT_ADMIN_TOKEN": secrets.token_hex(16),
                            "SESSIONRAFT_RESP_PASSWORD": secrets.token_hex(16)})
        names = [plan.host_name(i) for i in range(hosts)]
        st.hosts = {name: Host() for name in names}
        # On 127.0.0.1 in 5000-9999: below tests/it/common.rs's 10000-19999, chaos.sh's 20000-32000
        # and the ephemeral range.
        lb, resp, *direct = free_ports(2 + len(names), lo=5000, hi=9999, rng=rng)
        st.lb.ports = {"lb": lb, "resp": resp, "direct": dict(zip(names, direct))}
        d.path.mkdir(parents=True, exist_ok=True)
        r = Run(d, st)
        r.save()
        try:
            d.config.write_text(config)
            if tls:
                r.make_certs()
            d.data_mount.mkdir(parents=True, exist_ok=True)
            say(f"run {st.rid}: subnet {st.subnet}, state {d.path}")
            r.record_netns(r.n.switch)
            for argv in plan.switch_commands(r.n):
                system.run(argv)
            st.root_handle = r.n.root
            r.save()
            system.run(["ip", "netns", "attach", r.n.root, str(os.getpid())])
            for name in [*names, LB_NAME]:
                r.make_etc(r.ns_of(name))
            for i, name in enumerate(names):
                r.make_host(name, plan.FIRST_HOST_OCTET + i)
            r.make_host(LB_NAME, plan.LB_OCTET)
            r.write_hosts_files()
            if start:
                for name in names:
                    r.start_node(name)
            r.start_lb()
        except BaseException:
            say("up failed: removing what it made")
            teardown(r)
            raise
        r.emit("up", **r.describe())
    return 0


def teardown(r: Run) -> None:
    """Removes everything the run recorded (and only that), whatever exists of it."""
    st = r.st
    for name in r.names():
        h = st.hosts[name]
        if h.pid is not None:
            system.stop(h.pid, r.ns_of(name), term_timeout_s=3)
    if st.lb.pid is not None:
        system.stop(st.lb.pid, r.n.lb, term_timeout_s=3)
    for ns in reversed(st.netns):
        if not ns.startswith(r.n.prefix) or ns == r.n.root:
            continue  # never a namespace the run did not name
        for pid in system.netns_pids(ns):
            if system.in_netns(pid, ns):
                system.stop(pid, ns, kill=True)
        if ns != r.n.switch and system.netns_exists(r.n.switch):
            name = LB_NAME if ns == r.n.lb else ns[len(r.n.prefix):]
            system.run(["ip", "-n", r.n.switch, "link", "del", Names.port(name)], check=False)
        if system.netns_exists(ns):
            system.run(["ip", "netns", "delete", ns], check=False)
    if st.root_handle == r.n.root and system.netns_exists(r.n.root):
        # only the handle (a bind mount of the root namespace) goes: unmounted and unlinked
        system.run(["ip", "netns", "delete", r.n.root], check=False)
    for path in st.etc_netns:
        p = Path(path)
        if p.parent == system.ETC_NETNS and p.name.startswith(r.n.prefix):
            shutil.rmtree(p, ignore_errors=True)
    if st.etc_netns_made:
        try:
            system.ETC_NETNS.rmdir()  # only when empty: another run may be using it
        except OSError:
            pass
    left = [ns for ns in st.netns if ns.startswith(r.n.prefix) and system.netns_exists(ns)]
    if left:
        raise OpError(f"namespaces left: {', '.join(left)}")


def down(d: Dir) -> int:
    with d.locked():
        if not d.exists():
            print(json.dumps({"event": "down", "t_ms": now_ms(), "nothing": True}), flush=True)
            return 0
        r = Run(d, d.load())
        teardown(r)
        os.replace(d.state_file, d.path / "state.down.json")
        r.emit("down", run=r.st.rid)
    return 0


def load(d: Dir) -> Run:
    return Run(d, d.load())


def status(d: Dir) -> int:
    r = load(d)
    view = r.describe()
    view["lb_servers"] = r.lb_servers()
    r.emit("status", **view)
    return 0


def start(d: Dir, name_arg: str) -> int:
    with d.locked():
        r = load(d)
        r.start_node(plan.parse_host(name_arg, r.names()))
    return 0


def stop(d: Dir, name_arg: str, kill: bool) -> int:
    with d.locked():
        r = load(d)
        name = plan.parse_host(name_arg, r.names())
        pid = r.host(name).pid
        how = r.stop_node(name, kill=kill)
        r.emit("kill" if kill else "stop", host=name, node_id=plan.node_id_of(name), pid=pid,
               how=how)
    return 0


def remake(d: Dir, name_arg: str, wipe: bool, kill: bool, start_node: bool) -> int:
    """reip (same data) or wipe (empty data): the host's namespace destroyed and made again under
    the same name with a new address, every hosts file rewritten, HAProxy reloaded, the node
    started. Works on a deleted host too (it is made again)."""
    with d.locked():
        r = load(d)
        name = plan.parse_host(name_arg, r.names())
        h = r.host(name)
        t0 = now_ms()
        old_ip, old_pid = h.ip, h.pid
        how = r.stop_node(name, kill=kill)
        t_stopped = now_ms()
        if h.ip is not None or system.netns_exists(r.ns_of(name)):
            r.remove_host(name)
        if wipe:
            shutil.rmtree(r.d.data(name), ignore_errors=True)
            r.d.data(name).mkdir(parents=True)
        new_ip = r.make_host(name, r.new_octet())
        r.write_hosts_files()
        r.reload_lb()
        t_made = now_ms()
        pid = r.start_node(name)["pid"] if start_node else None
        r.emit("wipe" if wipe else "reip", host=name, node_id=plan.node_id_of(name),
               old_ip=old_ip, new_ip=new_ip, old_pid=old_pid, stopped=how, pid=pid,
               stopped_ms=t_stopped - t0, made_ms=t_made - t0, took_ms=now_ms() - t0,
               data="empty" if wipe else "kept")
    return 0


def delete(d: Dir, name_arg: str) -> int:
    """The host gone for good: its node SIGKILLed, its namespace removed, its name resolves no
    more (its data directory stays on disk, unused)."""
    with d.locked():
        r = load(d)
        name = plan.parse_host(name_arg, r.names())
        pid = r.host(name).pid
        how = r.stop_node(name, kill=True)
        if r.host(name).ip is not None or system.netns_exists(r.ns_of(name)):
            r.remove_host(name)
        r.write_hosts_files()
        r.reload_lb()
        r.emit("delete", host=name, node_id=plan.node_id_of(name), pid=pid, stopped=how)
    return 0


def link(d: Dir, name_arg: str, up_: bool) -> int:
    with d.locked():
        r = load(d)
        name = plan.parse_host(name_arg, r.names())
        h = r.host(name)
        if h.ip is None:
            raise OpError(f"{name} does not exist (deleted)")
        for argv in plan.link_commands(r.n, name, up_):
            system.run(argv)
        h.link = "up" if up_ else "cut"
        r.save()
        r.emit("heal" if up_ else "cut", host=name, node_id=plan.node_id_of(name), ip=h.ip)
    return 0


def exec_in(d: Dir, name_arg: str, argv: list[str], env: dict) -> int:
    """argv inside a host, as `kubectl exec` into its pod: its namespace, /etc/hosts, data
    directory and environment; stdin/stdout/stderr passed through; its exit code. Takes no
    lock (it may run for long, e.g. `sessionraft cluster rejoin-node`)."""
    r = load(d)
    name = plan.parse_host(name_arg, r.names())
    if r.host(name).ip is None:
        raise OpError(f"{name} does not exist (deleted)")
    if not argv:
        raise OpError("exec: no command")
    if argv[0] == "sessionraft":
        argv = [r.st.binary, *argv[1:]]
    r.d.data(name).mkdir(parents=True, exist_ok=True)

    return subprocess.run(r.in_host(name, argv, env)).returncode


def lb_reload(d: Dir) -> int:
    with d.locked():
        r = load(d)
        r.reload_lb()
        r.emit("lb-reload", generation=r.st.lb.generation)
    return 0

"""One chaos run, from the lock to the verdict, and its cleanup.

Order: requirements; the lock (one chaos run at a time, none while scripts/bench.sh runs); OUT
and the run's own copy of the binary; from here on every exit (normal, failure, SIGINT, SIGTERM)
goes through cleanup(): ports, config, tmpfs, iptables chain; cluster.sh up; `sessionraft load`
in its own session, and the nodes' terms sampled meanwhile (terms.py, OUT/terms.jsonl); the faults
of the schedule, each followed by a wait until the cluster is whole again; the load's end;
`sessionraft check --terms`; the table of faults (with each fault's window and elections from the
checker's summary.json) and the verdict.

Exit codes: 0 valid and recovered; 1 violations; 2 bad usage, or the load or the checker could
not run (also: a command the run depends on failed); 3 valid but the cluster did not recover
(or a node exited on its own); 130/143 interrupted.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import faults, procs, schedule
from .cli import Options, UsageError
from .cluster import Cluster, trust_ca
from .hosts import HostsCluster, check_host_tools
from .config import Layout, config_text, data_dirs, pick_layout
from .netfilter import Chain, chain_name
from .record import Recorder, fault_table, fmt_s, now_ms, read_tsv, warn
from .schedule import NODE_IDS, Schedule
from .terms import TermSampler


class Fatal(Exception):
    """The run cannot go on: 'chaos.sh: MESSAGE', cleanup, exit 2 (the bash script's die)."""


def has_cmd(help_text: str, cmd: str) -> bool:
    """Whether `sessionraft --help` lists the subcommand cmd."""
    return re.search(rf"^\s+{re.escape(cmd)}(\s|$)", help_text, re.M) is not None


def lock_held(path: Path) -> bool:
    """Whether another process holds an flock on path (without taking it for long)."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def find_cmd(name: str) -> bool:
    return shutil.which(name) is not None or os.access(f"/usr/sbin/{name}", os.X_OK)


def load_argv(bin_path: Path, targets: str, o: Options, history: Path,
              final_targets: str | None = None, ca: Path | None = None) -> list[str]:
    """`sessionraft load`; the final reads go to `final_targets` (default: `targets`); with ca
    (CHAOS_TLS=1) https targets verified against it."""
    argv = [str(bin_path), "load", "--targets", targets, "--users", str(o.users), "--rate",
            str(o.rate), "--duration", str(o.duration), "--seed", str(o.seed), "--out",
            str(history), "--settle", str(o.settle), "--final-targets",
            final_targets or targets]
    if ca is not None:
        argv += ["--ca", str(ca)]
    return argv


def check_argv(bin_path: Path, history: Path, nodes: str, faults_path: Path,
               check_dir: Path, terms: Path | None = None, ca: Path | None = None) -> list[str]:
    """`sessionraft check`; with --terms only when terms is given (a binary from before
    --terms refuses it); with ca (CHAOS_TLS=1) the nodes verified against it."""
    argv = [str(bin_path), "check", "--history", str(history), "--nodes", nodes, "--faults",
            str(faults_path), "--out", str(check_dir)]
    if terms is not None:
        argv += ["--terms", str(terms)]
    if ca is not None:
        argv += ["--ca", str(ca)]
    return argv


def read_summary(path: Path) -> dict | None:
    """The checker's summary.json (None when missing or not a JSON object)."""
    try:
        j = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return j if isinstance(j, dict) else None


def fault_windows_line(summary: dict | None) -> str | None:
    """'fault windows: N faults, p50 X s, max Y s' from summary.json (None without faults, or
    from a checker that does not compute them)."""
    w = (summary or {}).get("fault_windows_ms")
    if not isinstance(w, dict) or not w.get("count"):
        return None
    return (f"fault windows (longest time without a successful operation while some waited, "
            f"from a fault's start to 3 s after its end): {w['count']} faults, "
            f"p50 {w.get('p50', 0) / 1000:.3f}s, max {w.get('max', 0) / 1000:.3f}s")


def verdict_lines(check_rc: int, load_rc: int, problems: list[str], out: Path,
                  check_dir: Path) -> tuple[list[str], int]:
    """The verdict lines and the exit code."""
    lines = []
    rc = 0
    if check_rc == 0:
        lines.append(f"verdict: VALID (sessionraft check): {check_dir}/verdict.json")
    elif check_rc == 1:
        lines.append(f"verdict: VIOLATIONS FOUND (sessionraft check): {check_dir}/verdict.json")
        rc = 1
    else:
        lines.append(f"verdict: the checker could not run (exit {check_rc}; {out}/check.log)")
        rc = 2
    if load_rc != 0:
        lines.append(f"the load exited {load_rc} (see {out}/load.log)")
        if rc != 1:
            rc = 2
    if problems:
        lines.append("recovery problems:")
        lines += [f"  - {p}" for p in problems]
        if rc == 0:
            rc = 3
    return lines, rc


class Run:
    def __init__(self, o: Options, root: Path):
        self.o = o
        self.root = root
        self.cluster_sh = root / "scripts" / "cluster.sh"
        self.state_dir = root / "target" / "chaos"
        self.signals = procs.Signals()
        self.pid = os.getpid()
        self.chain = Chain(chain_name(self.pid))
        self.mounts: list[Path] = []
        self.paused_pid: int | None = None
        self.filler: Path | None = None
        self.load: subprocess.Popen | None = None
        self.terms: TermSampler | None = None
        self.check_takes_terms = False
        self.problems: list[str] = []
        self.rec: Recorder | None = None
        self.cleaning = False
        self.registered: Path | None = None
        self.bin: Path | None = None
        self.disk_node: int | None = None
        self.faketime_lib = o.faketime_lib
        self.disk_mb = o.disk_mb

    # -------------------------------------------------------------- helpers for faults.py

    def die(self, msg: str) -> None:
        raise Fatal(msg)

    def must(self, rc: int, what: str) -> None:
        if rc != 0:
            raise Fatal(f"{what} failed (exit {rc}; see {self.ops_log})")

    def nap(self, seconds: float) -> None:
        time.sleep(seconds)  # a signal interrupts it at once (the handler raises)

    def resume_paused(self) -> None:
        """SIGCONT the paused node, if it still is the process that was stopped."""
        pid, self.paused_pid = self.paused_pid, None
        if pid is not None and procs.is_sessionraft(procs.cmdline(pid)):
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass

    def free_filler(self) -> None:
        if self.filler is not None:
            try:
                self.filler.unlink()
            except OSError:
                pass
            self.filler = None

    # -------------------------------------------------------------- the run

    def preflight(self) -> None:
        o = self.o
        if o.on == "hosts":
            why = check_host_tools()
            if why is not None:
                raise UsageError(why)
        elif (schedule.needs_iptables(o.scenario) or schedule.needs_tmpfs(o.scenario)) \
                and os.geteuid() != 0:
            raise UsageError(f"{o.scenario} needs root (iptables / mount)")
        if o.on != "hosts" and schedule.needs_iptables(o.scenario) and not find_cmd("iptables"):
            raise UsageError("iptables not found (scripts/install-deps.sh --all)")
        self.have_faketime = self.faketime_lib.is_file()
        if schedule.needs_faketime(o.scenario) and not self.have_faketime:
            raise UsageError(f"libfaketime not found at {self.faketime_lib} "
                             "(scripts/install-deps.sh --all installs it)")
        if not (o.bin.is_file() and os.access(o.bin, os.X_OK)):
            raise UsageError(f"no binary at {o.bin} (build it: cargo build --release -p "
                             "sessionraft-node --bin sessionraft)")
        for c in ("curl", "python3", "haproxy", "flock", "setsid"):
            if not find_cmd(c):
                raise UsageError(f"{c} not found (scripts/install-deps.sh --cluster)")
        help_text = subprocess.run([str(o.bin), "--help"], capture_output=True, text=True,
                                   errors="replace").stdout
        for c in ("load", "check"):
            if not has_cmd(help_text, c):
                raise UsageError(f"{o.bin} has no '{c}' command (an old build; the stand-in load "
                                 "and checker of the bash script are gone): rebuild it")
        check_help = subprocess.run([str(o.bin), "check", "--help"], capture_output=True,
                                    text=True, errors="replace").stdout
        self.check_takes_terms = "--terms" in check_help

    def take_lock(self) -> None:
        (self.state_dir / ".active").mkdir(parents=True, exist_ok=True)
        self.lock_fd = os.open(self.state_dir / ".lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                               0o644)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(f"another chaos run is active (it holds {self.state_dir}/.lock; "
                             "after a chaos.sh killed with SIGKILL: scripts/chaos.sh cleanup)")
        target_dir = Path(os.environ.get("CARGO_TARGET_DIR") or self.root / "target")
        for bench_lock in {target_dir / "bench" / ".lock", self.root / "target/bench/.lock"}:
            if lock_held(bench_lock):
                raise UsageError(f"a scripts/bench.sh run is active ({bench_lock}): two loads "
                                 "would share the 2 cores")

    def make_out(self) -> None:
        o = self.o
        out = o.out or str(self.state_dir / f"{o.scenario}-{time.strftime('%Y%m%d-%H%M%S')}")
        p = Path(out) if out.startswith("/") else Path(os.getcwd()) / out
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise UsageError(f"{p} exists and is not empty: each run needs a fresh directory")
        (p / "bin").mkdir(parents=True, exist_ok=True)
        (p / "data").mkdir(parents=True, exist_ok=True)
        self.out = p.resolve()
        # the binary of this run: a hard link survives a rebuild (cargo replaces the file)
        self.bin = self.out / "bin" / "sessionraft"
        try:
            os.link(o.bin, self.bin)
        except OSError:
            shutil.copy(o.bin, self.bin)
        self.config = self.out / "config.toml"
        # on hosts: scripts/hosts.sh's state directory (its hosts/NAME/node.log: the node logs)
        self.run_dir = self.out / ("hosts" if self.o.on == "hosts" else "cluster")
        self.ops_log = self.out / "ops.log"
        self.rec = Recorder(self.out)
        self.ops_log.write_text("")

    def setup(self) -> None:
        """Ports, config, tmpfs and iptables chain (on hosts: scripts/hosts.sh makes them all
        at `up`, the configuration is the Kubernetes manifest's)."""
        o = self.o
        if o.on == "hosts":
            self.schedule = Schedule(o.seed, o.scenario, self.have_faketime)
            self.disk_node = None
            self.data_dirs = {}
            self.admin_token = ""
            self.config = self.run_dir / "cluster.toml"
            self.ca = None
            self.layout = None
            self.cluster = HostsCluster(self.root / "scripts" / "hosts.sh", self.run_dir,
                                        self.bin, self.ops_log, o.read_consistency, o.tls)
            return
        self.layout: Layout = pick_layout()
        self.ca: Path | None = None
        if o.tls:
            self.layout = dataclasses.replace(self.layout, scheme="https")
        self.admin_token = secrets.token_hex(24)
        secret = secrets.token_hex(32)
        self.schedule = Schedule(o.seed, o.scenario, self.have_faketime)
        self.disk_node = self.schedule.disk_node
        self.data_dirs = data_dirs(self.out, self.disk_node)
        self.config.write_text(config_text(o.scenario, o.seed, secret, self.admin_token,
                                           self.layout, self.data_dirs, o.read_consistency))
        if o.tls:
            self.ca = self.make_certs()
        check = [str(self.bin), "check-config", "--config", str(self.config)]
        if subprocess.run(check, capture_output=True).returncode != 0:
            subprocess.run(check, stdout=sys.stderr, stderr=sys.stderr)
            raise Fatal(f"the generated config {self.config} is invalid")
        self.cluster = Cluster(self.cluster_sh, self.config, self.run_dir, self.bin,
                               self.ops_log, self.layout)
        if self.disk_node is not None:
            m = self.out / "disk" / f"node{self.disk_node}"
            m.mkdir(parents=True, exist_ok=True)
            with self.signals.critical():
                rc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={o.disk_mb}m,mode=0755",
                                     f"chaos-{self.pid}", str(m)]).returncode
                if rc != 0:
                    raise Fatal(f"mount of a tmpfs on {m} failed (exit {rc})")
                self.mounts.append(m)
            (m / "data").mkdir(exist_ok=True)
        if schedule.needs_iptables(o.scenario):
            with self.signals.critical():
                self.chain.create()

    def make_certs(self) -> Path:
        """CHAOS_TLS=1: scripts/dev-certs.sh for the generated config (a CA, node certificates
        for 127.0.0.1N, lb.crt for HAProxy), its [tls] snippet appended; this process trusts
        the CA. The CA file."""
        r = subprocess.run(["bash", str(self.root / "scripts" / "dev-certs.sh"), "--config", str(self.config)],
                           capture_output=True, text=True, env={**os.environ, "SESSIONRAFT_BIN": str(self.bin)})
        if r.returncode != 0 or "[tls]" not in r.stdout:
            sys.stderr.write(r.stdout + r.stderr)
            raise Fatal("scripts/dev-certs.sh failed for the generated config")
        with self.config.open("a") as f:
            f.write("\n" + r.stdout[r.stdout.index("[tls]"):])
        ca = self.config.parent / "certs" / "ca.crt"
        trust_ca(ca)
        return ca

    def main(self) -> int:
        o, rec, cl, lay = self.o, self.rec, self.cluster, self.layout
        print(f"== chaos {o.scenario}: seed {o.seed}, duration {o.duration}s, rate {o.rate}/s, "
              f"users {o.users}, settle {o.settle}s")
        print(f"   run dir {self.out}")
        if self.disk_node is not None:
            print(f"   node {self.disk_node}'s data on a {o.disk_mb} MiB tmpfs (disk-full)")
        how = "scripts/hosts.sh up: a host per node" if o.on == "hosts" else "scripts/cluster.sh up"
        print(f"starting the cluster ({how}; output in {self.ops_log})...")
        if cl.sh("up") != 0:
            tail = self.ops_log.read_text(errors="replace").splitlines()[-20:]
            sys.stderr.write("".join(line + "\n" for line in tail))
            raise Fatal(f"the cluster did not come up; see {self.ops_log} and "
                        f"{self.run_dir}/logs/")
        lay = self.layout = cl.layout
        if o.on == "hosts" and o.tls:
            self.ca = cl.ca()  # made by hosts.sh up --tls (and trusted by this process)
        if cl.wait_healthy(rec, o.recover_timeout, self.problems) is None:
            raise Fatal("the fresh cluster is not healthy")
        leader = cl.find_leader()
        nodes = "".join(f"{n}={lay.http_addr(n)} " for n in NODE_IDS)
        raft = " ".join(str(lay.raft_ports[n]) for n in NODE_IDS)
        print(f"cluster up: nodes {nodes}(raft ports {raft}), leader {leader or ''}, "
              f"HAProxy {lay.lb_addr}")

        node_urls = [lay.http_url(n) for n in NODE_IDS]
        # --via lb: the users reach the cluster only through HAProxy, as a deployment's do;
        # all: also straight to every node (each node's own answers checked under faults)
        every = ",".join([lay.lb_url, *node_urls])
        targets = lay.lb_url if o.via == "lb" else every
        history = self.out / "history.jsonl"
        with self.signals.critical(), open(self.out / "load.log", "wb") as log:
            self.load = subprocess.Popen(load_argv(self.bin, targets, o, history, every, self.ca),
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            (self.out / "load.pid").write_text(f"{self.load.pid}\n")
        rec.t0 = now_ms()
        print(f"load: sessionraft load, pid {self.load.pid}, targets {targets}")
        terms_path = self.out / "terms.jsonl"
        self.terms = TermSampler(terms_path, {n: lay.http_url(n) for n in NODE_IDS})
        self.terms.start()
        rec.say(f"load started; first fault in {o.warmup}s")
        self.nap(o.warmup)

        # the schedule: each fault followed by recovery and its gap, while the next one fits in
        end_faults = rec.t0 + o.duration * 1000
        if o.scenario == "mixed" and not self.have_faketime:
            warn(f"mixed: no libfaketime at {self.faketime_lib}: clock-skew left out")
        n = 0
        for fault in self.schedule.faults():
            if not schedule.fits(n, now_ms(), fault.name, end_faults):
                break
            faults.NEMESES[fault.name](self, fault)
            n += 1
            took = cl.wait_healthy(rec, o.recover_timeout, self.problems)
            if took is not None:
                rec.say(f"cluster whole again after {fmt_s(took)}s")
            if not schedule.gap_fits(now_ms(), fault.gap, end_faults):
                break
            self.nap(fault.gap)
        rec.say(f"faults done ({n}); cluster healed")
        late = now_ms() - rec.t0 - (o.duration + o.settle) * 1000
        if late > -2000:
            warn(f"the faults ran until {fmt_s(late)}s after the load's final reads were due "
                 "(duration + settle): they may have seen an unhealed cluster; raise --duration "
                 "or CHAOS_SETTLE")

        # the load: its duration, settle and final reads
        load_rc = 0
        deadline = rec.t0 + (o.duration + o.settle + 120) * 1000
        rec.say(f"waiting for the load (duration, {o.settle}s settle, final reads)...")
        while self.load.poll() is None:
            if now_ms() > deadline:
                warn("the load is still running 120 s after duration + settle: stopping it")
                self.stop_load()
                load_rc = 124
                break
            self.nap(0.5)
        if self.load is not None:
            load_rc = procs.exit_code(procs.wait_through(self.load))
            self.load = None
        rec.say(f"load finished (exit {load_rc}; log {self.out}/load.log)")
        self.stop_terms()

        # the checker
        check_dir = self.out / "check"
        faults_path = self.out / "faults.jsonl"
        if not history.exists() or history.stat().st_size == 0:
            warn(f"no history at {history}")
            check_rc = 2
        else:
            terms = terms_path if self.check_takes_terms else None
            if terms is None:
                warn(f"{self.bin} check has no --terms (an old build): no elections per fault")
            check_rc = self.tee(check_argv(self.bin, history, ",".join(node_urls), faults_path,
                                           check_dir, terms, self.ca), self.out / "check.log")

        print()
        print(f"faults injected (times from the start of the load; {faults_path}):")
        summary = read_summary(check_dir / "summary.json")
        impacts = (summary or {}).get("faults")
        for line in fault_table(read_tsv(self.out / "faults.tsv"), rec.t0,
                                impacts if isinstance(impacts, list) else None):
            print(line)
        windows = fault_windows_line(summary)
        if windows is not None:
            print(windows)
        print()
        lines, rc = verdict_lines(check_rc, load_rc, self.problems, self.out, check_dir)
        for line in lines:
            print(line)
        if (check_dir / "summary.json").is_file():
            print(f"summary: {check_dir}/summary.json")
        if (check_dir / "report.svg").is_file():
            print(f"report:  {check_dir}/report.svg")
        logs = (f"{self.run_dir}/hosts/*/node.log" if o.on == "hosts"
                else f"{self.run_dir}/logs/")
        print(f"history: {history}   faults: {faults_path}   terms: {terms_path}   node logs: "
              f"{logs}")
        return rc

    def tee(self, argv: list[str], log: Path) -> int:
        """Runs argv, its output (stdout and stderr) both printed and written to log."""
        with open(log, "w") as f:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, errors="replace")
            for line in p.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                f.write(line)
            p.stdout.close()
            return procs.exit_code(procs.wait_through(p))

    def stop_terms(self) -> None:
        if self.terms is not None:
            self.terms.stop()
            self.terms = None

    def stop_load(self) -> None:
        if self.load is None:
            return
        procs.stop_load(self.load.pid)
        try:
            self.load.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.load = None

    # -------------------------------------------------------------- cleanup

    def cleanup(self) -> None:
        """Every fault healed, the load stopped, the cluster down, chain and mounts removed."""
        if self.cleaning:
            return
        self.cleaning = True
        procs.Signals.ignore()
        steps = [self.resume_paused, self.free_filler, self.chain.heal,
                 lambda: self.rec and self.rec.end("closed by cleanup"), self.stop_load,
                 self.stop_terms,
                 self.cluster_down, self.remove_chain, self.unmount, self.drop_bin]
        for step in steps:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - every step must get its chance
                warn(f"cleanup: {e}")
        if self.registered is not None:
            try:
                self.registered.unlink()
            except OSError:
                pass

    def cluster_down(self) -> None:
        if self.run_dir.is_dir():
            what = "scripts/hosts.sh down" if self.o.on == "hosts" else "scripts/cluster.sh down"
            print(f"stopping the cluster ({what})...", flush=True)
            if self.cluster.sh("down") != 0:
                warn(f"{what} failed; see {self.ops_log}")

    def remove_chain(self) -> None:
        if self.chain.made and not self.chain.remove():
            warn(f"could not delete iptables chain {self.chain.name}")

    def unmount(self) -> None:
        for m in self.mounts:
            # the node's data outlives the tmpfs, for a post-mortem
            keep = self.out / "data" / f"node{self.disk_node}"
            if (m / "data").is_dir() and not keep.exists():
                subprocess.run(["cp", "-a", str(m / "data"), str(keep)])
            for _ in range(10):
                if not is_mountpoint(m):
                    break
                if subprocess.run(["umount", str(m)], stderr=subprocess.DEVNULL).returncode == 0:
                    break
                time.sleep(0.5)
            if is_mountpoint(m):
                warn(f"{m} still busy; lazy unmount")
                if subprocess.run(["umount", "-l", str(m)]).returncode != 0:
                    warn(f"could not unmount {m}")

    def drop_bin(self) -> None:
        # a hard link to a binary that a rebuild replaced keeps ~0.5 GB alive: dropped unless asked
        if not self.o.keep_bin and self.bin is not None:
            try:
                self.bin.unlink()
            except FileNotFoundError:
                pass


def is_mountpoint(path: Path) -> bool:
    return subprocess.run(["mountpoint", "-q", str(path)]).returncode == 0


def run(o: Options, root: Path) -> int:
    r = Run(o, root)
    try:
        r.preflight()
        r.take_lock()
        r.make_out()
    except UsageError as e:
        print(f"chaos.sh: {e}", file=sys.stderr)
        return 2
    r.signals.install()
    rc = 2
    try:
        try:
            # for `chaos.sh cleanup`, should this run die without its cleanup (SIGKILL)
            r.registered = r.state_dir / ".active" / str(r.pid)
            r.registered.write_text(f"{r.out}\n")
            r.setup()
            rc = r.main()
        except procs.Interrupted as e:
            what = "interrupted" if e.code == 130 else "terminated"
            print(f"chaos.sh: {what} ({e.signame}): healing and cleaning up", file=sys.stderr,
                  flush=True)
            rc = e.code
        except (Fatal, UsageError) as e:
            print(f"chaos.sh: {e}", file=sys.stderr, flush=True)
            rc = 2
        except Exception:  # noqa: BLE001 - a bug: say where, clean up, exit 2
            import traceback  # noqa: PLC0415

            traceback.print_exc()
            rc = 2
    except procs.Interrupted as e:  # a second signal while the first was being reported
        rc = e.code
    finally:
        r.cleanup()
    return rc

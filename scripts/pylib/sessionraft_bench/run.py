"""One run of scripts/bench.sh (a benchmark, `smoke` or `--compare`): the lock, the installs and
binaries, the run directory, the ports, then the parts in order, the raw file and the report;
and, however it ends, the cleanup (every process it started stopped by pid, data removed)."""

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys

from . import cells, procs, report
from .catchup import run_catchup
from .cli import VALUE_BYTES
from .common import (Interrupted, Usage, deferred, ignore_signals, install_signal_handlers, nap, say, warn)
from .failover import run_failover
from .clients import run_clients
from .overload import run_overload
from .wrk import run_wrk
from .resp import run_resp
from .resp_tls import run_resp_tls
from . import meta
from .systems import Etcd, Redis, Sessionraft, cluster_down_quietly, free_ports, http_code, trust_ca


def has_command(help_text, name):
    """`sessionraft --help` lists the subcommand NAME (an indented line starting with it)."""
    return re.search(rf"^[ \t]+{re.escape(name)}([ \t]|$)", help_text, re.M) is not None


def link_or_copy(src, dst):
    """A hard link (a rebuild does not change the run's binary), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def nproc():
    """The processors this program may run on (what `nproc` prints)."""
    return len(os.sched_getaffinity(0))


def exit_status(returncode):
    """A child's exit status as bash reports it (128 + N when killed by signal N)."""
    return returncode if returncode >= 0 else 128 - returncode


class Run:
    def __init__(self, opts, root):
        self.opts, self.root = opts, root
        self.cluster_sh = os.path.join(root, "scripts", "cluster.sh")
        self.target_dir = os.environ.get("CARGO_TARGET_DIR") or os.path.join(root, "target")
        self.state_dir = os.path.join(self.target_dir, "bench")
        self.sessions = opts.sessions
        self.work = None
        self.bin = self.bin_b = self.redis_app = None
        self._server_pids_ok = None  # tool_measures_servers(), asked once
        self.help = ""
        self.failed = False
        self.children = []      # (Popen, name, group): everything started in the background
        self.child = None       # the foreground tool (bench, bench-backup, restore)
        self.load = None        # failover's background load
        self.add_node = None    # scripts/cluster.sh add-node in the background
        self.watch = None       # failover's leader watcher (a thread)
        self.sr_dirs = []       # every sessionraft cluster dir of this run
        self.lock = None

    def want(self, part):
        return self.opts.want(part)

    def has_cmd(self, name):
        return has_command(self.help, name)

    def problem(self, msg):
        warn(msg)
        with open(os.path.join(self.work, "problems.txt"), "a") as f:
            f.write(msg + "\n")
        self.failed = True

    def forget(self, p):
        self.children = [c for c in self.children if c[0] is not p]

    # processes
    def run_child(self, argv, out, err=None):
        """ARGV with stdout to OUT (and stderr to ERR, or with stdout), waited for; its exit status.
        A signal interrupts the wait at once (the cleanup stops the tool)."""
        with open(out, "wb") as fo:
            fe = open(err, "wb") if err else None
            try:
                p = procs.start(argv, stdout=fo, stderr=fe if fe else subprocess.STDOUT)
            finally:
                if fe:
                    fe.close()
        self.child = (p, os.path.basename(argv[0]))
        rc = p.wait()
        self.child = None
        return exit_status(rc)

    def stop_load(self):
        if self.load is not None:
            procs.stop(self.load, "sessionraft", group=True, grace_s=5)
            self.forget(self.load)
            self.load = None

    def stop_add_node(self):
        if self.add_node is not None:
            procs.stop(self.add_node, "bash", group=True, grace_s=5)
            self.forget(self.add_node)
            self.add_node = None

    def cleanup(self):
        """Everything this run started, stopped; data removed unless --keep; the binaries' links."""
        if self.child is not None:
            procs.stop(*self.child)
        self.stop_load()
        self.stop_add_node()
        if self.watch is not None:
            self.watch.stop.set()
            self.watch.join(timeout=5)
        for d in self.sr_dirs:
            if cluster_down_quietly(self, d) != 0:
                warn(f"cluster.sh down failed for {d} (see {d}/ops.log)")
        order = {"redis_app": 0, "redis-server": 1, "etcd": 2}
        for p, name, group in sorted(self.children, key=lambda c: order.get(c[1], 3)):
            procs.stop(p, name, group=group)
        self.children = []
        if self.work is None:
            return
        if not self.opts.keep:
            for d in self.sr_dirs:
                shutil.rmtree(os.path.join(d, "data"), ignore_errors=True)
                shutil.rmtree(os.path.join(d, "run", "data"), ignore_errors=True)
            shutil.rmtree(os.path.join(self.work, "etcd", "data"), ignore_errors=True)
            for name in ("redis", "resp-redis-cache", "resp-redis-durable",
                         *(f"clients-redis-{i}" for i in range(self.opts.pairs)),
                         *(f"wrk-redis-{i}" for i in range(self.opts.pairs)),
                         *(f"wrk-redis-durable-{i}" for i in range(self.opts.pairs))):
                shutil.rmtree(os.path.join(self.work, name, "data"), ignore_errors=True)
            try:
                os.remove(os.path.join(self.work, "catchup-backup.bin"))
            except OSError:
                pass
        # a hard link to a binary that a rebuild replaced keeps ~0.5 GB alive
        shutil.rmtree(os.path.join(self.work, "bin"), ignore_errors=True)

    # set-up
    def take_lock(self):
        os.makedirs(self.state_dir, exist_ok=True)
        path = os.path.join(self.state_dir, ".lock")
        self.lock = open(path, "a")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise Usage(f"another scripts/bench.sh runs (it holds {path})")
        chaos = os.path.join(self.target_dir, "chaos", ".lock")
        if os.path.isfile(chaos):
            with open(chaos) as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    raise Usage(f"a scripts/chaos.sh run is active ({chaos}): two loads would share the 2 cores")
                fcntl.flock(f, fcntl.LOCK_UN)

    def binaries(self):
        o = self.opts
        # the baselines (redis-server, etcd) and what scripts/cluster.sh uses, only those missing
        rc = subprocess.run([os.path.join(self.root, "scripts", "install-deps.sh"), "--bench"]).returncode
        if rc != 0:
            sys.exit(rc)
        src_bin = os.environ.get("SESSIONRAFT_BIN") or os.path.join(self.target_dir, "release", "sessionraft")
        src_app = os.environ.get("BENCH_REDIS_APP") or os.path.join(self.target_dir, "release", "examples", "redis_app")
        x = lambda p: os.path.isfile(p) and os.access(p, os.X_OK)  # noqa: E731
        need_app = o.mode == "bench" and (self.want("redis") or self.want("reads") or self.want("wrk"))
        # (smoke builds nothing for redis_app: without it, it checks redis-server alone)
        if not x(src_bin) or (need_app and not x(src_app)):
            print("building (cargo build --release --workspace --bins --examples; the first build compiles "
                  "RocksDB, ~10 min)...", file=sys.stderr, flush=True)
            rc = subprocess.run(["cargo", "build", "--release", "--workspace", "--bins", "--examples"],
                                cwd=self.root).returncode
            if rc != 0:
                sys.exit(rc)
        if not x(src_bin):
            raise Usage(f"no binary at {src_bin} after the build")
        if need_app and not x(src_app):
            raise Usage(f"no redis_app at {src_app} after the build (examples/redis_app.rs)")
        self.src_bin, self.src_app = src_bin, src_app
        r = subprocess.run([src_bin, "--help"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
        self.help = r.stdout.decode(errors="replace")
        if o.mode != "bench":
            return
        for part in ("resp", "clients", "resp-tls"):
            if self.want(part) and not shutil.which("redis-benchmark"):
                raise Usage(f"no redis-benchmark on PATH (Debian's redis-tools; needed for --only {part})")
        if self.want("wrk") and not shutil.which("wrk"):
            raise Usage("no wrk on PATH (Debian's wrk, scripts/install-deps.sh --bench; needed for --only wrk)")
        if any(self.want(p) for p in ("sessionraft", "redis", "etcd", "reads", "resp", "clients", "overload")):
            if not self.has_cmd("bench"):
                raise Usage(f"{src_bin} has no 'bench' command (needed for the matrix; --only failover,catchup runs "
                            "without it)")
        backup = os.environ.get("BENCH_BACKUP") or ""
        if self.want("catchup") and backup:
            if not os.path.isfile(backup):
                raise Usage(f"BENCH_BACKUP: no file {backup}")
            r = subprocess.run([src_bin, "backup-info", backup], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            info = r.stdout.decode(errors="replace").rstrip("\n")
            if r.returncode != 0:
                raise Usage(f"BENCH_BACKUP: {info}")
            m = re.search(r": ([0-9]+) sessions", info)
            if not m:
                raise Usage(f"BENCH_BACKUP: no session count in: {info}")
            self.sessions = int(m.group(1))
            if not self.has_cmd("restore"):
                raise Usage(f"{src_bin} has no 'restore' command (needed for the catch-up)")
        elif self.want("catchup"):
            if not self.has_cmd("bench-backup"):
                raise Usage(f"{src_bin} has no 'bench-backup' command (needed for the catch-up)")
            if not self.has_cmd("restore"):
                raise Usage(f"{src_bin} has no 'restore' command (needed for the catch-up)")

    def make_work(self):
        """The run directory; the binaries of this run are hard links."""
        o = self.opts
        self.stamp = meta.local_time(fmt="%Y%m%d-%H%M%S")
        work = os.path.join(self.state_dir, f"run-{self.stamp}")
        if os.path.exists(work):
            raise Usage(f"{work} exists")
        os.makedirs(os.path.join(work, "bin"))
        os.makedirs(os.path.join(work, "cells"))
        self.work = work
        self.bin = os.path.join(work, "bin", "sessionraft")
        link_or_copy(self.src_bin, self.bin)
        if o.compare:
            # named sessionraft too: scripts/cluster.sh recognizes its nodes by that name
            os.makedirs(os.path.join(work, "bin", "b"))
            self.bin_b = os.path.join(work, "bin", "b", "sessionraft")
            link_or_copy(o.compare, self.bin_b)
            if not o.out_given:
                o.out = os.path.join(work, "compare.md")
        if ((self.want("redis") or self.want("reads") or self.want("wrk")) and os.path.isfile(self.src_app)
                and os.access(self.src_app, os.X_OK)):
            self.redis_app = os.path.join(work, "bin", "redis_app")
            link_or_copy(self.src_app, self.redis_app)
        open(os.path.join(work, "problems.txt"), "w").close()
        ports = free_ports(15)
        self.sr_ports = {1: ports[0], 2: ports[1], 3: ports[2], 4: ports[3]}
        self.redis_port, self.app_port = ports[4], ports[5]
        self.etcd_client = {1: ports[6], 2: ports[7], 3: ports[8]}
        self.etcd_peer = {1: ports[9], 2: ports[10], 3: ports[11]}
        self.sr_resp_ports = {1: ports[12], 2: ports[13], 3: ports[14]}

    # TLS (--tls, the resp-tls part): one development CA per run, in WORK/certs
    def ca(self):
        return os.path.join(self.work, "certs", "ca.crt")

    def ca_for(self, targets):
        """The CA of https:// targets (None for http://)."""
        return self.ca() if targets.startswith("https://") else None

    def tls_snippet(self, config):
        """scripts/dev-certs.sh for CONFIG (the run's CA in WORK/certs, made once; node
        certificates for the run's ports); its [tls] section. curl trusts the CA from now on."""
        # node 4: the catch-up part adds it later
        r = subprocess.run(["bash", os.path.join(self.root, "scripts", "dev-certs.sh"), "--config", config,
                            "--out", os.path.join(self.work, "certs"), "--node", "4=127.0.0.1"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, env=dict(os.environ, SESSIONRAFT_BIN=self.bin))
        if r.returncode != 0 or "[tls]" not in r.stdout:
            raise Usage(f"scripts/dev-certs.sh failed for {config}: {(r.stdout + r.stderr).strip()}")
        trust_ca(self.ca())
        return r.stdout[r.stdout.index("[tls]"):]

    # the matrix
    def cell(self, system, kind, targets, w, c):
        o = self.opts
        name = cells.cell_name(system, w, c)
        argv = cells.bench_command(self.bin, targets, w, c, o.duration, o.warmup, kind, VALUE_BYTES,
                                   ca=self.ca_for(targets))
        say(f"{system}: {w}, {c} connections ({o.warmup}s warm-up + {o.duration}s)")
        base = os.path.join(self.work, "cells", name)
        with open(base + ".cmd", "w") as f:
            f.write(cells.quoted(argv))
        rc = self.run_child(argv, base + ".json", base + ".err")
        rec = cells.cell_record(system, kind, w, c, rc, base + ".json", base + ".err")
        with open(os.path.join(self.work, "runs.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(cells.cell_line(rec), file=sys.stderr, flush=True)
        if rec["status"] == "failed":
            self.problem(f"{system} {w}/{c} failed (see {base}.err)")
        nap(1)

    def matrix(self, system, kind, targets):
        for w, c in cells.plan_matrix(self.opts.workloads, self.opts.connections):
            self.cell(system, kind, targets, w, c)

    def tool_measures_servers(self):
        """Whether this run's `sessionraft bench` takes --server-pids (an older binary does not)."""
        if self._server_pids_ok is None:
            r = subprocess.run([self.bin, "bench", "--help"], stdin=subprocess.DEVNULL, capture_output=True,
                               text=True)
            self._server_pids_ok = "--server-pids" in r.stdout
        return self._server_pids_ok

    def reads_cell(self, system, consistency, targets, w, c, pids=()):
        """One cell of the `reads` part: the one-thread load tool; its record (with the read
        consistency and the load tool's threads) in reads.jsonl. PIDS: the system's processes,
        whose CPU per request the tool reports (when it can)."""
        o = self.opts
        threads = cells.READS_LOAD_THREADS
        name = cells.reads_cell_name(system, consistency, w, c)
        pids = [p for p in pids if p] if self.tool_measures_servers() else []
        argv = cells.bench_command(self.bin, targets, w, c, o.duration, o.warmup, "session", VALUE_BYTES, threads,
                                   ca=self.ca_for(targets), server_pids=pids)
        mode = f", {consistency} mode" if consistency else ""
        say(f"reads: {system}{mode}: {w}, {c} connections, {threads}-thread load tool "
            f"({o.warmup}s warm-up + {o.duration}s)")
        base = os.path.join(self.work, "cells", name)
        with open(base + ".cmd", "w") as f:
            f.write(cells.quoted(argv))
        rc = self.run_child(argv, base + ".json", base + ".err")
        rec = cells.cell_record(system, "session", w, c, rc, base + ".json", base + ".err")
        rec["read_consistency"], rec["load_threads"] = consistency, threads
        with open(os.path.join(self.work, "reads.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(cells.cell_line(rec), file=sys.stderr, flush=True)
        if rec["status"] == "failed":
            self.problem(f"reads: {system}{mode} {w}/{c} failed (see {base}.err)")
        nap(1)

    def reads(self):
        """The `reads` part (issue 18): sessionraft in each read consistency on a fresh cluster,
        then the Redis app, every cell with the one-thread load tool."""
        plan = cells.plan_reads()
        open(os.path.join(self.work, "reads.jsonl"), "w").close()
        for consistency in cells.READ_CONSISTENCIES:
            mine = [(w, c) for s, rc, w, c in plan if s == "sessionraft" and rc == consistency]
            if not mine:
                continue
            sr = Sessionraft(self, f"reads-{consistency}", self.bin, read_consistency=consistency).setup()
            sr.up()
            for w, c in mine:
                self.reads_cell("sessionraft", consistency, sr.targets(), w, c, [sr.node_pid(i) for i in (1, 2, 3)])
            sr.down()
        mine = [(w, c) for s, rc, w, c in plan if s == "redis"]
        if mine:
            if not self.redis_app:
                self.problem(f"reads: no redis_app at {self.src_app}: the Redis app's reads not measured")
                return
            redis = Redis(self)
            redis.up()
            for w, c in mine:
                self.reads_cell("redis", None, redis.url(), w, c, [p.pid for p in (redis.server, redis.app) if p])
            redis.down()

    # the modes
    def smoke(self):
        sr = Sessionraft(self, "smoke", self.bin).setup()
        sr.up()
        for i in (1, 2, 3):
            code = http_code(f"{sr.scheme}://{sr.addr(i)}/api/counter", 5, ("-X", "POST"))
            if code != "200":
                raise Usage(f"sessionraft node {i}: POST /api/counter answered {code}")
            say(f"sessionraft node {i}: POST /api/counter 200")
        sr.down()
        redis = Redis(self)
        redis.up()
        if self.redis_app:
            say("redis_app: POST /api/counter 200")
        else:
            say(f"redis: no redis_app at {self.src_app} (redis-server only)")
        redis.down()
        etcd = Etcd(self)
        etcd.up()
        etcd.down()
        say("smoke: every system started, answered and stopped")
        return 0

    def compare(self):
        o = self.opts
        say(f"A/B run {self.work}: A = {self.src_bin}, B = {o.compare}; {o.pairs} pairs per cell; "
            f"cells {o.warmup}s + {o.duration}s")
        runs = os.path.join(self.work, "runs.jsonl")
        open(runs, "w").close()
        for w, c, pair, side in cells.plan_compare(o.workloads, o.connections, o.pairs):
            sr = Sessionraft(self, f"ab-{w}-{c}-{pair}-{side}", self.bin if side == "A" else self.bin_b).setup()
            sr.up()
            self.cell(f"sessionraft-{side}-{pair}", "session", sr.targets(), w, c)
            sr.down()
        os.makedirs(os.path.dirname(o.out), exist_ok=True)
        text = report.compare_markdown(report.read_jsonl(runs), a=self.src_bin, b=o.compare,
                                       git=meta.git_rev(self.root), nproc=nproc(), warmup=o.warmup,
                                       duration=o.duration)
        with open(o.out, "w") as f:
            f.write(text)
        sys.stdout.write(text)
        sys.stdout.flush()
        say(f"A/B: written to {o.out}")
        return 1 if self.failed else 0

    def bench(self):
        o = self.opts
        if o.parts == ("resp-tls",):
            return self.resp_tls_only()
        parts = [p for p in ("sessionraft", "redis", "etcd", "reads", "resp", "clients", "wrk", "overload", "failover",
                              "catchup") if self.want(p)]
        say(f"benchmark run {self.work}: parts {' '.join(parts)}; cells {o.warmup}s + {o.duration}s; "
            f"failover {o.trials} trials; catch-up {self.sessions} sessions")
        redis_ver = etcd_ver = app_mtime = ""
        if any(self.want(p) for p in ("redis", "reads", "resp", "clients", "wrk")):
            redis_ver = meta.first_line(meta._out(["redis-server", "--version"]))
            if self.redis_app:
                app_mtime = meta.mtime_text(self.redis_app)
        if self.want("etcd") or self.want("resp"):
            etcd_ver = meta.first_line(meta._out(["etcd", "--version"]))
        sr = Sessionraft(self, "matrix", self.bin).setup()  # also gives the [raft] settings of the report
        bm = {"BM_STARTED": meta.local_time(), "BM_COMMAND": "scripts/bench.sh" + (f" {o.args_text}" if o.args_text else ""),
              "BM_NPROC": str(nproc()), "BM_CPU": meta.cpu_model(), "BM_MEM": meta.mem_total_kib(),
              "BM_KERNEL": os.uname().release, "BM_OS": meta.os_name(), "BM_DISK": meta.machine_disk(self.work),
              "BM_DSYNC": meta.dsync_rate(self.work), "BM_LOADAVG": meta.loadavg(), "BM_GIT": meta.git_rev(self.root),
              "BM_SR_VERSION": meta.first_line(meta._out([self.bin, "--version"])),
              "BM_SR_MTIME": meta.mtime_text(self.bin), "BM_REDIS": redis_ver, "BM_APP_MTIME": app_mtime,
              "BM_ETCD": etcd_ver, "BM_QUICK": "1" if o.quick else "0", "BM_DURATION": str(o.duration),
              "BM_WARMUP": str(o.warmup), "BM_WORKLOADS": " ".join(o.workloads),
              "BM_CONNECTIONS": " ".join(map(str, o.connections)), "BM_VALUE_BYTES": str(VALUE_BYTES),
              "BM_TRIALS": str(o.trials), "BM_RATE": str(o.failover_rate), "BM_SESSIONS": str(self.sessions),
              "BM_PARTS": "".join(p + " " for p in parts)}
        meta.write_meta(bm, sr.config, os.path.join(self.work, "meta.json"))
        open(os.path.join(self.work, "runs.jsonl"), "w").close()
        if self.want("sessionraft") or self.want("failover"):
            sr.up()
            if self.want("sessionraft"):
                self.matrix("sessionraft", "session", sr.targets())
                say("memory after the matrix:")
                sr.record_memory((1, 2, 3), os.path.join(self.work, "memory-matrix.jsonl"))
            if self.want("failover"):
                run_failover(self, sr)
            sr.down()
        if self.want("redis"):
            redis = Redis(self)
            redis.up()
            self.matrix("redis", "session", redis.url())
            redis.down()
        if self.want("etcd"):
            etcd = Etcd(self)
            etcd.up()
            self.matrix("etcd", "etcd", etcd.endpoints())
            etcd.down()
        if self.want("reads"):
            self.reads()
        if self.want("resp"):
            run_resp(self)
        if self.want("clients"):
            run_clients(self)
        if self.want("wrk"):
            run_wrk(self)
        if self.want("overload"):
            run_overload(self)
        if self.want("catchup"):
            run_catchup(self)
        resp_tls = run_resp_tls(self) if self.want("resp-tls") else ""
        raw = os.path.join(os.path.dirname(o.out), f"raw-{self.stamp}.json")
        os.makedirs(os.path.dirname(o.out), exist_ok=True)
        report.assemble(self.work, raw)
        report.write_report(raw, o.out)
        if resp_tls:
            with open(o.out, "a") as f:
                f.write("\n" + resp_tls)
        say(f"results: {o.out} (raw: {raw}; logs: {self.work})")
        with open(o.out) as f:
            lines = f.read().splitlines(keepends=True)
        start = next((i for i, line in enumerate(lines) if line.startswith("## Targets")), len(lines))
        sys.stdout.write("".join(lines[start:]))
        sys.stdout.flush()
        return 1 if self.failed else 0

    def resp_tls_only(self):
        """`--only resp-tls`: the part alone; its Markdown to --out (default
        bench/RESP-TLS.md, not the full run's RESULTS.md) and stdout."""
        o = self.opts
        say(f"benchmark run {self.work}: part resp-tls; {o.pairs} pairs; cells {o.warmup}s + {o.duration}s")
        md = run_resp_tls(self)
        out = o.out if o.out_given else os.path.join(self.root, "bench", "RESP-TLS.md")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write(f"# sessionraft: TLS on the Redis protocol\n\n`scripts/bench.sh {o.args_text}` "
                    f"at {meta.local_time()} (git {meta.git_rev(self.root)}).\n\n" + md)
        say(f"results: {out} (logs: {self.work})")
        sys.stdout.write(md)
        return 1 if self.failed else 0

    def go(self):
        self.take_lock()
        self.binaries()
        self.make_work()
        if self.opts.mode == "smoke":
            return self.smoke()
        if self.opts.compare:
            return self.compare()
        return self.bench()


def main(opts, root):
    """Run; returns the exit status (0, 1 some measurement failed, 2 usage or set-up, 130/143)."""
    sys.stdout.reconfigure(line_buffering=True)
    install_signal_handlers()
    run = Run(opts, root)
    rc = 0
    try:
        rc = run.go()
    except Usage as e:
        print(f"bench.sh: {e}", file=sys.stderr, flush=True)
        rc = 2
    except Interrupted as e:
        print(e.message, file=sys.stderr, flush=True)
        rc = e.code
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    finally:
        ignore_signals()
        try:
            with deferred():
                run.cleanup()
        except Exception as e:  # the cleanup must not hide the run's status
            warn(f"cleanup: {e}")
    return rc

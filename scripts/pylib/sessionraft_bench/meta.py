"""The description of a run at its start (meta.json: the machine, the versions, the settings and
the [raft] settings of the generated config), and the probes that fill it in."""

import json
import os
import re
import subprocess
import time

RAFT_DEFAULTS = {"heartbeat_ms": 100, "election_timeout_min_ms": 210, "election_timeout_max_ms": 300,
                 "snapshot_logs_since_last": 5000, "max_in_snapshot_log_to_keep": 1000,
                 "install_snapshot_timeout_ms": 10000, "request_deadline_ms": 3000, "rpc_timeout_ms": 1000}


def num(v):
    """A number given as text ('' and 'null': None; other text stays text)."""
    if v == "null" or v == "":
        return None
    if re.fullmatch(r"-?[0-9]+", v):
        return int(v)
    if re.fullmatch(r"-?[0-9]+\.[0-9]+", v):
        return float(v)
    return v


def meta_doc(bm, config):
    """meta.json from BM (the run's description: BM_STARTED, BM_COMMAND, ... as text, the names the
    bash version passed in its environment) and the [raft] table of the config file CONFIG."""
    import tomllib
    with open(config, "rb") as f:
        raft = {**RAFT_DEFAULTS, **tomllib.load(f).get("raft", {})}

    def opt(k):
        return bm.get(k) or None

    return {
        "started": bm["BM_STARTED"], "command": bm["BM_COMMAND"],
        "machine": {"nproc": int(bm["BM_NPROC"]), "cpu": bm["BM_CPU"], "mem_total_kib": int(bm["BM_MEM"]),
                    "kernel": bm["BM_KERNEL"], "os": bm["BM_OS"], "disk": bm["BM_DISK"],
                    "dsync_writes_per_s": num(bm["BM_DSYNC"]), "loadavg_at_start": bm["BM_LOADAVG"]},
        "versions": {"sessionraft_git": bm["BM_GIT"], "sessionraft_version": bm["BM_SR_VERSION"],
                     "sessionraft_binary_mtime": bm["BM_SR_MTIME"], "redis": opt("BM_REDIS"),
                     "redis_app_binary_mtime": opt("BM_APP_MTIME"), "etcd": opt("BM_ETCD")},
        "settings": {"quick": bm["BM_QUICK"] == "1", "duration_s": int(bm["BM_DURATION"]),
                     "warmup_s": int(bm["BM_WARMUP"]),
                     "workloads": bm["BM_WORKLOADS"].split(), "connections": [int(x) for x in bm["BM_CONNECTIONS"].split()],
                     "value_bytes": int(bm["BM_VALUE_BYTES"]), "failover_trials": int(bm["BM_TRIALS"]),
                     "failover_rate_per_s": int(bm["BM_RATE"]), "catchup_sessions": int(bm["BM_SESSIONS"]),
                     "parts": bm["BM_PARTS"].split(), "raft": raft,
                     "redis_cmd": "redis-server --bind 127.0.0.1 --port P --save '' --appendonly no",
                     "etcd_cmd": "etcd --name eN --data-dir D --listen-client-urls/--listen-peer-urls on 127.0.0.1, "
                                 "--initial-cluster-state new (defaults otherwise)"},
    }


def write_meta(bm, config, path):
    with open(path, "w") as f:
        f.write(json.dumps(meta_doc(bm, config), indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# probes


def _out(cmd, **kw):
    """A command's stdout as text ('' when it cannot run)."""
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, **kw)
    except OSError:
        return ""
    return r.stdout.decode(errors="replace")


def first_line(text):
    return text.split("\n", 1)[0] if text else ""


def local_time(t=None, fmt="%Y-%m-%dT%H:%M:%S%z"):
    return time.strftime(fmt, time.localtime(t))


def mtime_text(path):
    """`date -r PATH '+%Y-%m-%d %H:%M:%S %z'`."""
    return local_time(os.stat(path).st_mtime, "%Y-%m-%d %H:%M:%S %z")


def cpu_model(cpuinfo="/proc/cpuinfo"):
    try:
        with open(cpuinfo) as f:
            for line in f:
                if "model name" in line:
                    return line.split(":", 1)[1].lstrip(" ").rstrip("\n") if ":" in line else ""
    except OSError:
        pass
    return ""


def mem_total_kib(meminfo="/proc/meminfo"):
    with open(meminfo) as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return line.split()[1]
    return ""


def os_name(path="/etc/os-release"):
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                if k == "PRETTY_NAME":
                    return v.replace('"', "")
    except OSError:
        pass
    return ""


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split(" ")[:3])


def machine_disk(work):
    """The device of the run dir: 'SOURCE (FSTYPE, SIZE[, non-rotational|, rotational per the kernel])'."""
    src, _, fs = first_line(_out(["findmnt", "-n", "-T", work, "-o", "SOURCE,FSTYPE"])).strip().partition(" ")
    fs = fs.strip()
    size_lines = _out(["df", "-h", "--output=size", work]).strip().splitlines()
    size = size_lines[-1].replace(" ", "") if size_lines else ""
    dev = first_line(_out(["lsblk", "-no", "PKNAME", src])).strip() or src.rsplit("/", 1)[-1]
    rota = ""
    try:
        with open(f"/sys/block/{dev}/queue/rotational") as f:
            rota = ", non-rotational" if f.read().strip() == "0" else ", rotational per the kernel"
    except OSError:
        pass
    return f"{src} ({fs}, {size}{rota})"


def dsync_rate(work, n=500):
    """Synced 4 KiB writes per second on the disk of the data dirs (dd oflag=dsync), or '?'."""
    f = os.path.join(work, "dsync.test")
    t = time.monotonic()
    r = subprocess.run(["dd", "if=/dev/zero", f"of={f}", "bs=4k", f"count={n}", "oflag=dsync"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ms = int((time.monotonic() - t) * 1000)
    if os.path.exists(f):
        os.remove(f)
    if r.returncode != 0:
        return "?"
    return str(n * 1000 // (ms if ms > 0 else 1))


def git_rev(root):
    rev = _out(["git", "-C", root, "rev-parse", "--short=12", "HEAD"]).strip() or "unknown"
    if _out(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"]).strip():
        rev += " (with uncommitted changes)"
    return rev

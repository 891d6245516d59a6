"""The matrix cells: which cells a run measures (and in which order), the `sessionraft bench`
command of one cell, and the record (one line of runs.jsonl) made from its exit status, stdout
and stderr."""

import json
import os
import shlex

NEEDED = ("ok", "errors", "throughput_per_s", "p50_ms", "p99_ms")


def plan_matrix(workloads, connections):
    """(workload, connections) of every cell of a system, in the order they run."""
    return [(w, c) for w in workloads for c in connections]


def plan_compare(workloads, connections, pairs):
    """(workload, connections, pair, side) of every cell of --compare: per cell, PAIRS pairs of
    A then B."""
    return [(w, c, p, side) for w, c in plan_matrix(workloads, connections)
            for p in range(1, pairs + 1) for side in ("A", "B")]


READS_LOAD_THREADS = 1
READ_CONSISTENCIES = ("session", "linearizable")


def plan_reads(connections=(32, 256)):
    """The cells of the `reads` part (issue 18), in the order they run, as (system,
    read_consistency, workload, connections): sessionraft in `session` mode (reads, then
    writes; one fresh cluster), in `linearizable` mode (reads; another fresh cluster), then the
    Redis app's reads (read_consistency None). Every one with the one-thread load tool."""
    out = [("sessionraft", "session", w, c) for w in ("read", "write") for c in connections]
    out += [("sessionraft", "linearizable", "read", c) for c in connections]
    out += [("redis", None, "read", c) for c in connections]
    return out


def cell_name(system, workload, connections):
    return f"{system}-{workload}-{connections}"


def reads_cell_name(system, consistency, workload, connections):
    """The name of a `reads` cell (its files in WORK/cells/)."""
    mode = f"-{consistency}" if consistency else ""
    return f"reads-{system}{mode}-{workload}-{connections}"


def bench_command(binary, targets, workload, connections, duration, warmup, kind, value_bytes=200, threads=None,
                  ca=None, server_pids=()):
    """The argv of `sessionraft bench` for one cell (etcd: with --value-bytes; with --threads
    when THREADS is given, else the tool's default; https targets verified against CA; with
    SERVER_PIDS, the CPU time of those processes is measured over the window too)."""
    args = [binary, "bench", "--targets", targets, "--workload", workload, "--connections", str(connections),
            "--duration", str(duration), "--warmup", str(warmup), "--kind", kind, "--json"]
    if ca is not None:
        args += ["--ca", ca]
    if server_pids:
        args += ["--server-pids", ",".join(str(p) for p in server_pids)]
    if kind == "etcd":
        args += ["--value-bytes", str(value_bytes)]
    if threads is not None:
        args += ["--threads", str(threads)]
    return args


def quoted(argv):
    """The command as bash's `printf '%q '` wrote it to cells/NAME.cmd (near enough: shell-quoted,
    each word followed by a space)."""
    return "".join(shlex.quote(a) + " " for a in argv)


def _read(path):
    if not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return f.read()


def parse_result(text):
    """The JSON result on a cell's stdout: all of it, or else the last line that is a JSON value
    starting with '{'; None when there is none."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        if line.strip().startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def cell_record(system, kind, workload, connections, rc, out_path, err_path):
    """The record of one cell: status ok when the tool exited 0 with a JSON result that has
    ok/errors/throughput_per_s/p50_ms/p99_ms; else failed, with why (and the last 3 lines of its
    stderr)."""
    rec = {"system": system, "kind": kind, "workload": workload, "connections": int(connections),
           "status": "failed", "error": None, "result": None}
    result = parse_result(_read(out_path))
    rc = int(rc)
    if rc == 0 and isinstance(result, dict) and all(k in result for k in NEEDED):
        rec["status"], rec["result"] = "ok", result
    else:
        tail = _read(err_path).strip().splitlines()[-3:] if os.path.exists(err_path) else []
        why = f"exit {rc}" if rc != 0 else "no JSON result with ok/errors/throughput_per_s/p50_ms/p99_ms on stdout"
        rec["error"] = why + (": " + " / ".join(tail) if tail else "")
        rec["result"] = result if isinstance(result, dict) else None
    return rec


def cell_line(rec):
    """The progress line of a cell's record (on stderr)."""
    r = rec["result"] or {}
    if rec["status"] == "ok":
        return (f"  -> {r['throughput_per_s']:.0f}/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                f"ok {r['ok']}, errors {r['errors']}")
    return f"  -> FAILED: {rec['error']}"

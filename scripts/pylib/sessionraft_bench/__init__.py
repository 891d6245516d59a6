"""sessionraft_bench: scripts/bench.sh as a program (Python 3.11, standard library only).

scripts/bench.sh keeps the command line (see its header comment, which is also the --help text)
and runs `python3 -m sessionraft_bench "$@"` with PYTHONPATH=scripts/pylib. The package still
runs the other tools as programs: scripts/cluster.sh (start/stop/add nodes), `sessionraft bench`
(each matrix cell), `sessionraft load`, `bench-backup`, `restore`, redis-server, redis_app, etcd,
etcdctl, redis-benchmark and curl (every HTTP check, as before, so the timings include the same client).

Module map:
  cli.py       the command line: usage text (from bench.sh's header), `report` and `summary`,
               the options of a run (Options, parse_run_args: bash's checks and messages, exit 2),
               main() dispatching to them or to run.py
  report.py    pure functions on raw documents: targets() and verdicts, report_markdown() (the
               RESULTS.md of one raw file), summary_markdown() (the targets over several runs,
               medians), compare_markdown() (the A/B table), assemble_doc() (the raw JSON of a run
               from its pieces), the number formats and the nearest-rank p50
  cells.py     the matrix: the cells' order (plan_matrix, plan_compare), the `sessionraft bench`
               command of a cell, and a cell's record from its exit status, stdout and stderr
  systems.py   the systems under test: free ports, the generated cluster config, a sessionraft
               cluster through scripts/cluster.sh (status, leader, wait until whole, memory),
               Redis + redis_app, a 3-member etcd
  resp.py      the `resp` part (issue 20): redis-benchmark's command, its CSV and a cell's record;
               sessionraft's RESP on the leader, redis-server as a cache and durable, etcd's put and
               linearizable range, every cell with a one-thread load tool
  clients.py   the `clients` part (issue 29): the apps of tests/resp_clients and redis-benchmark
               -P 16 on the door against durable Redis, alternating pairs; running_app() and
               pairs_table() are shared with wrk.py
  wrk.py       the `wrk` part (issue 29, --only wrk): the HTTP ratio cells with `wrk -t1`, its Lua
               script generated (session cookies round robin, done() printing JSON), its output
               parsed, alternating pairs
  overload.py  the `overload` part (issue 29): capacity (closed loop), then the open loop
               (`sessionraft bench --rate`) at 3x it with every node's VmRSS sampled; its targets
               and report section
  resp_tls.py  the `resp-tls` part (issue 28, --only resp-tls): the door with TLS against without,
               alternating clusters per pair, and its table
  failover.py  the failover trials (SIGKILL the leader, time to the first 200 and to a new
               leader seen by a watcher thread) under `sessionraft load`
  catchup.py   restore N sessions, add a 4th node, time its catch-up; memory of every node
  meta.py      meta.json: machine, versions, settings and the [raft] settings; the probes
               (disk, dsync rate, git revision, ...)
  procs.py     processes: /proc/PID/cmdline checks (is_ours, is_node), start in a process group
               or session, stop by pid (TERM, then KILL) only while the pid still runs the program
  common.py    messages (say, warn), Usage (exit 2) and Interrupted (130/143), the signal
               handling (deferred() for scripts/cluster.sh calls, as bash's traps waited)
  run.py       one run: lock (target/bench/.lock, not during a chaos run), install-deps and
               binaries, run dir target/bench/run-*/ with hard-linked binaries, the parts in
               order (smoke, --compare pairs, or matrix/failover/catch-up), raw file and report,
               and the cleanup that stops everything started, whatever the exit
Tests: scripts/pylib/tests/test_bench_*.py; the expected outputs in tests/fixtures/bench/ were
made by the original bash script (fixtures/bench/make.sh).
"""

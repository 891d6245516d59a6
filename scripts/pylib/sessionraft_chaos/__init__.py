"""sessionraft_chaos: the chaos runs of scripts/chaos.sh (which only execs `python3 -m
sessionraft_chaos "$@"` with PYTHONPATH=scripts/pylib). Standard library only.

A run starts a fresh local 3-node cluster (scripts/cluster.sh, HAProxy in front), drives it with
`sessionraft load`, injects a seeded schedule of real faults, waits after each until the cluster
is whole again, and runs `sessionraft check` on the history; the command line, environment,
output, OUT directory and exit codes are those of the former bash script (see its header).

Module map:
    cli.py        the command line (SCENARIO [--duration S] [--rate R] [--seed N] [--out DIR]
                  [--users N] [--via all|lb] [--on loopback|hosts], list, cleanup, --help) and the CHAOS_* / SESSIONRAFT_BIN
                  environment; bad input exits 2
    schedule.py   the seeded schedule: the bash script's 64-bit LCG (same seed, same draws),
                  the scenarios (mixed's pool unchanged by pause-leader/-follower), each
                  fault's hold range and time estimate, plan() (a preview with the estimates)
    faults.py     the nemeses: kill-leader/-random, pause, pause-leader/-follower,
                  partition-leader/-minority, rolling-restart, clock-skew (libfaketime),
                  disk-full (tmpfs), wipe-and-rejoin
    netfilter.py  the iptables commands: the run's own chain chaos-PID-in, partition rules,
                  heal, removal; whether peer connections are bound to the nodes' IPs
    cluster.py    scripts/cluster.sh calls (output to ops.log) and the nodes' state over HTTP
                  (/cluster/status, /readyz, HAProxy stats); find_leader, wait_healthy
    hosts.py      --on hosts: the same interface over scripts/hosts.sh (sessionraft_hosts):
                  a host (network namespace) per node, started as its Kubernetes pod; link
                  cuts for the partitions
    config.py     the run's addresses (127.0.0.11-13, free ports) and its config.toml
    record.py     fault windows (faults.jsonl, faults.tsv), the [   t.ttts] progress lines,
                  the table of faults (with the checker's window, elections and term per fault)
    terms.py      every node's /cluster/status every 100 ms while the load runs (terms.jsonl,
                  for `sessionraft check --terms`), one thread per node
    procs.py      pid files and /proc/PID/cmdline checks, children, SIGINT/SIGTERM handling
    run.py        one run: preflight, locks (target/chaos/.lock; refused while
                  target/bench/.lock is held), OUT, setup, load, faults, check, verdict, and
                  the cleanup every exit goes through
    cleanup.py    `chaos.sh cleanup`: what a run killed with SIGKILL left behind
    __main__.py   python3 -m sessionraft_chaos

Tests: scripts/pylib/tests/test_chaos_*.py (unittest, no root needed).
"""

"""sessionraft_cluster: the operator commands of scripts/cluster.sh (which only execs
`python3 -m sessionraft_cluster "$@"` with PYTHONPATH=scripts/pylib). Standard library only.

It runs a cluster from its config (SESSIONRAFT_CONFIG) behind an HAProxy load balancer: nodes
as processes with pid files and logs under the run dir (SESSIONRAFT_RUN_DIR), HAProxy's config
generated from the nodes, readiness and the leader read over HTTP, membership changed through
`sessionraft cluster add-node|remove-node`. The command lines, environment, run-dir layout,
output lines and exit codes are those of the former shell script (see its header, which is
also the --help text).

Module map (each depends only on those above it):
    console.py     stdout lines (thread-safe), `cluster.sh: ...` warnings, Die / Exit
    clock.py       now_ms, `1.234s` durations, monotonic deadlines
    settings.py    the environment read once (config, run dir, binaries, ready timeout, load
                   balancer overrides), --bin; the build step (install-deps.sh --cluster, cargo)
    rundir.py      the run dir's files: nodeN.pid, nodeN.bin, logs/, extra-nodes, removed-nodes,
                   the flock
    procs.py       /proc/PID/cmdline checks (nothing is signalled by name), starting a process in
                   a session of its own, stop (SIGTERM, SIGKILL after 10 s) and kill
    topology.py    the nodes (`sessionraft nodes --json`, or the tab-separated listing) with
                   extra-nodes and removed-nodes; the load balancer's addresses; host:port
    probe.py       /readyz, /healthz, /cluster/status; wait until ready; the current leader
    haproxy.py     haproxy.cfg rendering, the stats CSV, start / reload / stop, wait until UP
    status.py      the `status` table and `lb-status`
    commands.py    up, down, start, stop, kill, restart, logs (a node is never started over
                   an address something else already answers on)
    rolling.py     rolling-restart: followers first, the leader last, one node out at a time
    upgrade.py     upgrade BIN: the rolling upgrade (refusals, order, a line per node, the
                   cluster version at the end)
    membership.py  add-node, remove-node
    cli.py         the command line; exit codes
    __main__.py    python3 -m sessionraft_cluster

Tests: scripts/pylib/tests/test_cluster_*.py (unittest, no root, loopback only).
"""

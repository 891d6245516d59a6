#!/usr/bin/env bash
# Chaos runs against a fresh local 3-node sessionraft cluster (plus HAProxy), under load, followed
# by a consistency check of everything the clients saw.
#
#   scripts/chaos.sh SCENARIO [--duration S] [--rate R] [--seed N] [--out DIR] [--users N]
#                    [--via all|lb] [--on loopback|hosts]
#   scripts/chaos.sh list       the scenarios, one line each
#   scripts/chaos.sh cleanup    remove what a chaos run killed with SIGKILL left behind (its cluster,
#                               iptables chains, tmpfs mounts); a normal run, even a failed or
#                               interrupted one, cleans up after itself
#
# Scenarios (each fault is repeated, with gaps, as long as the duration allows; at least once):
#   kill-leader         SIGKILL the leader, start it again after 2-5 s
#   kill-random         SIGKILL a random node, start it again after 2-5 s
#   pause               SIGSTOP a node (the leader or a random one), SIGCONT after 3-7 s
#   pause-leader        SIGSTOP the leader, SIGCONT after 3-7 s
#   pause-follower      SIGSTOP one of the followers, SIGCONT after 3-7 s
#   partition-leader    cut the leader off from the other nodes (iptables), heal after 4-8 s
#   partition-minority  cut one follower off from the other nodes, heal after 4-8 s
#   rolling-restart     scripts/cluster.sh rolling-restart (followers first, the leader last)
#   clock-skew          restart a node under libfaketime (CHAOS_CLOCK_SKEW, default a seeded pick
#                       of +20s/-20s/+90s/-90s), 8-12 s later restart it with the real clock
#   disk-full           a node's data dir is on a small tmpfs; fill it (ENOSPC) for 4-7 s, free it;
#                       a node that exited, or is still unready 10 s after, is restarted (recorded as
#                       a disk-full-restart window)
#   wipe-and-rejoin     snapshot the leader, stop a follower, delete its data, start it 1-3 s later:
#                       it rejoins through a snapshot (checked in its log and recorded)
#   mixed               a seeded random schedule of all the above but pause-leader and
#                       pause-follower (pause covers both), one at a time, with gaps
#
# Partitions are DROP rules for TCP between the node's IP and each other node's IP, to and from
# this cluster's ports only (another cluster on 127.0.0.11-13 is not touched), in both directions.
# A binary whose nodes connect to their peers from 127.0.0.1 (before outgoing peer connections were
# bound to the node's own IP) can only be cut off inbound (connections to its Raft port): the output
# says which kind of partition a run got.
#
# Defaults: --duration 60 (seconds of load), --rate 50 (requests/s in all), --users 20, --seed
# random (printed; the same seed gives the same schedule: faults, randomly picked nodes, hold
# times and gaps, and the load's seed), --out target/chaos/SCENARIO-YYYYmmdd-HHMMSS (must not exist or be empty),
# --via all (the users' requests go to HAProxy and straight to every node: each node's own answers
# are checked under the faults; a user whose request went straight to a stopped node waits out
# its 5 s timeout) or lb (through HAProxy only, as in a deployment: how a user behind the load
# balancer sees a fault; the final reads still read every node).
#
# --on hosts: the cluster runs across hosts made of network namespaces (scripts/hosts.sh; root):
# each node in a host of its own with its own IP, started as its Kubernetes pod (the ConfigMap's
# cluster.toml, peers by name, the manifest's Raft timings; small snapshots and
# CHAOS_READ_CONSISTENCY through the environment), HAProxy in a namespace of its own listening on
# 127.0.0.1; partition-* cut the node's link (its switch port down: every packet to and from the
# host lost, the load balancer's too) instead of iptables rules. Scenarios: kill-leader,
# kill-random, pause, pause-leader, pause-follower, partition-leader, partition-minority. The
# nodes are read through HAProxy's one-node listeners; OUT/hosts is hosts.sh's state directory
# (node logs in OUT/hosts/hosts/sessionraft-N/node.log); everything it made is removed at the end.
#
# A run: a temp config (nodes on 127.0.0.11-13, separate HTTP and Raft ports, the default Raft timings,
# HAProxy on 127.0.0.1), `cluster.sh up` with its run dir in OUT/cluster; `sessionraft load`
# through the load balancer (and straight to every node unless --via lb) in the background, every node's term
# sampled meanwhile; the faults, each followed by a wait until the cluster is whole again (every
# node ready and caught up, UP in HAProxy); the load's settle and final reads; `sessionraft check`
# (also per fault: its window, the longest time without a successful operation while some waited,
# from its start to 3 s after its end; the elections; the requests over 1 s — printed with the
# table of faults at the end, in check/summary.json's "faults"); `cluster.sh down`; iptables and
# mounts removed.
#
# OUT holds: config.toml, faults.jsonl (one line per fault window, written when it closes:
# {"name", "node", "start_ms", "end_ms"}), faults.tsv (the same with details), terms.jsonl (every
# node's /cluster/status every 100 ms while the load runs: {"t_ms", "node", "term", "leader",
# "role"}, role "unreachable" when it did not answer within 0.3 s), history.jsonl,
# load.log, check/ (verdict.json, summary.json, report.svg), check.log, ops.log (output of the
# cluster.sh commands), cluster/ (cluster.sh's run dir: pid files, logs/nodeN.log, haproxy.cfg),
# data/ (the nodes' data), bin/sessionraft (the binary of this run, a hard link, so that a rebuild
# does not change a running chaos run; removed at the end unless CHAOS_KEEP_BIN=1).
#
# Exit: 0 the checker found no violation and the cluster recovered from every fault; 1 the checker
# found a violation; 2 bad usage, or the load or the checker could not run; 3 no violation, but the
# cluster did not recover within CHAOS_RECOVER_TIMEOUT seconds after a fault, or a node exited on
# its own (see the output); 130/143 interrupted.
#
# Environment: SESSIONRAFT_BIN (binary; default target/release/sessionraft), CHAOS_SETTLE (seconds
# between the end of the load and its final reads, default 10), CHAOS_RECOVER_TIMEOUT (default 60),
# CHAOS_CLOCK_SKEW (a FAKETIME value, e.g. "+20s", "-2m", "+0 x1.5"), CHAOS_DISK_MB (tmpfs size for
# disk-full, default 64), CHAOS_WARMUP (seconds of load before the first fault, default 3),
# CHAOS_FAKETIME_LIB (default /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1),
# CHAOS_READ_CONSISTENCY (session or linearizable: the cluster's [raft] read_consistency; default
# the node's default, session), CHAOS_TLS=1 (the cluster with [tls]: scripts/dev-certs.sh makes
# a CA and certificates in the run dir; nodes, HAProxy and the load and check tools over https
# verifying that CA; loopback only).
#
# Needs root for iptables (partition-*, mixed) and mount (disk-full, mixed), libfaketime for
# clock-skew (scripts/install-deps.sh --all). One chaos run at a time (they share the node IPs).
# Safety: processes are signalled only through the pid files of cluster.sh (after checking
# /proc/PID/cmdline) or as this script's own children; iptables rules live only in the chain
# chaos-PID-in (PID: this script's), hooked into INPUT; every rule, mount, paused node and the
# cluster are removed on exit, even after a failure or SIGINT/SIGTERM. One run at a time (lock
# target/chaos/.lock); none while scripts/bench.sh holds target/bench/.lock. Traffic goes to
# loopback addresses only.
#
# The program is the Python package scripts/pylib/sessionraft_chaos (module map in its
# __init__.py; tests in scripts/pylib/tests/test_chaos_*.py, run by scripts/test.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$ROOT/scripts/pylib${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m sessionraft_chaos "$@"

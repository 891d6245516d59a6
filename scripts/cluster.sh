#!/usr/bin/env bash
# Operate a local sessionraft cluster from cluster.toml, behind an HAProxy load balancer.
#
#   scripts/cluster.sh up [--bin BIN]   install what is missing, build if needed, start every node
#                                       (not already running), wait until all are ready, start
#                                       HAProxy on the [load_balancer] address, print the URLs
#                                       (load balancer first; its Redis URL too when the config has a
#                                       [load_balancer] resp_addr and nodes have a resp_addr: a TCP
#                                       frontend over the nodes' Redis-protocol ports, each node
#                                       health-checked on its HTTP /readyz). Running it twice starts
#                                       nothing twice.
#   scripts/cluster.sh down             stop HAProxy and every node (SIGTERM, then SIGKILL after 10 s)
#   scripts/cluster.sh status           table: node, pid, role, term, leader, applied, health, version,
#                                       and a line for the load balancer (pid, address, servers UP)
#   scripts/cluster.sh lb-status        each HAProxy backend server: pxname, svname, status, last check
#   scripts/cluster.sh start N | stop N | kill N | restart N
#                                       one node: start (and wait until ready), SIGTERM, SIGKILL, both
#   scripts/cluster.sh logs N [-f]      a node's log; `logs haproxy [-f]` the load balancer's
#   scripts/cluster.sh rolling-restart  restart every node, one at a time, followers first and the
#                                       leader last; each must be ready, caught up with the leader
#                                       and UP in HAProxy before the next one goes down
#   scripts/cluster.sh add-node N HTTP RAFT
#                                       start node N (not in the config; data in RUN_DIR/data/nodeN;
#                                       HTTP and RAFT: HOST:PORT, the host an IP or a DNS name),
#                                       add it to the cluster (learner, catch up, voter), add it to
#                                       HAProxy (reload). On refusal the node is stopped and
#                                       forgotten. Data left by an earlier node N is moved aside.
#   scripts/cluster.sh remove-node N    remove node N from the cluster; then stop it and take it
#                                       out of HAProxy (reload). On refusal nothing changes.
#   scripts/cluster.sh upgrade BIN [--order followers-first|leader-first|IDS]
#                                       rolling upgrade to the sessionraft binary BIN, one node at a
#                                       time: SIGTERM it, start it with BIN (same config, id, data
#                                       dir), wait until it is ready, has applied the leader's last
#                                       log index read just before it went down, and is UP in
#                                       HAProxy; a line per node (`upgrade 2/3: node 2 (follower)
#                                       0.1.0 -> 0.2.0: ready in 0.4 s, caught up to index 1234`),
#                                       then the cluster version the nodes report. Order: followers
#                                       first and the leader last (default; leadership moves once),
#                                       leader-first, or node ids (every node once, e.g. 3,1,2).
#                                       Refused, with nothing changed, when `BIN --version` fails or
#                                       BIN cannot read the config, a node is down or not ready, or a
#                                       membership change is in progress (joint consensus, a
#                                       learner). It stops at the first node that does not come back
#                                       (the nodes after it keep their binary).
#   --bin BIN (up, start, restart, add-node): start the nodes with BIN instead of SESSIONRAFT_BIN
#                                       (no build), e.g. the previous release to rehearse an upgrade.
#                                       BIN must be named sessionraft. A node started with --bin or
#                                       upgraded runs that binary from then on (RUN_DIR/nodeN.bin).
#
# Environment: SESSIONRAFT_CONFIG (default: ./cluster.toml), SESSIONRAFT_RUN_DIR (default: ./run),
# SESSIONRAFT_READY_TIMEOUT (seconds a node may take to become ready, default 60),
# SESSIONRAFT_LB_ADDR (HOST:PORT of the load balancer; overrides the config's [load_balancer] addr),
# SESSIONRAFT_LB_RESP_ADDR (HOST:PORT of its Redis-protocol frontend; overrides [load_balancer]
# resp_addr; only with a load balancer),
# SESSIONRAFT_BIN, SESSIONRAFT_HAPROXY (binaries), SESSIONRAFT_REBUILD=1 (rebuild on up/start).
#
# RUN_DIR holds the state: nodeN.pid, haproxy.pid, haproxy.cfg (generated), logs/, and
#   nodeN.bin      the binary node N runs when it was given (--bin, upgrade): every later start of
#                  node N uses it, whatever SESSIONRAFT_BIN says; kept across down
#   extra-nodes    nodes added with add-node: `id<TAB>http<TAB>data_dir<TAB>raft` per line. Every
#                  command covers them like config nodes (up starts them again after a down). They
#                  have no Redis-protocol port: the RESP frontend leaves them out.
#   removed-nodes  ids of config nodes removed with remove-node, one per line. The script cannot
#                  edit the config file: these nodes stay in it but are skipped by up, HAProxy and
#                  rolling-restart, and `start N` refuses them. Bring one back with `add-node N`
#                  (its config addresses and data dir are reused), or drop it from the config.
# Start from scratch: `down`, then delete RUN_DIR and the data dirs.
#
# Processes are only ever signalled through the pid files this script wrote, after checking in
# /proc/PID/cmdline that the pid still runs that node (or that HAProxy on RUN_DIR/haproxy.cfg):
# nothing is killed by name.
#
# Node addresses come from `sessionraft nodes --config FILE` (--json when the binary has it) and
# are passed on as HOST:PORT, names included (HAProxy resolves them when it starts or reloads).
#
# The program is the Python package scripts/pylib/sessionraft_cluster (module map in its
# __init__.py; tests in scripts/pylib/tests/test_cluster_*.py, run by scripts/test.sh). This file
# is its launcher and its --help text.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# a machine without python3 gets it first (with the rest of what these commands use)
command -v python3 >/dev/null || "$ROOT/scripts/install-deps.sh" --cluster
export PYTHONPATH="$ROOT/scripts/pylib${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m sessionraft_cluster "$@"

#!/usr/bin/env bash
# Benchmark sessionraft against two baselines on this machine, one system at a time, and write the
# results as Markdown (plus the raw numbers as JSON).
#
#   scripts/bench.sh [--duration S] [--warmup S] [--quick] [--out FILE] [--only PARTS]
#                    [--trials N] [--sessions N] [--keep]
#   scripts/bench.sh smoke                 start every system, one request to each member, stop it
#                                          (no benchmark; checks the set-up of this machine)
#   scripts/bench.sh report RAW.json [--out FILE]
#                                          write the Markdown again from a raw file
#   scripts/bench.sh summary RAW.json... [--out FILE]
#                                          the targets over several full runs: each run's value,
#                                          the median, how many runs met it (default
#                                          bench/SUMMARY.md); judge a target on the median
#   scripts/bench.sh --compare BIN [--pairs N] [--workloads W,..] [--connections C,..]
#                    [--duration S] [--warmup S] [--quick] [--out FILE]
#                                          A/B: sessionraft's matrix cells, the binary under test
#                                          (SESSIONRAFT_BIN, default target/release/sessionraft) =
#                                          A against BIN = B, in N alternating pairs (default 3),
#                                          each cell on a fresh 3-node cluster, one load tool (A's)
#                                          for both; writes the ratios B/A as Markdown (default
#                                          target/bench/run-*/compare.md, printed too), not
#                                          bench/RESULTS.md. For single changes: a difference
#                                          inside the pairs' spread is noise on this machine.
#
# The systems, each started fresh from this script and stopped before the next one starts (the
# machine has 2 cores: they never compete, and two benchmarks never run at once):
#   sessionraft  3 nodes on 127.0.0.1 from a temp copy of cluster.toml (free ports; its [raft]
#                timings unchanged; no load balancer: the load is spread over the 3 nodes)
#   redis        redis-server on a free port without persistence (--save '' --appendonly no) and
#                target/release/examples/redis_app (actix-web + actix-session's RedisSessionStore,
#                the same POST/GET /api/counter) in front of it
#   etcd         a 3-member etcd cluster (Debian's etcd 3.4) on loopback; its HTTP/JSON gateway
#                (/v3/kv/put, /v3/kv/range) on each member's client port; load over the 3 members
# The matrix, with the same load generator (`sessionraft bench`, closed loop, one cookie / key per
# virtual user, VU i on target i mod n): workloads write, read, mixed (90% reads) x 32 and 256
# connections, for each system (etcd: write = put of --value-bytes 200, read = linearizable range).
# Each sessionraft cell also reports where the time went on the nodes (the mean of each step of a
# write and a read over the cell's window, from their `sessionraft_stage_seconds`).
# reads (issue 18), every cell with the load tool on one thread (`sessionraft bench --threads 1`:
#                on 2 cores the tool's own CPU moves the ratios): sessionraft read at 32 and 256
#                connections with `[raft] read_consistency = "session"` (session-token reads; then
#                write at 32 and 256 on that cluster) and with "linearizable" (a fresh cluster per
#                mode), and the Redis app's read at 32 and 256. Its targets: session reads >= 1.25x
#                the Redis app's at 32 and at 256, session writes at 256 >= 2x etcd's puts (from the
#                etcd part's cells). Alone, with etcd for the write target: --only reads,etcd
# resp (issue 20), every cell with a one-thread load tool: `redis-benchmark -t set` then `-t get`
#                (Debian's redis-tools, --threads 1, -d 200 -r 100000, --csv; -n sized from a probe
#                for ~--duration s after ~--warmup s) at 32 and 256 connections against sessionraft's
#                Redis protocol on the leader of a fresh 3-node cluster (every node with a resp_addr;
#                a node that does not answer PING fails the sessionraft cells with the reason),
#                redis-server as a cache (--save '' --appendonly no) and durable (--appendonly yes
#                --appendfsync always); then a fresh 3-member etcd, put and linearizable range at 32
#                and 256 (`sessionraft bench --kind etcd --threads 1`). Targets: RESP SET >= 2x etcd's
#                puts, RESP GET >= 2x etcd's linearizable ranges, at 32 and 256; the ratios to both
#                Redis settings reported as they are. Alone: --only resp
# clients (issue 29): the clients people run, sessionraft's Redis-protocol door (the leader of a
#                fresh 3-node cluster) against one durable redis-server (--appendonly yes
#                --appendfsync always), the two alternating over --pairs pairs (default 3; the first
#                system of a pair alternates; each system fresh for each turn): the Express app and
#                the Flask app of tests/resp_clients/ (POST /api/counter, 32 connections, the
#                one-thread `sessionraft bench --workload write --threads 1`; their dependencies from
#                scripts/install-deps.sh --resp-clients, or BENCH_CLIENTS_DIR=another checkout's
#                tests/resp_clients), and `redis-benchmark -P 16 -t set -c 32 --threads 1 -d 200`.
#                Per cell each pair's ratio, the median and the spread, in WORK/clients.md (printed).
#                Alone: --only clients
# overload (issue 29): a fresh 3-node cluster; its capacity first (closed-loop writes, `sessionraft
#                bench --workload write --connections 32`, --capacity-duration s), then an open loop
#                at BENCH_OVERLOAD_FACTOR (default 3) x that capacity for --overload-duration s after
#                --warmup s (`sessionraft bench --rate R --connections SESSIONS`: POST /api/counter
#                arriving on schedule whatever the answers, latency from each one's scheduled arrival,
#                one request in flight per session, BENCH_OVERLOAD_SESSIONS sessions (default 16384)
#                = the in-flight cap, reported when hit (above capacity x request deadline: a
#                cluster that refuses in time never holds that many); 200 / 503 / 504 / other /
#                transport errors counted; then every session's counter read on every node and checked against its
#                acknowledged increments), every node's VmRSS sampled every 0.25 s meanwhile.
#                Targets: served >= 90% of capacity, p99 of the admitted (200) requests <= [raft]
#                request_deadline_ms, the highest RSS per node <= 256 MiB, no acknowledged write lost
#                (nor one invented). Alone: --only overload
# wrk (issue 29, only when asked for: --only wrk, or with other parts): the HTTP ratio cells with
#                a second load tool, `wrk -t1 -c N` (Debian's wrk) with a generated Lua script (one
#                session cookie per connection, made before the clock starts, sent round robin;
#                its done() prints the counts as JSON), --warmup s unmeasured then --duration s,
#                the two systems alternating over --pairs pairs (the first of a pair alternates;
#                each fresh per turn): session reads (GET /api/counter) at 32 and 256 connections,
#                sessionraft against the actix-session + Redis app (wrk drives one address: the
#                cluster's cells go to a follower, or the leader with BENCH_WRK_NODE=leader), and
#                the Express app of tests/resp_clients (POST /api/counter, 32 connections) over
#                sessionraft's door (the leader) against over a durable redis-server. Per cell each
#                pair's ratio, the median and the spread, in WORK/wrk.md (printed)
# Then, on sessionraft:
#   failover     under a light write load (`sessionraft load`, 40 increments/s), SIGKILL the leader
#                --trials times (default 10): the time from the kill to the first successful
#                POST /api/counter through a surviving node (one session, sequential requests,
#                ~10 ms apart); the node is started again and the cluster made whole between trials
#   catchup      a fresh 3-node cluster, `sessionraft bench-backup --sessions N` (default 1000000)
#                restored into it, then a 4th node started and added (scripts/cluster.sh add-node):
#                the time from its start to /readyz 200 and to its applied index reaching the
#                leader's last log index, polled every 100 ms (each poll is two curl processes:
#                at 20 ms they took ~20% of the machine the node was catching up on)
#   memory       VmRSS (and VmHWM) of every node with the N sessions, after the catch-up
#
# Options:
#   --duration S   measured seconds per matrix cell (default 10; --quick: 3)
#   --warmup S     warm-up seconds per cell, not measured (default 2; --quick: 1)
#   --quick        short cells (only the cells: --trials and --sessions keep their defaults)
#   --out FILE     the Markdown (default bench/RESULTS.md); the raw JSON goes next to it, as
#                  raw-YYYYmmdd-HHMMSS.json
#   --only PARTS   comma-separated subset of: sessionraft, redis, etcd (their matrix cells),
#                  reads (the one-thread read cells above), resp (the Redis-protocol cells above),
#                  clients (the real-client pairs above), overload (the open loop above), failover,
#                  catchup (catch-up and memory), wrk (the wrk pairs above: never in a full run).
#                  Default: all but wrk and resp-tls
#   --pairs N      alternating pairs of the clients and wrk parts, and of --compare (default 3)
#   --capacity-duration S  the overload part's closed-loop capacity cell (default 5)
#   --overload-duration S  the overload part's open loop, measured seconds (default 20)
#   --trials N     failover trials (default 10)
#   --sessions N   sessions for the catch-up and memory (default 1000000)
#   --keep         keep the systems' data directories (default: deleted at the end)
#   --tls          every sessionraft cluster with [tls] (scripts/dev-certs.sh, one CA per run in the
#                  run's certs/): the load over https:// (`sessionraft bench/load --ca`), the
#                  Redis-protocol cells over TLS (redis-benchmark --tls --cacert), the checks too
#   --only resp-tls  (not in a full run) the Redis protocol with TLS against without: per pair
#                  (--pairs, default 3) a fresh cluster without TLS, then one with [tls],
#                  redis-benchmark -t set, get at 32 and 256 connections, one thread, on the
#                  leader; the ratios TLS/plain per pair, median and range, to --out (default
#                  bench/RESP-TLS.md)
#   --compare BIN  the A/B mode above (B = BIN); with --pairs N (default 3) and, to run fewer
#                  cells, --workloads write,read,mixed and --connections 32,256 (comma lists)
#
# Installs what it needs (`scripts/install-deps.sh --bench`: redis-server, etcd-server,
# etcd-client, wrk and what scripts/cluster.sh uses) and builds only when a binary is missing (cargo build --release --workspace
# --bins --examples: the node and the actix-session + Redis app). Needs root (or sudo) for the installs. The run's logs, configs and each cell's
# output stay in target/bench/run-YYYYmmdd-HHMMSS/.
#
# Exit: 0 every measurement was made (whether or not the targets are met: see the report), 1 some
# measurement failed (the report says which), 2 bad usage or the set-up failed, 130/143 interrupted.
#
# Environment: SESSIONRAFT_BIN, BENCH_REDIS_APP (binaries; default target/release/sessionraft and
# target/release/examples/redis_app), BENCH_FAILOVER_RATE (light load, increments/s, default 40),
# BENCH_BACKUP (a backup file to restore for the catch-up instead of generating one with
# bench-backup; --sessions is then the number of sessions it holds, from `sessionraft backup-info`),
# BENCH_CATCHUP_TIMEOUT (seconds node 4 may take to be ready and caught up, default 300: then the
# catch-up is reported as NOT met, with the node's last warning), BENCH_OVERLOAD_FACTOR (the open
# loop's rate in capacities, default 3), BENCH_OVERLOAD_SESSIONS (its sessions = in-flight cap,
# default 16384), BENCH_WRK_NODE (follower or leader: the node of the wrk part's cluster read cells),
# BENCH_CLIENTS_DIR (another checkout's tests/resp_clients with the apps' dependencies installed).
#
# Safety: every process this script starts is recorded by pid (sessionraft nodes through the pid
# files of scripts/cluster.sh) and only ever signalled through that pid after checking its command
# line in /proc; an EXIT/INT/TERM trap stops all of them, even when the run fails. Traffic goes to
# 127.0.0.1 only. One run at a time (lock target/bench/.lock); it refuses to start while a
# scripts/chaos.sh run holds target/chaos/.lock.
set -euo pipefail

# The program is the Python package scripts/pylib/sessionraft_bench (standard library only; its
# __init__.py has the module map). It needs python3 >= 3.11 (tomllib); install-deps.sh --bench
# installs python3 (and the rest the run needs, which the program checks again before a run).
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v python3 >/dev/null 2>&1; then
    "$ROOT/scripts/install-deps.sh" --bench
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "bench.sh: needs python3 >= 3.11 (found $(python3 --version 2>&1))" >&2
    exit 2
fi
export BENCH_ROOT="$ROOT"
export PYTHONPATH="$ROOT/scripts/pylib${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m sessionraft_bench "$@"

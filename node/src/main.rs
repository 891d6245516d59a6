//! `sessionraft`: the node binary, a thin shell over `sessionraft-web`'s `Server`.
//!
//! - `sessionraft serve [--config FILE] --node ID` runs one node until SIGTERM/SIGINT.
//! - `sessionraft status [--config FILE]` prints every node's role, term, leader and indexes.
//! - `sessionraft check-config [--config FILE]` validates a configuration and exits.
//! - `sessionraft cluster add-node|remove-node` changes the membership of a running cluster.
//! - `sessionraft backup --to FILE` / `restore --from FILE` / `backup-info FILE`.
//! - `sessionraft load` drives recorded load (chaos testing); `sessionraft check` judges the
//!   history (exit 1 on a violation, 2 on unreadable input).
//! - `sessionraft import --from redis://…` / `export --to redis://…` copy the live sessions of a
//!   Redis session store into the cluster's keyspace with their lifetimes, and back.
//! - `sessionraft bench` drives closed-loop load at sessionraft, an app with the same API or
//!   etcd and reports throughput and latency; `sessionraft bench-backup` writes a synthetic
//!   backup of N sessions (for `restore`).
//!
//! Without `--config`, the embedded default `cluster.toml` (3 nodes on 127.0.0.1) is used.

use sessionraft_node::bench::{self, backup_gen, open_loop};
use sessionraft_node::chaos::{load as chaos_load, verdict};
use sessionraft_node::migrate::{self, endpoint::Endpoint, patterns::Patterns};
use sessionraft_node::{config, ops, serve, status};

use sessionraft_node::config::Address;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sessionraft",
    version,
    about = "Replicated HTTP sessions on Raft"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one node of the cluster.
    Serve {
        /// Cluster configuration (default: $SESSIONRAFT_CONFIG, else the embedded cluster.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Which node this process is: a node of the configuration, or (with --http and
        /// --data-dir) a node outside it that waits to be added with `cluster add-node`.
        /// Default: $SESSIONRAFT_NODE_ID, else the ordinal ending the host name
        /// (`sessionraft-0` is node 1, as a Kubernetes StatefulSet names its pods).
        #[arg(long)]
        node: Option<u64>,
        /// HTTP address (HOST:PORT) of a node outside the configuration.
        #[arg(long, requires = "data_dir")]
        http: Option<Address>,
        /// Raft address (HOST:PORT) of a node outside the configuration (default: --http).
        #[arg(long, requires = "http")]
        raft: Option<Address>,
        /// Data directory of a node outside the configuration.
        #[arg(long, requires = "http")]
        data_dir: Option<PathBuf>,
    },
    /// Print each node's role, term, leader and indexes.
    Status {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// With `[tls]`: trust this CA (PEM) instead of the configuration's `[tls] ca`.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Validate a configuration and exit.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the nodes of a configuration, one per line: id, HTTP address, data dir, Raft
    /// address, RESP address or `-` (tab-separated; for scripts).
    Nodes {
        #[arg(long)]
        config: Option<PathBuf>,
        /// A JSON array of objects instead, by field name (id, http_addr, raft_addr,
        /// resp_addr, data_dir, http_listen, raft_listen, resp_listen; absent ones null).
        #[arg(long)]
        json: bool,
    },
    /// Make a stopped node's data directory the only voter of a new one-node cluster that keeps
    /// every entry of its log (a majority lost for good; like etcd's --force-new-cluster). Start
    /// the node afterwards, then add the others back with `cluster rejoin-node`.
    Recover {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The node whose data directory is rewritten (it must be stopped).
        #[arg(long)]
        node: u64,
        /// Its data directory (default: the node's data_dir in the configuration).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Required: without it, print what would be done and exit 2.
        #[arg(long)]
        force_new_cluster: bool,
    },
    /// Print the load balancer address of a configuration (nothing when it has none).
    LbAddr {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The address of its Redis-protocol frontend (`[load_balancer] resp_addr`) instead.
        #[arg(long)]
        resp: bool,
    },
    /// Print the TLS files of a configuration as JSON, {"ca": PATH, "cert_dir": PATH} (paths as
    /// resolved against the configuration's directory); nothing without `[tls]`. For scripts.
    TlsFiles {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Change the membership of a running cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCmd,
    },
    /// Write a consistent backup of every live session and key of a running cluster to FILE.
    Backup {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where to write the backup (written to FILE.partial, verified, then renamed).
        #[arg(long)]
        to: PathBuf,
    },
    /// Seed a new (empty) cluster with the sessions and keys of a backup.
    Restore {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The backup file (verified before anything is restored).
        #[arg(long)]
        from: PathBuf,
        /// Restore even though the cluster already holds sessions or keys (backed-up sessions
        /// and keys replace those under the same ids and names).
        #[arg(long)]
        force: bool,
    },
    /// Verify a backup file and print its summary (sessions, keys, applied index, format,
    /// content checksum).
    BackupInfo { file: PathBuf },
    /// Copy the live sessions of a Redis session store (connect-redis, Flask-Session,
    /// actix-session) into the cluster's keyspace, each with its remaining lifetime, through the
    /// cluster's Redis-protocol door. Repeatable: a re-run copies only what is missing or changed
    /// (README, "Move in from Redis"). Exit 1 when a key could not be copied (each is named).
    Import {
        /// The Redis to read: redis://[[USER]:PASSWORD@]HOST:PORT[/DB] (rediss:// for TLS).
        #[arg(long)]
        from: String,
        /// The cluster's Redis URL (default: `[load_balancer] resp_addr` of --config, else a
        /// node's `resp_addr`; the `[resp]` password unless the URL has one).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        common: MigrateArgs,
    },
    /// Copy the cluster's live keys (by default the sessions of connect-redis, Flask-Session and
    /// actix-session) into a Redis, each with its remaining lifetime: the way back. Repeatable,
    /// like `import`.
    Export {
        /// The Redis to write: redis://[[USER]:PASSWORD@]HOST:PORT[/DB] (rediss:// for TLS).
        #[arg(long)]
        to: String,
        /// The cluster's Redis URL (default: as `import --to`).
        #[arg(long)]
        from: Option<String>,
        #[command(flatten)]
        common: MigrateArgs,
    },
    /// Drive recorded load for chaos testing: virtual users (one cookie jar each, one operation
    /// at a time) at an offered rate; every operation is one JSON line in --out.
    Load {
        /// Base URLs operations are spread over (load balancer and/or nodes), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        targets: Vec<String>,
        /// Virtual users.
        #[arg(long, default_value_t = 10)]
        users: u32,
        /// Offered operations per second, all users together (open loop).
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Seconds of load.
        #[arg(long, default_value_t = 30.0)]
        duration: f64,
        /// Seed of the operation and target choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The history file to write.
        #[arg(long)]
        out: PathBuf,
        /// Seconds to wait after the load before the final reads.
        #[arg(long, default_value_t = 10.0)]
        settle: f64,
        /// Base URLs of the final reads (default: --targets).
        #[arg(long, value_delimiter = ',')]
        final_targets: Vec<String>,
        /// Operation weights; `revoke=N` adds the revocation workload (sign in, log out
        /// everywhere, try the old cookie on every target).
        #[arg(long, default_value = "inc=60,read=30,login=5,logout=5")]
        mix: chaos_load::Mix,
        /// Milliseconds a revoked cookie is tried on every target after the revoke (default:
        /// twice the cluster's reads.max_staleness_ms).
        #[arg(long)]
        probe_window_ms: Option<u64>,
        /// The CA that verifies `https://` targets (PEM; default: the `[tls] ca` of --config).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// A cluster configuration whose `[tls] ca` verifies `https://` targets (default:
        /// $SESSIONRAFT_CONFIG when set).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a load history: per-session linearizability of the counter, no lost or stale
    /// writes, convergence of the nodes. Writes verdict.json, summary.json and report.svg; exits
    /// 1 on any violation, 2 on unreadable input.
    Check {
        /// The history written by `sessionraft load`.
        #[arg(long)]
        history: PathBuf,
        /// Base URLs of the nodes whose state must converge, comma-separated.
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
        /// Faults injected during the run (JSON lines {name, start_ms, end_ms, node}).
        #[arg(long)]
        faults: Option<PathBuf>,
        /// The nodes' terms sampled during the run (JSON lines {t_ms, node, term, leader, role}):
        /// each fault's elections and the cluster's term before and after it.
        #[arg(long)]
        terms: Option<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// The bound a revoked session may still be served within, in ms (default: the
        /// reads.max_staleness_ms of the first of --nodes that answers, else 500).
        #[arg(long)]
        max_staleness_ms: Option<u64>,
        /// The CA that verifies `https://` targets (PEM; default: the `[tls] ca` of --config).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// A cluster configuration whose `[tls] ca` verifies `https://` targets (default:
        /// $SESSIONRAFT_CONFIG when set).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Closed-loop HTTP benchmark: C virtual users, one keep-alive connection and one request
    /// in flight each, against sessionraft nodes (or an app with the same /api/counter, e.g.
    /// examples/redis_app) or etcd's v3 JSON gateway. Prints throughput (2xx only), errors and
    /// latency p50/p99/max; exits 1 when no request succeeded. With --rate: an open loop of
    /// increments for overload (see --rate).
    Bench {
        /// Base URLs, comma-separated; user i sticks to target i % N.
        #[arg(long, value_delimiter = ',', required = true)]
        targets: Vec<String>,
        /// write: POST /api/counter (etcd: put); read: GET /api/counter (etcd: linearizable
        /// range); mixed: 90 % reads, 10 % writes.
        #[arg(long, value_enum)]
        workload: bench::Workload,
        /// Virtual users = connections (with --rate: the sessions, each with at most one
        /// request in flight: the cap on requests in flight).
        #[arg(long)]
        connections: u32,
        /// Open loop: increments (POST /api/counter, --workload write, --kind session) arriving
        /// at this many per second whatever the answers, latency from each one's scheduled
        /// arrival; per-status counts, then every session's counter checked against the
        /// acknowledged increments. Exits 1 also when an acknowledged write is lost.
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds measured (after the warmup).
        #[arg(long)]
        duration: f64,
        /// Seconds of load before measuring.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// session: /api/counter with a session cookie per user; etcd: one key per user.
        #[arg(long, value_enum, default_value_t = bench::Kind::Session)]
        kind: bench::Kind,
        /// Bytes of the value of an etcd put.
        #[arg(long, default_value_t = 200)]
        value_bytes: usize,
        /// Seed of the mixed workload's choices and of the etcd values.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Per-request timeout in seconds.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Worker threads of the load generator (1: everything on one thread, a current-thread
        /// runtime; on a small machine the tool's own CPU moves the results).
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Seconds each user keeps retrying to create its session or key before giving up.
        #[arg(long, default_value_t = 30.0)]
        setup_timeout: f64,
        /// Print the result as one JSON object on stdout (the summary line goes to stderr).
        #[arg(long)]
        json: bool,
        /// Pids of the system under test, comma-separated (e.g. the nodes, or redis_app and
        /// redis-server): their CPU time over the measured window is reported, in % of a core
        /// and per successful request.
        #[arg(long, value_delimiter = ',')]
        server_pids: Vec<u32>,
        /// The CA that verifies `https://` targets (PEM; default: the `[tls] ca` of --config).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// A cluster configuration whose `[tls] ca` verifies `https://` targets (default:
        /// $SESSIONRAFT_CONFIG when set).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Write a synthetic backup of N live sessions (ascending keys, 24 h lifetime, state
    /// {"counter", "pad"}) for `sessionraft restore`: catch-up and memory measurements.
    BenchBackup {
        /// Number of sessions.
        #[arg(long)]
        sessions: u64,
        /// The backup file to write.
        #[arg(long)]
        out: PathBuf,
        /// Characters of padding in each session's state.
        #[arg(long, default_value_t = 100)]
        state_bytes: usize,
        /// Seed of the random part of the keys.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Measure how long a change acknowledged by the leader stays invisible to session-token
    /// reads on the followers (p50/p99/max over every follower of every sample).
    Staleness {
        /// The cluster's nodes, comma-separated (`http://ip:port`).
        #[arg(long, value_delimiter = ',', required = true)]
        targets: Vec<String>,
        /// Samples (one write each).
        #[arg(long, default_value_t = 100)]
        samples: usize,
        /// Milliseconds between samples.
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
        /// Seconds a follower may take to show a value before it counts as never seen.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The CA that verifies `https://` targets (PEM; default: the `[tls] ca` of --config).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// A cluster configuration whose `[tls] ca` verifies `https://` targets (default:
        /// $SESSIONRAFT_CONFIG when set).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// What `import` and `export` share.
#[derive(clap::Args)]
struct MigrateArgs {
    /// Copy the keys matching PATTERN (Redis glob; repeat for several). Default: `sess:*`
    /// (connect-redis), `session:*` (Flask-Session), 64 letters and digits (actix-session).
    #[arg(long = "match", value_name = "PATTERN")]
    patterns: Vec<String>,
    /// Keys read from the source per second at most (0: no limit).
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Parallel workers, each with a connection to either side.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Keys per SCAN and per pipeline.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// The cluster's configuration (default: $SESSIONRAFT_CONFIG, else the embedded one): its
    /// Redis address, `[resp]` password and `max_bulk_bytes`, and `[tls] ca` for rediss://.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The CA (PEM) that verifies every rediss:// server of the run (default: the cluster's
    /// `[tls] ca` for the cluster, the system's roots for the other side).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// After copying, delete the destination's matching keys that the source no longer holds
    /// (sessions logged out since an earlier pass). For the final pass of a cut-over, while no
    /// app writes to the destination yet: a key an app created there would be deleted too.
    #[arg(long)]
    delete_missing: bool,
}

// The variants are the subcommands' names (`cluster add-node`, `remove-node`, `rejoin-node`).
#[allow(clippy::enum_variant_names)]
#[derive(Subcommand)]
enum ClusterCmd {
    /// Add a running node: as a learner, wait until it has caught up, then promote it to voter.
    AddNode {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        id: u64,
        /// The new node's HTTP address, HOST:PORT (it must already run there).
        #[arg(long)]
        http: Address,
        /// The new node's Raft address (default: --http).
        #[arg(long)]
        raft: Option<Address>,
    },
    /// Remove a node (voter or learner) from the cluster.
    RemoveNode {
        #[arg(long)]
        config: Option<PathBuf>,
        id: u64,
    },
    /// Bring back a configured node that returned with an empty data directory (its disk was
    /// lost): remove it from the membership, add it again as a learner at its configured
    /// addresses, wait until it caught up (by snapshot when the log was purged), promote it.
    RejoinNode {
        #[arg(long)]
        config: Option<PathBuf>,
        id: u64,
    },
}

fn run_staleness(
    targets: Vec<String>,
    samples: usize,
    interval_ms: u64,
    timeout: f64,
    json: bool,
) -> anyhow::Result<()> {
    let opts = sessionraft_node::staleness::StalenessOptions {
        targets: chaos_load::parse_targets(&targets.join(",")),
        samples,
        interval: std::time::Duration::from_millis(interval_ms),
        timeout: seconds("timeout", timeout)?,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let r = rt.block_on(sessionraft_node::staleness::run(opts))?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "staleness of token reads on the followers: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
             ({} observations over {} writes; {} reads unavailable, {} never seen; {} reads \
             stale after the {} ms bound)",
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.observations,
            r.samples,
            r.unavailable_reads,
            r.never_seen,
            r.stale_after_bound,
            r.max_staleness_ms
        );
    }
    anyhow::ensure!(
        r.stale_after_bound == 0,
        "{} reads served a value older than the staleness bound",
        r.stale_after_bound
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Cmd::Bench {
            targets,
            workload,
            connections,
            rate,
            duration,
            warmup,
            kind,
            value_bytes,
            seed,
            timeout,
            threads,
            setup_timeout,
            json,
            server_pids,
            ca,
            config,
        } => {
            if let Some(rate) = rate {
                let opts = (|| {
                    anyhow::ensure!(
                        workload == bench::Workload::Write && kind == bench::Kind::Session,
                        "--rate (the open loop) runs --workload write --kind session only"
                    );
                    let targets = chaos_load::parse_targets(&targets.join(","));
                    trust(ca.as_deref(), config.as_deref(), &targets)?;
                    Ok(open_loop::OpenLoopOptions {
                        targets,
                        rate,
                        sessions: connections,
                        duration: seconds("duration", duration)?,
                        warmup: seconds("warmup", warmup)?,
                        timeout: seconds("timeout", timeout)?,
                        threads,
                        setup_timeout: seconds("setup-timeout", setup_timeout)?,
                    })
                })();
                return run_open_loop(opts, json);
            }
            let opts = (|| {
                let targets = chaos_load::parse_targets(&targets.join(","));
                trust(ca.as_deref(), config.as_deref(), &targets)?;
                Ok(bench::BenchOptions {
                    targets,
                    kind,
                    workload,
                    connections,
                    duration: seconds("duration", duration)?,
                    warmup: seconds("warmup", warmup)?,
                    value_bytes,
                    seed,
                    timeout: seconds("timeout", timeout)?,
                    threads,
                    setup_timeout: seconds("setup-timeout", setup_timeout)?,
                    server_pids,
                })
            })();
            return run_bench(opts, json);
        }
        Cmd::BenchBackup {
            sessions,
            out,
            state_bytes,
            seed,
        } => run_bench_backup(sessions, state_bytes, seed, out),
        Cmd::Staleness {
            targets,
            samples,
            interval_ms,
            timeout,
            json,
            ca,
            config,
        } => {
            let targets = chaos_load::parse_targets(&targets.join(","));
            trust(ca.as_deref(), config.as_deref(), &targets)
                .and_then(|()| run_staleness(targets, samples, interval_ms, timeout, json))
        }
        Cmd::Import { from, to, common } => {
            return run_migrate(migrate::Direction::Import, &from, to.as_deref(), common)
        }
        Cmd::Export { to, from, common } => {
            return run_migrate(migrate::Direction::Export, &to, from.as_deref(), common)
        }
        Cmd::Load {
            targets,
            users,
            rate,
            duration,
            seed,
            out,
            settle,
            final_targets,
            mix,
            probe_window_ms,
            ca,
            config,
        } => trust(
            ca.as_deref(),
            config.as_deref(),
            &chaos_load::parse_targets(&[targets.join(","), final_targets.join(",")].join(",")),
        )
        .and_then(|()| {
            run_load(
                targets,
                final_targets,
                users,
                rate,
                duration,
                settle,
                seed,
                mix,
                probe_window_ms,
                out,
            )
        }),
        Cmd::Check {
            history,
            nodes,
            faults,
            terms,
            out,
            max_staleness_ms,
            ca,
            config,
        } => {
            let nodes = chaos_load::parse_targets(&nodes.join(","));
            if let Err(e) = trust(ca.as_deref(), config.as_deref(), &nodes) {
                eprintln!("error: {e:#}");
                return ExitCode::from(2);
            }
            return run_check(history, nodes, faults, terms, out, max_staleness_ms);
        }
        Cmd::Serve {
            config,
            node,
            http,
            raft,
            data_dir,
        } => {
            let joining = match (http, data_dir) {
                (Some(http_addr), Some(data_dir)) => Some(serve::JoiningNode {
                    http_addr,
                    raft_addr: raft,
                    data_dir,
                }),
                _ => None,
            };
            let node = config::node_id_from(
                node,
                std::env::var(config::NODE_ID_ENV).ok().as_deref(),
                config::hostname().as_deref(),
            );
            node.map_err(anyhow::Error::from)
                .and_then(|node| load(config).and_then(|cfg| serve::run(cfg, node, joining)))
        }
        Cmd::Status { config, json, ca } => {
            load(config).and_then(|cfg| status::run(&cfg, json, ca))
        }
        Cmd::Nodes { config, json } => load(config).and_then(|cfg| print_nodes(&cfg, json)),
        Cmd::Recover {
            config,
            node,
            data_dir,
            force_new_cluster,
        } => {
            return match load(config)
                .and_then(|cfg| ops::recover(&cfg, node, data_dir, force_new_cluster))
            {
                Ok(ops::Recovered::Done) => ExitCode::SUCCESS,
                Ok(ops::Recovered::DryRun) => ExitCode::from(2),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::LbAddr { config, resp } => load(config).map(|cfg| {
            if let Some(a) = if resp { cfg.lb_resp_addr } else { cfg.lb_addr } {
                println!("{a}");
            }
        }),
        Cmd::TlsFiles { config } => load(config).map(|cfg| {
            if let Some(tls) = &cfg.tls {
                println!(
                    "{}",
                    serde_json::json!({
                        "ca": tls.ca.display().to_string(),
                        "cert_dir": tls.cert_dir.display().to_string(),
                    })
                );
            }
        }),
        Cmd::Cluster {
            command:
                ClusterCmd::AddNode {
                    config,
                    id,
                    http,
                    raft,
                },
        } => load(config).and_then(|cfg| {
            let raft = raft.unwrap_or_else(|| http.clone());
            ops::add_node(&cfg, id, &http, &raft)
        }),
        Cmd::Cluster {
            command: ClusterCmd::RemoveNode { config, id },
        } => load(config).and_then(|cfg| ops::remove_node(&cfg, id)),
        Cmd::Cluster {
            command: ClusterCmd::RejoinNode { config, id },
        } => load(config).and_then(|cfg| ops::rejoin_node(&cfg, id)),
        Cmd::Backup { config, to } => load(config).and_then(|cfg| ops::backup(&cfg, &to)),
        Cmd::Restore {
            config,
            from,
            force,
        } => load(config).and_then(|cfg| ops::restore(&cfg, &from, force)),
        Cmd::BackupInfo { file } => ops::backup_info(&file),
        Cmd::CheckConfig { config } => {
            load(config).map(|cfg| println!("configuration ok: {} nodes", cfg.nodes.len()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The CA the measurement tools trust for `https://` targets (`--ca`, else `[tls] ca` of
/// `--config`), checked against the targets: an https target with no CA is refused, and so is
/// one whose TLS handshake fails (the failure named).
fn trust(
    ca: Option<&std::path::Path>,
    config: Option<&std::path::Path>,
    targets: &[String],
) -> anyhow::Result<()> {
    sessionraft_node::trust::init(ca, config, targets)?;
    sessionraft_node::trust::preflight_blocking(targets)
}

fn seconds(name: &str, v: f64) -> anyhow::Result<std::time::Duration> {
    anyhow::ensure!(
        v.is_finite() && v >= 0.0,
        "--{name} must be a number of seconds"
    );
    Ok(std::time::Duration::from_secs_f64(v))
}

/// `sessionraft import` / `export`: `other` is the Redis outside the cluster, `cluster` the
/// cluster's URL if given. 0 when every matching key was copied or skipped, 1 otherwise.
fn run_migrate(
    direction: migrate::Direction,
    other: &str,
    cluster: Option<&str>,
    args: MigrateArgs,
) -> ExitCode {
    let result = (|| {
        let cfg = load(args.config.clone())?;
        let ca = match &args.ca {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("--ca {}: unreadable: {e}", path.display()))?,
            ),
            None => None,
        };
        let (cluster_role, other_role) = match direction {
            migrate::Direction::Import => ("destination", "source"),
            migrate::Direction::Export => ("source", "destination"),
        };
        let cluster = match cluster {
            Some(url) => Endpoint::parse_for_cluster(cluster_role, url, &cfg, ca.clone())?,
            None => Endpoint::cluster(cluster_role, &cfg, ca.clone())?,
        };
        let other = Endpoint::parse(other_role, other, None, ca)?;
        let (source, destination, max_bytes) = match direction {
            migrate::Direction::Import => (other, cluster, Some(cfg.resp.max_bulk_bytes)),
            migrate::Direction::Export => (cluster, other, None),
        };
        migrate::run(migrate::MigrateOptions {
            direction,
            source,
            destination,
            patterns: Patterns::new(&args.patterns),
            rate: args.rate,
            connections: args.connections,
            batch: args.batch,
            max_bytes,
            delete_missing: args.delete_missing,
        })
    })();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let verb = match direction {
        migrate::Direction::Import => "import",
        migrate::Direction::Export => "export",
    };
    if args.json {
        eprintln!("{}", summary.human(verb));
        match serde_json::to_string(&summary) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        println!("{}", summary.human(verb));
    }
    if summary.failed > 0 {
        eprintln!(
            "error: {} keys were not copied (named above); the others were",
            summary.failed
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// A bench report: the human text on stdout, or (`--json`) the text on stderr and the JSON on
/// stdout. False when the JSON could not be written (said on stderr).
fn print_report(human: &str, report: &impl serde::Serialize, json: bool) -> bool {
    if !json {
        println!("{human}");
        return true;
    }
    eprintln!("{human}");
    match serde_json::to_string(report) {
        Ok(j) => {
            println!("{j}");
            true
        }
        Err(e) => {
            eprintln!("error: {e}");
            false
        }
    }
}

/// `sessionraft bench`: 0 when some request succeeded, 1 otherwise (or on bad options).
fn run_bench(opts: anyhow::Result<bench::BenchOptions>, json: bool) -> ExitCode {
    let report = match opts.and_then(bench::run) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if !print_report(&report.human(), &report, json) {
        return ExitCode::FAILURE;
    }
    if report.ok == 0 {
        eprintln!("error: no request succeeded");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `sessionraft bench --rate`: 0 when some increment was acknowledged and every counter is
/// right, 1 otherwise (or on bad options).
fn run_open_loop(opts: anyhow::Result<open_loop::OpenLoopOptions>, json: bool) -> ExitCode {
    let report = match opts.and_then(open_loop::run) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if !print_report(&report.human(), &report, json) {
        return ExitCode::FAILURE;
    }
    if report.counters_wrong() {
        eprintln!(
            "error: {} acknowledged writes lost, {} invented",
            report.check.lost_writes, report.check.invented_writes
        );
        return ExitCode::FAILURE;
    }
    if report.ok == 0 {
        eprintln!("error: no request succeeded");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn run_bench_backup(
    sessions: u64,
    state_bytes: usize,
    seed: u64,
    out: PathBuf,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let opts = backup_gen::BackupGenOptions {
        sessions,
        state_bytes,
        seed,
    };
    let trailer = backup_gen::run(&opts, &out)?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} sessions to {} ({:.1} MB) in {:.1} s, content sha256 {}",
        trailer.count,
        out.display(),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        trailer.content_sha256
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_load(
    targets: Vec<String>,
    final_targets: Vec<String>,
    users: u32,
    rate: f64,
    duration: f64,
    settle: f64,
    seed: u64,
    mix: chaos_load::Mix,
    probe_window_ms: Option<u64>,
    out: PathBuf,
) -> anyhow::Result<()> {
    let targets = chaos_load::parse_targets(&targets.join(","));
    let final_targets = match chaos_load::parse_targets(&final_targets.join(",")) {
        f if f.is_empty() => targets.clone(),
        f => f,
    };
    let opts = chaos_load::LoadOptions {
        targets,
        final_targets,
        users,
        rate,
        duration: seconds("duration", duration)?,
        settle: seconds("settle", settle)?,
        seed,
        mix,
        probe_window: probe_window_ms.map(std::time::Duration::from_millis),
        out: out.clone(),
    };
    let s = chaos_load::run(opts)?;
    let revokes = if mix.revoke > 0 {
        format!(", {} revokes acknowledged, {} probes", s.revokes, s.probes)
    } else {
        String::new()
    };
    println!(
        "load: {} ops incl. {} final reads (ok {}, fail {}, unknown {}), {:.1} ok ops/s offered {rate}/s, {} skipped ticks{revokes}; history in {}",
        s.ops,
        s.final_reads,
        s.ok,
        s.fail,
        s.unknown,
        s.throughput,
        s.skipped_ticks,
        out.display()
    );
    Ok(())
}

/// `sessionraft check`: 0 pass, 1 violations, 2 unreadable input (or unwritable output).
fn run_check(
    history: PathBuf,
    nodes: Vec<String>,
    faults: Option<PathBuf>,
    terms: Option<PathBuf>,
    out: PathBuf,
    max_staleness_ms: Option<u64>,
) -> ExitCode {
    let opts = verdict::CheckOptions {
        history,
        nodes,
        faults,
        terms,
        out,
        max_staleness_ms,
    };
    match verdict::run(&opts) {
        Ok(report) => {
            print!("{}", report.human(20));
            println!("report: {}", opts.out.display());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The configuration of `--config`, else of `$SESSIONRAFT_CONFIG`, else the embedded one; keys
/// set in the environment (`SESSIONRAFT_<SECTION>__<KEY>`) override the file's.
fn load(path: Option<PathBuf>) -> anyhow::Result<config::Config> {
    let path = path.or_else(|| {
        std::env::var_os(config::CONFIG_FILE_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    });
    config::load(path.as_deref()).map_err(anyhow::Error::from)
}

/// `sessionraft nodes`: tab-separated (id, HTTP, data dir, Raft, RESP or `-`), or JSON by field.
fn print_nodes(cfg: &config::Config, json: bool) -> anyhow::Result<()> {
    let opt = |a: Option<String>| a.map_or(serde_json::Value::Null, serde_json::Value::String);
    if json {
        let nodes: Vec<serde_json::Value> = cfg
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "id": n.id,
                    "http_addr": n.http_addr.to_string(),
                    "raft_addr": n.raft_addr.to_string(),
                    "resp_addr": opt(n.resp_addr.as_ref().map(ToString::to_string)),
                    "data_dir": n.data_dir.display().to_string(),
                    "http_listen": opt(n.http_listen.map(|a| a.to_string())),
                    "raft_listen": opt(n.raft_listen.map(|a| a.to_string())),
                    "resp_listen": opt(n.resp_listen.map(|a| a.to_string())),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(());
    }
    for n in &cfg.nodes {
        let resp = n
            .resp_addr
            .as_ref()
            .map_or_else(|| "-".to_string(), ToString::to_string);
        println!(
            "{}\t{}\t{}\t{}\t{}",
            n.id,
            n.http_addr,
            n.data_dir.display(),
            n.raft_addr,
            resp
        );
    }
    Ok(())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SESSIONRAFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .finish()
        .with(HideClosedListenerError)
        .init();
}

/// Once `serve` has closed its listening sockets on purpose, actix's accept thread reports the
/// closed socket as an accept error ("Error accepting connection: Invalid argument"): that one
/// line is dropped. Every other line of the accept thread stays, "No workers" included.
struct HideClosedListenerError;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for HideClosedListenerError {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        if !(serve::listeners_closed() && event.metadata().target() == "actix_server::accept") {
            return true;
        }
        struct Accepting(bool);
        impl tracing::field::Visit for Accepting {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}").starts_with("Error accepting connection");
                }
            }
        }
        let mut accepting = Accepting(false);
        event.record(&mut accepting);
        !accepting.0
    }
}

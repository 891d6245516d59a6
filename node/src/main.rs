//! `sessionraft`: the node binary, a thin shell over `sessionraft-web`'s `NodeRuntime`.
//!
//! - `sessionraft serve [--config FILE] --node ID` runs one node until SIGTERM/SIGINT.
//! - `sessionraft status [--config FILE]` prints every node's role, term, leader and indexes.
//! - `sessionraft check-config [--config FILE]` validates a configuration and exits.
//! - `sessionraft cluster add-node|remove-node` changes the membership of a running cluster.
//! - `sessionraft backup --to FILE` / `restore --from FILE` / `backup-info FILE`.
//!
//! Without `--config`, the embedded default `cluster.toml` (3 nodes on 127.0.0.1) is used.

use sessionraft_node::{config, ops, serve, status};

use std::net::SocketAddr;
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
        /// Cluster configuration (default: the embedded cluster.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Which node this process is: a node of the configuration, or (with --http and
        /// --data-dir) a node outside it that waits to be added with `cluster add-node`.
        #[arg(long)]
        node: u64,
        /// HTTP address of a node outside the configuration.
        #[arg(long, requires = "data_dir")]
        http: Option<SocketAddr>,
        /// Raft address of a node outside the configuration (default: --http).
        #[arg(long, requires = "http")]
        raft: Option<SocketAddr>,
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
    },
    /// Validate a configuration and exit.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the nodes of a configuration, one per line: id, HTTP address, data dir, Raft
    /// address (tab-separated; for scripts).
    Nodes {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the load balancer address of a configuration (nothing when it has none).
    LbAddr {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Change the membership of a running cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCmd,
    },
    /// Write a consistent backup of every live session of a running cluster to FILE.
    Backup {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where to write the backup (written to FILE.partial, verified, then renamed).
        #[arg(long)]
        to: PathBuf,
    },
    /// Seed a new (empty) cluster with the sessions of a backup.
    Restore {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The backup file (verified before anything is restored).
        #[arg(long)]
        from: PathBuf,
        /// Restore even though the cluster already holds sessions (backed-up sessions replace
        /// those under the same ids).
        #[arg(long)]
        force: bool,
    },
    /// Verify a backup file and print its summary (sessions, applied index, content checksum).
    BackupInfo { file: PathBuf },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Add a running node: as a learner, wait until it has caught up, then promote it to voter.
    AddNode {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        id: u64,
        /// The new node's HTTP address (it must already run there).
        #[arg(long)]
        http: SocketAddr,
        /// The new node's Raft address (default: --http).
        #[arg(long)]
        raft: Option<SocketAddr>,
    },
    /// Remove a node (voter or learner) from the cluster.
    RemoveNode {
        #[arg(long)]
        config: Option<PathBuf>,
        id: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
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
            load(config).and_then(|cfg| serve::run(cfg, node, joining))
        }
        Cmd::Status { config, json } => config::load(config.as_deref())
            .map_err(anyhow::Error::from)
            .and_then(|cfg| status::run(&cfg, json)),
        Cmd::Nodes { config } => config::load(config.as_deref())
            .map(|cfg| {
                for n in &cfg.nodes {
                    println!(
                        "{}\t{}\t{}\t{}",
                        n.id,
                        n.http_addr,
                        n.data_dir.display(),
                        n.raft_addr
                    );
                }
            })
            .map_err(anyhow::Error::from),
        Cmd::LbAddr { config } => load(config).map(|cfg| {
            if let Some(a) = cfg.lb_addr {
                println!("{a}");
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
        } => load(config).and_then(|cfg| ops::add_node(&cfg, id, http, raft.unwrap_or(http))),
        Cmd::Cluster {
            command: ClusterCmd::RemoveNode { config, id },
        } => load(config).and_then(|cfg| ops::remove_node(&cfg, id)),
        Cmd::Backup { config, to } => load(config).and_then(|cfg| ops::backup(&cfg, &to)),
        Cmd::Restore {
            config,
            from,
            force,
        } => load(config).and_then(|cfg| ops::restore(&cfg, &from, force)),
        Cmd::BackupInfo { file } => ops::backup_info(&file),
        Cmd::CheckConfig { config } => config::load(config.as_deref())
            .map(|cfg| println!("configuration ok: {} nodes", cfg.nodes.len()))
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<PathBuf>) -> anyhow::Result<config::Config> {
    config::load(path.as_deref()).map_err(anyhow::Error::from)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SESSIONRAFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

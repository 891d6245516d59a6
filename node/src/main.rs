//! `sessionraft`: the node binary, a thin shell over `sessionraft-web`'s `NodeRuntime`.
//!
//! - `sessionraft serve [--config FILE] --node ID` runs one node until SIGTERM/SIGINT.
//! - `sessionraft status [--config FILE]` prints every node's role, term, leader and indexes.
//! - `sessionraft check-config [--config FILE]` validates a configuration and exits.
//!
//! Without `--config`, the embedded default `cluster.toml` (3 nodes on 127.0.0.1) is used.

use sessionraft_node::{config, serve, status};

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
        /// Which node of the configuration this process is.
        #[arg(long)]
        node: u64,
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
    /// Print the nodes of a configuration, one per line: id, HTTP address, data dir
    /// (tab-separated; for scripts).
    Nodes {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Cmd::Serve { config, node } => config::load(config.as_deref())
            .map_err(anyhow::Error::from)
            .and_then(|cfg| serve::run(cfg, node)),
        Cmd::Status { config, json } => config::load(config.as_deref())
            .map_err(anyhow::Error::from)
            .and_then(|cfg| status::run(&cfg, json)),
        Cmd::Nodes { config } => config::load(config.as_deref())
            .map(|cfg| {
                for n in &cfg.nodes {
                    println!("{}\t{}\t{}", n.id, n.http_addr, n.data_dir.display());
                }
            })
            .map_err(anyhow::Error::from),
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SESSIONRAFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

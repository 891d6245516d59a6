//! # sessionraft-node
//!
//! The library behind the `sessionraft` binary (`main.rs` only parses arguments):
//! - [`config`]: `cluster.toml` parsed once into a validated [`config::Config`].
//! - [`serve`]: run one node (HTTP server over `sessionraft-web`'s `Server`).
//! - [`status`]: the cluster status table.
//! - [`staleness`]: `sessionraft staleness` — how long an acknowledged change stays invisible to
//!   token reads on the followers (the real figure behind `max_staleness_ms`).
//! - [`ops`]: membership changes, backup and restore through the admin API.
//! - [`systemd`]: `READY=1` / `STOPPING=1` for `Type=notify` units.
//! - [`tls`]: `[tls]`: the rustls configuration of a node's listeners, the CLI's HTTPS clients.
//! - [`bench`](mod@bench): `sessionraft bench` (closed-loop HTTP load generator for sessionraft, apps with
//!   the same API, etcd) and `sessionraft bench-backup` (synthetic backup files).
//! - [`chaos`]: `sessionraft load` (recorded load) and `sessionraft check` (history checker,
//!   convergence, report) for chaos testing.
//! - [`migrate`]: `sessionraft import` / `export` — the live keys of a Redis session store into
//!   the cluster's keyspace with their lifetimes, and back.

pub mod bench;
pub mod chaos;
pub use sessionraft_web::config;
pub mod migrate;
pub mod ops;
pub mod serve;
pub mod staleness;
pub mod status;
pub mod systemd;
pub mod tls;
pub mod trust;

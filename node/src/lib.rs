//! # sessionraft-node
//!
//! The library behind the `sessionraft` binary (`main.rs` only parses arguments):
//! - [`config`]: `cluster.toml` parsed once into a validated [`config::Config`].
//! - [`serve`]: run one node (HTTP server over `sessionraft-web`'s `NodeRuntime`).
//! - [`status`]: the cluster status table.
//! - [`ops`]: membership changes, backup and restore through the admin API.
//! - [`chaos`]: `sessionraft load` (recorded load) and `sessionraft check` (history checker,
//!   convergence, report) for chaos testing.

pub mod chaos;
pub mod config;
pub mod ops;
pub mod serve;
pub mod status;

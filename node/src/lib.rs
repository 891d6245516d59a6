//! # sessionraft-node
//!
//! The library behind the `sessionraft` binary (`main.rs` only parses arguments):
//! - [`config`]: `cluster.toml` parsed once into a validated [`config::Config`].
//! - [`serve`]: run one node (HTTP server over `sessionraft-web`'s `NodeRuntime`).
//! - [`status`]: the cluster status table.

pub mod config;
pub mod serve;
pub mod status;

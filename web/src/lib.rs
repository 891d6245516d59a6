//! # sessionraft-web
//!
//! The HTTP layer of a sessionraft node. Map of the modules:
//! - [`node_runtime`]: one node embedded in a process (storage, Raft, actors, routes, shutdown).
//! - [`session_store`]: [`RaftSessionStore`], actix-session's `SessionStore` on Raft.
//! - [`request_scope`]: maps store failures to 503 / 409 / 413 instead of actix-session's 500.
//! - [`cluster`]: proposing commands (forwarding to the leader) and linearizable read barriers.
//! - [`batcher`]: the write batcher actor (group commit). [`touch`]: TTL touch coalescer actor.
//!   [`purger`]: expiry purge actor (leader only).
//! - [`network`], [`raft_rpc`], [`rpc`], [`auth`]: internal RPC out and in, its wire format, MACs.
//! - [`frontend`]: the embedded demo app and dashboard pages. [`dashboard`]: the `ClusterWatcher`
//!   actor and the `/cluster/events` SSE feed. [`admin`], [`admin_ops`]: the token-guarded admin
//!   API and membership changes (run on the leader); `admin_backup`: backup and restore.
//! - [`handlers`]: the public HTTP surface. [`metrics`]: Prometheus. [`clock`]: time and key hashes.

pub mod admin;
mod admin_backup;
pub mod admin_ops;
pub mod auth;
pub mod batcher;
pub mod clock;
pub mod cluster;
pub mod cookie_ring;
pub mod dashboard;
pub mod failover;
pub mod frontend;
pub mod handlers;
pub mod lease;
pub mod metrics;
pub mod network;
pub mod node_runtime;
pub mod purger;
pub mod raft_rpc;
pub mod request_scope;
pub mod rpc;
pub mod session_store;
pub mod touch;

pub use cluster::{Cluster, ClusterError, Deadlines};
pub use node_runtime::{NodeError, NodeOptions, NodeRuntime, Services};
pub use session_store::{RaftSessionStore, StoreSettings};

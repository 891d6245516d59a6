//! # sessionraft-raft
//!
//! The consensus node of sessionraft: openraft 0.9 (storage v2) on RocksDB, and the runtime
//! that drives it. Nothing here speaks HTTP to clients; `sessionraft-web` mounts the inbound
//! transport and serves sessions over it.
//!
//! Map of the modules:
//! - [`storage`]: the replicated state on disk.
//!   - [`storage::types`]: the openraft type configuration (`TypeConfig`, `Raft`, aliases).
//!   - [`storage::command`]: the replicated [`Command`]s, their [`Response`]s, the [`Session`].
//!   - [`storage::codec`]: the versioned encoding of every persisted value.
//!   - [`storage::format`]: the data directory's format marker (a newer release's data is refused).
//!   - `storage::db`: the RocksDB instance, its column families and key layouts.
//!   - [`storage::log_store`]: the Raft log and vote ([`LogStore`], `RaftLogStorage`).
//!   - [`storage::state_machine`]: sessions, indexes, snapshots ([`StateMachineStore`]).
//!   - `storage::apply`: the deterministic application of commands.
//!   - [`storage::snapshot_file`]: the snapshot file format.
//!   - [`storage::recovery`]: offline recovery of a lost majority (`--force-new-cluster`).
//!   - [`storage::backup`]: the backup file format (all live sessions and keys, checksummed).
//!   - `storage::kv`: the Redis-protocol keyspace's commands and entries.
//!   - [`storage::error`]: [`Error`], what storage reports.
//! - [`consensus`]: the runtime that drives openraft on one node.
//!   - [`consensus::runtime`]: [`consensus::runtime::ConsensusNode`] — start storage, Raft and the tasks
//!     below; shut down in order.
//!   - [`consensus::cluster`]: [`consensus::cluster::Cluster`] — proposing (forwarded to the leader)
//!     and linearizable read barriers (read index, leader lease).
//!   - [`consensus::lease`]: the leader lease clock. [`consensus::leader_contact`]: when a leader was
//!     last heard from. [`consensus::freshness`]: whether a follower may serve session-token reads
//!     from its own replica (`read_consistency`, `max_staleness`).
//!   - [`consensus::batcher`]: the write batcher (group commit). [`consensus::touch`]: TTL touch
//!     coalescing. [`consensus::purger`]: the expiry purge (leader only, only when a session is due).
//!   - [`consensus::failover`]: early elections when the leader's process is gone.
//!   - [`consensus::peer_names`]: whether the members' Raft addresses resolve (reported only).
//!   - `consensus::cluster_version`: the leader's driver of the cluster version (announce, record).
//!   - [`consensus::membership`]: membership changes and admin operations on the leader.
//!   - [`consensus::instruments`]: the runtime's Prometheus collectors (registered by `web`).
//!   - [`consensus::settings`]: `[raft]` of `cluster.toml` as written and validated, and the
//!     openraft configuration it makes (read by `web`'s config loader).
//! - [`transport`]: the peer transport.
//!   - [`transport::wire`]: the RPC wire format and our own messages.
//!   - [`transport::auth`]: request MACs, replay windows.
//!   - [`transport::network`]: outgoing calls ([`transport::network::PeerClient`]) and the
//!     openraft network.
//!   - [`transport::inbound`]: what each incoming `/raft/*` request means and answers.
//! - [`clock`]: wall-clock time for proposers, key hashes for logs.
//! - `version`: releases, the cluster version, the features gated on it, the wire format.
//!
//! [`open`] gives the pair of stores, sharing one RocksDB, to hand to `openraft::Raft::new`.
//!
//! Dependencies between modules point one way: `transport` and `consensus` use `storage`;
//! `consensus` uses `transport`'s outgoing side, `transport::inbound` uses `consensus`. No file
//! imports another that imports it back (`ARCHITECTURE.md` says how to check).

pub mod clock;
pub mod consensus;
pub mod storage;
pub mod transport;
pub mod version;

pub use storage::command::{Command, Response, Session, SessionState};
pub use storage::error::{Error, Result};
pub use storage::log_store::LogStore;
pub use storage::state_machine::StateMachineStore;
pub use storage::types::{NodeId, Raft, TypeConfig};
pub use storage::{backup, codec, command, error, log_store, snapshot_file, state_machine, types};
pub use storage::{open, StorageOptions};

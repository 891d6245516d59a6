//! # sessionraft-raft
//!
//! The replicated session state machine of sessionraft: openraft 0.9 (storage v2) on RocksDB.
//!
//! Map of the modules:
//! - [`types`]: the openraft type configuration (`TypeConfig`, `Raft`, aliases).
//! - [`command`]: the replicated [`Command`]s, their [`Response`]s and the stored [`Session`].
//! - [`codec`]: the versioned encoding of every persisted value.
//! - `db`: the RocksDB instance, its column families and key layouts.
//! - [`log_store`]: the Raft log and vote ([`LogStore`], `RaftLogStorage`).
//! - [`state_machine`]: sessions, indexes, snapshots ([`StateMachineStore`], `RaftStateMachine`).
//! - `apply`: the deterministic application of commands.
//! - [`snapshot_file`]: the snapshot file format.
//! - [`backup`]: the backup file format (all live sessions, checksummed).
//!
//! [`open`] gives the pair of stores, sharing one RocksDB, to hand to `openraft::Raft::new`.

mod apply;
pub mod backup;
pub mod codec;
pub mod command;
mod db;
pub mod error;
pub mod log_store;
pub mod snapshot_file;
pub mod state_machine;
pub mod types;

use std::path::Path;

pub use command::{Command, Response, Session, SessionState};
pub use db::StorageOptions;
pub use error::{Error, Result};
pub use log_store::LogStore;
pub use state_machine::StateMachineStore;
pub use types::{NodeId, Raft, TypeConfig};

/// Open (or create) the storage of one node under `data_dir`: RocksDB in `data_dir/db`,
/// snapshot files in `data_dir/snapshots`.
///
/// # Errors
/// When the directory cannot be created, RocksDB cannot be opened (for example another process
/// holds its lock) or stored metadata is corrupt (the error names what).
pub fn open(data_dir: &Path, opts: &StorageOptions) -> Result<(LogStore, StateMachineStore)> {
    std::fs::create_dir_all(data_dir).map_err(|e| Error::SnapshotIo {
        path: data_dir.display().to_string(),
        source: e,
    })?;
    let db = db::open_db(&data_dir.join("db"), opts)?;
    let sm = StateMachineStore::open(db.clone(), data_dir)?;
    Ok((LogStore::new(db), sm))
}

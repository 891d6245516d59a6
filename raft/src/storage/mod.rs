//! The replicated state on disk: the Raft log and vote, and the session state machine, in one
//! RocksDB (a column family per concern), plus the snapshot and backup file formats.

pub(crate) mod apply;
pub mod backup;
pub mod codec;
pub mod command;
pub(crate) mod db;
pub mod error;
pub mod format;
pub mod kv;
pub mod log_store;
pub mod recovery;
pub mod snapshot_file;
pub mod state_machine;
pub mod types;

use std::path::Path;

pub use db::StorageOptions;
use error::{Error, Result};
use log_store::LogStore;
use state_machine::StateMachineStore;

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
    let db_dir = data_dir.join("db");
    // A directory a newer release wrote is refused before RocksDB opens (and would misread) it.
    format::refuse_unknown_column_families(&db_dir, &db::ALL_CFS)?;
    let db = db::open_db(&db_dir, opts)?;
    format::check_and_mark(&db, &db_dir)?;
    let sm = StateMachineStore::open(db.clone(), data_dir)?;
    Ok((LogStore::new(db), sm))
}

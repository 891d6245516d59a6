//! Errors of the storage layer, and their conversion into openraft's `StorageError`.

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageIOError};

use crate::storage::codec::CodecError;
use crate::storage::types::{NodeId, StorageError};

/// An error of sessionraft's storage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open RocksDB at {path}: {source}")]
    Open {
        path: String,
        source: rocksdb::Error,
    },
    /// The data directory was written by a newer release: never opened, never misread.
    #[error(
        "{path} holds data of a newer release ({found}); this release ({version}) reads storage \
         format {supported} at most: run the newer release, or restore a backup into an empty \
         data directory"
    )]
    NewerFormat {
        path: String,
        found: String,
        supported: u32,
        version: &'static str,
    },
    #[error("RocksDB column family {0} is missing")]
    MissingColumnFamily(&'static str),
    #[error("RocksDB {op} failed: {source}")]
    Rocks {
        op: &'static str,
        source: rocksdb::Error,
    },
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("snapshot file {path}: {source}")]
    SnapshotIo {
        path: String,
        source: std::io::Error,
    },
    #[error("snapshot builder stopped before it finished")]
    BuilderGone,
    #[error("the {0} task failed: {1}")]
    TaskFailed(&'static str, String),
}

/// Result of the storage layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn rocks(op: &'static str) -> impl FnOnce(rocksdb::Error) -> Error {
    move |source| Error::Rocks { op, source }
}

impl Error {
    /// Convert into openraft's error, naming what was being read or written.
    pub(crate) fn into_storage(
        self,
        subject: ErrorSubject<NodeId>,
        verb: ErrorVerb,
    ) -> StorageError {
        StorageError::IO {
            source: StorageIOError::new(subject, verb, AnyError::error(self.to_string())),
        }
    }
}

pub(crate) fn read_logs(e: Error) -> StorageError {
    e.into_storage(ErrorSubject::Logs, ErrorVerb::Read)
}
pub(crate) fn write_logs(e: Error) -> StorageError {
    e.into_storage(ErrorSubject::Logs, ErrorVerb::Write)
}
pub(crate) fn read_sm(e: Error) -> StorageError {
    e.into_storage(ErrorSubject::StateMachine, ErrorVerb::Read)
}
pub(crate) fn write_sm(e: Error) -> StorageError {
    e.into_storage(ErrorSubject::StateMachine, ErrorVerb::Write)
}

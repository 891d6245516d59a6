//! The Raft log and vote on RocksDB: [`LogStore`] implements openraft's `RaftLogStorage`.
//!
//! Durability: the vote, every appended batch of entries, a truncation and the purge bookkeeping
//! are written with `sync = true` (fsync of the WAL) before the call returns or, for `append`,
//! before the flush callback tells openraft the entries are on disk. Raft's safety depends on it:
//! a node must never forget a vote it granted or an entry it acknowledged. The commit index
//! is saved unsynced (see `save_committed`).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};

use crate::storage::codec;
use crate::storage::db::{self, CF_LOGS, CF_LOG_META};
use crate::storage::error::{self, rocks, Error, Result};
use crate::storage::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
const KEY_COMMITTED: &[u8] = b"committed";

/// The log store: a cheap clone over the shared RocksDB handle.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn parse_index_key(k: &[u8]) -> Result<u64> {
    let b: [u8; 8] = k.try_into().map_err(|_| Error::Corrupt {
        what: "log key",
        reason: format!("{} bytes, expected 8", k.len()),
    })?;
    Ok(u64::from_be_bytes(b))
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>) -> Self {
        Self { db }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>> {
        let cf = db::cf(&self.db, CF_LOG_META)?;
        match self.db.get_cf(cf, key).map_err(rocks("read log meta"))? {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode(what, &bytes)?)),
        }
    }

    /// Write `entries` and fsync the WAL: when this returns `Ok`, the entries survive a crash.
    ///
    /// # Errors
    /// On a RocksDB write error or an entry that cannot be encoded.
    pub fn write_entries_durably<I: IntoIterator<Item = Entry>>(
        &self,
        entries: I,
    ) -> Result<usize> {
        let cf = db::cf(&self.db, CF_LOGS)?;
        let mut batch = WriteBatch::default();
        let mut n = 0;
        for entry in entries {
            batch.put_cf(
                cf,
                index_key(entry.log_id.index),
                codec::encode("log entry", &entry)?,
            );
            n += 1;
        }
        self.db
            .write_opt(batch, &db::synced())
            .map_err(rocks("append log entries"))?;
        Ok(n)
    }

    /// Read entries whose index is in `range`, in order.
    ///
    /// # Errors
    /// On a RocksDB read error or a corrupt entry (the error names the index).
    pub fn read_entries<RB: RangeBounds<u64>>(&self, range: RB) -> Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let cf = db::cf(&self.db, CF_LOGS)?;
        let mut out = Vec::new();
        let start_key = index_key(start);
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&start_key, Direction::Forward))
        {
            let (k, v) = item.map_err(rocks("read log entries"))?;
            let index = parse_index_key(&k)?;
            if !range.contains(&index) {
                break;
            }
            let entry: Entry = codec::decode("log entry", &v)?;
            if entry.log_id.index != index {
                return Err(Error::Corrupt {
                    what: "log entry",
                    reason: format!(
                        "stored at index {index} but holds index {}",
                        entry.log_id.index
                    ),
                });
            }
            out.push(entry);
        }
        Ok(out)
    }

    fn last_log_id(&self) -> Result<Option<LogId>> {
        let cf = db::cf(&self.db, CF_LOGS)?;
        match self.db.iterator_cf(cf, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (_k, v) = item.map_err(rocks("read last log entry"))?;
                let entry: Entry = codec::decode("log entry", &v)?;
                Ok(Some(entry.log_id))
            }
        }
    }

    /// The vote on disk (what `read_vote` answers), without a runtime.
    pub(crate) fn vote(&self) -> Result<Option<Vote>> {
        self.get_meta(KEY_VOTE, "vote")
    }

    pub(crate) fn state(&self) -> Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> =
            self.get_meta(KEY_LAST_PURGED, "last purged log id")?;
        let last_log_id = self.last_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    fn put_meta_synced<T: serde::Serialize>(
        &self,
        key: &[u8],
        what: &'static str,
        value: &T,
    ) -> Result<()> {
        self.put_meta(key, what, value, &db::synced())
    }

    fn put_meta<T: serde::Serialize>(
        &self,
        key: &[u8],
        what: &'static str,
        value: &T,
        opts: &WriteOptions,
    ) -> Result<()> {
        let cf = db::cf(&self.db, CF_LOG_META)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, key, codec::encode(what, value)?);
        self.db
            .write_opt(batch, opts)
            .map_err(rocks("write log meta"))
    }

    fn delete_from(&self, index: u64) -> Result<()> {
        let cf = db::cf(&self.db, CF_LOGS)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, index_key(index), index_key(u64::MAX));
        batch.delete_cf(cf, index_key(u64::MAX));
        self.db
            .write_opt(batch, &db::synced())
            .map_err(rocks("truncate log"))
    }

    fn purge_upto(&self, log_id: LogId) -> Result<()> {
        // The purge marker and the deletion go in one synced batch: after a crash the log never
        // starts below what the marker says.
        let meta = db::cf(&self.db, CF_LOG_META)?;
        let logs = db::cf(&self.db, CF_LOGS)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(
            meta,
            KEY_LAST_PURGED,
            codec::encode("last purged log id", &log_id)?,
        );
        batch.delete_range_cf(
            logs,
            index_key(0),
            index_key(log_id.index.saturating_add(1)),
        );
        self.db
            .write_opt(batch, &db::synced())
            .map_err(rocks("purge log"))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(range).map_err(error::read_logs)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.state().map_err(error::read_logs)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        // Synced: a vote granted and then forgotten in a crash lets a node vote twice in a term.
        self.put_meta_synced(KEY_VOTE, "vote", vote)
            .map_err(|e| e.into_storage(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(KEY_VOTE, "vote")
            .map_err(|e| e.into_storage(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced. Raft does not need the commit index on disk (a restarted node learns it
        // from the leader; a new leader re-commits with an entry of its term), and openraft
        // awaits this call in its core before every apply, so a sync here put a third fsync on
        // every write's path (measured: bench/PROFILE.md). What is saved still shortens the
        // catch-up after a restart: the log and this key share one WAL, so the next synced
        // append makes this write durable too, and a crash can only lose a suffix: what is
        // read back is never ahead of the synced log.
        self.put_meta(
            KEY_COMMITTED,
            "committed log id",
            &committed,
            &db::unsynced(),
        )
        .map_err(error::write_logs)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let v: Option<Option<LogId>> = self
            .get_meta(KEY_COMMITTED, "committed log id")
            .map_err(error::read_logs)?;
        Ok(v.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Synced before the callback: the callback tells openraft (and through it the leader)
        // that these entries are durable here.
        let res = self.write_entries_durably(entries);
        match res {
            Ok(_) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                callback.log_io_completed(Err(std::io::Error::other(msg)));
                Err(error::write_logs(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(index = log_id.index, "truncate log");
        self.delete_from(log_id.index).map_err(error::write_logs)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(index = log_id.index, "purge log");
        self.purge_upto(log_id).map_err(error::write_logs)
    }
}

//! The Raft log and vote on RocksDB: [`LogStore`] implements openraft's `RaftLogStorage`.
//!
//! Durability: the vote, every appended batch of entries, a truncation and the purge bookkeeping
//! are written with `sync = true` (fsync of the WAL) before the call returns or, for `append`,
//! before the flush callback tells openraft the entries are on disk. Raft's safety depends on it:
//! a node must never forget a vote it granted or an entry it acknowledged. The commit index
//! is saved unsynced (see `save_committed`).
//!
//! The entries appended last are also kept decoded in memory (`Recent`): the leader's
//! replication streams and every node's state machine read back what was just appended, and
//! a range held there whole is cloned from it instead of being read from RocksDB and decoded
//! again (the leader decoded each entry three times: once per follower and once to apply).
//! Every append, truncation and purge goes through this store and updates it, so it holds
//! exactly what the log holds at those indexes.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

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

/// The log store: a cheap clone over the shared RocksDB handle (and the shared `Recent`).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    recent: Arc<Mutex<Recent>>,
}

/// At most this many of the entries appended last are kept decoded...
const RECENT_MAX_ENTRIES: usize = 128;
/// ...and at most this many encoded bytes of them.
const RECENT_MAX_BYTES: usize = 8 << 20;

/// The entries appended last, decoded, at consecutive indexes ending with the log's last
/// entry (or none), each with its encoded size.
#[derive(Default)]
struct Recent {
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl Recent {
    fn first(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    /// Forget the entries at `index` and after.
    fn truncate(&mut self, index: u64) {
        while self
            .entries
            .back()
            .is_some_and(|(e, _)| e.log_id.index >= index)
        {
            if let Some((_, n)) = self.entries.pop_back() {
                self.bytes -= n;
            }
        }
    }

    /// Forget the entries up to `index`, and the oldest beyond the bounds.
    fn purge(&mut self, index: Option<u64>) {
        while let Some((e, n)) = self.entries.front() {
            let purged = index.is_some_and(|i| e.log_id.index <= i);
            if !purged && self.entries.len() <= RECENT_MAX_ENTRIES && self.bytes <= RECENT_MAX_BYTES
            {
                break;
            }
            self.bytes -= n;
            self.entries.pop_front();
        }
    }

    /// `appended`, just written to the log at consecutive indexes: they replace what was held
    /// from their first index on; held entries not adjacent to them are forgotten.
    fn appended(&mut self, appended: Vec<(Entry, usize)>) {
        let Some(start) = appended.first().map(|(e, _)| e.log_id.index) else {
            return;
        };
        match self.first() {
            Some(first) if first <= start && start <= self.next() => self.truncate(start),
            _ => self.clear(),
        }
        for (e, n) in appended {
            self.bytes += n;
            self.entries.push_back((e, n));
        }
        self.purge(None);
    }

    /// The index after the last entry held.
    fn next(&self) -> u64 {
        self.entries
            .back()
            .map_or(0, |(e, _)| e.log_id.index.saturating_add(1))
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The entries at `start..end`, if every one of them is held.
    fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let first = self.first()?;
        if start < first || end > self.next() || start > end {
            return None;
        }
        let skip = usize::try_from(start - first).ok()?;
        let take = usize::try_from(end - start).ok()?;
        Some(
            self.entries
                .iter()
                .skip(skip)
                .take(take)
                .map(|(e, _)| e.clone())
                .collect(),
        )
    }
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
        Self {
            db,
            recent: Arc::default(),
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
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
        let mut written = Vec::new();
        for entry in entries {
            let bytes = codec::encode("log entry", &entry)?;
            batch.put_cf(cf, index_key(entry.log_id.index), &bytes);
            written.push((entry, bytes.len()));
        }
        let appended = self
            .db
            .write_opt(batch, &db::synced())
            .map_err(rocks("append log entries"));
        let n = written.len();
        let mut recent = self.recent();
        match appended {
            Ok(()) => recent.appended(written),
            // What the log holds now is not known: read it from RocksDB from now on.
            Err(e) => {
                recent.clear();
                return Err(e);
            }
        }
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
        let end = match range.end_bound() {
            Bound::Included(x) => Some(x.saturating_add(1)),
            Bound::Excluded(x) => Some(*x),
            Bound::Unbounded => None,
        };
        if let Some(held) = end.and_then(|end| self.recent().get(start, end)) {
            return Ok(held);
        }
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
        // Forgotten first: a failed deletion leaves the log unknown at those indexes.
        self.recent().truncate(index);
        let cf = db::cf(&self.db, CF_LOGS)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, index_key(index), index_key(u64::MAX));
        batch.delete_cf(cf, index_key(u64::MAX));
        self.db
            .write_opt(batch, &db::synced())
            .map_err(rocks("truncate log"))
    }

    fn purge_upto(&self, log_id: LogId) -> Result<()> {
        self.recent().purge(Some(log_id.index));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> (Entry, usize) {
        let e = Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Command::Batch(Vec::new())),
        };
        (e, 100)
    }

    fn held(r: &Recent) -> Vec<(u64, u64)> {
        r.entries
            .iter()
            .map(|(e, _)| (e.log_id.leader_id.term, e.log_id.index))
            .collect()
    }

    #[test]
    fn appends_replace_from_their_first_index_and_gaps_start_over() {
        let mut r = Recent::default();
        r.appended((5..8).map(|i| entry(1, i)).collect());
        assert_eq!(held(&r), [(1, 5), (1, 6), (1, 7)]);
        // a new leader's entries from index 6 on replace 6 and 7
        r.appended(vec![entry(2, 6)]);
        assert_eq!(held(&r), [(1, 5), (2, 6)]);
        assert_eq!(r.bytes, 200);
        // not adjacent (a snapshot installed further on): only the new ones are held
        r.appended(vec![entry(2, 20)]);
        assert_eq!(held(&r), [(2, 20)]);
        r.appended(vec![entry(2, 3)]);
        assert_eq!(held(&r), [(2, 3)]);
    }

    #[test]
    fn a_range_is_served_only_when_held_whole() {
        let mut r = Recent::default();
        r.appended((10..14).map(|i| entry(1, i)).collect());
        let got = |r: &Recent, s, e| {
            r.get(s, e)
                .map(|v| v.iter().map(|e| e.log_id.index).collect::<Vec<_>>())
        };
        assert_eq!(got(&r, 10, 14), Some(vec![10, 11, 12, 13]));
        assert_eq!(got(&r, 11, 13), Some(vec![11, 12]));
        assert_eq!(got(&r, 12, 12), Some(vec![]));
        assert_eq!(got(&r, 9, 12), None, "starts before what is held");
        assert_eq!(got(&r, 12, 15), None, "ends after the last entry");
        assert_eq!(got(&r, 13, 12), None);
        assert_eq!(got(&Recent::default(), 0, 0), None);
    }

    #[test]
    fn truncation_and_purge_forget_and_the_bounds_hold() {
        let mut r = Recent::default();
        r.appended((1..=10).map(|i| entry(1, i)).collect());
        r.truncate(8);
        assert_eq!(r.next(), 8);
        r.purge(Some(3));
        assert_eq!(r.first(), Some(4));
        assert_eq!(r.bytes, 400);
        r.truncate(0);
        assert!(r.entries.is_empty());
        assert_eq!(r.bytes, 0);

        r.appended(
            (1..=(RECENT_MAX_ENTRIES as u64 + 10))
                .map(|i| entry(1, i))
                .collect(),
        );
        assert_eq!(r.entries.len(), RECENT_MAX_ENTRIES);
        assert_eq!(
            r.next(),
            RECENT_MAX_ENTRIES as u64 + 11,
            "the newest are kept"
        );
        let big = |i| (entry(1, i).0, RECENT_MAX_BYTES / 2);
        r.appended(vec![big(RECENT_MAX_ENTRIES as u64 + 11)]);
        assert!(r.bytes <= RECENT_MAX_BYTES, "{}", r.bytes);
    }
}

//! The session state machine on RocksDB: [`StateMachineStore`] implements openraft's
//! `RaftStateMachine`, and offers the local reads the web layer serves after a read barrier.
//!
//! - `apply` writes the effects of all its entries, last-applied and membership in one atomic
//!   RocksDB write batch (unsynced: the log is the durable record; after a crash openraft
//!   re-applies from the log, and last-applied always matches the data it covers).
//! - Snapshots are built from a RocksDB snapshot taken inside `get_snapshot_builder`, i.e. between
//!   two applies, so they never hold state newer than their last log id. The WAL is synced before
//!   a snapshot is reported, because openraft purges the log up to it.
//! - Installing a snapshot loads it under a fresh generation and switches generation,
//!   last-applied and membership in one synced batch (see `db.rs`).

use std::fs;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::storage::apply::{self, Txn};
use crate::storage::backup::{BackupHeader, BackupTrailer, BackupWriter};
use crate::storage::codec;
use crate::storage::command::{Response, Session};
use crate::storage::db::{
    self, CF_EXPIRY_INDEX, CF_KV, CF_KV_EXPIRY, CF_SESSIONS, CF_SM_META, CF_USER_INDEX,
    GENERATION_CFS,
};
use crate::storage::error::{self, rocks, Error, Result};
use crate::storage::kv::KvEntry;
use crate::storage::snapshot_file::{
    SnapshotFormat, SnapshotReader, SnapshotRecord, SnapshotWriter,
};
use crate::storage::types::{
    Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::version::{ClusterVersion, ClusterVersionCell};

const KEY_GENERATION: &[u8] = b"generation";
const KEY_APPLIED: &[u8] = b"applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";
const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// The cluster version the applied log recorded (absent: never recorded, 0.1).
const KEY_CLUSTER_VERSION: &[u8] = b"cluster_version";

/// One page of `SCAN`: the live entries found and the next cursor (0: done).
pub type KvScanPage = (Vec<(Vec<u8>, KvEntry)>, u64);

/// A stored key (generation prefix removed) and its raw value.
type RawPair = (Vec<u8>, Box<[u8]>);

/// Called with each (stored key, raw value) of the keyspace.
type KvVisitor<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<()>;

/// Visits the keyspace entries of one consistent view (see `with_consistent_view`).
type KvVisit<'a> = &'a dyn Fn(KvVisitor<'_>) -> Result<()>;

/// Sessions written to RocksDB per batch while installing a snapshot.
const INSTALL_BATCH: usize = 4096;

/// The current snapshot: its metadata and its file under the snapshot directory.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct SnapshotInfo {
    meta: SnapshotMeta,
    file_name: String,
}

#[derive(Clone, Debug)]
struct Applied {
    generation: u64,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

struct Inner {
    db: Arc<DB>,
    snapshot_dir: PathBuf,
    applied: RwLock<Applied>,
    /// Serializes switching the current snapshot with opening it.
    snapshot_lock: Mutex<()>,
    /// The applied cluster version (`crate::version`), shared with the peer client and the web
    /// layer; written under `applied`'s lock.
    cluster_version: Arc<ClusterVersionCell>,
    /// Whether a cluster version was ever recorded (decides the snapshot format).
    cluster_version_recorded: std::sync::atomic::AtomicBool,
    /// How many sessions and keyspace keys are stored: exact, kept by `apply` and set by a
    /// count at open and at snapshot install (nothing of it is persisted).
    counts: Counts,
}

/// The exact numbers of stored sessions and keyspace keys (live, or expired and not purged
/// yet), for `DBSIZE`, `INFO keyspace`, `/cluster/status` and the dashboard. Changed only under
/// the `applied` lock, after the write that changed the data.
#[derive(Default)]
struct Counts {
    sessions: std::sync::atomic::AtomicU64,
    keys: std::sync::atomic::AtomicU64,
}

impl Counts {
    fn set(&self, sessions: u64, keys: u64) {
        use std::sync::atomic::Ordering::Release;
        self.sessions.store(sessions, Release);
        self.keys.store(keys, Release);
    }

    fn add(&self, sessions: i64, keys: i64) {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        for (n, by) in [(&self.sessions, sessions), (&self.keys, keys)] {
            if by != 0 {
                // Never below zero, whatever happens (a count only ever drifts by a bug).
                let _ = n.fetch_update(AcqRel, Acquire, |v| Some(v.saturating_add_signed(by)));
            }
        }
    }
}

/// How many keys of `generation` the column family `cf_name` holds (a key-only scan).
fn count_keys(db: &DB, cf_name: &'static str, generation: u64) -> Result<u64> {
    let prefix = db::gen_prefix(generation);
    let cf = db::cf(db, cf_name)?;
    let mut n = 0u64;
    for item in db.iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward)) {
        let (k, _) = item.map_err(rocks("count stored keys"))?;
        if !k.starts_with(&prefix) {
            break;
        }
        n += 1;
    }
    Ok(n)
}

/// Applies of at least this many (estimated) bytes run on a blocking thread, not on the Raft
/// runtime; smaller ones (every ordinary write batch) stay inline, where they cost no thread hop.
const OFFLOAD_APPLY_BYTES: usize = 256 * 1024;

/// The state machine: a cheap clone over shared handles. The web layer keeps a clone for reads.
#[derive(Clone)]
pub struct StateMachineStore {
    inner: Arc<Inner>,
}

/// Builds a snapshot from the point-in-time view taken in `get_snapshot_builder`.
pub struct SnapshotBuilder {
    result: Option<oneshot::Receiver<Result<SnapshotInfo>>>,
    inner: Arc<Inner>,
}

fn get_meta<T: serde::de::DeserializeOwned>(
    db: &DB,
    snap: Option<&rocksdb::Snapshot<'_>>,
    key: &[u8],
    what: &'static str,
) -> Result<Option<T>> {
    let cf = db::cf(db, CF_SM_META)?;
    let v = match snap {
        Some(s) => {
            let mut ro = rocksdb::ReadOptions::default();
            ro.set_snapshot(s);
            db.get_cf_opt(cf, key, &ro)
        }
        None => db.get_cf(cf, key),
    }
    .map_err(rocks("read state machine meta"))?;
    v.map(|b| codec::decode(what, &b))
        .transpose()
        .map_err(Into::into)
}

fn lock_poisoned() -> Error {
    Error::Corrupt {
        what: "state machine lock",
        reason: "poisoned by a panic".into(),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::SnapshotIo {
            path: dir.display().to_string(),
            source: e,
        })
}

fn snap_io(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::SnapshotIo {
        path: path.display().to_string(),
        source,
    }
}

fn snapshot_file_name(meta: &SnapshotMeta) -> String {
    let id: String = meta
        .snapshot_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("snapshot-{id}.bin")
}

/// Whether `cf` holds a key in `[from, to)`.
fn any_key_in(db: &DB, cf: &rocksdb::ColumnFamily, from: &[u8], to: &[u8]) -> Result<bool> {
    match db
        .iterator_cf(cf, IteratorMode::From(from, Direction::Forward))
        .next()
    {
        None => Ok(false),
        Some(item) => Ok(item
            .map_err(rocks("scan for stale generations"))?
            .0
            .as_ref()
            < to),
    }
}

fn snapshot_id(last: &Option<LogId>) -> String {
    match last {
        Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
        None => "empty".to_string(),
    }
}

impl StateMachineStore {
    pub(crate) fn open(db: Arc<DB>, data_dir: &Path) -> Result<Self> {
        let snapshot_dir = data_dir.join("snapshots");
        fs::create_dir_all(&snapshot_dir).map_err(snap_io(&snapshot_dir))?;
        let generation: u64 = get_meta(&db, None, KEY_GENERATION, "generation")?.unwrap_or(0);
        let last_applied: Option<LogId> =
            get_meta::<Option<LogId>>(&db, None, KEY_APPLIED, "last applied log id")?.flatten();
        let membership: StoredMembership =
            get_meta(&db, None, KEY_MEMBERSHIP, "membership")?.unwrap_or_default();
        let cluster_version: Option<ClusterVersion> =
            get_meta(&db, None, KEY_CLUSTER_VERSION, "cluster version")?;

        // Data of any other generation is what a crashed install or an unfinished cleanup left.
        // A range is dropped only when it holds a key: a range tombstone written on every open
        // would count as an entry in RocksDB's key estimates (the dashboard's counts).
        let end = [0xffu8; 9];
        for name in GENERATION_CFS {
            let cf = db::cf(&db, name)?;
            let current = db::gen_prefix(generation);
            let next = db::gen_prefix(generation + 1);
            let mut batch = WriteBatch::default();
            if any_key_in(&db, cf, &db::gen_prefix(0), &current)? {
                batch.delete_range_cf(cf, db::gen_prefix(0), current);
            }
            if any_key_in(&db, cf, &next, &end)? {
                batch.delete_range_cf(cf, &next[..], &end[..]);
            }
            if !batch.is_empty() {
                db.write_opt(batch, &db::unsynced())
                    .map_err(rocks("drop stale generations"))?;
            }
        }

        let store = Self {
            inner: Arc::new(Inner {
                db,
                snapshot_dir,
                applied: RwLock::new(Applied {
                    generation,
                    last_applied,
                    membership,
                }),
                snapshot_lock: Mutex::new(()),
                cluster_version: Arc::new(ClusterVersionCell::new(
                    cluster_version.unwrap_or(ClusterVersion::UNVERSIONED),
                )),
                cluster_version_recorded: cluster_version.is_some().into(),
                counts: Counts::default(),
            }),
        };
        // The exact counts, from the data itself: a scan at open (no format holds them).
        store.inner.counts.set(
            count_keys(&store.inner.db, CF_SESSIONS, generation)?,
            count_keys(&store.inner.db, CF_KV, generation)?,
        );
        let keep = store.current_snapshot_info()?.map(|i| i.file_name);
        store.remove_snapshot_files_except(keep.as_deref());
        Ok(store)
    }

    fn applied(&self) -> Result<Applied> {
        self.inner
            .applied
            .read()
            .map(|a| a.clone())
            .map_err(|_| lock_poisoned())
    }

    fn generation(&self) -> Result<u64> {
        self.inner
            .applied
            .read()
            .map(|a| a.generation)
            .map_err(|_| lock_poisoned())
    }

    /// The cluster version as applied here (shared: it rises as the log is applied).
    pub fn cluster_version(&self) -> Arc<ClusterVersionCell> {
        self.inner.cluster_version.clone()
    }

    /// Record `v` as applied in `batch` when it raises the cluster version; returns whether it
    /// did (the caller raises the cell once the batch is written).
    fn stage_cluster_version(
        &self,
        v: Option<ClusterVersion>,
        batch: &mut WriteBatch,
    ) -> Result<Option<ClusterVersion>> {
        use std::sync::atomic::Ordering::Acquire;
        let Some(v) = v else { return Ok(None) };
        let recorded = self.inner.cluster_version_recorded.load(Acquire);
        if recorded && v <= self.inner.cluster_version.get() {
            return Ok(None);
        }
        batch.put_cf(
            db::cf(&self.inner.db, CF_SM_META)?,
            KEY_CLUSTER_VERSION,
            codec::encode("cluster version", &v)?,
        );
        Ok(Some(v))
    }

    fn raise_cluster_version(&self, v: Option<ClusterVersion>) {
        if let Some(v) = v {
            self.inner.cluster_version.raise(v);
            self.inner
                .cluster_version_recorded
                .store(true, std::sync::atomic::Ordering::Release);
            tracing::info!(cluster_version = %v, "cluster version raised");
        }
    }

    /// Last applied log id and the log id of the applied membership, without copying the
    /// membership (read on every lease read).
    ///
    /// # Errors
    /// Only if a panic poisoned the state machine's lock.
    pub fn applied_log_ids(&self) -> Result<(Option<LogId>, Option<LogId>)> {
        self.inner
            .applied
            .read()
            .map(|a| (a.last_applied, *a.membership.log_id()))
            .map_err(|_| lock_poisoned())
    }

    /// Last applied log id and the applied membership.
    ///
    /// # Errors
    /// Only if a panic poisoned the state machine's lock.
    pub fn applied_state(&self) -> Result<(Option<LogId>, StoredMembership)> {
        let a = self.applied()?;
        Ok((a.last_applied, a.membership))
    }

    /// The live session under `key` at `now_ms`, read locally. Linearizable only after a read
    /// barrier (the caller's job); an expired session is absent even before it is purged.
    ///
    /// # Errors
    /// On a RocksDB error or a corrupt stored session.
    pub fn get_session(&self, key: &str, now_ms: u64) -> Result<Option<Session>> {
        let generation = self.generation()?;
        Ok(apply::read_session(&self.inner.db, generation, key)?.filter(|s| s.is_live(now_ms)))
    }

    /// Whether the expiry index holds an entry due at `now_ms` (`expires_at_ms <= now_ms`): what
    /// a `PurgeExpired` proposed now would find. One seek to the index's first entry of the
    /// current generation; the purger asks this before proposing, so an idle cluster's log
    /// stands still.
    ///
    /// # Errors
    /// On a RocksDB error or a corrupt index key.
    pub fn has_expired(&self, now_ms: u64) -> Result<bool> {
        self.first_index_entry_due(CF_EXPIRY_INDEX, "scan expiry index", now_ms, |k| {
            db::parse_expiry_key(k).map(|(at, _)| at)
        })
    }

    /// Whether the first entry of the current generation in the expiry index `cf_name` (keys
    /// in expiry order) is due at `now_ms`; `expiry_of` reads an index key's instant.
    fn first_index_entry_due(
        &self,
        cf_name: &'static str,
        what: &'static str,
        now_ms: u64,
        expiry_of: impl Fn(&[u8]) -> Result<u64>,
    ) -> Result<bool> {
        let generation = self.generation()?;
        let db = &self.inner.db;
        let prefix = db::gen_prefix(generation);
        let cf = db::cf(db, cf_name)?;
        let Some(item) = db
            .iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward))
            .next()
        else {
            return Ok(false);
        };
        let (k, _) = item.map_err(rocks(what))?;
        if !k.starts_with(&prefix) {
            return Ok(false);
        }
        Ok(expiry_of(&k)? <= now_ms)
    }

    /// The live keyspace entry under `key` at `now_ms`, read locally (linearizable after a read
    /// barrier; an expired key is absent even before it is purged).
    ///
    /// # Errors
    /// On a RocksDB error or a corrupt stored entry.
    pub fn kv_get(&self, key: &[u8], now_ms: u64) -> Result<Option<KvEntry>> {
        let generation = self.generation()?;
        Ok(apply::read_kv(&self.inner.db, generation, key)?.filter(|e| e.is_live(now_ms)))
    }

    /// One step of a `SCAN`: the live keys (with their entries) from `cursor` on, in hash order,
    /// at least `count` stored keys visited (all keys of the last hash visited, so that a hash
    /// is never split across two steps), each passed through `keep`. Returns them and the next
    /// cursor (0: done). Every key present for the whole iteration is returned at least once.
    ///
    /// # Errors
    /// On a RocksDB error or a corrupt stored entry.
    pub fn kv_scan(
        &self,
        cursor: u64,
        count: usize,
        now_ms: u64,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<KvScanPage> {
        let generation = self.generation()?;
        let db = &self.inner.db;
        let prefix = db::gen_prefix(generation);
        let start = db::kv_hash_start(generation, cursor);
        let cf = db::cf(db, CF_KV)?;
        let mut out = Vec::new();
        let mut last_hash: Option<u64> = None;
        let items = db.iterator_cf(cf, IteratorMode::From(&start, Direction::Forward));
        for (visited, item) in items.enumerate() {
            let (k, v) = item.map_err(rocks("scan kv"))?;
            if !k.starts_with(&prefix) {
                break;
            }
            let (hash, key) = db::parse_kv_key(&k)?;
            if visited >= count.max(1) && last_hash != Some(hash) {
                // `hash` > the last one visited: resume there.
                return Ok((out, hash.max(1)));
            }
            last_hash = Some(hash);
            if keep(&key) {
                let entry: KvEntry = codec::decode("kv entry", &v)?;
                if entry.is_live(now_ms) {
                    out.push((key, entry));
                }
            }
        }
        Ok((out, 0))
    }

    /// The number of keyspace entries stored (live or expired but not yet purged, as Redis's
    /// `DBSIZE` counts), by a scan of the keyspace (what [`Self::kv_keys`] keeps exactly).
    ///
    /// # Errors
    /// On a RocksDB error.
    pub fn kv_len(&self) -> Result<u64> {
        count_keys(&self.inner.db, CF_KV, self.generation()?)
    }

    /// The number of sessions stored (live or expired but not yet purged), by a scan (what
    /// [`Self::sessions_stored`] keeps exactly).
    ///
    /// # Errors
    /// On a RocksDB error.
    pub fn sessions_len(&self) -> Result<u64> {
        count_keys(&self.inner.db, CF_SESSIONS, self.generation()?)
    }

    /// The number of keyspace entries stored (live, or expired and not purged yet: what
    /// Redis's `DBSIZE` counts), exact and without a scan: counted at open and at snapshot
    /// install, kept by every apply.
    pub fn kv_keys(&self) -> u64 {
        self.inner
            .counts
            .keys
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The number of sessions stored (live, or expired and not purged yet — the purger removes
    /// those within seconds), exact and without a scan, as [`Self::kv_keys`].
    pub fn sessions_stored(&self) -> u64 {
        self.inner
            .counts
            .sessions
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether a keyspace key is due for purging at `now_ms` (see [`Self::has_expired`]).
    ///
    /// # Errors
    /// On a RocksDB error or a corrupt index key.
    pub fn kv_has_expired(&self, now_ms: u64) -> Result<bool> {
        self.first_index_entry_due(CF_KV_EXPIRY, "scan kv expiry index", now_ms, |k| {
            db::parse_kv_expiry_key(k).map(|(at, _)| at)
        })
    }

    /// Estimated number of stored keyspace entries (RocksDB's estimate; cheap).
    pub fn estimated_kv_keys(&self) -> u64 {
        db::cf(&self.inner.db, CF_KV)
            .ok()
            .and_then(|cf| {
                self.inner
                    .db
                    .property_int_value_cf(cf, "rocksdb.estimate-num-keys")
                    .ok()
                    .flatten()
            })
            .unwrap_or(0)
    }

    /// Every live session of `user` at `now_ms`, with its key.
    ///
    /// # Errors
    /// On a RocksDB error or a corrupt index or session.
    pub fn sessions_of_user(&self, user: &str, now_ms: u64) -> Result<Vec<(String, Session)>> {
        let generation = self.generation()?;
        let db = &self.inner.db;
        let prefix = db::user_prefix(generation, user);
        let cf = db::cf(db, CF_USER_INDEX)?;
        let mut out = Vec::new();
        for item in db.iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward)) {
            let (k, _) = item.map_err(rocks("scan user index"))?;
            if !k.starts_with(&prefix) {
                break;
            }
            let key = db::parse_user_index_key(&k, prefix.len())?;
            if let Some(s) = apply::read_session(db, generation, &key)? {
                if s.is_live(now_ms) && s.user.as_deref() == Some(user) {
                    out.push((key, s));
                }
            }
        }
        Ok(out)
    }

    /// Run `f` over one consistent RocksDB view: the log id it reflects, the view's keyspace
    /// entries (a function that visits each in stored order, as (stored key without the
    /// generation: hash ++ key, encoded entry), without holding them all in memory) and every
    /// stored session (live or expired) in key order, as (key, encoded session).
    fn with_consistent_view<T>(
        &self,
        f: impl FnOnce(
            Option<LogId>,
            KvVisit<'_>,
            &mut dyn Iterator<Item = Result<RawPair>>,
        ) -> Result<T>,
    ) -> Result<T> {
        let db = &self.inner.db;
        let snap = db.snapshot();
        let generation: u64 = get_meta(db, Some(&snap), KEY_GENERATION, "generation")?.unwrap_or(0);
        let last: Option<LogId> =
            get_meta::<Option<LogId>>(db, Some(&snap), KEY_APPLIED, "last applied log id")?
                .flatten();
        let prefix = db::gen_prefix(generation);
        let cf = db::cf(db, CF_SESSIONS)?;
        let mut sessions = snap
            .iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward))
            .map(|item| item.map_err(rocks("scan sessions")))
            .take_while(|item| item.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
            .map(|item| item.map(|(k, v)| (k[prefix.len()..].to_vec(), v)));
        let kv_cf = db::cf(db, CF_KV)?;
        let kv = |each: KvVisitor<'_>| -> Result<()> {
            for item in snap.iterator_cf(kv_cf, IteratorMode::From(&prefix, Direction::Forward)) {
                let (k, v) = item.map_err(rocks("scan kv"))?;
                if !k.starts_with(&prefix) {
                    break;
                }
                each(&k[prefix.len()..], &v)?;
            }
            Ok(())
        };
        f(last, &kv, &mut sessions)
    }

    /// A digest of the whole state machine (every stored session in key order, then every
    /// keyspace entry in its stored order) and the log id it reflects, taken from one consistent
    /// RocksDB view. Two replicas at the same applied index must report the same digest. The
    /// count is the sessions'; an empty keyspace adds nothing to the hash (a sessions-only
    /// state digests as it did before the keyspace existed).
    ///
    /// # Errors
    /// On a RocksDB error.
    pub fn digest(&self) -> Result<(Option<LogId>, u64, String)> {
        self.with_consistent_view(|last, kv, sessions| {
            let mut hasher = Sha256::new();
            let mut count = 0u64;
            for item in sessions {
                let (key, value) = item?;
                hasher.update(((key.len() + 8) as u64).to_be_bytes());
                hasher.update(&key);
                hasher.update((value.len() as u64).to_be_bytes());
                hasher.update(&value);
                count += 1;
            }
            kv(&mut |key, value| {
                hasher.update(b"kv");
                hasher.update((key.len() as u64).to_be_bytes());
                hasher.update(key);
                hasher.update((value.len() as u64).to_be_bytes());
                hasher.update(value);
                Ok(())
            })?;
            Ok((last, count, hex::encode(hasher.finalize())))
        })
    }

    /// Write every session and every keyspace entry live at `now_ms` to a backup (see
    /// [`crate::storage::backup`]), from one consistent RocksDB view, in stored order. Returns
    /// the writer, the header and the trailer written.
    ///
    /// # Errors
    /// On a RocksDB or write error, or a corrupt stored session or entry.
    pub fn backup<W: Write>(
        &self,
        out: W,
        node_id: u64,
        now_ms: u64,
    ) -> Result<(W, BackupHeader, BackupTrailer)> {
        self.with_consistent_view(|last, kv, sessions| {
            let header = BackupHeader {
                created_at_ms: now_ms,
                node_id,
                applied_index: last.map(|l| l.index),
            };
            let mut writer = BackupWriter::new(out, &header)?;
            for item in sessions {
                let (key, value) = item?;
                let key = String::from_utf8(key).map_err(|_| Error::Corrupt {
                    what: "session key",
                    reason: "not UTF-8".into(),
                })?;
                let session: Session = codec::decode("session", &value)?;
                if session.is_live(now_ms) {
                    writer.add(&key, &session)?;
                }
            }
            kv(&mut |stored, value| {
                // The stored key is the 8-byte hash, then the key.
                let key = stored.get(8..).ok_or_else(|| Error::Corrupt {
                    what: "kv key",
                    reason: format!("{} bytes, expected at least 8", stored.len()),
                })?;
                let entry: KvEntry = codec::decode("kv entry", value)?;
                if entry.is_live(now_ms) {
                    writer.add_kv(key, &entry)?;
                }
                Ok(())
            })?;
            let (out, trailer) = writer.finish()?;
            Ok((out, header, trailer))
        })
    }

    /// Whether nothing at all is stored: no session and no keyspace entry (live or expired).
    ///
    /// # Errors
    /// On a RocksDB error.
    pub fn is_empty(&self) -> Result<bool> {
        let generation = self.generation()?;
        let db = &self.inner.db;
        let prefix = db::gen_prefix(generation);
        for name in [CF_SESSIONS, CF_KV] {
            let cf = db::cf(db, name)?;
            if let Some(item) = db
                .iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward))
                .next()
            {
                if item
                    .map_err(rocks("scan for any data"))?
                    .0
                    .starts_with(&prefix)
                {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Estimated number of stored sessions (RocksDB's estimate; cheap).
    pub fn estimated_sessions(&self) -> u64 {
        db::cf(&self.inner.db, CF_SESSIONS)
            .ok()
            .and_then(|cf| {
                self.inner
                    .db
                    .property_int_value_cf(cf, "rocksdb.estimate-num-keys")
                    .ok()
                    .flatten()
            })
            .unwrap_or(0)
    }

    fn current_snapshot_info(&self) -> Result<Option<SnapshotInfo>> {
        get_meta(&self.inner.db, None, KEY_SNAPSHOT, "snapshot info")
    }

    fn remove_snapshot_files_except(&self, keep: Option<&str>) {
        let Ok(dir) = fs::read_dir(&self.inner.snapshot_dir) else {
            return;
        };
        for e in dir.flatten() {
            let name = e.file_name();
            if Some(name.to_string_lossy().as_ref()) != keep {
                // Best effort: a leftover file is removed on the next open.
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Add "`info` is the current snapshot" to `batch` (the caller decides when, and drops the
    /// older files after the batch is written).
    fn set_current_snapshot(&self, info: &SnapshotInfo, batch: &mut WriteBatch) -> Result<()> {
        batch.put_cf(
            db::cf(&self.inner.db, CF_SM_META)?,
            KEY_SNAPSHOT,
            codec::encode("snapshot info", info)?,
        );
        Ok(())
    }

    fn apply_entries(&self, entries: Vec<Entry>) -> Result<Vec<Response>> {
        let db = &self.inner.db;
        let mut applied = self.inner.applied.write().map_err(|_| lock_poisoned())?;
        let mut txn = Txn::new(db, applied.generation);
        let mut last_applied = applied.last_applied;
        let mut membership = applied.membership.clone();
        let mut out = Vec::with_capacity(entries.len());
        txn.prefetch(entries.iter().filter_map(|e| match &e.payload {
            EntryPayload::Normal(cmd) => Some(cmd),
            _ => None,
        }))?;
        for entry in entries {
            last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(Response::Empty),
                EntryPayload::Normal(cmd) => out.push(txn.apply(&cmd)?),
                EntryPayload::Membership(m) => {
                    membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(Response::Empty);
                }
            }
        }
        let meta = db::cf(db, CF_SM_META)?;
        let mut batch = std::mem::take(&mut txn.batch);
        batch.put_cf(
            meta,
            KEY_APPLIED,
            codec::encode("last applied log id", &last_applied)?,
        );
        batch.put_cf(
            meta,
            KEY_MEMBERSHIP,
            codec::encode("membership", &membership)?,
        );
        let raised = self.stage_cluster_version(txn.cluster_version, &mut batch)?;
        db.write_opt(batch, &db::unsynced())
            .map_err(rocks("apply entries"))?;
        self.inner.counts.add(txn.sessions_added, txn.keys_added);
        applied.last_applied = last_applied;
        applied.membership = membership;
        self.raise_cluster_version(raised);
        Ok(out)
    }

    /// Start a snapshot build: takes the RocksDB snapshot now (between two applies) and writes
    /// the file on a background thread.
    fn start_build(&self) -> oneshot::Receiver<Result<SnapshotInfo>> {
        let (taken_tx, taken_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel();
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot-builder".into())
            .spawn(move || {
                let res = this.build_snapshot_file(&taken_tx);
                let _ = done_tx.send(res);
            });
        if spawned.is_ok() {
            // Wait until the thread holds its RocksDB snapshot (or failed before that).
            let _ = taken_rx.recv();
        }
        done_rx
    }

    fn build_snapshot_file(&self, taken: &std::sync::mpsc::Sender<()>) -> Result<SnapshotInfo> {
        let db = &self.inner.db;
        let snap = db.snapshot();
        let _ = taken.send(());
        let generation: u64 = get_meta(db, Some(&snap), KEY_GENERATION, "generation")?.unwrap_or(0);
        let last_log_id: Option<LogId> =
            get_meta::<Option<LogId>>(db, Some(&snap), KEY_APPLIED, "last applied log id")?
                .flatten();
        let last_membership: StoredMembership =
            get_meta(db, Some(&snap), KEY_MEMBERSHIP, "membership")?.unwrap_or_default();
        let cluster_version: Option<ClusterVersion> =
            get_meta(db, Some(&snap), KEY_CLUSTER_VERSION, "cluster version")?;
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id: snapshot_id(&last_log_id),
        };
        let file_name = snapshot_file_name(&meta);
        let tmp = self
            .inner
            .snapshot_dir
            .join(format!("build-{}.tmp", rand::random::<u64>()));
        let result = (|| {
            let file = fs::File::create(&tmp).map_err(snap_io(&tmp))?;
            let prefix = db::gen_prefix(generation);
            let kv_cf = db::cf(db, CF_KV)?;
            let has_keys = snap
                .iterator_cf(kv_cf, IteratorMode::From(&prefix, Direction::Forward))
                .next()
                .transpose()
                .map_err(rocks("scan kv for snapshot"))?
                .is_some_and(|(k, _)| k.starts_with(&prefix));
            // The oldest format that holds this state: a 0.1.0 member reads version 1.
            let format = SnapshotFormat::for_state(cluster_version, has_keys);
            let mut w = SnapshotWriter::with_format(file, format).map_err(snap_io(&tmp))?;
            if let Some(v) = cluster_version {
                w.write_cluster_version(v)?;
            }
            let cf = db::cf(db, CF_SESSIONS)?;
            for item in snap.iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward)) {
                let (k, v) = item.map_err(rocks("scan sessions for snapshot"))?;
                if !k.starts_with(&prefix) {
                    break;
                }
                let key = std::str::from_utf8(&k[8..]).map_err(|e| Error::Corrupt {
                    what: "session key",
                    reason: e.to_string(),
                })?;
                let session: Session = codec::decode("session", &v)?;
                w.write_record(key, &session)?;
            }
            for item in snap.iterator_cf(kv_cf, IteratorMode::From(&prefix, Direction::Forward)) {
                let (k, v) = item.map_err(rocks("scan kv for snapshot"))?;
                if !k.starts_with(&prefix) {
                    break;
                }
                let (_, key) = db::parse_kv_key(&k)?;
                let entry: KvEntry = codec::decode("kv entry", &v)?;
                w.write_kv(&key, &entry)?;
            }
            let (file, _count) = w.finish().map_err(snap_io(&tmp))?;
            file.sync_all().map_err(snap_io(&tmp))?;
            Ok(())
        })();
        drop(snap);
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let path = self.inner.snapshot_dir.join(&file_name);
        fs::rename(&tmp, &path).map_err(snap_io(&path))?;
        sync_dir(&self.inner.snapshot_dir)?;
        // openraft purges the log up to this snapshot once we report it: the applied state it
        // covers must be durable first.
        db.flush_wal(true)
            .map_err(rocks("sync WAL before snapshot"))?;

        let info = SnapshotInfo { meta, file_name };
        let _guard = self
            .inner
            .snapshot_lock
            .lock()
            .map_err(|_| lock_poisoned())?;
        let current = self.current_snapshot_info()?;
        let newer_exists = current
            .as_ref()
            .is_some_and(|c| c.meta.last_log_id > info.meta.last_log_id);
        if newer_exists {
            // An install finished meanwhile; keep its snapshot, report ours from its file.
            tracing::info!(id = %info.meta.snapshot_id, "snapshot superseded by a newer one");
        } else {
            let mut batch = WriteBatch::default();
            self.set_current_snapshot(&info, &mut batch)?;
            db.write_opt(batch, &db::synced())
                .map_err(rocks("record snapshot"))?;
            self.remove_snapshot_files_except(Some(&info.file_name));
        }
        tracing::info!(id = %info.meta.snapshot_id, "snapshot built");
        Ok(info)
    }

    fn open_snapshot(&self, info: &SnapshotInfo) -> Result<fs::File> {
        let path = self.inner.snapshot_dir.join(&info.file_name);
        fs::File::open(&path).map_err(snap_io(&path))
    }

    /// Install a verified snapshot stream: load under a new generation, then switch atomically.
    fn install_from(&self, meta: &SnapshotMeta, mut source: fs::File) -> Result<()> {
        let db = &self.inner.db;
        source
            .seek(SeekFrom::Start(0))
            .map_err(snap_io(Path::new("<received snapshot>")))?;
        let file_name = snapshot_file_name(meta);
        let tmp = self
            .inner
            .snapshot_dir
            .join(format!("install-{}.tmp", rand::random::<u64>()));
        let res = self.load_generation(meta, &mut source, &tmp);
        let (new_generation, cluster_version, (sessions, keys)) = match res {
            Ok(g) => g,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let path = self.inner.snapshot_dir.join(&file_name);
        fs::rename(&tmp, &path).map_err(snap_io(&path))?;
        sync_dir(&self.inner.snapshot_dir)?;

        let info = SnapshotInfo {
            meta: meta.clone(),
            file_name: file_name.clone(),
        };
        let _guard = self
            .inner
            .snapshot_lock
            .lock()
            .map_err(|_| lock_poisoned())?;
        let mut applied = self.inner.applied.write().map_err(|_| lock_poisoned())?;
        let old_generation = applied.generation;
        let sm_meta = db::cf(db, CF_SM_META)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(
            sm_meta,
            KEY_GENERATION,
            codec::encode("generation", &new_generation)?,
        );
        batch.put_cf(
            sm_meta,
            KEY_APPLIED,
            codec::encode("last applied log id", &meta.last_log_id)?,
        );
        batch.put_cf(
            sm_meta,
            KEY_MEMBERSHIP,
            codec::encode("membership", &meta.last_membership)?,
        );
        self.set_current_snapshot(&info, &mut batch)?;
        let raised = self.stage_cluster_version(cluster_version, &mut batch)?;
        // The switch: synced, and it also makes every unsynced write of the load durable (the
        // WAL is sequential).
        db.write_opt(batch, &db::synced())
            .map_err(rocks("switch to installed snapshot"))?;
        applied.generation = new_generation;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        self.inner.counts.set(sessions, keys);
        self.raise_cluster_version(raised);
        drop(applied);

        let mut cleanup = WriteBatch::default();
        for name in GENERATION_CFS {
            cleanup.delete_range_cf(
                db::cf(db, name)?,
                db::gen_prefix(old_generation),
                db::gen_prefix(old_generation + 1),
            );
        }
        db.write_opt(cleanup, &db::unsynced())
            .map_err(rocks("drop old generation"))?;
        self.remove_snapshot_files_except(Some(&file_name));
        tracing::info!(id = %meta.snapshot_id, "snapshot installed");
        Ok(())
    }

    /// Copy the received snapshot to `local`, verify it, and load it under a new generation.
    fn load_generation(
        &self,
        meta: &SnapshotMeta,
        source: &mut fs::File,
        local: &Path,
    ) -> Result<(u64, Option<ClusterVersion>, (u64, u64))> {
        let db = &self.inner.db;
        {
            let mut out = fs::File::create(local).map_err(snap_io(local))?;
            io::copy(source, &mut out).map_err(snap_io(local))?;
            out.flush().map_err(snap_io(local))?;
            out.sync_all().map_err(snap_io(local))?;
        }
        let generation = self.generation()? + 1;
        let clear = |db: &DB| -> Result<()> {
            let mut batch = WriteBatch::default();
            for name in GENERATION_CFS {
                batch.delete_range_cf(
                    db::cf(db, name)?,
                    db::gen_prefix(generation),
                    db::gen_prefix(generation + 1),
                );
            }
            db.write_opt(batch, &db::unsynced())
                .map_err(rocks("clear generation"))
        };
        clear(db)?;
        let loaded = (|| {
            let file = fs::File::open(local).map_err(snap_io(local))?;
            let mut reader = SnapshotReader::new(file)?;
            let mut txn = Txn::new(db, generation);
            let mut in_batch = 0;
            let mut total = 0u64;
            let (mut sessions, mut keys) = (0u64, 0u64);
            let mut cluster_version = None;
            while let Some(record) = reader.next_record()? {
                match record {
                    SnapshotRecord::Session(key, session) => {
                        txn.load(&key, session)?;
                        sessions += 1;
                    }
                    SnapshotRecord::Kv(key, entry) => {
                        txn.load_kv(&key, entry)?;
                        keys += 1;
                    }
                    SnapshotRecord::ClusterVersion(v) => cluster_version = Some(v),
                }
                in_batch += 1;
                total += 1;
                if in_batch == INSTALL_BATCH {
                    db.write_opt(std::mem::take(&mut txn.batch), &db::unsynced())
                        .map_err(rocks("load snapshot"))?;
                    txn = Txn::new(db, generation);
                    in_batch = 0;
                }
            }
            db.write_opt(std::mem::take(&mut txn.batch), &db::unsynced())
                .map_err(rocks("load snapshot"))?;
            tracing::info!(id = %meta.snapshot_id, records = total, sessions, keys, "snapshot loaded");
            Ok((cluster_version, (sessions, keys)))
        })();
        match loaded {
            Ok((cluster_version, counts)) => Ok((generation, cluster_version, counts)),
            Err(e) => {
                clear(db)?;
                Err(e)
            }
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let to_err = |e: Error| e.into_storage(ErrorSubject::Snapshot(None), ErrorVerb::Write);
        let rx = self
            .result
            .take()
            .ok_or_else(|| to_err(Error::BuilderGone))?;
        let info = rx
            .await
            .map_err(|_| to_err(Error::BuilderGone))?
            .map_err(to_err)?;
        let store = StateMachineStore {
            inner: self.inner.clone(),
        };
        let file = store.open_snapshot(&info).map_err(to_err)?;
        Ok(Snapshot {
            meta: info.meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        StateMachineStore::applied_state(self).map_err(error::read_sm)
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let bytes: usize = entries
            .iter()
            .map(|e| match &e.payload {
                EntryPayload::Normal(cmd) => cmd.approx_bytes(),
                _ => 0,
            })
            .sum();
        if bytes < OFFLOAD_APPLY_BYTES {
            return self.apply_entries(entries).map_err(error::write_sm);
        }
        // A large apply (a restore's `Import`s, a catching-up node's run of entries) takes tens
        // of milliseconds of RocksDB work. On the Raft runtime — one thread per node on a small
        // host — it would stall the Raft core behind it, and openraft 0.9 gives every
        // AppendEntries only the heartbeat interval: appends timed out and were sent again
        // (measured: bench/PROFILE.md, catch-up). So it runs on a blocking thread.
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.apply_entries(entries))
            .await
            .map_err(|e| error::write_sm(Error::TaskFailed("apply", e.to_string())))?
            .map_err(error::write_sm)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            result: Some(self.start_build()),
            inner: self.inner.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let to_err = |e: Error| e.into_storage(ErrorSubject::Snapshot(None), ErrorVerb::Write);
        let path = self
            .inner
            .snapshot_dir
            .join(format!("recv-{}.tmp", rand::random::<u64>()));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| to_err(snap_io(&path)(e)))?;
        // Anonymous from here on: the open handle is all we need, and nothing is left behind.
        let _ = fs::remove_file(&path);
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let to_err = |e: Error| {
            e.into_storage(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
            )
        };
        let mut file = *snapshot;
        file.flush()
            .await
            .map_err(|e| to_err(snap_io(Path::new("<received snapshot>"))(e)))?;
        file.seek(SeekFrom::Start(0))
            .await
            .map_err(|e| to_err(snap_io(Path::new("<received snapshot>"))(e)))?;
        let std_file = file.into_std().await;
        let this = self.clone();
        let meta_owned = meta.clone();
        tokio::task::spawn_blocking(move || this.install_from(&meta_owned, std_file))
            .await
            .map_err(|e| {
                to_err(Error::Corrupt {
                    what: "snapshot install task",
                    reason: e.to_string(),
                })
            })?
            .map_err(to_err)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let to_err = |e: Error| e.into_storage(ErrorSubject::Snapshot(None), ErrorVerb::Read);
        let _guard = self
            .inner
            .snapshot_lock
            .lock()
            .map_err(|_| to_err(lock_poisoned()))?;
        let Some(info) = self.current_snapshot_info().map_err(to_err)? else {
            return Ok(None);
        };
        let file = self.open_snapshot(&info).map_err(to_err)?;
        Ok(Some(Snapshot {
            meta: info.meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}

//! The RocksDB instance shared by the log store and the state machine: column families, key
//! layouts and write options.
//!
//! Column families (one per concern):
//! - `logs`: big-endian log index -> entry (so iteration order is log order).
//! - `log_meta`: vote, last purged log id, committed log id.
//! - `sessions`: generation ++ session key -> [`crate::Session`].
//! - `user_index`: generation ++ u16 user length ++ user ++ session key -> empty.
//! - `expiry_index`: generation ++ big-endian expires_at_ms ++ session key -> empty.
//! - `kv`: generation ++ big-endian FNV-1a-64 of the key ++ key bytes ->
//!   [`crate::storage::kv::KvEntry`] (the Redis-protocol keyspace; in hash order, so that a
//!   `SCAN` cursor is a number: the hash to resume from).
//! - `kv_expiry`: generation ++ big-endian expires_at_ms ++ key bytes -> empty (keys with an expiry).
//! - `sm_meta`: current generation, last applied log id, membership, current snapshot.
//!
//! Session data lives under a *generation* prefix. Installing a snapshot writes the new data under
//! a fresh generation and then switches the generation pointer together with last-applied and
//! membership in one synced write batch: a crash during install leaves the old state or the new
//! one, never a mix. Data of other generations is garbage and is deleted on open.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options, WriteOptions, DB};

use crate::storage::error::{Error, Result};

pub(crate) const CF_LOGS: &str = "logs";
pub(crate) const CF_LOG_META: &str = "log_meta";
pub(crate) const CF_SESSIONS: &str = "sessions";
pub(crate) const CF_USER_INDEX: &str = "user_index";
pub(crate) const CF_EXPIRY_INDEX: &str = "expiry_index";
pub(crate) const CF_SM_META: &str = "sm_meta";
pub(crate) const CF_KV: &str = "kv";
pub(crate) const CF_KV_EXPIRY: &str = "kv_expiry";

pub(crate) const ALL_CFS: [&str; 8] = [
    CF_LOGS,
    CF_LOG_META,
    CF_SESSIONS,
    CF_USER_INDEX,
    CF_EXPIRY_INDEX,
    CF_SM_META,
    CF_KV,
    CF_KV_EXPIRY,
];

/// The data CFs whose keys start with a generation prefix.
pub(crate) const GENERATION_CFS: [&str; 5] = [
    CF_SESSIONS,
    CF_USER_INDEX,
    CF_EXPIRY_INDEX,
    CF_KV,
    CF_KV_EXPIRY,
];

/// Tuning of the RocksDB instance.
#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// Size of the shared block cache (bounds read memory as sessions grow).
    pub block_cache_bytes: usize,
    /// Size of each memtable.
    pub write_buffer_bytes: usize,
    /// All memtables of all column families together, at most (RocksDB's write buffer
    /// manager flushes the largest one when the total reaches it).
    pub total_write_buffer_bytes: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 16 << 20,
            total_write_buffer_bytes: 64 << 20,
        }
    }
}

pub(crate) fn open_db(path: &Path, opts: &StorageOptions) -> Result<Arc<DB>> {
    let cache = Cache::new_lru_cache(opts.block_cache_bytes);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);

    let cf_opts = || {
        let mut o = Options::default();
        o.set_block_based_table_factory(&table);
        o.set_write_buffer_size(opts.write_buffer_bytes);
        o.set_max_write_buffer_number(2);
        // A bloom filter over each memtable's whole keys: a point read (an apply's prefetch
        // of the keys it writes, a session load) skips every memtable that never held the
        // key instead of searching its skiplist (that search was ~20 % of a follower's CPU
        // under pipelined SETs; bench/PROFILE.md round 9). In memory only: no format change.
        o.set_memtable_whole_key_filtering(true);
        o.set_memtable_prefix_bloom_ratio(0.01);
        o
    };
    let mut db_opts = Options::default();
    db_opts.create_if_missing(true);
    db_opts.create_missing_column_families(true);
    db_opts.set_max_background_jobs(2);
    db_opts.set_keep_log_file_num(4);
    db_opts.set_max_total_wal_size(256 << 20);
    // Memory stays bounded as sessions grow: block cache (data, index and filter blocks) plus
    // at most this much in memtables, whatever the number of column families.
    db_opts.set_db_write_buffer_size(opts.total_write_buffer_bytes);
    let cfs = ALL_CFS
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, cf_opts()));
    let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(|e| Error::Open {
        path: path.display().to_string(),
        source: e,
    })?;
    Ok(Arc::new(db))
}

pub(crate) fn cf<'a>(db: &'a DB, name: &'static str) -> Result<&'a rocksdb::ColumnFamily> {
    db.cf_handle(name).ok_or(Error::MissingColumnFamily(name))
}

/// Write options for writes that must be on disk before we return (vote, log, snapshot switch).
pub(crate) fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

/// Write options for state-machine applies: the log is the durable record; applies are replayed
/// from it after a crash (last-applied is written atomically with the data it covers).
pub(crate) fn unsynced() -> WriteOptions {
    WriteOptions::default()
}

pub(crate) fn gen_prefix(generation: u64) -> [u8; 8] {
    generation.to_be_bytes()
}

pub(crate) fn session_key(generation: u64, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&gen_prefix(generation));
    k.extend_from_slice(key.as_bytes());
    k
}

pub(crate) fn user_prefix(generation: u64, user: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + user.len());
    k.extend_from_slice(&gen_prefix(generation));
    // User length is bounded by MAX_USER_BYTES < u16::MAX (checked before apply writes it).
    k.extend_from_slice(&(user.len() as u16).to_be_bytes());
    k.extend_from_slice(user.as_bytes());
    k
}

pub(crate) fn user_index_key(generation: u64, user: &str, key: &str) -> Vec<u8> {
    let mut k = user_prefix(generation, user);
    k.extend_from_slice(key.as_bytes());
    k
}

pub(crate) fn expiry_key(generation: u64, expires_at_ms: u64, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + key.len());
    k.extend_from_slice(&gen_prefix(generation));
    k.extend_from_slice(&expires_at_ms.to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// FNV-1a, 64 bits: the order of the keyspace (stable across versions and machines).
pub(crate) fn kv_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(crate) fn kv_key(generation: u64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + key.len());
    k.extend_from_slice(&gen_prefix(generation));
    k.extend_from_slice(&kv_hash(key).to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// The first `kv` key of `generation` whose hash is at least `hash`.
pub(crate) fn kv_hash_start(generation: u64, hash: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.extend_from_slice(&gen_prefix(generation));
    k.extend_from_slice(&hash.to_be_bytes());
    k
}

/// Split a `kv` key (without checking its generation) into (hash, key).
pub(crate) fn parse_kv_key(k: &[u8]) -> Result<(u64, Vec<u8>)> {
    if k.len() < 16 {
        return Err(Error::Corrupt {
            what: "kv key",
            reason: format!("{} bytes, expected at least 16", k.len()),
        });
    }
    let mut h = [0u8; 8];
    h.copy_from_slice(&k[8..16]);
    Ok((u64::from_be_bytes(h), k[16..].to_vec()))
}

pub(crate) fn kv_expiry_key(generation: u64, expires_at_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + key.len());
    k.extend_from_slice(&gen_prefix(generation));
    k.extend_from_slice(&expires_at_ms.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Split a `kv_expiry` key (without checking its generation) into (expires_at_ms, key).
pub(crate) fn parse_kv_expiry_key(k: &[u8]) -> Result<(u64, Vec<u8>)> {
    if k.len() < 16 {
        return Err(Error::Corrupt {
            what: "kv expiry key",
            reason: format!("{} bytes, expected at least 16", k.len()),
        });
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&k[8..16]);
    Ok((u64::from_be_bytes(ts), k[16..].to_vec()))
}

/// Split an expiry-index key (without checking its generation) into (expires_at_ms, session key).
pub(crate) fn parse_expiry_key(k: &[u8]) -> Result<(u64, String)> {
    if k.len() < 16 {
        return Err(Error::Corrupt {
            what: "expiry index key",
            reason: format!("{} bytes, expected at least 16", k.len()),
        });
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&k[8..16]);
    let key = String::from_utf8(k[16..].to_vec()).map_err(|e| Error::Corrupt {
        what: "expiry index key",
        reason: e.to_string(),
    })?;
    Ok((u64::from_be_bytes(ts), key))
}

/// The session key at the end of a user-index key whose prefix length is `prefix_len`.
pub(crate) fn parse_user_index_key(k: &[u8], prefix_len: usize) -> Result<String> {
    let tail = k.get(prefix_len..).ok_or(Error::Corrupt {
        what: "user index key",
        reason: "shorter than its prefix".into(),
    })?;
    String::from_utf8(tail.to_vec()).map_err(|e| Error::Corrupt {
        what: "user index key",
        reason: e.to_string(),
    })
}

/// The first key after every key starting with `prefix` (for range ends).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff: no finite upper bound; use a key longer than any prefix of 0xff.
    vec![0xff; prefix.len() + 1]
}

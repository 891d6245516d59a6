//! Applying commands: a transaction over one `apply` call that reads its own writes.
//!
//! All effects of the entries of one `apply` call (session data, the user and expiry indexes)
//! accumulate in one RocksDB `WriteBatch`; an overlay lets later commands see earlier ones. The
//! caller adds last-applied and membership to the same batch and writes it atomically.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rocksdb::{DBPinnableSlice, Direction, IteratorMode, WriteBatch, DB};

use crate::storage::codec;
use crate::storage::command::{Command, Response, Session, MAX_KEY_BYTES, MAX_USER_BYTES};
use crate::storage::db::{self, CF_EXPIRY_INDEX, CF_KV, CF_KV_EXPIRY, CF_SESSIONS, CF_USER_INDEX};
use crate::storage::error::{rocks, Result};
use crate::storage::kv::{
    self, KvCommand, KvEntry, KvResponse, SetCondition, SetExpiry, MAX_KV_KEY_BYTES,
    MAX_KV_VALUE_BYTES,
};

pub(crate) struct Txn<'a> {
    db: &'a DB,
    generation: u64,
    sessions: HashMap<String, Option<Session>>,
    users: BTreeMap<Vec<u8>, bool>,
    expiry: BTreeMap<Vec<u8>, bool>,
    kv: HashMap<Vec<u8>, Option<KvEntry>>,
    kv_expiry: BTreeMap<Vec<u8>, bool>,
    /// What [`Txn::prefetch`] read, as stored (pinned, decoded when looked up): behind the
    /// overlays above, in front of the database.
    read_sessions: HashMap<String, Option<DBPinnableSlice<'a>>>,
    read_kv: HashMap<Vec<u8>, Option<DBPinnableSlice<'a>>>,
    pub(crate) batch: WriteBatch,
    /// The highest cluster version a `SetClusterVersion` of this transaction named (the caller
    /// stores it with the applied index, and never lowers what is stored).
    pub(crate) cluster_version: Option<crate::version::ClusterVersion>,
    /// How many stored sessions and keyspace keys this transaction adds (removes, when
    /// negative): the state machine's exact counts move by these once the batch is written.
    pub(crate) sessions_added: i64,
    pub(crate) keys_added: i64,
}

fn check_key(key: &str) -> Option<Response> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Some(Response::Rejected(format!(
            "session key must be 1..={MAX_KEY_BYTES} bytes, got {}",
            key.len()
        )));
    }
    None
}

fn check_user(user: &Option<String>) -> Option<Response> {
    match user {
        Some(u) if u.is_empty() || u.len() > MAX_USER_BYTES => Some(Response::Rejected(format!(
            "user must be 1..={MAX_USER_BYTES} bytes, got {}",
            u.len()
        ))),
        _ => None,
    }
}

impl<'a> Txn<'a> {
    pub(crate) fn new(db: &'a DB, generation: u64) -> Self {
        Self {
            db,
            generation,
            sessions: HashMap::new(),
            users: BTreeMap::new(),
            expiry: BTreeMap::new(),
            kv: HashMap::new(),
            kv_expiry: BTreeMap::new(),
            read_sessions: HashMap::new(),
            read_kv: HashMap::new(),
            batch: WriteBatch::default(),
            cluster_version: None,
            sessions_added: 0,
            keys_added: 0,
        }
    }

    /// Read at once what the commands `cmds` will look up first — the sessions and keyspace
    /// keys they name — with one RocksDB multi-get per column family (sorted keys, one pass
    /// down the LSM tree for all of them), instead of one point lookup per command as each
    /// applies. The values stay pinned as stored and are decoded when a command looks them up
    /// (`get`, `kv_get`), behind this transaction's own writes. Keys of commands that scan (a
    /// user's sessions, expired entries) are read as they apply.
    pub(crate) fn prefetch<'c>(
        &mut self,
        cmds: impl IntoIterator<Item = &'c Command>,
    ) -> Result<()> {
        let mut sessions = BTreeSet::new();
        let mut kv = BTreeSet::new();
        for cmd in cmds {
            named_keys(cmd, &mut sessions, &mut kv);
        }
        let g = self.generation;
        let stored = sessions.into_iter().map(|k| (db::session_key(g, &k), k));
        self.read_sessions
            .extend(multi_read(self.db, CF_SESSIONS, stored)?);
        let stored = kv.into_iter().map(|k| (db::kv_key(g, &k), k));
        self.read_kv.extend(multi_read(self.db, CF_KV, stored)?);
        Ok(())
    }

    /// The stored session (live or expired), seeing this transaction's writes.
    fn get(&self, key: &str) -> Result<Option<Session>> {
        if let Some(v) = self.sessions.get(key) {
            return Ok(v.clone());
        }
        match self.read_sessions.get(key) {
            Some(read) => decode_read("session", read),
            None => read_session(self.db, self.generation, key),
        }
    }

    fn drop_indexes(&mut self, key: &str, old: &Session) -> Result<()> {
        let g = self.generation;
        if let Some(u) = &old.user {
            let k = db::user_index_key(g, u, key);
            self.batch.delete_cf(db::cf(self.db, CF_USER_INDEX)?, &k);
            self.users.insert(k, false);
        }
        let k = db::expiry_key(g, old.expires_at_ms, key);
        self.batch.delete_cf(db::cf(self.db, CF_EXPIRY_INDEX)?, &k);
        self.expiry.insert(k, false);
        Ok(())
    }

    /// Store `new` under `key`, where `old` is what is stored there now (live or expired):
    /// `None` means nothing is, and the count of stored sessions grows.
    fn put(&mut self, key: &str, old: Option<&Session>, new: Session) -> Result<()> {
        match old {
            Some(old) => self.drop_indexes(key, old)?,
            None => self.sessions_added += 1,
        }
        let g = self.generation;
        if let Some(u) = &new.user {
            let k = db::user_index_key(g, u, key);
            self.batch.put_cf(db::cf(self.db, CF_USER_INDEX)?, &k, []);
            self.users.insert(k, true);
        }
        let k = db::expiry_key(g, new.expires_at_ms, key);
        self.batch.put_cf(db::cf(self.db, CF_EXPIRY_INDEX)?, &k, []);
        self.expiry.insert(k, true);
        self.batch.put_cf(
            db::cf(self.db, CF_SESSIONS)?,
            db::session_key(g, key),
            codec::encode("session", &new)?,
        );
        self.sessions.insert(key.to_string(), Some(new));
        Ok(())
    }

    /// The sessions the user index lists under `user` (seen through this batch's overlay). A
    /// stale index entry (no session, or another user's — cannot happen unless the index was
    /// damaged) is repaired in the same batch.
    fn sessions_of(&mut self, user: &str) -> Result<Vec<(String, Session)>> {
        let prefix = db::user_prefix(self.generation, user);
        let end = db::prefix_end(&prefix);
        let users = std::mem::take(&mut self.users);
        let found = self.scan(CF_USER_INDEX, &users, &prefix, &end, usize::MAX);
        self.users = users;
        let mut out = Vec::new();
        for k in found? {
            let key = db::parse_user_index_key(&k, prefix.len())?;
            match self.get(&key)? {
                Some(s) if s.user.as_deref() == Some(user) => out.push((key, s)),
                _ => {
                    self.batch.delete_cf(db::cf(self.db, CF_USER_INDEX)?, &k);
                    self.users.insert(k, false);
                }
            }
        }
        Ok(out)
    }

    fn remove(&mut self, key: &str, old: &Session) -> Result<()> {
        self.drop_indexes(key, old)?;
        self.sessions_added -= 1;
        self.batch.delete_cf(
            db::cf(self.db, CF_SESSIONS)?,
            db::session_key(self.generation, key),
        );
        self.sessions.insert(key.to_string(), None);
        Ok(())
    }

    /// Keys of `cf` in `[from, to)` merged with `overlay`, in order, at most `limit`.
    fn scan(
        &self,
        cf: &'static str,
        overlay: &BTreeMap<Vec<u8>, bool>,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let in_overlay: Vec<(&Vec<u8>, &bool)> =
            overlay.range(from.to_vec()..to.to_vec()).collect();
        let removed = in_overlay.iter().filter(|(_, present)| !**present).count();
        let want = limit.saturating_add(removed);
        let mut keys = BTreeSet::new();
        let handle = db::cf(self.db, cf)?;
        for item in self
            .db
            .iterator_cf(handle, IteratorMode::From(from, Direction::Forward))
        {
            let (k, _) = item.map_err(rocks("scan index"))?;
            if &*k >= to || keys.len() >= want {
                break;
            }
            keys.insert(k.to_vec());
        }
        for (k, present) in in_overlay {
            if *present {
                keys.insert(k.clone());
            } else {
                keys.remove(k);
            }
        }
        Ok(keys.into_iter().take(limit).collect())
    }

    /// Apply one command; never fails on bad input (that is a `Rejected` response), only on a
    /// storage error.
    pub(crate) fn apply(&mut self, cmd: &Command) -> Result<Response> {
        match cmd {
            Command::Create {
                key,
                state,
                user,
                now_ms,
                expires_at_ms,
            } => {
                if let Some(r) = check_key(key).or_else(|| check_user(user)) {
                    return Ok(r);
                }
                let old = self.get(key)?;
                if old.as_ref().is_some_and(|s| s.is_live(*now_ms)) {
                    return Ok(Response::KeyExists);
                }
                // An expired session under the key is replaced; versions keep growing per key.
                let version = old.as_ref().map_or(1, |s| s.version + 1);
                let new = Session {
                    state: state.clone(),
                    version,
                    created_at_ms: *now_ms,
                    expires_at_ms: *expires_at_ms,
                    user: user.clone(),
                };
                self.put(key, old.as_ref(), new)?;
                Ok(Response::Written { version })
            }
            Command::Update {
                key,
                state,
                user,
                expected_version,
                now_ms,
                expires_at_ms,
            } => {
                if let Some(r) = check_key(key).or_else(|| check_user(user)) {
                    return Ok(r);
                }
                let Some(old) = self.get(key)?.filter(|s| s.is_live(*now_ms)) else {
                    return Ok(Response::NotFound);
                };
                if let Some(expected) = expected_version {
                    if *expected != old.version {
                        return Ok(Response::VersionMismatch {
                            current: old.version,
                        });
                    }
                }
                let version = old.version + 1;
                let new = Session {
                    state: state.clone(),
                    version,
                    created_at_ms: old.created_at_ms,
                    expires_at_ms: *expires_at_ms,
                    user: user.clone(),
                };
                self.put(key, Some(&old), new)?;
                Ok(Response::Written { version })
            }
            Command::Touch { entries, now_ms } => {
                let mut touched = 0;
                for (key, expires_at_ms) in entries {
                    let Some(old) = self.get(key)?.filter(|s| s.is_live(*now_ms)) else {
                        continue;
                    };
                    if *expires_at_ms <= old.expires_at_ms {
                        continue;
                    }
                    // A touch moves the expiry only; the version (the basis of lost-update
                    // checks) counts state changes.
                    let new = Session {
                        expires_at_ms: *expires_at_ms,
                        ..old.clone()
                    };
                    self.put(key, Some(&old), new)?;
                    touched += 1;
                }
                Ok(Response::Count(touched))
            }
            Command::Delete { key } => match self.get(key)? {
                Some(old) => {
                    self.remove(key, &old)?;
                    Ok(Response::Count(1))
                }
                None => Ok(Response::Count(0)),
            },
            Command::Rename { from, to, now_ms } => {
                if let Some(r) = check_key(from).or_else(|| check_key(to)) {
                    return Ok(r);
                }
                if from == to {
                    return Ok(Response::Rejected("rename to the same key".into()));
                }
                let Some(old) = self.get(from)?.filter(|s| s.is_live(*now_ms)) else {
                    return Ok(Response::NotFound);
                };
                let target = self.get(to)?;
                if target.as_ref().is_some_and(|s| s.is_live(*now_ms)) {
                    return Ok(Response::KeyExists);
                }
                if let Some(t) = &target {
                    self.remove(to, t)?;
                }
                self.remove(from, &old)?;
                let version = old.version.max(target.map_or(0, |t| t.version)) + 1;
                let new = Session { version, ..old };
                self.put(to, None, new)?;
                Ok(Response::Written { version })
            }
            Command::DeleteUser { user } => {
                if let Some(r) = check_user(&Some(user.clone())) {
                    return Ok(r);
                }
                let sessions = self.sessions_of(user)?;
                for (key, s) in &sessions {
                    self.remove(key, s)?;
                }
                Ok(Response::Count(sessions.len() as u64))
            }
            Command::CapUser {
                user,
                max,
                keep,
                now_ms,
            } => {
                if let Some(r) = check_user(&Some(user.clone())) {
                    return Ok(r);
                }
                let mut live: Vec<(String, Session)> = self
                    .sessions_of(user)?
                    .into_iter()
                    .filter(|(_, s)| s.is_live(*now_ms))
                    .collect();
                let excess = live.len().saturating_sub(*max as usize);
                live.retain(|(key, _)| key != keep);
                live.sort_by(|a, b| (a.1.created_at_ms, &a.0).cmp(&(b.1.created_at_ms, &b.0)));
                let excess = excess.min(live.len());
                for (key, s) in live.into_iter().take(excess) {
                    self.remove(&key, &s)?;
                }
                Ok(Response::Count(excess as u64))
            }
            Command::PurgeExpired { now_ms, limit } => {
                let from = db::gen_prefix(self.generation).to_vec();
                // Entries with expires_at <= now, i.e. < now + 1.
                let to = db::expiry_key(self.generation, now_ms.saturating_add(1), "");
                let expiry = std::mem::take(&mut self.expiry);
                let found = self.scan(CF_EXPIRY_INDEX, &expiry, &from, &to, *limit as usize);
                self.expiry = expiry;
                let mut purged = 0;
                for k in found? {
                    let (expires_at_ms, key) = db::parse_expiry_key(&k)?;
                    match self.get(&key)? {
                        Some(s) if s.expires_at_ms == expires_at_ms && !s.is_live(*now_ms) => {
                            self.remove(&key, &s)?;
                            purged += 1;
                        }
                        _ => {
                            self.batch.delete_cf(db::cf(self.db, CF_EXPIRY_INDEX)?, &k);
                            self.expiry.insert(k, false);
                        }
                    }
                }
                Ok(Response::Count(purged))
            }
            Command::Import { sessions, now_ms } => {
                // Validate everything first: a rejected import changes nothing.
                for (key, session) in sessions {
                    if let Some(r) = check_key(key).or_else(|| check_user(&session.user)) {
                        return Ok(r);
                    }
                }
                let mut written = 0;
                for (key, session) in sessions {
                    if !session.is_live(*now_ms) {
                        continue;
                    }
                    let old = self.get(key)?;
                    self.put(key, old.as_ref(), session.clone())?;
                    written += 1;
                }
                Ok(Response::Count(written))
            }
            Command::Kv(c) => Ok(Response::Kv(self.apply_kv(c)?)),
            Command::SetClusterVersion(v) => {
                self.cluster_version = Some(self.cluster_version.map_or(*v, |c| c.max(*v)));
                Ok(Response::Empty)
            }
            Command::Batch(cmds) => {
                let mut out = Vec::with_capacity(cmds.len());
                for c in cmds {
                    out.push(self.apply(c)?);
                }
                Ok(Response::Batch(out))
            }
        }
    }
}

fn check_kv_key(key: &[u8]) -> Option<KvResponse> {
    (key.len() > MAX_KV_KEY_BYTES).then(|| {
        KvResponse::Rejected(format!(
            "key must be at most {MAX_KV_KEY_BYTES} bytes, got {}",
            key.len()
        ))
    })
}

/// The Redis-protocol keyspace (see [`crate::storage::kv`]).
impl Txn<'_> {
    /// The stored entry (live or expired), seeing this transaction's writes.
    fn kv_get(&self, key: &[u8]) -> Result<Option<KvEntry>> {
        if let Some(v) = self.kv.get(key) {
            return Ok(v.clone());
        }
        match self.read_kv.get(key) {
            Some(read) => decode_read("kv entry", read),
            None => read_kv(self.db, self.generation, key),
        }
    }

    /// The entry if it is live at `now_ms`.
    fn kv_live(&self, key: &[u8], now_ms: u64) -> Result<Option<KvEntry>> {
        Ok(self.kv_get(key)?.filter(|e| e.is_live(now_ms)))
    }

    fn kv_drop_expiry(&mut self, key: &[u8], old: &KvEntry) -> Result<()> {
        if let Some(at) = old.expires_at_ms {
            let k = db::kv_expiry_key(self.generation, at, key);
            self.batch.delete_cf(db::cf(self.db, CF_KV_EXPIRY)?, &k);
            self.kv_expiry.insert(k, false);
        }
        Ok(())
    }

    /// Store `new` under `key`, where `old` is what is stored there now (live or expired):
    /// `None` means nothing is, and the count of stored keys grows.
    fn kv_put(&mut self, key: &[u8], old: Option<&KvEntry>, new: KvEntry) -> Result<()> {
        match old {
            Some(old) => self.kv_drop_expiry(key, old)?,
            None => self.keys_added += 1,
        }
        if let Some(at) = new.expires_at_ms {
            let k = db::kv_expiry_key(self.generation, at, key);
            self.batch.put_cf(db::cf(self.db, CF_KV_EXPIRY)?, &k, []);
            self.kv_expiry.insert(k, true);
        }
        self.batch.put_cf(
            db::cf(self.db, CF_KV)?,
            db::kv_key(self.generation, key),
            codec::encode("kv entry", &new)?,
        );
        self.kv.insert(key.to_vec(), Some(new));
        Ok(())
    }

    fn kv_remove(&mut self, key: &[u8], old: &KvEntry) -> Result<()> {
        self.kv_drop_expiry(key, old)?;
        self.keys_added -= 1;
        self.batch
            .delete_cf(db::cf(self.db, CF_KV)?, db::kv_key(self.generation, key));
        self.kv.insert(key.to_vec(), None);
        Ok(())
    }

    /// Set the expiry of a live entry: an instant at or before `now_ms` removes it (as Redis
    /// does), `Keep` leaves it.
    fn kv_set_expiry(
        &mut self,
        key: &[u8],
        old: &KvEntry,
        expiry: SetExpiry,
        now_ms: u64,
    ) -> Result<()> {
        let expires_at_ms = match expiry {
            SetExpiry::Keep => return Ok(()),
            SetExpiry::Clear => None,
            SetExpiry::At(at) if at <= now_ms => return self.kv_remove(key, old),
            SetExpiry::At(at) => Some(at),
        };
        if expires_at_ms == old.expires_at_ms {
            return Ok(());
        }
        let new = KvEntry {
            value: old.value.clone(),
            expires_at_ms,
        };
        self.kv_put(key, Some(old), new)
    }

    /// Apply one keyspace command; bad input is a `Rejected` answer that changed nothing.
    fn apply_kv(&mut self, cmd: &KvCommand) -> Result<KvResponse> {
        match cmd {
            KvCommand::Set {
                key,
                value,
                condition,
                expiry,
                now_ms,
            } => {
                if let Some(r) = check_kv_key(key) {
                    return Ok(r);
                }
                if value.len() > MAX_KV_VALUE_BYTES {
                    return Ok(KvResponse::Rejected(format!(
                        "value must be at most {MAX_KV_VALUE_BYTES} bytes, got {}",
                        value.len()
                    )));
                }
                let stored = self.kv_get(key)?;
                let live = stored.clone().filter(|e| e.is_live(*now_ms));
                let allowed = match condition {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => live.is_none(),
                    SetCondition::IfPresent => live.is_some(),
                };
                let old = live.as_ref().map(|e| e.value.clone());
                if !allowed {
                    return Ok(KvResponse::Set {
                        written: false,
                        old,
                    });
                }
                let expires_at_ms = match expiry {
                    SetExpiry::Clear => None,
                    SetExpiry::Keep => live.as_ref().and_then(|e| e.expires_at_ms),
                    SetExpiry::At(at) => Some(*at),
                };
                if expires_at_ms.is_some_and(|at| at <= *now_ms) {
                    // Already expired when written (a past EXAT): the key is gone, as in Redis.
                    if let Some(s) = &stored {
                        self.kv_remove(key, s)?;
                    }
                } else {
                    let new = KvEntry {
                        value: value.clone(),
                        expires_at_ms,
                    };
                    self.kv_put(key, stored.as_ref(), new)?;
                }
                Ok(KvResponse::Set { written: true, old })
            }
            KvCommand::Delete { keys, now_ms } => {
                let mut removed = 0;
                for key in keys {
                    if let Some(old) = self.kv_get(key)? {
                        if old.is_live(*now_ms) {
                            removed += 1;
                        }
                        self.kv_remove(key, &old)?;
                    }
                }
                Ok(KvResponse::Int(removed))
            }
            KvCommand::Expire {
                key,
                at_ms,
                condition,
                now_ms,
            } => {
                let Some(old) = self.kv_live(key, *now_ms)? else {
                    return Ok(KvResponse::Int(0));
                };
                if !kv::expire_allowed(*condition, old.expires_at_ms, *at_ms) {
                    return Ok(KvResponse::Int(0));
                }
                self.kv_set_expiry(key, &old, SetExpiry::At(*at_ms), *now_ms)?;
                Ok(KvResponse::Int(1))
            }
            KvCommand::Persist { key, now_ms } => match self.kv_live(key, *now_ms)? {
                Some(old) if old.expires_at_ms.is_some() => {
                    self.kv_set_expiry(key, &old, SetExpiry::Clear, *now_ms)?;
                    Ok(KvResponse::Int(1))
                }
                _ => Ok(KvResponse::Int(0)),
            },
            KvCommand::GetDelete { key, now_ms } => match self.kv_get(key)? {
                Some(old) => {
                    self.kv_remove(key, &old)?;
                    Ok(KvResponse::Value(old.is_live(*now_ms).then_some(old.value)))
                }
                None => Ok(KvResponse::Value(None)),
            },
            KvCommand::GetExpire {
                key,
                expiry,
                now_ms,
            } => match self.kv_live(key, *now_ms)? {
                Some(old) => {
                    self.kv_set_expiry(key, &old, *expiry, *now_ms)?;
                    Ok(KvResponse::Value(Some(old.value)))
                }
                None => Ok(KvResponse::Value(None)),
            },
            KvCommand::Purge { now_ms, limit } => {
                let from = db::gen_prefix(self.generation).to_vec();
                let to = db::kv_expiry_key(self.generation, now_ms.saturating_add(1), b"");
                let overlay = std::mem::take(&mut self.kv_expiry);
                let found = self.scan(CF_KV_EXPIRY, &overlay, &from, &to, *limit as usize);
                self.kv_expiry = overlay;
                let mut purged = 0;
                for k in found? {
                    let (at, key) = db::parse_kv_expiry_key(&k)?;
                    match self.kv_get(&key)? {
                        Some(e) if e.expires_at_ms == Some(at) && !e.is_live(*now_ms) => {
                            self.kv_remove(&key, &e)?;
                            purged += 1;
                        }
                        _ => {
                            self.batch.delete_cf(db::cf(self.db, CF_KV_EXPIRY)?, &k);
                            self.kv_expiry.insert(k, false);
                        }
                    }
                }
                Ok(KvResponse::Int(purged))
            }
            KvCommand::Import(entries) => self.kv_import(entries),
        }
    }

    /// `KvCommand::Import`: validate every entry first (a rejected import changes nothing), then
    /// write each over whatever is stored under its key, expiry index included.
    fn kv_import(&mut self, entries: &[(Vec<u8>, KvEntry)]) -> Result<KvResponse> {
        for (key, entry) in entries {
            if let Some(r) = check_kv_key(key) {
                return Ok(r);
            }
            if entry.value.len() > MAX_KV_VALUE_BYTES {
                return Ok(KvResponse::Rejected(format!(
                    "value must be at most {MAX_KV_VALUE_BYTES} bytes, got {}",
                    entry.value.len()
                )));
            }
        }
        for (key, entry) in entries {
            let old = self.kv_get(key)?;
            self.kv_put(key, old.as_ref(), entry.clone())?;
        }
        Ok(KvResponse::Int(
            i64::try_from(entries.len()).unwrap_or(i64::MAX),
        ))
    }

    /// Write one keyspace entry from a snapshot with its expiry index entry.
    pub(crate) fn load_kv(&mut self, key: &[u8], entry: KvEntry) -> Result<()> {
        self.kv_put(key, None, entry)
    }
}

/// Read one stored keyspace entry (live or expired) of `generation` straight from the DB.
/// The values stored in column family `cf` under the stored keys of `pairs` (`(stored key,
/// key)`), pinned as stored: one sorted multi-get for all of them.
fn multi_read<'a, K>(
    db: &'a DB,
    cf: &'static str,
    pairs: impl Iterator<Item = (Vec<u8>, K)>,
) -> Result<Vec<(K, Option<DBPinnableSlice<'a>>)>> {
    let mut pairs: Vec<(Vec<u8>, K)> = pairs.collect();
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let found = db.batched_multi_get_cf(db::cf(db, cf)?, pairs.iter().map(|(s, _)| s), true);
    pairs
        .into_iter()
        .zip(found)
        .map(|((_, key), got)| Ok((key, got.map_err(rocks("read before apply"))?)))
        .collect()
}

/// A value read as stored (or nothing), decoded as `what`.
fn decode_read<V: serde::de::DeserializeOwned>(
    what: &'static str,
    read: &Option<DBPinnableSlice<'_>>,
) -> Result<Option<V>> {
    match read {
        None => Ok(None),
        Some(bytes) => Ok(Some(codec::decode(what, bytes)?)),
    }
}

/// The session keys and keyspace keys command `cmd` looks up by name (see [`Txn::prefetch`]).
fn named_keys(cmd: &Command, sessions: &mut BTreeSet<String>, kv: &mut BTreeSet<Vec<u8>>) {
    match cmd {
        Command::Create { key, .. } | Command::Update { key, .. } | Command::Delete { key } => {
            sessions.insert(key.clone());
        }
        Command::Touch { entries, .. } => {
            sessions.extend(entries.iter().map(|(k, _)| k.clone()));
        }
        Command::Rename { from, to, .. } => {
            sessions.insert(from.clone());
            sessions.insert(to.clone());
        }
        Command::Batch(cmds) => {
            for c in cmds {
                named_keys(c, sessions, kv);
            }
        }
        Command::Kv(c) => match c {
            KvCommand::Set { key, .. }
            | KvCommand::Expire { key, .. }
            | KvCommand::Persist { key, .. }
            | KvCommand::GetDelete { key, .. }
            | KvCommand::GetExpire { key, .. } => {
                kv.insert(key.clone());
            }
            KvCommand::Delete { keys, .. } => kv.extend(keys.iter().cloned()),
            KvCommand::Purge { .. } | KvCommand::Import(_) => {}
        },
        Command::DeleteUser { .. }
        | Command::PurgeExpired { .. }
        | Command::Import { .. }
        | Command::CapUser { .. }
        | Command::SetClusterVersion(_) => {}
    }
}

pub(crate) fn read_kv(db: &DB, generation: u64, key: &[u8]) -> Result<Option<KvEntry>> {
    let cf = db::cf(db, CF_KV)?;
    let read = db
        .get_pinned_cf(cf, db::kv_key(generation, key))
        .map_err(rocks("read kv"))?;
    decode_read("kv entry", &read)
}

/// Read one stored session (live or expired) of `generation` straight from the DB.
pub(crate) fn read_session(db: &DB, generation: u64, key: &str) -> Result<Option<Session>> {
    let cf = db::cf(db, CF_SESSIONS)?;
    let read = db
        .get_pinned_cf(cf, db::session_key(generation, key))
        .map_err(rocks("read session"))?;
    decode_read("session", &read)
}

impl Txn<'_> {
    /// Write one session from a snapshot with its index entries (no checks: the snapshot is the
    /// leader's state).
    pub(crate) fn load(&mut self, key: &str, session: Session) -> Result<()> {
        self.put(key, None, session)
    }
}

//! [`RaftSessionStore`]: actix-session's `SessionStore` on the Raft-replicated state machine.
//!
//! - Session keys are tokens, `<sid>.<index>` ([`SessionToken`]): every write returns a new one
//!   carrying the index of the entry that carried it, so the cookie follows the session's
//!   latest write; a bare `<sid>` (an older cookie) still names its session.
//! - `load` makes the read safe with `Cluster::session_read` — from a fresh follower's own
//!   replica once it applied the token's index (`session` mode), else after a read barrier
//!   (linearizable) — then reads locally (unless the test-only planted bug
//!   `StoreSettings::unsafe_skip_read_barrier` is on).
//! - `save` creates a session under a fresh 256-bit key from the OS CSPRNG (`Create` is
//!   put-if-absent; a collision retries with another key).
//! - `update` is version-checked against what this request loaded (lost-update protection); a
//!   session that vanished meanwhile is saved under a new key, like actix-session's Redis store.
//! - `update_ttl` goes to the touch coalescer, when it moves the stored idle expiry by more than
//!   the slack (idle TTL / 30, at most 60 s; [`TOUCH_SLACK_DIVISOR`]): a session read again and
//!   again is touched about once per slack. `delete` is a `Delete`, held back until the request
//!   ends: when a `save` follows in the same request (actix-session's `renew()`), the pair
//!   becomes one atomic `Rename` + `Update` log entry instead (fixation-safe renewal).
//! - With `max_sessions_per_user`, every write that leaves a session signed in carries a
//!   `CapUser` in the same log entry: the user's oldest other sessions are evicted atomically.
//! - Writes go through the write batcher (group commit). No quorum within the deadline is a
//!   `StoreFailure::Unavailable` (503 via the `StoreErrors` middleware), never an empty session.
//!
//! The state key `user` (a JSON string) is the session's principal, kept in the per-user index.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration as CookieDuration;
use base64::Engine;
use rand::RngCore;
use sessionraft_raft::command::MAX_USER_BYTES;
use sessionraft_raft::{Command, Response};

use crate::metrics::Metrics;
use crate::request_scope::{self, Loaded, StoreFailure};
use sessionraft_raft::clock::{key_hash, now_ms};
use sessionraft_raft::consensus::batcher::WriteBatcher;
use sessionraft_raft::consensus::cluster::{Cluster, ClusterError, Proposed};
use sessionraft_raft::consensus::touch::PendingTouches;
use sessionraft_raft::version::Feature;

/// The state key holding the session's principal.
pub const USER_KEY: &str = "user";

/// Session policy enforced by the store, whatever the cookie says.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// Absolute lifetime of a session from its creation.
    pub absolute_ttl: Duration,
    /// Largest accepted state (sum of key and value bytes).
    pub max_state_bytes: usize,
    /// At most this many live sessions per signed-in user (the oldest evicted); 0 = no cap.
    pub max_sessions_per_user: u32,
    /// TEST ONLY — a planted bug for chaos testing: serve loads from this node's local state
    /// without the read barrier, so a lagging node answers stale reads. Never enable it in
    /// production; it exists to prove that `sessionraft check` catches stale reads. Set by
    /// `sessionraft serve` from `SESSIONRAFT_UNSAFE_SKIP_READ_BARRIER=1`.
    pub unsafe_skip_read_barrier: bool,
}

struct Inner {
    cluster: Arc<Cluster>,
    batcher: Arc<WriteBatcher>,
    touches: Arc<PendingTouches>,
    settings: StoreSettings,
    metrics: Arc<Metrics>,
}

/// The session store. A cheap clone over shared handles (actix-session clones it per worker).
#[derive(Clone)]
pub struct RaftSessionStore {
    inner: Arc<Inner>,
}

type State = HashMap<String, String>;

/// The session token: what `RaftSessionStore` hands to actix-session as the session key, and
/// so what the encrypted cookie carries — the session id and, after `.`, the index of the log
/// entry that carried the session's latest write (`<sid>.<index>`). The id alphabet
/// (base64url) has no `.`, and every release keeps the id first: a key without an index (a
/// cookie from before tokens, from a 0.1.x node, or issued while the cluster version did not
/// allow tokens) and a key whose suffix this release cannot read (a newer release's token)
/// both name their session by the id, and are read the linearizable way — never reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken {
    /// The session id (the state machine's key).
    pub sid: String,
    /// The index of the entry that carried the session's latest write, if the key has one.
    pub index: Option<u64>,
}

impl SessionToken {
    /// Parse a session key: `<sid>.<index>`, a bare `<sid>`, or `<sid>.<anything else>` (a
    /// newer token format: the id, without an index).
    pub fn parse(key: &str) -> Self {
        let (sid, index) = Self::split(key);
        Self {
            sid: sid.to_string(),
            index,
        }
    }

    /// [`SessionToken::parse`] without copying the id: `(sid, index)` borrowed from `key`.
    pub fn split(key: &str) -> (&str, Option<u64>) {
        match key.split_once('.') {
            Some((sid, rest)) => (
                sid,
                rest.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| rest.parse::<u64>().ok())
                    .flatten(),
            ),
            None => (key, None),
        }
    }

    /// The key for session `sid` written by the entry at `index`.
    pub fn key(sid: &str, index: u64) -> String {
        format!("{sid}.{index}")
    }
}

fn new_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn ttl_ms(ttl: &CookieDuration) -> u64 {
    u64::try_from(ttl.whole_milliseconds()).unwrap_or(0)
}

fn user_of(state: &State) -> Option<String> {
    let raw = state.get(USER_KEY)?;
    serde_json::from_str::<String>(raw)
        .ok()
        .or_else(|| Some(raw.clone()))
}

fn unavailable(e: &ClusterError) -> anyhow::Error {
    request_scope::fail(StoreFailure::from(e));
    anyhow::anyhow!("session store unavailable: {e}")
}

fn invalid(reason: String) -> anyhow::Error {
    request_scope::fail(StoreFailure::Invalid(reason.clone()));
    anyhow::anyhow!("session rejected: {reason}")
}

impl RaftSessionStore {
    /// A store writing through `batcher`, adding TTL extensions to `touches` (flushed by the
    /// touch coalescer), reading from `cluster`.
    pub fn new(
        cluster: Arc<Cluster>,
        batcher: Arc<WriteBatcher>,
        touches: Arc<PendingTouches>,
        settings: StoreSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                cluster,
                batcher,
                touches,
                settings,
                metrics,
            }),
        }
    }

    /// Expiry for a session created at `created_at_ms`, extended by `ttl` from now, capped by
    /// the absolute TTL.
    /// The idle expiry of a session touched `now`: `ttl` from now, never past the absolute
    /// lifetime from `created_at_ms`.
    fn expiry(&self, created_at_ms: u64, now: u64, ttl: &CookieDuration) -> u64 {
        let absolute =
            u64::try_from(self.inner.settings.absolute_ttl.as_millis()).unwrap_or(u64::MAX);
        now.saturating_add(ttl_ms(ttl))
            .min(created_at_ms.saturating_add(absolute))
    }

    fn check_state(&self, state: &State) -> Result<BTreeMap<String, String>, anyhow::Error> {
        let size: usize = state.iter().map(|(k, v)| k.len() + v.len()).sum();
        let max = self.inner.settings.max_state_bytes;
        if size > max {
            request_scope::fail(StoreFailure::TooLarge { size, max });
            return Err(anyhow::anyhow!(
                "session state of {size} bytes exceeds {max}"
            ));
        }
        if let Some(u) = user_of(state) {
            if u.is_empty() || u.len() > MAX_USER_BYTES {
                return Err(invalid(format!("user must be 1..={MAX_USER_BYTES} bytes")));
            }
        }
        Ok(state.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    async fn write(&self, cmd: Command) -> Result<Proposed, ClusterError> {
        self.inner.batcher.write(cmd).await
    }

    /// Write `cmd`, which leaves session `key` signed in as `user`; with a per-user cap, in one
    /// log entry with the `CapUser` that evicts the user's oldest other sessions. Answers the
    /// response of `cmd` itself.
    async fn write_capped(
        &self,
        cmd: Command,
        key: &str,
        user: Option<&String>,
        now: u64,
    ) -> Result<Proposed, ClusterError> {
        let max = self.inner.settings.max_sessions_per_user;
        let Some(user) = user.filter(|_| max > 0) else {
            return self.write(cmd).await;
        };
        let cap = Command::CapUser {
            user: user.clone(),
            max,
            keep: key.to_string(),
            now_ms: now,
        };
        let p = self.write(Command::Batch(vec![cmd, cap])).await?;
        match p.response {
            Response::Batch(mut rs) if rs.len() == 2 => {
                if let Some(Response::Count(n)) = rs.get(1) {
                    if *n > 0 {
                        tracing::info!(
                            evicted = n,
                            "per-user session cap: oldest sessions evicted"
                        );
                    }
                }
                Ok(Proposed {
                    response: rs.swap_remove(0),
                    log_index: p.log_index,
                    after_ambiguous_attempt: p.after_ambiguous_attempt,
                })
            }
            other => Err(ClusterError::Fatal(format!(
                "state machine answered a capped write with {other:?}"
            ))),
        }
    }

    /// Delete `key` now (a purge, after the request's handler ran).
    ///
    /// # Errors
    /// The failure the client should see (503 without a quorum).
    pub async fn delete_now(&self, key: &str) -> Result<(), StoreFailure> {
        let started = Instant::now();
        match self
            .write(Command::Delete {
                key: key.to_string(),
            })
            .await
        {
            Ok(_) => {
                self.inner.metrics.observe("delete", "ok", started);
                Ok(())
            }
            Err(e) => {
                self.inner.metrics.observe("delete", "unavailable", started);
                tracing::warn!(sid = %key_hash(key), error = %e, "delete failed");
                Err(StoreFailure::Unavailable {
                    retry_after_secs: 1,
                    not_applied: e.not_applied(),
                })
            }
        }
    }

    /// Renew session `old` (login, logout): one atomic log entry moves it to a fresh key
    /// (`Rename`) and writes the new state there, so the old id is dead the moment the new one
    /// exists — an id fixated before the renewal is worthless after it. A session that is gone
    /// meanwhile is created afresh (still under a new key).
    async fn renew(
        &self,
        old: String,
        state: BTreeMap<String, String>,
        user: Option<String>,
        ttl: &CookieDuration,
    ) -> Result<(String, u64), anyhow::Error> {
        let now = now_ms();
        let created = request_scope::loaded(&old).map_or(now, |l| l.created_at_ms);
        let new = new_key();
        let batch = Command::Batch(vec![
            Command::Rename {
                from: old.clone(),
                to: new.clone(),
                now_ms: now,
            },
            Command::Update {
                key: new.clone(),
                state: state.clone(),
                user: user.clone(),
                expected_version: None,
                now_ms: now,
                expires_at_ms: self.expiry(created, now, ttl),
            },
        ]);
        let p = self
            .write_capped(batch, &new, user.as_ref(), now)
            .await
            .map_err(|e| unavailable(&e))?;
        match p.response {
            Response::Batch(rs) if matches!(rs.first(), Some(Response::Written { .. })) => {
                tracing::info!(from = %key_hash(&old), to = %key_hash(&new), "session id renewed");
                Ok((new, p.log_index))
            }
            Response::Batch(_) if p.after_ambiguous_attempt => {
                // Our first attempt may have renamed it: then the new key holds our state (read
                // once this replica has applied the retry's entry, which came after it).
                let applied = self.inner.cluster.applied_at_least(p.log_index).await;
                match self.inner.cluster.sm.get_session(&new, now_ms()) {
                    Ok(Some(s)) if applied.is_ok() && s.state == state => Ok((new, p.log_index)),
                    _ => self.create(state, user, ttl).await,
                }
            }
            Response::Batch(_) => {
                // The old session expired or was removed meanwhile: a fresh one.
                self.create(state, user, ttl).await
            }
            Response::Rejected(r) => Err(invalid(r)),
            other => Err(anyhow::anyhow!("unexpected response to renew: {other:?}")),
        }
    }

    async fn create(
        &self,
        state: BTreeMap<String, String>,
        user: Option<String>,
        ttl: &CookieDuration,
    ) -> Result<(String, u64), anyhow::Error> {
        for _ in 0..4 {
            let key = new_key();
            let now = now_ms();
            let cmd = Command::Create {
                key: key.clone(),
                state: state.clone(),
                user: user.clone(),
                now_ms: now,
                expires_at_ms: self.expiry(now, now, ttl),
            };
            match self.write_capped(cmd, &key, user.as_ref(), now).await {
                Ok(p) => match p.response {
                    Response::Written { .. } => {
                        tracing::debug!(sid = %key_hash(&key), "session created");
                        return Ok((key, p.log_index));
                    }
                    // A collision (or our own earlier attempt): take another key.
                    Response::KeyExists => continue,
                    Response::Rejected(r) => return Err(invalid(r)),
                    other => {
                        return Err(anyhow::anyhow!("unexpected response to create: {other:?}"))
                    }
                },
                Err(e) => return Err(unavailable(&e)),
            }
        }
        Err(anyhow::anyhow!("could not find a free session key"))
    }
}

impl RaftSessionStore {
    /// The session key for `sid` written at `index`: a token once the cluster version allows
    /// them (every member reads it), else the bare id, which every release reads.
    fn key_or_err<E>(
        &self,
        (sid, index): (String, u64),
        wrap: impl Fn(anyhow::Error) -> E,
    ) -> Result<SessionKey, E> {
        let tokens = self.inner.cluster.allows(Feature::SessionTokens);
        let key = if tokens && index > 0 {
            SessionToken::key(&sid, index)
        } else {
            sid
        };
        SessionKey::try_from(key).map_err(|e| wrap(anyhow::anyhow!("invalid session key: {e}")))
    }
}

impl SessionStore for RaftSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
        let started = Instant::now();
        let m = &self.inner.metrics;
        let (key, index) = SessionToken::split(session_key.as_ref());
        // The planted bug (test only, see `StoreSettings::unsafe_skip_read_barrier`): without
        // the barrier a follower answers from whatever it has applied so far.
        if !self.inner.settings.unsafe_skip_read_barrier {
            // A token read from this node's replica when it is fresh and has applied the
            // token's index; otherwise a read barrier (503 without a quorum).
            if let Err(e) = self.inner.cluster.session_read(index).await {
                m.observe("load", "unavailable", started);
                return Err(LoadError::Other(unavailable(&e)));
            }
        }
        let now = now_ms();
        match self.inner.cluster.sm.get_session(key, now) {
            Ok(Some(s)) => {
                request_scope::remember(
                    key,
                    Loaded {
                        version: s.version,
                        created_at_ms: s.created_at_ms,
                        expires_at_ms: s.expires_at_ms,
                    },
                );
                m.observe("load", "hit", started);
                Ok(Some(s.state.into_iter().collect()))
            }
            Ok(None) => {
                m.observe("load", "miss", started);
                m.unknown_session_ids
                    .with_label_values(&["unknown_or_expired"])
                    .inc();
                tracing::info!(sid = %key_hash(key), "cookie names no live session; starting a fresh one");
                Ok(None)
            }
            Err(e) => {
                m.observe("load", "error", started);
                tracing::error!(sid = %key_hash(key), error = %e, "stored session unreadable");
                Err(LoadError::Other(anyhow::anyhow!(
                    "stored session unreadable: {e}"
                )))
            }
        }
    }

    async fn save(
        &self,
        session_state: State,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, SaveError> {
        let started = Instant::now();
        // A renewal (delete + save): taken first, so that a refused or failed save leaves the
        // old session in place rather than deleting it at the end of the request.
        let renewing = request_scope::take_deferred_delete();
        let state = self.check_state(&session_state).map_err(SaveError::Other)?;
        let user = user_of(&session_state);
        let res = match renewing {
            Some(old) => self.renew(old, state, user, ttl).await,
            None => self.create(state, user, ttl).await,
        };
        self.inner
            .metrics
            .observe("save", if res.is_ok() { "ok" } else { "error" }, started);
        self.key_or_err(res.map_err(SaveError::Other)?, SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: State,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let started = Instant::now();
        let m = &self.inner.metrics;
        let state = self
            .check_state(&session_state)
            .map_err(UpdateError::Other)?;
        let user = user_of(&session_state);
        let key = SessionToken::split(session_key.as_ref()).0.to_string();
        let loaded = request_scope::loaded(&key);
        let now = now_ms();
        let created = loaded.map_or(now, |l| l.created_at_ms);
        let cmd = Command::Update {
            key: key.clone(),
            state: state.clone(),
            user: user.clone(),
            expected_version: loaded.map(|l| l.version),
            now_ms: now,
            expires_at_ms: self.expiry(created, now, ttl),
        };
        let p = match self.write_capped(cmd, &key, user.as_ref(), now).await {
            Ok(p) => p,
            Err(e) => {
                m.observe("update", "unavailable", started);
                return Err(UpdateError::Other(unavailable(&e)));
            }
        };
        match p.response {
            Response::Written { .. } => {
                m.observe("update", "ok", started);
                self.key_or_err((key, p.log_index), UpdateError::Other)
            }
            Response::NotFound => {
                // Expired or deleted meanwhile: save under a new key (as the Redis store does).
                m.observe("update", "recreated", started);
                let new = self
                    .create(state, user, ttl)
                    .await
                    .map_err(UpdateError::Other)?;
                self.key_or_err(new, UpdateError::Other)
            }
            Response::VersionMismatch { .. } if p.after_ambiguous_attempt => {
                // Our first attempt may have been applied: it was if the stored state is ours
                // (read once this replica has applied the retry's entry, which came after it).
                let applied = self.inner.cluster.applied_at_least(p.log_index).await;
                match self.inner.cluster.sm.get_session(&key, now_ms()) {
                    Ok(Some(s)) if applied.is_ok() && s.state == state => {
                        m.observe("update", "ok", started);
                        self.key_or_err((key, p.log_index), UpdateError::Other)
                    }
                    _ => {
                        m.observe("update", "unavailable", started);
                        Err(UpdateError::Other(unavailable(
                            &ClusterError::OutcomeUnknown {
                                reason: "outcome of a retried update is unknown".into(),
                            },
                        )))
                    }
                }
            }
            Response::VersionMismatch { current } => {
                m.observe("update", "conflict", started);
                request_scope::fail(StoreFailure::Conflict);
                tracing::info!(sid = %key_hash(&key), current, "lost-update conflict refused");
                Err(UpdateError::Other(anyhow::anyhow!(
                    "concurrent modification"
                )))
            }
            Response::Rejected(r) => Err(UpdateError::Other(invalid(r))),
            other => Err(UpdateError::Other(anyhow::anyhow!(
                "unexpected response to update: {other:?}"
            ))),
        }
    }

    async fn update_ttl(
        &self,
        session_key: &SessionKey,
        ttl: &CookieDuration,
    ) -> Result<(), anyhow::Error> {
        let (key, _) = SessionToken::split(session_key.as_ref());
        let now = now_ms();
        let loaded = request_scope::loaded(key);
        let created = loaded.map_or(now, |l| l.created_at_ms);
        let expires_at = self.expiry(created, now, ttl);
        if loaded.is_some_and(|l| !touch_moves_enough(l.expires_at_ms, expires_at, ttl)) {
            self.inner
                .metrics
                .observe("update_ttl", "skipped", Instant::now());
            return Ok(());
        }
        self.inner.touches.touch(key, expires_at);
        self.inner
            .metrics
            .observe("update_ttl", "queued", Instant::now());
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        let (key, _) = SessionToken::split(session_key.as_ref());
        // A session this request loaded: held back, so that a `save` right after it (a renewal)
        // becomes one atomic rename; otherwise the middleware deletes it when the request ends.
        if request_scope::loaded(key).is_some()
            && request_scope::defer_delete(key, {
                let (store, key) = (self.clone(), key.to_string());
                Box::new(move || Box::pin(async move { store.delete_now(&key).await }))
            })
        {
            return Ok(());
        }
        self.delete_now(key).await.map_err(|f| {
            request_scope::fail(f.clone());
            anyhow::anyhow!("{f}")
        })
    }
}

/// The most a read-only request's touch may leave a session's idle expiry short of `ttl` after
/// it: 1/[`TOUCH_SLACK_DIVISOR`] of the idle TTL, at most [`MAX_TOUCH_SLACK`].
pub const TOUCH_SLACK_DIVISOR: u64 = 30;
/// See [`TOUCH_SLACK_DIVISOR`].
pub const MAX_TOUCH_SLACK: Duration = Duration::from_secs(60);

/// Whether touching a session stored with idle expiry `stored` to `wanted` is worth a
/// replicated write: only when it moves the expiry by more than the slack (the idle TTL / 30,
/// at most 60 s). A session read again and again is then touched about once per slack rather
/// than in every coalescing window; it expires at most the slack before `ttl` after its last
/// request. A write always stores the full expiry.
fn touch_moves_enough(stored: u64, wanted: u64, ttl: &CookieDuration) -> bool {
    let slack = (ttl_ms(ttl) / TOUCH_SLACK_DIVISOR)
        .min(u64::try_from(MAX_TOUCH_SLACK.as_millis()).unwrap_or(u64::MAX));
    wanted > stored.saturating_add(slack)
}

#[cfg(test)]
mod tests {
    use super::SessionToken;

    #[test]
    fn a_touch_is_sent_only_when_it_moves_the_expiry_past_the_slack() {
        use super::touch_moves_enough;
        use actix_web::cookie::time::Duration as CookieDuration;
        // idle TTL 30 min: slack 60 s (the cap)
        let ttl = CookieDuration::minutes(30);
        assert!(!touch_moves_enough(1_000_000, 1_000_000, &ttl));
        assert!(!touch_moves_enough(1_000_000, 1_060_000, &ttl));
        assert!(touch_moves_enough(1_000_000, 1_060_001, &ttl));
        // idle TTL 3 s: slack 100 ms
        let ttl = CookieDuration::seconds(3);
        assert!(!touch_moves_enough(5_000, 5_100, &ttl));
        assert!(touch_moves_enough(5_000, 5_101, &ttl));
        // never backwards (an absolute lifetime that ends before the stored idle expiry)
        assert!(!touch_moves_enough(5_000, 4_000, &ttl));
    }

    #[test]
    fn tokens_parse_and_print() {
        let t = SessionToken::parse("abc-_XYZ.42");
        assert_eq!((t.sid.as_str(), t.index), ("abc-_XYZ", Some(42)));
        assert_eq!(SessionToken::key(&t.sid, 42), "abc-_XYZ.42");
        // an older cookie: a bare id
        assert_eq!(SessionToken::parse("abc").index, None);
        assert_eq!(SessionToken::parse("abc").sid, "abc");
        // a suffix this release cannot read (a newer token): the id, read without an index
        let newer = SessionToken::parse("abc.x1");
        assert_eq!((newer.sid.as_str(), newer.index), ("abc", None));
        let newer = SessionToken::parse("abc.7.v3");
        assert_eq!((newer.sid.as_str(), newer.index), ("abc", None));
        assert_eq!(SessionToken::parse("abc.").index, None);
        assert_eq!(SessionToken::parse("abc.+7").index, None);
        // the borrowed form agrees
        for key in ["abc-_XYZ.42", "abc", "abc.x1", "abc.7.v3", "abc.", "abc.+7"] {
            let t = SessionToken::parse(key);
            assert_eq!(SessionToken::split(key), (t.sid.as_str(), t.index), "{key}");
        }
    }
}

//! The replicated commands and their responses.
//!
//! Every command is deterministic: the times it depends on (`now_ms`, `expires_at_ms`) travel
//! inside it, chosen by the node that proposed it. Applying the same log on two machines gives
//! byte-identical state; `apply` never reads the clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::storage::kv::{KvCommand, KvResponse};

/// A session's state: actix-session's string map, kept ordered so that its encoding is canonical.
pub type SessionState = BTreeMap<String, String>;

/// Longest accepted session key (actix-session's `SessionKey` limit).
pub const MAX_KEY_BYTES: usize = 4064;
/// Longest accepted user (principal) name.
pub const MAX_USER_BYTES: usize = 1024;

/// One stored session.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The session's state map.
    pub state: SessionState,
    /// Bumped on every change; the basis of version-checked updates.
    pub version: u64,
    /// When the session was created (ms since the Unix epoch, from the proposing node).
    pub created_at_ms: u64,
    /// When the session expires (ms since the Unix epoch). A session is live while `now < expires_at_ms`.
    pub expires_at_ms: u64,
    /// The principal this session belongs to, if signed in (kept in the per-user index).
    pub user: Option<String>,
}

impl Session {
    /// Whether the session is live at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }
}

/// A replicated command on the session state machine.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Put-if-absent. A live session under `key` gives [`Response::KeyExists`] and is left alone;
    /// an expired one is replaced.
    Create {
        key: String,
        state: SessionState,
        user: Option<String>,
        now_ms: u64,
        expires_at_ms: u64,
    },
    /// Replace the state, principal and expiry of a live session. With `expected_version`, only
    /// when the stored version equals it ([`Response::VersionMismatch`] otherwise). A missing or
    /// expired key is [`Response::NotFound`].
    Update {
        key: String,
        state: SessionState,
        user: Option<String>,
        expected_version: Option<u64>,
        now_ms: u64,
        expires_at_ms: u64,
    },
    /// Extend the expiry of many sessions: each `(key, expires_at_ms)` moves the expiry of a live
    /// session forward (never backward). Responds with the number of sessions touched.
    Touch {
        entries: Vec<(String, u64)>,
        now_ms: u64,
    },
    /// Remove a session. Responds with the number removed (0 or 1).
    Delete { key: String },
    /// Atomically move a live session to a new key (fixation-safe renewal), bumping its version.
    /// `to` must not hold a live session.
    Rename {
        from: String,
        to: String,
        now_ms: u64,
    },
    /// Remove every session of one principal. Responds with the number removed.
    DeleteUser { user: String },
    /// Remove at most `limit` sessions that expired at or before `now_ms` (with their index
    /// entries). Responds with the number removed.
    PurgeExpired { now_ms: u64, limit: u32 },
    /// Many commands in one log entry, applied in order, one response each (group commit).
    Batch(Vec<Command>),
    /// Restore sessions verbatim from a backup (state, version, times, principal), replacing
    /// whatever is stored under their keys; sessions already expired at `now_ms` are skipped.
    /// Idempotent, so re-proposing after an ambiguous outcome is safe. Responds with the number
    /// written. (Appended last: variant indexes of persisted commands never change.)
    Import {
        sessions: Vec<(String, Session)>,
        now_ms: u64,
    },
    /// Keep at most `max` live sessions of `user`: the oldest (by creation time, then key)
    /// other than `keep` are removed. Proposed in the same batch as the write that signs session
    /// `keep` in, so the cap holds atomically on every replica. Responds with the number
    /// removed. (Appended last: variant indexes of persisted commands never change.)
    CapUser {
        user: String,
        max: u32,
        keep: String,
        now_ms: u64,
    },
    /// A write on the Redis-protocol keyspace ([`crate::storage::kv`]); answers
    /// [`Response::Kv`]. (Appended last: variant indexes of persisted commands never change.)
    Kv(KvCommand),
    /// Raise the cluster version (`crate::version`): the leader proposes it once every member
    /// runs at least that release line, and behaviour older members cannot read is switched on
    /// from it. Never lowers it. Answers [`Response::Empty`]. (Appended last: variant indexes of
    /// persisted commands never change; proposed only when every member decodes it.)
    SetClusterVersion(crate::version::ClusterVersion),
}

impl Command {
    /// The feature a cluster must have switched on before this command may enter the log
    /// (`crate::version`): a member of an older release could not decode it.
    pub fn required_feature(&self) -> Option<crate::version::Feature> {
        match self {
            Command::Kv(_) => Some(crate::version::Feature::Keyspace),
            Command::Batch(cmds) => cmds.iter().find_map(Command::required_feature),
            _ => None,
        }
    }

    /// A cheap upper estimate of this command's encoded size in bytes (strings and state, plus
    /// a fixed allowance per field): what the write batcher uses to bound the size of a log
    /// entry, and so of an AppendEntries request.
    pub fn approx_bytes(&self) -> usize {
        fn state_bytes(state: &SessionState) -> usize {
            state.iter().map(|(k, v)| k.len() + v.len() + 16).sum()
        }
        fn user_bytes(user: &Option<String>) -> usize {
            user.as_ref().map_or(0, String::len)
        }
        const FIELDS: usize = 64;
        match self {
            Command::Create {
                key, state, user, ..
            }
            | Command::Update {
                key, state, user, ..
            } => FIELDS + key.len() + state_bytes(state) + user_bytes(user),
            Command::Touch { entries, .. } => {
                FIELDS + entries.iter().map(|(k, _)| k.len() + 16).sum::<usize>()
            }
            Command::Delete { key } => FIELDS + key.len(),
            Command::Rename { from, to, .. } => FIELDS + from.len() + to.len(),
            Command::DeleteUser { user } => FIELDS + user.len(),
            Command::CapUser { user, keep, .. } => FIELDS + user.len() + keep.len(),
            Command::PurgeExpired { .. } => FIELDS,
            Command::Kv(kv) => kv.approx_bytes(),
            Command::SetClusterVersion(_) => FIELDS,
            Command::Batch(cmds) => FIELDS + cmds.iter().map(Command::approx_bytes).sum::<usize>(),
            Command::Import { sessions, .. } => {
                FIELDS
                    + sessions
                        .iter()
                        .map(|(k, s)| {
                            FIELDS + k.len() + state_bytes(&s.state) + user_bytes(&s.user)
                        })
                        .sum::<usize>()
            }
        }
    }
}

/// The state machine's answer to one command.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The session was written; its version is now `version`.
    Written { version: u64 },
    /// A count: sessions touched, deleted or purged.
    Count(u64),
    /// No live session under the key.
    NotFound,
    /// A live session already holds the key.
    KeyExists,
    /// The stored version is not the expected one.
    VersionMismatch { current: u64 },
    /// The command was malformed (for example an empty key); nothing was changed.
    Rejected(String),
    /// One response per command of a [`Command::Batch`], in order.
    Batch(Vec<Response>),
    /// The answer to a blank or membership entry.
    Empty,
    /// The answer to a [`Command::Kv`].
    Kv(KvResponse),
}

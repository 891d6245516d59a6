//! The Redis-protocol keyspace: byte keys to byte values, each with an optional expiry, in the
//! same state machine as the sessions (column families `kv` and `kv_expiry`, see `db.rs`).
//!
//! Every write is one [`KvCommand`] inside [`crate::Command::Kv`]: the conditions of `SET NX|XX|GET`
//! and `EXPIRE NX|XX|GT|LT` are decided in `apply`, so they are atomic across the cluster. Times
//! (`now_ms`, expiry instants) are chosen by the proposing node and travel in the command; apply
//! never reads the clock. A key whose expiry is at or before a reader's `now` reads as absent, and
//! [`KvCommand::Purge`] removes such keys for good.

use serde::{Deserialize, Serialize};

/// Longest key accepted by apply (the RESP door's `max_bulk_bytes` is lower by default).
pub const MAX_KV_KEY_BYTES: usize = 1 << 20;
/// Longest value accepted by apply.
pub const MAX_KV_VALUE_BYTES: usize = 1 << 20;

/// One stored value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct KvEntry {
    /// The value's bytes (as bytes, not a sequence of numbers: the same encoding, decoded
    /// in one copy).
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// When it expires (ms since the Unix epoch); `None`: never.
    pub expires_at_ms: Option<u64>,
}

impl KvEntry {
    /// Whether the key is live at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| now_ms < at)
    }
}

/// `SET`'s `NX` / `XX`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCondition {
    /// Always write.
    Always,
    /// `NX`: only when no live value exists.
    IfAbsent,
    /// `XX`: only when a live value exists.
    IfPresent,
}

/// The expiry a write leaves on the key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetExpiry {
    /// No expiry (a plain `SET`, `PERSIST`).
    Clear,
    /// `KEEPTTL`: the live value's expiry, if any.
    Keep,
    /// Expire at this instant (ms since the Unix epoch).
    At(u64),
}

/// `EXPIRE`'s `NX` / `XX` / `GT` / `LT`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpireCondition {
    Always,
    /// `NX`: only when the key has no expiry.
    IfNone,
    /// `XX`: only when the key has an expiry.
    IfSome,
    /// `GT`: only when the new expiry is later (no expiry counts as infinite).
    IfLater,
    /// `LT`: only when the new expiry is earlier (no expiry counts as infinite).
    IfEarlier,
    /// `XX LT`: only when the key has an expiry and the new one is earlier.
    IfSomeAndEarlier,
}

/// A write on the keyspace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum KvCommand {
    /// `SET` and its variants. Answers [`KvResponse::Set`].
    Set {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        condition: SetCondition,
        expiry: SetExpiry,
        now_ms: u64,
    },
    /// `DEL`/`UNLINK`: answers the number of live keys removed.
    Delete { keys: Vec<Vec<u8>>, now_ms: u64 },
    /// `EXPIRE` family: answers 1 when the expiry was set (or the key deleted, for an instant at
    /// or before `now_ms`), 0 when the key is absent or the condition failed.
    Expire {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        at_ms: u64,
        condition: ExpireCondition,
        now_ms: u64,
    },
    /// `PERSIST`: answers 1 when an expiry was removed.
    Persist {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        now_ms: u64,
    },
    /// `GETDEL`: answers the value it removed.
    GetDelete {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        now_ms: u64,
    },
    /// `GETEX` with an option: answers the value, after setting its expiry (`Clear`: `PERSIST`;
    /// an instant at or before `now_ms` deletes the key).
    GetExpire {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        expiry: SetExpiry,
        now_ms: u64,
    },
    /// Remove at most `limit` keys expired at or before `now_ms`; answers how many.
    Purge { now_ms: u64, limit: u32 },
    /// Restore entries verbatim from a backup (value and expiry), replacing whatever is stored
    /// under their keys (and its expiry index entry). Apply reads no clock, so an entry already
    /// expired when applied is written all the same: it reads as absent and is purged like any
    /// other. Idempotent, so re-proposing after an ambiguous outcome is safe. Answers the number
    /// written; a key or value over the limits rejects the whole command, changing nothing.
    /// (Appended last: variant indexes of persisted commands never change.)
    Import(Vec<(Vec<u8>, KvEntry)>),
}

impl KvCommand {
    /// A cheap upper estimate of the encoded size (see `Command::approx_bytes`).
    pub fn approx_bytes(&self) -> usize {
        const FIELDS: usize = 64;
        FIELDS
            + match self {
                KvCommand::Set { key, value, .. } => key.len() + value.len(),
                KvCommand::Delete { keys, .. } => keys.iter().map(|k| k.len() + 8).sum(),
                KvCommand::Expire { key, .. }
                | KvCommand::Persist { key, .. }
                | KvCommand::GetDelete { key, .. }
                | KvCommand::GetExpire { key, .. } => key.len(),
                KvCommand::Purge { .. } => 0,
                KvCommand::Import(entries) => entries
                    .iter()
                    .map(|(k, e)| k.len() + e.value.len() + 16)
                    .sum(),
            }
    }
}

/// The state machine's answer to a [`KvCommand`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum KvResponse {
    /// `SET`: whether it wrote, and the live value before (for `SET … GET`).
    Set {
        written: bool,
        #[serde(with = "serde_bytes")]
        old: Option<Vec<u8>>,
    },
    /// A count or a 0/1 flag.
    Int(i64),
    /// A value, or none.
    Value(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
    /// A malformed command (an oversized key or value): nothing changed.
    Rejected(String),
}

/// Whether `EXPIRE … condition` may move an expiry from `current` to `at_ms`.
pub fn expire_allowed(condition: ExpireCondition, current: Option<u64>, at_ms: u64) -> bool {
    match condition {
        ExpireCondition::Always => true,
        ExpireCondition::IfNone => current.is_none(),
        ExpireCondition::IfSome => current.is_some(),
        ExpireCondition::IfLater => current.is_some_and(|c| at_ms > c),
        ExpireCondition::IfEarlier => current.is_none_or(|c| at_ms < c),
        ExpireCondition::IfSomeAndEarlier => current.is_some_and(|c| at_ms < c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expire_conditions_follow_redis() {
        use ExpireCondition::*;
        // GT: no expiry is infinite, so nothing is later; LT: anything is earlier.
        assert!(!expire_allowed(IfLater, None, 5));
        assert!(expire_allowed(IfEarlier, None, 5));
        assert!(expire_allowed(IfLater, Some(4), 5));
        assert!(!expire_allowed(IfLater, Some(5), 5));
        assert!(expire_allowed(IfEarlier, Some(6), 5));
        assert!(!expire_allowed(IfEarlier, Some(5), 5));
        assert!(expire_allowed(IfNone, None, 1) && !expire_allowed(IfNone, Some(1), 1));
        assert!(expire_allowed(IfSome, Some(1), 1) && !expire_allowed(IfSome, None, 1));
        assert!(expire_allowed(Always, Some(9), 1));
        assert!(!expire_allowed(IfSomeAndEarlier, None, 5));
        assert!(expire_allowed(IfSomeAndEarlier, Some(6), 5));
        let e = KvEntry {
            value: vec![],
            expires_at_ms: Some(10),
        };
        assert!(e.is_live(9) && !e.is_live(10));
    }
}

//! `[raft]` of `cluster.toml`: the consensus runtime's timings, snapshot policy, read mode and
//! write-queue bound, as written ([`RawRaftSettings`], every key defaulted) and validated
//! ([`RaftSettings`]), and the openraft configuration they make. `sessionraft-web`'s config
//! loader reads the section with the rest of the file and reports a [`SettingsError`] as its own
//! error, word for word.

use std::time::Duration;

use serde::Deserialize;

use crate::consensus::batcher::DEFAULT_MAX_QUEUED_WRITES;
use crate::consensus::freshness::ReadConsistency;

/// A refused `[raft]` setting: the key (`raft.heartbeat_ms`, or `raft` for openraft's own
/// refusal) and why, in one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SettingsError {
    /// The key, e.g. `raft.election_timeout_min_ms`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl SettingsError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Smallest accepted `raft.install_snapshot_timeout_ms`.
const MIN_INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 1000;

/// How many log entries openraft purges per batch at most (fewer when snapshots are more
/// frequent, so that a purge follows every snapshot).
const PURGE_BATCH_SIZE: u64 = 256;

/// Entries per AppendEntries RPC at most. openraft's default (300) of restore `Import` entries
/// (up to 1 MiB each) made a catch-up append exceed the 64 MiB RPC body limit, which the
/// follower refused forever. Log entries are at most ~2 MiB (the write batcher stops a batch at
/// 1 MiB, a restore `Import` at 1 MiB), so 4 keep an append near 8 MiB at worst: bounded
/// decode buffers on the follower (its RSS) and an append that finishes within openraft's
/// per-append timeout (the heartbeat interval). With 8, a node catching up a restored cluster
/// saw appends time out (bench/PROFILE.md, catch-up: 4 was as fast or faster, fewer timeouts).
const MAX_PAYLOAD_ENTRIES: u64 = 4;

/// `[raft]`: Raft timings and snapshot policy.
///
/// Invariants: `heartbeat > 0`, `election_timeout_min > 2 * heartbeat`,
/// `election_timeout_max > election_timeout_min`, `request_deadline > election_timeout_max`,
/// `0 < rpc_timeout < request_deadline`, `install_snapshot_timeout >= 1s`,
/// `snapshot_logs_since_last >= 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftSettings {
    /// Interval between leader heartbeats.
    pub heartbeat: Duration,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min: Duration,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max: Duration,
    /// Build a snapshot once this many entries were applied since the last one.
    pub snapshot_logs_since_last: u64,
    /// How many log entries already in a snapshot are kept rather than purged.
    pub max_in_snapshot_log_to_keep: u64,
    /// Timeout for sending and installing a snapshot.
    pub install_snapshot_timeout: Duration,
    /// How long a client request may wait for the cluster, including an election.
    pub request_deadline: Duration,
    /// Timeout of a single RPC between nodes.
    pub rpc_timeout: Duration,
    /// Whether the leader answers read indexes under its lease (no heartbeat round while a
    /// quorum accepted its AppendEntries within 90% of `election_timeout_min`).
    pub lease_reads: bool,
    /// How session loads are served: `session` (token reads from the node's own replica while
    /// it is fresh) or `linearizable` (a read index for every load).
    pub read_consistency: ReadConsistency,
    /// The staleness bound of `session` reads: a change acknowledged at t is visible on every
    /// node serving reads by t + this.
    pub max_staleness: Duration,
    /// The most writes a node's batcher queues (at least 1); one more is refused at once
    /// (HTTP 503 `not-applied`, RESP `-TRYAGAIN`).
    pub max_queued_writes: usize,
}

impl RaftSettings {
    /// The openraft configuration for these settings in cluster `cluster_name`, checked by
    /// openraft's own validation.
    ///
    /// # Errors
    /// openraft refuses it (field `raft`), or a duration does not fit in milliseconds.
    pub fn openraft_config(&self, cluster_name: &str) -> Result<openraft::Config, SettingsError> {
        let raft = self;
        let config = openraft::Config {
            cluster_name: cluster_name.to_owned(),
            heartbeat_interval: millis("raft.heartbeat_ms", raft.heartbeat)?,
            election_timeout_min: millis(
                "raft.election_timeout_min_ms",
                raft.election_timeout_min,
            )?,
            election_timeout_max: millis(
                "raft.election_timeout_max_ms",
                raft.election_timeout_max,
            )?,
            install_snapshot_timeout: millis(
                "raft.install_snapshot_timeout_ms",
                raft.install_snapshot_timeout,
            )?,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(raft.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: raft.max_in_snapshot_log_to_keep,
            purge_batch_size: PURGE_BATCH_SIZE.min(raft.snapshot_logs_since_last),
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            enable_heartbeat: true,
            ..openraft::Config::default()
        };
        config
            .validate()
            .map_err(|e| SettingsError::new("raft", format!("rejected by openraft: {e}")))
    }
}

/// Largest accepted `raft.max_staleness_ms`.
pub const MAX_STALENESS_MS: u64 = 1000;

/// `[raft]` as written; missing keys take the defaults of [`RawRaftSettings::default`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRaftSettings {
    /// `heartbeat_ms` (default 100).
    pub heartbeat_ms: u64,
    /// `election_timeout_min_ms` (default 210).
    pub election_timeout_min_ms: u64,
    /// `election_timeout_max_ms` (default 300).
    pub election_timeout_max_ms: u64,
    /// `snapshot_logs_since_last` (default 5000).
    pub snapshot_logs_since_last: u64,
    /// `max_in_snapshot_log_to_keep` (default 1000).
    pub max_in_snapshot_log_to_keep: u64,
    /// `install_snapshot_timeout_ms` (default 10000).
    pub install_snapshot_timeout_ms: u64,
    /// `request_deadline_ms` (default 3000).
    pub request_deadline_ms: u64,
    /// `rpc_timeout_ms` (default 1000).
    pub rpc_timeout_ms: u64,
    /// `lease_reads` (default true).
    pub lease_reads: bool,
    /// `read_consistency` (default "session").
    pub read_consistency: String,
    /// `max_staleness_ms` (default 500).
    pub max_staleness_ms: u64,
    /// `max_queued_writes` (default 4096).
    pub max_queued_writes: u64,
}

impl Default for RawRaftSettings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_timeout_min_ms: 210,
            election_timeout_max_ms: 300,
            snapshot_logs_since_last: 5000,
            max_in_snapshot_log_to_keep: 1000,
            install_snapshot_timeout_ms: 10_000,
            request_deadline_ms: 3000,
            rpc_timeout_ms: 1000,
            lease_reads: true,
            read_consistency: "session".into(),
            max_staleness_ms: 500,
            max_queued_writes: DEFAULT_MAX_QUEUED_WRITES as u64,
        }
    }
}

impl RawRaftSettings {
    /// The settings as written, checked: every refusal names its key (`raft.heartbeat_ms`).
    ///
    /// # Errors
    /// A value breaks one of [`RaftSettings`]' invariants, or `read_consistency` is not
    /// `session` or `linearizable`.
    pub fn validate(self) -> Result<RaftSettings, SettingsError> {
        let RawRaftSettings {
            heartbeat_ms,
            election_timeout_min_ms: min_ms,
            election_timeout_max_ms: max_ms,
            snapshot_logs_since_last,
            max_in_snapshot_log_to_keep,
            install_snapshot_timeout_ms,
            request_deadline_ms: deadline_ms,
            rpc_timeout_ms,
            lease_reads,
            read_consistency,
            max_staleness_ms,
            max_queued_writes,
        } = self;
        if heartbeat_ms == 0 {
            return Err(SettingsError::new(
                "raft.heartbeat_ms",
                "must be greater than 0",
            ));
        }
        if min_ms <= heartbeat_ms.saturating_mul(2) {
            return Err(SettingsError::new(
                "raft.election_timeout_min_ms",
                format!("{min_ms} must be more than twice raft.heartbeat_ms ({heartbeat_ms})"),
            ));
        }
        if max_ms <= min_ms {
            return Err(SettingsError::new(
                "raft.election_timeout_max_ms",
                format!("{max_ms} must be greater than raft.election_timeout_min_ms ({min_ms})"),
            ));
        }
        if deadline_ms <= max_ms {
            return Err(SettingsError::new(
                "raft.request_deadline_ms",
                format!(
                    "{deadline_ms} must be greater than raft.election_timeout_max_ms ({max_ms}), \
                 so that a request can outlast a leader election"
                ),
            ));
        }
        if rpc_timeout_ms == 0 {
            return Err(SettingsError::new(
                "raft.rpc_timeout_ms",
                "must be greater than 0",
            ));
        }
        if rpc_timeout_ms >= deadline_ms {
            return Err(SettingsError::new(
                "raft.rpc_timeout_ms",
                format!(
                    "{rpc_timeout_ms} must be less than raft.request_deadline_ms ({deadline_ms})"
                ),
            ));
        }
        if install_snapshot_timeout_ms < MIN_INSTALL_SNAPSHOT_TIMEOUT_MS {
            return Err(SettingsError::new(
                "raft.install_snapshot_timeout_ms",
                format!(
                "{install_snapshot_timeout_ms} must be at least {MIN_INSTALL_SNAPSHOT_TIMEOUT_MS}"
            ),
            ));
        }
        if snapshot_logs_since_last == 0 {
            return Err(SettingsError::new(
                "raft.snapshot_logs_since_last",
                "must be at least 1",
            ));
        }
        let read_consistency = match read_consistency.as_str() {
            "session" => ReadConsistency::Session,
            "linearizable" => ReadConsistency::Linearizable,
            other => {
                return Err(SettingsError::new(
                    "raft.read_consistency",
                    format!("{other:?} must be \"session\" or \"linearizable\""),
                ))
            }
        };
        if max_staleness_ms < heartbeat_ms.saturating_mul(2) || max_staleness_ms > MAX_STALENESS_MS
        {
            return Err(SettingsError::new(
                "raft.max_staleness_ms",
                format!(
                    "{max_staleness_ms} must be between twice raft.heartbeat_ms ({}) and \
                 {MAX_STALENESS_MS}: a follower stays fresh for it less half a heartbeat, and \
                 needs a heartbeat within that",
                    heartbeat_ms.saturating_mul(2)
                ),
            ));
        }
        if max_queued_writes == 0 {
            return Err(SettingsError::new(
                "raft.max_queued_writes",
                "must be at least 1",
            ));
        }
        Ok(RaftSettings {
            heartbeat: Duration::from_millis(heartbeat_ms),
            election_timeout_min: Duration::from_millis(min_ms),
            election_timeout_max: Duration::from_millis(max_ms),
            snapshot_logs_since_last,
            max_in_snapshot_log_to_keep,
            install_snapshot_timeout: Duration::from_millis(install_snapshot_timeout_ms),
            request_deadline: Duration::from_millis(deadline_ms),
            rpc_timeout: Duration::from_millis(rpc_timeout_ms),
            lease_reads,
            read_consistency,
            max_staleness: Duration::from_millis(max_staleness_ms),
            max_queued_writes: usize::try_from(max_queued_writes).unwrap_or(usize::MAX),
        })
    }
}

/// `duration` in whole milliseconds, for openraft.
fn millis(field: &str, duration: Duration) -> Result<u64, SettingsError> {
    u64::try_from(duration.as_millis()).map_err(|_| {
        SettingsError::new(
            field,
            format!("{duration:?} does not fit in u64 milliseconds"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[raft]` section of the web config tests' valid `cluster.toml`.
    fn valid() -> RawRaftSettings {
        RawRaftSettings {
            heartbeat_ms: 50,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            snapshot_logs_since_last: 100,
            max_in_snapshot_log_to_keep: 10,
            install_snapshot_timeout_ms: 5000,
            request_deadline_ms: 2000,
            rpc_timeout_ms: 500,
            ..RawRaftSettings::default()
        }
    }

    /// Asserts that `raw` is refused with a message containing every one of `needles`.
    fn assert_rejected(raw: RawRaftSettings, needles: &[&str]) {
        let message = raw
            .validate()
            .expect_err("settings should be refused")
            .to_string();
        for needle in needles {
            assert!(
                message.contains(needle),
                "error {message:?} does not contain {needle:?}"
            );
        }
        assert!(
            !message.contains('\n'),
            "error {message:?} is not a single line"
        );
    }

    #[test]
    fn valid_settings_make_an_openraft_config() {
        let raft = valid().validate().unwrap().openraft_config("c").unwrap();
        assert_eq!(raft.heartbeat_interval, 50);
        assert_eq!(raft.max_payload_entries, MAX_PAYLOAD_ENTRIES);
        RawRaftSettings::default()
            .validate()
            .unwrap()
            .openraft_config("c")
            .unwrap();
    }

    #[test]
    fn election_timeouts_are_checked() {
        assert_rejected(
            RawRaftSettings {
                election_timeout_max_ms: 300,
                ..valid()
            },
            &[
                "raft.election_timeout_max_ms",
                "greater than raft.election_timeout_min_ms",
            ],
        );
        assert_rejected(
            RawRaftSettings {
                election_timeout_min_ms: 100,
                ..valid()
            },
            &[
                "raft.election_timeout_min_ms",
                "must be more than twice raft.heartbeat_ms",
            ],
        );
        assert_rejected(
            RawRaftSettings {
                heartbeat_ms: 0,
                ..valid()
            },
            &["raft.heartbeat_ms"],
        );
    }

    #[test]
    fn request_deadline_must_exceed_election_timeout() {
        assert_rejected(
            RawRaftSettings {
                request_deadline_ms: 600,
                ..valid()
            },
            &["raft.request_deadline_ms", "raft.election_timeout_max_ms"],
        );
    }

    #[test]
    fn other_raft_limits_are_checked() {
        assert_rejected(
            RawRaftSettings {
                rpc_timeout_ms: 2000,
                ..valid()
            },
            &["raft.rpc_timeout_ms", "less than raft.request_deadline_ms"],
        );
        assert_rejected(
            RawRaftSettings {
                rpc_timeout_ms: 0,
                ..valid()
            },
            &["raft.rpc_timeout_ms"],
        );
        assert_rejected(
            RawRaftSettings {
                install_snapshot_timeout_ms: 999,
                ..valid()
            },
            &["raft.install_snapshot_timeout_ms", "at least 1000"],
        );
        assert_rejected(
            RawRaftSettings {
                snapshot_logs_since_last: 0,
                ..valid()
            },
            &["raft.snapshot_logs_since_last"],
        );
    }
}

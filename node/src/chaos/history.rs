//! The history file shared by `sessionraft load` (writer) and `sessionraft check` (reader): one
//! JSON object per line, one line per operation.
//!
//! ```json
//! {"user":3,"session":"u3#0","op":"inc","value":7,"invoke_ms":1718000000123.456,
//!  "complete_ms":1718000000130.001,"outcome":"ok","status":200,
//!  "target":"http://127.0.0.1:7101","served_by":2,"error":null,"skipped_ticks":0}
//! ```
//!
//! Times are milliseconds since the Unix epoch with microsecond precision, taken from one
//! monotonic clock anchored to the wall clock once (so they never run backwards). `invoke_ms` is
//! taken before the request is sent and `complete_ms` after the answer arrived: if one
//! operation's `complete_ms` is below another's `invoke_ms`, the first really finished before the
//! second started.

use std::io::BufRead;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What an operation did.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `POST /api/counter`: increments, returns the new value.
    Inc,
    /// `GET /api/counter`: returns the current value (0 for a new session).
    Read,
    /// `POST /api/login`: renews the session id keeping the state; returns the counter.
    Login,
    /// `POST /api/logout`: destroys the session.
    Logout,
    /// `GET /api/counter` after the load stopped and the cluster settled.
    FinalRead,
    /// `POST /api/logout-everywhere` by a signed-in user (`principal`): every session of the
    /// principal is deleted; acknowledged at `complete_ms`.
    Revoke,
    /// `GET /api/whoami` with the cookie of a session revoked just before (same logical
    /// session as the revoke); `principal` is the user the answer named (none: not served).
    Probe,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 7] = [
        OpKind::Inc,
        OpKind::Read,
        OpKind::Login,
        OpKind::Logout,
        OpKind::FinalRead,
        OpKind::Revoke,
        OpKind::Probe,
    ];

    /// The name used in the history file.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Inc => "inc",
            OpKind::Read => "read",
            OpKind::Login => "login",
            OpKind::Logout => "logout",
            OpKind::FinalRead => "final_read",
            OpKind::Revoke => "revoke",
            OpKind::Probe => "probe",
        }
    }

    /// Whether the operation may change the session (a failure of it may have been applied).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            OpKind::Inc | OpKind::Login | OpKind::Logout | OpKind::Revoke
        )
    }
}

/// How an operation ended, from the client's point of view.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered 2xx with a readable body.
    Ok,
    /// Certainly not applied: refused before sending, a 4xx, or any failed read.
    Fail,
    /// A write that may or may not have been applied: timeout, reset after sending, 5xx.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One line of the history.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct OpRecord {
    /// The virtual user (0-based).
    pub user: u32,
    /// The logical session, `u<user>#<epoch>`: the epoch starts again after a logout and after
    /// a login or logout whose outcome is unknown (the user then drops its cookie jar).
    pub session: String,
    pub op: OpKind,
    /// The counter returned (`inc`, `read`, `login`, `final_read`, `probe` when ok).
    pub value: Option<i64>,
    pub invoke_ms: f64,
    pub complete_ms: f64,
    pub outcome: Outcome,
    /// HTTP status, 0 when there was no response.
    pub status: u16,
    /// The base URL the request went to.
    pub target: String,
    /// The node that answered (from the body).
    pub served_by: Option<u64>,
    /// Why the operation did not succeed.
    pub error: Option<String>,
    /// Ticks of the open-loop schedule dropped just before this operation because the user was
    /// still busy with the previous one.
    #[serde(default)]
    pub skipped_ticks: u64,
    /// The signed-in user: the one revoked (`revoke`), or the one the answer named (`probe`;
    /// none when the revoked cookie named no session any more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

impl OpRecord {
    /// `complete_ms - invoke_ms`.
    pub fn latency_ms(&self) -> f64 {
        self.complete_ms - self.invoke_ms
    }

    /// A short human description: `u3#0 inc=7 ok [+1.234s, +1.240s] via http://… (node 2)`
    /// (`probe[u3]=…`: the principal, for revokes and probes).
    pub fn describe(&self, t0_ms: f64) -> String {
        let value = self
            .value
            .map_or_else(|| "-".to_string(), |v| v.to_string());
        let via = match self.served_by {
            Some(n) => format!(" (node {n})"),
            None => String::new(),
        };
        let who = match (&self.principal, self.op) {
            (Some(p), _) => format!("[{p}]"),
            (None, OpKind::Probe) => "[-]".to_string(),
            (None, _) => String::new(),
        };
        format!(
            "{} {}{}={} {} [{:+.3}s, {:+.3}s] via {}{}",
            self.session,
            self.op.as_str(),
            who,
            value,
            self.outcome.as_str(),
            (self.invoke_ms - t0_ms) / 1000.0,
            (self.complete_ms - t0_ms) / 1000.0,
            self.target,
            via
        )
    }
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a history record: {source}")]
    Parse {
        path: String,
        line: usize,
        source: serde_json::Error,
    },
    #[error("{path}:{line}: complete_ms is before invoke_ms")]
    Times { path: String, line: usize },
}

/// Read a history file (blank lines are skipped).
///
/// # Errors
/// The file cannot be read, a line is not a record, or a record ends before it starts.
pub fn read_history(path: &Path) -> Result<Vec<OpRecord>, HistoryError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| HistoryError::Io {
        path: name.clone(),
        source,
    })?;
    let mut ops = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| HistoryError::Io {
            path: name.clone(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let op: OpRecord = serde_json::from_str(&line).map_err(|source| HistoryError::Parse {
            path: name.clone(),
            line: i + 1,
            source,
        })?;
        if op.complete_ms < op.invoke_ms {
            return Err(HistoryError::Times {
                path: name.clone(),
                line: i + 1,
            });
        }
        ops.push(op);
    }
    Ok(ops)
}

/// Wall-clock milliseconds that never run backwards: the wall clock read once, then a monotonic
/// clock.
#[derive(Clone, Copy, Debug)]
pub struct HistoryClock {
    wall0_ms: f64,
    t0: Instant,
}

impl Default for HistoryClock {
    fn default() -> Self {
        Self::new()
    }
}

impl HistoryClock {
    pub fn new() -> Self {
        let wall0_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        Self {
            wall0_ms,
            t0: Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch, rounded to the microsecond.
    pub fn now_ms(&self) -> f64 {
        let ms = self.wall0_ms + self.t0.elapsed().as_secs_f64() * 1000.0;
        (ms * 1000.0).round() / 1000.0
    }
}

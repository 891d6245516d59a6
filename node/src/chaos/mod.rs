//! Chaos testing, the Rust side: drive load while faults are injected, then judge the history.
//!
//! - [`history`]: the history file (one JSON line per operation) and its clock.
//! - [`load`]: `sessionraft load` — virtual users (one cookie jar each, one operation at a
//!   time) on an open-loop schedule, recording every operation, then final reads; optionally
//!   revocations (log out everywhere, then the old cookie tried on every node).
//! - [`check`]: the per-session checker (lost writes, stale reads, duplicates, values from the
//!   future, vanished sessions) and the revocation check (a revoked session served after the
//!   staleness bound) — pure functions of the history.
//! - [`convergence`]: every node's digest polled until they agree.
//! - [`report`]: `summary.json` numbers and the hand-written `report.svg`.
//! - [`verdict`]: `sessionraft check` — all of the above, written to an output directory.
//!
//! Faults themselves are injected by `scripts/chaos.sh` (or a test), which records them as JSON
//! lines `{"name", "start_ms", "end_ms", "node"}` for the report.

pub mod check;
pub mod convergence;
pub mod history;
pub mod load;
pub mod report;
pub mod verdict;

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
//! - [`faults`]: the faults file (`faults.jsonl`, one line per fault window).
//! - [`terms`]: the terms file (`terms.jsonl`, each node's term every 100 ms) and the cluster's
//!   term over time, its rises (elections).
//! - [`fault_impact`]: per fault, its window without a success, the elections it brought and the
//!   requests it held up.
//! - [`report`]: `summary.json` numbers and the hand-written `report.svg`; [`stats`]: its
//!   percentile and rounding.
//! - [`samples`]: synthetic histories with known anomalies and fault windows, for the checker's
//!   unit tests (`tests.rs`, beside the modules) and the `sessionraft check` tests.
//! - [`verdict`]: `sessionraft check` — all of the above, written to an output directory.
//!
//! Faults themselves are injected by `scripts/chaos.sh` (or a test), which records them as JSON
//! lines `{"name", "start_ms", "end_ms", "node"}` for the report, and samples the nodes' terms
//! while the load runs.

pub mod check;
pub mod convergence;
pub mod fault_impact;
pub mod faults;
pub mod history;
pub mod load;
pub mod report;
pub mod samples;
pub mod stats;
pub mod terms;
pub mod verdict;

#[cfg(test)]
mod tests;

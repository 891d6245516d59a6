//! Per-fault figures for `summary.json` (`faults`): how long the load saw no success around each
//! fault (its *window*), which elections it brought, and how many requests it held up — pure
//! functions of the history, the faults and the terms file.
//!
//! Each fault is judged over its *span*: from its start to its end plus [`FAULT_SETTLE_MS`], cut
//! short at the next fault's start (never before the fault's own end), so that the next fault's
//! elections are not charged to this one. A fault still on when the faults file was written ends
//! with the load.
//!
//! **Window** (`window_ms`): the longest interval overlapping the span in which no load-phase
//! operation succeeded anywhere in the cluster while some operation was waiting. Exactly: the
//! completion times of the successful load-phase operations (final reads apart), in order, cut
//! the time into gaps (a, b) between consecutive successes; the gap in which the fault started
//! counts from the fault's start (a = the start: the gap from the start to the first success
//! after it), and after the last success a gap runs to the load's last completion. A gap counts
//! when it overlaps the span (b > start and a < the span's end; it is then measured whole, also
//! past the span's end) and an operation was waiting in it: one invoked before b and not
//! finished at a — the success that closes the gap only if it was already in flight at a (one
//! that started inside the gap is the load's normal spacing, not a wait). `window_ms` = b − a of
//! the longest gap that counts, in ms; 0 when none does (no operation waited). A fault that
//! disturbed nothing shows the load's normal spacing: tens of ms at 50 ops/s.
//!
//! **Elections** (`elections`, `term_before`, `term_after`): the rises of the cluster's term
//! ([`TermTimeline`]: the highest term any node reported) seen during the span, and the cluster's
//! term at the fault's start and at the span's end. All three are null without a terms file.
//!
//! **Long requests** (`long_requests`): of the load-phase operations in flight during the span
//! (invoked before its end, completed after the fault's start), whatever their outcome, how many
//! took longer than [`LONG_REQUEST_MS`], and the latency of the slowest of them all.

use serde::{Deserialize, Serialize};

use super::faults::{label, Fault};
use super::history::{OpKind, OpRecord, Outcome};
use super::stats::round3;
use super::terms::{Election, TermTimeline};

/// How long after a fault's end its effects are still charged to it.
pub const FAULT_SETTLE_MS: f64 = 3000.0;
/// A request slower than this is a long request.
pub const LONG_REQUEST_MS: f64 = 1000.0;

/// The operations in flight during a fault's span that took longer than [`LONG_REQUEST_MS`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct LongRequests {
    pub count: usize,
    /// The latency of the slowest operation in flight during the span (long or not; 0 when none
    /// was in flight).
    pub slowest_ms: f64,
}

/// What one fault did to the load and to the cluster's term (an entry of `summary.json`'s
/// `faults`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FaultImpact {
    pub name: String,
    #[serde(default)]
    pub node: Option<serde_json::Value>,
    pub start_ms: f64,
    /// Absent while the fault was still on when the faults file was written.
    #[serde(default)]
    pub end_ms: Option<f64>,
    /// The end of the span judged: the end plus [`FAULT_SETTLE_MS`], cut at the next fault's
    /// start (not before the end).
    pub until_ms: f64,
    /// The longest gap without a success while operations waited (see the module's doc).
    pub window_ms: f64,
    /// Where that gap began (none when `window_ms` is 0).
    #[serde(default)]
    pub window_start_ms: Option<f64>,
    /// Rises of the cluster's term during the span (none: no terms file).
    #[serde(default)]
    pub elections: Option<Vec<Election>>,
    /// The cluster's term at the fault's start (none: no terms file, or no answer before it).
    #[serde(default)]
    pub term_before: Option<u64>,
    /// The cluster's term at the span's end.
    #[serde(default)]
    pub term_after: Option<u64>,
    pub long_requests: LongRequests,
}

impl FaultImpact {
    /// One line for the human summary, times relative to `t0_ms`:
    /// `partition-leader (node 2) +3.0s..+8.1s: window 1.02 s; 1 election (t2→t3 at +3.6s,
    /// leader 3); term 2 → 3; 4 requests > 1 s, slowest 2.41 s`.
    pub fn describe(&self, t0_ms: f64) -> String {
        let rel = |t: f64| format!("{:+.1}s", (t - t0_ms) / 1000.0);
        let end = self.end_ms.map_or_else(|| "(open)".to_string(), rel);
        let elections = match &self.elections {
            None => "elections not recorded (no terms file)".to_string(),
            Some(list) => {
                let each: Vec<String> = list
                    .iter()
                    .map(|e| {
                        format!(
                            "t{}→t{} at {}, leader {}",
                            e.from_term,
                            e.to_term,
                            rel(e.t_ms),
                            e.leader.map_or_else(|| "?".to_string(), |l| l.to_string())
                        )
                    })
                    .collect();
                let n = list.len();
                let plural = if n == 1 { "" } else { "s" };
                let terms = match (self.term_before, self.term_after) {
                    (Some(b), Some(a)) => format!("; term {b} → {a}"),
                    _ => String::new(),
                };
                if each.is_empty() {
                    format!("0 elections{terms}")
                } else {
                    format!("{n} election{plural} ({}){terms}", each.join("; "))
                }
            }
        };
        format!(
            "{} {}..{}: window {:.2} s; {}; {} request{} > {} s, slowest {:.2} s",
            label(&self.name, self.node.as_ref()),
            rel(self.start_ms),
            end,
            self.window_ms / 1000.0,
            elections,
            self.long_requests.count,
            if self.long_requests.count == 1 {
                ""
            } else {
                "s"
            },
            LONG_REQUEST_MS / 1000.0,
            self.long_requests.slowest_ms / 1000.0
        )
    }
}

/// The figures of every fault, in the order given.
pub fn analyze_faults(
    ops: &[OpRecord],
    faults: &[Fault],
    terms: Option<&TermTimeline>,
) -> Vec<FaultImpact> {
    let load: Vec<&OpRecord> = ops.iter().filter(|o| o.op != OpKind::FinalRead).collect();
    let mut successes: Vec<f64> = load
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .map(|o| o.complete_ms)
        .collect();
    successes.sort_by(f64::total_cmp);
    let load_start = load
        .iter()
        .map(|o| o.invoke_ms)
        .fold(f64::INFINITY, f64::min);
    let load_end = load
        .iter()
        .map(|o| o.complete_ms)
        .fold(f64::NEG_INFINITY, f64::max);
    faults
        .iter()
        .map(|f| {
            let end = f.end_ms.unwrap_or(load_end).max(f.start_ms);
            let next_start = faults
                .iter()
                .map(|g| g.start_ms)
                .filter(|s| *s > f.start_ms)
                .fold(f64::INFINITY, f64::min);
            let until = (end + FAULT_SETTLE_MS).min(next_start).max(end);
            let gap = longest_wait(&load, &successes, load_start, load_end, f.start_ms, until);
            let in_flight = load
                .iter()
                .filter(|o| o.invoke_ms < until && o.complete_ms > f.start_ms);
            let mut long_requests = LongRequests::default();
            for o in in_flight {
                let l = o.latency_ms();
                if l > LONG_REQUEST_MS {
                    long_requests.count += 1;
                }
                long_requests.slowest_ms = long_requests.slowest_ms.max(l);
            }
            long_requests.slowest_ms = round3(long_requests.slowest_ms);
            FaultImpact {
                name: f.name.clone(),
                node: f.node.clone(),
                start_ms: f.start_ms,
                end_ms: f.end_ms,
                until_ms: round3(until),
                window_ms: gap.map_or(0.0, |(a, b)| round3(b - a)),
                window_start_ms: gap.map(|(a, _)| round3(a)),
                elections: terms.map(|t| t.elections_between(f.start_ms, until)),
                term_before: terms.and_then(|t| t.term_at(f.start_ms)),
                term_after: terms.and_then(|t| t.term_at(until)),
                long_requests,
            }
        })
        .collect()
}

/// The longest gap (a, b) between successes that overlaps [start, until] and in which an
/// operation waited (see the module's doc); `successes` sorted.
fn longest_wait(
    load: &[&OpRecord],
    successes: &[f64],
    load_start: f64,
    load_end: f64,
    start: f64,
    until: f64,
) -> Option<(f64, f64)> {
    // (a, b, closed by a success at b)
    let floor = start.max(load_start);
    let mut gaps: Vec<(f64, f64, bool)> = Vec::new();
    let mut a = floor;
    for &b in successes {
        if b <= floor {
            continue;
        }
        if a >= until {
            break;
        }
        gaps.push((a, b, true));
        a = b;
    }
    if a < until && load_end > a {
        gaps.push((a, load_end, false));
    }
    gaps.sort_by(|x, y| (y.1 - y.0).total_cmp(&(x.1 - x.0)));
    gaps.into_iter()
        .find(|&(a, b, closed)| {
            load.iter().any(|o| {
                let started_inside = o.invoke_ms >= a;
                let closes = closed && o.outcome == Outcome::Ok && o.complete_ms == b;
                o.invoke_ms < b && o.complete_ms > a && !(closes && started_inside)
            })
        })
        .map(|(a, b, _)| (a, b))
}

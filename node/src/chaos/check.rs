//! The history checker behind `sessionraft check`: per logical session, is what the clients saw
//! explainable by one counter that every acknowledged increment moved by one, in real-time
//! order?
//!
//! Model. Each logical session (`u<user>#<epoch>`) is one counter starting at 0. An `ok` inc
//! returned the counter after its increment; an `unknown` inc may or may not have happened (at
//! any time after it was invoked); an `ok` read, login or final read returned the counter.
//! Operation A *precedes* B when A completed before B was invoked (`A.complete_ms <
//! B.invoke_ms`; the recorded interval always contains the real one, so this never orders two
//! operations wrongly). `fail` operations changed nothing and are ignored.
//!
//! Checks, for each valued operation B (an `ok` inc, read, login or final read), in order of
//! invocation:
//! - **value from the future**: B's value exceeds the number of incs (ok or unknown) invoked
//!   before B completed — no sequence of increments can explain it.
//! - **duplicate value**: two concurrent `ok` incs returned the same value (each increment is
//!   distinct; when one completed before the other started, that is a lost write, below).
//! - **regression** against the highest value of the operations preceding B (the *witness*):
//!   an inc must return more than it, a read at least as much. Reported as
//!   - **vanished session** when B sees a fresh counter (a read of 0, an inc returning 1) after
//!     the witness saw at least 1: the session was gone before it expired;
//!   - **lost write** when B is a final read or an inc (an acknowledged write is missing from
//!     what the cluster later answered, or an increment was built on an older state);
//!   - **stale read** when B is a read or login and the witness an inc (read-your-writes across
//!     nodes), **non-monotonic read** when the witness is itself a read.
//!
//! Each violating operation is reported once, with its witness. After a vanished session or a
//! lost write the counter really restarted from B's value, so later operations are compared only
//! with B and what followed it (one lost write is not reported again by every later
//! operation); stale reads (and final reads) change nothing and later operations are still
//! compared with everything before. An operation whose value is from the future is never used as a witness.
//!
//! Revocations ([`check_revocations`]): a revoke acknowledged at t must be visible on every node
//! serving reads by t + the staleness bound; a probe with the revoked cookie invoked later
//! that was still served as the revoked user is a **served after revoke**. In `session` mode the
//! counter checks above are the holder's guarantee (read-your-writes, monotonic reads): they
//! hold in both modes.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::history::{OpKind, OpRecord, Outcome};

/// What kind of anomaly a violation is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// An acknowledged increment is missing from a later answer.
    LostWrite,
    /// A read missed an increment acknowledged before it started.
    StaleRead,
    /// A read returned less than a read that completed before it started.
    NonMonotonicRead,
    /// Two acknowledged increments returned the same value.
    DuplicateValue,
    /// A value larger than the number of increments that could have happened.
    ValueFromFuture,
    /// The session's counter started again from scratch within one logical session.
    VanishedSession,
    /// Nodes at the same applied index hold different state.
    Divergence,
    /// The nodes did not reach the same applied index (or did not answer) in time.
    NotConverged,
    /// A node served a revoked session to a request that started more than the staleness
    /// bound after the revocation was acknowledged.
    ServedAfterRevoke,
}

impl ViolationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::LostWrite => "lost_write",
            ViolationKind::StaleRead => "stale_read",
            ViolationKind::NonMonotonicRead => "non_monotonic_read",
            ViolationKind::DuplicateValue => "duplicate_value",
            ViolationKind::ValueFromFuture => "value_from_future",
            ViolationKind::VanishedSession => "vanished_session",
            ViolationKind::Divergence => "divergence",
            ViolationKind::NotConverged => "not_converged",
            ViolationKind::ServedAfterRevoke => "served_after_revoke",
        }
    }
}

/// One anomaly and the operations that prove it (the offending operation last).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Violation {
    pub kind: ViolationKind,
    /// The logical session (empty for cluster-wide violations).
    pub session: String,
    pub message: String,
    pub ops: Vec<OpRecord>,
}

/// A valued operation of one session.
struct Valued<'a> {
    op: &'a OpRecord,
    value: i64,
}

fn is_valued(op: &OpRecord) -> bool {
    op.outcome == Outcome::Ok
        && op.value.is_some()
        && matches!(
            op.op,
            OpKind::Inc | OpKind::Read | OpKind::Login | OpKind::FinalRead
        )
}

/// Check a whole history; violations come out per session (sessions in name order), each
/// session's in order of invocation.
pub fn check_history(ops: &[OpRecord]) -> Vec<Violation> {
    let mut sessions: BTreeMap<&str, Vec<&OpRecord>> = BTreeMap::new();
    for op in ops {
        sessions.entry(op.session.as_str()).or_default().push(op);
    }
    let t0 = ops
        .iter()
        .map(|o| o.invoke_ms)
        .fold(f64::INFINITY, f64::min);
    let t0 = if t0.is_finite() { t0 } else { 0.0 };
    sessions
        .into_iter()
        .flat_map(|(name, ops)| check_session(name, &ops, t0))
        .collect()
}

/// Check one logical session. `t0_ms` only makes messages readable (times relative to it).
pub fn check_session(session: &str, ops: &[&OpRecord], t0_ms: f64) -> Vec<Violation> {
    let mut valued: Vec<Valued> = ops
        .iter()
        .filter(|o| is_valued(o))
        .filter_map(|o| o.value.map(|value| Valued { op: o, value }))
        .collect();
    valued.sort_by(|a, b| {
        a.op.invoke_ms
            .total_cmp(&b.op.invoke_ms)
            .then(a.op.complete_ms.total_cmp(&b.op.complete_ms))
    });
    // Invocation times of every increment that may have happened.
    let mut inc_invokes: Vec<f64> = ops
        .iter()
        .filter(|o| o.op == OpKind::Inc && o.outcome != Outcome::Fail)
        .map(|o| o.invoke_ms)
        .collect();
    inc_invokes.sort_by(f64::total_cmp);

    let mut out = Vec::new();
    let d = |o: &OpRecord| o.describe(t0_ms);
    // Operations invoked before this time no longer count as witnesses (the counter restarted).
    let mut segment_start = f64::NEG_INFINITY;
    // Values of ok incs in the current segment.
    let mut inc_values: HashMap<i64, usize> = HashMap::new();
    // Whether each valued op may serve as a witness.
    let mut trusted = vec![true; valued.len()];
    // Valued ops in order of completion, the next one to become a witness candidate, and the
    // best candidate so far.
    let mut by_complete: Vec<usize> = (0..valued.len()).collect();
    by_complete.sort_by(|x, y| {
        valued[*x]
            .op
            .complete_ms
            .total_cmp(&valued[*y].op.complete_ms)
    });
    let mut next_done = 0usize;
    let mut best: Option<usize> = None;

    for i in 0..valued.len() {
        let b = &valued[i];
        let possible = inc_invokes.partition_point(|t| *t <= b.op.complete_ms) as i64;
        if b.value > possible {
            trusted[i] = false;
            out.push(Violation {
                kind: ViolationKind::ValueFromFuture,
                session: session.to_string(),
                message: format!(
                    "{} returned {} but at most {possible} increments (ok or unknown) had been \
                     invoked when it completed",
                    d(b.op),
                    b.value
                ),
                ops: vec![b.op.clone()],
            });
        }
        // The witness: the highest value seen by an operation of the current segment that
        // completed before B started (on a tie prefer an inc: it is the acknowledged write).
        // Candidates only ever join as B's invocation time grows, so one pass suffices.
        while next_done < by_complete.len()
            && valued[by_complete[next_done]].op.complete_ms < b.op.invoke_ms
        {
            let j = by_complete[next_done];
            next_done += 1;
            let a = &valued[j];
            if !trusted[j] || a.op.invoke_ms < segment_start {
                continue;
            }
            let better = match best {
                None => true,
                Some(k) => {
                    let c = &valued[k];
                    (a.value, a.op.op == OpKind::Inc, a.op.complete_ms)
                        > (c.value, c.op.op == OpKind::Inc, c.op.complete_ms)
                }
            };
            if better {
                best = Some(j);
            }
        }
        let witness = best.map(|k| &valued[k]);
        let regressed = witness.filter(|w| {
            if b.op.op == OpKind::Inc {
                b.value <= w.value
            } else {
                b.value < w.value
            }
        });
        let Some(w) = regressed else {
            // No regression; an inc may still collide with a concurrent one.
            if b.op.op == OpKind::Inc {
                if let Some(&j) = inc_values.get(&b.value) {
                    let a = &valued[j];
                    out.push(Violation {
                        kind: ViolationKind::DuplicateValue,
                        session: session.to_string(),
                        message: format!(
                            "two acknowledged increments returned {}: {} and {}",
                            b.value,
                            d(a.op),
                            d(b.op)
                        ),
                        ops: vec![a.op.clone(), b.op.clone()],
                    });
                } else {
                    inc_values.insert(b.value, i);
                }
            }
            continue;
        };
        let fresh = if b.op.op == OpKind::Inc {
            b.value <= 1
        } else {
            b.value <= 0
        };
        let (kind, message) = if fresh && w.value >= 1 {
            (
                ViolationKind::VanishedSession,
                format!(
                    "the session vanished: {} saw a fresh counter after {}",
                    d(b.op),
                    d(w.op)
                ),
            )
        } else if matches!(b.op.op, OpKind::FinalRead | OpKind::Inc) {
            (
                ViolationKind::LostWrite,
                format!(
                    "{} is behind {}, which completed before it started",
                    d(b.op),
                    d(w.op)
                ),
            )
        } else if w.op.op == OpKind::Inc {
            (
                ViolationKind::StaleRead,
                format!(
                    "{} missed {} acknowledged before it started",
                    d(b.op),
                    d(w.op)
                ),
            )
        } else {
            (
                ViolationKind::NonMonotonicRead,
                format!(
                    "{} went back from {} completed before it started",
                    d(b.op),
                    d(w.op)
                ),
            )
        };
        if matches!(
            kind,
            ViolationKind::VanishedSession | ViolationKind::LostWrite
        ) && b.op.op != OpKind::FinalRead
        {
            segment_start = b.op.invoke_ms;
            best = None;
            inc_values.clear();
            if b.op.op == OpKind::Inc {
                inc_values.insert(b.value, i);
            }
        }
        out.push(Violation {
            kind,
            session: session.to_string(),
            message,
            ops: vec![w.op.clone(), b.op.clone()],
        });
    }
    out
}

/// What the revocation check saw.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RevocationStats {
    /// The bound used: a revoked session may be served until `complete_ms + bound_ms` of its
    /// acknowledged revoke.
    pub bound_ms: f64,
    /// Revokes acknowledged (`ok`).
    pub revokes: usize,
    /// Probes answered (`ok`) after an acknowledged revoke.
    pub probes: usize,
    /// Of those, the ones invoked after the bound (the ones judged).
    pub probes_after_bound: usize,
    /// Of those, the ones that still served the revoked session (each one a violation).
    pub served_after_bound: usize,
}

/// The revocation check: once a revoke (`POST /api/logout-everywhere`) was acknowledged at
/// `complete_ms` = t, no node may serve the revoked session to a request invoked after
/// t + `bound_ms` (`[raft] max_staleness_ms` in `session` mode; `linearizable` mode is held to
/// the same bound, although it promises 0). Each probe of the revoke's logical session that
/// was answered with the revoked principal although invoked after t + bound is one
/// [`ViolationKind::ServedAfterRevoke`], proven by the revoke and the probe. Revokes of unknown
/// outcome prove nothing and are skipped; a probe invoked within the bound may be served.
pub fn check_revocations(ops: &[OpRecord], bound_ms: f64) -> (Vec<Violation>, RevocationStats) {
    let mut stats = RevocationStats {
        bound_ms,
        ..RevocationStats::default()
    };
    // The acknowledged revokes of each logical session, earliest acknowledgement first.
    let mut revokes: BTreeMap<&str, Vec<&OpRecord>> = BTreeMap::new();
    for op in ops
        .iter()
        .filter(|o| o.op == OpKind::Revoke && o.outcome == Outcome::Ok)
    {
        stats.revokes += 1;
        revokes.entry(op.session.as_str()).or_default().push(op);
    }
    for list in revokes.values_mut() {
        list.sort_by(|a, b| a.complete_ms.total_cmp(&b.complete_ms));
    }
    let t0 = ops
        .iter()
        .map(|o| o.invoke_ms)
        .fold(f64::INFINITY, f64::min);
    let t0 = if t0.is_finite() { t0 } else { 0.0 };
    let mut probes: Vec<&OpRecord> = ops
        .iter()
        .filter(|o| o.op == OpKind::Probe && o.outcome == Outcome::Ok)
        .collect();
    probes.sort_by(|a, b| a.invoke_ms.total_cmp(&b.invoke_ms));
    let mut out = Vec::new();
    for p in probes {
        let Some(list) = revokes.get(p.session.as_str()) else {
            continue;
        };
        // The earliest revoke acknowledged before the probe started.
        let Some(r) = list.iter().find(|r| r.complete_ms < p.invoke_ms) else {
            continue;
        };
        stats.probes += 1;
        // The earliest revoke whose bound had passed when the probe started, of the principal
        // the probe was served as.
        let late = list.iter().find(|r| {
            p.invoke_ms > r.complete_ms + bound_ms
                && r.principal.is_some()
                && r.principal == p.principal
        });
        if p.invoke_ms > r.complete_ms + bound_ms {
            stats.probes_after_bound += 1;
        }
        let Some(r) = late else {
            continue;
        };
        stats.served_after_bound += 1;
        let node = match p.served_by {
            Some(n) => format!("node {n}"),
            None => format!("the node at {}", p.target),
        };
        out.push(Violation {
            kind: ViolationKind::ServedAfterRevoke,
            session: p.session.clone(),
            message: format!(
                "{node} served the session of {} {:.1} ms after its revocation was \
                 acknowledged (bound {bound_ms} ms): {} revoked it, then {}",
                r.principal.as_deref().unwrap_or("?"),
                p.invoke_ms - r.complete_ms,
                r.describe(t0),
                p.describe(t0)
            ),
            ops: vec![(*r).clone(), p.clone()],
        });
    }
    (out, stats)
}

/// Violations counted per kind (every kind present, zeros included).
pub fn count_by_kind(violations: &[Violation]) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = [
        ViolationKind::LostWrite,
        ViolationKind::StaleRead,
        ViolationKind::NonMonotonicRead,
        ViolationKind::DuplicateValue,
        ViolationKind::ValueFromFuture,
        ViolationKind::VanishedSession,
        ViolationKind::Divergence,
        ViolationKind::NotConverged,
        ViolationKind::ServedAfterRevoke,
    ]
    .iter()
    .map(|k| (k.as_str().to_string(), 0))
    .collect();
    for v in violations {
        *counts.entry(v.kind.as_str().to_string()).or_default() += 1;
    }
    counts
}

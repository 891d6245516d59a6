//! Synthetic histories for the checker's own tests and for the `sessionraft check` tests in
//! `tests/it/chaos_checker.rs`: operations built by hand, a steady load disturbed by two faults
//! with known windows, and the terms sampled across them. Test data, not used by the tools.

use super::faults::Fault;
use super::history::{
    OpKind,
    OpKind::{FinalRead, Inc, Read},
    OpRecord, Outcome,
};
use super::terms::TermSample;

/// One operation of `session` with the given outcome (status 200, 0 or 503 to match).
pub fn op(
    session: &str,
    kind: OpKind,
    value: Option<i64>,
    invoke_ms: f64,
    complete_ms: f64,
    outcome: Outcome,
) -> OpRecord {
    OpRecord {
        user: 0,
        session: session.to_string(),
        op: kind,
        value,
        invoke_ms,
        complete_ms,
        outcome,
        status: match outcome {
            Outcome::Ok => 200,
            Outcome::Fail => 0,
            Outcome::Unknown => 503,
        },
        target: "http://127.0.0.1:1".into(),
        served_by: Some(1),
        error: None,
        skipped_ticks: 0,
        principal: None,
    }
}

/// A successful operation.
pub fn ok(session: &str, kind: OpKind, value: i64, invoke_ms: f64, complete_ms: f64) -> OpRecord {
    op(
        session,
        kind,
        Some(value),
        invoke_ms,
        complete_ms,
        Outcome::Ok,
    )
}

/// A probe of `session`'s revoked cookie through node `node`, answered as `principal`.
pub fn probe(
    session: &str,
    node: u64,
    principal: Option<&str>,
    invoke_ms: f64,
    complete_ms: f64,
) -> OpRecord {
    let mut p = ok(session, OpKind::Probe, 0, invoke_ms, complete_ms);
    p.served_by = Some(node);
    p.target = format!("http://127.0.0.1:{node}");
    p.principal = principal.map(str::to_string);
    p
}

/// A steady load (one op every 100 ms from 0 to 40 s, 5 ms each, all ok) disturbed by two faults:
/// - `partition-leader` of node 1 from 10 s to 15 s: the ops invoked from 10.0 s to 11.4 s hang
///   until 11.52 s (then succeed), one invoked at 10.05 s times out after 3 s (unknown): no
///   success from 9.905 s to 11.505 s (the tick of 11.5 s is the first to succeed);
/// - `pause-follower` of node 3 from 30 s to 32 s: the op of 30.5 s takes 600 ms, so the gap
///   between the successes at 30.405 s and 30.605 s (200 ms) had an operation waiting.
pub fn disturbed_history() -> (Vec<OpRecord>, Vec<Fault>) {
    let mut history = Vec::new();
    for tick in 0..400 {
        let t = f64::from(tick) * 100.0;
        let complete = if (10_000.0..=11_400.0).contains(&t) {
            11_520.0
        } else if t == 30_500.0 {
            31_100.0
        } else {
            t + 5.0
        };
        history.push(ok("u0#0", Read, 0, t, complete));
    }
    history.push(op("u1#0", Inc, None, 10_050.0, 13_050.0, Outcome::Unknown));
    // Final reads are not load: their latency and successes change nothing.
    history.push(ok("u0#0", FinalRead, 0, 50_000.0, 52_000.0));
    let fault = |name: &str, node: u64, start_ms: f64, end_ms: f64| Fault {
        name: name.into(),
        start_ms,
        end_ms: Some(end_ms),
        node: Some(node.into()),
    };
    let faults = vec![
        fault("partition-leader", 1, 10_000.0, 15_000.0),
        fault("pause-follower", 3, 30_000.0, 32_000.0),
    ];
    (history, faults)
}

/// Terms every 100 ms: term 2 (leader 1) until node 2 campaigns at 10.8 s (term 3, no leader
/// yet), from 11 s nodes 2 and 3 follow leader 2 in term 3; the partitioned node 1 stays in term
/// 2 until the heal at 15 s; node 3 does not answer while paused (30–32 s); term 4 at 40 s.
pub fn disturbed_terms() -> Vec<TermSample> {
    let mut samples = Vec::new();
    for tick in 0..=420 {
        let t = f64::from(tick) * 100.0;
        for node in 1..=3u64 {
            let (term, leader) = if t >= 40_000.0 {
                (Some(4), Some(3))
            } else if node == 1 && t < 15_000.0 {
                (Some(2), if t < 10_000.0 { Some(1) } else { None })
            } else if t < 10_800.0 {
                (Some(2), Some(1))
            } else if t < 11_000.0 {
                (Some(if node == 2 { 3 } else { 2 }), None)
            } else if node == 3 && (30_000.0..32_000.0).contains(&t) {
                (None, None)
            } else {
                (Some(3), Some(2))
            };
            samples.push(TermSample {
                t_ms: t + node as f64,
                node,
                term,
                leader,
                role: if term.is_none() {
                    "unreachable"
                } else if leader == Some(node) {
                    "leader"
                } else {
                    "follower"
                }
                .into(),
            });
        }
    }
    samples
}

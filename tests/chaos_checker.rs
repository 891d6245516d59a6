//! The chaos checker (`sessionraft check`) and load driver (`sessionraft load`):
//! - synthetic histories, each with one planted anomaly, give exactly the expected violations;
//!   a clean history full of unknown outcomes gives none;
//! - for real: a 3-node cluster with the planted stale-read bug
//!   (`SESSIONRAFT_UNSAFE_SKIP_READ_BARRIER=1`) under load while a follower is repeatedly
//!   SIGSTOPped fails the check; the same scenario without the bug passes, and so does one
//!   where the leader is paused past an election (lease reads must not outlive it);
//! - revocations: a probe with a revoked cookie served after the staleness bound is a
//!   `served_after_revoke` (synthetic); for real, the revocation workload against a 3-node
//!   cluster with the planted freshness bug (`SESSIONRAFT_UNSAFE_SKIP_FRESHNESS=1`) and a
//!   follower SIGSTOPped across revokes fails the check, and passes without the bug;
//! - per-fault figures (synthetic history, faults and terms): each fault's window without a
//!   success, the elections in its span and the requests it held up, exactly; `check` with and
//!   without `--terms`;
//! - peer connections leave from the node's own address (127.0.0.11 → 127.0.0.12), so chaos
//!   scripts can cut links with address-matching firewall rules.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{binary, increment, read, signal, user, ClusterOptions, Paused, TestCluster, Tuning};
use sessionraft_node::chaos::check::{check_history, check_revocations, Violation, ViolationKind};
use sessionraft_node::chaos::fault_impact::{FaultImpact, LongRequests};
use sessionraft_node::chaos::faults::Fault;
use sessionraft_node::chaos::history::{OpKind, OpRecord, Outcome};
use sessionraft_node::chaos::report::{render_svg, summarize, FaultWindows, Summary};
use sessionraft_node::chaos::terms::{Election, TermSample, TermTimeline};
use sessionraft_node::chaos::verdict::Verdict;

const READY: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Synthetic histories

fn op(
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

fn ok(session: &str, kind: OpKind, value: i64, invoke_ms: f64, complete_ms: f64) -> OpRecord {
    op(
        session,
        kind,
        Some(value),
        invoke_ms,
        complete_ms,
        Outcome::Ok,
    )
}

/// A violation reduced to its kind and the (op, value) of the operations proving it.
type Shape = (ViolationKind, Vec<(OpKind, Option<i64>)>);

fn shape(violations: &[Violation]) -> Vec<Shape> {
    violations
        .iter()
        .map(|v| (v.kind, v.ops.iter().map(|o| (o.op, o.value)).collect()))
        .collect()
}

use OpKind::{FinalRead, Inc, Login, Read};

#[test]
fn clean_history_with_unknowns_has_no_violations() {
    let s = "u0#0";
    let t = "u1#0";
    let history = vec![
        ok(s, Inc, 1, 0.0, 10.0),
        // Unknown: applied at some point (the next ok inc returns 3)...
        op(s, Inc, None, 20.0, 3020.0, Outcome::Unknown),
        // ...but not yet when this read ran.
        ok(s, Read, 1, 3030.0, 3040.0),
        ok(s, Inc, 3, 3050.0, 3060.0),
        // A read concurrent with an inc may see it or not.
        ok(s, Inc, 4, 3070.0, 3090.0),
        ok(s, Read, 3, 3075.0, 3080.0),
        // Failed operations changed nothing and carry no value.
        op(s, Read, None, 3100.0, 3101.0, Outcome::Fail),
        op(s, Inc, None, 3110.0, 3111.0, Outcome::Fail),
        ok(s, Login, 4, 3120.0, 3130.0),
        ok(s, FinalRead, 4, 9000.0, 9001.0),
        ok(s, FinalRead, 4, 9002.0, 9003.0),
        // Another session: an unknown inc that never happened.
        ok(t, Read, 0, 0.0, 1.0),
        ok(t, Inc, 1, 2.0, 3.0),
        op(t, Inc, None, 4.0, 5.0, Outcome::Unknown),
        ok(t, Inc, 2, 6.0, 7.0),
        ok(t, Read, 2, 8.0, 9.0),
        ok(t, FinalRead, 2, 9000.0, 9001.0),
    ];
    let v = check_history(&history);
    assert!(v.is_empty(), "unexpected violations: {v:#?}");
}

#[test]
fn lost_acknowledged_write_is_reported() {
    let s = "u0#0";
    let history = vec![
        ok(s, Inc, 1, 0.0, 10.0),
        ok(s, Inc, 2, 20.0, 30.0),
        ok(s, Inc, 3, 40.0, 50.0),
        ok(s, FinalRead, 2, 1000.0, 1010.0),
    ];
    assert_eq!(
        shape(&check_history(&history)),
        vec![(
            ViolationKind::LostWrite,
            vec![(Inc, Some(3)), (FinalRead, Some(2))]
        )]
    );
}

#[test]
fn increment_on_a_stale_copy_is_a_lost_write_reported_once() {
    // What the planted bug does: a login served from a stale copy renews the session with an
    // old counter; the next increment repeats a value already acknowledged.
    let s = "u0#0";
    let history = vec![
        ok(s, Inc, 1, 0.0, 10.0),
        ok(s, Inc, 2, 20.0, 30.0),
        ok(s, Login, 1, 40.0, 50.0),
        ok(s, Inc, 2, 60.0, 70.0),
        // From here on the counter continues from the lost write: nothing more to report.
        ok(s, Inc, 3, 80.0, 90.0),
        ok(s, Read, 3, 100.0, 110.0),
        ok(s, FinalRead, 3, 1000.0, 1010.0),
    ];
    assert_eq!(
        shape(&check_history(&history)),
        vec![
            (
                ViolationKind::StaleRead,
                vec![(Inc, Some(2)), (Login, Some(1))]
            ),
            (
                ViolationKind::LostWrite,
                vec![(Inc, Some(2)), (Inc, Some(2))]
            ),
        ]
    );
}

#[test]
fn stale_read_is_reported() {
    let s = "u0#0";
    let history = vec![
        ok(s, Inc, 1, 0.0, 10.0),
        ok(s, Inc, 2, 20.0, 30.0),
        ok(s, Read, 1, 31.0, 40.0),
        ok(s, Read, 2, 41.0, 50.0),
        ok(s, FinalRead, 2, 1000.0, 1010.0),
    ];
    assert_eq!(
        shape(&check_history(&history)),
        vec![(
            ViolationKind::StaleRead,
            vec![(Inc, Some(2)), (Read, Some(1))]
        )]
    );
}

#[test]
fn non_monotonic_read_is_reported() {
    let s = "u0#0";
    let history = vec![
        ok(s, Inc, 1, 0.0, 10.0),
        op(s, Inc, None, 20.0, 30.0, Outcome::Unknown),
        ok(s, Read, 2, 40.0, 50.0),
        ok(s, Read, 1, 60.0, 70.0),
    ];
    assert_eq!(
        shape(&check_history(&history)),
        vec![(
            ViolationKind::NonMonotonicRead,
            vec![(Read, Some(2)), (Read, Some(1))]
        )]
    );
}

#[test]
fn duplicate_value_is_reported() {
    let s = "u0#0";
    let history = vec![
        ok(s, Inc, 1, 0.0, 10.0),
        // Two concurrent increments that both returned 2.
        ok(s, Inc, 2, 20.0, 30.0),
        ok(s, Inc, 2, 25.0, 35.0),
        ok(s, Inc, 3, 40.0, 50.0),
    ];
    assert_eq!(
        shape(&check_history(&history)),
        vec![(
            ViolationKind::DuplicateValue,
            vec![(Inc, Some(2)), (Inc, Some(2))]
        )]
    );
}

#[test]
fn vanished_session_is_reported_once() {
    let s = "u0#0";
    let history = vec![
        ok(s, Inc, 1, 0.0, 10.0),
        ok(s, Inc, 2, 20.0, 30.0),
        ok(s, Inc, 3, 40.0, 50.0),
        // The session is gone: a fresh counter...
        ok(s, Read, 0, 60.0, 70.0),
        // ...which then counts again from 1: not reported again.
        ok(s, Inc, 1, 80.0, 90.0),
        ok(s, Inc, 2, 100.0, 110.0),
        ok(s, FinalRead, 2, 1000.0, 1010.0),
    ];
    assert_eq!(
        shape(&check_history(&history)),
        vec![(
            ViolationKind::VanishedSession,
            vec![(Inc, Some(3)), (Read, Some(0))]
        )]
    );
}

#[test]
fn value_from_the_future_is_reported() {
    let s = "u0#0";
    let history = vec![
        ok(s, Inc, 1, 0.0, 10.0),
        op(s, Inc, None, 20.0, 30.0, Outcome::Unknown),
        // At most 2 increments had been invoked.
        ok(s, Read, 5, 40.0, 50.0),
        // Not a regression: a value from the future is no witness.
        ok(s, Read, 2, 60.0, 70.0),
    ];
    assert_eq!(
        shape(&check_history(&history)),
        vec![(ViolationKind::ValueFromFuture, vec![(Read, Some(5))])]
    );
}

#[test]
fn sessions_are_checked_separately_and_reports_render() {
    let history = vec![
        ok("u0#0", Inc, 1, 0.0, 10.0),
        ok("u0#0", Inc, 2, 20.0, 30.0),
        ok("u0#1", Read, 0, 40.0, 50.0),
        ok("u0#1", Inc, 1, 60.0, 70.0),
        // Everything fails for 2 s while operations are in flight: one unavailability window.
        op("u0#1", Inc, None, 100.0, 2100.0, Outcome::Unknown),
        op("u0#1", Read, None, 2200.0, 2300.0, Outcome::Fail),
        ok("u0#1", Inc, 3, 2400.0, 2410.0),
        ok("u0#1", Read, 1, 2500.0, 2510.0),
    ];
    let v = check_history(&history);
    assert_eq!(
        shape(&v),
        vec![(
            ViolationKind::StaleRead,
            vec![(Inc, Some(3)), (Read, Some(1))]
        )]
    );
    let summary = summarize(&history, &v, &[], None);
    assert_eq!(summary.ops.total, 8);
    assert_eq!((summary.ops.ok, summary.ops.fail), (6, 1));
    assert_eq!(summary.ops.unknown, 1);
    assert_eq!(summary.sessions, 2);
    assert_eq!(summary.violations, 1);
    assert_eq!(
        summary.unavailability.len(),
        1,
        "{:?}",
        summary.unavailability
    );
    assert!(summary.unavailability[0].duration_ms >= 2000.0);
    let svg = render_svg(&history, &[], &v, &summary);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("FAIL — 1 violation (1 stale_read)"));
}

/// A probe of `session`'s revoked cookie through node `node`, answered as `principal`.
fn probe(
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

#[test]
fn probe_serving_a_revoked_session_after_the_bound_is_reported() {
    let s = "u0#0";
    let mut login = ok(s, Login, 0, 0.0, 10.0);
    login.principal = None;
    let mut revoke = op(s, OpKind::Revoke, None, 100.0, 110.0, Outcome::Ok);
    revoke.principal = Some("u0".into());
    // An unknown revoke of another session proves nothing, whatever its probes saw.
    let mut unknown = op("u1#0", OpKind::Revoke, None, 100.0, 110.0, Outcome::Unknown);
    unknown.principal = Some("u1".into());
    let history = vec![
        login,
        revoke,
        // Within the bound (acknowledged at 110, bound 500): may still be served.
        probe(s, 2, Some("u0"), 120.0, 130.0),
        probe(s, 3, Some("u0"), 609.0, 700.0),
        // After the bound and not served: fine.
        probe(s, 1, None, 611.0, 620.0),
        probe(s, 2, None, 900.0, 910.0),
        // After the bound and served: the violation, naming node 3.
        probe(s, 3, Some("u0"), 650.0, 1500.0),
        // A failed probe says nothing.
        op(s, OpKind::Probe, None, 700.0, 705.0, Outcome::Fail),
        unknown,
        probe("u1#0", 3, Some("u1"), 2000.0, 2010.0),
    ];
    let (v, stats) = check_revocations(&history, 500.0);
    assert_eq!(
        shape(&v),
        vec![(
            ViolationKind::ServedAfterRevoke,
            vec![(OpKind::Revoke, None), (OpKind::Probe, Some(0))]
        )]
    );
    assert_eq!(v[0].ops[1].served_by, Some(3));
    assert_eq!(v[0].ops[1].invoke_ms, 650.0);
    assert!(
        v[0].message.starts_with("node 3 served the session of u0"),
        "{}",
        v[0].message
    );
    assert_eq!(
        (stats.revokes, stats.probes, stats.probes_after_bound),
        (1, 5, 3)
    );
    assert_eq!(stats.served_after_bound, 1);
    // A larger bound covers the late probe; the counter checks see nothing here.
    assert!(check_revocations(&history, 600.0).0.is_empty());
    assert!(check_history(&history).is_empty());
    // Reports count and render the new kind.
    let summary = summarize(&history, &v, &[], None);
    assert_eq!(summary.violations_by_kind["served_after_revoke"], 1);
    let svg = render_svg(&history, &[], &v, &summary);
    assert!(svg.contains("1 served_after_revoke"));
}

#[test]
fn check_exits_2_on_unreadable_input_and_0_on_a_clean_history() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let run = |history: &Path| {
        std::process::Command::new(binary())
            .arg("check")
            .arg("--history")
            .arg(history)
            .arg("--out")
            .arg(dir.path().join("report"))
            .output()
            .expect("run sessionraft check")
    };
    let missing = run(&dir.path().join("missing.jsonl"));
    assert_eq!(missing.status.code(), Some(2));
    let garbage = dir.path().join("garbage.jsonl");
    std::fs::write(&garbage, "{\"user\": 1}\n").expect("write");
    let out = run(&garbage);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("garbage.jsonl:1"));
    let clean = dir.path().join("clean.jsonl");
    let lines: Vec<String> = [
        ok("u0#0", Inc, 1, 0.0, 10.0),
        ok("u0#0", FinalRead, 1, 20.0, 30.0),
    ]
    .iter()
    .map(|o| serde_json::to_string(o).expect("json"))
    .collect();
    std::fs::write(&clean, lines.join("\n")).expect("write");
    let out = run(&clean);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("PASS"));
}

#[test]
fn check_judges_revocations_against_the_bound_given_or_500() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let s = "u0#0";
    let mut revoke = op(s, OpKind::Revoke, None, 100.0, 110.0, Outcome::Ok);
    revoke.principal = Some("u0".into());
    let lines: Vec<String> = [
        ok(s, Login, 0, 0.0, 10.0),
        revoke,
        probe(s, 2, Some("u0"), 900.0, 910.0),
    ]
    .iter()
    .map(|o| serde_json::to_string(o).expect("json"))
    .collect();
    let history = dir.path().join("revoked.jsonl");
    std::fs::write(&history, lines.join("\n")).expect("write");
    let run = |extra: &[&str]| {
        std::process::Command::new(binary())
            .arg("check")
            .arg("--history")
            .arg(&history)
            .arg("--out")
            .arg(dir.path().join("report"))
            .args(extra)
            .output()
            .expect("run sessionraft check")
    };
    // No --nodes: the bound is 500 ms, the probe 790 ms after the revoke fails the check.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[served_after_revoke] node 2"), "{stdout}");
    let verdict: Verdict = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report/verdict.json")).expect("verdict"),
    )
    .expect("verdict parses");
    assert_eq!(verdict.revocation.bound_from, "default");
    assert_eq!(verdict.revocation.stats.bound_ms, 500.0);
    // A bound of 1 s covers it.
    let out = run(&["--max-staleness-ms", "1000"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// Per-fault figures

/// A steady load (one op every 100 ms from 0 to 40 s, 5 ms each, all ok) disturbed by two faults:
/// - `partition-leader` of node 1 from 10 s to 15 s: the ops invoked from 10.0 s to 11.4 s hang
///   until 11.52 s (then succeed), one invoked at 10.05 s times out after 3 s (unknown): no
///   success from 9.905 s to 11.505 s (the tick of 11.5 s is the first to succeed);
/// - `pause-follower` of node 3 from 30 s to 32 s: the op of 30.5 s takes 600 ms, so the gap
///   between the successes at 30.405 s and 30.605 s (200 ms) had an operation waiting.
fn disturbed_history() -> (Vec<OpRecord>, Vec<Fault>) {
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
fn disturbed_terms() -> Vec<TermSample> {
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

#[test]
fn each_fault_gets_its_window_elections_and_long_requests() {
    let (history, faults) = disturbed_history();
    let terms = TermTimeline::new(&disturbed_terms());
    let summary = summarize(&history, &[], &faults, Some(&terms));
    assert_eq!(
        summary.faults,
        vec![
            FaultImpact {
                name: "partition-leader".into(),
                node: Some(1.into()),
                start_ms: 10_000.0,
                end_ms: Some(15_000.0),
                // end + 3 s of settle
                until_ms: 18_000.0,
                // from the fault's start (the gap began at 9.905 s) to the success at 11.505 s
                window_ms: 1505.0,
                window_start_ms: Some(10_000.0),
                elections: Some(vec![Election {
                    t_ms: 10_802.0,
                    from_term: 2,
                    to_term: 3,
                    leader: Some(2),
                }]),
                term_before: Some(2),
                term_after: Some(3),
                // 1520, 1420, 1320, 1220, 1120 and 1020 ms, and the 3 s unknown
                long_requests: LongRequests {
                    count: 7,
                    slowest_ms: 3000.0
                },
            },
            FaultImpact {
                name: "pause-follower".into(),
                node: Some(3.into()),
                start_ms: 30_000.0,
                end_ms: Some(32_000.0),
                until_ms: 35_000.0,
                window_ms: 200.0,
                window_start_ms: Some(30_405.0),
                // term 4 at 40 s is after the span
                elections: Some(vec![]),
                term_before: Some(3),
                term_after: Some(3),
                long_requests: LongRequests {
                    count: 0,
                    slowest_ms: 600.0
                },
            },
        ]
    );
    assert_eq!(
        summary.fault_windows_ms,
        FaultWindows {
            count: 2,
            p50: 200.0,
            max: 1505.0
        }
    );
    assert_eq!(
        summary
            .elections
            .as_ref()
            .map(|e| e.iter().map(|e| e.to_term).collect::<Vec<_>>()),
        Some(vec![3, 4])
    );
    // The >= 1 s unavailability list is unchanged: 100 ms slots, 10.0 s to 11.5 s.
    assert_eq!(summary.unavailability.len(), 1);
    assert_eq!(summary.unavailability[0].duration_ms, 1500.0);
    let svg = render_svg(&history, &faults, &[], &summary);
    assert!(
        svg.contains("partition-leader (node 1) · window 1.50 s"),
        "{svg}"
    );
    assert!(svg.contains("pause-follower (node 3) · window 0.20 s"));
    assert!(svg.contains(">t3</text>") && svg.contains(">t4</text>"));
}

#[test]
fn a_fault_that_disturbed_nothing_has_no_window_and_the_next_fault_cuts_the_settle() {
    // 1 op every 100 ms, 5 ms each: between two successes nobody waited.
    let history: Vec<OpRecord> = (0..100)
        .map(|i| {
            let t = f64::from(i) * 100.0;
            ok("u0#0", Read, 0, t, t + 5.0)
        })
        .collect();
    let faults = vec![
        Fault {
            name: "partition-minority".into(),
            start_ms: 2_000.0,
            end_ms: Some(3_000.0),
            node: None,
        },
        // Starts 1 s after the first ended: the first's span stops here.
        Fault {
            name: "pause-follower".into(),
            start_ms: 4_000.0,
            end_ms: None,
            node: None,
        },
    ];
    let summary = summarize(&history, &[], &faults, None);
    let [first, second] = &summary.faults[..] else {
        panic!("two faults: {:?}", summary.faults);
    };
    assert_eq!((first.window_ms, first.window_start_ms), (0.0, None));
    assert_eq!(first.until_ms, 4_000.0);
    assert_eq!(
        first.long_requests,
        LongRequests {
            count: 0,
            slowest_ms: 5.0
        }
    );
    // No terms file: nothing said about elections.
    assert_eq!(
        (&first.elections, first.term_before, first.term_after),
        (&None, None, None)
    );
    assert_eq!(summary.elections, None);
    // Still on when the faults were written: it ends with the load (at 9.905 s), plus the settle.
    assert_eq!(second.until_ms, 12_905.0);
    assert_eq!(summary.fault_windows_ms.max, 0.0);
}

#[test]
fn the_last_gap_runs_to_the_end_of_the_load() {
    // Everything fails from 1 s on, up to the last completion at 3.2 s.
    let mut history = vec![
        ok("u0#0", Read, 0, 0.0, 5.0),
        ok("u0#0", Read, 0, 900.0, 905.0),
    ];
    history.push(op("u0#0", Read, None, 1_000.0, 3_000.0, Outcome::Fail));
    history.push(op("u0#0", Inc, None, 2_000.0, 3_200.0, Outcome::Unknown));
    let faults = vec![Fault {
        name: "kill-leader".into(),
        start_ms: 950.0,
        end_ms: Some(1_500.0),
        node: Some(2.into()),
    }];
    let s = summarize(&history, &[], &faults, None);
    assert_eq!(s.faults[0].window_ms, 2_250.0);
    assert_eq!(s.faults[0].window_start_ms, Some(950.0));
    assert_eq!(s.faults[0].long_requests.count, 2);
}

fn write_lines<T: serde::Serialize>(path: &Path, items: &[T]) {
    let lines: Vec<String> = items
        .iter()
        .map(|x| serde_json::to_string(x).expect("json"))
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").expect("write");
}

#[test]
fn check_reports_each_fault_with_and_without_terms() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let (history, faults) = disturbed_history();
    let (h, f, t) = (
        dir.path().join("history.jsonl"),
        dir.path().join("faults.jsonl"),
        dir.path().join("terms.jsonl"),
    );
    write_lines(&h, &history);
    write_lines(&f, &faults);
    write_lines(&t, &disturbed_terms());
    let check = |out: &str, terms: Option<&Path>| {
        let mut cmd = std::process::Command::new(binary());
        cmd.arg("check")
            .arg("--history")
            .arg(&h)
            .arg("--faults")
            .arg(&f)
            .arg("--out")
            .arg(dir.path().join(out));
        if let Some(t) = terms {
            cmd.arg("--terms").arg(t);
        }
        let output = cmd.output().expect("run sessionraft check");
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        let summary: Summary = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(out).join("summary.json"))
                .expect("summary.json"),
        )
        .expect("summary parses");
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            summary,
        )
    };

    // Without --terms (an old run): windows and long requests, no elections.
    let (stdout, summary) = check("without", None);
    assert_eq!(
        summary
            .faults
            .iter()
            .map(|f| (f.window_ms, f.long_requests.count, f.elections.clone()))
            .collect::<Vec<_>>(),
        vec![(1505.0, 7, None), (200.0, 0, None)]
    );
    assert_eq!(summary.fault_windows_ms.max, 1505.0);
    assert!(
        stdout.contains("faults: 2 — window") && stdout.contains("p50 0.20 s, max 1.50 s"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "  partition-leader (node 1) +10.0s..+15.0s: window 1.50 s; elections not \
             recorded (no terms file); 7 requests > 1 s, slowest 3.00 s\n"
        ),
        "{stdout}"
    );

    // With --terms: the election in the partition's span, none in the pause's.
    let (stdout, summary) = check("with", Some(&t));
    assert_eq!(summary.faults[0].elections.as_ref().map(Vec::len), Some(1));
    assert_eq!(summary.faults[1].elections.as_ref().map(Vec::len), Some(0));
    assert!(
        stdout.contains(
            "  partition-leader (node 1) +10.0s..+15.0s: window 1.50 s; 1 election (t2→t3 at \
             +10.8s, leader 2); term 2 → 3; 7 requests > 1 s, slowest 3.00 s\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "  pause-follower (node 3) +30.0s..+32.0s: window 0.20 s; 0 elections; term 3 → 3; \
             0 requests > 1 s, slowest 0.60 s\n"
        ),
        "{stdout}"
    );

    // An unreadable terms file is unreadable input.
    std::fs::write(&t, "{\"t_ms\": 1}\n").expect("write");
    let out = std::process::Command::new(binary())
        .arg("check")
        .arg("--history")
        .arg(&h)
        .arg("--terms")
        .arg(&t)
        .arg("--out")
        .arg(dir.path().join("bad"))
        .output()
        .expect("run sessionraft check");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("terms.jsonl:1"));
}

// ---------------------------------------------------------------------------------------------
// Real clusters

/// Where a run's history and report are kept for a human to look at.
fn report_dir(name: &str) -> PathBuf {
    let target = binary()
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let dir = target.join("chaos-checker").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("report dir");
    dir
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Which node a scenario pauses, and for how long.
#[derive(Clone, Copy)]
enum Victim {
    /// A follower, 1 s: it falls behind; a read through it must wait for the leader.
    Follower,
    /// The leader, 2.5 s: longer than an election (lease 800 ms + timeout 400–800 ms), so it
    /// resumes deposed, with requests queued that it must not answer from its stale lease.
    Leader,
}

/// Load three nodes directly while a node is paused (SIGSTOP, SIGCONT) five times, then
/// check. Returns the exit code of `sessionraft check` and its verdict.
async fn paused_node_scenario(name: &str, planted_bug: bool, victim: Victim) -> (i32, Verdict) {
    let env = if planted_bug {
        vec![(
            "SESSIONRAFT_UNSAFE_SKIP_READ_BARRIER".to_string(),
            "1".to_string(),
        )]
    } else {
        Vec::new()
    };
    let c = TestCluster::start_with(
        3,
        ClusterOptions {
            tuning: Tuning::default(),
            hosts: None,
            env,
        },
    );
    c.wait_ready(READY).await;
    if planted_bug {
        assert!(
            c.log(1).contains("PLANTED BUG"),
            "no startup warning for the planted bug:\n{}",
            c.log(1)
        );
    }
    let dir = report_dir(name);
    let history = dir.join("history.jsonl");
    let targets: Vec<String> = (1..=3).map(|id| c.url(id, "")).collect();
    let targets = targets.join(",");
    let load = tokio::process::Command::new(binary())
        .args(["load", "--targets", &targets])
        // A paused leader holds a third of the users' requests for 2.5 s at a time: twice the
        // users keep the offered rate going meanwhile.
        .arg("--users")
        .arg(match victim {
            Victim::Follower => "30",
            Victim::Leader => "60",
        })
        .args(["--rate", "300", "--duration"])
        .arg(match victim {
            Victim::Follower => "12",
            Victim::Leader => "20",
        })
        .args(["--settle", "2", "--seed", "42"])
        .args(["--mix", "inc=45,read=45,login=5,logout=5"])
        .arg("--out")
        .arg(&history)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sessionraft load");

    // Five pauses of the follower or the leader of that moment.
    let faults = pause_nodes(&c, 5, |leader| match victim {
        Victim::Follower => (
            (1..=3).find(|id| *id != leader).expect("a follower"),
            Duration::from_millis(1000),
        ),
        Victim::Leader => (leader, Duration::from_millis(2500)),
    })
    .await;
    let (code, verdict) = finish_and_check(
        name,
        load,
        &dir,
        &history,
        &targets,
        &faults,
        Duration::from_secs(60),
    )
    .await;
    assert!(dir.join("summary.json").exists() && dir.join("report.svg").exists());
    // The nodes' logs beside the report, for a failure's post-mortem.
    for id in 1..=3 {
        let _ = std::fs::write(dir.join(format!("node{id}.log")), c.log(id));
    }
    (code, verdict)
}

/// Pause (SIGSTOP, then SIGCONT) `times` times the node `pick` chooses, given the leader of
/// that moment, for as long as it says, a second apart; the faults as `faults.jsonl` lines.
async fn pause_nodes(
    c: &TestCluster,
    times: usize,
    pick: impl Fn(u64) -> (u64, Duration),
) -> String {
    let mut faults = String::new();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..times {
        let leader = c.leader(Duration::from_secs(10)).await;
        let (victim, pause) = pick(leader);
        let pid = c.pid(victim).expect("victim pid");
        let start = now_ms();
        signal(pid, "STOP");
        let paused = Paused(pid);
        tokio::time::sleep(pause).await;
        drop(paused);
        faults.push_str(&format!(
            "{{\"name\":\"SIGSTOP\",\"start_ms\":{start},\"end_ms\":{},\"node\":{victim}}}\n",
            now_ms()
        ));
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    faults
}

/// Wait for the load (at most `load_timeout`), then run `sessionraft check` on its history with
/// `faults`: its exit code and verdict.
async fn finish_and_check(
    name: &str,
    mut load: tokio::process::Child,
    dir: &Path,
    history: &Path,
    targets: &str,
    faults: &str,
    load_timeout: Duration,
) -> (i32, Verdict) {
    let faults_file = dir.join("faults.jsonl");
    std::fs::write(&faults_file, faults).expect("write faults");
    let status = tokio::time::timeout(load_timeout, load.wait())
        .await
        .expect("load finishes")
        .expect("load exit status");
    assert!(status.success(), "sessionraft load failed: {status}");
    let out = tokio::process::Command::new(binary())
        .arg("check")
        .arg("--history")
        .arg(history)
        .args(["--nodes", targets])
        .arg("--faults")
        .arg(&faults_file)
        .arg("--out")
        .arg(dir)
        .output()
        .await
        .expect("run sessionraft check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "== {name}\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict: Verdict = serde_json::from_str(
        &std::fs::read_to_string(dir.join("verdict.json")).expect("verdict.json"),
    )
    .expect("verdict.json parses");
    (out.status.code().unwrap_or(-1), verdict)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_stale_read_bug_fails_the_check() {
    let (code, verdict) = paused_node_scenario("planted_bug", true, Victim::Follower).await;
    let anomalies: usize = ["stale_read", "lost_write", "vanished_session"]
        .iter()
        .map(|k| verdict.violations_by_kind.get(*k).copied().unwrap_or(0))
        .sum();
    assert_eq!(code, 1, "check must fail: {:?}", verdict.violations_by_kind);
    assert!(
        anomalies >= 1,
        "expected stale reads or lost writes, got {:?}",
        verdict.violations_by_kind
    );
    // The anomalies are the paused node's doing, not a divergence of the logs.
    let convergence = verdict.convergence.expect("convergence checked");
    assert!(convergence.converged, "{convergence:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_cluster_passes_the_same_scenario() {
    let (code, verdict) = paused_node_scenario("safe", false, Victim::Follower).await;
    assert_eq!(
        code,
        0,
        "violations without the planted bug: {:#?}",
        verdict.violations.iter().take(5).collect::<Vec<_>>()
    );
    assert!(verdict.ops > 1000, "too little load: {} ops", verdict.ops);
}

/// Lease reads (on by default): a leader paused past an election resumes deposed, its lease
/// long expired, with reads queued on its sockets; none of them may be answered from its stale
/// state, and the new leader's lease must not start before the old one ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_leader_with_lease_reads_passes() {
    let (code, verdict) = paused_node_scenario("paused_leader", false, Victim::Leader).await;
    assert_eq!(
        code,
        0,
        "violations with lease reads and a paused leader: {:#?}",
        verdict.violations.iter().take(5).collect::<Vec<_>>()
    );
    assert!(verdict.ops > 1000, "too little load: {} ops", verdict.ops);
}

/// The revocation workload against three nodes while a follower is paused (SIGSTOP, SIGCONT)
/// for `pause` `times` times, with or without the planted freshness bug; then check (the bound
/// is read from the nodes' `/cluster/status`). Returns the exit code and the verdict.
async fn revocation_scenario(
    name: &str,
    planted_bug: bool,
    pause: Duration,
    times: usize,
) -> (i32, Verdict) {
    let env = if planted_bug {
        vec![(
            "SESSIONRAFT_UNSAFE_SKIP_FRESHNESS".to_string(),
            "1".to_string(),
        )]
    } else {
        Vec::new()
    };
    let c = TestCluster::start_with(
        3,
        ClusterOptions {
            tuning: Tuning::default(),
            hosts: None,
            env,
        },
    );
    c.wait_ready(READY).await;
    let dir = report_dir(name);
    let history = dir.join("history.jsonl");
    let targets: Vec<String> = (1..=3).map(|id| c.url(id, "")).collect();
    let targets = targets.join(",");
    let cycle = pause + Duration::from_millis(1000);
    let duration = 3.0 + cycle.as_secs_f64() * times as f64;
    let load = tokio::process::Command::new(binary())
        .args(["load", "--targets", &targets])
        .args(["--users", "30", "--rate", "300", "--duration"])
        .arg(format!("{duration:.1}"))
        .args(["--settle", "2", "--seed", "18"])
        // A user signs in on one revoke tick and revokes on a later one.
        .args(["--mix", "inc=35,read=35,login=5,logout=5,revoke=20"])
        .arg("--out")
        .arg(&history)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sessionraft load");

    let faults = pause_nodes(&c, times, |leader| {
        ((1..=3).find(|id| *id != leader).expect("a follower"), pause)
    })
    .await;
    let (code, verdict) = finish_and_check(
        name,
        load,
        &dir,
        &history,
        &targets,
        &faults,
        Duration::from_secs(90),
    )
    .await;
    // The bound is the cluster's, and the workload really revoked and probed after it.
    assert_eq!(verdict.revocation.bound_from, "cluster");
    assert_eq!(verdict.revocation.stats.bound_ms, 500.0);
    assert_eq!(verdict.revocation.consistency.as_deref(), Some("session"));
    assert!(
        verdict.revocation.stats.revokes >= 20,
        "too few revokes: {:?}",
        verdict.revocation
    );
    assert!(
        verdict.revocation.stats.probes_after_bound >= 100,
        "too few probes after the bound: {:?}",
        verdict.revocation
    );
    (code, verdict)
}

/// Followers skipping the freshness check (the planted bug) serve a session revoked while they
/// were paused to the probes queued on them when they resume, past the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_freshness_bug_serves_revoked_sessions_and_fails_the_check() {
    let (code, verdict) =
        revocation_scenario("planted_freshness", true, Duration::from_millis(1500), 6).await;
    let served = verdict
        .violations_by_kind
        .get("served_after_revoke")
        .copied()
        .unwrap_or(0);
    assert_eq!(code, 1, "check must fail: {:?}", verdict.violations_by_kind);
    assert!(
        served >= 1,
        "expected served_after_revoke, got {:?}",
        verdict.violations_by_kind
    );
    let v = verdict
        .violations
        .iter()
        .find(|v| v.kind == ViolationKind::ServedAfterRevoke)
        .expect("a served_after_revoke");
    assert_eq!(
        v.ops.iter().map(|o| o.op).collect::<Vec<_>>(),
        vec![OpKind::Revoke, OpKind::Probe]
    );
    assert!(v.ops[1].invoke_ms > v.ops[0].complete_ms + 500.0);
    // The stale answers are the paused node's doing, not a divergence of the logs.
    let convergence = verdict.convergence.expect("convergence checked");
    assert!(convergence.converged, "{convergence:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_cluster_honours_revocations_in_the_same_scenario() {
    let (code, verdict) =
        revocation_scenario("safe_revocation", false, Duration::from_millis(1500), 6).await;
    assert_eq!(
        code,
        0,
        "violations without the planted bug: {:#?}",
        verdict.violations.iter().take(5).collect::<Vec<_>>()
    );
}

/// Established TCP connections as (local IP, remote IP, remote port), from /proc/net/tcp.
fn tcp_connections() -> Vec<(Ipv4Addr, Ipv4Addr, u16)> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let addr = |s: &str| -> Option<(Ipv4Addr, u16)> {
        let (ip, port) = s.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        Some((
            Ipv4Addr::from(ip.to_le_bytes()),
            u16::from_str_radix(port, 16).ok()?,
        ))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 || f[3] != "01" {
                return None;
            }
            let (local, _) = addr(f[1])?;
            let (remote, port) = addr(f[2])?;
            Some((local, remote, port))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_connections_leave_from_the_node_address() {
    let hosts: Vec<String> = (11..=13).map(|i| format!("127.0.0.{i}")).collect();
    let c = TestCluster::start_on_hosts(&hosts);
    c.wait_ready(READY).await;
    // Sessions work through every node (a reqwest jar is per host: each user stays on one node;
    // writes through followers reach the leader over peer connections).
    for id in 1..=3 {
        let u = user();
        for n in 1..=3 {
            assert_eq!(increment(&u, &c.url(id, "/api/counter")).await.1, Some(n));
        }
        assert_eq!(read(&u, &c.url(id, "/api/counter")).await, (200, Some(3)));
    }
    // Every node talks to every other from its own address (Raft RPC, forwarding, the
    // dashboard's status polls); connections come and go, so look for a few seconds.
    let ip = |i: usize| hosts[i].parse::<Ipv4Addr>().expect("ip");
    let pairs: Vec<(usize, usize)> = (0..3)
        .flat_map(|i| (0..3).filter(move |j| *j != i).map(move |j| (i, j)))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < pairs.len() && std::time::Instant::now() < deadline {
        let conns = tcp_connections();
        for (i, j) in &pairs {
            if conns
                .iter()
                .any(|(l, r, p)| *l == ip(*i) && *r == ip(*j) && *p == c.ports[*j])
            {
                seen.insert((*i, *j));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing: Vec<String> = pairs
        .iter()
        .filter(|p| !seen.contains(p))
        .map(|(i, j)| format!("{} -> {}:{}", hosts[*i], hosts[*j], c.ports[*j]))
        .collect();
    assert!(
        missing.is_empty(),
        "no peer connection from the node's own address: {missing:?}"
    );
}

//! The checker's pure tests: synthetic histories ([`super::samples`]), each with one planted
//! anomaly, give exactly the expected violations, a clean one full of unknown outcomes gives
//! none; per-fault windows, elections and held-up requests come out exactly. The same checks on
//! real clusters and through `sessionraft check` are in `tests/it/chaos_checker.rs`.

use super::check::{check_history, check_revocations, Violation, ViolationKind};
use super::fault_impact::{FaultImpact, LongRequests};
use super::faults::Fault;
use super::history::{OpKind, OpRecord, Outcome};
use super::report::{render_svg, summarize, FaultWindows};
use super::samples::{disturbed_history, disturbed_terms, ok, op, probe};
use super::terms::{Election, TermTimeline};

use OpKind::{FinalRead, Inc, Login, Read};
/// A violation reduced to its kind and the (op, value) of the operations proving it.
type Shape = (ViolationKind, Vec<(OpKind, Option<i64>)>);

fn shape(violations: &[Violation]) -> Vec<Shape> {
    violations
        .iter()
        .map(|v| (v.kind, v.ops.iter().map(|o| (o.op, o.value)).collect()))
        .collect()
}

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

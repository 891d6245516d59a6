//! The chaos checker (`sessionraft check`) and load driver (`sessionraft load`), as processes.
//! (The checker's pure tests — synthetic histories each with one planted anomaly, a clean one
//! full of unknown outcomes, per-fault windows, elections and held-up requests — are unit tests
//! beside their code: `node/src/chaos/tests.rs`.)
//! - `sessionraft check` exits 2 on unreadable input, 0 on a clean history, judges revocations
//!   against the bound given (or 500 ms), and reports each fault with and without `--terms`;
//! - for real: a 3-node cluster with the planted stale-read bug
//!   (`SESSIONRAFT_UNSAFE_SKIP_READ_BARRIER=1`) under load while a follower is repeatedly
//!   SIGSTOPped fails the check; the same scenario without the bug passes, and so does one
//!   where the leader is paused past an election (lease reads must not outlive it);
//! - revocations, for real: the revocation workload against a 3-node cluster with the planted
//!   freshness bug (`SESSIONRAFT_UNSAFE_SKIP_FRESHNESS=1`) and a follower SIGSTOPped across
//!   revokes fails the check, and passes without the bug;
//! - peer connections leave from the node's own address (127.0.0.11 → 127.0.0.12), so chaos
//!   scripts can cut links with address-matching firewall rules.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{
    binary, increment, read, signal, user, ClusterOptions, Paused, TestCluster, Tuning,
};
use sessionraft_node::chaos::check::ViolationKind;
use sessionraft_node::chaos::history::{OpKind, Outcome};
use sessionraft_node::chaos::report::Summary;
use sessionraft_node::chaos::samples::{disturbed_history, disturbed_terms, ok, op, probe};
use sessionraft_node::chaos::verdict::Verdict;

use OpKind::{FinalRead, Inc, Login};

const READY: Duration = Duration::from_secs(30);

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

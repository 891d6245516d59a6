//! The chaos suite, for real: `scripts/chaos.sh` starts a fresh 3-node cluster behind HAProxy,
//! loads it with `sessionraft load`, injects a seeded schedule of real faults (SIGKILL, SIGSTOP,
//! iptables partitions, libfaketime, a full tmpfs, a wiped data dir, a rolling restart), heals,
//! and runs `sessionraft check` on everything the clients saw. Any lost acknowledged write,
//! stale read, vanished session or divergence fails a test.
//!
//! - `mixed` twice: with `[raft] read_consistency = "session"` (token reads from the followers'
//!   replicas) and with `"linearizable"`.
//! - the leader's faults (`partition-leader`, `pause-leader`, 30 s each, the load through HAProxy
//!   only: `--via lb`): every fault's window (the longest time without a successful operation
//!   while some waited, from its start to 3 s after its end; `summary.json`'s
//!   `faults[].window_ms`) is at most 2 s.
//! - a follower's faults (`partition-minority`, `pause-follower`, 25 s each, `--via lb`): the
//!   cluster's term is the same after each fault as before it — a returning follower deposes
//!   nobody (PreVote) — and no window exceeds 1 s.
//! - across hosts (`--on hosts`, `scripts/hosts.sh`): `kill-leader` on a TLS cluster
//!   (`CHAOS_TLS=1`: the nodes, HAProxy, the load and the checker over TLS) and
//!   `partition-leader` (the leader's link cut), 25 s each, windows at most 2 s.
//!
//! Needs root (iptables, tmpfs mounts), as CI runs. chaos.sh allows one run at a time (the runs
//! share the nodes' loopback addresses), so the tests take turns ([`super::TURN`], with the other solo tests). Each report
//! stays in `target/chaos/ci-<scenario>-…/` (history, terms, verdict, summary, report.svg).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use crate::common;

/// A finished `scripts/chaos.sh` run.
struct ChaosRun {
    scenario: String,
    status: ExitStatus,
    out: PathBuf,
    /// `check/verdict.json` (Null when the checker wrote none).
    verdict: serde_json::Value,
    /// `check/summary.json` (Null when the checker wrote none).
    summary: serde_json::Value,
}

impl ChaosRun {
    fn report(&self) -> String {
        format!("report in {}", self.out.display())
    }

    /// Exit 0 (no violation, recovered from every fault), verdict pass, the load ran.
    fn assert_passed(&self) {
        assert!(
            self.status.success(),
            "chaos.sh {} exited {} (1 = violations, 3 = cluster did not recover); verdict: {}; {}",
            self.scenario,
            self.status,
            self.verdict,
            self.report()
        );
        assert_eq!(self.verdict["verdict"], "pass", "{}", self.verdict);
        assert_eq!(
            self.verdict["convergence"]["converged"], true,
            "{}",
            self.verdict
        );
        assert!(
            self.summary["ops"]["ok"].as_u64().unwrap_or(0) > 100,
            "the load ran: {}",
            self.summary
        );
        assert!(self.out.join("check/report.svg").exists());
    }

    /// The entries of `summary.json`'s `faults`, at least one.
    fn faults(&self) -> &[serde_json::Value] {
        let faults = self.summary["faults"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        assert!(
            !faults.is_empty(),
            "{}: no fault injected; {}",
            self.scenario,
            self.report()
        );
        faults
    }

    /// Print each fault's figures (window, elections, terms, long requests).
    fn print_faults(&self) {
        println!("chaos {} ({}):", self.scenario, self.report());
        for f in self.summary["faults"].as_array().into_iter().flatten() {
            println!(
                "  {} node {}: window {} ms, elections {}, term {} -> {}, long requests {}",
                f["name"],
                f["node"],
                f["window_ms"],
                f["elections"],
                f["term_before"],
                f["term_after"],
                f["long_requests"]
            );
        }
    }
}

fn assert_root() {
    assert!(
        std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))),
        "the chaos tests need root (iptables partitions, tmpfs for disk-full); CI runs as root"
    );
}

/// `scripts/chaos.sh SCENARIO ARGS --seed SEED --out …` with this build's binary and `env`,
/// waiting for its turn; the run's verdict and summary.
fn chaos_run(scenario: &str, args: &[&str], seed: &str, env: &[(&str, &str)]) -> ChaosRun {
    assert_root();
    let _turn = super::TURN.blocking_lock();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Next to the test binary's target dir (CARGO_TARGET_DIR may be a cache outside the clone).
    let target = common::binary()
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("target dir");
    let tag: String = env.iter().map(|(_, v)| format!("-{v}")).collect();
    let out = target.join(format!(
        "chaos/ci-{scenario}{tag}-{seed}-{}",
        std::process::id()
    ));
    let status = Command::new(root.join("scripts/chaos.sh"))
        .arg(scenario)
        .args(args)
        .args(["--seed", seed])
        .arg("--out")
        .arg(&out)
        .env("SESSIONRAFT_BIN", common::binary())
        .envs(env.iter().copied())
        .status()
        .expect("run scripts/chaos.sh");
    let json = |file: &str| {
        std::fs::read_to_string(out.join("check").join(file))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null)
    };
    ChaosRun {
        scenario: scenario.to_owned(),
        status,
        verdict: json("verdict.json"),
        summary: json("summary.json"),
        out,
    }
}

/// Both read modes, one after the other.
#[test]
fn chaos_mixed_schedule_loses_no_acknowledged_write_in_both_read_modes() {
    mixed_run("session");
    mixed_run("linearizable");
}

/// One seeded `scripts/chaos.sh mixed` run with `[raft] read_consistency = mode`.
fn mixed_run(mode: &str) {
    let seed = std::env::var("CHAOS_SEED").unwrap_or_else(|_| "20261126".to_owned());
    let run = chaos_run(
        "mixed",
        &["--duration", "75", "--rate", "40", "--users", "10"],
        &seed,
        &[("CHAOS_READ_CONSISTENCY", mode)],
    );
    println!("chaos summary ({mode} reads): {}", run.summary);
    run.assert_passed();
    let config = std::fs::read_to_string(run.out.join("config.toml")).expect("config.toml");
    assert!(
        config.contains(&format!("read_consistency = \"{mode}\"")),
        "the run's cluster used {mode} reads:\n{config}"
    );
    let faults = std::fs::read_to_string(run.out.join("faults.jsonl")).expect("faults.jsonl");
    assert!(
        faults.lines().count() >= 2,
        "a mixed run injects several faults: {faults}"
    );
}

/// The longest a fault of the leader may leave the load without a success. Noise-proof, not the
/// target (about 1 s): 2–3 s before leader failover was tightened.
const MAX_LEADER_FAULT_WINDOW_MS: f64 = 2000.0;

/// A partitioned or paused leader is replaced quickly: no fault's window exceeds 2 s.
#[test]
fn chaos_partitioned_leader_leaves_the_load_without_success_for_at_most_2s() {
    leader_fault_windows_within_bound("partition-leader");
}

/// A paused leader (SIGSTOP for 3-7 s): the same bound. Before PreVote, the default timings in
/// chaos.sh and HAProxy's 250 ms checks this was 3.2-3.5 s.
#[test]
fn chaos_paused_leader_leaves_the_load_without_success_for_at_most_2s() {
    leader_fault_windows_within_bound("pause-leader");
}

/// One seeded 30 s run of `scenario`: the checker passes and every fault's window is at most
/// [`MAX_LEADER_FAULT_WINDOW_MS`].
fn leader_fault_windows_within_bound(scenario: &str) {
    let run = chaos_run(
        scenario,
        &["--duration", "30", "--rate", "50", "--via", "lb"],
        "20261205",
        &[],
    );
    run.print_faults();
    run.assert_passed();
    let too_long: Vec<String> = run
        .faults()
        .iter()
        .filter(|f| f["window_ms"].as_f64().expect("window_ms") > MAX_LEADER_FAULT_WINDOW_MS)
        .map(|f| format!("{scenario} ({}): {f}", run.report()))
        .collect();
    assert!(
        too_long.is_empty(),
        "faults with a window over {MAX_LEADER_FAULT_WINDOW_MS} ms:\n{}",
        too_long.join("\n")
    );
}

/// Across hosts (`--on hosts`: a network namespace per node, started as its Kubernetes pod;
/// HAProxy in its own namespace): the leader SIGKILLed on a TLS cluster (`CHAOS_TLS=1`: `[tls]`
/// with certificates by host name, HAProxy HTTPS re-encrypting to the nodes, the load and the
/// checker over https trusting the CA alone), then the leader's link cut (its switch port down,
/// not iptables) without TLS. Same checker; every fault's window at most
/// [`MAX_LEADER_FAULT_WINDOW_MS`].
#[test]
fn chaos_across_hosts_killed_or_cut_off_leader_leaves_the_load_without_success_for_at_most_2s() {
    let args = [
        "--duration",
        "25",
        "--rate",
        "50",
        "--via",
        "lb",
        "--on",
        "hosts",
    ];
    for (scenario, tls) in [("kill-leader", true), ("partition-leader", false)] {
        let env: &[(&str, &str)] = if tls { &[("CHAOS_TLS", "1")] } else { &[] };
        let run = chaos_run(scenario, &args, "20261207", env);
        run.print_faults();
        run.assert_passed();
        assert!(
            run.out.join("hosts/state.down.json").is_file(),
            "{scenario} ran on hosts and took them down: {}",
            run.report()
        );
        if tls {
            let read = |p: &str| std::fs::read_to_string(run.out.join(p)).unwrap_or_default();
            let (config, haproxy) = (read("hosts/cluster.toml"), read("hosts/lb/haproxy.cfg"));
            assert!(
                config.contains("[tls]"),
                "the hosts' config has [tls]: {config}"
            );
            assert!(
                haproxy.contains(" ssl crt ") && haproxy.contains("verify required ca-file"),
                "HAProxy serves HTTPS and verifies the nodes: {haproxy}"
            );
            // every operation of the history went to an https:// target
            let history = read("history.jsonl");
            let ops = history.lines().count();
            let https = history
                .lines()
                .filter(|l| l.contains("\"target\":\"https://"))
                .count();
            assert!(
                ops > 0 && https == ops,
                "{https} of {ops} operations over https"
            );
        }
        let too_long: Vec<String> = run
            .faults()
            .iter()
            .filter(|f| f["window_ms"].as_f64().expect("window_ms") > MAX_LEADER_FAULT_WINDOW_MS)
            .map(|f| format!("{scenario} on hosts ({}): {f}", run.report()))
            .collect();
        assert!(
            too_long.is_empty(),
            "faults with a window over {MAX_LEADER_FAULT_WINDOW_MS} ms:\n{}",
            too_long.join("\n")
        );
    }
}

/// The longest a follower's fault may leave the load (through HAProxy) without a success: the
/// target is a heartbeat's worth of retries (~100 ms; 38-64 ms measured on a quiet machine).
/// Noise-proof: with one follower out, a single slow fsync on the other one holds every commit
/// (0.27 and 0.47 s seen in a CI-like run), while before PreVote a returning follower's election
/// cost 1.1 s and more.
const MAX_FOLLOWER_FAULT_WINDOW_MS: f64 = 1000.0;

/// A follower cut off or paused comes back without raising the cluster's term: the leader
/// stays (PreVote). Exact: `term_before == term_after` for every fault. And the load through
/// HAProxy barely notices: no window over [`MAX_FOLLOWER_FAULT_WINDOW_MS`].
#[test]
fn chaos_follower_faults_leave_the_term_unchanged() {
    let mut changed = Vec::new();
    let mut too_long = Vec::new();
    for scenario in ["partition-minority", "pause-follower"] {
        let run = chaos_run(
            scenario,
            &["--duration", "25", "--rate", "50", "--via", "lb"],
            "20261205",
            &[],
        );
        run.print_faults();
        run.assert_passed();
        for f in run.faults() {
            let before = f["term_before"].as_u64();
            let after = f["term_after"].as_u64();
            assert!(
                before.is_some() && after.is_some(),
                "terms were sampled around each fault: {f}; {}",
                run.report()
            );
            if before != after {
                changed.push(format!("{} ({}): {f}", scenario, run.report()));
            }
            if f["window_ms"].as_f64().expect("window_ms") > MAX_FOLLOWER_FAULT_WINDOW_MS {
                too_long.push(format!("{} ({}): {f}", scenario, run.report()));
            }
        }
    }
    assert!(
        changed.is_empty(),
        "a follower's fault changed the cluster's term:\n{}",
        changed.join("\n")
    );
    assert!(
        too_long.is_empty(),
        "a follower's fault left the load without a success for over {MAX_FOLLOWER_FAULT_WINDOW_MS} ms:\n{}",
        too_long.join("\n")
    );
}

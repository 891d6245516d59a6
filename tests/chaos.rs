//! The chaos suite, for real, once per test run: `scripts/chaos.sh mixed` starts a fresh 3-node
//! cluster behind HAProxy, loads it with `sessionraft load`, injects a seeded schedule of real
//! faults (SIGKILL, SIGSTOP, iptables partitions, libfaketime, a full tmpfs, a wiped data dir,
//! a rolling restart), heals, and runs `sessionraft check` on everything the clients saw. Any
//! lost acknowledged write, stale read, vanished session or divergence fails the test.
//!
//! It runs twice: with `[raft] read_consistency = "session"` (token reads from the followers'
//! replicas) and with `"linearizable"`.
//!
//! Needs root (iptables, tmpfs mounts), as CI runs. The report stays in
//! `target/chaos/ci-mixed-<seed>/` (history, verdict, summary, report.svg).

use std::path::Path;
use std::process::Command;

mod common;

/// Both read modes, one after the other (chaos runs share the nodes' loopback addresses and
/// chaos.sh refuses a second run while one holds its lock).
#[test]
fn chaos_mixed_schedule_loses_no_acknowledged_write_in_both_read_modes() {
    mixed_run("session");
    mixed_run("linearizable");
}

/// One seeded `scripts/chaos.sh mixed` run with `[raft] read_consistency = mode`.
fn mixed_run(mode: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))),
        "the chaos test needs root (iptables partitions, tmpfs for disk-full); CI runs as root"
    );
    let seed = std::env::var("CHAOS_SEED").unwrap_or_else(|_| "20261126".to_owned());
    // Next to the test binary's target dir (CARGO_TARGET_DIR may be a cache outside the clone).
    let target = common::binary()
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("target dir");
    let out = target.join(format!(
        "chaos/ci-mixed-{mode}-{seed}-{}",
        std::process::id()
    ));
    let status = Command::new(root.join("scripts/chaos.sh"))
        .args(["mixed", "--duration", "75", "--rate", "40", "--users", "10"])
        .args(["--seed", &seed])
        .arg("--out")
        .arg(&out)
        .env("SESSIONRAFT_BIN", common::binary())
        .env("CHAOS_READ_CONSISTENCY", mode)
        .status()
        .expect("run scripts/chaos.sh");
    let verdict = std::fs::read_to_string(out.join("check/verdict.json")).unwrap_or_default();
    assert!(
        status.success(),
        "chaos.sh mixed exited {status} (1 = violations, 3 = cluster did not recover); verdict: {verdict}; report in {}",
        out.display()
    );
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("check/summary.json")).expect("summary.json"),
    )
    .expect("summary is JSON");
    println!("chaos summary ({mode} reads): {summary}");
    let config = std::fs::read_to_string(out.join("config.toml")).expect("config.toml");
    assert!(
        config.contains(&format!("read_consistency = \"{mode}\"")),
        "the run's cluster used {mode} reads:\n{config}"
    );
    assert!(
        summary["ops"]["ok"].as_u64().unwrap_or(0) > 100,
        "the load ran: {summary}"
    );
    let verdict: serde_json::Value = serde_json::from_str(&verdict).expect("verdict is JSON");
    assert_eq!(verdict["verdict"], "pass", "{verdict}");
    assert_eq!(verdict["convergence"]["converged"], true, "{verdict}");
    let faults = std::fs::read_to_string(out.join("faults.jsonl")).expect("faults.jsonl");
    assert!(
        faults.lines().count() >= 2,
        "a mixed run injects several faults: {faults}"
    );
    assert!(out.join("check/report.svg").exists());
}

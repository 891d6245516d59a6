//! `scripts/bench.sh --compare`, for real and small: two builds (here the same binary twice) in
//! one alternating pair of short cells, each on a fresh 3-node cluster started and stopped by the
//! script. The Markdown it writes has a row per cell with both throughputs, the ratio B ÷ A and
//! the median; afterwards no node of the run is left running and their data dirs are gone.

use std::path::Path;
use std::process::Command;

use crate::common;

#[test]
fn compare_runs_both_builds_in_pairs_and_reports_the_ratio() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = common::binary();
    let dir = tempfile::tempdir().expect("temp dir");
    let out_md = dir.path().join("compare.md");
    let out = Command::new(root.join("scripts/bench.sh"))
        .args(["--compare"])
        .arg(&bin)
        .args(["--pairs", "1", "--workloads", "write", "--connections", "4"])
        .args(["--duration", "2", "--warmup", "1", "--out"])
        .arg(&out_md)
        .env("SESSIONRAFT_BIN", &bin)
        .output()
        .expect("run scripts/bench.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench.sh --compare: {stderr}");

    let md = std::fs::read_to_string(&out_md).expect("the Markdown it wrote");
    let row = md
        .lines()
        .find(|l| l.starts_with("| write | 4 |"))
        .unwrap_or_else(|| panic!("no row for write/4:\n{md}"));
    // | write | 4 | A | B | B ÷ A per pair | median | p50 A → B |
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let number = |s: &str| s.replace(',', "").parse::<f64>().ok();
    let a = number(cells[3]).unwrap_or_else(|| panic!("A throughput in {row}"));
    let b = number(cells[4]).unwrap_or_else(|| panic!("B throughput in {row}"));
    assert!(a > 0.0 && b > 0.0, "{row}");
    let ratio = number(cells[5]).unwrap_or_else(|| panic!("ratio in {row}"));
    assert!(
        (ratio - b / a).abs() < 0.01,
        "ratio {ratio} is not B/A in {row}"
    );
    assert_eq!(
        cells[6],
        format!("{ratio:.2}×"),
        "one pair: the median is it"
    );
    assert!(!md.contains("Failed cells"), "{md}");
    // printed as well
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(row),
        "stdout lacks the row"
    );

    // Both clusters stopped (by their pid files) and their data removed.
    let printed = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    let run_dir = printed
        .lines()
        .find_map(|l| l.split("A/B run ").nth(1))
        .and_then(|rest| rest.split(':').next())
        .map(Path::new)
        .unwrap_or_else(|| panic!("no run directory in: {printed}"));
    for side in ["A", "B"] {
        let cell = run_dir.join(format!("ab-write-4-1-{side}"));
        assert!(cell.join("ops.log").exists(), "{}", cell.display());
        assert!(
            !cell.join("data").exists(),
            "data left in {}",
            cell.display()
        );
        for id in 1..=3 {
            let pid_file = cell.join(format!("run/node{id}.pid"));
            if let Ok(pid) = std::fs::read_to_string(&pid_file) {
                let alive = Path::new(&format!("/proc/{}", pid.trim())).exists()
                    && std::fs::read(format!("/proc/{}/cmdline", pid.trim()))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("serve"));
                assert!(!alive, "node {id} of side {side} still runs (pid {pid})");
            }
        }
    }
}

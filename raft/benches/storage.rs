//! Storage benchmark of sessionraft-raft (a bench binary, not a timed test).
//!
//! `cargo bench -p sessionraft-raft --bench storage [-- --sessions N --seconds S]`
//!
//! Reports, side by side in one run:
//! - log append with fsync: entries/s and sessions/s when each entry carries a batch of 1, 16 or
//!   256 session writes (group commit: one entry, one fsync, many sessions);
//! - state machine apply: sessions/s;
//! - snapshot build and install time for N sessions (default 1,000,000).

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use sessionraft_raft::types::Entry;
use sessionraft_raft::{Command, StorageOptions};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

fn create(i: u64) -> Command {
    let mut state = BTreeMap::new();
    state.insert("counter".to_string(), i.to_string());
    state.insert("user".to_string(), format!("user{}", i % 1000));
    Command::Create {
        key: format!("{:032x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        state,
        user: Some(format!("user{}", i % 1000)),
        now_ms: 1,
        expires_at_ms: 86_400_000,
    }
}

fn entry(index: u64, batch: u64, first: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Command::Batch((first..first + batch).map(create).collect())),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it: then
    // only a quick smoke run proves the benchmark still works.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let sessions = arg("--sessions", if smoke { 20_000 } else { 1_000_000 });
    let seconds = arg("--seconds", if smoke { 0 } else { 3 });
    let opts = StorageOptions::default();
    println!("# sessionraft-raft storage benchmark");
    println!("sessions for snapshot: {sessions}, seconds per append run: {seconds}\n");

    println!("| append: sessions per entry | entries/s (fsync each) | sessions/s |");
    println!("|---:|---:|---:|");
    for batch in [1u64, 16, 256] {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let (log, _sm) = sessionraft_raft::open(dir.path(), &opts).expect("open");
        let start = Instant::now();
        let mut index = 1;
        while index == 1 || start.elapsed() < Duration::from_secs(seconds) {
            log.write_entries_durably([entry(index, batch, index * batch)])
                .expect("append");
            index += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        let entries = (index - 1) as f64;
        println!(
            "| {batch} | {:.0} | {:.0} |",
            entries / secs,
            entries * batch as f64 / secs
        );
    }

    let dir = tempfile::TempDir::new().expect("temp dir");
    let (_log, mut sm) = sessionraft_raft::open(dir.path(), &opts).expect("open");
    let per_entry = 1_000u64;
    let start = Instant::now();
    let mut index = 1;
    let mut written = 0;
    while written < sessions {
        let n = per_entry.min(sessions - written);
        // 10 entries per apply call, as openraft hands committed entries over in runs
        let entries: Vec<Entry> = (0..10)
            .map(|j| entry(index + j, n, written + j * n))
            .collect();
        sm.apply(entries).await.expect("apply");
        index += 10;
        written += 10 * n;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "\nstate machine apply: {written} sessions in {secs:.2} s = {:.0} sessions/s",
        written as f64 / secs
    );

    let start = Instant::now();
    let snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build snapshot");
    let build = start.elapsed();
    let mut file = snap.snapshot.into_std().await;
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("read snapshot");
        if n == 0 {
            break;
        }
        bytes += n as u64;
    }
    let dir2 = tempfile::TempDir::new().expect("temp dir");
    let (_log2, mut follower) = sessionraft_raft::open(dir2.path(), &opts).expect("open");
    let current = sm
        .get_current_snapshot()
        .await
        .expect("current")
        .expect("snapshot exists");
    let start = Instant::now();
    let mut recv = follower.begin_receiving_snapshot().await.expect("receive");
    *recv = *current.snapshot;
    follower
        .install_snapshot(&current.meta, recv)
        .await
        .expect("install");
    let install = start.elapsed();
    println!(
        "snapshot of {written} sessions ({:.1} MiB): build {:.2} s, install {:.2} s",
        bytes as f64 / (1 << 20) as f64,
        build.as_secs_f64(),
        install.as_secs_f64()
    );
}

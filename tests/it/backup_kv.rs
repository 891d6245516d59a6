//! Backup and restore of the Redis-protocol keyspace, for real: keys written through a 3-node
//! cluster's RESP doors (text and binary keys, with and without expiry) and a session written
//! through the HTTP API go into `sessionraft backup`; a fresh cluster holding one key refuses
//! `sessionraft restore` (the keyspace counts as data), takes it with `--force`; afterwards
//! every key reads back through every node's door (values, expiries), `/cluster/digest` equals
//! the old cluster's on every node, a second backup has the same content checksum and the
//! session's cookie finds its counter.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::{binary, increment, read, resp_once, user, TestCluster, Tuning};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// A 3-node cluster whose nodes also serve RESP; returns it and the doors' ports.
async fn cluster_with_doors() -> (TestCluster, Vec<u16>) {
    let (cluster, doors) = TestCluster::start_with_doors(3, Tuning::default(), "");
    cluster.wait_ready(WAIT).await;
    (cluster, doors)
}

/// [`resp_once`], retried while the cluster answers `-TRYAGAIN` or the door is not up yet.
async fn resp_ok(port: u16, args: &[&[u8]]) -> Vec<u8> {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = resp_once(port, args).await;
        match &r {
            Ok(b) if !b.starts_with(b"-TRYAGAIN") && !b.starts_with(b"-CLUSTERDOWN") => {
                return b.clone()
            }
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "{:?} on door {port}: {r:?}",
                    args.iter()
                        .map(|a| String::from_utf8_lossy(a))
                        .collect::<Vec<_>>()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn bulk(value: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", value.len()).into_bytes();
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    out
}

fn cli(args: &[&str], config: &Path) -> Output {
    std::process::Command::new(binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .env("SESSIONRAFT_LOG", "warn")
        .output()
        .expect("run sessionraft")
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The keys written: (key, value, expires?) — every fifth binary, every third with a 10-minute
/// expiry.
fn keys() -> Vec<(Vec<u8>, Vec<u8>, bool)> {
    (0..30u8)
        .map(|i| {
            let key = if i % 5 == 0 {
                vec![0, 0xff, b' ', b'\r', b'\n', i]
            } else {
                format!("user:{i}:name").into_bytes()
            };
            let value = if i % 4 == 0 {
                vec![i; 3000]
            } else {
                format!("value {i}").into_bytes()
            };
            (key, value, i % 3 == 0)
        })
        .collect()
}

/// Wait until node `id`'s digest equals `want` (its applied index may still move).
async fn wait_digest(c: &TestCluster, id: u64, want: &Value) {
    let deadline = Instant::now() + WAIT;
    loop {
        let d = c.digest(id).await;
        if d["digest"] == want["digest"] && d["sessions"] == want["sessions"] {
            return;
        }
        assert!(Instant::now() < deadline, "node {id}: digest {d} != {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_carry_the_keyspace() {
    // 1. keys through the doors (spread over the nodes), one session through the HTTP API
    let (a, a_doors) = cluster_with_doors().await;
    let keys = keys();
    for (i, (key, value, expires)) in keys.iter().enumerate() {
        let door = a_doors[i % 3];
        let mut args: Vec<&[u8]> = vec![b"SET", key, value];
        if *expires {
            args.extend_from_slice(&[b"PX", b"600000"]);
        }
        assert_eq!(resp_ok(door, &args).await, b"+OK\r\n", "SET {key:?}");
    }
    let u = user();
    for n in 1..=2 {
        assert_eq!(
            increment(&u, &a.url(1, "/api/counter")).await.1,
            Some(n),
            "increment {n}"
        );
    }
    // 2. the backup: one session and every key
    let file = a.dir.path().join("kv.srbackup");
    let path = file.to_str().expect("path");
    let out = cli(&["backup", "--to", path], &a.config);
    assert!(out.status.success(), "backup: {}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(": 1 sessions, 30 keys,"),
        "backup: {}",
        show(&out)
    );
    let info = std::process::Command::new(binary())
        .args(["backup-info", path])
        .output()
        .expect("backup-info");
    assert!(info.status.success(), "backup-info: {}", show(&info));
    assert!(
        String::from_utf8_lossy(&info.stdout).contains(": 1 sessions, 30 keys,"),
        "backup-info: {}",
        show(&info)
    );
    // nothing writes any more: this is the state the backup holds
    let leader = a.leader(WAIT).await;
    let a_digest = a.digest(leader).await;
    assert_eq!(a_digest["sessions"], 1, "{a_digest}");
    for id in 1..=3 {
        wait_digest(&a, id, &a_digest).await;
    }
    let backup = std::fs::read(&file).expect("read the backup");
    drop(a);

    // 3. a fresh cluster holding only one key is not empty: the restore is refused
    let (b, b_doors) = cluster_with_doors().await;
    assert_eq!(
        resp_ok(b_doors[0], &[b"SET", b"pre", b"x"]).await,
        b"+OK\r\n"
    );
    let restore_file = b.dir.path().join("kv.srbackup");
    std::fs::write(&restore_file, &backup).expect("copy the backup");
    let from = restore_file.to_str().expect("path");
    let out = cli(&["restore", "--from", from], &b.config);
    assert!(!out.status.success(), "restore over a key: {}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds sessions or keys"),
        "{}",
        show(&out)
    );
    assert_eq!(resp_ok(b_doors[1], &[b"GET", b"pre"]).await, bulk(b"x"));

    // 4. with --force it restores; the extra key is then deleted
    let out = cli(&["restore", "--from", from, "--force"], &b.config);
    assert!(out.status.success(), "restore: {}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("restored 1 sessions")
            && String::from_utf8_lossy(&out.stdout).contains("and 30 keys"),
        "{}",
        show(&out)
    );
    assert_eq!(resp_ok(b_doors[2], &[b"DEL", b"pre"]).await, b":1\r\n");

    // 5. every key reads back on every node, with its expiry; the session too
    for (i, (key, value, expires)) in keys.iter().enumerate() {
        let door = b_doors[(i + 1) % 3];
        assert_eq!(
            resp_ok(door, &[b"GET", key]).await,
            bulk(value),
            "GET {key:?} on door {door}"
        );
        let pttl = resp_ok(door, &[b"PTTL", key]).await;
        let pttl: i64 = std::str::from_utf8(&pttl[1..pttl.len() - 2])
            .expect("integer reply")
            .parse()
            .expect("integer");
        if *expires {
            assert!(0 < pttl && pttl <= 600_000, "PTTL {key:?}: {pttl}");
        } else {
            assert_eq!(pttl, -1, "PTTL {key:?}");
        }
    }
    assert_eq!(
        resp_ok(b_doors[0], &[b"DBSIZE"]).await,
        b":30\r\n",
        "DBSIZE"
    );

    // 6. the same state: the same digest on every node
    for id in 1..=3 {
        wait_digest(&b, id, &a_digest).await;
    }

    // 7. a backup of the restored cluster has the same content checksum
    let again = b.dir.path().join("again.srbackup");
    let out = cli(
        &["backup", "--to", again.to_str().expect("path")],
        &b.config,
    );
    assert!(out.status.success(), "backup: {}", show(&out));
    let sha = |s: &str| {
        s.split("content sha256 ")
            .nth(1)
            .map(|x| x.trim().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        sha(&String::from_utf8_lossy(&out.stdout)),
        sha(&stdout),
        "backup -> restore -> backup: same content"
    );
    assert_eq!(
        read(&u, &b.url(2, "/api/counter")).await,
        (200, Some(2)),
        "the old cookie finds its session"
    );
}

//! Determinism (same log, same bytes) and snapshot build/install, including 100,000 sessions.

use std::io::Read;

use crate::common::{create, state, Node};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sessionraft_raft::{Command, Response};

/// A seeded random command log over a small key space, so that commands collide.
fn random_log(seed: u64, n: usize) -> Vec<Command> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut now = 1_000u64;
    (0..n)
        .map(|_| {
            now += rng.gen_range(0..20);
            let key = format!("s{}", rng.gen_range(0..200));
            let user = match rng.gen_range(0..4) {
                0 => None,
                u => Some(format!("user{u}")),
            };
            match rng.gen_range(0..9) {
                0 | 1 => Command::Create {
                    key,
                    state: state(&[("n", &now.to_string())]),
                    user,
                    now_ms: now,
                    expires_at_ms: now + rng.gen_range(1..500),
                },
                2 | 3 => Command::Update {
                    key,
                    state: state(&[("n", &now.to_string()), ("x", "y")]),
                    user,
                    expected_version: if rng.gen_bool(0.5) {
                        Some(rng.gen_range(1..4))
                    } else {
                        None
                    },
                    now_ms: now,
                    expires_at_ms: now + rng.gen_range(1..500),
                },
                4 => Command::Touch {
                    entries: (0..3)
                        .map(|_| {
                            (
                                format!("s{}", rng.gen_range(0..200)),
                                now + rng.gen_range(1..800),
                            )
                        })
                        .collect(),
                    now_ms: now,
                },
                5 => Command::Delete { key },
                6 => Command::Rename {
                    from: key,
                    to: format!("s{}", rng.gen_range(0..200)),
                    now_ms: now,
                },
                7 => Command::DeleteUser {
                    user: format!("user{}", rng.gen_range(1..4)),
                },
                _ => Command::PurgeExpired {
                    now_ms: now,
                    limit: rng.gen_range(1..50),
                },
            }
        })
        .collect()
}

async fn snapshot_bytes(
    n: &mut Node,
) -> (openraft::SnapshotMeta<u64, openraft::BasicNode>, Vec<u8>) {
    let snap =
        n.sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");
    let mut file = snap.snapshot.into_std().await;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).expect("read snapshot");
    (snap.meta, bytes)
}

#[tokio::test]
async fn same_log_gives_identical_state_and_snapshot_bytes() {
    let log = random_log(7, 5_000);
    // node a applies one entry per call; node b applies the same entries in chunks of 37, and
    // wraps some of them in batches: entry boundaries differ, state must not.
    let mut a = Node::new();
    let mut responses_a = Vec::new();
    for c in log.clone() {
        responses_a.push(a.apply1(c).await);
    }
    let mut b = Node::new();
    let mut responses_b = Vec::new();
    for chunk in log.chunks(37) {
        responses_b.extend(b.apply(chunk.to_vec()).await);
    }
    assert_eq!(responses_a, responses_b);
    assert!(responses_a.iter().any(|r| matches!(r, Response::KeyExists)));
    assert!(responses_a
        .iter()
        .any(|r| matches!(r, Response::VersionMismatch { .. })));

    let (la, ca, da) = a.sm.digest().unwrap();
    let (lb, cb, db) = b.sm.digest().unwrap();
    assert_eq!((la, ca, &da), (lb, cb, &db));
    assert!(ca > 0);

    let (ma, sa) = snapshot_bytes(&mut a).await;
    let (mb, sb) = snapshot_bytes(&mut b).await;
    assert_eq!(ma, mb);
    assert_eq!(sa, sb, "snapshot bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_round_trip_with_100k_sessions() {
    const N: usize = 100_000;
    let mut leader = Node::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(5_000) {
        let cmds = chunk
            .iter()
            .map(|i| {
                create(
                    &format!("session-{i:06}"),
                    Some(&format!("user{}", i % 100)),
                    0,
                    10_000 + (*i as u64 % 1000),
                )
            })
            .collect();
        leader.apply1(Command::Batch(cmds)).await;
    }
    let (meta, _bytes) = snapshot_bytes(&mut leader).await;
    assert_eq!(meta.last_log_id.map(|l| l.index), Some(20));

    // install on an empty node, through the same calls openraft makes
    let mut follower = Node::new();
    let current = leader
        .sm
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("snapshot");
    let mut recv = follower.sm.begin_receiving_snapshot().await.unwrap();
    {
        // stream it in like the chunked transport does
        use tokio::io::AsyncWriteExt;
        let mut src = current.snapshot.into_std().await;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = src.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            recv.write_all(&buf[..n]).await.unwrap();
        }
    }
    follower
        .sm
        .install_snapshot(&current.meta, recv)
        .await
        .unwrap();

    assert_eq!(follower.sm.applied_state().unwrap().0, meta.last_log_id);
    assert_eq!(leader.sm.digest().unwrap(), follower.sm.digest().unwrap());
    assert_eq!(follower.sm.digest().unwrap().1, N as u64);
    let s = follower
        .sm
        .get_session("session-012345", 1)
        .unwrap()
        .unwrap();
    assert_eq!(s.user.as_deref(), Some("user45"));
    // indexes were rebuilt: per-user listing and expiry purge work on the installed node
    assert_eq!(
        follower.sm.sessions_of_user("user45", 1).unwrap().len(),
        N / 100
    );
    follower.next_index = 21;
    let r = follower
        .apply1(Command::PurgeExpired {
            now_ms: 10_010,
            limit: 1_000_000,
        })
        .await;
    assert_eq!(
        r,
        Response::Count(1_100),
        "sessions expiring at 10_000..=10_010"
    );
    // the installed snapshot is the follower's current one
    let cur = follower.sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(cur.meta, meta);

    // install again over existing data (a node that fell behind): old data must be gone
    let mut lagging = Node::new();
    lagging
        .apply1(create("stale-only-here", None, 0, u64::MAX))
        .await;
    let current = leader.sm.get_current_snapshot().await.unwrap().unwrap();
    let mut recv = lagging.sm.begin_receiving_snapshot().await.unwrap();
    *recv = *current.snapshot;
    lagging
        .sm
        .install_snapshot(&current.meta, recv)
        .await
        .unwrap();
    assert!(lagging
        .sm
        .get_session("stale-only-here", 1)
        .unwrap()
        .is_none());
    assert_eq!(leader.sm.digest().unwrap(), lagging.sm.digest().unwrap());
}

#[tokio::test]
async fn corrupt_snapshot_is_refused_and_state_kept() {
    let mut leader = Node::new();
    leader
        .apply1(Command::Batch(
            (0..100)
                .map(|i| create(&format!("k{i}"), None, 0, 100))
                .collect(),
        ))
        .await;
    let (meta, mut bytes) = snapshot_bytes(&mut leader).await;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;

    let mut f = Node::new();
    f.apply1(create("mine", None, 0, 100)).await;
    let before = f.sm.digest().unwrap();
    let mut recv = f.sm.begin_receiving_snapshot().await.unwrap();
    {
        use tokio::io::AsyncWriteExt;
        recv.write_all(&bytes).await.unwrap();
    }
    let err =
        f.sm.install_snapshot(&meta, recv)
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("corrupt snapshot"), "{err}");
    assert_eq!(
        f.sm.digest().unwrap(),
        before,
        "a refused snapshot changes nothing"
    );
    assert!(f.sm.get_session("mine", 1).unwrap().is_some());
}

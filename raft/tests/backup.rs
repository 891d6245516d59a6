//! Backups: every live session from one consistent view, restored verbatim with `Import`
//! (same content checksum), and damaged or truncated files refused before anything is applied.

mod common;

use common::{create, state, Node};
use sessionraft_raft::backup;
use sessionraft_raft::{Command, Response, Session};

const NOW: u64 = 1_000;

/// A node holding 500 live sessions (some signed in, some updated) and 20 expired ones.
async fn populated() -> Node {
    let mut n = Node::new();
    let mut cmds = Vec::new();
    for i in 0..500u64 {
        let user = (i % 3 == 0).then(|| format!("user{}", i % 7));
        cmds.push(create(
            &format!("s{i:04}"),
            user.as_deref(),
            10,
            100_000 + i,
        ));
    }
    for i in 0..20u64 {
        cmds.push(create(&format!("x{i:02}"), None, 10, 500));
    }
    n.apply(cmds).await;
    for i in (0..500u64).step_by(5) {
        let r = n
            .apply1(Command::Update {
                key: format!("s{i:04}"),
                state: state(&[("counter", &i.to_string())]),
                user: Some("alice".into()),
                expected_version: None,
                now_ms: 20,
                expires_at_ms: 200_000,
            })
            .await;
        assert_eq!(r, Response::Written { version: 2 });
    }
    n
}

fn take_backup(n: &Node) -> (Vec<u8>, backup::BackupTrailer) {
    let (bytes, header, trailer) = n.sm.backup(Vec::new(), 1, NOW).unwrap();
    assert_eq!(header.created_at_ms, NOW);
    (bytes, trailer)
}

#[tokio::test]
async fn backup_restore_round_trip_keeps_every_live_session_verbatim() {
    let a = populated().await;
    let (bytes, trailer) = take_backup(&a);
    assert_eq!(trailer.count, 500, "expired sessions are not backed up");

    let mut records: Vec<(String, Session)> = Vec::new();
    let summary = backup::read(bytes.as_slice(), |k, s| {
        records.push((k, s));
        Ok(())
    })
    .unwrap();
    assert_eq!(summary.count, 500);
    assert_eq!(summary.content_sha256, trailer.content_sha256);
    assert_eq!(summary.header.node_id, 1);
    assert!(summary.header.applied_index.is_some());

    // Restore into an empty node in chunks, as the cluster does.
    let mut b = Node::new();
    assert!(b.sm.is_empty().unwrap());
    for chunk in records.chunks(64) {
        let r = b
            .apply1(Command::Import {
                sessions: chunk.to_vec(),
                now_ms: NOW,
            })
            .await;
        assert_eq!(r, Response::Count(chunk.len() as u64));
    }
    assert!(!b.sm.is_empty().unwrap());
    let (_, again) = take_backup(&b);
    assert_eq!(again, trailer, "same sessions, same content checksum");

    // Verbatim: versions, times and principals survive; the user index is rebuilt.
    let s = b.sm.get_session("s0005", NOW).unwrap().unwrap();
    assert_eq!(s.version, 2);
    assert_eq!(s.created_at_ms, 10);
    assert_eq!(s.expires_at_ms, 200_000);
    assert_eq!(s.state["counter"], "5");
    assert_eq!(
        b.sm.sessions_of_user("alice", NOW).unwrap().len(),
        a.sm.sessions_of_user("alice", NOW).unwrap().len()
    );
    assert_eq!(b.sm.sessions_of_user("alice", NOW).unwrap().len(), 100);

    // Import is idempotent: applying it again changes nothing.
    b.apply1(Command::Import {
        sessions: records[..10].to_vec(),
        now_ms: NOW,
    })
    .await;
    assert_eq!(take_backup(&b).1, trailer);
}

#[tokio::test]
async fn import_skips_expired_and_rejects_malformed_without_changes() {
    let mut n = Node::new();
    let s = |exp| Session {
        state: state(&[("k", "v")]),
        version: 3,
        created_at_ms: 1,
        expires_at_ms: exp,
        user: None,
    };
    let r = n
        .apply1(Command::Import {
            sessions: vec![("live".into(), s(5_000)), ("dead".into(), s(500))],
            now_ms: NOW,
        })
        .await;
    assert_eq!(r, Response::Count(1));
    assert!(n.sm.get_session("dead", 0).unwrap().is_none());
    let r = n
        .apply1(Command::Import {
            sessions: vec![("ok".into(), s(5_000)), (String::new(), s(5_000))],
            now_ms: NOW,
        })
        .await;
    assert!(matches!(r, Response::Rejected(_)), "{r:?}");
    assert!(n.sm.get_session("ok", NOW).unwrap().is_none());
}

#[tokio::test]
async fn damaged_or_truncated_backups_are_refused() {
    let a = populated().await;
    let (bytes, _) = take_backup(&a);
    backup::verify(bytes.as_slice()).unwrap();

    // Every single flipped byte is caught (sampled across the whole file).
    for pos in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x40;
        let e = backup::verify(bad.as_slice()).unwrap_err().to_string();
        assert!(
            e.contains("backup file") || e.contains("corrupt"),
            "{pos}: {e}"
        );
    }
    // Every truncation is caught.
    for len in (0..bytes.len()).step_by(89) {
        assert!(backup::verify(&bytes[..len]).is_err(), "truncated to {len}");
    }
    // Trailing garbage is caught.
    let mut long = bytes.clone();
    long.push(0);
    let e = backup::verify(long.as_slice()).unwrap_err().to_string();
    assert!(e.contains("trailing"), "{e}");
    // Not a backup at all.
    let e = backup::verify(&b"hello world, not a backup"[..])
        .unwrap_err()
        .to_string();
    assert!(e.contains("magic"), "{e}");
}

//! Backups: every live session and every live key of the keyspace from one consistent view,
//! restored verbatim with `Import` and `KvCommand::Import` (same content checksum, same digest,
//! a consistent expiry index), and damaged or truncated files refused before anything is applied.

use crate::common::{create, state, Node};
use sessionraft_raft::backup::{self, BackupRecord};
use sessionraft_raft::storage::kv::{
    KvCommand, KvEntry, KvResponse, SetCondition, SetExpiry, MAX_KV_VALUE_BYTES,
};
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
    let summary = backup::read(bytes.as_slice(), |r| {
        let BackupRecord::Session(k, s) = r else {
            panic!("no keyspace here: {r:?}");
        };
        records.push((k, s));
        Ok(())
    })
    .unwrap();
    assert_eq!((summary.count, summary.keys), (500, 0));
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

// ---------------------------------------------------------------------------------------------
// The Redis-protocol keyspace in backups
// ---------------------------------------------------------------------------------------------

fn kv_set(key: &[u8], value: &[u8], expiry: SetExpiry, now: u64) -> Command {
    Command::Kv(KvCommand::Set {
        key: key.to_vec(),
        value: value.to_vec(),
        condition: SetCondition::Always,
        expiry,
        now_ms: now,
    })
}

fn kv_import(entries: &[(Vec<u8>, KvEntry)]) -> Command {
    Command::Kv(KvCommand::Import(entries.to_vec()))
}

fn purge_all(now: u64) -> Vec<Command> {
    vec![
        Command::PurgeExpired {
            now_ms: now,
            limit: u32::MAX,
        },
        Command::Kv(KvCommand::Purge {
            now_ms: now,
            limit: u32::MAX,
        }),
    ]
}

/// Key `i` of the test keyspace: text and binary keys.
fn kv_key(i: u64) -> Vec<u8> {
    if i.is_multiple_of(5) {
        vec![0, 0xff, (i % 256) as u8, (i / 256) as u8, b'\r', b'\n']
    } else {
        format!("key:{i}").into_bytes()
    }
}

/// [`populated`] plus 300 keys: 100 without expiry, 150 expiring after `NOW` (one of them
/// rewritten without its expiry), 50 expired at `NOW` but not purged.
async fn populated_with_keys() -> Node {
    let mut n = populated().await;
    let mut cmds = Vec::new();
    for i in 0..300u64 {
        let expiry = match i % 6 {
            0 | 1 => SetExpiry::Clear,
            5 => SetExpiry::At(NOW - i % 100),
            _ => SetExpiry::At(NOW + 1_000 + i),
        };
        cmds.push(kv_set(
            &kv_key(i),
            format!("value {i}").as_bytes(),
            expiry,
            20,
        ));
    }
    // Rewritten: key 2's expiry moves, key 3 loses its expiry (its old index entry must go).
    cmds.push(kv_set(
        &kv_key(2),
        b"again",
        SetExpiry::At(NOW + 50_000),
        30,
    ));
    cmds.push(kv_set(&kv_key(3), b"persisted", SetExpiry::Clear, 30));
    for r in n.apply(cmds).await {
        assert!(
            matches!(r, Response::Kv(KvResponse::Set { written: true, .. })),
            "{r:?}"
        );
    }
    n
}

/// Restore every record of `bytes` into `n` in chunks of 64, as the cluster does; returns the
/// (sessions, keys) restored.
async fn restore_into(n: &mut Node, bytes: &[u8]) -> (u64, u64) {
    let mut sessions: Vec<(String, Session)> = Vec::new();
    let mut keys: Vec<(Vec<u8>, KvEntry)> = Vec::new();
    backup::read(bytes, |r| {
        match r {
            BackupRecord::Session(k, s) => {
                assert!(keys.is_empty(), "sessions come first");
                sessions.push((k, s));
            }
            BackupRecord::Kv(k, e) => keys.push((k, e)),
        }
        Ok(())
    })
    .unwrap();
    for chunk in sessions.chunks(64) {
        let r = n
            .apply1(Command::Import {
                sessions: chunk.to_vec(),
                now_ms: NOW,
            })
            .await;
        assert_eq!(r, Response::Count(chunk.len() as u64));
    }
    for chunk in keys.chunks(64) {
        let r = n.apply1(kv_import(chunk)).await;
        assert_eq!(r, Response::Kv(KvResponse::Int(chunk.len() as i64)));
    }
    (sessions.len() as u64, keys.len() as u64)
}

#[tokio::test]
async fn backup_carries_live_keys_and_restore_gives_the_same_digest() {
    let mut a = populated_with_keys().await;
    let live_keys = (0..300u64)
        .filter(|i| a.sm.kv_get(&kv_key(*i), NOW).unwrap().is_some())
        .count() as u64;
    assert_eq!(live_keys, 250, "50 keys are expired at NOW");
    assert_eq!(a.sm.kv_len().unwrap(), 300, "none purged yet");
    let (bytes, trailer) = take_backup(&a);
    assert_eq!(
        (trailer.count, trailer.keys),
        (500, 250),
        "expired sessions and keys are not backed up"
    );
    let summary = backup::verify(bytes.as_slice()).unwrap();
    assert_eq!(
        (summary.count, summary.keys, summary.format),
        (500, 250, backup::FORMAT)
    );

    // The keyspace records come in the stored (hash) order, which is SCAN's order.
    let mut in_file = Vec::new();
    backup::read(bytes.as_slice(), |r| {
        if let BackupRecord::Kv(k, _) = r {
            in_file.push(k);
        }
        Ok(())
    })
    .unwrap();
    let mut scanned = Vec::new();
    let mut cursor = 0;
    loop {
        let (page, next) = a.sm.kv_scan(cursor, 1000, NOW, |_| true).unwrap();
        scanned.extend(page.into_iter().map(|(k, _)| k));
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(in_file, scanned);

    // Restore into a fresh node: the same live state, so (once the source is purged of what
    // expired) the same digest, and a backup of it has the same content checksum.
    let mut b = Node::new();
    assert!(b.sm.is_empty().unwrap());
    assert_eq!(restore_into(&mut b, &bytes).await, (500, 250));
    assert_eq!(
        take_backup(&b).1,
        trailer,
        "same records, same content checksum"
    );
    a.apply(purge_all(NOW)).await;
    assert_eq!(a.sm.kv_len().unwrap(), 250);
    assert_eq!(a.sm.digest().unwrap().2, b.sm.digest().unwrap().2);
    for i in 0..300u64 {
        assert_eq!(
            b.sm.kv_get(&kv_key(i), NOW).unwrap(),
            a.sm.kv_get(&kv_key(i), NOW).unwrap(),
            "key {i}"
        );
    }
    assert_eq!(
        b.sm.kv_get(&kv_key(2), NOW).unwrap().unwrap().value,
        b"again"
    );
    assert_eq!(
        b.sm.kv_get(&kv_key(3), NOW).unwrap().unwrap().expires_at_ms,
        None
    );

    // The expiry index was rebuilt exactly: later, both purge the same keys.
    let later = NOW + 1_200;
    assert_eq!(
        a.sm.kv_has_expired(later).unwrap(),
        b.sm.kv_has_expired(later).unwrap()
    );
    let ra = a.apply(purge_all(later)).await;
    let rb = b.apply(purge_all(later)).await;
    assert_eq!(ra, rb);
    assert!(
        matches!(rb[1], Response::Kv(KvResponse::Int(n)) if n > 0),
        "{rb:?}"
    );
    assert_eq!(a.sm.digest().unwrap().2, b.sm.digest().unwrap().2);
    let end = NOW + 1_000_000;
    a.apply(purge_all(end)).await;
    b.apply(purge_all(end)).await;
    assert!(
        !b.sm.kv_has_expired(end).unwrap(),
        "no stale expiry index entry"
    );
    assert_eq!(a.sm.digest().unwrap().2, b.sm.digest().unwrap().2);
    assert_eq!(
        b.sm.kv_len().unwrap(),
        101,
        "only the keys without expiry are left (key 3 lost its expiry)"
    );
}

#[tokio::test]
async fn kv_import_overwrites_keys_and_their_expiry_and_rejects_oversized_entries() {
    let mut n = Node::new();
    let entry = |v: &[u8], at: Option<u64>| KvEntry {
        value: v.to_vec(),
        expires_at_ms: at,
    };
    n.apply(vec![
        kv_set(b"timed", b"old", SetExpiry::At(5_000), 10),
        kv_set(b"plain", b"old", SetExpiry::Clear, 10),
    ])
    .await;
    assert!(
        !n.sm.is_empty().unwrap(),
        "a node holding only keys is not empty"
    );
    let r = n
        .apply1(kv_import(&[
            (b"timed".to_vec(), entry(b"new", None)),
            (b"plain".to_vec(), entry(b"new", Some(7_000))),
            (b"dead".to_vec(), entry(b"gone", Some(1))),
            (Vec::new(), entry(b"empty key", None)),
        ]))
        .await;
    assert_eq!(r, Response::Kv(KvResponse::Int(4)));
    assert_eq!(
        n.sm.kv_get(b"timed", 6_000).unwrap(),
        Some(entry(b"new", None))
    );
    assert_eq!(
        n.sm.kv_get(b"plain", 6_000).unwrap(),
        Some(entry(b"new", Some(7_000)))
    );
    assert_eq!(
        n.sm.kv_get(b"", 6_000).unwrap(),
        Some(entry(b"empty key", None))
    );
    // An entry already expired is written (apply reads no clock), reads as absent, is purged.
    assert_eq!(n.sm.kv_get(b"dead", NOW).unwrap(), None);
    assert_eq!(n.sm.kv_len().unwrap(), 4);
    // "timed"'s old expiry index entry is gone: only "dead" is due at 6000, then "plain".
    let r = n
        .apply1(Command::Kv(KvCommand::Purge {
            now_ms: 6_000,
            limit: 100,
        }))
        .await;
    assert_eq!(r, Response::Kv(KvResponse::Int(1)));
    assert!(!n.sm.kv_has_expired(6_000).unwrap(), "no stale index entry");
    assert!(n.sm.kv_has_expired(7_000).unwrap());
    // Idempotent.
    let digest = n.sm.digest().unwrap().2;
    n.apply1(kv_import(&[(b"timed".to_vec(), entry(b"new", None))]))
        .await;
    assert_eq!(n.sm.digest().unwrap().2, digest);
    // Oversized: the whole command is rejected, nothing changes.
    let r = n
        .apply1(kv_import(&[
            (b"timed".to_vec(), entry(b"changed", None)),
            (
                b"big".to_vec(),
                entry(&vec![0; MAX_KV_VALUE_BYTES + 1], None),
            ),
        ]))
        .await;
    assert!(matches!(r, Response::Kv(KvResponse::Rejected(_))), "{r:?}");
    assert_eq!(n.sm.digest().unwrap().2, digest);
}

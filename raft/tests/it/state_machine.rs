//! Behaviour of the session state machine: create, version-checked update, touch, rename,
//! the per-user index through updates, deletes and expiry purges, and expiry on read.

use crate::common::{create, state, Node};
use sessionraft_raft::{Command, Response};

#[tokio::test]
async fn create_is_put_if_absent_and_expired_keys_are_replaced() {
    let mut n = Node::new();
    assert_eq!(
        n.apply1(create("a", None, 100, 200)).await,
        Response::Written { version: 1 }
    );
    assert_eq!(
        n.apply1(create("a", None, 150, 300)).await,
        Response::KeyExists
    );
    // still the original
    assert_eq!(
        n.sm.get_session("a", 150).unwrap().unwrap().expires_at_ms,
        200
    );
    // read at or after expiry: absent even though not purged
    assert!(n.sm.get_session("a", 200).unwrap().is_none());
    // an expired key can be created again; versions keep growing
    assert_eq!(
        n.apply1(create("a", None, 250, 400)).await,
        Response::Written { version: 2 }
    );
    assert_eq!(
        n.sm.get_session("a", 250).unwrap().unwrap().created_at_ms,
        250
    );
}

#[tokio::test]
async fn version_checked_update() {
    let mut n = Node::new();
    n.apply1(create("k", None, 0, 1000)).await;
    let upd = |expected, v: &str| Command::Update {
        key: "k".into(),
        state: state(&[("counter", v)]),
        user: None,
        expected_version: expected,
        now_ms: 10,
        expires_at_ms: 2000,
    };
    assert_eq!(
        n.apply1(upd(Some(1), "1")).await,
        Response::Written { version: 2 }
    );
    // a writer that read version 1 loses: lost-update protection
    assert_eq!(
        n.apply1(upd(Some(1), "stale")).await,
        Response::VersionMismatch { current: 2 }
    );
    let s = n.sm.get_session("k", 10).unwrap().unwrap();
    assert_eq!(s.state["counter"], "1");
    assert_eq!(s.version, 2);
    assert_eq!(s.created_at_ms, 0);
    assert_eq!(s.expires_at_ms, 2000);
    // unconditional update
    assert_eq!(
        n.apply1(upd(None, "2")).await,
        Response::Written { version: 3 }
    );
    // missing and expired keys are NotFound
    let missing = Command::Update {
        key: "nope".into(),
        state: state(&[]),
        user: None,
        expected_version: None,
        now_ms: 10,
        expires_at_ms: 20,
    };
    assert_eq!(n.apply1(missing).await, Response::NotFound);
    let late = Command::Update {
        key: "k".into(),
        state: state(&[]),
        user: None,
        expected_version: None,
        now_ms: 2000,
        expires_at_ms: 3000,
    };
    assert_eq!(n.apply1(late).await, Response::NotFound);
}

#[tokio::test]
async fn touch_extends_many_and_never_shortens() {
    let mut n = Node::new();
    n.apply(vec![
        create("a", None, 0, 100),
        create("b", None, 0, 100),
        create("c", None, 0, 50),
    ])
    .await;
    let r = n
        .apply1(Command::Touch {
            entries: vec![
                ("a".into(), 500),
                ("b".into(), 80),  // would shorten: ignored
                ("c".into(), 500), // expired at now=60: ignored
                ("missing".into(), 500),
            ],
            now_ms: 60,
        })
        .await;
    assert_eq!(r, Response::Count(1));
    let a = n.sm.get_session("a", 60).unwrap().unwrap();
    assert_eq!((a.expires_at_ms, a.version), (500, 1));
    assert_eq!(
        n.sm.get_session("b", 60).unwrap().unwrap().expires_at_ms,
        100
    );
    assert!(n.sm.get_session("c", 60).unwrap().is_none());
}

#[tokio::test]
async fn rename_moves_atomically() {
    let mut n = Node::new();
    n.apply(vec![
        create("old", Some("alice"), 0, 100),
        create("taken", None, 0, 100),
    ])
    .await;
    let rename = |from: &str, to: &str, now| Command::Rename {
        from: from.into(),
        to: to.into(),
        now_ms: now,
    };
    assert_eq!(
        n.apply1(rename("old", "taken", 1)).await,
        Response::KeyExists
    );
    assert_eq!(
        n.apply1(rename("missing", "x", 1)).await,
        Response::NotFound
    );
    assert!(matches!(
        n.apply1(rename("old", "old", 1)).await,
        Response::Rejected(_)
    ));
    assert_eq!(
        n.apply1(rename("old", "new", 1)).await,
        Response::Written { version: 2 }
    );
    assert!(n.sm.get_session("old", 1).unwrap().is_none());
    let s = n.sm.get_session("new", 1).unwrap().unwrap();
    assert_eq!(s.user.as_deref(), Some("alice"));
    // the user index follows the rename
    let keys: Vec<String> =
        n.sm.sessions_of_user("alice", 1)
            .unwrap()
            .into_iter()
            .map(|x| x.0)
            .collect();
    assert_eq!(keys, vec!["new".to_string()]);
    // an expired session cannot be renamed; renaming onto an expired one replaces it
    assert_eq!(
        n.apply1(rename("new", "other", 150)).await,
        Response::NotFound
    );
    n.apply1(create("fresh", None, 150, 300)).await;
    assert_eq!(
        n.apply1(rename("fresh", "taken", 150)).await,
        Response::Written { version: 2 }
    );
    assert_eq!(
        n.sm.get_session("taken", 150)
            .unwrap()
            .unwrap()
            .expires_at_ms,
        300
    );
}

#[tokio::test]
async fn user_index_stays_consistent() {
    let mut n = Node::new();
    n.apply(vec![
        create("s1", Some("alice"), 0, 1000),
        create("s2", Some("alice"), 0, 50),
        create("s3", Some("bob"), 0, 1000),
        create("s4", None, 0, 1000),
    ])
    .await;
    let users = |n: &Node, u: &str, now| {
        let mut v: Vec<String> =
            n.sm.sessions_of_user(u, now)
                .unwrap()
                .into_iter()
                .map(|x| x.0)
                .collect();
        v.sort();
        v
    };
    assert_eq!(users(&n, "alice", 10), vec!["s1", "s2"]);
    // s4 signs in as alice, s3 moves from bob to alice
    let login = |key: &str, user: Option<&str>| Command::Update {
        key: key.into(),
        state: state(&[]),
        user: user.map(String::from),
        expected_version: None,
        now_ms: 10,
        expires_at_ms: 1000,
    };
    n.apply(vec![login("s4", Some("alice")), login("s3", Some("alice"))])
        .await;
    assert_eq!(users(&n, "alice", 10), vec!["s1", "s2", "s3", "s4"]);
    assert!(users(&n, "bob", 10).is_empty());
    // sign out of s1 (user cleared), delete s4
    n.apply(vec![
        login("s1", None),
        Command::Delete { key: "s4".into() },
    ])
    .await;
    assert_eq!(users(&n, "alice", 10), vec!["s2", "s3"]);
    // expired sessions are not listed, and the purge removes them with their index entries
    assert_eq!(users(&n, "alice", 60), vec!["s3"]);
    assert_eq!(
        n.apply1(Command::PurgeExpired {
            now_ms: 60,
            limit: 100
        })
        .await,
        Response::Count(1)
    );
    assert_eq!(
        users(&n, "alice", 0),
        vec!["s3"],
        "purged s2 left the index"
    );
    // log out everywhere
    n.apply1(create("s5", Some("alice"), 60, 1000)).await;
    assert_eq!(
        n.apply1(Command::DeleteUser {
            user: "alice".into()
        })
        .await,
        Response::Count(2)
    );
    assert!(users(&n, "alice", 0).is_empty());
    assert!(
        n.sm.get_session("s1", 60).unwrap().is_some(),
        "s1 no longer belonged to alice"
    );
}

#[tokio::test]
async fn purge_respects_limit_and_batches_see_their_own_writes() {
    let mut n = Node::new();
    let creates: Vec<Command> = (0..10)
        .map(|i| create(&format!("k{i}"), Some("u"), 0, 10 + i))
        .collect();
    n.apply1(Command::Batch(creates)).await;
    assert_eq!(
        n.apply1(Command::PurgeExpired {
            now_ms: 14,
            limit: 3
        })
        .await,
        Response::Count(3)
    );
    assert_eq!(
        n.apply1(Command::PurgeExpired {
            now_ms: 14,
            limit: 100
        })
        .await,
        Response::Count(2)
    );
    assert_eq!(
        n.apply1(Command::PurgeExpired {
            now_ms: 14,
            limit: 100
        })
        .await,
        Response::Count(0)
    );
    // inside one batch: create, update, rename, then a purge and a delete-user that must see them
    let r = n
        .apply1(Command::Batch(vec![
            create("x", Some("v"), 100, 200),
            create("x", None, 100, 200),
            Command::Rename {
                from: "x".into(),
                to: "y".into(),
                now_ms: 100,
            },
            create("z", Some("v"), 100, 150),
            Command::PurgeExpired {
                now_ms: 160,
                limit: 100,
            },
            Command::DeleteUser { user: "v".into() },
        ]))
        .await;
    assert_eq!(
        r,
        Response::Batch(vec![
            Response::Written { version: 1 },
            Response::KeyExists,
            Response::Written { version: 2 },
            Response::Written { version: 1 },
            // z (expired at 150) plus the 5 older k's that expired at 15..=19
            Response::Count(6),
            Response::Count(1),
        ])
    );
    assert!(n.sm.get_session("y", 100).unwrap().is_none());
    assert!(n.sm.sessions_of_user("u", 0).unwrap().is_empty());
}

#[tokio::test]
async fn malformed_commands_are_rejected_without_effect() {
    let mut n = Node::new();
    let r = n.apply1(create("", None, 0, 10)).await;
    assert!(matches!(r, Response::Rejected(_)), "{r:?}");
    let long_user = "u".repeat(2000);
    let r = n.apply1(create("k", Some(&long_user), 0, 10)).await;
    assert!(matches!(r, Response::Rejected(_)), "{r:?}");
    assert!(n.sm.get_session("k", 0).unwrap().is_none());
    let (applied, _) = n.sm.applied_state().unwrap();
    assert_eq!(
        applied.map(|l| l.index),
        Some(2),
        "rejected commands still advance last-applied"
    );
}

#[tokio::test]
async fn cap_user_evicts_the_oldest_others_in_the_same_batch() {
    let mut n = Node::new();
    // created at 1, 2, 3 (s0 expired by 20), all alice's; s9 is bob's
    n.apply(vec![
        create("s0", Some("alice"), 0, 20),
        create("s1", Some("alice"), 1, 1000),
        create("s2", Some("alice"), 2, 1000),
        create("s3", Some("alice"), 3, 1000),
        create("s9", Some("bob"), 0, 1000),
    ])
    .await;
    let live = |n: &Node, u: &str| {
        let mut v: Vec<String> =
            n.sm.sessions_of_user(u, 30)
                .unwrap()
                .into_iter()
                .map(|x| x.0)
                .collect();
        v.sort();
        v
    };
    // s1 (the oldest) signs in again: it is kept, the next oldest others go
    let cap = |keep: &str, max: u32| Command::CapUser {
        user: "alice".into(),
        max,
        keep: keep.into(),
        now_ms: 30,
    };
    assert_eq!(n.apply1(cap("s1", 2)).await, Response::Count(1));
    assert_eq!(
        live(&n, "alice"),
        vec!["s1", "s3"],
        "s2 was the oldest other"
    );
    assert!(
        n.sm.get_session("s0", 10).unwrap().is_some(),
        "an expired session neither counts nor is evicted by the cap"
    );
    assert_eq!(
        live(&n, "bob"),
        vec!["s9"],
        "another user's sessions are untouched"
    );
    // under the cap: nothing happens; max 0 keeps only `keep`
    assert_eq!(n.apply1(cap("s3", 5)).await, Response::Count(0));
    assert_eq!(n.apply1(cap("s3", 0)).await, Response::Count(1));
    assert_eq!(live(&n, "alice"), vec!["s3"]);
    // in one batch with the write that signs in: the new session is seen by the cap
    let responses = n
        .apply(vec![Command::Batch(vec![
            create("s4", Some("alice"), 40, 1000),
            cap("s4", 1),
        ])])
        .await;
    assert_eq!(
        responses,
        vec![Response::Batch(vec![
            Response::Written { version: 1 },
            Response::Count(1)
        ])]
    );
    assert_eq!(live(&n, "alice"), vec!["s4"]);
    // a bad user name is rejected without effect
    assert!(matches!(
        n.apply1(Command::CapUser {
            user: String::new(),
            max: 0,
            keep: "s4".into(),
            now_ms: 30
        })
        .await,
        Response::Rejected(_)
    ));
    assert_eq!(live(&n, "alice"), vec!["s4"]);
}

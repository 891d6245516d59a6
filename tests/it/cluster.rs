//! A real 3-node cluster: sessions through any node, losing the leader, restarting, losing the
//! quorum, wiping a node, and a bad configuration. Real processes, real sockets, SIGKILL.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{increment, read, user, TestCluster, Tuning};

const READY: Duration = Duration::from_secs(30);

/// Scenario 1-4 on one cluster: any-node sessions, leader SIGKILL, restart, quorum loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_leader_loss_restart_and_quorum_loss() {
    let mut c = TestCluster::start(3, Tuning::default());
    c.wait_ready(READY).await;

    // 1. created through node 1, read back through nodes 2 and 3 on the very next request
    let alice = user();
    let (s, n, by) = increment(&alice, &c.url(1, "/api/counter")).await;
    assert_eq!((s, n, by), (200, Some(1), Some(1)));
    assert_eq!(
        read(&alice, &c.url(2, "/api/counter")).await,
        (200, Some(1))
    );
    assert_eq!(
        read(&alice, &c.url(3, "/api/counter")).await,
        (200, Some(1))
    );

    // 1,000 increments alternating across the three nodes end at exactly 1,000
    let bob = user();
    for i in 0..1000u64 {
        let node = i % 3 + 1;
        let (s, n, by) = increment(&bob, &c.url(node, "/api/counter")).await;
        assert_eq!(s, 200, "increment {i} on node {node}");
        assert_eq!(n, Some(i as i64 + 1), "increment {i} on node {node}");
        assert_eq!(by, Some(node));
    }
    for node in 1..=3 {
        assert_eq!(
            read(&bob, &c.url(node, "/api/counter")).await,
            (200, Some(1000))
        );
    }

    // sessions written before the kill, each with a known counter
    let users: Vec<reqwest::Client> = (0..20).map(|_| user()).collect();
    for (i, u) in users.iter().enumerate() {
        for _ in 0..=i {
            assert_eq!(
                increment(u, &c.url(i as u64 % 3 + 1, "/api/counter"))
                    .await
                    .0,
                200
            );
        }
    }

    // 2. SIGKILL the leader: within a few seconds writes and reads through the survivors succeed
    let leader = c.leader(READY).await;
    c.kill(leader);
    let survivors: Vec<u64> = (1..=3).filter(|n| *n != leader).collect();
    let killed_at = Instant::now();
    let mut ok_at = None;
    while killed_at.elapsed() < Duration::from_secs(15) {
        let (s, _, _) = increment(&alice, &c.url(survivors[0], "/api/counter")).await;
        if s == 200 {
            ok_at = Some(killed_at.elapsed());
            break;
        }
        // anything but success must be an explicit 503 (not applied) or 504 (outcome unknown),
        // never a 500
        assert!(
            s == 503 || s == 504 || s == 0,
            "unexpected status {s} during failover"
        );
    }
    let failover = ok_at.expect("no successful write through a survivor within 15 s");
    eprintln!("first write after leader kill succeeded after {failover:?}");
    assert_eq!(
        read(&alice, &c.url(survivors[1], "/api/counter")).await,
        (200, Some(2))
    );
    for (i, u) in users.iter().enumerate() {
        for node in &survivors {
            assert_eq!(
                read(u, &c.url(*node, "/api/counter")).await,
                (200, Some(i as i64 + 1)),
                "user {i} through node {node} after the leader was killed"
            );
        }
    }

    // 3. restart the killed node: it catches up and serves those sessions
    c.start_node(leader);
    c.wait_ready(READY).await;
    for (i, u) in users.iter().enumerate() {
        assert_eq!(
            read(u, &c.url(leader, "/api/counter")).await,
            (200, Some(i as i64 + 1))
        );
    }
    assert_eq!(
        read(&bob, &c.url(leader, "/api/counter")).await,
        (200, Some(1000))
    );

    // 4. kill two of three: requests get 503 (with Retry-After) within the deadline
    let leader = c.leader(READY).await;
    let others: Vec<u64> = (1..=3).filter(|n| *n != leader).collect();
    c.kill(others[0]);
    c.kill(leader);
    let lone = others[1];
    let started = Instant::now();
    let r = alice
        .post(c.url(lone, "/api/counter"))
        .send()
        .await
        .expect("answer");
    let took = started.elapsed();
    assert_eq!(r.status().as_u16(), 503, "write without quorum");
    assert!(
        r.headers().get("retry-after").is_some(),
        "503 carries Retry-After"
    );
    assert!(
        took < Duration::from_secs(6),
        "503 came after {took:?} (deadline 3 s)"
    );
    let r = alice
        .get(c.url(lone, "/api/counter"))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        r.status().as_u16(),
        503,
        "read without quorum is 503, never an empty session"
    );

    // start one again: service resumes and nothing acknowledged is lost
    c.start_node(leader);
    c.wait_ready(READY).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, n) = read(&alice, &c.url(lone, "/api/counter")).await;
        if s == 200 {
            assert_eq!(n, Some(2), "acknowledged increments of alice");
            break;
        }
        assert!(Instant::now() < deadline, "service did not resume");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        read(&bob, &c.url(lone, "/api/counter")).await,
        (200, Some(1000))
    );
    for (i, u) in users.iter().enumerate() {
        assert_eq!(
            read(u, &c.url(leader, "/api/counter")).await,
            (200, Some(i as i64 + 1))
        );
    }
    let (s, n, _) = increment(&alice, &c.url(lone, "/api/counter")).await;
    assert_eq!((s, n), (200, Some(3)));
}

/// 5. A node whose data directory is wiped rejoins through a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_node_rejoins_through_a_snapshot() {
    let tuning = Tuning {
        snapshot_logs_since_last: 50,
        max_in_snapshot_log_to_keep: 0,
        ..Tuning::default()
    };
    let mut c = TestCluster::start(3, tuning);
    c.wait_ready(READY).await;
    let users: Vec<reqwest::Client> = (0..30).map(|_| user()).collect();
    for round in 0..5 {
        for (i, u) in users.iter().enumerate() {
            let node = (i as u64 + round) % 3 + 1;
            assert_eq!(increment(u, &c.url(node, "/api/counter")).await.0, 200);
        }
    }
    let leader = c.leader(READY).await;
    let victim = (1..=3).find(|n| *n != leader).expect("a follower");
    c.kill(victim);
    // more writes while it is down, so the leader snapshots and purges past everything it had
    for u in &users {
        assert_eq!(increment(u, &c.url(leader, "/api/counter")).await.0, 200);
    }
    std::fs::remove_dir_all(c.data_dir(victim)).expect("wipe");
    c.start_node(victim);
    c.wait_ready(READY).await;

    let leader_status = c.status(leader).await.expect("leader status");
    assert!(
        leader_status["snapshot_index"].as_u64().is_some(),
        "leader built a snapshot: {leader_status}"
    );
    // the wiped node got its state from a snapshot (its log starts after the snapshot)
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = c.status(victim).await.expect("victim status");
        if s["snapshot_index"].as_u64().is_some()
            && s["applied_index"] == leader_status["applied_index"]
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "victim did not install a snapshot: {s}\n{}",
            c.log(victim)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        c.log(victim).contains("snapshot installed"),
        "the wiped node was restored from a snapshot, not from the log:\n{}",
        c.log(victim)
    );
    for (i, u) in users.iter().enumerate() {
        assert_eq!(
            read(u, &c.url(victim, "/api/counter")).await,
            (200, Some(6)),
            "user {i}"
        );
    }
    // converged: same applied index and the same state digest everywhere
    let d = c.digest(leader).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = c.digest(victim).await;
        if v["digest"] == d["digest"] && v["applied_index"] == d["applied_index"] {
            break;
        }
        assert!(Instant::now() < deadline, "digests differ: {d} vs {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 6. A bad cluster.toml exits non-zero with a message naming the field.
#[test]
fn bad_config_exits_non_zero_naming_the_field() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let cases = [
        (
            "[cluster]\nname=\"x\"\nsecret=\"short\"\nadmin_token=\"0123456789abcdef\"\n[[node]]\nid=1\nhttp_addr=\"127.0.0.1:1234\"\ndata_dir=\"d\"\n",
            "cluster.secret",
        ),
        (
            "[cluster]\nname=\"x\"\nsecret=\"0123456789abcdef0123456789abcdef\"\nadmin_token=\"0123456789abcdef\"\n[[node]]\nid=1\nhttp_addr=\"127.0.0.1:1234\"\ndata_dir=\"a\"\n[[node]]\nid=1\nhttp_addr=\"127.0.0.1:1235\"\ndata_dir=\"b\"\n",
            "node[1].id",
        ),
        (
            "[cluster]\nname=\"x\"\nsecret=\"0123456789abcdef0123456789abcdef\"\nadmin_token=\"0123456789abcdef\"\n[[node]]\nid=1\nhttp_addr=\"not-an-address\"\ndata_dir=\"a\"\n",
            "node[0].http_addr",
        ),
        (
            "[cluster]\nname=\"x\"\nsecret=\"0123456789abcdef0123456789abcdef\"\nadmin_token=\"0123456789abcdef\"\n[raft]\nheartbeat_ms=100\nelection_timeout_min_ms=150\n[[node]]\nid=1\nhttp_addr=\"127.0.0.1:1234\"\ndata_dir=\"a\"\n",
            "raft.election_timeout_min_ms",
        ),
    ];
    for (text, field) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).expect("write");
        let out = std::process::Command::new(common::binary())
            .args(["serve", "--config"])
            .arg(&path)
            .args(["--node", "1"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "exit status for {field}");
        assert!(stderr.contains(field), "message names {field}: {stderr}");
    }
    // an unknown node id
    let good = "[cluster]\nname=\"x\"\nsecret=\"0123456789abcdef0123456789abcdef\"\nadmin_token=\"0123456789abcdef\"\n[[node]]\nid=1\nhttp_addr=\"127.0.0.1:1234\"\ndata_dir=\"a\"\n";
    let path = dir.path().join("good.toml");
    std::fs::write(&path, good).expect("write");
    let out = std::process::Command::new(common::binary())
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--node", "7"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--node 7"));
}

/// Internal RPC refuses what is not authenticated (401) or not decodable (400) and touches
/// nothing; concurrent writes share log entries; TTL touches are coalesced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_rpc_is_guarded_writes_are_batched_touches_coalesced() {
    use sessionraft_raft::transport::auth::{PeerAuth, SignedHeaders};

    fn signed(r: reqwest::RequestBuilder, h: &SignedHeaders) -> reqwest::RequestBuilder {
        h.pairs()
            .into_iter()
            .fold(r, |r, (name, value)| r.header(name, value))
    }

    // Linearizable reads: the followers' loads below go through read barriers, whose stages
    // (`read_index_rpc`, `read_barrier`) this test checks on each role; token reads served
    // from a follower's replica are checked in tests/it/session_reads.rs.
    // An idle TTL of 30 s: a read touches its session once that moves the expiry by more than
    // the slack (30 s / 30 = 1 s), which the touch check below waits out.
    let c = TestCluster::start_prepared(3, Tuning::default(), |_, config| {
        let text = std::fs::read_to_string(config).expect("config");
        let text = text.replacen(
            "[raft]\n",
            "[session]\nidle_ttl_secs = 30\n\n[raft]\nread_consistency = \"linearizable\"\n",
            1,
        );
        std::fs::write(config, text).expect("write config");
    });
    c.wait_ready(READY).await;
    let leader = c.leader(READY).await;
    let before = c.status(leader).await.expect("status");
    let client = common::http();
    let auth = PeerAuth::new(common::SECRET.as_bytes()).signer();
    let wrong = PeerAuth::new(b"not-the-cluster-secret-not-the-cluster").signer();
    // the address the request is for, as a peer dials it (the node's Raft address)
    let to = c
        .url(leader, "")
        .split("://")
        .nth(1)
        .expect("addr")
        .to_string();
    let mut captured = None;
    for path in [
        "/raft/append",
        "/raft/vote",
        "/raft/snapshot",
        "/raft/write",
        "/raft/read-index",
    ] {
        let garbage = vec![0xffu8; 64];
        // no MAC
        let r = client
            .post(c.url(leader, path))
            .body(garbage.clone())
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{path} without MAC");
        // MAC from another secret
        let r = signed(
            client.post(c.url(leader, path)),
            &wrong.sign(&to, path, &garbage),
        )
        .body(garbage.clone())
        .send()
        .await
        .expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{path} with a wrong MAC");
        // valid MAC over garbage, truncated and absurd-length bodies
        for body in [
            garbage.clone(),
            vec![],
            vec![0x01],
            vec![0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ] {
            let headers = auth.sign(&to, path, &body);
            let r = signed(client.post(c.url(leader, path)), &headers)
                .body(body.clone())
                .send()
                .await
                .expect("answer");
            if path == "/raft/write" && captured.is_none() {
                captured = Some((headers, body.clone()));
            }
            if path == "/raft/read-index" && body.is_empty() {
                // the unit request is the empty body: it is valid
                assert_eq!(r.status().as_u16(), 200, "{path} with an empty body");
            } else {
                assert_eq!(r.status().as_u16(), 400, "{path} with garbage {body:?}");
            }
        }
    }
    // the same authenticated bytes again: refused as a replay before the body is looked at
    let (headers, body) = captured.expect("a /raft/write request was sent");
    let r = signed(client.post(c.url(leader, "/raft/write")), &headers)
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 401, "a replayed request");
    assert!(r.text().await.unwrap_or_default().contains("replayed"));
    let after = c.status(leader).await.expect("status");
    assert_eq!(before["term"], after["term"], "garbage changed the term");
    assert_eq!(
        before["last_log_index"], after["last_log_index"],
        "garbage touched the log"
    );
    assert_eq!(c.leader(READY).await, leader);

    // 200 users increment concurrently through all nodes: fewer log entries than writes
    let users: Vec<reqwest::Client> = (0..200).map(|_| user()).collect();
    let start_index = c.status(leader).await.expect("status")["last_log_index"]
        .as_u64()
        .unwrap_or(0);
    let futs = users.iter().enumerate().map(|(i, u)| {
        let url = c.url(i as u64 % 3 + 1, "/api/counter");
        async move { increment(u, &url).await.0 }
    });
    let statuses = futures_util::future::join_all(futs).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let end_index = c.status(leader).await.expect("status")["last_log_index"]
        .as_u64()
        .unwrap_or(0);
    let entries = end_index - start_index;
    eprintln!("200 concurrent session creations took {entries} log entries");
    assert!(
        entries < 200,
        "writes were not batched: {entries} entries for 200 writes"
    );

    // 100 concurrent reads of one session each extend its TTL: coalesced into few Touch entries
    // (past the touch slack since the session's last write, so a touch moves its expiry)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reader = &users[0];
    let start_index = c.status(leader).await.expect("status")["last_log_index"]
        .as_u64()
        .unwrap_or(0);
    let futs = (0..100).map(|i| {
        let url = c.url(i % 3 + 1, "/api/counter");
        async move { read(reader, &url).await.0 }
    });
    let statuses = futures_util::future::join_all(futs).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let end_index = c.status(leader).await.expect("status")["last_log_index"]
        .as_u64()
        .unwrap_or(0);
    let entries = end_index - start_index;
    eprintln!("100 TTL extensions took {entries} log entries");
    assert!(entries > 0, "touches were applied");
    assert!(
        entries < 50,
        "touches were not coalesced: {entries} entries for 100 reads"
    );

    // The steps of those writes and reads were timed on the node where each runs
    // (`sessionraft_stage_seconds`, what `sessionraft bench` reports per cell).
    let count = |id: u64, stage: &'static str| {
        let c = &c;
        async move { common::metric(c, id, "stage_seconds_count", &format!("stage=\"{stage}\"")).await }
    };
    for stage in ["commit", "append_rpc", "batch_queue"] {
        assert!(count(leader, stage).await > 0.0, "leader: {stage}");
    }
    for stage in ["forward", "append_follower", "read_index_rpc"] {
        assert_eq!(count(leader, stage).await, 0.0, "leader: {stage}");
    }
    for follower in (1..=3).filter(|id| *id != leader) {
        for stage in [
            "forward",
            "append_follower",
            "read_index_rpc",
            "read_barrier",
        ] {
            assert!(
                count(follower, stage).await > 0.0,
                "node {follower}: {stage}"
            );
        }
        for stage in ["commit", "append_rpc"] {
            assert_eq!(
                count(follower, stage).await,
                0.0,
                "node {follower}: {stage}"
            );
        }
    }
}

/// Admin API: 401 without the token; snapshot; unsafe membership steps refused; remove voters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_guards_and_membership_changes() {
    let c = TestCluster::start(3, Tuning::default());
    c.wait_ready(READY).await;
    let http = common::http();
    let post = |node: u64, path: &str, token: Option<&str>| {
        let mut r = http.post(c.url(node, path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    };
    let tok = Some(common::ADMIN_TOKEN);
    for path in [
        "/admin/snapshot",
        "/admin/nodes/3/remove",
        "/admin/users/x/revoke",
    ] {
        let r = post(1, path, None).send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{path} without token");
        let r = post(1, path, Some("wrong-token-wrong-token"))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{path} with a wrong token");
    }
    // snapshot through any node (forwarded to the leader)
    let r = post(2, "/admin/snapshot", tok)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    // promoting a node that is not a learner, adding an id already in use: refused with a reason
    let r = post(1, "/admin/nodes/9/promote", tok)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 400);
    let r = post(1, "/admin/nodes", tok)
        .json(&serde_json::json!({ "id": 2, "addr": "127.0.0.1:1" }))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        r.status().as_u16(),
        400,
        "{}",
        r.text().await.unwrap_or_default()
    );
    // remove two voters, one at a time; the last voter cannot be removed
    let leader = c.leader(READY).await;
    let others: Vec<u64> = (1..=3).filter(|n| *n != leader).collect();
    for id in &others {
        let r = post(leader, &format!("/admin/nodes/{id}/remove"), tok)
            .send()
            .await
            .expect("answer");
        assert_eq!(
            r.status().as_u16(),
            200,
            "remove {id}: {}",
            r.text().await.unwrap_or_default()
        );
    }
    let s = c.status(leader).await.expect("status");
    assert_eq!(s["members"].as_array().map(Vec::len), Some(1), "{s}");
    let r = post(leader, &format!("/admin/nodes/{leader}/remove"), tok)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("last voter"),
        "{body}"
    );
    // the single remaining voter still serves sessions
    let u = user();
    assert_eq!(increment(&u, &c.url(leader, "/api/counter")).await.0, 200);
}

/// Lease reads: a healthy leader answers read indexes under its lease (no heartbeat round);
/// with both followers paused the lease lapses and a read through the leader is refused (503)
/// instead of being answered alone; with `lease_reads = false` every read index is a round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_reads_need_a_fresh_quorum() {
    let c = TestCluster::start(3, Tuning::default());
    c.wait_ready(READY).await;
    let leader = c.leader(READY).await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let u = user();
    assert_eq!(
        increment(&u, &c.url(leader, "/api/counter")).await.1,
        Some(1)
    );
    for node in [leader, follower] {
        for _ in 0..20 {
            assert_eq!(read(&u, &c.url(node, "/api/counter")).await, (200, Some(1)));
        }
    }
    let by_lease = common::metric(&c, leader, "read_index_total", "how=\"lease\"").await;
    assert!(by_lease >= 20.0, "read indexes under the lease: {by_lease}");

    // Both followers paused: after the lease (0.9 x 400 ms here) the leader cannot prove it
    // still leads, and must not answer a read.
    let paused = c.pause_all_but(leader);
    // 500 ms: past the lease (360 ms after the last acknowledged heartbeat), inside the
    // CheckQuorum window (election_timeout_max, 800 ms): the leader tries a heartbeat round,
    // which finds no quorum.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rounds_before = common::metric(&c, leader, "read_index_total", "how=\"round\"").await;
    let (status, _) = read(&u, &c.url(leader, "/api/counter")).await;
    assert_eq!(status, 503, "a leader without a quorum answered a read");
    let rounds = common::metric(&c, leader, "read_index_total", "how=\"round\"").await;
    assert!(
        rounds > rounds_before,
        "the expired lease fell back to a round"
    );
    // Now past the CheckQuorum window (the read above waited out the 3 s deadline): the leader
    // refuses at once, without even a round.
    let (status, _) = read(&u, &c.url(leader, "/api/counter")).await;
    assert_eq!(
        status, 503,
        "a leader cut off from the quorum answered a read"
    );
    assert_eq!(
        common::metric(&c, leader, "read_index_total", "how=\"round\"").await,
        rounds,
        "a leader cut off from the quorum refuses before any round"
    );
    drop(paused);
    let deadline = Instant::now() + READY;
    loop {
        let r = read(&u, &c.url(leader, "/api/counter")).await;
        if r == (200, Some(1)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no read after the followers resumed: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(c);

    // Lease reads off: every read index of the leader is a heartbeat round.
    let c = TestCluster::start_prepared(3, Tuning::default(), |_, config| {
        let text = std::fs::read_to_string(config).expect("config");
        let text = text.replacen("[raft]\n", "[raft]\nlease_reads = false\n", 1);
        std::fs::write(config, text).expect("config");
    });
    c.wait_ready(READY).await;
    let leader = c.leader(READY).await;
    let u = user();
    assert_eq!(
        increment(&u, &c.url(leader, "/api/counter")).await.1,
        Some(1)
    );
    for _ in 0..20 {
        assert_eq!(
            read(&u, &c.url(leader, "/api/counter")).await,
            (200, Some(1))
        );
    }
    assert_eq!(
        common::metric(&c, leader, "read_index_total", "how=\"lease\"").await,
        0.0
    );
    assert!(common::metric(&c, leader, "read_index_total", "how=\"round\"").await >= 20.0);
}

/// An idle cluster's log stands still: no purge entry is proposed while nothing is due (the
/// purger asks the leader's expiry index first), and nothing else writes on a timer. Sessions
/// exist (with expiries far ahead), so the purger has an index to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_cluster_writes_no_log_entries() {
    let c = TestCluster::start(3, Tuning::default());
    c.wait_ready(READY).await;
    for node in 1..=3 {
        let u = user();
        let (status, _, _) = increment(&u, &c.url(node, "/api/counter")).await;
        assert_eq!(status, 200, "increment through node {node}");
    }
    // let the touches of those requests flush and every node apply them
    tokio::time::sleep(Duration::from_secs(2)).await;
    let last = |s: Option<serde_json::Value>| s.and_then(|s| s["last_log_index"].as_u64());
    let mut before = Vec::new();
    for node in 1..=3 {
        before.push(last(c.status(node).await).expect("last log index"));
    }
    assert!(before.iter().all(|i| *i == before[0]), "{before:?}");
    // 60 s: twelve purge ticks of 5 s each
    tokio::time::sleep(Duration::from_secs(60)).await;
    for node in 1..=3u64 {
        let now = last(c.status(node).await).expect("last log index");
        assert_eq!(
            now,
            before[node as usize - 1],
            "node {node}: the log grew while the cluster was idle"
        );
    }
}

//! Overload is refused, not queued, and counts are exact — on real `sessionraft serve` processes.
//!
//! - `overload_is_refused_and_never_applied`: a cluster whose write queues hold 2 writes
//!   (`[raft] max_queued_writes = 2`) driven far above that by Redis-protocol pipelines and
//!   concurrent HTTP users: every refusal is `-TRYAGAIN` / 503 with `Retry-After` and
//!   `x-sessionraft-outcome: not-applied`, comes long before the request deadline, and changed
//!   nothing (each refused `SET` left its key absent; each user's counter equals its acknowledged
//!   increments).
//! - `abandoned_writes_are_never_applied`: writes queued behind a batch held up by a paused
//!   leader, whose client closes its connection, are dropped when their turn comes, never
//!   proposed (before, they were committed after the client had gone).
//! - `a_node_at_its_request_bound_refuses_at_once`: with `[runtime] max_requests_in_flight = 1`
//!   and a request held inside the leader (its followers paused), the next session request is
//!   answered 503 `not-applied` with `Retry-After` at once and changes nothing; probes and
//!   `/metrics` still answer; the freed place admits again.
//! - `counts_are_exact`: five users signed in once are 5 sessions on every node; keys counted
//!   by `DBSIZE`, `INFO keyspace` and `/cluster/status` as stored; after deletes, expiry, a
//!   restart and a snapshot install still exact.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{metric, read, user, RespConnection, TestCluster, Tuning};

const READY: Duration = Duration::from_secs(30);
const STEP: Duration = Duration::from_secs(15);

/// A cluster of `n` nodes with a door each, `raft_extra` added to `[raft]`.
async fn start(n: usize, tuning: Tuning, raft_extra: &str) -> (TestCluster, Vec<u16>) {
    let doors: Vec<u16> = (0..n).map(|_| common::free_port()).collect();
    let c = TestCluster::start_prepared(n, tuning, |_, config| {
        let mut text = std::fs::read_to_string(config).expect("config");
        text = text.replacen("[raft]\n", &format!("[raft]\n{raft_extra}"), 1);
        for (i, port) in doors.iter().enumerate() {
            let at = format!("[[node]]\nid = {}\n", i + 1);
            text = text.replacen(&at, &format!("{at}resp_addr = \"127.0.0.1:{port}\"\n"), 1);
        }
        std::fs::write(config, text).expect("write config");
    });
    c.wait_ready(READY).await;
    for port in &doors {
        let deadline = Instant::now() + READY;
        while common::resp_once(*port, &[b"PING"]).await.is_err() {
            assert!(Instant::now() < deadline, "door {port} not answering");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (c, doors)
}

fn resp_array(args: &[&[u8]]) -> Vec<u8> {
    let mut frame = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        frame.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        frame.extend_from_slice(a);
        frame.extend_from_slice(b"\r\n");
    }
    frame
}

/// Send `frames` in one write on a fresh connection and read one reply line per frame
/// (simple strings and errors only: what `SET` answers).
async fn pipelined_lines(port: u16, frames: &[Vec<u8>]) -> Vec<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let s = tokio::time::timeout(STEP, tokio::net::TcpStream::connect(("127.0.0.1", port)))
        .await
        .expect("connect in time")
        .expect("connect");
    let (r, mut w) = s.into_split();
    w.write_all(&frames.concat()).await.expect("send");
    let mut r = BufReader::new(r);
    let mut out = Vec::new();
    for _ in frames {
        let mut line = String::new();
        let n = tokio::time::timeout(STEP, r.read_line(&mut line))
            .await
            .expect("a reply in time")
            .expect("read");
        assert!(n > 0, "the door closed the connection");
        out.push(line.trim_end().to_string());
    }
    out
}

async fn get(port: u16, key: &str) -> Vec<u8> {
    common::resp_once(port, &[b"GET", key.as_bytes()])
        .await
        .expect("GET")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_and_never_applied() {
    let t0 = Instant::now();
    let tuning = Tuning {
        request_deadline_ms: 10_000,
        ..Tuning::default()
    };
    let deadline = Duration::from_millis(tuning.request_deadline_ms);
    let (c, doors) = start(3, tuning, "max_queued_writes = 2\n").await;

    // Redis protocol: 24 connections over the three doors, each sending 10 pipelines of 8
    // SETs of keys of its own. A pipeline finding the queue empty gets 2 queued, 6 refused.
    let tasks: Vec<_> = (0..24)
        .map(|conn| {
            let port = doors[conn % doors.len()];
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for round in 0..10 {
                    let keys: Vec<String> =
                        (0..8).map(|i| format!("ol:{conn}:{round}:{i}")).collect();
                    let frames: Vec<Vec<u8>> = keys
                        .iter()
                        .map(|k| resp_array(&[b"SET", k.as_bytes(), b"v"]))
                        .collect();
                    let started = Instant::now();
                    let lines = pipelined_lines(port, &frames).await;
                    let took = started.elapsed();
                    outcomes.extend(keys.into_iter().zip(lines).map(|(k, l)| (k, l, took)));
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.extend(t.await.expect("RESP task"));
    }
    let refused: Vec<_> = outcomes.iter().filter(|(_, l, _)| l != "+OK").collect();
    for (k, line, took) in &refused {
        assert!(
            line.starts_with("-TRYAGAIN overloaded"),
            "{k}: {line} (only +OK or -TRYAGAIN overloaded expected)"
        );
        assert!(
            *took < deadline / 2,
            "{k} refused after {took:?}: a refusal must not wait for the deadline ({deadline:?})"
        );
    }
    assert!(
        !refused.is_empty(),
        "a pipeline of 8 against a queue of 2 must be refused in part"
    );
    let ok = outcomes.len() - refused.len();
    eprintln!(
        "RESP: {ok} SETs acknowledged, {} refused, slowest refused pipeline {:?}",
        refused.len(),
        refused.iter().map(|(_, _, t)| *t).max().unwrap_or_default()
    );
    // Each acknowledged SET is there, each refused one is not (read through every door).
    for (i, (k, line, _)) in outcomes.iter().enumerate() {
        let want: &[u8] = if line == "+OK" {
            b"$1\r\nv\r\n"
        } else {
            b"$-1\r\n"
        };
        let port = doors[i % doors.len()];
        assert_eq!(
            String::from_utf8_lossy(&get(port, k).await),
            String::from_utf8_lossy(want),
            "{k} answered {line}"
        );
    }
    let refusals: f64 = {
        let mut sum = 0.0;
        for id in 1..=3 {
            sum += metric(&c, id, "write_queue_refused_total", "reason=\"full\"").await;
        }
        sum
    };
    assert!(
        refusals >= refused.len() as f64,
        "write_queue_refused_total{{reason=\"full\"}} {refusals} < {}",
        refused.len()
    );

    // HTTP: 60 users counting at once through the three nodes.
    let tasks: Vec<_> = (0..60)
        .map(|u| {
            let url = c.url(1 + (u % 3) as u64, "/api/counter");
            tokio::spawn(async move {
                let client = user();
                let (mut ok, mut refused, mut slowest) = (0i64, 0usize, Duration::ZERO);
                for _ in 0..15 {
                    let started = Instant::now();
                    let r = client.post(&url).send().await.expect("POST /api/counter");
                    let took = started.elapsed();
                    match r.status().as_u16() {
                        200 => ok += 1,
                        503 => {
                            let h = |name: &str| {
                                r.headers()
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned)
                            };
                            assert!(h("retry-after").is_some(), "503 without Retry-After");
                            assert_eq!(
                                h("x-sessionraft-outcome").as_deref(),
                                Some("not-applied"),
                                "503 outcome"
                            );
                            refused += 1;
                            slowest = slowest.max(took);
                        }
                        s => panic!("POST /api/counter answered {s}"),
                    }
                }
                let (status, counter) = read(&client, &url).await;
                (u, ok, refused, slowest, status, counter)
            })
        })
        .collect();
    let (mut acknowledged, mut refused_http, mut slowest) = (0, 0, Duration::ZERO);
    for t in tasks {
        let (u, ok, refused, took, status, counter) = t.await.expect("HTTP task");
        assert_eq!(status, 200, "user {u}: reading the counter");
        assert_eq!(
            counter.unwrap_or(0),
            ok,
            "user {u}: the counter must count the acknowledged increments only ({refused} refused)"
        );
        acknowledged += ok;
        refused_http += refused;
        slowest = slowest.max(took);
    }
    assert!(
        slowest < deadline / 2,
        "an HTTP refusal took {slowest:?}: it must not wait for the deadline"
    );
    assert!(
        refused_http > 0,
        "60 users at once against queues of 2 were never refused"
    );
    eprintln!(
        "HTTP: {acknowledged} increments acknowledged, {refused_http} refused (503 not-applied), slowest refusal {slowest:?}; whole test {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_writes_are_never_applied() {
    let (c, doors) = start(
        3,
        Tuning {
            request_deadline_ms: 8000,
            ..Tuning::default()
        },
        "",
    )
    .await;
    let leader = c.leader(READY).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let other = 6 - leader - follower;
    let port = doors[follower as usize - 1];
    // Both other nodes paused: the follower's first batch is forwarded to a leader that does
    // not answer, and what comes after it waits in its queue.
    let leader_pid = c.pid(leader).expect("leader pid");
    let other_pid = c.pid(other).expect("pid");
    common::signal(leader_pid, "STOP");
    common::signal(other_pid, "STOP");
    let paused = (common::Paused(leader_pid), common::Paused(other_pid));
    let first =
        tokio::spawn(
            async move { common::resp_once(port, &[b"SET", b"abandon:first", b"1"]).await },
        );
    tokio::time::sleep(Duration::from_millis(100)).await;
    {
        use tokio::io::AsyncWriteExt;
        let frames = [
            resp_array(&[b"SET", b"abandon:b", b"2"]),
            resp_array(&[b"SET", b"abandon:c", b"3"]),
        ];
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(&frames.concat()).await.expect("send");
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The client gives up: its connection closes with both writes still queued.
        drop(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(paused);
    let first = first.await.expect("task").expect("the first SET answered");
    assert_eq!(String::from_utf8_lossy(&first), "+OK\r\n", "the first SET");
    // The abandoned writes came up after the first batch and were dropped, unproposed.
    let deadline = Instant::now() + STEP;
    while metric(
        &c,
        follower,
        "write_queue_refused_total",
        "reason=\"abandoned\"",
    )
    .await
        < 2.0
    {
        assert!(
            Instant::now() < deadline,
            "the two abandoned writes were not dropped:\n{}",
            c.log(follower)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Never applied, on any node: a later write's barrier covers whatever was committed.
    for port in &doors {
        let mut conn = RespConnection::connect(*port, STEP).await.expect("connect");
        conn.command(&[b"SET", b"abandon:after", b"x"], STEP)
            .await
            .expect("SET");
        for k in ["abandon:b", "abandon:c"] {
            let got = conn
                .command(&[b"GET", k.as_bytes()], STEP)
                .await
                .expect("GET");
            assert_eq!(String::from_utf8_lossy(&got), "$-1\r\n", "{k} was applied");
        }
    }
}

/// A node at `[runtime] max_requests_in_flight` refuses the next session request at once —
/// 503 `not-applied`, `Retry-After: 1`, a body naming the bound — having read and written
/// nothing, while its probes and `/metrics` still answer; a freed place admits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_at_its_request_bound_refuses_at_once() {
    let c = TestCluster::start_prepared(
        3,
        Tuning {
            request_deadline_ms: 8000,
            ..Tuning::default()
        },
        |_, config| {
            let mut text = std::fs::read_to_string(config).expect("config");
            text.push_str("\n[runtime]\nmax_requests_in_flight = 1\n");
            std::fs::write(config, text).expect("write config");
        },
    );
    c.wait_ready(READY).await;
    let leader = c.leader(READY).await;
    let counter = c.url(leader, "/api/counter");
    // Two users with a session each (counter 1), made one at a time: the bound admits them.
    let (holder, refused_user) = (user(), user());
    for u in [&holder, &refused_user] {
        let (status, n, _) = common::increment(u, &counter).await;
        assert_eq!((status, n), (200, Some(1)), "a user's first increment");
    }
    // Both followers paused: the holder's next request waits for a quorum, holding the one place.
    let paused = c.pause_all_but(leader);
    let held = {
        let (holder, counter) = (holder.clone(), counter.clone());
        tokio::spawn(async move { common::increment(&holder, &counter).await })
    };
    // The holder is in once the leader counts a request in flight (probes are not counted).
    let deadline = Instant::now() + STEP;
    while metric(&c, leader, "http_requests_in_flight", "").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the held request never counted in flight"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = Instant::now();
    let r = refused_user.post(&counter).send().await.expect("request");
    let took = t.elapsed();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(r.status().as_u16(), 503, "over the bound");
    assert_eq!(
        header("x-sessionraft-outcome").as_deref(),
        Some("not-applied")
    );
    assert_eq!(header("retry-after").as_deref(), Some("1"));
    let body = r.text().await.expect("body");
    assert!(
        body.contains("limit of 1 requests in flight"),
        "the refusal names the bound: {body}"
    );
    assert!(
        took < Duration::from_secs(2),
        "refused at once, not after the 8 s deadline: {took:?}"
    );
    assert!(!held.is_finished(), "the holder's request still waits");
    // Probes and metrics are outside the bound.
    for path in ["/healthz", "/metrics"] {
        let r = common::http()
            .get(c.url(leader, path))
            .send()
            .await
            .expect(path);
        assert_eq!(r.status().as_u16(), 200, "{path} while at the bound");
    }
    assert_eq!(
        metric(
            &c,
            leader,
            "http_requests_refused_total",
            "reason=\"in-flight\""
        )
        .await,
        1.0
    );
    drop(paused);
    let (status, _, _) = held.await.expect("holder task");
    assert!(
        [200, 503, 504].contains(&status),
        "the held request ends with an answer: {status}"
    );
    // The refused increments changed nothing; with the place free the user is served again.
    let deadline = Instant::now() + STEP;
    loop {
        let (status, n) = read(&refused_user, &counter).await;
        if status == 200 {
            assert_eq!(n, Some(1), "a refused increment was applied");
            break;
        }
        assert!(Instant::now() < deadline, "read after resume: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, n, _) = common::increment(&refused_user, &counter).await;
    assert_eq!(
        (status, n),
        (200, Some(2)),
        "served again once a place is free"
    );
}

/// `/cluster/status` `sessions` and `kv_keys` of node `id`.
async fn counts(c: &TestCluster, id: u64) -> (u64, u64) {
    let s = c.status(id).await.expect("status");
    (
        s["sessions"].as_u64().expect("sessions"),
        s["kv_keys"].as_u64().expect("kv_keys"),
    )
}

/// Wait until every live node reports `want` (followers apply a moment after the leader).
async fn counts_become(c: &TestCluster, want: (u64, u64), what: &str) {
    let deadline = Instant::now() + STEP;
    for id in c.alive() {
        loop {
            let got = counts(c, id).await;
            if got == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: node {id} counts (sessions, keys) {got:?}, want {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn redis_int(port: u16, args: &[&[u8]]) -> String {
    String::from_utf8_lossy(&common::resp_once(port, args).await.expect("command")).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exact() {
    let (mut c, doors) = start(
        3,
        Tuning {
            snapshot_logs_since_last: 20,
            max_in_snapshot_log_to_keep: 0,
            ..Tuning::default()
        },
        "",
    )
    .await;
    // Five users sign in once each.
    let mut users = Vec::new();
    for u in 0..5u64 {
        let client = user();
        let r = client
            .post(c.url(1 + u % 3, "/api/login"))
            .json(&serde_json::json!({ "user": format!("user{u}") }))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status().as_u16(), 200, "login");
        users.push(client);
    }
    counts_become(&c, (5, 0), "five users signed in once").await;
    // Keys: 7 set (one twice), 2 deleted, one with a short expiry.
    for i in 0..7 {
        let k = format!("count:{i}");
        redis_int(doors[i % 3], &[b"SET", k.as_bytes(), b"v"]).await;
    }
    redis_int(doors[0], &[b"SET", b"count:0", b"again"]).await;
    redis_int(doors[1], &[b"DEL", b"count:1", b"count:2", b"count:none"]).await;
    redis_int(doors[2], &[b"SET", b"count:short", b"v", b"PX", b"300"]).await;
    counts_become(&c, (5, 6), "keys set and deleted").await;
    for port in &doors {
        assert_eq!(redis_int(*port, &[b"DBSIZE"]).await, ":6\r\n", "DBSIZE");
        let info = redis_int(*port, &[b"INFO", b"keyspace"]).await;
        assert!(info.contains("db0:keys=6,"), "INFO keyspace: {info}");
    }
    // A logout deletes a session; the purger removes the expired key (every 5 s).
    let r = users[0]
        .post(c.url(1, "/api/logout"))
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status().as_u16(), 200, "logout");
    counts_become(&c, (4, 5), "a logout and an expired key purged").await;
    // A restart counts again from the data.
    c.kill(2);
    c.start_node(2);
    c.wait_ready(READY).await;
    counts_become(&c, (4, 5), "after node 2 restarted").await;
    // A node that catches up from a snapshot (its log purged meanwhile) counts what it installed.
    c.kill(3);
    for i in 0..60 {
        let k = format!("snap:{i}");
        redis_int(doors[i % 2], &[b"SET", k.as_bytes(), b"v"]).await;
    }
    redis_int(doors[0], &[b"DEL", b"snap:0"]).await;
    c.start_node(3);
    c.wait_ready(READY).await;
    counts_become(&c, (4, 64), "after node 3 installed a snapshot").await;
    assert!(
        c.log(3).contains("snapshot installed"),
        "node 3 was meant to catch up from a snapshot:\n{}",
        c.log(3)
    );
}

//! Session-token reads (`[raft] read_consistency = "session"`, the default) against real
//! 3-process clusters: read-your-writes on every node for 100 users with reads served from the
//! followers' own replicas; a follower paused past the staleness bound never serves a session
//! revoked meanwhile; a restarted and a wiped-and-rejoined node never serve below a cookie's
//! index; cookies without an index (from before tokens) still work; `linearizable` mode serves
//! no read locally.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{increment, metric, read, signal, user, Paused, TestCluster, Tuning};
use actix_web::cookie::{Cookie, CookieJar, Key};
use serde_json::Value;
use sessionraft_web::server::cookie_key;

const READY: Duration = Duration::from_secs(30);

/// Token reads served from this node's own replica so far.
async fn local_reads(c: &TestCluster, id: u64) -> f64 {
    metric(c, id, "read_index_total", "how=\"local\"").await
}

async fn followers(c: &TestCluster) -> (u64, Vec<u64>) {
    let leader = c.leader(READY).await;
    (leader, (1..=3).filter(|n| *n != leader).collect())
}

/// Every follower fresh (it heard a prompt heartbeat and applied its commit).
async fn wait_fresh(c: &TestCluster, nodes: &[u64]) {
    let deadline = Instant::now() + READY;
    for n in nodes {
        loop {
            let fresh = c
                .status(*n)
                .await
                .is_some_and(|s| s["reads"]["fresh"] == true);
            if fresh {
                break;
            }
            assert!(Instant::now() < deadline, "node {n} never fresh");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_reads_its_own_writes_on_every_node() {
    let c = TestCluster::start(3, Tuning::default());
    c.wait_ready(READY).await;
    let (_, fs) = followers(&c).await;
    wait_fresh(&c, &fs).await;
    let before: f64 = {
        let mut sum = 0.0;
        for f in &fs {
            sum += local_reads(&c, *f).await;
        }
        sum
    };
    let users: Vec<reqwest::Client> = (0..100).map(|_| user()).collect();
    let mut handles = Vec::new();
    for (i, u) in users.into_iter().enumerate() {
        let urls: Vec<String> = (1..=3).map(|n| c.url(n, "/api/counter")).collect();
        handles.push(tokio::spawn(async move {
            // each user writes through one node and reads at once through the other two
            for round in 0..3usize {
                let w = (i + round) % 3;
                let (status, counter, _) = increment(&u, &urls[w]).await;
                assert_eq!(status, 200, "user {i} round {round}: increment");
                let counter = counter.expect("counter");
                assert_eq!(counter, round as i64 + 1, "user {i}: increments in order");
                for r in [(w + 1) % 3, (w + 2) % 3] {
                    let (status, seen) = read(&u, &urls[r]).await;
                    assert_eq!(status, 200, "user {i}: read through node {}", r + 1);
                    assert_eq!(
                        seen,
                        Some(counter),
                        "user {i} wrote {counter} through node {} and read {seen:?} through node {}",
                        w + 1,
                        r + 1
                    );
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("user task");
    }
    let mut after = 0.0;
    for f in &fs {
        after += local_reads(&c, *f).await;
    }
    // 100 users x 3 rounds x 2 reads, two thirds of them on a follower: most must have been
    // served from the followers' replicas (a few may have waited past two heartbeats)
    assert!(
        after - before >= 200.0,
        "token reads served locally by the followers: {} of ~400",
        after - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_paused_past_the_bound_never_serves_a_revoked_session() {
    let c = TestCluster::start(3, Tuning::default());
    c.wait_ready(READY).await;
    let (leader, fs) = followers(&c).await;
    let f = fs[0];
    wait_fresh(&c, &[f]).await;
    // alice signs in through the follower and is seen there, locally
    let alice = user();
    let r = alice
        .post(c.url(f, "/api/login"))
        .json(&serde_json::json!({ "user": "alice" }))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200);
    let local_before = local_reads(&c, f).await;
    let who: Value = alice
        .get(c.url(f, "/api/whoami"))
        .send()
        .await
        .expect("whoami")
        .json()
        .await
        .expect("json");
    assert_eq!(who["user"], "alice");
    assert!(local_reads(&c, f).await > local_before, "served locally");

    // the follower stops; meanwhile an admin revokes alice (acknowledged by the leader)
    let pid = c.pid(f).expect("pid");
    signal(pid, "STOP");
    let paused = Paused(pid);
    let r = common::http()
        .post(c.url(leader, "/admin/users/alice/revoke"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 200, "revoke acknowledged");
    let acknowledged = Instant::now();
    let bound = Duration::from_millis(
        c.status(leader).await.expect("status")["reads"]["max_staleness_ms"]
            .as_u64()
            .expect("bound"),
    );
    tokio::time::sleep(bound * 2).await;
    drop(paused); // SIGCONT: it wakes with old appends in its socket and an old state
                  // every answer of the resumed follower after t + bound: never alice's session
    let mut served = 0;
    while served < 20 {
        // every read here starts at least 2 x bound after the revoke was acknowledged (the
        // sleep above): by the staleness bound, none may still see alice
        let asked = acknowledged.elapsed();
        let r = alice.get(c.url(f, "/api/whoami")).send().await;
        let Ok(r) = r else { continue };
        if r.status() == 503 {
            continue;
        }
        let who: Value = r.json().await.expect("json");
        assert_ne!(
            who["user"], "alice",
            "the resumed follower served, to a read started {asked:?} after the revoke was \
             acknowledged (bound {bound:?}), the revoked session"
        );
        served += 1;
    }
}

/// Read through `node` until it answers 200 (503s and refused connections while it starts are
/// fine), checking every 200: never below `expected`, never another session.
async fn every_answer_at_least(c: &TestCluster, u: &reqwest::Client, node: u64, expected: i64) {
    let deadline = Instant::now() + READY;
    let mut answered = 0;
    while answered < 10 {
        let (status, counter) = read(u, &c.url(node, "/api/counter")).await;
        if status == 200 {
            assert_eq!(
                counter,
                Some(expected),
                "node {node} served below the cookie's index"
            );
            answered += 1;
        } else {
            assert!(Instant::now() < deadline, "node {node} never served");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `times` increments through `url`, each acknowledged; the last counter.
async fn increments(u: &reqwest::Client, url: &str, times: usize) -> i64 {
    let mut n = 0;
    for _ in 0..times {
        let (status, counter, _) = increment(u, url).await;
        assert_eq!(status, 200);
        n = counter.expect("counter");
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_and_wiped_nodes_never_serve_below_the_cookie() {
    let mut c = TestCluster::start(
        3,
        Tuning {
            // small snapshots, so the wiped node rejoins through one
            snapshot_logs_since_last: 20,
            max_in_snapshot_log_to_keep: 0,
            ..Tuning::default()
        },
    );
    c.wait_ready(READY).await;
    let (leader, fs) = followers(&c).await;
    let u = user();
    // a restart with an empty process: the node comes back with its log but no freshness
    let f = fs[0];
    c.kill(f);
    let n = increments(&u, &c.url(leader, "/api/counter"), 30).await;
    c.start_node(f);
    every_answer_at_least(&c, &u, f, n).await;

    // wiped and rejoined under its old id
    let g = fs[1];
    c.kill(g);
    std::fs::remove_dir_all(c.data_dir(g)).expect("wipe");
    let n = increments(&u, &c.url(leader, "/api/counter"), 30).await;
    c.start_node(g);
    every_answer_at_least(&c, &u, g, n).await;
}

/// A cookie value as it travels (percent-encoded), `plain` encrypted under the test secret.
fn encrypt(plain: &str) -> String {
    let mut jar = CookieJar::new();
    jar.private_mut(&cookie_key(common::SECRET.as_bytes()))
        .add(Cookie::new("id", plain.to_string()));
    let c = jar.get("id").expect("cookie");
    c.encoded()
        .to_string()
        .trim_start_matches("id=")
        .to_string()
}

fn decrypt(value: &str) -> Option<String> {
    let parsed = Cookie::parse_encoded(format!("id={value}")).ok()?;
    let mut jar = CookieJar::new();
    jar.add_original(Cookie::new("id", parsed.value().to_string()));
    let key: Key = cookie_key(common::SECRET.as_bytes());
    jar.private(&key).get("id").map(|c| c.value().to_string())
}

fn id_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|l| l.starts_with("id="))
        .and_then(|l| l.trim_start_matches("id=").split(';').next())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_without_an_index_or_from_the_future_still_work() {
    let c = TestCluster::start(3, Tuning::default());
    c.wait_ready(READY).await;
    let (leader, fs) = followers(&c).await;
    let http = common::http();
    let r = http
        .post(c.url(leader, "/api/counter"))
        .send()
        .await
        .expect("increment");
    assert_eq!(r.status(), 200);
    let cookie = id_cookie(&r).expect("a session cookie");
    let token = decrypt(&cookie).expect("decrypts");
    let (sid, index) = token
        .rsplit_once('.')
        .expect("the cookie carries sid.index");
    assert!(index.parse::<u64>().expect("an index") > 0, "{token}");
    // the same session as an old node would have written it: the bare id
    let old = encrypt(sid);
    for node in [leader, fs[0], fs[1]] {
        let r = http
            .get(c.url(node, "/api/counter"))
            .header("cookie", format!("id={old}"))
            .send()
            .await
            .expect("read");
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("json");
        assert_eq!(
            body["counter"], 1,
            "node {node} read the old cookie's session"
        );
    }
    // a token index beyond anything this cluster has (a cookie from before a restore onto a
    // new cluster): the current state after one read index, not a hung request
    // (a hung request would fail on the client's 10 s timeout)
    let future = encrypt(&format!("{sid}.999999999"));
    let r = http
        .get(c.url(fs[1], "/api/counter"))
        .header("cookie", format!("id={future}"))
        .send()
        .await
        .expect("read");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["counter"], 1);
    // a write through it re-issues the cookie with an index
    let r = http
        .post(c.url(fs[0], "/api/counter"))
        .header("cookie", format!("id={old}"))
        .send()
        .await
        .expect("increment");
    assert_eq!(r.status(), 200);
    let renewed = decrypt(&id_cookie(&r).expect("re-issued")).expect("decrypts");
    assert!(renewed.starts_with(&format!("{sid}.")), "{renewed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_mode_serves_no_read_locally() {
    let c = TestCluster::start_with_reads(3, Tuning::default(), "linearizable");
    c.wait_ready(READY).await;
    let (leader, fs) = followers(&c).await;
    assert_eq!(
        c.status(fs[0]).await.expect("status")["reads"]["consistency"],
        "linearizable"
    );
    let u = user();
    for i in 1..=20 {
        let (status, counter, _) = increment(&u, &c.url(leader, "/api/counter")).await;
        assert_eq!((status, counter), (200, Some(i)));
        for f in &fs {
            assert_eq!(read(&u, &c.url(*f, "/api/counter")).await, (200, Some(i)));
        }
    }
    for f in &fs {
        assert_eq!(local_reads(&c, *f).await, 0.0, "node {f}");
        assert!(metric(&c, *f, "stage_seconds_count", "read_barrier").await > 0.0);
    }
    // a cookie replayed right after its logout is refused on every node at once
    let http = common::http();
    let r = http
        .post(c.url(leader, "/api/login"))
        .json(&serde_json::json!({ "user": "erin" }))
        .send()
        .await
        .expect("login");
    let cookie = id_cookie(&r).expect("cookie");
    let r = http
        .post(c.url(fs[0], "/api/logout"))
        .header("cookie", format!("id={cookie}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    for node in [fs[1], leader, fs[0]] {
        let who: Value = http
            .get(c.url(node, "/api/whoami"))
            .header("cookie", format!("id={cookie}"))
            .send()
            .await
            .expect("whoami")
            .json()
            .await
            .expect("json");
        assert_eq!(
            who["user"],
            Value::Null,
            "node {node} served a logged-out session"
        );
    }
}

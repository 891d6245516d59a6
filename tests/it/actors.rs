//! The node's actors are supervised, for real: three `sessionraft serve` processes with the
//! actor test switch on (`SESSIONRAFT_UNSAFE_ACTOR_PANICS=1`), users incrementing their
//! counters through every node all along. On every node, every actor `/cluster/status` lists
//! (the batcher, the election watcher, the touch flusher, the purger, the cluster-version driver,
//! the peer-name checker, the dashboard watcher) is made to panic with
//! `POST /admin/actors/{name}/panic`. Asserted:
//!
//! - each panic is counted once: `/cluster/status` `actors[].restarts` and
//!   `sessionraft_actor_restarts_total{actor}` in `/metrics` say 1 for every actor of every node;
//! - the node keeps serving meanwhile: every increment is answered 200, or — only for a write
//!   whose batch was in flight when the batcher panicked — 504 with the outcome unknown (the user
//!   retries it); no acknowledged increment is lost, none is counted twice beyond the unknown
//!   ones; every user reads its last value through every node afterwards;
//! - the restarted actors work: the leader is SIGKILLed and a new one is elected (the election
//!   watchers of the survivors panicked and were restarted), and the users carry on;
//! - without the switch the route is a 404 and a panic cannot be injected.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{increment, read, ClusterOptions, TestCluster, Tuning, ADMIN_TOKEN};

const USERS: usize = 6;

/// A user's counter as acknowledged, with the requests whose outcome it does not know.
struct User {
    client: reqwest::Client,
    acked: i64,
    unknown: i64,
    errors: Vec<String>,
}

impl User {
    fn new() -> Self {
        Self {
            client: common::user(),
            acked: 0,
            unknown: 0,
            errors: Vec::new(),
        }
    }

    /// One increment through `url`: 200 must follow the last acknowledged value (plus the
    /// unknown outcomes since); 504 is an unknown outcome; anything else is recorded.
    async fn step(&mut self, url: &str) {
        let (status, counter, _) = increment(&self.client, url).await;
        match (status, counter) {
            (200, Some(c)) if c > self.acked && c <= self.acked + 1 + self.unknown => {
                self.acked = c;
                self.unknown = 0;
            }
            (200, c) => self.errors.push(format!(
                "{url}: counter {c:?} after acknowledged {} with {} unknown",
                self.acked, self.unknown
            )),
            (504 | 0, _) => self.unknown += 1,
            (s, _) => self.errors.push(format!("{url}: status {s}")),
        }
    }
}

/// One increment per user, at once, each through the node its index and `round` pick.
async fn load(users: &mut [User], urls: &[String], round: usize) {
    let steps = users.iter_mut().enumerate().map(|(i, u)| {
        let url = urls[(i + round) % urls.len()].clone();
        async move { u.step(&url).await }
    });
    futures_util::future::join_all(steps).await;
}

async fn actors_of(c: &TestCluster, id: u64) -> Vec<(String, u64)> {
    let status = c.status(id).await.expect("status");
    status["actors"]
        .as_array()
        .expect("actors in /cluster/status")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().expect("name").to_owned(),
                a["restarts"].as_u64().expect("restarts"),
            )
        })
        .collect()
}

async fn inject(c: &TestCluster, id: u64, actor: &str) -> u16 {
    common::http()
        .post(c.url(id, &format!("/admin/actors/{actor}/panic")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_actor_panics_and_is_restarted_while_the_node_serves() {
    let mut c = TestCluster::start_with(
        3,
        ClusterOptions {
            tuning: Tuning::default(),
            env: vec![("SESSIONRAFT_UNSAFE_ACTOR_PANICS".into(), "1".into())],
            ..ClusterOptions::default()
        },
    );
    c.wait_ready(Duration::from_secs(30)).await;
    let expected = [
        "batcher",
        "cluster_version",
        "dashboard",
        "failover",
        "peer_names",
        "purger",
        "touch",
    ];
    for id in 1..=3 {
        let mut names: Vec<String> = actors_of(&c, id).await.into_iter().map(|a| a.0).collect();
        names.sort();
        assert_eq!(names, expected, "node {id}'s actors");
    }

    let mut users: Vec<User> = (0..USERS).map(|_| User::new()).collect();
    let urls: Vec<String> = (1..=3).map(|id| c.url(id, "/api/counter")).collect();
    let mut round = 0usize;
    // Every actor of every node panics once, with the users' load between the panics.
    for id in 1..=3 {
        for actor in expected {
            assert_eq!(inject(&c, id, actor).await, 200, "node {id} {actor}");
            let t = Instant::now();
            loop {
                round += 1;
                load(&mut users, &urls, round).await;
                let restarts = actors_of(&c, id).await;
                if restarts.iter().any(|(n, r)| n == actor && *r == 1) {
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "node {id}: {actor} not counted as restarted: {restarts:?}\n{}",
                    c.log(id)
                );
            }
        }
    }
    for id in 1..=3 {
        let restarts = actors_of(&c, id).await;
        assert!(
            restarts.iter().all(|(_, r)| *r == 1),
            "node {id}: every actor restarted exactly once: {restarts:?}"
        );
        for actor in expected {
            let label = format!("actor=\"{actor}\"");
            let n = common::metric(&c, id, "actor_restarts_total", &label).await;
            assert_eq!(
                n, 1.0,
                "node {id}: sessionraft_actor_restarts_total{{{label}}}"
            );
        }
        assert!(
            c.log(id).contains("actor panicked: restarting it"),
            "node {id} logs the panics"
        );
    }
    for _ in 0..10 {
        round += 1;
        load(&mut users, &urls, round).await;
    }

    // The restarted election watchers still elect: the leader dies, the others take over.
    let old = c.leader(Duration::from_secs(10)).await;
    c.kill(old);
    let t = Instant::now();
    let new = c.leader(Duration::from_secs(20)).await;
    assert_ne!(new, old);
    eprintln!(
        "leader {old} SIGKILLed; node {new} leads {:?} later",
        t.elapsed()
    );
    let alive: Vec<String> = (1..=3)
        .filter(|id| *id != old)
        .map(|id| c.url(id, "/api/counter"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, u) in users.iter_mut().enumerate() {
        // a few more increments each, through the survivors, until one is acknowledged
        let before = u.acked;
        while u.acked == before {
            assert!(Instant::now() < deadline, "no increment after the failover");
            u.step(&alive[i % alive.len()]).await;
            if u.acked == before {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    let mut errors = Vec::new();
    for (i, u) in users.iter().enumerate() {
        errors.extend(u.errors.iter().map(|e| format!("user {i}: {e}")));
        for url in &alive {
            let (status, counter) = read(&u.client, url).await;
            let ok =
                status == 200 && counter.is_some_and(|v| v >= u.acked && v <= u.acked + u.unknown);
            if !ok {
                errors.push(format!(
                    "user {i}: read {counter:?} ({status}) through {url}, acknowledged {} (+{} unknown)",
                    u.acked, u.unknown
                ));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let acked: i64 = users.iter().map(|u| u.acked).sum();
    eprintln!("{acked} increments acknowledged across 21 actor panics and a failover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_switch_no_actor_can_be_made_to_panic() {
    let c = TestCluster::start(1, Tuning::default());
    c.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(inject(&c, 1, "purger").await, 404);
    assert!(actors_of(&c, 1).await.iter().all(|(_, r)| *r == 0));
}

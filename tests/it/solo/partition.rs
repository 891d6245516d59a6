//! A leader cut off from the other nodes by a real network partition (iptables DROP rules
//! between the nodes' loopback addresses, in a chain of this test's own, removed at the end):
//! it turns unready (`/readyz` 503) within an election timeout or so (CheckQuorum: it has not
//! heard from a quorum), answers a request sent to it directly with a 503 that says the request
//! was not applied, well before the request deadline, and the other two nodes elect a leader
//! and serve.
//!
//! A follower cut off for a while, or paused (SIGSTOP), does not raise the cluster's term when
//! it returns (PreVote: its pre-votes go unanswered or refused, so it never campaigns), and the
//! leader stays the leader.
//!
//! Needs root (iptables), as CI runs. Each test has a chain and loopback addresses of its own.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::TestCluster;

const READY: Duration = Duration::from_secs(30);

/// An iptables chain hooked into INPUT; unhooked, flushed and deleted when dropped.
struct Chain(String);

fn iptables(args: &[&str]) -> bool {
    Command::new("iptables")
        .args(["-w", "5"])
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

impl Chain {
    fn new(tag: &str) -> Self {
        let name = format!("srtest-{tag}-{}", std::process::id());
        assert!(iptables(&["-N", &name]), "iptables -N {name} (needs root)");
        assert!(iptables(&["-I", "INPUT", "-j", &name]), "hook {name}");
        Self(name)
    }

    /// Drop TCP between `a` and `b`, both directions.
    fn cut(&self, a: &str, b: &str) {
        for (s, d) in [(a, b), (b, a)] {
            assert!(iptables(&[
                "-A", &self.0, "-p", "tcp", "-s", s, "-d", d, "-j", "DROP"
            ]));
        }
    }

    fn heal(&self) {
        assert!(iptables(&["-F", &self.0]));
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        iptables(&["-D", "INPUT", "-j", &self.0]);
        iptables(&["-F", &self.0]);
        iptables(&["-X", &self.0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_turns_unready_and_refuses_fast_while_the_others_serve() {
    let _turn = super::TURN.lock().await;
    let hosts: Vec<String> = (21..=23).map(|i| format!("127.0.0.{i}")).collect();
    let c = TestCluster::start_on_hosts(&hosts);
    c.wait_ready(READY).await;
    let leader = c.leader(READY).await;
    let others: Vec<u64> = (1..=3).filter(|n| *n != leader).collect();
    let http = common::http();
    let ready = |id: u64| {
        let url = c.url(id, "/readyz");
        let http = http.clone();
        async move { http.get(url).send().await.is_ok_and(|r| r.status() == 200) }
    };
    assert!(ready(leader).await, "the leader is ready before the cut");

    let chain = Chain::new("l");
    let l = &hosts[leader as usize - 1];
    for o in &others {
        chain.cut(l, &hosts[*o as usize - 1]);
    }
    let cut_at = Instant::now();

    // its /readyz turns 503 (the goal is within 1 s, the measured figure is printed; the CI
    // bound is generous: a shared 2-core machine)
    while ready(leader).await {
        assert!(
            cut_at.elapsed() < Duration::from_secs(3),
            "the isolated leader still ready after {:?}",
            cut_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("isolated leader unready after {:?}", cut_at.elapsed());

    // a request sent to it directly: 503 at once, saying it was not applied
    let sent = Instant::now();
    let r = http
        .post(c.url(leader, "/api/counter"))
        .send()
        .await
        .expect("an answer");
    let took = sent.elapsed();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers()
            .get("x-sessionraft-outcome")
            .and_then(|v| v.to_str().ok()),
        Some("not-applied")
    );
    assert!(r.headers().contains_key("retry-after"));
    // the request deadline is 3 s: refused before it, not by it (measured: printed)
    eprintln!("isolated leader refused a write after {took:?}");
    assert!(took < Duration::from_millis(2500), "refused after {took:?}");

    // the other two elect a leader and serve (the session cookie kept by hand: the nodes are
    // on different IPs, and a cookie jar scopes cookies by host)
    let deadline = Instant::now() + Duration::from_secs(10);
    let (cookie, served_by) = loop {
        let r = http
            .post(c.url(others[0], "/api/counter"))
            .send()
            .await
            .expect("an answer");
        if r.status() == 200 {
            let cookie = r
                .headers()
                .get("set-cookie")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.split(';').next())
                .map(str::to_string)
                .expect("a session cookie");
            let body: serde_json::Value = r.json().await.expect("json");
            assert_eq!(body["counter"], 1);
            break (cookie, body["served_by"].as_u64());
        }
        assert!(Instant::now() < deadline, "the majority side never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(served_by, Some(leader));
    let new_leader = c.status(others[0]).await.expect("status")["leader"].as_u64();
    assert!(
        new_leader.is_some_and(|n| n != leader),
        "a new leader: {new_leader:?}"
    );

    // healed: the old leader rejoins as a follower and serves the session, never an old copy
    chain.heal();
    drop(chain);
    let deadline = Instant::now() + READY;
    loop {
        let r = http
            .get(c.url(leader, "/api/counter"))
            .header("cookie", &cookie)
            .send()
            .await;
        if let Ok(r) = r {
            if r.status() == 200 {
                let body: serde_json::Value = r.json().await.expect("json");
                assert_eq!(body["counter"], 1, "the old leader, healed");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the old leader never served again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The term every node reports, and the leader each one follows.
async fn terms_and_leaders(c: &TestCluster) -> Vec<(u64, Option<u64>)> {
    let mut out = Vec::new();
    for id in 1..=3 {
        let s = c.status(id).await.expect("status");
        out.push((s["term"].as_u64().expect("term"), s["leader"].as_u64()));
    }
    out
}

/// Wait until every node reports the same term and leader, and return them.
async fn settled(c: &TestCluster) -> (u64, u64) {
    let deadline = Instant::now() + READY;
    loop {
        let v = terms_and_leaders(c).await;
        if let (Some(&(t, Some(l))), true) = (v.first(), v.windows(2).all(|w| w[0] == w[1])) {
            return (t, l);
        }
        assert!(Instant::now() < deadline, "the nodes never agreed: {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_or_paused_does_not_raise_the_term_when_it_returns() {
    let _turn = super::TURN.lock().await;
    let hosts: Vec<String> = (24..=26).map(|i| format!("127.0.0.{i}")).collect();
    let c = TestCluster::start_on_hosts(&hosts);
    c.wait_ready(READY).await;
    c.leader(READY).await;
    let (term, leader) = settled(&c).await;
    let follower = (1..=3).find(|n| *n != leader).expect("a follower");
    let others: Vec<u64> = (1..=3).filter(|n| *n != follower).collect();
    let http = common::http();

    // cut off for 3 s: ten election timeouts of the default settings
    let chain = Chain::new("f");
    let f = &hosts[follower as usize - 1];
    for o in &others {
        chain.cut(f, &hosts[*o as usize - 1]);
    }
    // the majority keeps serving meanwhile
    let r = http
        .post(c.url(leader, "/api/counter"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        r.status(),
        200,
        "the leader serves while a follower is cut off"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = c.status(follower).await.expect("status");
    assert_eq!(
        during["term"].as_u64(),
        Some(term),
        "the cut-off follower did not campaign: {during}"
    );
    chain.heal();
    drop(chain);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = terms_and_leaders(&c).await;
    assert!(
        after.iter().all(|v| *v == (term, Some(leader))),
        "term {term} and leader {leader} unchanged after the partition healed: {after:?}"
    );

    // paused for 2 s, then resumed
    let pid = c.pid(follower).expect("the follower's pid");
    {
        common::signal(pid, "STOP");
        let _resume = common::Paused(pid);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = terms_and_leaders(&c).await;
    assert!(
        after.iter().all(|v| *v == (term, Some(leader))),
        "term {term} and leader {leader} unchanged after the pause: {after:?}"
    );
}

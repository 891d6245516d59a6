//! The operator experience, for real: `scripts/cluster.sh` runs a 3-node cluster behind HAProxy
//! on free ports and temporary dirs, and the `sessionraft` CLI changes it.
//!
//! One cluster goes through every phase in order (each phase prints what it measured):
//! 1. `up` (twice: no duplicates), users through the load balancer;
//! 2. `kill` the leader and `restart` it underneath them: sessions kept, HAProxy takes the node
//!    out and back;
//! 3. add a 4th node (`cluster.sh add-node` → `sessionraft cluster add-node`) and remove it;
//!    unsafe steps refused;
//! 4. `rolling-restart` under a light load: only 503s/504s (retried) fail, nothing lost; then
//!    `upgrade BIN` (refused for a binary that does not run; leader first, to the same binary),
//!    every session still there;
//! 5. `sessionraft backup`, `down`, wipe, `up`, `restore`, compare checksums; the users'
//!    cookies find their sessions again;
//! 6. `down` leaves no process behind.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{binary, free_port, read, user, write_config, Tuning, ADMIN_TOKEN};
use serde_json::Value;
use tempfile::TempDir;

struct Ops {
    dir: TempDir,
    config: PathBuf,
    run_dir: PathBuf,
    ports: Vec<u16>,
    lb: String,
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Ops {
    fn new() -> Self {
        let dir = TempDir::new().expect("temp dir");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let lb_port = free_port();
        let config = write_config(dir.path(), &ports, &Tuning::default(), Some(lb_port));
        let run_dir = dir.path().join("run");
        Self {
            dir,
            config,
            run_dir,
            ports,
            lb: format!("127.0.0.1:{lb_port}"),
        }
    }

    /// `scripts/cluster.sh ARGS` against this cluster's config and run dir.
    fn sh(&self, args: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh");
        Command::new(script)
            .args(args)
            .env("SESSIONRAFT_CONFIG", &self.config)
            .env("SESSIONRAFT_RUN_DIR", &self.run_dir)
            .env("SESSIONRAFT_BIN", binary())
            .output()
            .expect("run cluster.sh")
    }

    fn sh_ok(&self, args: &[&str]) -> String {
        let t = Instant::now();
        let out = self.sh(args);
        assert!(
            out.status.success(),
            "cluster.sh {args:?} failed: {}",
            show(&out)
        );
        println!("cluster.sh {args:?}: {:.2} s", t.elapsed().as_secs_f64());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `sessionraft ARGS --config <this config>`.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("run sessionraft")
    }

    fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.run_dir.join(format!("{name}.pid")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    fn node_url(&self, port: u16, path: &str) -> String {
        format!("http://127.0.0.1:{port}{path}")
    }

    fn lb_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.lb)
    }

    /// HAProxy's view: server name -> status (UP, DOWN, ...).
    async fn lb_servers(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Ok(r) = common::http()
            .get(self.lb_url("/haproxy-stats;csv"))
            .send()
            .await
        else {
            return out;
        };
        let text = r.text().await.unwrap_or_default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let cols: Vec<&str> = line.split(',').collect();
            if cols.len() > 17 && cols[1] != "FRONTEND" && cols[1] != "BACKEND" {
                out.insert(cols[1].to_owned(), cols[17].to_owned());
            }
        }
        out
    }

    /// Wait until HAProxy reports exactly `up` as the servers that are UP.
    async fn wait_lb(&self, up: &[&str], timeout: Duration) -> Duration {
        let t = Instant::now();
        loop {
            let s = self.lb_servers().await;
            let now_up: Vec<&str> = s
                .iter()
                .filter(|(_, st)| st.starts_with("UP"))
                .map(|(n, _)| n.as_str())
                .collect();
            if now_up == up {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < timeout,
                "HAProxy servers {s:?}, expected exactly {up:?} UP"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn status(&self, port: u16) -> Option<Value> {
        common::http()
            .get(self.node_url(port, "/cluster/status"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// The leader's id and port, as reported by a node that has one.
    async fn leader(&self) -> (u64, u16) {
        let t = Instant::now();
        loop {
            for (i, port) in self.ports.iter().enumerate() {
                if let Some(s) = self.status(*port).await {
                    if s["role"] == "leader" {
                        return (i as u64 + 1, *port);
                    }
                }
            }
            assert!(t.elapsed() < Duration::from_secs(20), "no leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Ops {
    fn drop(&mut self) {
        // Whatever happened, stop what the script started (by its pid files).
        let _ = self.sh(&["down"]);
    }
}

/// A child process killed (by pid) and reaped when dropped, even when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// A user of the demo app through the load balancer: increments retried on 503/504 (the
/// documented answer while no quorum or no leader), every acknowledged value remembered.
struct Visitor {
    client: reqwest::Client,
    /// The counter value of the last acknowledged increment.
    acked: i64,
    /// Increments answered 503 or 504 and retried (a 504 may have been applied).
    retried_5xx: u32,
    /// Nodes that served this user.
    served_by: std::collections::BTreeSet<u64>,
}

impl Visitor {
    fn new() -> Self {
        Self {
            client: user(),
            acked: 0,
            retried_5xx: 0,
            served_by: Default::default(),
        }
    }

    /// One increment, retried on 503/504 until acknowledged. Any other failure is returned.
    async fn increment(&mut self, url: &str) -> Result<(), String> {
        let t = Instant::now();
        loop {
            let (status, c, by) = match self.client.post(url).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    (status, v["counter"].as_i64(), v["served_by"].as_u64())
                }
                Err(e) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0);
                    return Err(format!(
                        "increment failed without an answer after {:?} (unix time {now:.3}): {e:?}",
                        t.elapsed()
                    ));
                }
            };
            match (status, c) {
                (200, Some(c)) => {
                    // Nothing acknowledged is ever lost: the counter only moves forward from the
                    // last acknowledged value (by more than 1 only after a retried 504: outcome unknown).
                    if c <= self.acked {
                        return Err(format!(
                            "counter went from acknowledged {} to {c}: a write was lost",
                            self.acked
                        ));
                    }
                    self.acked = c;
                    self.served_by.extend(by);
                    return Ok(());
                }
                (503 | 504, _) if t.elapsed() < Duration::from_secs(20) => {
                    self.retried_5xx += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                (status, c) => {
                    return Err(format!(
                        "increment answered {status} (counter {c:?}) after {:?}",
                        t.elapsed()
                    ))
                }
            }
        }
    }

    /// The session as a read sees it must hold the last acknowledged value.
    async fn check(&self, url: &str, what: &str) {
        let (status, c) = read(&self.client, url).await;
        assert_eq!(status, 200, "{what}: read status");
        assert_eq!(
            c,
            Some(self.acked),
            "{what}: a read must see every acknowledged write"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_scripts_run_a_load_balanced_cluster_through_failures_changes_and_restore() {
    let ops = Ops::new();
    let counter = ops.lb_url("/api/counter");

    // ---- 1. up, twice ------------------------------------------------------------------------
    let out = ops.sh_ok(&["up"]);
    assert!(
        out.contains(&ops.lb),
        "up prints the load balancer URL: {out}"
    );
    let pids: Vec<Option<u32>> = ["node1", "node2", "node3", "haproxy"]
        .iter()
        .map(|n| ops.pid(n))
        .collect();
    assert!(
        pids.iter().all(|p| p.is_some_and(alive)),
        "every node and HAProxy runs: {pids:?}"
    );
    ops.sh_ok(&["up"]);
    let again: Vec<Option<u32>> = ["node1", "node2", "node3", "haproxy"]
        .iter()
        .map(|n| ops.pid(n))
        .collect();
    assert_eq!(pids, again, "a second up starts nothing new");
    ops.wait_lb(&["node1", "node2", "node3"], Duration::from_secs(15))
        .await;
    let status = ops.sh_ok(&["status"]);
    assert!(status.contains("leader"), "status table: {status}");

    let mut users: Vec<Visitor> = (0..6).map(|_| Visitor::new()).collect();
    for _ in 0..3 {
        for u in &mut users {
            u.increment(&counter)
                .await
                .expect("increment through the LB");
        }
    }
    let spread: std::collections::BTreeSet<u64> =
        users.iter().flat_map(|u| u.served_by.clone()).collect();
    assert!(
        spread.len() >= 2,
        "round robin spreads requests over the nodes: {spread:?}"
    );
    for u in &users {
        u.check(&counter, "after up").await;
    }

    // ---- 2. kill the leader, restart it -------------------------------------------------------
    let (leader, _) = ops.leader().await;
    let t = Instant::now();
    ops.sh_ok(&["kill", &leader.to_string()]);
    for u in &mut users {
        u.increment(&counter)
            .await
            .expect("increment while the leader is dead");
    }
    println!(
        "after SIGKILL of leader {leader}: every user's increment acknowledged within {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let others: Vec<String> = (1..=3)
        .filter(|i| *i != leader)
        .map(|i| format!("node{i}"))
        .collect();
    let others: Vec<&str> = others.iter().map(String::as_str).collect();
    let took = ops.wait_lb(&others, Duration::from_secs(10)).await;
    println!(
        "HAProxy took node {leader} out within {:.2} s",
        took.as_secs_f64()
    );
    ops.sh_ok(&["restart", &leader.to_string()]);
    let took = ops
        .wait_lb(&["node1", "node2", "node3"], Duration::from_secs(15))
        .await;
    println!(
        "HAProxy put node {leader} back {:.2} s after it was ready",
        took.as_secs_f64()
    );
    for u in &mut users {
        u.increment(&counter)
            .await
            .expect("increment after restart");
        u.check(&counter, "after restart").await;
        u.check(
            &ops.node_url(ops.ports[leader as usize - 1], "/api/counter"),
            "read on the restarted node",
        )
        .await;
    }

    // ---- 3. add a 4th node, remove it; unsafe steps refused ----------------------------------
    let p4 = free_port();
    let a4 = format!("127.0.0.1:{p4}");
    let t = Instant::now();
    ops.sh_ok(&["add-node", "4", &a4, &a4]);
    println!("add-node 4: voter after {:.2} s", t.elapsed().as_secs_f64());
    let s = ops.status(p4).await.expect("node 4 status");
    let members = s["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 4, "{s}");
    assert!(members.iter().all(|m| m["voter"] == true), "{s}");
    ops.wait_lb(
        &["node1", "node2", "node3", "node4"],
        Duration::from_secs(15),
    )
    .await;
    for u in &users {
        u.check(&format!("http://{a4}/api/counter"), "read on node 4")
            .await;
    }
    // Unsafe or invalid steps are refused with a message, and change nothing.
    let out = ops.cli(&["cluster", "remove-node", "9"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a member"),
        "{}",
        show(&out)
    );
    let out = ops.cli(&["cluster", "add-node", "--id", "4", "--http", &a4]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already a voter"),
        "{}",
        show(&out)
    );
    // A learner left half-added blocks another change until it is promoted or removed.
    let admin = |path: &str| {
        common::http()
            .post(ops.node_url(ops.ports[0], path))
            .bearer_auth(ADMIN_TOKEN)
    };
    // Node 5 runs, is added as a learner through the API, and is never promoted.
    let p5 = free_port();
    let _node5 = KillOnDrop(
        Command::new(binary())
            .args([
                "serve",
                "--node",
                "5",
                "--http",
                &format!("127.0.0.1:{p5}"),
                "--data-dir",
            ])
            .arg(ops.dir.path().join("data/node5"))
            .arg("--config")
            .arg(&ops.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start node 5"),
    );
    let t = Instant::now();
    while ops.status(p5).await.is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "node 5 did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = admin("/admin/nodes")
        .json(&serde_json::json!({ "id": 5, "addr": format!("127.0.0.1:{p5}") }))
        .send()
        .await
        .expect("admin");
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let r = admin("/admin/nodes")
        .json(&serde_json::json!({ "id": 6, "addr": "127.0.0.1:1" }))
        .send()
        .await
        .expect("admin");
    assert_eq!(r.status().as_u16(), 400);
    let body = r.text().await.unwrap_or_default();
    assert!(
        body.contains("never promoted"),
        "a second change while one is unfinished is refused: {body}"
    );
    let out = ops.cli(&["cluster", "remove-node", "5"]);
    assert!(out.status.success(), "remove learner 5: {}", show(&out));
    drop(_node5);
    let t = Instant::now();
    ops.sh_ok(&["remove-node", "4"]);
    println!("remove-node 4: {:.2} s", t.elapsed().as_secs_f64());
    let s = ops.status(ops.ports[0]).await.expect("status");
    assert_eq!(s["members"].as_array().map(Vec::len), Some(3), "{s}");
    ops.wait_lb(&["node1", "node2", "node3"], Duration::from_secs(15))
        .await;
    assert!(
        ops.pid("node4").is_none_or(|p| !alive(p)),
        "remove-node stops the removed node"
    );
    for u in &mut users {
        u.increment(&counter).await.expect("increment after remove");
    }

    // ---- 4. rolling restart under a light load -------------------------------------------------
    let before: Vec<Option<u32>> = ["node1", "node2", "node3"]
        .iter()
        .map(|n| ops.pid(n))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for mut u in users.drain(..) {
        let (stop, url) = (stop.clone(), counter.clone());
        load.push(tokio::spawn(async move {
            let mut ok = 0u32;
            while !stop.load(Ordering::Relaxed) {
                u.increment(&url).await?;
                ok += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok::<_, String>((u, ok))
        }));
    }
    let t = Instant::now();
    let rr = {
        let out = ops.sh(&["rolling-restart"]);
        assert!(out.status.success(), "rolling-restart: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    println!(
        "rolling-restart took {:.2} s:\n{rr}",
        t.elapsed().as_secs_f64()
    );
    stop.store(true, Ordering::Relaxed);
    let mut total_ok = 0;
    let mut total_5xx = 0;
    for h in load {
        let (u, ok) = h.await.expect("load task").unwrap_or_else(|e| {
            // The run dir (HAProxy's and every node's log) outlives the test's temp dir, to
            // be read against the failure's time.
            let kept = std::env::temp_dir().join(format!(
                "sessionraft-operations-failure-{}",
                std::process::id()
            ));
            let copied = Command::new("cp")
                .arg("-r")
                .arg(&ops.run_dir)
                .arg(&kept)
                .status()
                .is_ok_and(|s| s.success());
            let log =
                std::fs::read_to_string(ops.run_dir.join("logs/haproxy.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "during the rolling restart: {e}\nlogs kept in {}\nHAProxy log (newest first):\n{}",
                if copied {
                    kept.display().to_string()
                } else {
                    "(nothing: the copy failed)".into()
                },
                tail.join("\n")
            )
        });
        total_ok += ok;
        total_5xx += u.retried_5xx;
        users.push(u);
    }
    println!(
        "rolling restart under load: {total_ok} increments acknowledged, {total_5xx} answered 503/504 and retried, no other failure"
    );
    assert!(total_ok > 0);
    let after: Vec<Option<u32>> = ["node1", "node2", "node3"]
        .iter()
        .map(|n| ops.pid(n))
        .collect();
    for (b, a) in before.iter().zip(&after) {
        assert!(
            b.is_some() && a.is_some() && b != a,
            "every node restarted: {before:?} -> {after:?}"
        );
    }
    for u in &users {
        u.check(&counter, "after rolling restart").await;
    }

    // ---- 4b. upgrade: refused without a runnable binary; then node by node, leader first ----
    // (to the same release: tests/it/solo/upgrade.rs upgrades from the previous one; this runs the
    // operator's command itself.)
    let out = ops.sh(&["upgrade", "/nonexistent/sessionraft"]);
    assert!(!out.status.success(), "a missing binary: {}", show(&out));
    assert!(
        show(&out).contains("nothing was changed"),
        "refused before anything changed: {}",
        show(&out)
    );
    let bin = binary();
    let bin = bin.to_str().expect("a UTF-8 path");
    let t = Instant::now();
    let out = ops.sh(&["upgrade", bin, "--order", "leader-first"]);
    let text = show(&out);
    assert!(out.status.success(), "upgrade: {text}");
    println!("upgrade took {:.2} s:\n{text}", t.elapsed().as_secs_f64());
    for line in [
        "upgrade 1/3: node",
        "upgrade 3/3: node",
        "caught up to index",
        "upgrade done: 3 nodes",
    ] {
        assert!(text.contains(line), "the progress says {line:?}: {text}");
    }
    let version = format!("cluster version: {}", {
        let mut v = env!("CARGO_PKG_VERSION").splitn(3, '.');
        format!("{}.{}", v.next().unwrap_or("0"), v.next().unwrap_or("0"))
    });
    assert!(text.contains(&version), "{version}: {text}");
    for u in &users {
        u.check(&counter, "after upgrade").await;
    }

    // ---- 5. backup, wipe, restore, compare ----------------------------------------------------
    let b1 = ops.dir.path().join("b1.backup");
    let out = ops.cli(&["backup", "--to", b1.to_str().expect("path")]);
    assert!(out.status.success(), "backup: {}", show(&out));
    let sum1 = content_sha(&out);
    ops.sh_ok(&["down"]);
    for i in 1..=3 {
        std::fs::remove_dir_all(ops.dir.path().join(format!("data/node{i}"))).expect("wipe");
    }
    ops.sh_ok(&["up"]);
    let digest: Value = common::http()
        .get(ops.node_url(ops.ports[0], "/cluster/digest"))
        .send()
        .await
        .expect("digest")
        .json()
        .await
        .expect("json");
    assert_eq!(
        digest["sessions"], 0,
        "the wiped cluster starts empty: {digest}"
    );
    let t = Instant::now();
    let out = ops.cli(&["restore", "--from", b1.to_str().expect("path")]);
    assert!(out.status.success(), "restore: {}", show(&out));
    println!(
        "restore: {:.2} s: {}",
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout)
    );
    // A second restore into the now non-empty cluster is refused.
    let out = ops.cli(&["restore", "--from", b1.to_str().expect("path")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds sessions"),
        "{}",
        show(&out)
    );
    let b2 = ops.dir.path().join("b2.backup");
    let out = ops.cli(&["backup", "--to", b2.to_str().expect("path")]);
    assert!(out.status.success(), "backup: {}", show(&out));
    assert_eq!(
        sum1,
        content_sha(&out),
        "backup -> wipe -> restore -> backup: same content"
    );
    ops.wait_lb(&["node1", "node2", "node3"], Duration::from_secs(15))
        .await;
    for u in &mut users {
        u.check(&counter, "after restore").await;
        u.increment(&counter)
            .await
            .expect("increment after restore");
    }

    // ---- 6. down leaves nothing ---------------------------------------------------------------
    let pids: Vec<u32> = ["node1", "node2", "node3", "haproxy"]
        .iter()
        .filter_map(|n| ops.pid(n))
        .collect();
    assert_eq!(pids.len(), 4);
    ops.sh_ok(&["down"]);
    for p in pids {
        assert!(!alive(p), "pid {p} still runs after down");
    }
    ops.sh_ok(&["down"]);
}

fn content_sha(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("content sha256 ")
        .nth(1)
        .map(|s| s.trim().trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("no checksum in {}", show(out)))
}

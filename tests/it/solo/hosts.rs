//! Across hosts, for real. `scripts/hosts.sh` makes three hosts out of Linux network namespaces
//! (each its own IPv4 address on a private bridge, its own `/etc/hosts` naming every host) and
//! HAProxy in a fourth, and starts the real binary in each host with the environment the
//! Kubernetes manifest gives a pod: `deploy/kubernetes/configmap.yaml`'s `cluster.toml` (peers
//! by name only, `sessionraft-N.sessionraft:7101`), `HOSTNAME=sessionraft-N` (the node id from
//! its ordinal), `SESSIONRAFT_LISTEN__IP=0.0.0.0`, the secrets in the environment, the same
//! data path in every host (each its own directory mounted there). Users with cookie jars
//! increment their session's counter through the load balancer the whole time. In sequence, on
//! one cluster:
//!
//! 1. **forms**: the cluster forms from names alone; every member's address is a name; a user
//!    is served through the load balancer.
//! 2. **reschedule**: a follower's host, then the leader's, is destroyed and made again under
//!    the same name with a new IP and the same data; every hosts file rewritten; nobody else
//!    restarted. The users are served throughout: the longest time without a successful
//!    request (the *window*) is printed, bounded by 1 s for a follower (CI bound 2 s) and by one
//!    election for the leader (the term rises by at most one — by none when the leader is back
//!    before the others elected, as it resumes leading; CI tolerates a split vote, +2; CI bound
//!    2 s on the window).
//! 3. **disk lost**: a follower's host comes back under its name with an empty data directory
//!    (after the leader snapshotted and purged its log); `sessionraft cluster rejoin-node ID`
//!    brings it back; it catches up by snapshot and is a voter again.
//! 4. **link cut**: the leader's link is taken down (its switch port: not a signal); the
//!    others elect a leader (window printed; CI bound 2 s, as `tests/it/solo/partition.rs`); after the
//!    link is back the old leader follows without raising the term.
//! 5. **majority lost**: two hosts deleted for good; the survivor stopped,
//!    `sessionraft recover --force-new-cluster` (refused without the flag), started: it serves
//!    every acknowledged counter; the two come back with empty data via `rejoin-node`; all
//!    three converge (same applied index and digest).
//!
//! Lines `hosts: <scenario>: window_ms=..., term ...` carry the measured figures.
//!
//! Needs root (network namespaces, as CI runs); skipped otherwise with the reason printed.
//! Every namespace, link and file the run made is removed when the test ends, pass or fail
//! (`scripts/hosts.sh down` from a guard's Drop).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const READY: Duration = Duration::from_secs(60);
/// The bound on a follower's window, and the bound CI asserts on every window (timing
/// on a shared 2-core machine is noisy; the measured figure is printed either way).
const FOLLOWER_TARGET_MS: u64 = 1000;
const CI_BOUND_MS: u64 = 2000;
/// Virtual users of the load, each one request at a time, `PACE` apart.
const USERS: usize = 6;
const PACE: Duration = Duration::from_millis(100);

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/hosts.sh")
}

fn host(id: u64) -> String {
    format!("sessionraft-{}", id - 1)
}

/// A run of `scripts/hosts.sh`: its state directory; `down` when dropped (a no-op when nothing
/// was made), also when the test panics (then the tails of the logs are printed first).
struct Hosts {
    dir: tempfile::TempDir,
    up: Value,
    http: reqwest::Client,
}

struct Exec {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Hosts {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sessionraft-hosts-")
            .tempdir()
            .expect("temp dir");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(1500))
            .build()
            .expect("client");
        Self {
            dir,
            up: Value::Null,
            http,
        }
    }

    fn state(&self) -> &Path {
        self.dir.path()
    }

    /// `scripts/hosts.sh --state DIR ARGS`: its JSON events; panics (with its output) when it
    /// fails.
    async fn run(&self, args: &[&str]) -> Vec<Value> {
        let out = tokio::process::Command::new(script())
            .arg("--state")
            .arg(self.state())
            .args(args)
            .output()
            .await
            .expect("run scripts/hosts.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "scripts/hosts.sh {args:?}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The last event of a command (the one naming the operation).
    async fn op(&self, args: &[&str]) -> Value {
        self.run(args).await.pop().expect("an event")
    }

    async fn up(&mut self, env: &[&str]) {
        let bin = common::binary();
        let mut args = vec!["up", "--bin", bin.to_str().expect("utf-8 path")];
        for e in env {
            args.extend(["--env", e]);
        }
        self.up = self.op(&args).await;
        assert_eq!(self.up["event"], "up", "{}", self.up);
    }

    /// A command inside host `id`, as in its pod (`sessionraft` = the run's binary).
    async fn exec(&self, id: u64, argv: &[&str]) -> Exec {
        let out = tokio::process::Command::new(script())
            .arg("--state")
            .arg(self.state())
            .args(["exec", &host(id), "--"])
            .args(argv)
            .output()
            .await
            .expect("run scripts/hosts.sh exec");
        Exec {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn lb(&self) -> String {
        self.up["lb_url"].as_str().expect("lb_url").to_string()
    }

    fn admin_token(&self) -> String {
        self.up["admin_token"]
            .as_str()
            .expect("admin_token")
            .to_string()
    }

    /// Node `id` and only it, through HAProxy's one-server listener on 127.0.0.1.
    fn direct(&self, id: u64, path: &str) -> String {
        let h = &self.up["hosts"][(id - 1) as usize];
        assert_eq!(h["node_id"], id);
        format!("{}{path}", h["direct_url"].as_str().expect("direct_url"))
    }

    fn node_log(&self, id: u64) -> String {
        std::fs::read_to_string(self.state().join(format!("hosts/{}/node.log", host(id))))
            .unwrap_or_default()
    }

    /// The pid of every running node, from `status`.
    async fn pids(&self) -> BTreeMap<u64, u64> {
        let s = self.op(&["status"]).await;
        s["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .filter(|h| h["running"] == true)
            .map(|h| {
                (
                    h["node_id"].as_u64().expect("id"),
                    h["pid"].as_u64().expect("pid"),
                )
            })
            .collect()
    }

    async fn status(&self, id: u64) -> Option<Value> {
        let r = self
            .http
            .get(self.direct(id, "/cluster/status"))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    async fn ready(&self, id: u64) -> bool {
        self.http
            .get(self.direct(id, "/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    }

    /// Waits until every node of `ids` is ready and they agree on a leader among them and a
    /// term, and each has applied the leader's last log index (as of the first look); returns
    /// (leader, term).
    async fn settled(&self, ids: &[u64], timeout: Duration) -> (u64, u64) {
        let deadline = Instant::now() + timeout;
        let mut target: Option<u64> = None;
        loop {
            let mut why = String::new();
            let mut seen = Vec::new();
            for &id in ids {
                match self.status(id).await {
                    Some(s) if self.ready(id).await => seen.push((id, s)),
                    Some(_) => why = format!("node {id} not ready"),
                    None => why = format!("node {id} does not answer"),
                }
            }
            if why.is_empty() {
                let first = &seen[0].1;
                let (leader, term) = (first["leader"].as_u64(), first["term"].as_u64());
                if let (Some(leader), Some(term)) = (leader, term) {
                    let agree = seen.iter().all(|(_, s)| {
                        s["leader"].as_u64() == Some(leader) && s["term"].as_u64() == Some(term)
                    });
                    if !agree {
                        why = format!(
                            "no agreement: {:?}",
                            seen.iter()
                                .map(|(id, s)| (id, s["leader"].clone(), s["term"].clone()))
                                .collect::<Vec<_>>()
                        );
                    } else if let Some((_, ls)) = seen.iter().find(|(id, _)| *id == leader) {
                        let want =
                            *target.get_or_insert(ls["last_log_index"].as_u64().unwrap_or(0));
                        match seen
                            .iter()
                            .find(|(_, s)| s["applied_index"].as_u64().unwrap_or(0) < want)
                        {
                            Some((id, s)) => {
                                why = format!("node {id} applied {} < {want}", s["applied_index"])
                            }
                            None => return (leader, term),
                        }
                    } else {
                        why = format!("leader {leader} is not one of {ids:?}");
                    }
                } else {
                    why = format!("no leader: {first}");
                }
            }
            assert!(
                Instant::now() < deadline,
                "nodes {ids:?} not settled after {timeout:?}: {why}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every node of `ids` at the same applied index with the same state-machine digest.
    async fn converged(&self, ids: &[u64]) -> Value {
        let deadline = Instant::now() + READY;
        loop {
            let mut digests = Vec::new();
            for &id in ids {
                let d: Option<Value> = match self
                    .http
                    .get(self.direct(id, "/cluster/digest"))
                    .send()
                    .await
                {
                    Ok(r) => r.json().await.ok(),
                    Err(_) => None,
                };
                digests.push(d.map(|d| (d["applied_index"].clone(), d["digest"].clone())));
            }
            if let Some(Some(first)) = digests.first() {
                if digests.iter().all(|d| d.as_ref() == Some(first)) {
                    return first.1.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "nodes {ids:?} did not converge: {digests:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls `ids` every 20 ms until one of them reports a leader other than `old`: the ms
    /// it took.
    async fn first_other_leader(&self, ids: &[u64], old: u64) -> u128 {
        let t = Instant::now();
        loop {
            for &id in ids {
                if let Some(s) = self.status(id).await {
                    if s["leader"].as_u64().is_some_and(|l| l != old) {
                        return t.elapsed().as_millis();
                    }
                }
            }
            assert!(t.elapsed() < READY, "no new leader among {ids:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn snapshot(&self, id: u64) -> Value {
        let r = self
            .http
            .post(self.direct(id, "/admin/snapshot"))
            .bearer_auth(self.admin_token())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("admin snapshot");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "admin snapshot: {status} {body}");
        body
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for id in 1..=3 {
                let log = self.node_log(id);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- {} (last 40 lines)", host(id));
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
            if let Ok(ev) = std::fs::read_to_string(self.state().join("events.jsonl")) {
                eprintln!("---- events (scripts/hosts.sh)");
                for l in ev.lines().filter(|l| !l.contains("\"event\": \"status\"")) {
                    eprintln!("{}", l.chars().take(400).collect::<String>());
                }
            }
        }
        let _ = std::process::Command::new(script())
            .arg("--state")
            .arg(self.dir.path())
            .arg("down")
            .stdout(std::process::Stdio::null())
            .status();
    }
}

// ------------------------------------------------------------------------------------------
// The users

#[derive(Clone, Debug)]
enum Outcome {
    Ok(i64),
    /// Certainly not applied (503 not-applied, 409).
    Fail(u16),
    /// Maybe applied (a timeout, a 504, a lost connection).
    Unknown(String),
}

#[derive(Clone, Debug)]
struct Op {
    user: usize,
    end: Duration,
    outcome: Outcome,
}

/// `USERS` browsers, each incrementing its counter through the load balancer one request at a
/// time, every outcome recorded.
struct Users {
    clients: Vec<reqwest::Client>,
    lb: String,
    t0: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
    /// Per user: the highest counter acknowledged, and how many increments are unknown.
    acked: Vec<i64>,
    unknown: Vec<u32>,
}

struct Running {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    from: Duration,
}

async fn increment(client: &reqwest::Client, url: &str) -> Outcome {
    match client.post(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            match (status, body["counter"].as_i64()) {
                (200, Some(c)) => Outcome::Ok(c),
                (503 | 409, _) => Outcome::Fail(status),
                _ => Outcome::Unknown(format!("status {status}")),
            }
        }
        Err(e) => Outcome::Unknown(e.to_string()),
    }
}

impl Users {
    /// Each user's session made (its first increment: counter 1).
    async fn new(lb: &str) -> Self {
        let clients: Vec<reqwest::Client> = (0..USERS)
            .map(|_| {
                reqwest::Client::builder()
                    .cookie_store(true)
                    .timeout(Duration::from_secs(5))
                    .build()
                    .expect("client")
            })
            .collect();
        let url = format!("{lb}/api/counter");
        let mut acked = Vec::new();
        for c in &clients {
            let deadline = Instant::now() + READY;
            loop {
                if let Outcome::Ok(n) = increment(c, &url).await {
                    assert_eq!(n, 1, "a new session counts from 1");
                    acked.push(n);
                    break;
                }
                assert!(Instant::now() < deadline, "no user served through {lb}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Self {
            clients,
            lb: lb.to_string(),
            t0: Instant::now(),
            ops: Arc::new(Mutex::new(Vec::new())),
            acked,
            unknown: vec![0; USERS],
        }
    }

    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    fn start(&self) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{}/api/counter", self.lb);
        let tasks = self
            .clients
            .iter()
            .enumerate()
            .map(|(user, client)| {
                let (client, url, stop, ops, t0) = (
                    client.clone(),
                    url.clone(),
                    stop.clone(),
                    self.ops.clone(),
                    self.t0,
                );
                tokio::spawn(async move {
                    // spread the users over the pace
                    tokio::time::sleep(PACE * user as u32 / USERS as u32).await;
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = increment(&client, &url).await;
                        let end = t0.elapsed();
                        ops.lock().unwrap_or_else(|e| e.into_inner()).push(Op {
                            user,
                            end,
                            outcome,
                        });
                        tokio::time::sleep(PACE).await;
                    }
                })
            })
            .collect();
        Running {
            stop,
            tasks,
            from: self.now(),
        }
    }

    /// Stops the load; checks every user's answers (each acknowledged counter above the last,
    /// by at most the increments in doubt in between); the window: the longest time without a
    /// successful request between the start of `fault` and the end of the load.
    async fn stop(&mut self, run: Running, fault_at: Duration) -> Window {
        run.stop.store(true, Ordering::Relaxed);
        for t in run.tasks {
            t.await.expect("user task");
        }
        let ops: Vec<Op> = std::mem::take(&mut *self.ops.lock().unwrap_or_else(|e| e.into_inner()));
        let mut w = Window::default();
        for op in &ops {
            let u = op.user;
            match &op.outcome {
                Outcome::Ok(n) => {
                    assert!(
                        *n > self.acked[u] && *n <= self.acked[u] + 1 + self.unknown[u] as i64,
                        "user {u}: counter {n} after {} acknowledged and {} in doubt",
                        self.acked[u],
                        self.unknown[u]
                    );
                    self.unknown[u] -= (*n - self.acked[u] - 1) as u32;
                    self.acked[u] = *n;
                    w.ok += 1;
                }
                Outcome::Fail(code) => {
                    w.failed += 1;
                    w.errors.push(format!("refused {code}"));
                }
                Outcome::Unknown(e) => {
                    self.unknown[u] += 1;
                    w.unknown += 1;
                    w.errors.push(e.clone());
                }
            }
        }
        // the longest gap between successive successful completions after the fault began
        let mut oks: Vec<Duration> = ops
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Ok(_)))
            .map(|o| o.end)
            .collect();
        oks.sort();
        let mut last = oks
            .iter()
            .rev()
            .find(|t| **t <= fault_at)
            .copied()
            .unwrap_or(fault_at.max(run.from));
        for t in oks.iter().filter(|t| **t > fault_at) {
            w.ms = w.ms.max((*t - last).as_millis() as u64);
            last = *t;
        }
        assert!(w.ok > 0, "no request succeeded: {w:?}");
        w
    }

    /// Every user's counter read through the load balancer: at least what was acknowledged,
    /// at most that plus the increments in doubt.
    async fn check_counters(&self, what: &str) {
        let url = format!("{}/api/counter", self.lb);
        for (u, c) in self.clients.iter().enumerate() {
            let deadline = Instant::now() + READY;
            let n = loop {
                if let Ok(r) = c.get(&url).send().await {
                    if r.status() == 200 {
                        let v: Value = r.json().await.expect("json");
                        break v["counter"].as_i64().expect("counter");
                    }
                }
                assert!(Instant::now() < deadline, "{what}: user {u} not served");
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            assert!(
                n >= self.acked[u] && n <= self.acked[u] + self.unknown[u] as i64,
                "{what}: user {u} reads {n}; acknowledged {}, in doubt {}",
                self.acked[u],
                self.unknown[u]
            );
        }
    }
}

#[derive(Default, Debug)]
struct Window {
    ms: u64,
    ok: u64,
    failed: u64,
    unknown: u64,
    errors: Vec<String>,
}

impl Window {
    fn figures(&self) -> String {
        let mut errors = self.errors.clone();
        errors.dedup();
        errors.truncate(3);
        format!(
            "window_ms={}, requests ok={} failed={} unknown={}{}",
            self.ms,
            self.ok,
            self.failed,
            self.unknown,
            if errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", errors.join("; "))
            }
        )
    }
}

// ------------------------------------------------------------------------------------------

/// `text` without terminal colour codes (the nodes' logs carry them).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn has_ipv4(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.parse::<std::net::Ipv4Addr>().is_ok() && *w != "0.0.0.0")
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_hosts_names_reschedules_a_lost_disk_a_cut_link_and_a_lost_majority() {
    let _turn = super::TURN.lock().await;
    if !is_root() {
        eprintln!(
            "hosts: SKIPPED: needs root (it makes network namespaces, a bridge and veth links; \
             CI runs as root)"
        );
        return;
    }
    let mut h = Hosts::new();
    // small snapshots, so that a wiped node can only catch up by one (the node purges its log
    // once a snapshot is at index >= 60 with these values)
    h.up(&[
        "SESSIONRAFT_RAFT__SNAPSHOT_LOGS_SINCE_LAST=50",
        "SESSIONRAFT_RAFT__MAX_IN_SNAPSHOT_LOG_TO_KEEP=10",
        "SESSIONRAFT_LOG=info,openraft=warn",
    ])
    .await;
    let all = [1u64, 2, 3];

    // ---------------------------------------------------------------- 1. forms from names
    let t = Instant::now();
    let (leader, term) = h.settled(&all, READY).await;
    let config = std::fs::read_to_string(h.state().join("cluster.toml")).expect("config");
    assert_eq!(
        has_ipv4(&config),
        None,
        "an IP address in the config:\n{config}"
    );
    let s = h.status(leader).await.expect("status");
    let members = s["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{s}");
    for m in members {
        let addr = m["addr"].as_str().unwrap_or_default();
        assert!(
            addr.starts_with(&format!(
                "sessionraft-{}.sessionraft:",
                m["id"].as_u64().unwrap_or(0) - 1
            )),
            "a member's address is its name: {m}"
        );
        assert_eq!(m["voter"], true, "{m}");
    }
    for id in all {
        let s = h.status(id).await.expect("status");
        if let Some(u) = s.get("unresolved") {
            assert_eq!(u.as_array().map(Vec::len), Some(0), "node {id}: {s}");
        }
    }
    let mut users = Users::new(&h.lb()).await;
    let one = common::user();
    let mut served_by = std::collections::BTreeSet::new();
    for want in 1..=6 {
        let (status, n, by) = common::increment(&one, &format!("{}/api/counter", h.lb())).await;
        assert_eq!((status, n), (200, Some(want)), "through the load balancer");
        served_by.extend(by);
    }
    println!(
        "hosts: forms: 3 hosts from names alone, leader {leader} term {term}, ready in {} ms, \
         one user served by nodes {served_by:?} through HAProxy",
        t.elapsed().as_millis()
    );

    // ---------------------------------------------------------------- 2. pod rescheduled
    for role in ["follower", "leader"] {
        let (leader, term) = h.settled(&all, READY).await;
        let target = if role == "leader" {
            leader
        } else {
            *all.iter().find(|id| **id != leader).expect("a follower")
        };
        let others: Vec<u64> = all.iter().copied().filter(|id| *id != target).collect();
        let pids = h.pids().await;
        let run = users.start();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let at = users.now();
        let ev = h.op(&["reip", &host(target)]).await;
        assert_eq!(ev["event"], "reip");
        assert_ne!(ev["old_ip"], ev["new_ip"]);
        let (new_leader, new_term) = h.settled(&all, READY).await;
        let back_ms = (users.now() - at).as_millis();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let w = users.stop(run, at).await;
        let after = h.pids().await;
        for id in &others {
            assert_eq!(pids.get(id), after.get(id), "node {id} was not restarted");
        }
        // the returning node deposes nobody afterwards
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (_, later_term) = h.settled(&all, READY).await;
        assert_eq!(
            later_term, new_term,
            "the term after the rescheduled node settled"
        );
        println!(
            "hosts: reschedule {role}: node {target} {} -> {}, back in {back_ms} ms; {}; \
             term {term} -> {new_term}, leader {leader} -> {new_leader}",
            ev["old_ip"].as_str().unwrap_or("?"),
            ev["new_ip"].as_str().unwrap_or("?"),
            w.figures()
        );
        if role == "follower" {
            assert_eq!(new_term, term, "a follower rescheduled raised the term");
            assert_eq!(new_leader, leader);
            if w.ms > FOLLOWER_TARGET_MS {
                println!("hosts: reschedule follower: window over the 1 s target: {w:?}");
            }
        } else {
            // At most one election: none when the leader was back (with a committed vote of
            // its own it resumes leading) before the others' pre-votes succeeded; CI tolerates
            // one split vote (term +2), printed as such.
            let elections = new_term - term;
            println!(
                "hosts: reschedule leader: {elections} election(s){}",
                if elections == 0 {
                    " (it was back before the others elected)"
                } else {
                    ""
                }
            );
            assert!(
                elections <= 2,
                "at most one election when the leader was rescheduled: term {term} -> {new_term}"
            );
        }
        assert!(w.ms <= CI_BOUND_MS, "reschedule {role}: {w:?}");
        for id in all {
            let s = h.status(id).await.expect("status");
            if let Some(u) = s.get("unresolved") {
                assert_eq!(u.as_array().map(Vec::len), Some(0), "node {id}: {s}");
            }
        }
    }
    users.check_counters("after the reschedules").await;

    // ---------------------------------------------------------------- 3. disk lost
    let (leader, term) = h.settled(&all, READY).await;
    // enough entries that the snapshot purges the log
    let url = format!("{}/api/counter", h.lb());
    let mut n = 6;
    while h.status(leader).await.expect("status")["last_log_index"]
        .as_u64()
        .unwrap_or(0)
        < 150
    {
        n += 1;
        let (status, got, _) = common::increment(&one, &url).await;
        assert_eq!((status, got), (200, Some(n)));
    }
    let snap = h.snapshot(leader).await;
    let lost = *all.iter().find(|id| **id != leader).expect("a follower");
    let run = users.start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let at = users.now();
    let ev = h.op(&["wipe", &host(lost)]).await;
    assert_eq!(ev["data"], "empty");
    let t = Instant::now();
    let rejoin = h
        .exec(
            lost,
            &["sessionraft", "cluster", "rejoin-node", &lost.to_string()],
        )
        .await;
    let rejoin_ms = t.elapsed().as_millis();
    assert_eq!(
        rejoin.code,
        Some(0),
        "rejoin-node {lost}:\n{}\n{}",
        rejoin.stdout,
        rejoin.stderr
    );
    let (_, new_term) = h.settled(&all, READY).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let w = users.stop(run, at).await;
    let s = h
        .status(h.settled(&all, READY).await.0)
        .await
        .expect("status");
    let voters = s["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["voter"] == true)
        .count();
    assert_eq!(voters, 3, "{lost} is a voter again: {s}");
    let log = h.node_log(lost);
    let installed = log
        .lines()
        .rev()
        .find(|l| l.contains("snapshot installed"))
        .map(strip_ansi);
    assert!(
        installed.is_some(),
        "node {lost} caught up by snapshot (no 'snapshot installed' in its log)"
    );
    h.converged(&all).await;
    users.check_counters("after the disk loss").await;
    println!(
        "hosts: disk lost: node {lost} back with empty data; rejoin-node took {rejoin_ms} ms, \
         caught up by snapshot ({}); {}; term {term} -> {new_term}; steps: {}; admin snapshot: {}",
        installed.as_deref().map(|l| l.trim()).unwrap_or(""),
        w.figures(),
        rejoin.stdout.trim().replace('\n', " | "),
        snap["message"]
    );

    // ---------------------------------------------------------------- 4. link cut
    let (leader, term) = h.settled(&all, READY).await;
    let others: Vec<u64> = all.iter().copied().filter(|id| *id != leader).collect();
    let run = users.start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let at = users.now();
    h.op(&["cut", &host(leader)]).await;
    let elected_ms = h.first_other_leader(&others, leader).await;
    let (new_leader, cut_term) = h.settled(&others, READY).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    h.op(&["heal", &host(leader)]).await;
    let (healed_leader, healed_term) = h.settled(&all, READY).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let w = users.stop(run, at).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, later_term) = h.settled(&all, READY).await;
    println!(
        "hosts: link cut: leader {leader}'s link down; a new leader ({new_leader}) known after \
         {elected_ms} ms; {}; term {term} -> {cut_term}, after heal {healed_term} (leader {healed_leader})",
        w.figures()
    );
    assert_ne!(new_leader, leader);
    assert_eq!(healed_leader, new_leader, "the healed node follows");
    assert_eq!(healed_term, cut_term, "the healed leader raised the term");
    assert_eq!(later_term, cut_term, "the term moved after the heal");
    assert!(w.ms <= CI_BOUND_MS, "link cut: {w:?}");
    users.check_counters("after the link cut").await;

    // ---------------------------------------------------------------- 5. majority lost
    let run = users.start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = users.now();
    users.stop(run, end).await;
    let (leader, _) = h.settled(&all, READY).await;
    let survivor = *all.iter().find(|id| **id != leader).expect("a follower");
    let gone: Vec<u64> = all.iter().copied().filter(|id| *id != survivor).collect();
    for id in &gone {
        h.op(&["delete", &host(*id)]).await;
    }
    // no quorum: refused, never a stale answer
    let r = h.http.post(&url).send().await;
    if let Ok(r) = r {
        assert_ne!(r.status(), 200, "a write without a quorum");
    }
    // The deleted hosts' names resolve no more: the survivor reports them (never a crash).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let unresolved: Vec<u64> = h
            .status(survivor)
            .await
            .and_then(|s| {
                s["unresolved"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|u| u["id"].as_u64()).collect())
            })
            .unwrap_or_default();
        if unresolved == gone {
            println!("hosts: majority lost: node {survivor} reports {gone:?} unresolved");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {survivor} never reported {gone:?} as unresolved (it says {unresolved:?})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    h.op(&["stop", &host(survivor)]).await;
    let sid = survivor.to_string();
    let dry = h
        .exec(survivor, &["sessionraft", "recover", "--node", &sid])
        .await;
    assert_eq!(
        dry.code,
        Some(2),
        "recover without --force-new-cluster:\n{}\n{}",
        dry.stdout,
        dry.stderr
    );
    let t = Instant::now();
    let rec = h
        .exec(
            survivor,
            &[
                "sessionraft",
                "recover",
                "--node",
                &sid,
                "--force-new-cluster",
            ],
        )
        .await;
    assert_eq!(
        rec.code,
        Some(0),
        "recover:\n{}\n{}",
        rec.stdout,
        rec.stderr
    );
    h.op(&["start", &host(survivor)]).await;
    let (alone, alone_term) = h.settled(&[survivor], READY).await;
    assert_eq!(alone, survivor);
    let serving_ms = t.elapsed().as_millis();
    users.check_counters("the survivor alone").await;
    let mut rejoined = Vec::new();
    for id in &gone {
        h.op(&["wipe", &host(*id)]).await;
        let t = Instant::now();
        let r = h
            .exec(
                survivor,
                &["sessionraft", "cluster", "rejoin-node", &id.to_string()],
            )
            .await;
        assert_eq!(
            r.code,
            Some(0),
            "rejoin-node {id}:\n{}\n{}",
            r.stdout,
            r.stderr
        );
        rejoined.push(format!("node {id} in {} ms", t.elapsed().as_millis()));
    }
    let (leader, term) = h.settled(&all, READY).await;
    h.converged(&all).await;
    users.check_counters("after the majority came back").await;
    let at = users.now();
    let run = users.start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let w = users.stop(run, at).await;
    println!(
        "hosts: majority lost: nodes {gone:?} deleted; node {survivor} recovered alone and \
         serving {serving_ms} ms after `recover --force-new-cluster` (term {alone_term}), every \
         acknowledged counter present; rejoined {}; leader {leader} term {term}; {} afterwards",
        rejoined.join(", "),
        w.figures()
    );
}

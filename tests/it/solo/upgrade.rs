//! Rolling upgrade from the previous release (issue 27, item 4), for real: a 3-node cluster of the
//! previous release's binary (`RELEASES`, built by `scripts/previous-release.sh`) behind HAProxy is
//! upgraded node by node to this tree's binary while 30 users run through the load balancer:
//! - 20 HTTP users, each with its own cookie jar, incrementing its session counter
//!   (`POST /api/counter`) through HAProxy's HTTP frontend (round robin, `/readyz` checks);
//! - 10 RESP users, each on its own key through HAProxy's TCP frontend to the nodes' Redis-protocol
//!   doors (a TCP-connect check: a 0.1.0 node has no door and is out of the rotation): `GET`, then
//!   `SET key <n> GET` with an ever-rising `n`; writes are refused (`-TRYAGAIN`) while the cluster
//!   version is below 0.2 — expected, counted as errors.
//!
//! Each node in turn: SIGTERM (by pid), wait for its exit, start the new binary on the same data
//! dir and config (plus `SESSIONRAFT_NODE__<ID>__RESP_ADDR` for every node: the doors exist for the
//! new binary only), wait until `/readyz` is 200 and it applied the leader's log as it was then.
//! Three orders, each on a fresh cluster of the old release:
//! - `followers_first`: followers first, the leader last; then the downgrade step: a follower is
//!   stopped and the previous release started on its data dir, which it must refuse (exit non-zero,
//!   saying why) while the other two keep serving; then the new binary again on that dir (roll
//!   forward) becomes ready and catches up;
//! - `leader_first`: each step takes the current leader while it runs the old binary;
//! - `random_order`: a permutation from a seed (`UPGRADE_SEED`, else the clock; printed).
//!
//! Asserted, per order: every user's acknowledged values strictly rise (a reset session shows as a
//! counter back at 1), a value is never below the last acknowledged one (none lost), a final read
//! of every user equals its last acknowledged value (or more only after a request whose outcome was
//! unknown), every node ready after each restart, the cluster version (`/cluster/status`
//! `cluster_version` of the upgraded nodes) is "0.1" after each of the first two upgrades, never
//! "0.2" before the last node is started on the new binary, "0.2" on every node within 10 s of the
//! last one and never back (also across the roll-forward), no member of a 0.1 release on the
//! leader then; no session-token read is served locally (tokens are not issued) while an old node
//! runs, no RESP write is acknowledged while one runs; once the cluster version is 0.2, tokens are
//! issued (the followers serve token reads locally) and every RESP user gets writes acknowledged.
//! Errors (503/504, `-TRYAGAIN`, resets) are allowed but counted; per order the test prints
//! requests, errors by kind, the longest window without a success per kind of user and the time
//! each node took to stop, be ready and catch up.
//!
//! The orders run one after another ([`super::TURN`]), not in parallel: three clusters and 90 users at once
//! on a small CI machine would measure the machine. `SESSIONRAFT_UPGRADE_BIN` upgrades to another
//! binary than this tree's (e.g. a copy of an earlier build); `UPGRADE_HTTP_USERS` and
//! `UPGRADE_RESP_USERS` change the numbers of users (e.g. 0 RESP users: the sessions alone).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{
    binary, previous_release_binary, ClusterOptions, Haproxy, RespConnection, TestCluster,
};
use serde_json::Value;

const HTTP_USERS: usize = 20;
const RESP_USERS: usize = 10;
/// A user's pause between two requests (30 users on a 2-core machine next to three nodes).
const THINK: Duration = Duration::from_millis(40);
/// Load on the old cluster before the first upgrade.
const WARM_UP: Duration = Duration::from_secs(2);
/// Load on each mixed cluster, after a node is back and caught up, before the next one.
const DWELL: Duration = Duration::from_millis(2500);
/// Load on the fully upgraded cluster.
const AFTER: Duration = Duration::from_secs(3);
/// How long a stopped node may take to exit, and a restarted one to be ready / caught up.
const STOP_BOUND: Duration = Duration::from_secs(15);
const READY_BOUND: Duration = Duration::from_secs(30);
/// How long the cluster version may take to reach 0.2 once the last node runs the new binary.
const VERSION_BOUND: Duration = Duration::from_secs(10);
/// How long the previous release may take to refuse a directory the new release wrote.
const REFUSAL_BOUND: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_followers_first_then_downgrade_is_refused_and_rolled_forward() {
    let _turn = super::TURN.lock().await;
    run(Order::FollowersFirst, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_leader_first() {
    let _turn = super::TURN.lock().await;
    run(Order::LeaderFirst, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_in_a_random_order() {
    let _turn = super::TURN.lock().await;
    let seed = std::env::var("UPGRADE_SEED")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(27)
        });
    println!("upgrade random_order: seed {seed} (rerun with UPGRADE_SEED={seed})");
    run(Order::Random(seed), false).await;
}

// ---- orders ------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Order {
    FollowersFirst,
    LeaderFirst,
    Random(u64),
}

impl Order {
    fn name(self) -> String {
        match self {
            Order::FollowersFirst => "followers_first".into(),
            Order::LeaderFirst => "leader_first".into(),
            Order::Random(seed) => format!("random_order(seed {seed})"),
        }
    }
}

/// splitmix64: a permutation of 1..=n from `seed` without a dependency.
fn permutation(seed: u64, n: u64) -> Vec<u64> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut ids: Vec<u64> = (1..=n).collect();
    for i in (1..ids.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        ids.swap(i, j);
    }
    ids
}

// ---- shared state of a run ---------------------------------------------------------------------

/// What the users and the watcher share with the conductor.
struct Shared {
    t0: Instant,
    stop: AtomicBool,
    /// Whether a node may still run the old binary (false once the last old process exited).
    old_may_run: AtomicBool,
    /// Whether the last node was started on the new binary (the cluster version may move).
    last_started: AtomicBool,
    /// Whether every node reported cluster version 0.2.
    version_02: AtomicBool,
    phase: Mutex<String>,
    /// Failures by kind: how many, and the first few.
    failures: Mutex<BTreeMap<String, (u64, Vec<String>)>>,
    /// Successful HTTP requests (for the downgrade step: the cluster keeps serving).
    http_ok: AtomicU64,
}

impl Shared {
    fn at(&self) -> String {
        format!(
            "[{:6.2} s, {}]",
            self.t0.elapsed().as_secs_f64(),
            self.phase.lock().unwrap()
        )
    }

    /// Record a failure of `kind` (counted; the first few of each kind kept, the first printed).
    fn fail(&self, kind: &str, what: String) {
        let line = format!("{} {what}", self.at());
        let mut f = self.failures.lock().unwrap();
        let (count, examples) = f.entry(kind.to_string()).or_default();
        *count += 1;
        if *count == 1 {
            eprintln!("upgrade: FAILURE ({kind}) {line}");
        }
        if examples.len() < 3 {
            examples.push(line);
        }
    }

    fn set_phase(&self, phase: String) {
        println!(
            "upgrade: [{:6.2} s] {phase}",
            self.t0.elapsed().as_secs_f64()
        );
        *self.phase.lock().unwrap() = phase;
    }
}

/// A user's record: requests, errors by kind, its longest window without a success.
#[derive(Default)]
struct Tally {
    requests: u64,
    errors: BTreeMap<String, u64>,
    longest_gap: Duration,
    longest_gap_from: f64,
    last_ok: Option<Instant>,
    /// When the first success came (s since the start of the load).
    first_ok: Option<f64>,
}

impl Tally {
    fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_default() += 1;
    }

    /// A success now: the window since the previous one (windows start at the first success:
    /// a RESP user has nothing to reach before the first node runs the new release).
    fn ok(&mut self, t0: Instant) {
        let now = Instant::now();
        match self.last_ok {
            Some(last) => self.window(last, now, t0),
            None => self.first_ok = Some((now - t0).as_secs_f64()),
        }
        self.last_ok = Some(now);
    }

    /// The run is over: the window since the last success counts too.
    fn end(&mut self, t0: Instant) {
        if let Some(last) = self.last_ok {
            self.window(last, Instant::now(), t0);
        }
    }

    fn window(&mut self, from: Instant, to: Instant, t0: Instant) {
        if to - from > self.longest_gap {
            self.longest_gap = to - from;
            self.longest_gap_from = (from - t0).as_secs_f64();
        }
    }
}

// ---- HTTP users --------------------------------------------------------------------------------

struct HttpUser {
    id: usize,
    tally: Tally,
    /// The last acknowledged counter (0: none yet).
    last_ack: i64,
    /// Requests since the last acknowledgment whose outcome is unknown (timeout, 504, reset).
    unknown_since_ack: i64,
    resets: u64,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(8))
        .build()
        .expect("client")
}

async fn http_user(id: usize, url: String, shared: Arc<Shared>) -> (HttpUser, reqwest::Client) {
    let client = http_client();
    let mut u = HttpUser {
        id,
        tally: Tally::default(),
        last_ack: 0,
        unknown_since_ack: 0,
        resets: 0,
    };
    while !shared.stop.load(Relaxed) {
        u.tally.requests += 1;
        let (kind, counter): (Option<&str>, Option<i64>) = match client.post(&url).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                match status {
                    200 => match r.json::<Value>().await {
                        Ok(v) => match v["counter"].as_i64() {
                            Some(c) => (None, Some(c)),
                            None => (Some("200 without a counter (unknown)"), None),
                        },
                        Err(_) => (Some("body cut (unknown)"), None),
                    },
                    503 => (Some("503"), None),
                    504 => (Some("504 (unknown)"), None),
                    s if s >= 500 => (Some("5xx other (unknown)"), None),
                    _ => (Some("4xx"), None),
                }
            }
            Err(e) if e.is_connect() => (Some("connect"), None),
            Err(e) if e.is_timeout() => (Some("timeout (unknown)"), None),
            Err(_) => (Some("reset (unknown)"), None),
        };
        match (kind, counter) {
            (None, Some(c)) => {
                u.tally.ok(shared.t0);
                shared.http_ok.fetch_add(1, Relaxed);
                if c <= u.last_ack {
                    u.resets += 1;
                    shared.fail(
                        "http: session went back (reset)",
                        format!(
                            "http user {id}: counter went back from {} to {c}{}",
                            u.last_ack,
                            if c == 1 { " (session reset)" } else { "" }
                        ),
                    );
                } else if c > u.last_ack + 1 + u.unknown_since_ack {
                    shared.fail(
                        "http: increment counted twice",
                        format!(
                            "http user {id}: counter jumped from {} to {c} with {} request(s) of \
                         unknown outcome in between (an increment counted twice, or one refused \
                         as not applied was applied)",
                            u.last_ack, u.unknown_since_ack
                        ),
                    );
                }
                u.last_ack = c;
                u.unknown_since_ack = 0;
            }
            (Some(kind), _) => {
                u.tally.error(kind);
                if kind.ends_with("(unknown)") {
                    u.unknown_since_ack += 1;
                }
            }
            (None, None) => unreachable!(),
        }
        tokio::time::sleep(THINK).await;
    }
    u.tally.end(shared.t0);
    (u, client)
}

// ---- RESP users --------------------------------------------------------------------------------

enum Reply {
    Nil,
    Bulk(Vec<u8>),
    Simple,
    Error(String),
    Other,
}

fn parse_reply(raw: &[u8]) -> Reply {
    let line =
        |r: &[u8]| String::from_utf8_lossy(r.strip_suffix(b"\r\n").unwrap_or(r)).into_owned();
    match raw.first() {
        Some(b'+') => Reply::Simple,
        Some(b'-') => Reply::Error(line(&raw[1..])),
        Some(b'$') if raw.starts_with(b"$-1") => Reply::Nil,
        Some(b'$') => {
            let start = raw.windows(2).position(|w| w == b"\r\n").unwrap_or(0) + 2;
            let end = raw.len().saturating_sub(2).max(start);
            Reply::Bulk(raw[start..end].to_vec())
        }
        _ => Reply::Other,
    }
}

fn error_kind(e: &str) -> String {
    format!("-{}", e.split_whitespace().next().unwrap_or("?"))
}

struct RespUser {
    id: usize,
    tally: Tally,
    /// The value of the latest attempted `SET` (every attempt writes a new, higher one).
    attempted: u64,
    /// The last acknowledged value (0: none).
    last_ack: u64,
    /// Values written by `SET`s whose outcome is unknown (`-CLUSTERDOWN`, no answer).
    unknown: BTreeSet<u64>,
    acks: u64,
    acks_at_02: u64,
    acks_with_old: u64,
}

impl RespUser {
    /// Check a value read back (`GET`, or the old value a `SET … GET` replaced).
    fn observe(&self, v: Option<u64>, what: &str, shared: &Shared) {
        let id = self.id;
        match v {
            None if self.last_ack > 0 => shared.fail(
                "resp: acknowledged key gone",
                format!(
                    "resp user {id}: {what} found the key gone (last acknowledged {})",
                    self.last_ack
                ),
            ),
            None => {}
            Some(v) if v == self.last_ack => {}
            Some(v) if v > self.last_ack && self.unknown.contains(&v) => {}
            Some(v) if v < self.last_ack => shared.fail(
                "resp: value below the last acknowledged",
                format!(
                    "resp user {id}: {what} found {v}, below the last acknowledged {}{}",
                    self.last_ack,
                    if self.unknown.contains(&v) {
                        " (a write of unknown outcome applied after a later acknowledged one)"
                    } else {
                        ""
                    }
                ),
            ),
            Some(v) => shared.fail(
                "resp: value never acknowledged nor unknown",
                format!(
                    "resp user {id}: {what} found {v}: never written, or refused as not applied \
                 (last acknowledged {}, attempted up to {})",
                    self.last_ack, self.attempted
                ),
            ),
        }
    }
}

fn bulk_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

async fn resp_user(id: usize, port: u16, shared: Arc<Shared>) -> RespUser {
    let key = format!("upgrade:user:{id}");
    // above the nodes' request deadline (3 s): a write unanswered this long is worth a look
    let step = Duration::from_secs(10);
    let mut u = RespUser {
        id,
        tally: Tally::default(),
        attempted: 0,
        last_ack: 0,
        unknown: BTreeSet::new(),
        acks: 0,
        acks_at_02: 0,
        acks_with_old: 0,
    };
    let mut conn: Option<RespConnection> = None;
    let pause = |d: u64| tokio::time::sleep(Duration::from_millis(d));
    while !shared.stop.load(Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match RespConnection::connect(port, Duration::from_secs(1)).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    u.tally.error("connect");
                    pause(200).await;
                    continue;
                }
            },
        };
        // GET: what is there now.
        u.tally.requests += 1;
        match c.command(&[b"GET", key.as_bytes()], step).await {
            Ok(raw) => match parse_reply(&raw) {
                Reply::Nil => {
                    u.tally.ok(shared.t0);
                    u.observe(None, "GET", &shared);
                }
                Reply::Bulk(b) => {
                    u.tally.ok(shared.t0);
                    match bulk_u64(&b) {
                        Some(v) => u.observe(Some(v), "GET", &shared),
                        None => shared.fail(
                            "resp: GET returned a non-number",
                            format!("resp user {id}: GET returned {b:?}"),
                        ),
                    }
                }
                Reply::Error(e) => {
                    u.tally.error(&format!("GET {}", error_kind(&e)));
                    pause(100).await;
                    continue;
                }
                Reply::Simple | Reply::Other => {
                    u.tally.error("GET unexpected reply");
                    conn = None;
                    continue;
                }
            },
            Err(e) => {
                // HAProxy closes a connection it has no server for (every node old, no door).
                u.tally.error(match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => "closed",
                    std::io::ErrorKind::TimedOut => "timeout",
                    _ => "reset",
                });
                conn = None;
                pause(200).await;
                continue;
            }
        }
        // SET key <n> GET: a new, higher value; the reply is the value it replaced.
        u.attempted += 1;
        let value = u.attempted;
        u.tally.requests += 1;
        let old_may_run = shared.old_may_run.load(Relaxed);
        match c
            .command(
                &[b"SET", key.as_bytes(), value.to_string().as_bytes(), b"GET"],
                step,
            )
            .await
        {
            Ok(raw) => match parse_reply(&raw) {
                r @ (Reply::Nil | Reply::Bulk(_)) => {
                    u.tally.ok(shared.t0);
                    let old = match r {
                        Reply::Bulk(b) => bulk_u64(&b),
                        _ => None,
                    };
                    u.observe(old, "SET … GET", &shared);
                    u.last_ack = value;
                    u.acks += 1;
                    if shared.version_02.load(Relaxed) {
                        u.acks_at_02 += 1;
                    }
                    if old_may_run && shared.old_may_run.load(Relaxed) {
                        u.acks_with_old += 1;
                        shared.fail(
                            "resp: write acknowledged in a mixed cluster",
                            format!(
                                "resp user {id}: SET acknowledged while a node may still run the \
                             previous release (a Kv entry it cannot decode)"
                            ),
                        );
                    }
                }
                Reply::Error(e) => {
                    let kind = error_kind(&e);
                    if kind != "-TRYAGAIN" {
                        // -CLUSTERDOWN: the outcome is unknown; other errors: say so too.
                        u.unknown.insert(value);
                    }
                    u.tally.error(&format!("SET {kind}"));
                    pause(100).await;
                }
                Reply::Simple | Reply::Other => {
                    u.unknown.insert(value);
                    u.tally.error("SET unexpected reply");
                    conn = None;
                }
            },
            Err(_) => {
                u.unknown.insert(value);
                u.tally.error("SET no answer in 10 s or reset (unknown)");
                conn = None;
                pause(200).await;
                continue;
            }
        }
        tokio::time::sleep(THINK).await;
    }
    u.tally.end(shared.t0);
    u
}

// ---- the cluster's view ------------------------------------------------------------------------

fn quick() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client")
}

async fn status(c: &TestCluster, id: u64) -> Option<Value> {
    quick()
        .get(c.url(id, "/cluster/status"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

async fn ready(c: &TestCluster, id: u64) -> bool {
    quick()
        .get(c.url(id, "/readyz"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}

fn cluster_version(s: &Value) -> Option<String> {
    s["cluster_version"].as_str().map(str::to_string)
}

/// Watch every node's `/cluster/status` every 200 ms while the run lasts: the cluster version
/// never 0.2 before the last node was started on the new binary, never back to 0.1 once every node said 0.2; no token read
/// served locally while an old node may run. Returns the highest `reads.local` seen per node after
/// the cluster version reached 0.2 (token reads: tokens are issued).
fn watch(ports: Vec<String>, shared: Arc<Shared>) -> tokio::task::JoinHandle<BTreeMap<u64, u64>> {
    tokio::spawn(async move {
        let client = quick();
        let mut local_after: BTreeMap<u64, u64> = BTreeMap::new();
        let mut flagged: BTreeSet<(u64, &'static str)> = BTreeSet::new();
        while !shared.stop.load(Relaxed) {
            for (i, base) in ports.iter().enumerate() {
                let id = i as u64 + 1;
                let old_may_run = shared.old_may_run.load(Relaxed);
                let last_started = shared.last_started.load(Relaxed);
                let v02 = shared.version_02.load(Relaxed);
                let Ok(r) = client.get(format!("{base}/cluster/status")).send().await else {
                    continue;
                };
                let Ok(s) = r.json::<Value>().await else {
                    continue;
                };
                let cv = cluster_version(&s);
                if !last_started
                    && !shared.last_started.load(Relaxed)
                    && cv.as_deref() == Some("0.2")
                    && flagged.insert((id, "early"))
                {
                    shared.fail(
                        "cluster version 0.2 before the last node runs the new release",
                        format!(
                            "node {id} reports cluster version 0.2 before the last node was \
                             started on the new release"
                        ),
                    );
                }
                if v02 && cv.as_deref() != Some("0.2") && flagged.insert((id, "down")) {
                    shared.fail(
                        "cluster version went down",
                        format!(
                        "node {id} reports cluster version {cv:?} after every node reported 0.2 \
                         (it only rises)"
                    ),
                    );
                }
                let local = s["reads"]["local"].as_u64().unwrap_or(0);
                if old_may_run
                    && shared.old_may_run.load(Relaxed)
                    && local > 0
                    && flagged.insert((id, "local"))
                {
                    shared.fail(
                        "tokens issued in a mixed cluster",
                        format!(
                        "node {id} served {local} session-token read(s) locally while a node may \
                         still run the previous release: tokens were issued in a mixed cluster"
                    ),
                    );
                }
                if v02 {
                    let e = local_after.entry(id).or_default();
                    *e = (*e).max(local);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        local_after
    })
}

// ---- the conductor -----------------------------------------------------------------------------

/// What happened to one node's upgrade (or roll-forward).
struct Step {
    id: u64,
    was_leader: bool,
    /// How long it took to exit after SIGTERM, and how it exited (`None`: not stopped here).
    stop: Option<(Duration, String)>,
    ready_in: Duration,
    caught_up_in: Duration,
}

struct Run {
    order: Order,
    c: TestCluster,
    old: PathBuf,
    new: PathBuf,
    new_env: Vec<(String, String)>,
    shared: Arc<Shared>,
    steps: Vec<Step>,
    notes: Vec<String>,
}

impl Run {
    async fn leader(&self) -> Option<u64> {
        for _ in 0..100 {
            for id in self.c.alive() {
                if let Some(l) = status(&self.c, id).await.and_then(|s| s["leader"].as_u64()) {
                    if self.c.alive().contains(&l) {
                        return Some(l);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Wait until `id` is ready, then until it applied the leader's last log index of that moment.
    async fn ready_and_caught_up(
        &mut self,
        id: u64,
        started: Instant,
    ) -> Result<(Duration, Duration), String> {
        let deadline = started + READY_BOUND;
        while !ready(&self.c, id).await {
            if let Some(status) = self.c.wait_exit(id, Duration::ZERO).await {
                return Err(format!(
                    "node {id} exited ({status}) instead of becoming ready"
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("node {id} not ready within {READY_BOUND:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ready_in = started.elapsed();
        let mut target = None;
        loop {
            let s = status(&self.c, id).await;
            if target.is_none() {
                if let Some(l) = s.as_ref().and_then(|s| s["leader"].as_u64()) {
                    target = status(&self.c, l)
                        .await
                        .and_then(|ls| ls["last_log_index"].as_u64());
                }
            }
            let applied = s.as_ref().and_then(|s| s["applied_index"].as_u64());
            if let (Some(t), Some(a)) = (target, applied) {
                if a >= t {
                    return Ok((ready_in, started.elapsed()));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "node {id} did not catch up within {READY_BOUND:?} (applied {applied:?}, \
                     leader's log {target:?})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stop `id` (SIGTERM, wait), start the new binary on its dir, wait ready and caught up.
    /// `last`: the last old node (the flags of `Shared` move when it exits and when it restarts).
    async fn replace(&mut self, id: u64, was_leader: bool, last: bool) -> Result<(), String> {
        let t = Instant::now();
        let exit = match self.c.terminate(id, STOP_BOUND).await {
            Some(s) => s.to_string(),
            None => format!("did not exit within {STOP_BOUND:?} of SIGTERM: SIGKILLed"),
        };
        let stopped_in = t.elapsed();
        if last {
            self.shared.old_may_run.store(false, Relaxed);
        }
        let started = Instant::now();
        let new = self.new.clone();
        let env = self.new_env.clone();
        if last {
            self.shared.last_started.store(true, Relaxed);
        }
        self.c.start_node_as(id, &new, &env);
        let (ready_in, caught_up_in) = self.ready_and_caught_up(id, started).await?;
        match status(&self.c, id).await.map(|s| s["version"].clone()) {
            Some(Value::String(v)) if !v.starts_with("0.1") => {}
            other => {
                return Err(format!(
                    "node {id} restarted on {} reports version {other:?}",
                    self.new.display()
                ))
            }
        }
        self.steps.push(Step {
            id,
            was_leader,
            stop: Some((stopped_in, exit)),
            ready_in,
            caught_up_in,
        });
        Ok(())
    }

    async fn expect_cluster_version(&self, upgraded: &[u64], want: &str) {
        for &id in upgraded {
            let s = status(&self.c, id).await;
            let cv = s.as_ref().and_then(cluster_version);
            if cv.as_deref() != Some(want) {
                self.shared.fail(
                    "cluster version not as expected",
                    format!(
                        "node {id} (upgraded) reports cluster version {cv:?}, expected {want:?}"
                    ),
                );
            }
        }
    }

    /// The whole sequence; an `Err` is a fatal step (the users are stopped and reported anyway).
    async fn conduct(&mut self, downgrade: bool) -> Result<(), String> {
        let first_leader = self.leader().await.ok_or("no leader in the old cluster")?;
        println!("upgrade: the old cluster's leader is node {first_leader}");
        tokio::time::sleep(WARM_UP).await;
        let mut upgraded: Vec<u64> = Vec::new();
        let random = match self.order {
            Order::Random(seed) => permutation(seed, 3),
            _ => Vec::new(),
        };
        for step in 0..3 {
            let leader = self.leader().await.ok_or("no leader")?;
            let remaining: Vec<u64> = (1..=3).filter(|id| !upgraded.contains(id)).collect();
            let id = match self.order {
                Order::FollowersFirst => *remaining
                    .iter()
                    .find(|&&id| id != leader)
                    .unwrap_or(&remaining[0]),
                Order::LeaderFirst => {
                    if remaining.contains(&leader) {
                        leader
                    } else {
                        remaining[0]
                    }
                }
                Order::Random(_) => random.get(step).copied().expect("a permutation of 3"),
            };
            let was_leader = id == leader;
            self.shared.set_phase(format!(
                "upgrading node {id} ({}; {}/3)",
                if was_leader {
                    "the leader"
                } else {
                    "a follower"
                },
                step + 1
            ));
            self.replace(id, was_leader, step == 2).await?;
            upgraded.push(id);
            self.shared
                .set_phase(format!("{}/3 upgraded ({upgraded:?})", step + 1));
            if step < 2 {
                tokio::time::sleep(DWELL).await;
                self.expect_cluster_version(&upgraded, "0.1").await;
            }
        }
        // The cluster version reaches 0.2 only now.
        let t = Instant::now();
        loop {
            let mut seen = Vec::new();
            for id in 1..=3 {
                seen.push(status(&self.c, id).await.as_ref().and_then(cluster_version));
            }
            if seen.iter().all(|v| v.as_deref() == Some("0.2")) {
                self.shared.version_02.store(true, Relaxed);
                self.notes.push(format!(
                    "cluster version 0.2 on every node {:.2} s after the last node was ready",
                    t.elapsed().as_secs_f64()
                ));
                break;
            }
            if t.elapsed() > VERSION_BOUND {
                self.shared.fail(
                    "cluster version not 0.2 after the last upgrade",
                    format!(
                    "the cluster version is not 0.2 on every node {VERSION_BOUND:?} after the last \
                     upgrade: {seen:?}"
                ),
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(l) = self.leader().await {
            if let Some(s) = status(&self.c, l).await {
                let versions: Vec<String> = s["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| format!("{}={}", m["id"], m["version"]))
                    .collect();
                self.notes.push(format!(
                    "leader {l}'s members' versions: {}",
                    versions.join(" ")
                ));
                for m in s["members"].as_array().into_iter().flatten() {
                    if m["version"].as_str().is_some_and(|v| v.starts_with("0.1"))
                        && self.shared.version_02.load(Relaxed)
                    {
                        self.shared.fail(
                            "leader's member versions",
                            format!(
                                "cluster version 0.2 but the leader says member {} runs {}",
                                m["id"], m["version"]
                            ),
                        );
                    }
                }
            }
        }
        self.shared
            .set_phase("every node upgraded: users on the new cluster".into());
        tokio::time::sleep(AFTER).await;
        if downgrade {
            self.downgrade_step().await?;
        }
        Ok(())
    }

    /// Downgrade one follower to the previous release: refused at start (exit non-zero, saying
    /// why) while the other two serve; then the new binary again (roll forward).
    async fn downgrade_step(&mut self) -> Result<(), String> {
        let leader = self
            .leader()
            .await
            .ok_or("no leader before the downgrade")?;
        let id = (1..=3).find(|&id| id != leader).expect("a follower");
        self.shared
            .set_phase(format!("downgrade: node {id} back to the previous release"));
        let ok_before = self.shared.http_ok.load(Relaxed);
        let t = Instant::now();
        self.c.terminate(id, STOP_BOUND).await;
        let from = self.c.log_len(id);
        let old = self.old.clone();
        self.c.start_node_as(id, &old, &[]);
        let exit = self.c.wait_exit(id, REFUSAL_BOUND).await;
        let said = self.c.log(id).get(from..).unwrap_or_default().to_string();
        match exit {
            None => {
                self.c.kill(id);
                self.shared.fail(
                    "downgrade not refused",
                    format!(
                    "the previous release started on node {id}'s upgraded data dir and still runs \
                     after {REFUSAL_BOUND:?} (it must refuse): {}",
                    tail(&said, 1500)
                ),
                );
            }
            Some(status) if status.success() => self.shared.fail(
                "downgrade not refused",
                format!(
                    "the previous release exited with success on node {id}'s upgraded data dir: {}",
                    tail(&said, 1500)
                ),
            ),
            Some(status) => {
                let why = said
                    .lines()
                    .rfind(|l| {
                        let l = l.to_ascii_lowercase();
                        l.contains("error") || l.contains("column famil")
                    })
                    .unwrap_or("")
                    .to_string();
                self.notes.push(format!(
                    "downgrade: the previous release refused node {id}'s data dir in {:.2} s \
                     ({status}): {}",
                    t.elapsed().as_secs_f64(),
                    tail(&why, 400)
                ));
                if !said.contains("Column families not opened") {
                    self.shared.fail(
                        "downgrade refusal says no reason",
                        format!(
                            "the previous release's refusal does not say why (expected RocksDB's \
                         \"Column families not opened\"): {}",
                            tail(&said, 1500)
                        ),
                    );
                }
            }
        }
        // Two nodes keep serving.
        self.shared
            .set_phase(format!("downgrade: node {id} down, two nodes serve"));
        let ok_at = self.shared.http_ok.load(Relaxed);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let ok_two = self.shared.http_ok.load(Relaxed) - ok_at;
        self.notes.push(format!(
            "downgrade: {} HTTP successes while node {id} was down ({ok_two} in the last 2 s)",
            self.shared.http_ok.load(Relaxed) - ok_before
        ));
        if ok_two == 0 {
            self.shared.fail(
                "downgrade: no service with two nodes",
                format!("no HTTP success in 2 s with node {id} down"),
            );
        }
        // Roll forward.
        self.shared
            .set_phase(format!("roll forward: node {id} on the new binary again"));
        let started = Instant::now();
        let new = self.new.clone();
        let env = self.new_env.clone();
        self.c.start_node_as(id, &new, &env);
        let (ready_in, caught_up_in) = self.ready_and_caught_up(id, started).await?;
        self.steps.push(Step {
            id,
            was_leader: false,
            stop: None,
            ready_in,
            caught_up_in,
        });
        self.expect_cluster_version(&[1, 2, 3], "0.2").await;
        self.shared
            .set_phase(format!("rolled forward: node {id} back on the new binary"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    }
}

fn tail(text: &str, chars: usize) -> String {
    let n = text.chars().count();
    if n <= chars {
        return text.to_string();
    }
    format!("…{}", text.chars().skip(n - chars).collect::<String>())
}

fn new_binary() -> PathBuf {
    match std::env::var_os("SESSIONRAFT_UPGRADE_BIN").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => binary(),
    }
}

async fn run(order: Order, downgrade: bool) {
    let began = Instant::now();
    let old = previous_release_binary();
    let new = new_binary();
    let name = order.name();
    println!(
        "upgrade {name}: from {} to {}",
        version_of(&old),
        version_of(&new)
    );
    let mut c = TestCluster::configured(3, ClusterOptions::default());
    let doors: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let new_env: Vec<(String, String)> = doors
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                format!("SESSIONRAFT_NODE__{}__RESP_ADDR", i + 1),
                format!("127.0.0.1:{p}"),
            )
        })
        .collect();
    for id in 1..=3 {
        c.start_node_as(id, &old, &[]);
    }
    c.wait_ready(READY_BOUND).await;
    let lb = Haproxy::start(c.dir.path(), &c.ports, &doors).await;
    // HAProxy's checks (rise 2 × 250 ms) put the nodes in rotation.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !quick()
        .get(lb.url("/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "HAProxy sends nothing to the old cluster"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let shared = Arc::new(Shared {
        t0: Instant::now(),
        stop: AtomicBool::new(false),
        old_may_run: AtomicBool::new(true),
        last_started: AtomicBool::new(false),
        version_02: AtomicBool::new(false),
        phase: Mutex::new("old cluster".into()),
        failures: Mutex::new(BTreeMap::new()),
        http_ok: AtomicU64::new(0),
    });
    let counter_url = lb.url("/api/counter");
    let http: Vec<_> = (0..users("UPGRADE_HTTP_USERS", HTTP_USERS))
        .map(|i| tokio::spawn(http_user(i, counter_url.clone(), shared.clone())))
        .collect();
    let resp: Vec<_> = (0..users("UPGRADE_RESP_USERS", RESP_USERS))
        .map(|i| tokio::spawn(resp_user(i, lb.resp_port, shared.clone())))
        .collect();
    let watcher = watch((1..=3).map(|id| c.url(id, "")).collect(), shared.clone());

    let mut run = Run {
        order,
        c,
        old,
        new,
        new_env,
        shared: shared.clone(),
        steps: Vec::new(),
        notes: Vec::new(),
    };
    let fatal = run.conduct(downgrade).await.err();

    shared.set_phase("stopping the users".into());
    shared.stop.store(true, Relaxed);
    let mut http_users = Vec::new();
    for h in http {
        http_users.push(h.await.expect("http user"));
    }
    let mut resp_users = Vec::new();
    for h in resp {
        resp_users.push(h.await.expect("resp user"));
    }
    let local_after = watcher.await.expect("watcher");
    if shared.version_02.load(Relaxed)
        && !http_users.is_empty()
        && local_after.values().sum::<u64>() == 0
    {
        // Followers serve a session-token read from their own replica: none means no token.
        shared.fail(
            "no session token at cluster version 0.2",
            "no follower served a session-token read locally once the cluster version was 0.2"
                .into(),
        );
    }

    // Final reads: every user's last acknowledged value is there (more only after an unknown).
    if fatal.is_none() {
        shared.set_phase("final reads".into());
        for (u, client) in &http_users {
            let mut got = None;
            for _ in 0..50 {
                let (status, v) = common::read(client, &counter_url).await;
                if status == 200 {
                    got = v;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match got {
                Some(v) if v == u.last_ack => {}
                Some(v) if v > u.last_ack && v <= u.last_ack + u.unknown_since_ack => {}
                other => shared.fail(
                    "http: final read",
                    format!(
                    "http user {}: final read {other:?}, last acknowledged {} ({} request(s) of \
                     unknown outcome after it)",
                    u.id, u.last_ack, u.unknown_since_ack
                ),
                ),
            }
        }
        for u in &resp_users {
            let key = format!("upgrade:user:{}", u.id);
            let mut got = None;
            for _ in 0..50 {
                if let Ok(mut conn) =
                    RespConnection::connect(lb.resp_port, Duration::from_secs(1)).await
                {
                    if let Ok(raw) = conn
                        .command(&[b"GET", key.as_bytes()], Duration::from_secs(5))
                        .await
                    {
                        match parse_reply(&raw) {
                            Reply::Nil => {
                                got = Some(None);
                                break;
                            }
                            Reply::Bulk(b) => {
                                got = Some(bulk_u64(&b));
                                break;
                            }
                            _ => {}
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match got {
                Some(v) if v.unwrap_or(0) == u.last_ack => {}
                Some(Some(v)) if v > u.last_ack && u.unknown.contains(&v) => {}
                other => shared.fail(
                    "resp: final read",
                    format!(
                        "resp user {}: final read {other:?}, last acknowledged {}",
                        u.id, u.last_ack
                    ),
                ),
            }
            if shared.version_02.load(Relaxed) && u.acks_at_02 == 0 {
                shared.fail(
                    "resp: no write at cluster version 0.2",
                    format!(
                        "resp user {}: no write acknowledged once the cluster version was 0.2",
                        u.id
                    ),
                );
            }
        }
    }

    // The report.
    let mut report = format!(
        "upgrade {name}: {:.1} s in all ({:.1} s of load)\n",
        began.elapsed().as_secs_f64(),
        shared.t0.elapsed().as_secs_f64()
    );
    for s in &run.steps {
        let stop = match &s.stop {
            Some((took, exit)) => format!("stopped in {:.2} s ({exit}), ", took.as_secs_f64()),
            None => "roll forward after the refused downgrade: ".into(),
        };
        let _ = writeln!(
            report,
            "  node {} ({}): {stop}ready in {:.2} s, caught up in {:.2} s",
            s.id,
            if s.was_leader { "leader" } else { "follower" },
            s.ready_in.as_secs_f64(),
            s.caught_up_in.as_secs_f64()
        );
    }
    let summarize = |kind: &str, tallies: Vec<&Tally>, extra: String| {
        let requests: u64 = tallies.iter().map(|t| t.requests).sum();
        let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
        for t in &tallies {
            for (k, n) in &t.errors {
                *errors.entry(k).or_default() += n;
            }
        }
        let worst = tallies
            .iter()
            .max_by_key(|t| t.longest_gap)
            .map(|t| (t.longest_gap, t.longest_gap_from))
            .unwrap_or_default();
        let first = tallies
            .iter()
            .filter_map(|t| t.first_ok)
            .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
        format!(
            "  {kind}: {requests} requests, errors {errors:?}; every user's first success by \
             {}; longest window without a success after a user's first {:.2} s (from {:.2} s)\
             {extra}\n",
            first.map_or("never".into(), |f| format!("{f:.2} s")),
            worst.0.as_secs_f64(),
            worst.1
        )
    };
    report.push_str(&summarize(
        "http users",
        http_users.iter().map(|(u, _)| &u.tally).collect(),
        format!(
            "; resets {}; final counters {:?}",
            http_users.iter().map(|(u, _)| u.resets).sum::<u64>(),
            http_users
                .iter()
                .map(|(u, _)| u.last_ack)
                .collect::<Vec<_>>()
        ),
    ));
    report.push_str(&summarize(
        "resp users",
        resp_users.iter().map(|u| &u.tally).collect(),
        format!(
            "; writes acknowledged {} ({} at cluster version 0.2, {} while an old node ran)",
            resp_users.iter().map(|u| u.acks).sum::<u64>(),
            resp_users.iter().map(|u| u.acks_at_02).sum::<u64>(),
            resp_users.iter().map(|u| u.acks_with_old).sum::<u64>()
        ),
    ));
    let _ = writeln!(
        report,
        "  token reads served locally at cluster version 0.2, per node: {local_after:?}"
    );
    for n in &run.notes {
        let _ = writeln!(report, "  {n}");
    }
    let failures = shared.failures.lock().unwrap().clone();
    let _ = writeln!(
        report,
        "  failures: {}",
        failures.values().map(|(n, _)| n).sum::<u64>()
    );
    println!("{report}");
    let mut message = String::new();
    if let Some(f) = &fatal {
        let _ = writeln!(message, "fatal: {f}");
        for id in 1..=3 {
            let _ = writeln!(
                message,
                "--- node {id} log (tail)\n{}",
                tail(&run.c.log(id), 3000)
            );
        }
    }
    for (kind, (count, examples)) in &failures {
        let _ = writeln!(message, "{kind}: {count}");
        for e in examples {
            let _ = writeln!(message, "    {e}");
        }
    }
    drop(lb);
    assert!(
        fatal.is_none() && failures.is_empty(),
        "upgrade {name} failed:\n{message}\n{report}"
    );
}

/// `default`, or the number in the environment variable `var` (to look at one kind of user alone).
fn users(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn version_of(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("{} ({e})", bin.display()))
}

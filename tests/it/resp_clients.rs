//! Real, unmodified Redis session clients against sessionraft's Redis-protocol (RESP) door:
//! the demo API (`POST`/`GET /api/counter`, `POST /api/logout`) on three stacks, each pointed
//! at a Redis URL —
//! - Express: express-session + connect-redis + node-redis (`tests/resp_clients/express`),
//! - Flask: Flask-Session + redis-py under waitress (`tests/resp_clients/flask`),
//! - actix-web: actix-session's `RedisSessionStore` over redis-rs (`examples/redis_app.rs`),
//!
//! driven by 20 users with their own cookie jars: 5 increments, a read, logout, and the old
//! cookie must then read nothing. Installed by `scripts/install-deps.sh --resp-clients` (in
//! `--all`), pinned in `package-lock.json` and `requirements.txt`.
//!
//! Three tests:
//! - `clients_against_redis_server`: the same apps and driver against a real `redis-server` on a
//!   free port — proves the clients and the driver, whatever sessionraft does.
//! - `clients_against_a_cluster_through_haproxy`: `scripts/cluster.sh up` runs 3 nodes with a
//!   `resp_addr` each and HAProxy's RESP frontend in front; `redis-cli` against one node (PING,
//!   SET EX, GET, TTL, SCAN MATCH); then per app the users through the load balancer, and again
//!   while the Raft leader is SIGKILLed mid-run and restarted: every acknowledged increment is
//!   there afterwards, none doubled (a request whose outcome was unknown — an error or no answer —
//!   is retried by its user and may count once more).
//! - `clients_over_tls_through_haproxy_with_the_leader_killed` (issue 28): the same over
//!   `rediss://` on a TLS cluster (`[tls]` from `scripts/dev-certs.sh`, client certificates
//!   optional then required), HAProxy passing TLS through; `redis-cli --tls --cacert`, and the
//!   refusals of a plaintext client and of one without a certificate.
//!
//! - `import_export` (`tests/it/resp_clients/import_export.rs`, issue 31): 200 users of the Express
//!   and Flask apps move from a redis-server to the cluster with `sessionraft import` while they
//!   count, and `sessionraft export` takes the keys back out; bad input to `import`.
//!
//! Without TLS every app reaches its Redis through an in-process, transparent TCP relay that writes what
//! each connection carried to `trace-<app>.log` (commands as words, replies as escaped bytes):
//! a failure message quotes the end of it, so a protocol mismatch shows the exact command
//! sequence. Set `SESSIONRAFT_RESP_TRACE=0` to point the apps straight at the Redis URL, and
//! `SESSIONRAFT_RESP_TRACE_DIR=DIR` to keep the traces and the apps' logs in DIR.
//! Every process is stopped by pid (also when the test fails).

use crate::common;
#[path = "resp_clients/import_export.rs"]
mod import_export;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{binary, free_port, write_config, Tuning};
use reqwest::cookie::{CookieStore, Jar};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USERS: usize = 20;
const INCREMENTS: i64 = 5;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---- processes ---------------------------------------------------------------------------------

/// A child process killed (by its pid) and reaped when dropped, even when the test fails.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tail(path: &Path, bytes: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(bytes);
    let cut = if start > 0 { "…" } else { "" };
    format!("{cut}{}", String::from_utf8_lossy(&text[start..]))
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---- the client apps ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum App {
    Express,
    Flask,
    Actix,
}

impl App {
    const ALL: [App; 3] = [App::Express, App::Flask, App::Actix];

    fn name(self) -> &'static str {
        match self {
            App::Express => "express",
            App::Flask => "flask",
            App::Actix => "redis_app",
        }
    }

    /// The command that serves the app on `addr` with its sessions at `redis_url` (with `tls`:
    /// a `rediss://` URL, the CA and, where the app can present one, the client certificate).
    fn command(self, addr: &str, redis_url: &str, tls: Option<&ClientTls>) -> Command {
        let install = "run `scripts/install-deps.sh --resp-clients`";
        match self {
            App::Express => {
                let dir = repo().join("tests/resp_clients/express");
                assert!(
                    dir.join("node_modules/express-session").is_dir(),
                    "{} has no node_modules: {install}",
                    dir.display()
                );
                let mut c = Command::new("node");
                c.arg(dir.join("app.js")).arg(addr);
                c.env("REDIS_URL", redis_url);
                if let Some(tls) = tls {
                    tls.app_env(&mut c);
                }
                c
            }
            App::Flask => {
                let dir = repo().join("tests/resp_clients/flask");
                let python = dir.join(".venv/bin/python");
                assert!(
                    python.exists(),
                    "{} is missing: {install}",
                    python.display()
                );
                let mut c = Command::new(python);
                c.arg(dir.join("app.py")).arg(addr);
                c.env("REDIS_URL", redis_url);
                c.env("PYTHONDONTWRITEBYTECODE", "1");
                if let Some(tls) = tls {
                    tls.app_env(&mut c);
                }
                c
            }
            App::Actix => {
                let bin = binary()
                    .parent()
                    .expect("target dir")
                    .join("examples/redis_app");
                assert!(
                    bin.exists(),
                    "{} is missing: build with `cargo build --release --workspace --all-targets`",
                    bin.display()
                );
                let mut c = Command::new(bin);
                c.arg(addr).arg(redis_url);
                if let Some(tls) = tls {
                    // redis-rs with rustls trusts the system roots, read from SSL_CERT_FILE when
                    // set (rustls-native-certs); a URL cannot name a client certificate.
                    c.env("SSL_CERT_FILE", &tls.ca);
                }
                c
            }
        }
    }
}

/// How the apps and redis-cli reach a door over TLS (`rediss://`): the cluster CA to verify the
/// nodes by, and the client certificate (dev-certs.sh `--client app`) that Express, Flask and
/// redis-cli present (actix's `RedisSessionStore` cannot: it is built from a URL).
struct ClientTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl ClientTls {
    /// For the Express and Flask apps (tests/resp_clients/*: REDIS_CA, REDIS_CERT, REDIS_KEY).
    fn app_env(&self, c: &mut Command) {
        c.env("REDIS_CA", &self.ca);
        c.env("REDIS_CERT", &self.cert);
        c.env("REDIS_KEY", &self.key);
    }

    /// redis-cli's options: TLS verifying the CA, with the client certificate when `cert`.
    fn cli_args(&self, cert: bool) -> Vec<String> {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut args = vec!["--tls".to_string(), "--cacert".to_string(), path(&self.ca)];
        if cert {
            args.extend(["--cert".to_string(), path(&self.cert)]);
            args.extend(["--key".to_string(), path(&self.key)]);
        }
        args
    }
}

/// A client app serving on a free port, its log, and the relay (with its trace) it talks through.
struct RunningApp {
    app: App,
    base: String,
    log: PathBuf,
    trace: Option<PathBuf>,
    _relay: Option<Relay>,
    _proc: Proc,
}

impl RunningApp {
    /// Start `app` against `redis` (an `IP:PORT` speaking RESP; over TLS with `tls`) and wait
    /// for its `/healthz`. Over TLS there is no trace: the relay would see ciphertext only.
    async fn start(
        app: App,
        redis: SocketAddr,
        dir: &Path,
        tls: Option<&ClientTls>,
    ) -> Result<Self, String> {
        let kept = std::env::var_os("SESSIONRAFT_RESP_TRACE_DIR").map(PathBuf::from);
        let dir = kept.as_deref().unwrap_or(dir);
        let traced =
            tls.is_none() && std::env::var("SESSIONRAFT_RESP_TRACE").map_or(true, |v| v != "0");
        let (relay, trace, target) = if traced {
            let trace = dir.join(format!("trace-{}.log", app.name()));
            let relay = Relay::start(redis, &trace).await;
            let target = relay.addr;
            (Some(relay), Some(trace), target)
        } else {
            (None, None, redis)
        };
        let scheme = if tls.is_some() { "rediss" } else { "redis" };
        let url = format!("{scheme}://{target}");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.join(format!("{}.log", app.name()));
        let out = std::fs::File::create(&log).map_err(|e| format!("log file: {e}"))?;
        let err = out.try_clone().map_err(|e| format!("log file: {e}"))?;
        let child = app
            .command(&addr, &url, tls)
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawning the {} app: {e}", app.name()))?;
        let mut running = Self {
            app,
            base: format!("http://{addr}"),
            log,
            trace,
            _relay: relay,
            _proc: Proc(child),
        };
        let t = Instant::now();
        loop {
            let up = common::http()
                .get(format!("{}/healthz", running.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                println!(
                    "{}: up on {} with sessions at {url} after {:.2} s",
                    app.name(),
                    running.base,
                    t.elapsed().as_secs_f64()
                );
                return Ok(running);
            }
            if let Ok(Some(status)) = running._proc.0.try_wait() {
                return Err(running.failure(&format!("the app exited ({status}) while starting")));
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err(running.failure("the app did not answer /healthz within 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn counter(&self) -> String {
        format!("{}/api/counter", self.base)
    }

    fn logout(&self) -> String {
        format!("{}/api/logout", self.base)
    }

    /// `what`, with the end of the app's log and of its Redis trace.
    fn failure(&self, what: &str) -> String {
        let mut s = format!(
            "{}: {what}\n--- app log (end) {}\n{}",
            self.app.name(),
            self.log.display(),
            tail(&self.log, 3000)
        );
        if let Some(t) = &self.trace {
            let _ = write!(
                s,
                "\n--- what the client sent (>) and got (<), end of {}\n{}",
                t.display(),
                tail(t, 6000)
            );
        }
        s
    }
}

// ---- a transparent relay that records the RESP traffic -----------------------------------------

/// Listens on 127.0.0.1:0 and relays each connection to `upstream`; what passes is appended to
/// the trace file. Either side closing (or failing) closes both, as a direct connection would.
struct Relay {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Trace = Arc<Mutex<std::fs::File>>;

fn record(trace: &Trace, line: &str) {
    let mut f = trace.lock().unwrap_or_else(|e| e.into_inner());
    let _ = writeln!(f, "{line}");
}

impl Relay {
    async fn start(upstream: SocketAddr, trace_path: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay bind");
        let addr = listener.local_addr().expect("relay addr");
        let file = std::fs::File::create(trace_path).expect("trace file");
        let trace: Trace = Arc::new(Mutex::new(file));
        let task = tokio::spawn(async move {
            let mut n = 0u64;
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                n += 1;
                conns.spawn(relay_one(n, client, upstream, trace.clone()));
            }
        });
        Self { addr, task }
    }
}

async fn relay_one(id: u64, mut client: TcpStream, upstream: SocketAddr, trace: Trace) {
    let start = Instant::now();
    let stamp = move || format!("{:8.3}s c{id}", start.elapsed().as_secs_f64());
    let mut server = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => {
            record(
                &trace,
                &format!("{} cannot connect to {upstream}: {e}", stamp()),
            );
            return;
        }
    };
    record(&trace, &format!("{} connected to {upstream}", stamp()));
    let (mut a, mut b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut pending = Vec::new();
    let why = loop {
        tokio::select! {
            r = client.read(&mut a) => match r {
                Ok(0) => break "client closed".to_string(),
                Ok(n) => {
                    pending.extend_from_slice(&a[..n]);
                    while let Some(cmd) = take_command(&mut pending) {
                        record(&trace, &format!("{} > {cmd}", stamp()));
                    }
                    if let Err(e) = server.write_all(&a[..n]).await {
                        break format!("writing to the server: {e}");
                    }
                }
                Err(e) => break format!("client read: {e}"),
            },
            r = server.read(&mut b) => match r {
                Ok(0) => break "server closed".to_string(),
                Ok(n) => {
                    record(&trace, &format!("{} < {}", stamp(), escape(&b[..n], 400)));
                    if let Err(e) = client.write_all(&b[..n]).await {
                        break format!("writing to the client: {e}");
                    }
                }
                Err(e) => break format!("server read: {e}"),
            },
        }
    };
    if !pending.is_empty() {
        record(
            &trace,
            &format!("{} > (incomplete) {}", stamp(), escape(&pending, 400)),
        );
    }
    record(&trace, &format!("{} closed: {why}", stamp()));
}

/// Bytes as text: printable ASCII as is, the rest escaped; at most `max` bytes shown.
fn escape(bytes: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    if bytes.len() > max {
        let _ = write!(s, "…({} bytes)", bytes.len());
    }
    s
}

/// One whole command off the front of `buf` (a RESP array of bulk strings, or an inline
/// command), as its words; `None` while incomplete. Bytes that are neither are shown raw.
fn take_command(buf: &mut Vec<u8>) -> Option<String> {
    fn line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
        let end = buf[from..].windows(2).position(|w| w == b"\r\n")? + from;
        Some((&buf[from..end], end + 2))
    }
    fn word(arg: &[u8]) -> String {
        let printable = arg.iter().all(|b| (0x21..=0x7e).contains(b));
        if printable && arg.len() <= 120 {
            String::from_utf8_lossy(arg).into_owned()
        } else {
            format!("\"{}\"", escape(arg, 120))
        }
    }
    if buf.is_empty() {
        return None;
    }
    if buf[0] != b'*' {
        let (inline, next) = line(buf, 0)?;
        let text = format!("(inline) {}", escape(inline, 400));
        buf.drain(..next);
        return Some(text);
    }
    let (head, mut at) = line(buf, 0)?;
    let Some(count) = std::str::from_utf8(&head[1..])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
    else {
        let text = format!("(not RESP) {}", escape(buf, 400));
        buf.clear();
        return Some(text);
    };
    let mut words = Vec::new();
    for _ in 0..count.max(0) {
        let (h, data) = line(buf, at)?;
        let len = std::str::from_utf8(h.get(1..).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse::<usize>().ok());
        match (h.first(), len) {
            (Some(b'$'), Some(len)) => {
                if buf.len() < data + len + 2 {
                    return None;
                }
                words.push(word(&buf[data..data + len]));
                at = data + len + 2;
            }
            _ => {
                let text = format!("(not a bulk string array) {}", escape(buf, 400));
                buf.clear();
                return Some(text);
            }
        }
    }
    buf.drain(..at);
    Some(words.join(" "))
}

// ---- the users ---------------------------------------------------------------------------------

/// A browser: its own cookie jar, and what it was told.
struct User {
    id: usize,
    jar: Arc<Jar>,
    client: reqwest::Client,
    /// The counter of the last acknowledged increment.
    acked: i64,
    /// Requests since the last acknowledgement that failed or got no answer: each may or may not
    /// have incremented the counter.
    unknown_since_ack: i64,
    unknown_total: u32,
    history: Vec<String>,
}

/// (status, JSON body) of an answer; status 0 when there was none.
async fn send(req: reqwest::RequestBuilder) -> (u16, Value, String) {
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            let v = serde_json::from_str(&text).unwrap_or(Value::Null);
            (status, v, text.chars().take(200).collect())
        }
        Err(e) => (0, Value::Null, format!("no answer: {e}")),
    }
}

impl User {
    fn new(id: usize) -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Self {
            id,
            jar,
            client,
            acked: 0,
            unknown_since_ack: 0,
            unknown_total: 0,
            history: Vec::new(),
        }
    }

    fn fail(&self, what: &str) -> String {
        format!(
            "user {}: {what}\n  its requests: {}",
            self.id,
            self.history.join("\n    ")
        )
    }

    /// Increments until `n` were acknowledged. `retry`: a failed request is retried (its outcome
    /// unknown) until `deadline`; otherwise any failure is an error. Each acknowledged value must
    /// follow the last by one, plus at most one per unknown outcome in between.
    async fn increments(
        &mut self,
        app: &RunningApp,
        n: i64,
        retry: Option<Instant>,
        acks: &AtomicUsize,
        pause: Duration,
    ) -> Result<(), String> {
        let url = app.counter();
        let mut done = 0;
        while done < n {
            let t = Instant::now();
            let (status, v, text) = send(self.client.post(&url)).await;
            self.history.push(format!(
                "POST /api/counter -> {status} {text} ({} ms)",
                t.elapsed().as_millis()
            ));
            match (status, v["counter"].as_i64()) {
                (200, Some(c)) => {
                    let most = self.acked + 1 + self.unknown_since_ack;
                    if c <= self.acked {
                        return Err(self.fail(&format!(
                            "counter {c} after acknowledged {}: an acknowledged increment was lost",
                            self.acked
                        )));
                    }
                    if c > most {
                        return Err(self.fail(&format!(
                            "counter {c} after acknowledged {} with {} unknown outcomes since: \
                             an increment counted twice",
                            self.acked, self.unknown_since_ack
                        )));
                    }
                    self.acked = c;
                    self.unknown_since_ack = 0;
                    done += 1;
                    acks.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(pause).await;
                }
                _ => match retry {
                    Some(deadline) if Instant::now() < deadline => {
                        self.unknown_since_ack += 1;
                        self.unknown_total += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    _ => return Err(self.fail("an increment failed")),
                },
            }
        }
        Ok(())
    }

    /// A read must see the last acknowledged value (or more, by at most the unknown outcomes).
    async fn check_read(&mut self, app: &RunningApp, retry: Option<Instant>) -> Result<(), String> {
        loop {
            let (status, v, text) = send(self.client.get(app.counter())).await;
            self.history
                .push(format!("GET /api/counter -> {status} {text}"));
            match (status, v["counter"].as_i64()) {
                (200, Some(c))
                    if (self.acked..=self.acked + self.unknown_since_ack).contains(&c) =>
                {
                    return Ok(())
                }
                (200, Some(c)) => {
                    return Err(self.fail(&format!(
                    "read {c}, the last acknowledged increment said {} ({} unknown outcomes since)",
                    self.acked, self.unknown_since_ack
                )))
                }
                _ => match retry {
                    Some(deadline) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    _ => return Err(self.fail("a read failed")),
                },
            }
        }
    }

    /// Logs out; then the cookie held before reads nothing (counter 0), and so does the jar.
    async fn logout(&mut self, app: &RunningApp, retry: Option<Instant>) -> Result<(), String> {
        let base: reqwest::Url = app.base.parse().expect("app url");
        let Some(old_cookie) = self.jar.cookies(&base) else {
            return Err(self.fail("no session cookie before logout"));
        };
        loop {
            let (status, v, text) = send(self.client.post(app.logout())).await;
            self.history
                .push(format!("POST /api/logout -> {status} {text}"));
            if status == 200 && v["signed_out"] == true {
                break;
            }
            match retry {
                Some(deadline) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ => return Err(self.fail("logout failed")),
            }
        }
        let stranger = common::http();
        for (who, client, cookie) in [
            (
                "the cookie held before logout",
                &stranger,
                Some(&old_cookie),
            ),
            ("the jar after logout", &self.client, None),
        ] {
            loop {
                let mut req = client.get(app.counter());
                if let Some(c) = cookie {
                    req = req.header(reqwest::header::COOKIE, c.clone());
                }
                let (status, v, text) = send(req).await;
                self.history
                    .push(format!("GET /api/counter ({who}) -> {status} {text}"));
                match (status, v["counter"].as_i64()) {
                    (200, Some(0)) => break,
                    (200, _) => {
                        return Err(self.fail(&format!("{who} still reads a session after logout")))
                    }
                    _ => match retry {
                        Some(deadline) if Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        _ => return Err(self.fail(&format!("the read with {who} failed"))),
                    },
                }
            }
        }
        Ok(())
    }
}

/// Runs `f` for every user at once; the first errors, joined.
async fn all_users<'a, F, Fut>(users: &'a mut [User], f: F) -> Result<(), String>
where
    F: Fn(&'a mut User) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + 'a,
{
    let results = futures_util::future::join_all(users.iter_mut().map(f)).await;
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {USERS} users failed; the first ones:\n{}",
            errors.len(),
            errors
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        ))
    }
}

/// 20 users, 5 increments each (every one acknowledged), a read of 5, logout, nothing left.
async fn plain_run(app: &RunningApp) -> Result<(), String> {
    let t = Instant::now();
    let acks = AtomicUsize::new(0);
    let mut users: Vec<User> = (0..USERS).map(User::new).collect();
    let step = all_users(&mut users, |u| {
        u.increments(app, INCREMENTS, None, &acks, Duration::ZERO)
    })
    .await;
    step.map_err(|e| app.failure(&format!("increments: {e}")))?;
    for u in &users {
        if u.acked != INCREMENTS {
            return Err(app.failure(&u.fail(&format!("counter {} after 5 increments", u.acked))));
        }
    }
    all_users(&mut users, |u| u.check_read(app, None))
        .await
        .map_err(|e| app.failure(&format!("reads: {e}")))?;
    all_users(&mut users, |u| u.logout(app, None))
        .await
        .map_err(|e| app.failure(&format!("logout: {e}")))?;
    println!(
        "{}: {USERS} users x {INCREMENTS} increments, read, logout: ok in {:.2} s",
        app.app.name(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---- the cluster --------------------------------------------------------------------------------

/// A 3-node cluster run by `scripts/cluster.sh` from a temporary config: every node has a
/// `resp_addr`, the load balancer a `resp_addr` too.
struct Cluster {
    _dir: TempDir,
    config: PathBuf,
    run_dir: PathBuf,
    http: Vec<u16>,
    resp: Vec<u16>,
    lb_resp: SocketAddr,
    /// `http`, or `https` with `[tls]`; and a client that trusts the nodes (the CA with TLS).
    scheme: &'static str,
    status: reqwest::Client,
}

impl Cluster {
    fn new() -> Self {
        let dir = TempDir::new().expect("temp dir");
        let http: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let resp: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let (lb, lb_resp) = (free_port(), free_port());
        let config = write_config(dir.path(), &http, &Tuning::default(), Some(lb));
        let mut text = std::fs::read_to_string(&config).expect("config");
        for (h, r) in http.iter().zip(&resp) {
            let at = format!("http_addr = \"127.0.0.1:{h}\"\n");
            assert!(text.contains(&at), "{text}");
            text = text.replacen(&at, &format!("{at}resp_addr = \"127.0.0.1:{r}\"\n"), 1);
        }
        let at = format!("addr = \"127.0.0.1:{lb}\"\n");
        text = text.replacen(
            &at,
            &format!("{at}resp_addr = \"127.0.0.1:{lb_resp}\"\n"),
            1,
        );
        std::fs::write(&config, text).expect("write config");
        let run_dir = dir.path().join("run");
        Self {
            _dir: dir,
            config,
            run_dir,
            http,
            resp,
            lb_resp: SocketAddr::from(([127, 0, 0, 1], lb_resp)),
            scheme: "http",
            status: common::http(),
        }
    }

    /// As [`Cluster::new`], with the `[tls]` section of `scripts/dev-certs.sh` (node, load
    /// balancer and `--client app` certificates in `certs/`) and then `resp` (a `[resp]`
    /// section) appended; and what a client needs to reach the doors over TLS.
    fn with_tls(resp: &str) -> (Self, ClientTls) {
        let mut c = Self::new();
        let certs = c.dir().join("certs");
        common::add_dev_certs(&c.config, &certs, &["--client", "app"]);
        let mut text = std::fs::read_to_string(&c.config).expect("config");
        text.push_str(resp);
        std::fs::write(&c.config, text).expect("write config");
        let ca = certs.join("ca.crt");
        c.scheme = "https";
        c.status = common::ca_client(&std::fs::read(&ca).expect("ca.crt"), false);
        let tls = ClientTls {
            ca,
            cert: certs.join("client-app.crt"),
            key: certs.join("client-app.key"),
        };
        (c, tls)
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// The end of every node's log, for a failure message.
    fn logs(&self) -> String {
        (1..=3)
            .map(|id| {
                let log = self.run_dir.join(format!("logs/node{id}.log"));
                format!("\n--- node {id} log (end)\n{}", tail(&log, 2000))
            })
            .collect()
    }

    /// `scripts/cluster.sh ARGS` against this cluster.
    fn sh(&self, args: &[&str]) -> Output {
        Command::new(repo().join("scripts/cluster.sh"))
            .args(args)
            .env("SESSIONRAFT_CONFIG", &self.config)
            .env("SESSIONRAFT_RUN_DIR", &self.run_dir)
            .env("SESSIONRAFT_BIN", binary())
            .output()
            .expect("run cluster.sh")
    }

    fn sh_ok(&self, args: &[&str]) -> String {
        let out = self.sh(args);
        assert!(out.status.success(), "cluster.sh {args:?}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The leader, as the node that says it is (`GET /cluster/status`).
    async fn leader(&self) -> u64 {
        let t = Instant::now();
        loop {
            for (i, port) in self.http.iter().enumerate() {
                let url = format!("{}://127.0.0.1:{port}/cluster/status", self.scheme);
                let status: Option<Value> = match self.status.get(url).send().await {
                    Ok(r) => r.json().await.ok(),
                    Err(_) => None,
                };
                if status.is_some_and(|s| s["role"] == "leader") {
                    return i as u64 + 1;
                }
            }
            assert!(t.elapsed() < Duration::from_secs(20), "no leader in 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL node `id` by the pid in cluster.sh's pid file (after checking it is that node's
    /// `sessionraft serve`), and wait until it is gone.
    async fn kill(&self, id: u64) {
        let pid_file = self.run_dir.join(format!("node{id}.pid"));
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {}", pid_file.display()));
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            cmdline.contains("sessionraft") && cmdline.contains("serve"),
            "pid {pid} of node {id} is not its sessionraft serve: {cmdline:?}"
        );
        common::signal(pid, "KILL");
        let t = Instant::now();
        while alive(pid) {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "node {id} survived SIGKILL"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // whatever happened, stop what the script started (by its pid files)
        let _ = self.sh(&["down"]);
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// One RESP command (as an array of bulk strings) on a fresh connection; the raw reply.
async fn resp_call(addr: SocketAddr, args: &[&str]) -> std::io::Result<Vec<u8>> {
    let mut frame = format!("*{}\r\n", args.len());
    for a in args {
        let _ = write!(frame, "${}\r\n{a}\r\n", a.len());
    }
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await??;
    s.write_all(frame.as_bytes()).await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await??;
    buf.truncate(n);
    Ok(buf)
}

/// Wait until `PING` through `addr` answers `+PONG`.
async fn wait_pong(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let t = Instant::now();
    loop {
        let r = resp_call(addr, &["PING"]).await;
        match &r {
            Ok(b) if b.starts_with(b"+PONG") => return Ok(()),
            _ if t.elapsed() < timeout => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(b) => return Err(format!("PING to {addr} answered {:?}", escape(b, 200))),
            Err(e) => return Err(format!("PING to {addr}: {e}")),
        }
    }
}

/// `redis-cli -h IP -p PORT CONN… ARGS…` (Debian's redis-tools; CONN: its connection options,
/// e.g. `--tls`), bounded by 20 s: its output, or what went wrong.
fn redis_cli(addr: SocketAddr, conn: &[String], args: &[&str]) -> Result<String, String> {
    let out = Command::new("timeout")
        .args(["20", "redis-cli"])
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(conn)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("redis-cli not found ({e}): run `scripts/install-deps.sh --resp-clients`")
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
    if !out.status.success() || stdout.starts_with("ERR") || stdout.starts_with("(error)") {
        return Err(format!("redis-cli {args:?}: {}", show(&out)));
    }
    Ok(stdout)
}

/// PING, SET k v EX 100, GET k, TTL k, SCAN 0 MATCH k* (RESP2), and GET k over RESP3 (`-3`:
/// HELLO 3 first), each a `redis-cli` with the connection options `conn`.
fn redis_cli_session(addr: SocketAddr, conn: &[String]) -> Result<(), String> {
    let expect = |args: &[&str], want: &dyn Fn(&str) -> bool| -> Result<String, String> {
        let got = redis_cli(addr, conn, args)?;
        if want(&got) {
            Ok(got)
        } else {
            Err(format!("redis-cli {args:?} printed {got:?}"))
        }
    };
    expect(&["PING"], &|s| s == "PONG")?;
    expect(&["SET", "k", "v", "EX", "100"], &|s| s == "OK")?;
    expect(&["GET", "k"], &|s| s == "v")?;
    expect(&["TTL", "k"], &|s| {
        s.parse::<i64>().is_ok_and(|t| (90..=100).contains(&t))
    })?;
    // SCAN until the cursor comes back to 0: the first line of each answer is the next cursor
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    for _ in 0..1000 {
        let got = redis_cli(addr, conn, &["SCAN", &cursor, "MATCH", "k*"])?;
        let mut lines = got.lines();
        cursor = lines.next().unwrap_or_default().to_string();
        if cursor.parse::<u64>().is_err() {
            return Err(format!("SCAN answered {got:?}: no cursor first"));
        }
        keys.extend(lines.map(str::to_string));
        if cursor == "0" {
            break;
        }
    }
    if keys != ["k"] {
        return Err(format!("SCAN 0 MATCH k* found {keys:?}, not [\"k\"]"));
    }
    expect(&["-3", "GET", "k"], &|s| s == "v")?;
    expect(&["DEL", "k"], &|s| s == "1")?;
    Ok(())
}

// ---- the tests ---------------------------------------------------------------------------------

/// A redis-server on a free port, durable (`appendonly yes`, `appendfsync always`: an
/// acknowledged write survives a SIGKILL), so the failover driver can be proven against it.
struct RedisServer {
    addr: SocketAddr,
    dir: PathBuf,
    proc: Mutex<Option<Proc>>,
}

impl RedisServer {
    async fn start(dir: &Path) -> Self {
        let port = free_port();
        let server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: dir.to_path_buf(),
            proc: Mutex::new(None),
        };
        server.spawn().await;
        server
    }

    async fn spawn(&self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.addr.port().to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server not found: run `scripts/install-deps.sh --resp-clients`");
        *self.proc.lock().unwrap_or_else(|e| e.into_inner()) = Some(Proc(child));
        wait_pong(self.addr, Duration::from_secs(10))
            .await
            .expect("redis-server starts");
    }
}

/// What the failover run crashes and brings back.
enum Crash<'a> {
    /// SIGKILL the Raft leader (found by `/cluster/status`), restart it with `cluster.sh start`.
    Leader(&'a Cluster),
    /// SIGKILL the redis-server and start it again at once on the same port and data.
    Redis(&'a RedisServer),
}

impl Crash<'_> {
    /// Kill; what was killed.
    async fn kill(&self) -> String {
        match self {
            Crash::Leader(cluster) => {
                let leader = cluster.leader().await;
                cluster.kill(leader).await;
                format!("leader {leader}")
            }
            Crash::Redis(server) => {
                // Child::kill is SIGKILL; dropping the Proc reaps it. A lone server is back after
                // half a second: the users cannot finish without it.
                let proc = server.proc.lock().unwrap_or_else(|e| e.into_inner()).take();
                drop(proc);
                tokio::time::sleep(Duration::from_millis(500)).await;
                server.spawn().await;
                "redis-server".to_string()
            }
        }
    }

    /// Bring back what [`Crash::kill`] killed (`what`), if it is not back yet.
    async fn restart(&self, what: &str) -> Result<String, String> {
        match self {
            Crash::Leader(cluster) => {
                let id = what.trim_start_matches("leader ");
                let out = cluster.sh(&["start", id]);
                if !out.status.success() {
                    return Err(format!("cluster.sh start {id}: {}", show(&out)));
                }
                Ok(format!(
                    "node {id} restarted, leader now {}",
                    cluster.leader().await
                ))
            }
            Crash::Redis(_) => Ok("it was restarted on its AOF 0.5 s after the kill".to_string()),
        }
    }
}

/// Users of one app while the store is SIGKILLed mid-run (a third of the increments in), then
/// restarted: every acknowledged increment is there afterwards, none doubled.
async fn failover_run(app: &RunningApp, crash: Crash<'_>) -> Result<(), String> {
    let t = Instant::now();
    let acks = AtomicUsize::new(0);
    let mut users: Vec<User> = (0..USERS).map(User::new).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let killer = async {
        while acks.load(Ordering::Relaxed) < USERS * INCREMENTS as usize / 3 {
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = acks.load(Ordering::Relaxed);
        let what = crash.kill().await;
        Some((what, before, t.elapsed()))
    };
    let users_run = all_users(&mut users, |u| {
        u.increments(
            app,
            INCREMENTS,
            Some(deadline),
            &acks,
            Duration::from_millis(150),
        )
    });
    let (run, killed) = tokio::join!(users_run, killer);
    let finished = t.elapsed();
    let Some((what, acked_before_kill, killed_at)) = killed else {
        run?;
        return Err(app.failure("the users never got a third of their increments acknowledged"));
    };
    run.map_err(|e| app.failure(&format!("increments while {what} was killed: {e}")))?;
    let unknown: u32 = users.iter().map(|u| u.unknown_total).sum();
    let restarted = crash.restart(&what).await?;
    all_users(&mut users, |u| u.check_read(app, Some(deadline)))
        .await
        .map_err(|e| app.failure(&format!("reads after {restarted}: {e}")))?;
    all_users(&mut users, |u| u.logout(app, Some(deadline)))
        .await
        .map_err(|e| app.failure(&format!("logout after {restarted}: {e}")))?;
    println!(
        "{}: {what} SIGKILLed at {:.2} s after {acked_before_kill} acknowledged increments; all \
         {} acknowledged by {:.2} s ({unknown} requests failed and were retried); {restarted}; \
         every user read its last acknowledged counter, logged out, old cookie empty: ok in \
         {:.2} s",
        app.app.name(),
        killed_at.as_secs_f64(),
        USERS * INCREMENTS as usize,
        finished.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The apps and the driver against a real (durable) redis-server, also SIGKILLed mid-run:
/// they are right before sessionraft is asked anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_against_redis_server() {
    let dir = TempDir::new().expect("temp dir");
    let server = RedisServer::start(dir.path()).await;
    redis_cli_session(server.addr, &[]).expect("redis-cli against redis-server");

    let mut failures = Vec::new();
    for app in App::ALL {
        let result = match RunningApp::start(app, server.addr, dir.path(), None).await {
            Ok(running) => match plain_run(&running).await {
                Ok(()) => failover_run(&running, Crash::Redis(&server)).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_against_a_cluster_through_haproxy() {
    let cluster = Cluster::new();
    let out = cluster.sh_ok(&["up"]);
    let lb_url = format!("redis://{}", cluster.lb_resp);
    assert!(
        out.contains(&cluster.lb_resp.to_string()),
        "cluster.sh up prints the Redis URL of the load balancer ({lb_url}): {out}"
    );
    let node1 = SocketAddr::from(([127, 0, 0, 1], cluster.resp[0]));
    wait_pong(node1, Duration::from_secs(20))
        .await
        .expect("node 1 serves RESP on its resp_addr");
    wait_pong(cluster.lb_resp, Duration::from_secs(20))
        .await
        .expect("HAProxy's RESP frontend relays to the nodes");

    let mut failures = Vec::new();
    if let Err(e) = redis_cli_session(node1, &[]) {
        failures.push(format!("redis-cli against node 1 ({node1}): {e}"));
    }
    for app in App::ALL {
        let result = match RunningApp::start(app, cluster.lb_resp, cluster.dir(), None).await {
            Ok(running) => match plain_run(&running).await {
                Ok(()) => failover_run(&running, Crash::Leader(&cluster)).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            failures.push(e);
        }
    }
    if !failures.is_empty() {
        panic!("{}\n{}", failures.join("\n\n"), cluster.logs());
    }
}

/// Until `redis-cli CONN… PING` through `addr` prints PONG, at most `timeout`.
async fn wait_pong_cli(addr: SocketAddr, conn: &[String], timeout: Duration) -> Result<(), String> {
    let t = Instant::now();
    loop {
        match redis_cli(addr, conn, &["PING"]) {
            Ok(s) if s == "PONG" => return Ok(()),
            r if t.elapsed() > timeout => return Err(format!("PING through {addr}: {r:?}")),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A plaintext RESP client (`SET key plaintext`) through `addr`, where the door speaks TLS
/// only: it gets no RESP reply (a TLS alert record, 0x15, or nothing before the close).
async fn plaintext_refused(addr: SocketAddr, key: &str) -> Result<(), String> {
    match resp_call(addr, &["SET", key, "plaintext"]).await {
        Ok(b) if b.is_empty() || b[0] == 0x15 => Ok(()),
        Ok(b) => Err(format!(
            "a plaintext SET through {addr} was answered {:?}",
            escape(&b, 200)
        )),
        // reset or timed out without a reply: refused too
        Err(_) => Ok(()),
    }
}

/// Issue 28's end to end: a TLS cluster (`[tls]` from dev-certs.sh, `[resp] tls_auth_clients =
/// "optional"`) behind `scripts/cluster.sh`'s HAProxy, whose RESP frontend passes TLS through.
/// `redis-cli --tls --cacert` (with the client certificate) through the load balancer; a
/// plaintext RESP client is refused and its SET not executed; then Express + connect-redis,
/// Flask-Session + redis-py (both presenting the `--client app` certificate) and actix's
/// `RedisSessionStore` over rustls (no certificate: "optional" lets it in) over `rediss://`
/// through HAProxy, each while the Raft leader is SIGKILLed mid-run and restarted: every
/// acknowledged increment there afterwards, none doubled. Last, `tls_auth_clients = "yes"` by a
/// `cluster.sh rolling-restart`: through the load balancer a client without a certificate is
/// refused (its SET not executed), one with the certificate is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_over_tls_through_haproxy_with_the_leader_killed() {
    let (cluster, tls) = Cluster::with_tls("\n[resp]\ntls_auth_clients = \"optional\"\n");
    let out = cluster.sh_ok(&["up"]);
    assert!(
        out.contains(&cluster.lb_resp.to_string()),
        "cluster.sh up prints the Redis URL of the load balancer: {out}"
    );
    let lb = cluster.lb_resp;
    let (with_cert, no_cert) = (tls.cli_args(true), tls.cli_args(false));
    wait_pong_cli(lb, &with_cert, Duration::from_secs(20))
        .await
        .expect("HAProxy's RESP frontend passes TLS through to the nodes");

    let mut failures = Vec::new();
    if let Err(e) = redis_cli_session(lb, &with_cert) {
        failures.push(format!(
            "redis-cli --tls through the load balancer ({lb}): {e}"
        ));
    }
    if let Err(e) = plaintext_refused(lb, "plain-optional").await {
        failures.push(e);
    }
    match redis_cli(lb, &with_cert, &["EXISTS", "plain-optional"]) {
        Ok(n) if n == "0" => {}
        r => failures.push(format!("the plaintext SET was executed: EXISTS said {r:?}")),
    }
    for app in App::ALL {
        let result = match RunningApp::start(app, lb, cluster.dir(), Some(&tls)).await {
            Ok(running) => failover_run(&running, Crash::Leader(&cluster)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            failures.push(e);
        }
    }
    if !failures.is_empty() {
        panic!("{}\n{}", failures.join("\n\n"), cluster.logs());
    }

    // Client certificates required from now on: the operator's rolling restart.
    let text = std::fs::read_to_string(&cluster.config).expect("config");
    let required = text.replace(
        "tls_auth_clients = \"optional\"",
        "tls_auth_clients = \"yes\"",
    );
    assert_ne!(text, required);
    std::fs::write(&cluster.config, required).expect("write config");
    cluster.sh_ok(&["rolling-restart"]);
    wait_pong_cli(lb, &with_cert, Duration::from_secs(20))
        .await
        .expect("a client with the certificate is served after the rolling restart");
    match redis_cli(lb, &no_cert, &["SET", "no-cert", "1"]) {
        Err(_) => {}
        Ok(s) => panic!("a client without a certificate was served: {s:?}"),
    }
    let exists = redis_cli(lb, &with_cert, &["EXISTS", "no-cert"]);
    assert_eq!(
        exists.as_deref(),
        Ok("0"),
        "the SET without a certificate must not be executed"
    );
    plaintext_refused(lb, "plain-required")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for id in 1..=3 {
        let node = SocketAddr::from(([127, 0, 0, 1], cluster.resp[id - 1]));
        let r = redis_cli(node, &no_cert, &["PING"]);
        assert!(
            r.is_err(),
            "node {id} served a client without a certificate: {r:?}"
        );
    }
}

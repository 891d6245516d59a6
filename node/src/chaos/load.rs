//! `sessionraft load`: virtual users driving the demo API and recording every operation.
//!
//! Each user behaves like one browser tab: its own HTTP client and cookie jar, one operation at
//! a time. Operations are offered open-loop at `rate` per second overall (each user ticks every
//! `users / rate` seconds, staggered); a tick that falls due while the user is still busy waits,
//! and further ticks falling due meanwhile are dropped and counted (`skipped_ticks`). Every
//! operation goes to a target chosen at random (seeded) and is appended to the history (see
//! [`super::history`]). After the run and a settle period, every user's current session is read
//! through every final target (`final_read`).
//!
//! The revocation workload (`revoke=N` in the mix, none by default): a user that is not signed
//! in in its current logical session signs in as its principal `u<id>` (a `login`); a signed-in
//! one logs out everywhere through one target (`revoke`, acknowledged at its `complete_ms`),
//! then tries the cookie it held before on every target every [`PROBE_INTERVAL`] for the probe
//! window (`probe`: `GET /api/whoami`; probes are sent on schedule without waiting for earlier
//! ones, so a node paused across the revoke is probed the moment it resumes), waits for the
//! answers, and starts a new logical session with a fresh jar.

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::HeaderValue;
use tokio::time::Instant;

use super::history::{HistoryClock, OpKind, OpRecord, Outcome};

/// Per-request timeout of the load driver.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long final reads are retried (503, connection errors, timeouts).
pub const FINAL_READ_WINDOW: Duration = Duration::from_secs(30);
/// How often a revoked cookie is tried on each target.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// The staleness bound assumed when no target reports `reads.max_staleness_ms`.
pub const DEFAULT_MAX_STALENESS_MS: u64 = 500;

/// The relative weights of the operations (`inc=60,read=30,login=5,logout=5`, and `revoke=N`
/// for the revocation workload, 0 unless given).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    pub inc: u32,
    pub read: u32,
    pub login: u32,
    pub logout: u32,
    pub revoke: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            inc: 60,
            read: 30,
            login: 5,
            logout: 5,
            revoke: 0,
        }
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mix = Mix {
            inc: 0,
            read: 0,
            login: 0,
            logout: 0,
            revoke: 0,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected NAME=WEIGHT"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: the weight must be a whole number"))?;
            match name.trim() {
                "inc" => mix.inc = weight,
                "read" => mix.read = weight,
                "login" => mix.login = weight,
                "logout" => mix.logout = weight,
                "revoke" => mix.revoke = weight,
                other => {
                    return Err(format!(
                        "`{other}`: unknown operation (inc, read, login, logout, revoke)"
                    ))
                }
            }
        }
        if mix.total() == 0 {
            return Err("at least one weight must be positive".into());
        }
        Ok(mix)
    }
}

impl Mix {
    fn total(&self) -> u32 {
        self.inc + self.read + self.login + self.logout + self.revoke
    }

    fn pick(&self, rng: &mut StdRng) -> OpKind {
        let mut x = rng.gen_range(0..self.total());
        for (kind, w) in [
            (OpKind::Inc, self.inc),
            (OpKind::Read, self.read),
            (OpKind::Login, self.login),
            (OpKind::Logout, self.logout),
            (OpKind::Revoke, self.revoke),
        ] {
            if x < w {
                return kind;
            }
            x -= w;
        }
        OpKind::Read
    }
}

/// What `sessionraft load` was asked to do (validated).
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Base URLs (`http://host:port`) operations are spread over.
    pub targets: Vec<String>,
    /// Base URLs of the final reads.
    pub final_targets: Vec<String>,
    pub users: u32,
    /// Offered operations per second, all users together.
    pub rate: f64,
    pub duration: Duration,
    pub settle: Duration,
    pub seed: u64,
    pub mix: Mix,
    /// How long a revoked cookie is probed after the revoke (none: twice the
    /// `reads.max_staleness_ms` of the first target that answers `/cluster/status`, else twice
    /// [`DEFAULT_MAX_STALENESS_MS`]).
    pub probe_window: Option<Duration>,
    pub out: PathBuf,
}

/// Totals of a run (also printed as the one-line summary).
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadSummary {
    /// Revokes acknowledged, and probes of their cookies.
    pub revokes: u64,
    pub probes: u64,
    pub ops: u64,
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
    pub skipped_ticks: u64,
    /// Of `ops`, the final reads.
    pub final_reads: u64,
    /// Operations (not final reads) answered ok per second of the run.
    pub throughput: f64,
}

/// Normalize a list of base URLs: trimmed, no trailing `/`, `http://` added when missing.
pub fn parse_targets(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = s.trim_end_matches('/');
            if s.contains("://") {
                s.to_string()
            } else {
                format!("http://{s}")
            }
        })
        .collect()
}

/// Run the load and write the history.
///
/// # Errors
/// Bad options, the history file cannot be written, or the runtime cannot start. Failed
/// requests are not errors: they are recorded.
pub fn run(opts: LoadOptions) -> anyhow::Result<LoadSummary> {
    anyhow::ensure!(!opts.targets.is_empty(), "--targets: at least one URL");
    anyhow::ensure!(opts.users > 0, "--users must be at least 1");
    anyhow::ensure!(
        opts.rate.is_finite() && opts.rate > 0.0,
        "--rate must be positive"
    );
    let file = std::fs::File::create(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let sink = Arc::new(Sink {
        out: Mutex::new(std::io::LineWriter::new(file)),
        clock: HistoryClock::new(),
        totals: Mutex::new(LoadSummary::default()),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the load runtime")?;
    rt.block_on(drive(opts.clone(), sink.clone()))?;
    let mut out = sink
        .out
        .lock()
        .map_err(|_| anyhow::anyhow!("history writer poisoned"))?;
    out.flush()
        .with_context(|| format!("writing {}", opts.out.display()))?;
    let totals = *sink
        .totals
        .lock()
        .map_err(|_| anyhow::anyhow!("totals poisoned"))?;
    Ok(totals)
}

/// Where operations go: the history file (line-buffered, so a killed run keeps every operation
/// recorded so far) and the running totals.
struct Sink {
    out: Mutex<std::io::LineWriter<std::fs::File>>,
    clock: HistoryClock,
    totals: Mutex<LoadSummary>,
}

impl Sink {
    fn record(&self, op: &OpRecord) -> anyhow::Result<()> {
        let line = serde_json::to_string(op)?;
        {
            let mut out = self
                .out
                .lock()
                .map_err(|_| anyhow::anyhow!("history writer poisoned"))?;
            writeln!(out, "{line}").context("writing the history")?;
        }
        let mut t = self
            .totals
            .lock()
            .map_err(|_| anyhow::anyhow!("totals poisoned"))?;
        t.ops += 1;
        t.skipped_ticks += op.skipped_ticks;
        match (op.op, op.outcome) {
            (OpKind::FinalRead, _) => t.final_reads += 1,
            (OpKind::Revoke, Outcome::Ok) => t.revokes += 1,
            (OpKind::Probe, _) => t.probes += 1,
            _ => {}
        }
        match op.outcome {
            Outcome::Ok => t.ok += 1,
            Outcome::Fail => t.fail += 1,
            Outcome::Unknown => t.unknown += 1,
        }
        Ok(())
    }
}

/// The staleness bound reported by the first target that answers `/cluster/status`.
async fn cluster_max_staleness_ms(targets: &[String]) -> Option<u64> {
    let client = crate::trust::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    for t in targets {
        let Ok(resp) = client.get(format!("{t}/cluster/status")).send().await else {
            continue;
        };
        let Ok(status) = resp.json::<serde_json::Value>().await else {
            continue;
        };
        if let Some(ms) = status["reads"]["max_staleness_ms"].as_u64() {
            return Some(ms);
        }
    }
    None
}

/// Every base URL of the run once (targets, then final targets): where revoked cookies are tried.
fn probe_targets(opts: &LoadOptions) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for t in opts.targets.iter().chain(&opts.final_targets) {
        if !all.contains(t) {
            all.push(t.clone());
        }
    }
    all
}

async fn drive(mut opts: LoadOptions, sink: Arc<Sink>) -> anyhow::Result<()> {
    if opts.mix.revoke > 0 && opts.probe_window.is_none() {
        let ms = cluster_max_staleness_ms(&opts.targets)
            .await
            .unwrap_or(DEFAULT_MAX_STALENESS_MS);
        opts.probe_window = Some(Duration::from_millis(2 * ms));
    }
    let opts = Arc::new(opts);
    let start = Instant::now();
    let end = start + opts.duration;
    let period = Duration::from_secs_f64(f64::from(opts.users) / opts.rate);
    let mut tasks = Vec::new();
    for id in 0..opts.users {
        let user = VirtualUser::new(id, opts.seed)?;
        // Stagger the users evenly over one period.
        let first = start + period.mul_f64(f64::from(id) / f64::from(opts.users));
        let (opts, sink) = (opts.clone(), sink.clone());
        tasks.push(tokio::spawn(async move {
            let mut user = user;
            user.run(&opts, &sink, first, period, end).await?;
            Ok::<_, anyhow::Error>(user)
        }));
    }
    let mut users = Vec::with_capacity(tasks.len());
    for t in tasks {
        users.push(t.await.context("user task")??);
    }
    let ok_in_run = sink.totals.lock().map(|t| t.ok).unwrap_or(0);
    let elapsed = start.elapsed().as_secs_f64().max(1e-3);
    if let Ok(mut t) = sink.totals.lock() {
        t.throughput = ok_in_run as f64 / elapsed;
    }

    tokio::time::sleep(opts.settle).await;
    let deadline = Instant::now() + FINAL_READ_WINDOW;
    let mut finals = Vec::new();
    for user in users {
        let (opts, sink) = (opts.clone(), sink.clone());
        finals.push(tokio::spawn(async move {
            for target in &opts.final_targets {
                user.final_read(target, &sink, deadline).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for f in finals {
        f.await.context("final read task")??;
    }
    Ok(())
}

/// A cookie jar holding the cookies of one browser tab, whatever host they came from.
///
/// The targets of one run may be different hosts (nodes on 127.0.0.11, 127.0.0.12, … or a load
/// balancer), while a browser tab keeps one session: so, unlike reqwest's jar, cookies are not
/// scoped by host. A `Set-Cookie` with `Max-Age=0` or an empty value removes the cookie.
#[derive(Default)]
struct TabJar {
    cookies: Mutex<Vec<(String, String)>>,
}

impl reqwest::cookie::CookieStore for TabJar {
    fn set_cookies(&self, headers: &mut dyn Iterator<Item = &HeaderValue>, _url: &reqwest::Url) {
        let Ok(mut jar) = self.cookies.lock() else {
            return;
        };
        for h in headers {
            let Ok(text) = h.to_str() else { continue };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim().to_string(), value.trim().to_string());
            let removed = value.is_empty()
                || parts.any(|a| {
                    let a = a.trim().to_ascii_lowercase();
                    a == "max-age=0" || a.starts_with("max-age=-")
                });
            jar.retain(|(n, _)| *n != name);
            if !removed {
                jar.push((name, value));
            }
        }
    }

    fn cookies(&self, _url: &reqwest::Url) -> Option<HeaderValue> {
        self.header()
    }
}

impl TabJar {
    /// The `Cookie` header this tab sends now (none when the jar is empty).
    fn header(&self) -> Option<HeaderValue> {
        let jar = self.cookies.lock().ok()?;
        if jar.is_empty() {
            return None;
        }
        let header = jar
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        HeaderValue::from_str(&header).ok()
    }
}

/// A tab's client and its jar (kept to copy the cookie before a revoke).
fn tab_client() -> anyhow::Result<(reqwest::Client, Arc<TabJar>)> {
    let jar = Arc::new(TabJar::default());
    let client = crate::trust::builder()
        .cookie_provider(jar.clone())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .build()
        .context("building an HTTP client")?;
    Ok((client, jar))
}

struct VirtualUser {
    id: u32,
    epoch: u32,
    client: reqwest::Client,
    jar: Arc<TabJar>,
    /// A login of this logical session was acknowledged (the revocation workload revokes only
    /// then).
    signed_in: bool,
    /// Without a jar: probes carry the revoked cookie explicitly.
    probe_client: reqwest::Client,
    rng: StdRng,
}

/// The answer to one request, classified.
struct Answer {
    outcome: Outcome,
    status: u16,
    value: Option<i64>,
    served_by: Option<u64>,
    error: Option<String>,
}

impl VirtualUser {
    fn new(id: u32, seed: u64) -> anyhow::Result<Self> {
        let (client, jar) = tab_client()?;
        Ok(Self {
            id,
            epoch: 0,
            client,
            jar,
            signed_in: false,
            probe_client: crate::trust::builder()
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(REQUEST_TIMEOUT)
                .build()
                .context("building an HTTP client")?,
            rng: StdRng::seed_from_u64(
                seed ^ (u64::from(id) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ),
        })
    }

    fn session(&self) -> String {
        format!("u{}#{}", self.id, self.epoch)
    }

    /// The user this virtual user signs in as.
    fn principal(&self) -> String {
        format!("u{}", self.id)
    }

    /// A fresh tab: new cookie jar, next epoch.
    fn new_epoch(&mut self) -> anyhow::Result<()> {
        self.epoch += 1;
        (self.client, self.jar) = tab_client()?;
        self.signed_in = false;
        Ok(())
    }

    async fn run(
        &mut self,
        opts: &Arc<LoadOptions>,
        sink: &Arc<Sink>,
        first: Instant,
        period: Duration,
        end: Instant,
    ) -> anyhow::Result<()> {
        let mut next = first;
        let mut skipped = 0u64;
        while next < end {
            tokio::time::sleep_until(next).await;
            let mut kind = opts.mix.pick(&mut self.rng);
            let target = opts.targets[self.rng.gen_range(0..opts.targets.len())].clone();
            if kind == OpKind::Revoke && !self.signed_in {
                // Nothing to revoke yet: sign in first (a later revoke tick revokes).
                kind = OpKind::Login;
            }
            if kind == OpKind::Revoke {
                self.revoke(&target, opts, sink, skipped).await?;
                skipped = 0;
            } else {
                let op = self.perform(kind, &target, sink, skipped).await;
                skipped = 0;
                sink.record(&op)?;
                match (kind, op.outcome) {
                    (OpKind::Login, Outcome::Ok) => self.signed_in = true,
                    (OpKind::Logout, Outcome::Ok | Outcome::Unknown)
                    | (OpKind::Login, Outcome::Unknown) => self.new_epoch()?,
                    _ => {}
                }
            }
            // Ticks that fell due during the operation: the first one waited and runs now, the
            // others are dropped.
            next += period;
            let now = Instant::now();
            if now > next {
                let missed = ((now - next).as_secs_f64() / period.as_secs_f64()).floor();
                if missed >= 1.0 {
                    skipped = missed as u64;
                    next += period.mul_f64(missed);
                }
            }
        }
        Ok(())
    }

    async fn perform(
        &self,
        kind: OpKind,
        target: &str,
        sink: &Sink,
        skipped_ticks: u64,
    ) -> OpRecord {
        let invoke_ms = sink.clock.now_ms();
        let answer = self.request(kind, target).await;
        let complete_ms = sink.clock.now_ms();
        OpRecord {
            user: self.id,
            session: self.session(),
            op: kind,
            value: answer.value,
            invoke_ms,
            complete_ms,
            outcome: answer.outcome,
            status: answer.status,
            target: target.to_string(),
            served_by: answer.served_by,
            error: answer.error,
            skipped_ticks,
            principal: (kind == OpKind::Revoke).then(|| self.principal()),
        }
    }

    /// Log out everywhere through `target`, then (when acknowledged) try the cookie held
    /// before on every target for the probe window, record every probe, and start a new
    /// logical session (unless the revoke certainly did not happen).
    async fn revoke(
        &mut self,
        target: &str,
        opts: &Arc<LoadOptions>,
        sink: &Arc<Sink>,
        skipped_ticks: u64,
    ) -> anyhow::Result<()> {
        let cookie = self.jar.header();
        let op = self
            .perform(OpKind::Revoke, target, sink, skipped_ticks)
            .await;
        sink.record(&op)?;
        match op.outcome {
            Outcome::Fail => return Ok(()),
            Outcome::Unknown => return self.new_epoch(),
            Outcome::Ok => {}
        }
        if let Some(cookie) = cookie {
            let targets = probe_targets(opts);
            let window = opts
                .probe_window
                .unwrap_or(Duration::from_millis(2 * DEFAULT_MAX_STALENESS_MS));
            let start = Instant::now();
            let mut probes = Vec::new();
            let mut tick = 0u32;
            loop {
                for t in &targets {
                    let probe = Probe {
                        user: self.id,
                        session: self.session(),
                        client: self.probe_client.clone(),
                        cookie: cookie.clone(),
                        target: t.clone(),
                    };
                    let sink = sink.clone();
                    probes.push(tokio::spawn(async move {
                        let op = probe.run(&sink.clock).await;
                        sink.record(&op)
                    }));
                }
                tick += 1;
                let next = start + PROBE_INTERVAL * tick;
                if next > start + window {
                    break;
                }
                tokio::time::sleep_until(next).await;
            }
            for p in probes {
                p.await.context("probe task")??;
            }
        }
        self.new_epoch()
    }

    async fn request(&self, kind: OpKind, target: &str) -> Answer {
        let req = match kind {
            OpKind::Inc => self.client.post(format!("{target}/api/counter")),
            OpKind::Read | OpKind::FinalRead => self.client.get(format!("{target}/api/counter")),
            OpKind::Login => self
                .client
                .post(format!("{target}/api/login"))
                .json(&serde_json::json!({ "user": format!("u{}", self.id) })),
            OpKind::Logout => self.client.post(format!("{target}/api/logout")),
            OpKind::Revoke => self.client.post(format!("{target}/api/logout-everywhere")),
            OpKind::Probe => self.client.get(format!("{target}/api/whoami")),
        };
        // A failed read changed nothing; a failed write may have been applied unless it
        // certainly never reached the server (connection refused) or was refused (4xx).
        let doubt = if kind.is_write() {
            Outcome::Unknown
        } else {
            Outcome::Fail
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let outcome = if e.is_connect() { Outcome::Fail } else { doubt };
                return Answer {
                    outcome,
                    status: 0,
                    value: None,
                    served_by: None,
                    error: Some(error_text(&e)),
                };
            }
        };
        let status = resp.status().as_u16();
        let body = resp.text().await;
        let fail = |outcome, error: String| Answer {
            outcome,
            status,
            value: None,
            served_by: None,
            error: Some(error),
        };
        let body = match body {
            Ok(b) => b,
            Err(e) if (200..300).contains(&status) => {
                return fail(doubt, format!("reading the body: {}", error_text(&e)))
            }
            Err(e) => String::from_utf8_lossy(error_text(&e).as_bytes()).into_owned(),
        };
        if !(200..300).contains(&status) {
            let outcome = if (400..500).contains(&status) {
                Outcome::Fail
            } else {
                doubt
            };
            let text: String = body.chars().take(200).collect();
            return fail(outcome, format!("HTTP {status}: {}", text.trim()));
        }
        let json: serde_json::Value = match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(e) => return fail(doubt, format!("undecodable body: {e}")),
        };
        let value = json["counter"].as_i64();
        if value.is_none() && !matches!(kind, OpKind::Logout | OpKind::Revoke) {
            return fail(doubt, "no counter in the answer".into());
        }
        Answer {
            outcome: Outcome::Ok,
            status,
            value,
            served_by: json["served_by"].as_u64(),
            error: None,
        }
    }

    /// Read the current session through `target`, retrying failures until `deadline` (a 4xx is
    /// final); record the last attempt.
    async fn final_read(&self, target: &str, sink: &Sink, deadline: Instant) -> anyhow::Result<()> {
        loop {
            let op = self.perform(OpKind::FinalRead, target, sink, 0).await;
            let refused = (400..500).contains(&op.status);
            if op.outcome == Outcome::Ok || refused || Instant::now() >= deadline {
                return sink.record(&op);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// One try of a revoked cookie on one target.
struct Probe {
    user: u32,
    session: String,
    client: reqwest::Client,
    cookie: HeaderValue,
    target: String,
}

impl Probe {
    /// `GET /api/whoami` with the revoked cookie: `ok` with the user the answer named (none:
    /// the cookie named no live session), `fail` otherwise (a probe changes nothing).
    async fn run(self, clock: &HistoryClock) -> OpRecord {
        let invoke_ms = clock.now_ms();
        let sent = self
            .client
            .get(format!("{}/api/whoami", self.target))
            .header(reqwest::header::COOKIE, self.cookie.clone())
            .send()
            .await;
        let mut op = OpRecord {
            user: self.user,
            session: self.session,
            op: OpKind::Probe,
            value: None,
            invoke_ms,
            complete_ms: invoke_ms,
            outcome: Outcome::Fail,
            status: 0,
            target: self.target,
            served_by: None,
            error: None,
            skipped_ticks: 0,
            principal: None,
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                op.complete_ms = clock.now_ms();
                op.error = Some(error_text(&e));
                return op;
            }
        };
        op.status = resp.status().as_u16();
        let body = resp.text().await;
        op.complete_ms = clock.now_ms();
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                op.error = Some(format!("reading the body: {}", error_text(&e)));
                return op;
            }
        };
        if !(200..300).contains(&op.status) {
            let text: String = body.chars().take(200).collect();
            op.error = Some(format!("HTTP {}: {}", op.status, text.trim()));
            return op;
        }
        match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(json) => {
                op.outcome = Outcome::Ok;
                op.value = json["counter"].as_i64();
                op.served_by = json["served_by"].as_u64();
                op.principal = json["user"].as_str().map(str::to_string);
            }
            Err(e) => op.error = Some(format!("undecodable body: {e}")),
        }
        op
    }
}

/// reqwest's error with its sources (its `Display` alone says little: "error sending request").
fn error_text(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timeout".to_string()
    } else if e.is_connect() {
        "connect".to_string()
    } else {
        "request".to_string()
    };
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::cookie::CookieStore;

    #[test]
    fn mix_parses_and_rejects() {
        assert_eq!(
            "inc=60,read=30,login=5,logout=5".parse(),
            Ok(Mix::default())
        );
        let m: Mix = "inc=1".parse().unwrap();
        assert_eq!(
            (m.inc, m.read, m.login, m.logout, m.revoke),
            (1, 0, 0, 0, 0)
        );
        let m: Mix = "inc=40,revoke=10".parse().unwrap();
        assert_eq!((m.inc, m.revoke), (40, 10));
        assert!("revoke=0".parse::<Mix>().is_err());
        assert!("inc=0".parse::<Mix>().is_err());
        assert!("write=3".parse::<Mix>().is_err());
        assert!("inc".parse::<Mix>().is_err());
    }

    #[test]
    fn targets_are_normalized() {
        assert_eq!(
            parse_targets("127.0.0.1:1, http://a:2/ ,"),
            vec!["http://127.0.0.1:1".to_string(), "http://a:2".to_string()]
        );
    }

    #[test]
    fn tab_jar_ignores_hosts_and_honours_removal() {
        let jar = TabJar::default();
        let a: reqwest::Url = "http://127.0.0.11:1/".parse().unwrap();
        let b: reqwest::Url = "http://127.0.0.12:2/".parse().unwrap();
        let set = HeaderValue::from_static("id=abc; Path=/; HttpOnly; SameSite=Lax");
        jar.set_cookies(&mut std::iter::once(&set), &a);
        assert_eq!(jar.cookies(&b).unwrap(), "id=abc");
        let gone = HeaderValue::from_static("id=; Max-Age=0; Path=/");
        jar.set_cookies(&mut std::iter::once(&gone), &b);
        assert!(jar.cookies(&a).is_none());
    }
}

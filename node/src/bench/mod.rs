//! `sessionraft bench`: a closed-loop HTTP load generator for side-by-side benchmarks of
//! sessionraft, actix-session on Redis (`examples/redis_app.rs`) and etcd, with one tool.
//!
//! `connections` virtual users run concurrently, each with its own HTTP client (one keep-alive
//! connection) and one request in flight at a time; user `i` sticks to target
//! `i % targets.len()`. Before the clock starts every user creates what it works on (not
//! measured): its session (`kind = session`: one `POST /api/counter`, the cookie is kept) or its
//! key (`kind = etcd`: one put). Then a warmup (not measured) and the measured run:
//!
//! | workload | session | etcd (v3 JSON gateway) |
//! |---|---|---|
//! | `write` | `POST /api/counter` | `POST /v3/kv/put {key, value}` |
//! | `read` | `GET /api/counter` | `POST /v3/kv/range {key}` (linearizable) |
//! | `mixed` | 90 % reads, 10 % writes (seeded per user) | same |
//!
//! Only 2xx answers count as throughput; anything else (status or transport error) is an error.
//! A request counts when it started after the warmup and completed before the end. Latencies
//! (of the successful requests) go into a log-linear histogram (`histogram`).
//!
//! The tool is meant to share the machine with the servers it measures: a 2-worker tokio
//! runtime by default (`--threads N`: N workers; `--threads 1` runs everything on the calling
//! thread, a current-thread runtime, so the tool is one thread in all), URLs and request bodies
//! built once per user and reused, and its own CPU time over the measured window reported
//! (`load_cpu_percent`, of one core).
//!
//! What explains a number is measured over the same window: how busy the whole machine was
//! (`machine_cpu_busy_percent`, of all cores) and how many context switches it made
//! (`context_switches_per_s`), both from `/proc/stat`; and, when the targets are sessionraft
//! nodes (one scrape of every target's `/metrics` at each end of the window), how many Raft
//! log entries the cluster appended (`raft_entries_per_s`, from the highest
//! `sessionraft_raft_last_log_index`) — with the write throughput, how many session writes
//! shared each entry (and its fsyncs and AppendEntries) — and where the requests' time went on
//! the nodes (`stages`: the mean of each step of a write or read, from their
//! `sessionraft_stage_seconds`), and how the session loads were made safe to read
//! (`read_paths_per_s`: `sessionraft_read_index_total` by `how` — `lease` and `round` on the
//! leader, `local` for a token read served from a follower's own replica).
//!
//! With `server_pids` (`--server-pids`: the processes of the system under test, e.g. the three
//! nodes, or `redis_app` and its `redis-server`), their CPU time over the same window
//! (`/proc/<pid>/stat`, user + system, every thread) is reported too: in % of one core
//! (`server_cpu_percent`) and per successful request (`server_cpu_us_per_op`) — what one
//! request costs the servers, which the load tool's and the other systems' share of a shared
//! machine moves much less than the rate.
//!
//! `--rate R` switches to an open loop instead (`open_loop`): increments arriving at R per
//! second whatever the answers, for overload benchmarks.

pub mod backup_gen;
mod histogram;
pub mod open_loop;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine as _;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::{HeaderValue, CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

pub use histogram::Histogram;

/// What the targets are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// sessionraft nodes, or any app with the same `/api/counter` (e.g. `redis_app`).
    Session,
    /// etcd v3's HTTP/JSON gateway.
    Etcd,
}

/// What each virtual user does in a loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Write,
    Read,
    /// 90 % reads, 10 % writes.
    Mixed,
}

/// A validated `sessionraft bench` run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Base URLs (`http://host:port`, no trailing slash).
    pub targets: Vec<String>,
    pub kind: Kind,
    pub workload: Workload,
    pub connections: u32,
    pub duration: Duration,
    pub warmup: Duration,
    /// Size of the value of an etcd put.
    pub value_bytes: usize,
    pub seed: u64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Worker threads of the load tool's runtime (1: a current-thread runtime, the calling
    /// thread only).
    pub threads: usize,
    /// How long each user keeps trying to create its session or key.
    pub setup_timeout: Duration,
    /// The processes of the system under test whose CPU time is measured over the window
    /// (empty: not measured).
    pub server_pids: Vec<u32>,
}

/// The result of a run (`--json` prints it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchReport {
    pub kind: Kind,
    pub workload: Workload,
    pub connections: u32,
    pub duration_s: f64,
    /// Successful (2xx) requests in the measured window.
    pub ok: u64,
    /// Failed requests (non-2xx or transport errors) in the measured window.
    pub errors: u64,
    pub throughput_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub warmup_s: f64,
    pub targets: Vec<String>,
    /// CPU time of this load generator during the measured window, in % of one core.
    pub load_cpu_percent: Option<f64>,
    /// The whole machine's busy CPU time (user, nice, system, irq, softirq) during the measured
    /// window, in % of all its cores (`/proc/stat`).
    #[serde(default)]
    pub machine_cpu_busy_percent: Option<f64>,
    /// The whole machine's context switches per second during the measured window.
    #[serde(default)]
    pub context_switches_per_s: Option<f64>,
    /// Raft log entries appended per second during the measured window (the growth of the
    /// highest `sessionraft_raft_last_log_index` on the targets' `/metrics`); `None` when the targets
    /// are not sessionraft nodes.
    #[serde(default)]
    pub raft_entries_per_s: Option<f64>,
    /// Where the requests' time went on the nodes: for each step of a write or read
    /// (`sessionraft_stage_seconds` on the targets' `/metrics`, summed over the targets), how
    /// many were timed in the measured window and their mean. Empty when the targets are not
    /// sessionraft nodes.
    #[serde(default)]
    pub stages: BTreeMap<String, StageMean>,
    /// How the session loads were made safe to read during the measured window, per second
    /// (`sessionraft_read_index_total` by `how`, summed over the targets: `lease`, `round`,
    /// `local`). Empty when the targets are not sessionraft nodes (or older ones without it).
    #[serde(default)]
    pub read_paths_per_s: BTreeMap<String, f64>,
    /// The load tool's worker threads (`--threads`).
    #[serde(default)]
    pub threads: Option<usize>,
    /// CPU time (user + system) of the `--server-pids` processes together during the measured
    /// window, in % of one core; `None` without them, or when one was gone at either end.
    #[serde(default)]
    pub server_cpu_percent: Option<f64>,
    /// That CPU time per successful request, in µs.
    #[serde(default)]
    pub server_cpu_us_per_op: Option<f64>,
    /// The first error seen in the measured window, if any.
    pub first_error: Option<String>,
}

impl BenchReport {
    /// The one-line human summary.
    pub fn human(&self) -> String {
        let kind = match self.kind {
            Kind::Session => "session",
            Kind::Etcd => "etcd",
        };
        let workload = match self.workload {
            Workload::Write => "write",
            Workload::Read => "read",
            Workload::Mixed => "mixed",
        };
        let cpu = self
            .load_cpu_percent
            .map(|c| format!("; load tool CPU {c:.0}% of a core"))
            .unwrap_or_default();
        let machine = match (self.machine_cpu_busy_percent, self.context_switches_per_s) {
            (Some(b), Some(cs)) => {
                format!("; machine CPU {b:.0}% busy, {cs:.0} context switches/s")
            }
            _ => String::new(),
        };
        let raft = self
            .raft_entries_per_s
            .map(|e| format!("; {e:.0} Raft log entries/s"))
            .unwrap_or_default();
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|(s, m)| format!("{s} {:.2}", m.mean_ms))
            .collect();
        let stages = if stages.is_empty() {
            String::new()
        } else {
            format!("; node stages, mean ms: {}", stages.join(", "))
        };
        let paths: Vec<String> = self
            .read_paths_per_s
            .iter()
            .map(|(how, r)| format!("{how} {r:.0}"))
            .collect();
        let paths = if paths.is_empty() {
            String::new()
        } else {
            format!("; loads made safe, per s: {}", paths.join(", "))
        };
        let threads = self
            .threads
            .map(|t| format!("; {t} load thread(s)"))
            .unwrap_or_default();
        let servers = match (self.server_cpu_percent, self.server_cpu_us_per_op) {
            (Some(c), Some(per)) => format!("; servers' CPU {c:.0}% of a core, {per:.1} µs per op"),
            (Some(c), None) => format!("; servers' CPU {c:.0}% of a core"),
            _ => String::new(),
        };
        let err = self
            .first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default();
        format!(
            "bench {kind} {workload}: {} connections on {} target(s), {:.1} s: {} ok = {:.1}/s, \
             {} errors{err}; latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms{cpu}{threads}\
             {servers}{machine}{raft}{stages}{paths}",
            self.connections,
            self.targets.len(),
            self.duration_s,
            self.ok,
            self.throughput_per_s,
            self.errors,
            self.p50_ms,
            self.p99_ms,
            self.max_ms
        )
    }
}

/// One step's timings over the measured window, from the nodes' `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageMean {
    /// How many were timed (over all targets).
    pub count: u64,
    /// Their mean, in ms.
    pub mean_ms: f64,
}

/// What the targets' `/metrics` say at one end of the measured window.
#[derive(Debug, Default)]
struct Scrape {
    /// The highest `sessionraft_raft_last_log_index` (the leader's log is the longest).
    last_log_index: Option<u64>,
    /// Every stage's `(sum of seconds, count)`, added up over the targets.
    stages: BTreeMap<String, (f64, u64)>,
    /// `sessionraft_read_index_total` by `how`, added up over the targets.
    read_paths: BTreeMap<String, u64>,
}

/// Add one exposition (one node's `/metrics`, or several appended) to `into`.
fn parse_metrics(text: &str, into: &mut Scrape) {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("sessionraft_raft_last_log_index") {
            let value = rest.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok());
            into.last_log_index = into.last_log_index.max(value);
            continue;
        }
        if let Some(rest) = line.strip_prefix("sessionraft_read_index_total{") {
            let how = rest
                .split_once('}')
                .and_then(|(labels, _)| {
                    labels
                        .split(',')
                        .find_map(|l| l.strip_prefix("how=\"")?.strip_suffix('"'))
                })
                .map(str::to_string);
            let value = rest
                .rsplit(' ')
                .next()
                .and_then(|v| v.trim().parse::<f64>().ok());
            if let (Some(how), Some(v)) = (how, value) {
                *into.read_paths.entry(how).or_default() += v as u64;
            }
            continue;
        }
        let (is_sum, rest) = if let Some(r) = line.strip_prefix("sessionraft_stage_seconds_sum{") {
            (true, r)
        } else if let Some(r) = line.strip_prefix("sessionraft_stage_seconds_count{") {
            (false, r)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let Some(stage) = labels
            .split(',')
            .find_map(|l| l.strip_prefix("stage=\"")?.strip_suffix('"'))
        else {
            continue;
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        let e = into.stages.entry(stage.to_string()).or_default();
        if is_sum {
            e.0 += v;
        } else {
            e.1 += v as u64;
        }
    }
}

/// The stages timed between two scrapes (`before`, `after`: totals by stage).
fn stage_means(
    before: &BTreeMap<String, (f64, u64)>,
    after: &BTreeMap<String, (f64, u64)>,
) -> BTreeMap<String, StageMean> {
    after
        .iter()
        .filter_map(|(stage, &(sum1, n1))| {
            let (sum0, n0) = before.get(stage).copied().unwrap_or_default();
            let count = n1.checked_sub(n0).filter(|&c| c > 0)?;
            let mean_ms = (sum1 - sum0).max(0.0) / count as f64 * 1000.0;
            Some((
                stage.clone(),
                StageMean {
                    count,
                    mean_ms: round3(mean_ms),
                },
            ))
        })
        .collect()
}

/// The growth of each counter between two scrapes, per second (to 0.1).
fn per_second(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    secs: f64,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, &n1)| {
            let n0 = before.get(k).copied().unwrap_or_default();
            let rate = n1.saturating_sub(n0) as f64 / secs;
            (k.clone(), (rate * 10.0).round() / 10.0)
        })
        .collect()
}

/// One scrape of every target's `/metrics`, added up; `None` without a client or when no
/// target answers (not sessionraft).
async fn scrape(client: Option<&reqwest::Client>, targets: &[String]) -> Option<Scrape> {
    let client = client?;
    let mut totals = Scrape::default();
    let mut answered = false;
    for t in targets {
        let text = async {
            let resp = client.get(format!("{t}/metrics")).send().await.ok()?;
            resp.error_for_status().ok()?.text().await.ok()
        }
        .await;
        if let Some(text) = text {
            answered = true;
            parse_metrics(&text, &mut totals);
        }
    }
    answered.then_some(totals)
}

/// Pause after a transport error (connection refused…), so a dead target is not spun on.
const TRANSPORT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Run the benchmark.
///
/// # Errors
/// Bad options, or a user could not create its session or key within the setup deadline.
pub fn run(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(!opts.targets.is_empty(), "--targets: at least one URL");
    anyhow::ensure!(opts.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(!opts.duration.is_zero(), "--duration must be positive");
    anyhow::ensure!(opts.threads > 0, "--threads must be at least 1");
    load_runtime(opts.threads)?.block_on(drive(opts))
}

/// The load tool's runtime. One thread: a current-thread runtime (the users and the clock on
/// this thread alone; a multi-thread runtime with one worker would add this thread, parked in
/// block_on, and the wake-ups between the two).
pub(crate) fn load_runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads).thread_name("bench");
        b
    };
    builder
        .enable_all()
        .build()
        .context("starting the load runtime")
}

async fn drive(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    let opts = Arc::new(opts);
    // 1. every user prepares (concurrently), not measured
    let mut setups = Vec::with_capacity(opts.connections as usize);
    for i in 0..opts.connections {
        let opts = opts.clone();
        setups.push(tokio::spawn(async move { User::prepare(i, &opts).await }));
    }
    let mut users = Vec::with_capacity(setups.len());
    for s in setups {
        users.push(s.await.context("setup task")??);
    }
    // 2. warmup, then the measured window
    let measure_start = Instant::now() + opts.warmup;
    let end = measure_start + opts.duration;
    let workload = opts.workload;
    let tasks: Vec<_> = users
        .into_iter()
        .map(|u| tokio::spawn(u.run(workload, measure_start, end)))
        .collect();
    let status_client = match opts.kind {
        Kind::Session => crate::trust::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .ok(),
        Kind::Etcd => None,
    };
    tokio::time::sleep_until(measure_start.into()).await;
    let cpu0 = process_cpu_seconds("self");
    let servers0 = servers_cpu_seconds(&opts.server_pids);
    let machine0 = machine_stat();
    let scrape0 = scrape(status_client.as_ref(), &opts.targets).await;
    tokio::time::sleep_until(end.into()).await;
    let cpu1 = process_cpu_seconds("self");
    let servers1 = servers_cpu_seconds(&opts.server_pids);
    let machine1 = machine_stat();
    let scrape1 = scrape(status_client.as_ref(), &opts.targets).await;
    let mut hist = Histogram::default();
    let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
    for t in tasks {
        let r = t.await.context("user task")?;
        hist.merge(&r.hist);
        ok += r.ok;
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let secs = opts.duration.as_secs_f64();
    let ms = |us: u64| round3(us as f64 / 1000.0);
    let servers_cpu = servers0.zip(servers1).map(|(a, b)| (b - a).max(0.0));
    Ok(BenchReport {
        kind: opts.kind,
        workload: opts.workload,
        connections: opts.connections,
        duration_s: round3(secs),
        ok,
        errors,
        throughput_per_s: (ok as f64 / secs * 10.0).round() / 10.0,
        p50_ms: ms(hist.quantile(0.50)),
        p99_ms: ms(hist.quantile(0.99)),
        max_ms: ms(hist.max()),
        mean_ms: round3(hist.mean() / 1000.0),
        warmup_s: round3(opts.warmup.as_secs_f64()),
        targets: opts.targets.clone(),
        load_cpu_percent: match (cpu0, cpu1) {
            // seconds of CPU per second of run, in % of a core, to 0.1
            (Some(a), Some(b)) => Some(((b - a) / secs * 1000.0).round() / 10.0),
            _ => None,
        },
        machine_cpu_busy_percent: machine0
            .zip(machine1)
            .and_then(|(a, b)| b.busy_percent_since(&a)),
        context_switches_per_s: machine0
            .zip(machine1)
            .map(|(a, b)| (b.ctxt.saturating_sub(a.ctxt) as f64 / secs).round()),
        raft_entries_per_s: scrape0
            .as_ref()
            .and_then(|s| s.last_log_index)
            .zip(scrape1.as_ref().and_then(|s| s.last_log_index))
            .map(|(a, b)| (b.saturating_sub(a) as f64 / secs * 10.0).round() / 10.0),
        read_paths_per_s: scrape0
            .as_ref()
            .zip(scrape1.as_ref())
            .map(|(a, b)| per_second(&a.read_paths, &b.read_paths, secs))
            .unwrap_or_default(),
        stages: scrape0
            .zip(scrape1)
            .map(|(a, b)| stage_means(&a.stages, &b.stages))
            .unwrap_or_default(),
        threads: Some(opts.threads),
        server_cpu_percent: servers_cpu.map(|c| (c / secs * 1000.0).round() / 10.0),
        server_cpu_us_per_op: servers_cpu
            .filter(|_| ok > 0)
            .map(|c| (c / ok as f64 * 1e7).round() / 10.0),
        first_error,
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The user + system CPU time of the processes `pids` together, in seconds; `None` when there
/// are none or one cannot be read (gone).
fn servers_cpu_seconds(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|p| process_cpu_seconds(&p.to_string()))
        .sum()
}

/// The user + system CPU time in seconds of process `pid` (`self`: this one), all its threads
/// (Linux `/proc/<pid>/stat`, USER_HZ = 100).
fn process_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start with the state (field 3);
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Machine-wide counters of `/proc/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MachineStat {
    /// Jiffies of all cores spent in user, nice, system, irq and softirq.
    busy: u64,
    /// Jiffies of all cores in all states (idle, iowait and steal included).
    total: u64,
    /// Context switches since boot.
    ctxt: u64,
}

impl MachineStat {
    /// Busy share of all cores between `earlier` and `self`, in %, to 0.1.
    fn busy_percent_since(&self, earlier: &MachineStat) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|t| *t > 0)?;
        let busy = self.busy.checked_sub(earlier.busy)?;
        Some((busy as f64 / total as f64 * 1000.0).round() / 10.0)
    }
}

/// Parse `/proc/stat`: the aggregate `cpu` line (user nice system idle iowait irq softirq steal
/// …; guest time is already inside user) and `ctxt`.
fn parse_proc_stat(text: &str) -> Option<MachineStat> {
    let (mut cpu, mut ctxt) = (None, None);
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                let v: Vec<u64> = fields
                    .take(8)
                    .map(|f| f.parse().ok())
                    .collect::<Option<_>>()?;
                let at = |i: usize| v.get(i).copied().unwrap_or(0);
                if v.len() < 4 {
                    return None;
                }
                cpu = Some((at(0) + at(1) + at(2) + at(5) + at(6), v.iter().sum()));
            }
            Some("ctxt") => ctxt = fields.next().and_then(|f| f.parse().ok()),
            _ => {}
        }
    }
    let (busy, total) = cpu?;
    Some(MachineStat {
        busy,
        total,
        ctxt: ctxt?,
    })
}

fn machine_stat() -> Option<MachineStat> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// One virtual user's requests, built once.
enum Requests {
    Session {
        url: Url,
        /// `name=value` of the session cookie, refreshed from every `Set-Cookie`.
        cookie: HeaderValue,
    },
    Etcd {
        put_url: Url,
        range_url: Url,
        put_body: Bytes,
        range_body: Bytes,
    },
}

/// Why a request failed.
enum Failure {
    Status(StatusCode, Bytes),
    Transport(reqwest::Error),
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Status(s, body) => {
                let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
                format!("HTTP {}: {}", s.as_u16(), text.trim())
            }
            Failure::Transport(e) => {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    text.push_str(": ");
                    text.push_str(&s.to_string());
                    source = s.source();
                }
                text
            }
        }
    }
}

/// The totals of one user over the measured window.
struct UserTotals {
    hist: Histogram,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

struct User {
    client: reqwest::Client,
    requests: Requests,
    rng: StdRng,
}

/// The `name=value` part of a `Set-Cookie` header.
fn cookie_pair(set_cookie: &HeaderValue) -> Option<HeaderValue> {
    let b = set_cookie.as_bytes();
    let end = b.iter().position(|c| *c == b';').unwrap_or(b.len());
    let pair = b[..end].trim_ascii();
    (!pair.is_empty() && pair.contains(&b'='))
        .then(|| HeaderValue::from_bytes(pair).ok())
        .flatten()
}

/// The JSON body of an etcd put or range: `{"key": base64, "value": base64}`.
fn etcd_body(key: &[u8], value: Option<&[u8]>) -> Bytes {
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = match value {
        Some(v) => serde_json::json!({ "key": b64.encode(key), "value": b64.encode(v) }),
        None => serde_json::json!({ "key": b64.encode(key) }),
    };
    Bytes::from(body.to_string())
}

impl User {
    /// Build user `i`'s client and requests and create its session (or key), retried until
    /// `setup_timeout`.
    async fn prepare(i: u32, opts: &BenchOptions) -> anyhow::Result<User> {
        let target = &opts.targets[i as usize % opts.targets.len()];
        let client = crate::trust::builder()
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .no_proxy()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            .build()
            .context("building an HTTP client")?;
        let mut rng = StdRng::seed_from_u64(
            opts.seed ^ (u64::from(i) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let parse = |path: &str| {
            Url::parse(&format!("{target}{path}")).with_context(|| format!("bad target {target}"))
        };
        let requests = match opts.kind {
            Kind::Session => Requests::Session {
                url: parse("/api/counter")?,
                cookie: HeaderValue::from_static(""),
            },
            Kind::Etcd => {
                let key = format!("sessionraft-bench/{i:06}");
                let mut value = vec![0u8; opts.value_bytes];
                rng.fill(value.as_mut_slice());
                Requests::Etcd {
                    put_url: parse("/v3/kv/put")?,
                    range_url: parse("/v3/kv/range")?,
                    put_body: etcd_body(key.as_bytes(), Some(&value)),
                    range_body: etcd_body(key.as_bytes(), None),
                }
            }
        };
        let mut user = User {
            client,
            requests,
            rng,
        };
        let deadline = Instant::now() + opts.setup_timeout;
        loop {
            let r = user.setup().await;
            match r {
                Ok(()) => return Ok(user),
                Err(e) if Instant::now() >= deadline => {
                    anyhow::bail!(
                        "user {i} could not create its {} at {target} within {:?}: {e}",
                        match opts.kind {
                            Kind::Session => "session",
                            Kind::Etcd => "key",
                        },
                        opts.setup_timeout
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The first write: it creates the session (the answer must set a cookie) or the key.
    async fn setup(&mut self) -> Result<(), String> {
        self.request(true).await.map_err(|f| f.describe())?;
        match &self.requests {
            Requests::Session { cookie, .. } if cookie.is_empty() => {
                Err("the first write set no session cookie".into())
            }
            _ => Ok(()),
        }
    }

    /// One request; the body is read to the end so the connection is reused.
    async fn request(&mut self, write: bool) -> Result<(), Failure> {
        let send = match &self.requests {
            Requests::Session { url, cookie } => {
                let rb = if write {
                    self.client.post(url.clone())
                } else {
                    self.client.get(url.clone())
                };
                if cookie.is_empty() {
                    rb
                } else {
                    rb.header(COOKIE, cookie.clone())
                }
            }
            Requests::Etcd {
                put_url,
                range_url,
                put_body,
                range_body,
            } => {
                let (url, body) = if write {
                    (put_url, put_body)
                } else {
                    (range_url, range_body)
                };
                self.client
                    .post(url.clone())
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .body(body.clone())
            }
        };
        let resp = send.send().await.map_err(Failure::Transport)?;
        let status = resp.status();
        if status.is_success() {
            if let Requests::Session { cookie, .. } = &mut self.requests {
                if let Some(c) = resp.headers().get(SET_COOKIE).and_then(cookie_pair) {
                    *cookie = c;
                }
            }
        }
        let body = resp.bytes().await.map_err(Failure::Transport)?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Status(status, body))
        }
    }

    async fn run(mut self, workload: Workload, measure_start: Instant, end: Instant) -> UserTotals {
        let mut t = UserTotals {
            hist: Histogram::default(),
            ok: 0,
            errors: 0,
            first_error: None,
        };
        loop {
            let t0 = Instant::now();
            if t0 >= end {
                break;
            }
            let write = match workload {
                Workload::Write => true,
                Workload::Read => false,
                Workload::Mixed => self.rng.gen_ratio(1, 10),
            };
            let r = self.request(write).await;
            let t1 = Instant::now();
            let measured = t0 >= measure_start && t1 <= end;
            match r {
                Ok(()) if measured => {
                    t.ok += 1;
                    t.hist
                        .record(u64::try_from((t1 - t0).as_micros()).unwrap_or(u64::MAX));
                }
                Ok(()) => {}
                Err(f) => {
                    if measured {
                        t.errors += 1;
                        if t.first_error.is_none() {
                            t.first_error = Some(f.describe());
                        }
                    }
                    if matches!(f, Failure::Transport(_)) {
                        tokio::time::sleep(TRANSPORT_ERROR_PAUSE).await;
                    }
                }
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_pair_keeps_name_and_value_only() {
        let h = HeaderValue::from_static("id=abc+/=; Path=/; HttpOnly; SameSite=Lax");
        assert_eq!(cookie_pair(&h).unwrap(), "id=abc+/=");
        assert_eq!(
            cookie_pair(&HeaderValue::from_static("id=x")).unwrap(),
            "id=x"
        );
        assert!(cookie_pair(&HeaderValue::from_static("; Path=/")).is_none());
    }

    #[test]
    fn etcd_bodies_are_base64_json() {
        let put: serde_json::Value =
            serde_json::from_slice(&etcd_body(b"k1", Some(&[0, 255]))).unwrap();
        assert_eq!(put, serde_json::json!({ "key": "azE=", "value": "AP8=" }));
        let range: serde_json::Value = serde_json::from_slice(&etcd_body(b"k1", None)).unwrap();
        assert_eq!(range, serde_json::json!({ "key": "azE=" }));
    }

    #[test]
    fn proc_stat_gives_busy_share_and_context_switches() {
        let a = parse_proc_stat(
            "cpu  100 5 50 800 20 3 2 10 0 0\ncpu0 50 2 25 400 10 1 1 5 0 0\nintr 1 2\nctxt 1000\n",
        )
        .unwrap();
        assert_eq!(
            a,
            MachineStat {
                busy: 160,
                total: 990,
                ctxt: 1000
            }
        );
        // 100 more jiffies: 60 busy, 40 idle.
        let b = parse_proc_stat("cpu  150 5 58 840 20 3 4 10 0 0\nctxt 4000\n").unwrap();
        assert_eq!(b.busy_percent_since(&a), Some(60.0));
        assert_eq!(a.busy_percent_since(&b), None);
        assert!(parse_proc_stat("cpu  1 2\nctxt 5\n").is_none());
        assert!(parse_proc_stat("cpu  1 2 3 4\n").is_none());
        let now = machine_stat().unwrap();
        assert!(now.busy <= now.total && now.ctxt > 0, "{now:?}");
    }

    #[test]
    fn stage_means_come_from_the_window_over_all_targets() {
        // Two nodes' expositions (other metrics and the histogram's buckets in between).
        let node = |commit_sum: f64, commit_n: u64, queue_sum: f64, queue_n: u64, id: u32| {
            format!(
                "# HELP sessionraft_stage_seconds Time in each step\n\
                 sessionraft_stage_seconds_bucket{{stage=\"commit\",node=\"{id}\",le=\"0.001\"}} 3\n\
                 sessionraft_stage_seconds_sum{{stage=\"commit\",node=\"{id}\"}} {commit_sum}\n\
                 sessionraft_stage_seconds_count{{stage=\"commit\",node=\"{id}\"}} {commit_n}\n\
                 sessionraft_stage_seconds_sum{{node=\"{id}\",stage=\"batch_queue\"}} {queue_sum}\n\
                 sessionraft_stage_seconds_count{{node=\"{id}\",stage=\"batch_queue\"}} {queue_n}\n\
                 sessionraft_session_ops_total{{op=\"load\",outcome=\"ok\",node=\"{id}\"}} 7\n\
                 sessionraft_raft_last_log_index{{node=\"{id}\"}} {}\n",
                1000 * u64::from(id) + commit_n
            )
        };
        let mut before = Scrape::default();
        parse_metrics(&node(1.0, 500, 0.5, 100, 1), &mut before);
        parse_metrics(&node(0.0, 0, 0.25, 50, 2), &mut before);
        assert_eq!(before.stages["commit"], (1.0, 500));
        assert_eq!(before.stages["batch_queue"], (0.75, 150));
        // The highest last log index of the targets (node 1: 1,500; node 2: 2,000).
        assert_eq!(before.last_log_index, Some(2000));
        let mut after = Scrape::default();
        // Node 1 committed 1,000 more batches in 2 s (2 ms each); the queues of both nodes
        // timed 200 more writes in 0.6 s; a stage nobody timed in the window is left out.
        parse_metrics(&node(3.0, 1500, 0.9, 200, 1), &mut after);
        parse_metrics(&node(0.0, 0, 0.45, 150, 2), &mut after);
        parse_metrics(
            "sessionraft_stage_seconds_count{stage=\"forward\"} 0\n",
            &mut after,
        );
        assert_eq!(after.last_log_index, Some(2500));
        let m = stage_means(&before.stages, &after.stages);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(
            m["commit"],
            StageMean {
                count: 1000,
                mean_ms: 2.0
            }
        );
        assert_eq!(
            m["batch_queue"],
            StageMean {
                count: 200,
                mean_ms: 3.0
            }
        );
        // Garbage lines are skipped, not misread.
        let mut t = Scrape::default();
        parse_metrics(
            "sessionraft_stage_seconds_sum{stage=\"x\"} nan-ish\nsessionraft_stage_seconds_sum{node=\"1\"} 5\n",
            &mut t,
        );
        assert!(t.stages.is_empty() && t.last_log_index.is_none(), "{t:?}");
    }

    #[test]
    fn read_paths_are_counted_per_second_over_all_targets() {
        let node = |lease: u64, local: u64, id: u32| {
            format!(
                "# TYPE sessionraft_read_index_total counter\n\
                 sessionraft_read_index_total{{how=\"lease\",node=\"{id}\"}} {lease}\n\
                 sessionraft_read_index_total{{node=\"{id}\",how=\"local\"}} {local}\n\
                 sessionraft_read_index_total{{how=\"round\",node=\"{id}\"}} 0\n"
            )
        };
        let (mut before, mut after) = (Scrape::default(), Scrape::default());
        parse_metrics(&node(100, 0, 1), &mut before);
        parse_metrics(&node(0, 50, 2), &mut before);
        parse_metrics(&node(300, 0, 1), &mut after);
        parse_metrics(&node(0, 2050, 2), &mut after);
        assert_eq!(before.read_paths["lease"], 100);
        assert_eq!(after.read_paths["local"], 2050);
        let r = per_second(&before.read_paths, &after.read_paths, 2.0);
        assert_eq!(r["lease"], 100.0);
        assert_eq!(r["local"], 1000.0);
        assert_eq!(r["round"], 0.0);
        // A label-less or unparsable line is skipped.
        let mut t = Scrape::default();
        parse_metrics(
            "sessionraft_read_index_total{how=\"local\"} x\nsessionraft_read_index_total{node=\"1\"} 5\n",
            &mut t,
        );
        assert!(t.read_paths.is_empty(), "{t:?}");
    }

    #[test]
    fn one_thread_runs_on_the_calling_thread() {
        // Nothing listens on the target: setup fails fast, but only after the runtime started.
        let opts = |threads| BenchOptions {
            targets: vec!["http://127.0.0.1:1".into()],
            kind: Kind::Session,
            workload: Workload::Read,
            connections: 1,
            duration: Duration::from_millis(10),
            warmup: Duration::ZERO,
            value_bytes: 10,
            seed: 1,
            timeout: Duration::from_millis(100),
            threads,
            setup_timeout: Duration::from_millis(50),
            server_pids: Vec::new(),
        };
        assert!(run(opts(0)).unwrap_err().to_string().contains("--threads"));
        for threads in [1, 2] {
            let e = run(opts(threads)).unwrap_err();
            assert!(!e.to_string().contains("--threads"), "{e:#}");
        }
    }

    #[test]
    fn cpu_time_is_readable() {
        assert!(process_cpu_seconds("self").is_some_and(|s| s >= 0.0));
        let me = std::process::id();
        assert!(servers_cpu_seconds(&[me, me]).is_some_and(|s| s >= 0.0));
        assert!(servers_cpu_seconds(&[]).is_none());
        // pid_max is at most 2^22: this one never exists
        assert!(servers_cpu_seconds(&[me, 4_194_304 + 1]).is_none());
    }

    #[test]
    fn report_line_and_json() {
        let r = BenchReport {
            kind: Kind::Session,
            workload: Workload::Mixed,
            connections: 32,
            duration_s: 10.0,
            ok: 1000,
            errors: 0,
            throughput_per_s: 100.0,
            p50_ms: 1.5,
            p99_ms: 3.25,
            max_ms: 9.0,
            mean_ms: 1.6,
            warmup_s: 2.0,
            targets: vec!["http://127.0.0.1:1".into()],
            load_cpu_percent: Some(12.5),
            machine_cpu_busy_percent: Some(80.0),
            context_switches_per_s: Some(45_000.0),
            raft_entries_per_s: Some(540.0),
            stages: BTreeMap::new(),
            read_paths_per_s: BTreeMap::new(),
            threads: None,
            server_cpu_percent: None,
            server_cpu_us_per_op: None,
            first_error: None,
        };
        let line = r.human();
        assert!(
            line.starts_with("bench session mixed: 32 connections"),
            "{line}"
        );
        assert!(
            line.ends_with(
                "machine CPU 80% busy, 45000 context switches/s; 540 Raft log entries/s"
            ),
            "{line}"
        );
        let with = BenchReport {
            read_paths_per_s: BTreeMap::from([("local".into(), 900.0), ("lease".into(), 100.0)]),
            threads: Some(1),
            ..r.clone()
        };
        let line = with.human();
        assert!(
            line.contains("of a core; 1 load thread(s); machine"),
            "{line}"
        );
        let servers = BenchReport {
            server_cpu_percent: Some(150.0),
            server_cpu_us_per_op: Some(30.0),
            ..with.clone()
        };
        let line = servers.human();
        assert!(
            line.contains("load thread(s); servers' CPU 150% of a core, 30.0 µs per op; machine"),
            "{line}"
        );
        assert_eq!(
            serde_json::to_value(&servers).unwrap()["server_cpu_us_per_op"],
            30.0
        );
        assert!(
            line.ends_with("; loads made safe, per s: lease 100, local 900"),
            "{line}"
        );
        let v = serde_json::to_value(&with).unwrap();
        assert_eq!(v["threads"], 1);
        assert_eq!(v["read_paths_per_s"]["local"], 900.0);
        // Reports of older tools (no threads, no read paths) still parse.
        let mut old = serde_json::to_value(&r).unwrap();
        old.as_object_mut().unwrap().remove("threads");
        old.as_object_mut().unwrap().remove("read_paths_per_s");
        let back: BenchReport = serde_json::from_value(old).unwrap();
        assert!(back.threads.is_none() && back.read_paths_per_s.is_empty());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["kind"], "session");
        assert_eq!(v["raft_entries_per_s"], 540.0);
        assert_eq!(v["workload"], "mixed");
        assert_eq!(v["throughput_per_s"], 100.0);
    }
}

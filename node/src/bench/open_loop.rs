//! `sessionraft bench --rate R`: an open-loop write load, for overload benchmarks.
//!
//! A closed loop (the rest of `bench`) sends the next request only when the previous one came
//! back, so a server that slows down is offered less load, and the requests it delayed are the
//! ones never sent (coordinated omission). Here arrivals come at a fixed rate whatever the
//! answers: arrival `k` is scheduled at `start + k / rate` and dispatched then (at once when the
//! tool is late), and every latency is measured from that *scheduled* instant, so the tool's
//! own lag and any queue in front of the server count against the server.
//!
//! The load is `POST /api/counter` (an increment) on `sessions` sessions created before the
//! clock starts (each with its own cookie, sticky to target `i % targets.len()`). Each session
//! has at most one request in flight, as a person clicking would: an arrival takes an idle
//! session; when every session is busy, the arrival is *not sent* and counted
//! (`not_sent_in_flight_cap`): `sessions` is the cap on requests in flight, and a report with
//! that count above 0 says the cap was hit (the tool then offered less than `rate`).
//!
//! Answers are counted by what they mean: 200 (acknowledged), 503 (refused, `not-applied`),
//! 504 (`unknown`: may or may not have been applied), any other status, and transport errors
//! (timeouts included: the request may have been applied). Latencies of acknowledged requests
//! and of 503 refusals go into separate histograms.
//!
//! When the load is over (and every request in flight has come back), every session is read
//! (`GET /api/counter` on every target, the highest answer kept: a follower's token read may
//! lag, the leader's does not) and checked against what the tool saw: the counter is at least
//! 1 + its acknowledged increments (the 1 is the setup's; fewer = an acknowledged write lost)
//! and at most 1 + acknowledged + 504s + transport errors (more = a write invented, or one
//! refused with 503 applied anyway).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::header::{HeaderValue, COOKIE, SET_COOKIE};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::{cookie_pair, machine_stat, process_cpu_seconds, round3, Failure, Histogram};

/// A validated open-loop run.
#[derive(Clone, Debug)]
pub struct OpenLoopOptions {
    /// Base URLs (`http://host:port`, no trailing slash).
    pub targets: Vec<String>,
    /// Arrivals per second.
    pub rate: f64,
    /// Sessions, which is also the cap on requests in flight.
    pub sessions: u32,
    pub duration: Duration,
    pub warmup: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Worker threads of the load tool's runtime (1: a current-thread runtime).
    pub threads: usize,
    /// How long the setup may take to create each session.
    pub setup_timeout: Duration,
}

/// What the final reads found (see the module's doc).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCheck {
    /// Sessions whose counter was read.
    pub sessions_checked: u64,
    /// Sessions no target answered for with a counter.
    pub sessions_unreadable: u64,
    /// Acknowledged increments missing from the counters, summed over the sessions.
    pub lost_writes: u64,
    pub sessions_with_lost_writes: u64,
    /// Increments in the counters beyond every one that may have been applied.
    pub invented_writes: u64,
    pub sessions_with_invented_writes: u64,
    /// The first session found wrong, in words.
    pub first_problem: Option<String>,
}

/// The result of an open-loop run (`--json` prints it). `ok`, `errors`, `throughput_per_s`,
/// `p50_ms` and `p99_ms` mean what they mean in [`super::BenchReport`], for the acknowledged
/// requests of the measured window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpenLoopReport {
    /// Always "open-loop".
    pub mode: String,
    pub rate_per_s: f64,
    pub sessions: u32,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub targets: Vec<String>,
    pub threads: usize,
    /// Arrivals scheduled in the measured window.
    pub scheduled: u64,
    /// Of those, sent (the others found every session busy).
    pub sent: u64,
    pub not_sent_in_flight_cap: u64,
    /// The most requests in flight at once.
    pub max_in_flight: u64,
    /// 200 answers.
    pub ok: u64,
    /// 503 answers (refused, not applied).
    pub refused_503: u64,
    /// 504 answers (outcome unknown).
    pub unknown_504: u64,
    /// Other statuses, by code.
    pub other_status: BTreeMap<String, u64>,
    /// Transport errors (connection, timeout), which may have been applied.
    pub transport_errors: u64,
    /// Everything that is not a 200: 503 + 504 + other statuses + transport errors.
    pub errors: u64,
    /// Acknowledged (200) per second of the measured window.
    pub throughput_per_s: f64,
    /// Latency of the acknowledged requests, from their scheduled arrival.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Latency of the 503 refusals, from their scheduled arrival (`None` without any).
    pub refused_p50_ms: Option<f64>,
    pub refused_p99_ms: Option<f64>,
    /// How late the tool dispatched arrivals behind their schedule (its own limit).
    pub dispatch_lag_p99_ms: f64,
    pub dispatch_lag_max_ms: f64,
    /// CPU time of this tool during the measured window, in % of one core.
    pub load_cpu_percent: Option<f64>,
    /// The machine's busy CPU during the measured window, in % of all its cores.
    pub machine_cpu_busy_percent: Option<f64>,
    pub check: WriteCheck,
    pub first_error: Option<String>,
}

impl OpenLoopReport {
    /// The one-line human summary.
    pub fn human(&self) -> String {
        let other: Vec<String> = self
            .other_status
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        let other = if other.is_empty() {
            String::new()
        } else {
            format!(", other {}", other.join(", "))
        };
        let refused = match (self.refused_p50_ms, self.refused_p99_ms) {
            (Some(a), Some(b)) => format!("; 503 in p50 {a:.3} ms, p99 {b:.3} ms"),
            _ => String::new(),
        };
        let cap = if self.not_sent_in_flight_cap > 0 {
            format!(
                "; IN-FLIGHT CAP HIT: {} arrivals not sent",
                self.not_sent_in_flight_cap
            )
        } else {
            String::new()
        };
        let c = &self.check;
        let check = if c.lost_writes > 0 || c.invented_writes > 0 {
            format!(
                "; WRONG COUNTERS: {} acknowledged writes lost, {} invented ({})",
                c.lost_writes,
                c.invented_writes,
                c.first_problem.as_deref().unwrap_or("")
            )
        } else {
            format!(
                "; {} sessions checked ({} unreadable): no acknowledged write lost, none invented",
                c.sessions_checked, c.sessions_unreadable
            )
        };
        let err = self
            .first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default();
        format!(
            "bench open loop: {:.0} arrivals/s on {} sessions over {} target(s), {:.1} s: \
             {} scheduled, {} sent, max {} in flight{cap}; 200: {} = {:.1}/s, 503: {}, 504: {}, \
             transport errors: {}{other}{err}; admitted latency p50 {:.3} ms, p99 {:.3} ms, \
             max {:.3} ms{refused}; dispatch lag p99 {:.3} ms{check}",
            self.rate_per_s,
            self.sessions,
            self.targets.len(),
            self.duration_s,
            self.scheduled,
            self.sent,
            self.max_in_flight,
            self.ok,
            self.throughput_per_s,
            self.refused_503,
            self.unknown_504,
            self.transport_errors,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.dispatch_lag_p99_ms
        )
    }

    /// Whether the final check found a wrong counter.
    pub fn counters_wrong(&self) -> bool {
        self.check.lost_writes > 0 || self.check.invented_writes > 0
    }
}

/// How one answer counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Refused,
    Unknown,
    Other(u16),
    Transport,
}

impl Outcome {
    fn of_status(code: u16) -> Outcome {
        match code {
            200 => Outcome::Ok,
            503 => Outcome::Refused,
            504 => Outcome::Unknown,
            c => Outcome::Other(c),
        }
    }
}

/// One session of the load, owned by the request in flight on it or by the idle queue.
struct Session {
    index: u32,
    /// `name=value` of its cookie, the latest a 200 set.
    cookie: HeaderValue,
    /// Increments acknowledged (200), over the whole run (warmup included).
    acked: u64,
    /// Increments that may have been applied without a 200 (504, transport errors).
    maybe: u64,
}

/// What the expected counter of a session is, from what the tool saw: `(at least, at most)`.
fn expected_range(s: &Session) -> (u64, u64) {
    // 1: the setup's increment, acknowledged before the run
    (1 + s.acked, 1 + s.acked + s.maybe)
}

/// Compare one session's counter (`None`: unreadable) with its expected range.
fn check_one(check: &mut WriteCheck, index: u32, counter: Option<u64>, (lo, hi): (u64, u64)) {
    let Some(v) = counter else {
        check.sessions_unreadable += 1;
        return;
    };
    check.sessions_checked += 1;
    if v < lo {
        check.lost_writes += lo - v;
        check.sessions_with_lost_writes += 1;
        check.first_problem.get_or_insert_with(|| {
            format!("session {index}: counter {v}, but {lo} increments were acknowledged")
        });
    } else if v > hi {
        check.invented_writes += v - hi;
        check.sessions_with_invented_writes += 1;
        check.first_problem.get_or_insert_with(|| {
            format!("session {index}: counter {v}, but at most {hi} increments may have applied")
        });
    }
}

/// The totals of the measured window.
#[derive(Default)]
struct Totals {
    admitted: Histogram,
    refused: Histogram,
    lag: Histogram,
    scheduled: u64,
    not_sent: u64,
    ok: u64,
    refused_n: u64,
    unknown: u64,
    other: BTreeMap<String, u64>,
    transport: u64,
    first_error: Option<String>,
}

impl Totals {
    fn count(&mut self, outcome: Outcome, latency_us: u64, error: impl FnOnce() -> String) {
        match outcome {
            Outcome::Ok => {
                self.ok += 1;
                self.admitted.record(latency_us);
                return;
            }
            Outcome::Refused => {
                self.refused_n += 1;
                self.refused.record(latency_us);
            }
            Outcome::Unknown => self.unknown += 1,
            Outcome::Other(code) => *self.other.entry(code.to_string()).or_default() += 1,
            Outcome::Transport => self.transport += 1,
        }
        if self.first_error.is_none() {
            self.first_error = Some(error());
        }
    }
}

/// What the request tasks share with the dispatcher.
struct Shared {
    idle: Mutex<VecDeque<Session>>,
    totals: Mutex<Totals>,
    in_flight: std::sync::atomic::AtomicU64,
}

/// A std mutex: every critical section is a few field updates, never held across an await.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Arrival `k`'s scheduled offset from the start, at `rate` per second, to the nanosecond
/// (rounded: arrival 360 at 300/s is at 1.2 s exactly, not a nanosecond before).
fn arrival_offset(k: u64, rate: f64) -> Duration {
    Duration::from_nanos((k as f64 * 1e9 / rate).round() as u64)
}

/// Run the open loop.
///
/// # Errors
/// Bad options, or a session could not be created within the setup deadline.
pub fn run(opts: OpenLoopOptions) -> anyhow::Result<OpenLoopReport> {
    anyhow::ensure!(!opts.targets.is_empty(), "--targets: at least one URL");
    anyhow::ensure!(
        opts.rate.is_finite() && opts.rate > 0.0,
        "--rate must be a positive number of arrivals per second"
    );
    anyhow::ensure!(
        opts.sessions > 0,
        "--connections (the sessions) must be at least 1"
    );
    anyhow::ensure!(!opts.duration.is_zero(), "--duration must be positive");
    anyhow::ensure!(opts.threads > 0, "--threads must be at least 1");
    open_files_for(u64::from(opts.sessions))?;
    super::load_runtime(opts.threads)?.block_on(drive(opts))
}

/// Open files besides the connections (the runtime, the clients' pools, stdio).
const SPARE_FILES: u64 = 256;

/// Every session may hold a connection: raise this process's soft limit of open files to what
/// `sessions` need (up to the hard limit), or say why the run cannot go ahead.
fn open_files_for(sessions: u64) -> anyhow::Result<()> {
    let need = sessions + SPARE_FILES;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read or write the struct passed, which lives here.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(()); // unknown: the connections will say so if they run out
    }
    if lim.rlim_cur >= need {
        return Ok(());
    }
    anyhow::ensure!(
        lim.rlim_max >= need,
        "--connections {sessions} may hold {sessions} connections at once: that needs {need} \
         open files, and this process may have {} (ulimit -Hn)",
        lim.rlim_max
    );
    lim.rlim_cur = need;
    // SAFETY: as above.
    anyhow::ensure!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0,
        "could not raise the limit of open files to {need}: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// One client per target: connections opened as requests need them, kept for reuse.
fn clients(opts: &OpenLoopOptions) -> anyhow::Result<Vec<(reqwest::Client, Url)>> {
    opts.targets
        .iter()
        .map(|t| {
            let client = crate::trust::builder()
                .pool_max_idle_per_host(opts.sessions as usize)
                .tcp_nodelay(true)
                .no_proxy()
                .timeout(opts.timeout)
                .connect_timeout(opts.timeout)
                .build()
                .context("building an HTTP client")?;
            let url = Url::parse(&format!("{t}/api/counter"))
                .with_context(|| format!("bad target {t}"))?;
            Ok((client, url))
        })
        .collect()
}

/// One increment; the body is read to the end so the connection is reused.
async fn increment(
    client: &reqwest::Client,
    url: &Url,
    s: &mut Session,
) -> (Outcome, Option<String>) {
    let mut rb = client.post(url.clone());
    if !s.cookie.is_empty() {
        rb = rb.header(COOKIE, s.cookie.clone());
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => return (Outcome::Transport, Some(Failure::Transport(e).describe())),
    };
    let status = resp.status();
    if status.is_success() {
        if let Some(c) = resp.headers().get(SET_COOKIE).and_then(cookie_pair) {
            s.cookie = c;
        }
    }
    match resp.bytes().await {
        Ok(body) => {
            let outcome = Outcome::of_status(status.as_u16());
            let why = (outcome != Outcome::Ok).then(|| {
                let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
                format!("HTTP {}: {}", status.as_u16(), text.trim())
            });
            (outcome, why)
        }
        // the status came, the body did not: a 200's write is acknowledged all the same
        Err(e) if status.as_u16() == 200 => (Outcome::Ok, Some(Failure::Transport(e).describe())),
        Err(e) => (Outcome::Transport, Some(Failure::Transport(e).describe())),
    }
}

/// Create session `index` (its first increment), retried until the setup deadline.
async fn create(
    index: u32,
    client: &reqwest::Client,
    url: &Url,
    setup_timeout: Duration,
) -> anyhow::Result<Session> {
    let deadline = Instant::now() + setup_timeout;
    loop {
        let mut s = Session {
            index,
            cookie: HeaderValue::from_static(""),
            acked: 0,
            maybe: 0,
        };
        let (outcome, why) = increment(client, url, &mut s).await;
        if outcome == Outcome::Ok && !s.cookie.is_empty() {
            return Ok(s);
        }
        let why = why.unwrap_or_else(|| "the first write set no session cookie".into());
        anyhow::ensure!(
            Instant::now() < deadline,
            "session {index} could not be created at {url} within {setup_timeout:?}: {why}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The session's counter as the highest of the targets' answers (`None`: none answered).
async fn read_counter(clients: &[(reqwest::Client, Url)], s: &Session) -> Option<u64> {
    let mut best = None;
    for (client, url) in clients {
        let read = async {
            let resp = client
                .get(url.clone())
                .header(COOKIE, s.cookie.clone())
                .send()
                .await
                .ok()?;
            if resp.status().as_u16() != 200 {
                return None;
            }
            let v: serde_json::Value = resp.json().await.ok()?;
            v.get("counter")?.as_u64()
        };
        if let Some(c) = read.await {
            best = best.max(Some(c));
        }
    }
    best
}

/// How many setup requests or final reads run at once.
const SETUP_CONCURRENCY: usize = 64;

async fn drive(opts: OpenLoopOptions) -> anyhow::Result<OpenLoopReport> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    let clients = Arc::new(clients(&opts)?);
    // 1. the sessions, not measured
    let n = clients.len();
    let sessions: Vec<Session> = stream::iter(0..opts.sessions)
        .map(|i| {
            let clients = clients.clone();
            let setup = opts.setup_timeout;
            async move {
                let (client, url) = &clients[i as usize % n];
                create(i, client, url, setup).await
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    let shared = Arc::new(Shared {
        idle: Mutex::new(sessions.into_iter().collect()),
        totals: Mutex::new(Totals::default()),
        in_flight: std::sync::atomic::AtomicU64::new(0),
    });
    // 2. the arrivals: warmup, then the measured window
    let start = Instant::now();
    let measure_start = start + opts.warmup;
    let end = measure_start + opts.duration;
    let mut cpu0 = None;
    let mut machine0 = None;
    let mut max_in_flight = 0u64;
    let mut k = 0u64;
    loop {
        let at = start + arrival_offset(k, opts.rate);
        if at >= end {
            break;
        }
        k += 1;
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
        let measured = at >= measure_start;
        if measured && cpu0.is_none() {
            cpu0 = Some(process_cpu_seconds("self"));
            machine0 = Some(machine_stat());
        }
        let lag = Instant::now().saturating_duration_since(at);
        let Some(mut s) = lock(&shared.idle).pop_front() else {
            if measured {
                let mut t = lock(&shared.totals);
                t.scheduled += 1;
                t.not_sent += 1;
            }
            continue;
        };
        if measured {
            let mut t = lock(&shared.totals);
            t.scheduled += 1;
            t.lag.record(micros(lag));
        }
        let now_in_flight = shared
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if measured {
            max_in_flight = max_in_flight.max(now_in_flight);
        }
        let shared = shared.clone();
        let clients = clients.clone();
        tokio::spawn(async move {
            let (client, url) = &clients[s.index as usize % clients.len()];
            let (outcome, why) = increment(client, url, &mut s).await;
            let latency = micros(at.elapsed());
            match outcome {
                Outcome::Ok => s.acked += 1,
                Outcome::Unknown | Outcome::Transport => s.maybe += 1,
                Outcome::Refused | Outcome::Other(_) => {}
            }
            if measured {
                let describe = || why.clone().unwrap_or_default();
                lock(&shared.totals).count(outcome, latency, describe);
            }
            lock(&shared.idle).push_back(s);
            shared
                .in_flight
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
    if Instant::now() < end {
        tokio::time::sleep_until(end.into()).await;
    }
    let cpu1 = process_cpu_seconds("self");
    let machine1 = machine_stat();
    // 3. every request in flight comes back (each is bounded by the request timeout)
    let drain_deadline = Instant::now() + opts.timeout + Duration::from_secs(5);
    while shared.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        anyhow::ensure!(
            Instant::now() < drain_deadline,
            "requests still in flight {:?} after the load ended",
            opts.timeout + Duration::from_secs(5)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 4. the final reads
    let sessions: Vec<Session> = lock(&shared.idle).drain(..).collect();
    let reads: Vec<(u32, Option<u64>, (u64, u64))> = stream::iter(sessions)
        .map(|s| {
            let clients = clients.clone();
            async move {
                let counter = read_counter(&clients, &s).await;
                (s.index, counter, expected_range(&s))
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    let mut check = WriteCheck::default();
    let mut reads = reads;
    reads.sort_by_key(|r| r.0);
    for (index, counter, range) in reads {
        check_one(&mut check, index, counter, range);
    }
    let t = std::mem::take(&mut *lock(&shared.totals));
    let secs = opts.duration.as_secs_f64();
    let ms = |us: u64| round3(us as f64 / 1000.0);
    let refused = |q: f64| (t.refused.count() > 0).then(|| ms(t.refused.quantile(q)));
    let other: u64 = t.other.values().sum();
    Ok(OpenLoopReport {
        mode: "open-loop".into(),
        rate_per_s: opts.rate,
        sessions: opts.sessions,
        duration_s: round3(secs),
        warmup_s: round3(opts.warmup.as_secs_f64()),
        targets: opts.targets.clone(),
        threads: opts.threads,
        scheduled: t.scheduled,
        sent: t.scheduled - t.not_sent,
        not_sent_in_flight_cap: t.not_sent,
        max_in_flight,
        ok: t.ok,
        refused_503: t.refused_n,
        unknown_504: t.unknown,
        errors: t.refused_n + t.unknown + other + t.transport,
        other_status: t.other,
        transport_errors: t.transport,
        throughput_per_s: (t.ok as f64 / secs * 10.0).round() / 10.0,
        p50_ms: ms(t.admitted.quantile(0.50)),
        p99_ms: ms(t.admitted.quantile(0.99)),
        max_ms: ms(t.admitted.max()),
        mean_ms: round3(t.admitted.mean() / 1000.0),
        refused_p50_ms: refused(0.50),
        refused_p99_ms: refused(0.99),
        dispatch_lag_p99_ms: ms(t.lag.quantile(0.99)),
        dispatch_lag_max_ms: ms(t.lag.max()),
        load_cpu_percent: match (cpu0.flatten(), cpu1) {
            (Some(a), Some(b)) => Some(((b - a) / secs * 1000.0).round() / 10.0),
            _ => None,
        },
        machine_cpu_busy_percent: machine0
            .flatten()
            .zip(machine1)
            .and_then(|(a, b)| b.busy_percent_since(&a)),
        check,
        first_error: t.first_error,
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(acked: u64, maybe: u64) -> Session {
        Session {
            index: 7,
            cookie: HeaderValue::from_static("id=x"),
            acked,
            maybe,
        }
    }

    #[test]
    fn counters_are_checked_against_what_was_acknowledged_and_what_may_have_applied() {
        let mut c = WriteCheck::default();
        // 5 acknowledged, 2 unknown: 1 (setup) + 5 ..= 1 + 5 + 2
        let range = expected_range(&session(5, 2));
        assert_eq!(range, (6, 8));
        for ok in [6, 7, 8] {
            check_one(&mut c, 1, Some(ok), range);
        }
        assert_eq!(c.sessions_checked, 3);
        assert_eq!((c.lost_writes, c.invented_writes), (0, 0));
        assert!(c.first_problem.is_none());
        check_one(&mut c, 2, Some(4), range);
        assert_eq!((c.lost_writes, c.sessions_with_lost_writes), (2, 1));
        assert_eq!(
            c.first_problem.as_deref(),
            Some("session 2: counter 4, but 6 increments were acknowledged")
        );
        check_one(&mut c, 3, Some(10), range);
        assert_eq!((c.invented_writes, c.sessions_with_invented_writes), (2, 1));
        check_one(&mut c, 4, None, range);
        assert_eq!((c.sessions_checked, c.sessions_unreadable), (5, 1));
        // the first problem stays the first
        assert!(c
            .first_problem
            .as_deref()
            .unwrap()
            .starts_with("session 2:"));
    }

    #[test]
    fn statuses_count_by_meaning() {
        assert_eq!(Outcome::of_status(200), Outcome::Ok);
        assert_eq!(Outcome::of_status(503), Outcome::Refused);
        assert_eq!(Outcome::of_status(504), Outcome::Unknown);
        assert_eq!(Outcome::of_status(409), Outcome::Other(409));
        let mut t = Totals::default();
        t.count(Outcome::Ok, 1000, || unreachable!("a 200 is no error"));
        t.count(Outcome::Refused, 50, || "HTTP 503: overloaded".into());
        t.count(Outcome::Other(409), 70, || "HTTP 409".into());
        t.count(Outcome::Other(409), 70, || "HTTP 409".into());
        t.count(Outcome::Transport, 70, || "timeout".into());
        assert_eq!((t.ok, t.refused_n, t.unknown, t.transport), (1, 1, 0, 1));
        assert_eq!(t.other["409"], 2);
        assert_eq!((t.admitted.count(), t.refused.count()), (1, 1));
        assert_eq!(t.first_error.as_deref(), Some("HTTP 503: overloaded"));
    }

    #[test]
    fn arrivals_are_evenly_spaced() {
        assert_eq!(arrival_offset(0, 1000.0), Duration::ZERO);
        assert_eq!(arrival_offset(1, 1000.0), Duration::from_millis(1));
        assert_eq!(arrival_offset(4500, 1500.0), Duration::from_secs(3));
        assert_eq!(arrival_offset(360, 300.0), Duration::from_millis(1200));
        assert_eq!(arrival_offset(60, 300.0), Duration::from_millis(200));
    }

    #[test]
    fn bad_options_are_refused_before_any_request() {
        let opts = OpenLoopOptions {
            targets: vec!["http://127.0.0.1:1".into()],
            rate: 0.0,
            sessions: 1,
            duration: Duration::from_millis(10),
            warmup: Duration::ZERO,
            timeout: Duration::from_millis(100),
            threads: 1,
            setup_timeout: Duration::from_millis(50),
        };
        assert!(run(opts.clone())
            .unwrap_err()
            .to_string()
            .contains("--rate"));
        let e = run(OpenLoopOptions {
            sessions: 0,
            rate: 10.0,
            ..opts.clone()
        })
        .unwrap_err();
        assert!(e.to_string().contains("sessions"), "{e:#}");
        // more sessions than this process could ever hold connections for
        let e = run(OpenLoopOptions {
            sessions: u32::MAX,
            rate: 10.0,
            ..opts.clone()
        })
        .unwrap_err();
        assert!(e.to_string().contains("open files"), "{e:#}");
        // Nothing listens: the setup fails, naming the session.
        let e = run(OpenLoopOptions { rate: 10.0, ..opts }).unwrap_err();
        assert!(
            e.to_string().contains("session 0 could not be created"),
            "{e:#}"
        );
    }

    #[test]
    fn report_line_says_what_went_wrong() {
        let r = OpenLoopReport {
            mode: "open-loop".into(),
            rate_per_s: 3000.0,
            sessions: 512,
            duration_s: 20.0,
            warmup_s: 0.0,
            targets: vec!["http://127.0.0.1:1".into()],
            threads: 2,
            scheduled: 60000,
            sent: 59000,
            not_sent_in_flight_cap: 1000,
            max_in_flight: 512,
            ok: 20000,
            refused_503: 39000,
            unknown_504: 0,
            other_status: BTreeMap::new(),
            transport_errors: 0,
            errors: 39000,
            throughput_per_s: 1000.0,
            p50_ms: 10.0,
            p99_ms: 900.0,
            max_ms: 1200.0,
            mean_ms: 20.0,
            refused_p50_ms: Some(1.0),
            refused_p99_ms: Some(3.0),
            dispatch_lag_p99_ms: 1.0,
            dispatch_lag_max_ms: 2.0,
            load_cpu_percent: None,
            machine_cpu_busy_percent: None,
            check: WriteCheck {
                sessions_checked: 512,
                ..WriteCheck::default()
            },
            first_error: None,
        };
        let line = r.human();
        assert!(
            line.contains("IN-FLIGHT CAP HIT: 1000 arrivals not sent"),
            "{line}"
        );
        assert!(
            line.ends_with("no acknowledged write lost, none invented"),
            "{line}"
        );
        assert!(!r.counters_wrong());
        let bad = OpenLoopReport {
            check: WriteCheck {
                lost_writes: 3,
                first_problem: Some("session 2: counter 4".into()),
                ..WriteCheck::default()
            },
            ..r
        };
        assert!(bad.counters_wrong());
        assert!(bad
            .human()
            .contains("WRONG COUNTERS: 3 acknowledged writes lost"));
        let v = serde_json::to_value(&bad).unwrap();
        assert_eq!(v["mode"], "open-loop");
        assert_eq!(v["check"]["lost_writes"], 3);
        assert_eq!(v["refused_503"], 39000);
    }
}

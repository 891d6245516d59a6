//! `sessionraft staleness`: how long a change acknowledged by the leader stays invisible to a
//! session-token read on the followers — the real figure behind `[raft] max_staleness_ms`.
//!
//! One sample: a session is created, and its cookie *before* the next write is kept (its token
//! index is already applied everywhere, so a fresh follower serves it from its own replica at
//! once). The session is then incremented through the leader; from the moment the increment is
//! acknowledged, every follower is read with the old cookie, back to back, until it shows the
//! new value. A sample's staleness on a follower is the time from the acknowledgement to the
//! *end* of the first read that showed it (an upper bound: the read happened before its end).
//! A read answered 503 or not at all is counted, not timed; a read that *started* more than
//! the cluster's bound after the acknowledgement and still answered the old value breaks the
//! guarantee and is counted as `stale_after_bound` (the command then fails). Run it alone, under load (another
//! process), or while a follower is paused: the figures say what a user would have seen.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

/// The result of a run.
#[derive(Debug, Serialize)]
pub struct StalenessReport {
    /// Samples taken (one write each).
    pub samples: usize,
    /// Staleness observations (one per follower per sample), in ms.
    pub observations: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Follower reads answered other than 200 (503: not fresh and no quorum in time).
    pub unavailable_reads: u64,
    /// Observations that never showed the value within `--timeout`.
    pub never_seen: u64,
    /// The cluster's bound (`reads.max_staleness_ms` of `/cluster/status`).
    pub max_staleness_ms: u64,
    /// Reads that *started* more than the bound after the acknowledgement and still answered
    /// the old value: each one breaks the guarantee (0 expected).
    pub stale_after_bound: u64,
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct StalenessOptions {
    /// The nodes (`http://ip:port`), all of the cluster.
    pub targets: Vec<String>,
    pub samples: usize,
    /// Pause between samples.
    pub interval: Duration,
    /// How long a follower may take to show a value before the observation counts as never.
    pub timeout: Duration,
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(crate::trust::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(4)
        .build()?)
}

/// The `id` cookie (name=value) a response sets, if any.
fn set_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|l| l.split(';').next())
        .find(|kv| !kv.ends_with('='))
        .map(str::to_string)
}

/// POST /api/counter with `cookie`: (new value, new cookie).
async fn increment(
    http: &reqwest::Client,
    target: &str,
    cookie: Option<&str>,
) -> anyhow::Result<(i64, Option<String>)> {
    let mut req = http.post(format!("{target}/api/counter"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await?;
    anyhow::ensure!(r.status() == 200, "increment answered {}", r.status());
    let cookie = set_cookie(&r);
    let v: serde_json::Value = r.json().await?;
    let counter = v["counter"].as_i64().context("no counter in the reply")?;
    Ok((counter, cookie))
}

async fn bound_of(http: &reqwest::Client, target: &str) -> anyhow::Result<u64> {
    let s: serde_json::Value = http
        .get(format!("{target}/cluster/status"))
        .send()
        .await?
        .json()
        .await?;
    s["reads"]["max_staleness_ms"]
        .as_u64()
        .context("/cluster/status has no reads.max_staleness_ms")
}

async fn leader_of(http: &reqwest::Client, targets: &[String]) -> anyhow::Result<usize> {
    for t in targets {
        let Ok(r) = http.get(format!("{t}/cluster/status")).send().await else {
            continue;
        };
        let Ok(s) = r.json::<serde_json::Value>().await else {
            continue;
        };
        let Some(leader) = s["leader"].as_u64() else {
            continue;
        };
        for (i, t2) in targets.iter().enumerate() {
            let Ok(r) = http.get(format!("{t2}/cluster/status")).send().await else {
                continue;
            };
            if r.json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|s| s["id"].as_u64())
                == Some(leader)
            {
                return Ok(i);
            }
        }
    }
    anyhow::bail!("no node names a leader")
}

/// Read `target` with `cookie` until it shows at least `value`: the time from `acked` to the
/// end of that read, or `None` after `timeout`. Counts non-200 answers in `unavailable`.
#[allow(clippy::too_many_arguments)]
async fn first_seen(
    http: &reqwest::Client,
    target: &str,
    cookie: &str,
    value: i64,
    acked: Instant,
    timeout: Duration,
    bound: Duration,
    counts: &mut (u64, u64),
) -> Option<Duration> {
    while acked.elapsed() < timeout {
        let started = acked.elapsed();
        let r = http
            .get(format!("{target}/api/counter"))
            .header("cookie", cookie)
            .send()
            .await;
        let end = acked.elapsed();
        match r {
            Ok(r) if r.status() == 200 => {
                let v: serde_json::Value = r.json().await.ok()?;
                if v["counter"].as_i64().is_some_and(|c| c >= value) {
                    return Some(end);
                }
                if started > bound {
                    counts.1 += 1;
                }
            }
            _ => counts.0 += 1,
        }
    }
    None
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Run the samples.
///
/// # Errors
/// No leader found, or a write through the leader failed.
pub async fn run(opts: StalenessOptions) -> anyhow::Result<StalenessReport> {
    let http = client()?;
    let mut ms = Vec::new();
    let (mut unavailable, mut never, mut stale) = (0u64, 0u64, 0u64);
    let mut max_staleness_ms = 0;
    for _ in 0..opts.samples {
        let leader = leader_of(&http, &opts.targets).await?;
        let lt = &opts.targets[leader];
        max_staleness_ms = bound_of(&http, lt).await?;
        let bound = Duration::from_millis(max_staleness_ms);
        let (_, cookie) = increment(&http, lt, None).await?;
        let cookie = cookie.context("the first write set no session cookie")?;
        let (value, _) = increment(&http, lt, Some(&cookie)).await?;
        let acked = Instant::now();
        let reads = opts
            .targets
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leader)
            .map(|(_, t)| {
                let (http, cookie) = (http.clone(), cookie.clone());
                let timeout = opts.timeout;
                async move {
                    let mut counts = (0, 0);
                    let seen =
                        first_seen(&http, t, &cookie, value, acked, timeout, bound, &mut counts)
                            .await;
                    (seen, counts)
                }
            });
        for (seen, (u, st)) in futures_util::future::join_all(reads).await {
            unavailable += u;
            stale += st;
            match seen {
                Some(d) => ms.push(d.as_secs_f64() * 1000.0),
                None => never += 1,
            }
        }
        tokio::time::sleep(opts.interval).await;
    }
    ms.sort_by(f64::total_cmp);
    Ok(StalenessReport {
        samples: opts.samples,
        observations: ms.len(),
        p50_ms: percentile(&ms, 50.0),
        p99_ms: percentile(&ms, 99.0),
        max_ms: ms.last().copied().unwrap_or(0.0),
        unavailable_reads: unavailable,
        never_seen: never,
        max_staleness_ms,
        stale_after_bound: stale,
    })
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}

//! `sessionraft import` and `sessionraft export`: copy the live keys of one Redis-protocol
//! keyspace into another with their remaining lifetimes — from an existing Redis session store
//! into the cluster (through its Redis-protocol door, so every key is an ordinary replicated
//! `SET`), and back.
//!
//! - [`patterns`]: which keys (by default the key prefixes of connect-redis, Flask-Session and
//!   actix-session's `RedisSessionStore`, from their sources).
//! - [`plan`]: which copy wins when a key exists on both sides.
//! - `copy.rs`: one batch — read the source, read the destination, write (`SET … PX … NX|XX`).
//! - [`endpoint`]: connecting to either side, and its failures in words.
//! - [`rate`]: the limit on the source's keys per second.
//! - [`progress`]: the bar or plain lines, the per-key failures, the summary.
//!
//! The source is read with `SCAN` (never `KEYS`), `PTTL` and `GET`, and nothing else (`TYPE`
//! for a key that is not a string). A run can be repeated at any time: it copies only what is
//! missing on the destination or changed on the source since, so an interrupted run is resumed
//! by running it again.

pub mod endpoint;
pub mod patterns;
pub mod plan;
pub mod progress;
pub mod rate;

mod copy;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use endpoint::Endpoint;
use patterns::Patterns;
use progress::{Progress, Summary, Tally};
use rate::RateLimit;

/// Which way a run copies (for messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From a Redis into the cluster.
    Import,
    /// From the cluster into a Redis.
    Export,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::Import => "import",
            Direction::Export => "export",
        }
    }
}

/// What a run copies, from where to where, how fast.
pub struct MigrateOptions {
    pub direction: Direction,
    pub source: Endpoint,
    pub destination: Endpoint,
    pub patterns: Patterns,
    /// Keys read from the source per second at most (0: no limit).
    pub rate: f64,
    /// Workers, each with a connection to either side.
    pub connections: usize,
    /// Keys per `SCAN` and per pipeline.
    pub batch: usize,
    /// The destination's limit on a key's or value's length.
    pub max_bytes: Option<usize>,
    /// After the copy, delete the destination's matching keys that the source no longer holds
    /// (sessions logged out there since an earlier pass). Only while nothing else writes to
    /// the destination: a key an app created there would go too.
    pub delete_missing: bool,
}

/// Runs the copy to the end and returns its summary (which names the keys that failed, by
/// count; each was named on stderr as it failed).
///
/// # Errors
/// Either side unreachable, refusing the password or not a Redis server (before anything is
/// copied), or unreachable for a minute during the run (a re-run resumes).
pub fn run(opts: MigrateOptions) -> anyhow::Result<Summary> {
    anyhow::ensure!(opts.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(opts.batch > 0, "--batch must be at least 1");
    crate::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(copy_all(opts))
}

async fn copy_all(opts: MigrateOptions) -> anyhow::Result<Summary> {
    let label = opts.direction.label();
    // Both sides first: a wrong URL or password stops the run before anything is copied.
    let mut probe = opts.source.connect().await?;
    opts.destination.connect().await?;
    let total: u64 = redis::cmd("DBSIZE")
        .query_async(&mut probe)
        .await
        .map_err(|e| opts.source.explain(&e))?;
    drop(probe);
    let patterns_shown = opts.patterns.describe();
    let run = Arc::new(copy::Run {
        source: opts.source,
        destination: opts.destination,
        tally: Tally::default(),
        progress: Progress::new(label, total),
        limit: RateLimit::new(opts.rate),
        max_bytes: opts.max_bytes,
        t0: Instant::now(),
    });
    let aborted = Arc::new(AtomicBool::new(false));
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Vec<u8>>>(opts.connections * 2);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let workers: Vec<_> = (0..opts.connections)
        .map(|_| tokio::spawn(copy::worker(run.clone(), rx.clone(), aborted.clone())))
        .collect();
    let ticker = {
        let run = run.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                run.progress.update(&run.tally);
            }
        })
    };
    let scanned = scan(&run, &opts.patterns, opts.batch, &tx, &aborted).await;
    if scanned.is_err() {
        aborted.store(true, Ordering::Relaxed);
    }
    drop(tx);
    let mut first_error = scanned.err();
    for w in workers {
        let result = w.await.map_err(anyhow::Error::from).and_then(|r| r);
        if let (Err(e), None) = (result, &first_error) {
            first_error = Some(e);
        }
    }
    if opts.delete_missing && first_error.is_none() {
        first_error = delete_missing(&run, &opts.patterns, opts.batch).await.err();
    }
    ticker.abort();
    run.progress.finish();
    let summary = run.tally.summary(
        run.t0.elapsed(),
        &run.source.shown,
        &run.destination.shown,
        &patterns_shown,
    );
    match first_error {
        Some(e) => Err(e.context(format!(
            "{label} stopped ({}); run it again to resume",
            summary.human("so far:")
        ))),
        None => Ok(summary),
    }
}

/// `SCAN`s the whole source and hands the matching keys to the workers in batches.
async fn scan(
    run: &copy::Run,
    patterns: &Patterns,
    batch: usize,
    tx: &tokio::sync::mpsc::Sender<Vec<Vec<u8>>>,
    aborted: &AtomicBool,
) -> anyhow::Result<()> {
    const DEADLINE: Duration = Duration::from_secs(60);
    let mut side = copy::Side::new(&run.source);
    let mut cursor = "0".to_string();
    let mut pending: Vec<Vec<u8>> = Vec::with_capacity(batch);
    let mut failing_since: Option<Instant> = None;
    loop {
        if aborted.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("SCAN").arg(&cursor).arg("COUNT").arg(batch);
        let reply =
            match side.send(&pipe).await.and_then(|mut r| {
                scan_reply(r.pop().unwrap_or(redis::Value::Nil), &run.source.shown)
            }) {
                Ok(reply) => {
                    failing_since = None;
                    reply
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > DEADLINE {
                        return Err(e.context("SCAN kept failing for a minute"));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
        let (next, keys) = reply;
        run.tally
            .scanned
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        for key in keys {
            if patterns.matches(&key) {
                run.tally.matched.fetch_add(1, Ordering::Relaxed);
                pending.push(key);
                if pending.len() == batch {
                    let full = std::mem::replace(&mut pending, Vec::with_capacity(batch));
                    if tx.send(full).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    if !pending.is_empty() {
        let _ = tx.send(pending).await;
    }
    Ok(())
}

/// Deletes the destination's matching keys that the source does not hold: `SCAN` of the
/// destination, `EXISTS` of each key on the source (at the rate limit), `DEL` of the absent.
async fn delete_missing(run: &copy::Run, patterns: &Patterns, batch: usize) -> anyhow::Result<()> {
    let mut src = copy::Side::new(&run.source);
    let mut dst = copy::Side::new(&run.destination);
    let mut cursor = "0".to_string();
    loop {
        let mut pipe = redis::pipe();
        pipe.cmd("SCAN").arg(&cursor).arg("COUNT").arg(batch);
        let (next, keys) = dst.send(&pipe).await.and_then(|mut r| {
            scan_reply(r.pop().unwrap_or(redis::Value::Nil), &run.destination.shown)
        })?;
        let keys: Vec<Vec<u8>> = keys.into_iter().filter(|k| patterns.matches(k)).collect();
        if !keys.is_empty() {
            run.limit.acquire(keys.len()).await;
            let mut exists = redis::pipe();
            for k in &keys {
                exists.cmd("EXISTS").arg(k);
            }
            let held = src.send(&exists).await?;
            let gone: Vec<&Vec<u8>> = keys
                .iter()
                .zip(&held)
                .filter(|(_, h)| matches!(h, redis::Value::Int(0)))
                .map(|(k, _)| k)
                .collect();
            if !gone.is_empty() {
                let mut del = redis::pipe();
                for k in &gone {
                    del.cmd("DEL").arg(k);
                }
                let replies = dst.send(&del).await?;
                let deleted = replies
                    .iter()
                    .filter(|r| matches!(r, redis::Value::Int(1)))
                    .count();
                run.tally
                    .deleted
                    .fetch_add(deleted as u64, Ordering::Relaxed);
            }
        }
        if next == "0" {
            return Ok(());
        }
        cursor = next;
    }
}

/// `SCAN`'s reply: the next cursor and the keys; an error reply (a cluster without quorum) is
/// an error to retry.
fn scan_reply(reply: redis::Value, shown: &str) -> anyhow::Result<(String, Vec<Vec<u8>>)> {
    use redis::Value;
    let Value::Array(mut parts) = reply else {
        anyhow::bail!("source {shown}: SCAN answered {reply:?}");
    };
    let (Some(Value::Array(keys)), Some(cursor)) = (parts.pop(), parts.pop()) else {
        anyhow::bail!("source {shown}: SCAN answered something else than [cursor, keys]");
    };
    let cursor = match cursor {
        Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::SimpleString(s) => s,
        Value::Int(i) => i.to_string(),
        other => anyhow::bail!("source {shown}: SCAN's cursor is {other:?}"),
    };
    let keys = keys
        .into_iter()
        .filter_map(|k| match k {
            Value::BulkString(b) => Some(b),
            Value::SimpleString(s) => Some(s.into_bytes()),
            _ => None,
        })
        .collect();
    Ok((cursor, keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn scan_replies_are_read_and_errors_refused() {
        let reply = Value::Array(vec![
            Value::BulkString(b"17".to_vec()),
            Value::Array(vec![Value::BulkString(b"sess:a".to_vec())]),
        ]);
        let (cursor, keys) = scan_reply(reply, "redis://x").expect("a SCAN reply");
        assert_eq!((cursor.as_str(), keys), ("17", vec![b"sess:a".to_vec()]));
        assert!(scan_reply(Value::Nil, "redis://x").is_err());
        assert!(scan_reply(Value::Array(vec![Value::Int(0)]), "redis://x").is_err());
    }
}

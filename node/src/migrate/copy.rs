//! One batch of keys from the source to the destination, in three pipelines: read the source
//! (`PTTL` then `GET` per key), read the destination (`GET`, `PTTL`), write what [`decide`]
//! says (`SET key value [PX ms] NX|XX`: value and lifetime in one command, so nothing is ever
//! half-written). Counts are committed to the run's [`Tally`] only once a batch went through,
//! so a batch retried after a lost connection is not counted twice.
//!
//! Lifetimes are carried, never renewed: a key's remaining time is its `PTTL` counted from the
//! instant *before* the source was asked, minus what the copy took until its `SET` leaves, so
//! the copy never outlives the original. A key gone (or at 0 ms) by then is not written.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use redis::aio::MultiplexedConnection;
use redis::{Pipeline, RedisError, Value};

use super::endpoint::Endpoint;
use super::plan::{decide, Observed, Plan};
use super::progress::{Progress, Tally};
use super::rate::RateLimit;

/// Everything the workers of one run share.
pub(super) struct Run {
    pub source: Endpoint,
    pub destination: Endpoint,
    pub tally: Tally,
    pub progress: Progress,
    pub limit: RateLimit,
    /// The destination's limit on a key's or a value's length (the cluster's
    /// `[resp] max_bulk_bytes`); `None`: none.
    pub max_bytes: Option<usize>,
    /// The reference instant of every expiry of this run.
    pub t0: Instant,
}

/// A connection to one side, opened on first use and again after an error.
pub(super) struct Side<'a> {
    endpoint: &'a Endpoint,
    conn: Option<MultiplexedConnection>,
}

impl<'a> Side<'a> {
    pub fn new(endpoint: &'a Endpoint) -> Self {
        Self {
            endpoint,
            conn: None,
        }
    }

    /// The replies of every command of `pipe`, error replies included as values.
    ///
    /// # Errors
    /// The connection failed (it is reopened on the next call).
    pub async fn send(&mut self, pipe: &Pipeline) -> anyhow::Result<Vec<Value>> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(self.endpoint.connect().await?),
        };
        match conn.send_packed_commands(pipe, 0, pipe.len()).await {
            Ok(v) if v.len() == pipe.len() => Ok(v),
            Ok(v) => {
                self.conn = None;
                anyhow::bail!(
                    "{} {}: {} replies to {} commands",
                    self.endpoint.role,
                    self.endpoint.shown,
                    v.len(),
                    pipe.len()
                )
            }
            Err(e) => {
                self.conn = None;
                Err(self.endpoint.explain(&e))
            }
        }
    }
}

/// The counts and messages of one attempt at a batch, committed together.
#[derive(Default)]
struct Outcome {
    created: u64,
    updated: u64,
    unchanged: u64,
    newer: u64,
    expired: u64,
    failed: Vec<(Vec<u8>, String)>,
    /// Keys to try again (the cluster answered `TRYAGAIN` / `CLUSTERDOWN`).
    retry: Vec<Vec<u8>>,
}

/// A reply, its error replies apart.
fn reply(v: &Value) -> Result<&Value, RedisError> {
    match v {
        Value::ServerError(e) => Err(RedisError::from(e.clone())),
        v => Ok(v),
    }
}

/// Whether an error reply means "not now, try again" (a cluster without quorum, a loading
/// Redis).
fn transient(e: &RedisError) -> bool {
    matches!(
        e.code(),
        Some("TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "MASTERDOWN")
    )
}

fn error_text(e: &RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(c), Some(d)) => format!("{c} {d}"),
        _ => e.to_string(),
    }
}

/// A key found on the source, to be compared with the destination.
struct Candidate {
    key: Vec<u8>,
    source: Observed,
}

/// `PTTL`'s answer as an expiry after `t0` (`None`: no expiry), or `Err(())` when the key is
/// gone (`-2`).
fn expiry(pttl: &Value, asked_at_ms: u64) -> Result<Option<u64>, ()> {
    match pttl {
        Value::Int(-1) => Ok(None),
        Value::Int(ms) if *ms >= 0 => Ok(Some(asked_at_ms + ms.unsigned_abs())),
        _ => Err(()),
    }
}

impl Run {
    fn since_t0_ms(&self, t: Instant) -> u64 {
        u64::try_from(t.duration_since(self.t0).as_millis()).unwrap_or(u64::MAX)
    }

    /// Copies `keys`, retrying the keys a cluster refused for now; the counts go to the tally.
    ///
    /// # Errors
    /// A side stayed unreachable, or kept refusing, for a minute: the run stops (a re-run
    /// resumes it).
    pub async fn copy_batch(
        &self,
        src: &mut Side<'_>,
        dst: &mut Side<'_>,
        mut keys: Vec<Vec<u8>>,
    ) -> anyhow::Result<()> {
        const DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);
        let started = Instant::now();
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            let why = match self.attempt(src, dst, &keys).await {
                Ok(outcome) => {
                    let retry = self.commit(outcome);
                    if retry.is_empty() {
                        return Ok(());
                    }
                    let why = format!(
                        "{} keys refused for now (TRYAGAIN/CLUSTERDOWN) for a minute",
                        retry.len()
                    );
                    keys = retry;
                    anyhow::anyhow!(why)
                }
                Err(e) => e,
            };
            if started.elapsed() > DEADLINE {
                return Err(why.context("giving up on a batch after a minute of retries"));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
        }
    }

    /// Adds an attempt's counts to the tally and names its failures; the keys to retry.
    fn commit(&self, o: Outcome) -> Vec<Vec<u8>> {
        let t = &self.tally;
        t.created.fetch_add(o.created, Ordering::Relaxed);
        t.updated.fetch_add(o.updated, Ordering::Relaxed);
        t.unchanged.fetch_add(o.unchanged, Ordering::Relaxed);
        t.newer_on_destination.fetch_add(o.newer, Ordering::Relaxed);
        t.expired.fetch_add(o.expired, Ordering::Relaxed);
        t.failed.fetch_add(o.failed.len() as u64, Ordering::Relaxed);
        for (key, why) in &o.failed {
            self.progress.failed(key, why);
        }
        o.retry
    }

    async fn attempt(
        &self,
        src: &mut Side<'_>,
        dst: &mut Side<'_>,
        keys: &[Vec<u8>],
    ) -> anyhow::Result<Outcome> {
        let mut out = Outcome::default();
        let candidates = self.read_source(src, keys, &mut out).await?;
        if candidates.is_empty() {
            return Ok(out);
        }
        let destination = self.read_destination(dst, &candidates, &mut out).await?;
        self.write(dst, candidates, destination, &mut out).await?;
        Ok(out)
    }

    /// `PTTL` then `GET` of every key (the lifetime first: a value rewritten in between is
    /// copied with the shorter lifetime, never a longer one); keys of other types are named.
    async fn read_source(
        &self,
        src: &mut Side<'_>,
        keys: &[Vec<u8>],
        out: &mut Outcome,
    ) -> anyhow::Result<Vec<Candidate>> {
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("PTTL").arg(k).cmd("GET").arg(k);
        }
        let asked_at = self.since_t0_ms(Instant::now());
        let replies = src.send(&pipe).await?;
        let mut candidates = Vec::with_capacity(keys.len());
        let mut other_types = Vec::new();
        for (key, pair) in keys.iter().zip(replies.chunks_exact(2)) {
            match (reply(&pair[0]), reply(&pair[1])) {
                (Err(e), _) | (_, Err(e)) if transient(&e) => {
                    out.retry.push(key.clone());
                }
                (_, Err(e)) if e.code() == Some("WRONGTYPE") => {
                    other_types.push(key.clone());
                }
                (Err(e), _) | (_, Err(e)) => out.failed.push((
                    key.clone(),
                    format!("the source answered {}", error_text(&e)),
                )),
                (_, Ok(Value::Nil)) => out.expired += 1,
                (Ok(pttl), Ok(Value::BulkString(value))) => {
                    let Ok(expires_at_ms) = expiry(pttl, asked_at) else {
                        out.expired += 1;
                        continue;
                    };
                    if let Some(why) = self.too_large(key, value) {
                        out.failed.push((key.clone(), why));
                        continue;
                    }
                    candidates.push(Candidate {
                        key: key.clone(),
                        source: Observed {
                            value: value.clone(),
                            expires_at_ms,
                        },
                    });
                }
                (_, Ok(other)) => out.failed.push((
                    key.clone(),
                    format!("the source answered GET with {other:?}"),
                )),
            }
        }
        if !other_types.is_empty() {
            let mut pipe = redis::pipe();
            for k in &other_types {
                pipe.cmd("TYPE").arg(k);
            }
            let types = src.send(&pipe).await?;
            for (key, t) in other_types.into_iter().zip(types) {
                let t = match t {
                    Value::SimpleString(s) => s,
                    Value::Okay => "?".to_string(),
                    other => format!("{other:?}"),
                };
                out.failed.push((
                    key,
                    format!("holds a {t}, not a string: only string values are copied"),
                ));
            }
        }
        Ok(candidates)
    }

    fn too_large(&self, key: &[u8], value: &[u8]) -> Option<String> {
        let max = self.max_bytes?;
        if key.len() > max {
            return Some(format!(
                "a key of {} bytes is over the destination's max_bulk_bytes ({max}): not copied",
                key.len()
            ));
        }
        (value.len() > max).then(|| {
            format!(
                "its value of {} bytes is over the destination's max_bulk_bytes ({max}): not \
                 copied",
                value.len()
            )
        })
    }

    /// The destination's copy of every candidate (`None`: absent); `Err(())` for a key that
    /// cannot be compared (counted in `out`).
    async fn read_destination(
        &self,
        dst: &mut Side<'_>,
        candidates: &[Candidate],
        out: &mut Outcome,
    ) -> anyhow::Result<Vec<Result<Option<Observed>, ()>>> {
        let mut pipe = redis::pipe();
        for c in candidates {
            pipe.cmd("GET").arg(&c.key).cmd("PTTL").arg(&c.key);
        }
        let asked_at = self.since_t0_ms(Instant::now());
        let replies = dst.send(&pipe).await?;
        let mut seen = Vec::with_capacity(candidates.len());
        for (c, pair) in candidates.iter().zip(replies.chunks_exact(2)) {
            seen.push(match (reply(&pair[0]), reply(&pair[1])) {
                (Err(e), _) | (_, Err(e)) if transient(&e) => {
                    out.retry.push(c.key.clone());
                    Err(())
                }
                (Err(e), _) if e.code() == Some("WRONGTYPE") => {
                    out.failed.push((
                        c.key.clone(),
                        "the destination holds another type under this name: not overwritten"
                            .to_string(),
                    ));
                    Err(())
                }
                (Err(e), _) | (_, Err(e)) => {
                    out.failed.push((
                        c.key.clone(),
                        format!("the destination answered {}", error_text(&e)),
                    ));
                    Err(())
                }
                (Ok(Value::Nil), _) => Ok(None),
                (Ok(Value::BulkString(value)), Ok(pttl)) => match expiry(pttl, asked_at) {
                    Ok(expires_at_ms) => Ok(Some(Observed {
                        value: value.clone(),
                        expires_at_ms,
                    })),
                    // expired between the GET and the PTTL: absent
                    Err(()) => Ok(None),
                },
                (Ok(other), _) => {
                    out.failed.push((
                        c.key.clone(),
                        format!("the destination answered GET with {other:?}"),
                    ));
                    Err(())
                }
            });
        }
        Ok(seen)
    }

    /// Writes what [`decide`] says, each key's value and remaining lifetime in one `SET`.
    async fn write(
        &self,
        dst: &mut Side<'_>,
        candidates: Vec<Candidate>,
        destination: Vec<Result<Option<Observed>, ()>>,
        out: &mut Outcome,
    ) -> anyhow::Result<()> {
        let mut pipe = redis::pipe();
        let mut written: Vec<(Vec<u8>, Plan)> = Vec::new();
        let now = self.since_t0_ms(Instant::now());
        for (c, dest) in candidates.into_iter().zip(destination) {
            let Ok(dest) = dest else { continue };
            let plan = decide(&c.source, dest.as_ref());
            match plan {
                Plan::Unchanged => out.unchanged += 1,
                Plan::DestinationNewer => out.newer += 1,
                Plan::Create | Plan::Replace | Plan::Extend => {
                    let remaining = match c.source.expires_at_ms {
                        None => None,
                        Some(at) if at > now => Some(at - now),
                        Some(_) => {
                            out.expired += 1;
                            continue;
                        }
                    };
                    pipe.cmd("SET").arg(&c.key).arg(&c.source.value);
                    if let Some(ms) = remaining {
                        pipe.arg("PX").arg(ms);
                    }
                    pipe.arg(if plan == Plan::Create { "NX" } else { "XX" });
                    written.push((c.key, plan));
                }
            }
        }
        if written.is_empty() {
            return Ok(());
        }
        let replies = dst.send(&pipe).await?;
        for ((key, plan), r) in written.into_iter().zip(replies) {
            let ok = matches!(&r, Value::Okay) || matches!(&r, Value::SimpleString(s) if s == "OK");
            if ok {
                if plan == Plan::Create {
                    out.created += 1;
                } else {
                    out.updated += 1;
                }
                continue;
            }
            match reply(&r) {
                // NX: created on the destination meanwhile; XX: deleted there meanwhile (a
                // logout): the destination's state is the newer one either way
                Ok(Value::Nil) => out.newer += 1,
                Err(e) if transient(&e) => out.retry.push(key),
                Err(e) => out.failed.push((
                    key,
                    format!("the destination refused it: {}", error_text(&e)),
                )),
                Ok(other) => out
                    .failed
                    .push((key, format!("the destination answered SET with {other:?}"))),
            }
        }
        Ok(())
    }
}

/// One worker: batches from the scanner until there are none (or the run was aborted).
pub(super) async fn worker(
    run: Arc<Run>,
    batches: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Vec<Vec<u8>>>>>,
    aborted: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let mut src = Side::new(&run.source);
    let mut dst = Side::new(&run.destination);
    loop {
        if aborted.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(batch) = batches.lock().await.recv().await else {
            return Ok(());
        };
        run.limit.acquire(batch.len()).await;
        if let Err(e) = run.copy_batch(&mut src, &mut dst, batch).await {
            aborted.store(true, Ordering::Relaxed);
            return Err(e);
        }
        run.progress.update(&run.tally);
    }
}

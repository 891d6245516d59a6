//! The write batcher: an actix actor that groups concurrent session writes from every worker
//! into `Command::Batch` entries — one log entry, one fsync, many sessions (group commit).
//!
//! Adaptive: a write arriving while fewer than `max_in_flight` (1) batches are replicating is sent
//! at once (no added latency when idle); otherwise it waits for the next batch, which leaves as
//! soon as one in flight completes. A batch holds at most `max_batch` commands and `MAX_BATCH_BYTES` (estimated).
//!
//! On the leader, writes forwarded by followers (each already a batch) join the same queue, so
//! one log entry carries the writes of every node: fewer entries, fewer fsyncs on every replica.

use std::sync::Arc;

use actix::prelude::*;
use sessionraft_raft::{Command, Response};
use tokio::sync::oneshot;

use crate::cluster::{Cluster, ClusterError, Proposed};
use crate::metrics::Metrics;

/// One session write for the batcher.
pub struct Write(pub Command);

impl Message for Write {
    type Result = Result<Proposed, ClusterError>;
}

struct Pending {
    cmd: Command,
    bytes: usize,
    reply: oneshot::Sender<Result<Proposed, ClusterError>>,
}

/// The write batcher actor.
pub struct WriteBatcher {
    cluster: Arc<Cluster>,
    metrics: Arc<Metrics>,
    queue: Vec<Pending>,
    in_flight: usize,
    max_in_flight: usize,
    max_batch: usize,
    max_batch_bytes: usize,
}

/// A batch stops growing at this many (estimated) bytes, so a log entry — and an AppendEntries
/// request of `max_payload_entries` of them — stays far below the RPC body limit whatever the
/// sessions' sizes. A single write larger than this still goes, alone.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

impl WriteBatcher {
    /// A batcher proposing through `cluster`.
    pub fn new(cluster: Arc<Cluster>, metrics: Arc<Metrics>) -> Self {
        Self {
            cluster,
            metrics,
            queue: Vec::new(),
            in_flight: 0,
            // One batch in flight per node: measured on 3 nodes / 2 cores, 32 connections,
            // 1 gave ~4,000 writes/s, 2 ~3,200 and 4 ~3,150 (fewer, larger log entries cost less
            // per write than more pipelining).
            max_in_flight: 1,
            max_batch: 1024,
            max_batch_bytes: MAX_BATCH_BYTES,
        }
    }

    fn maybe_flush(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight < self.max_in_flight && !self.queue.is_empty() {
            let mut take = 0;
            let mut bytes = 0;
            for p in self.queue.iter().take(self.max_batch) {
                if take > 0 && bytes + p.bytes > self.max_batch_bytes {
                    break;
                }
                take += 1;
                bytes += p.bytes;
            }
            let batch: Vec<Pending> = self.queue.drain(..take).collect();
            self.in_flight += 1;
            self.metrics.write_batch_size.observe(batch.len() as f64);
            {
                use std::sync::atomic::Ordering::Relaxed;
                self.metrics.counters.batches.fetch_add(1, Relaxed);
                self.metrics
                    .counters
                    .batched_writes
                    .fetch_add(batch.len() as u64, Relaxed);
            }
            let cluster = self.cluster.clone();
            let fut = async move {
                let (cmds, replies): (Vec<Command>, Vec<_>) =
                    batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
                let n = cmds.len();
                match cluster.propose(Command::Batch(cmds)).await {
                    Ok(Proposed {
                        response: Response::Batch(responses),
                        after_ambiguous_attempt,
                    }) if responses.len() == n => {
                        for (reply, response) in replies.into_iter().zip(responses) {
                            let _ = reply.send(Ok(Proposed {
                                response,
                                after_ambiguous_attempt,
                            }));
                        }
                    }
                    Ok(other) => {
                        let err = ClusterError::Fatal(format!(
                            "state machine answered a batch of {n} with {other:?}"
                        ));
                        for reply in replies {
                            let _ = reply.send(Err(err.clone()));
                        }
                    }
                    Err(e) => {
                        for reply in replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            };
            ctx.spawn(fut.into_actor(self).map(|(), act, ctx| {
                act.in_flight -= 1;
                act.maybe_flush(ctx);
            }));
        }
    }
}

impl Actor for WriteBatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Writes are never dropped for back-pressure; callers are bounded by their deadline.
        ctx.set_mailbox_capacity(usize::MAX);
    }
}

impl Handler<Write> for WriteBatcher {
    type Result = ResponseFuture<Result<Proposed, ClusterError>>;

    fn handle(&mut self, msg: Write, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.queue.push(Pending {
            bytes: msg.0.approx_bytes(),
            cmd: msg.0,
            reply: tx,
        });
        self.maybe_flush(ctx);
        Box::pin(async move {
            rx.await
                .map_err(|_| ClusterError::Fatal("write batcher stopped".into()))?
        })
    }
}

//! The write batcher: groups concurrent session writes from every worker into `Command::Batch`
//! entries — one log entry, one fsync, many sessions (group commit).
//!
//! Adaptive: a write arriving while fewer than `max_in_flight` (1) batches are replicating is sent
//! at once (no added latency when idle); otherwise it waits for the next batch, which leaves as
//! soon as the one in flight completes. A batch holds at most `max_batch` commands and
//! `MAX_BATCH_BYTES` (estimated).
//!
//! The queue is a locked `Vec` shared by every caller, not an actor's mailbox: a write that
//! finds a batch in flight only queues itself (no thread is woken; the task replicating the
//! batch takes the queue when it completes), and only a write that finds the batcher idle
//! spawns that task on the Raft runtime.
//!
//! On the leader, writes forwarded by followers (each already a batch) join the same queue, so
//! one log entry carries the writes of every node: fewer entries, fewer fsyncs on every replica.

use std::sync::{Arc, Mutex};

use crate::{Command, Response};
use tokio::sync::oneshot;

use crate::node::cluster::{Cluster, ClusterError, Proposed};

struct Pending {
    cmd: Command,
    /// A write a follower forwarded to the leader of this term: proposed only here, in this
    /// term ([`Cluster::propose_in_term`]).
    term: Option<u64>,
    bytes: usize,
    /// When it was queued (`batch_queue` stage).
    queued: std::time::Instant,
    reply: oneshot::Sender<Result<Proposed, ClusterError>>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    in_flight: usize,
}

/// The write batcher of a node. Shared (`Arc`) by the session store, the touch coalescer and
/// the internal `/raft/write` endpoint.
pub struct WriteBatcher {
    cluster: Arc<Cluster>,
    queue: Mutex<Queue>,
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
    pub fn new(cluster: Arc<Cluster>) -> Arc<Self> {
        Arc::new(Self {
            cluster,
            queue: Mutex::new(Queue::default()),
            // One batch in flight per node: measured on 3 nodes / 2 cores, 32 connections,
            // 1 gave ~4,000 writes/s, 2 ~3,200 and 4 ~3,150 (fewer, larger log entries cost less
            // per write than more pipelining).
            max_in_flight: 1,
            max_batch: 1024,
            max_batch_bytes: MAX_BATCH_BYTES,
        })
    }

    /// Replicate `cmd` in the next batch and answer its own response.
    ///
    /// # Errors
    /// What [`Cluster::propose`] fails with, for the whole batch.
    pub async fn write(self: &Arc<Self>, cmd: Command) -> Result<Proposed, ClusterError> {
        // A command the cluster version does not allow yet is refused here, at once, rather
        // than failing the batch it would join (the leader checks again: `Cluster`).
        if let Some(refused) = self.cluster.refuse_unsupported(&cmd) {
            return Err(refused);
        }
        self.enqueue(cmd, None).await
    }

    /// Replicate `cmd`, a write a follower forwarded to the leader of `term`, in the next batch:
    /// only while this node leads in `term`, and never forwarded on (a batch carrying one is
    /// proposed with [`Cluster::propose_in_term`]).
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`] (not ambiguous) when this node does not lead in `term`
    /// when the batch leaves; else what [`Cluster::propose_in_term`] fails with.
    pub(crate) async fn write_forwarded(
        self: &Arc<Self>,
        cmd: Command,
        term: u64,
    ) -> Result<Proposed, ClusterError> {
        self.enqueue(cmd, Some(term)).await
    }

    async fn enqueue(
        self: &Arc<Self>,
        cmd: Command,
        term: Option<u64>,
    ) -> Result<Proposed, ClusterError> {
        let (tx, rx) = oneshot::channel();
        let batch = {
            let mut q = self.lock();
            q.pending.push(Pending {
                bytes: cmd.approx_bytes(),
                queued: std::time::Instant::now(),
                cmd,
                term,
                reply: tx,
            });
            self.next_batch(&mut q)
        };
        if let Some(batch) = batch {
            let this = self.clone();
            self.cluster.rt.spawn(async move { this.run(batch).await });
        }
        rx.await
            .map_err(|_| ClusterError::Fatal("write batcher stopped".into()))?
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next batch to send, if one may leave now (counted in flight).
    fn next_batch(&self, q: &mut Queue) -> Option<Vec<Pending>> {
        if q.in_flight >= self.max_in_flight || q.pending.is_empty() {
            return None;
        }
        let mut take = 0;
        let mut bytes = 0;
        for p in q.pending.iter().take(self.max_batch) {
            if take > 0 && bytes + p.bytes > self.max_batch_bytes {
                break;
            }
            take += 1;
            bytes += p.bytes;
        }
        let batch: Vec<Pending> = q.pending.drain(..take).collect();
        for p in &batch {
            crate::node::instruments::since(&self.cluster.instruments.stages.batch_queue, p.queued);
        }
        q.in_flight += 1;
        let instruments = &self.cluster.instruments;
        instruments.write_batch_size.observe(batch.len() as f64);
        {
            use std::sync::atomic::Ordering::Relaxed;
            instruments.counters.batches.fetch_add(1, Relaxed);
            instruments
                .counters
                .batched_writes
                .fetch_add(batch.len() as u64, Relaxed);
        }
        Some(batch)
    }

    /// Replicate `batch`, then every batch queued meanwhile, until the queue is empty. Runs on
    /// the Raft runtime.
    async fn run(self: Arc<Self>, mut batch: Vec<Pending>) {
        loop {
            self.replicate(batch).await;
            let next = {
                let mut q = self.lock();
                q.in_flight -= 1;
                self.next_batch(&mut q)
            };
            match next {
                Some(b) => batch = b,
                None => return,
            }
        }
    }

    async fn replicate(&self, mut batch: Vec<Pending>) {
        // Forwarded writes go only into an entry of the term they were addressed to; those
        // of another term are refused unproposed (their follower already proposes them
        // elsewhere).
        let mut leading_term = None;
        if batch.iter().any(|p| p.term.is_some()) {
            leading_term = self
                .cluster
                .is_leader()
                .then(|| self.cluster.raft.metrics().borrow().current_term);
            let (keep, refuse): (Vec<Pending>, Vec<Pending>) = batch
                .into_iter()
                .partition(|p| p.term.is_none() || p.term == leading_term);
            for p in refuse {
                if let Some(term) = p.term {
                    let _ = p.reply.send(Err(ClusterError::not_leader_of(term)));
                }
            }
            batch = keep;
        }
        if batch.is_empty() {
            return;
        }
        let in_term = leading_term.filter(|_| batch.iter().any(|p| p.term.is_some()));
        let (cmds, replies): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
        let n = cmds.len();
        let proposed = match in_term {
            Some(term) => {
                self.cluster
                    .propose_in_term(Command::Batch(cmds), term)
                    .await
            }
            None => self.cluster.propose_here(Command::Batch(cmds)).await,
        };
        match proposed {
            Ok(Proposed {
                response: Response::Batch(responses),
                log_index,
                after_ambiguous_attempt,
            }) if responses.len() == n => {
                for (reply, response) in replies.into_iter().zip(responses) {
                    let _ = reply.send(Ok(Proposed {
                        response,
                        log_index,
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
    }
}

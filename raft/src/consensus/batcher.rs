//! The write batcher: groups concurrent session writes from every worker into `Command::Batch`
//! entries — one log entry, one fsync, many sessions (group commit).
//!
//! Adaptive: a write arriving while the batcher is idle is sent at once (no added latency);
//! otherwise it waits for the next batch, which leaves as soon as the one in flight completes —
//! or, on the leader, as soon as `min_window_writes` (64) writes wait, with up to `max_window`
//! (2) batches proposed and not yet answered: the next entry is appended while the one before
//! it replicates and applies (see `WriteBatcher::run`). A batch holds at most `max_batch`
//! commands and `MAX_BATCH_BYTES` (estimated).
//!
//! The queue is a locked `VecDeque` shared by every caller, not an actor's mailbox: a write that
//! finds the replicator busy only queues itself (no thread is woken, unless the queue just
//! reached `min_window_writes` and the window has room; the replicator takes the queue as its
//! batches complete), and only a write that finds the batcher idle sends the replicator — the
//! supervised actor [`BatchReplicator`] — a [`Replicate`] message with the batch. One
//! replicator runs at a time, so its mailbox never holds more than one message; the bound on
//! waiting work is the queue's. A panic while replicating restarts the actor: the batches in
//! flight are answered "outcome unknown" (their callers see a 504 / `-CLUSTERDOWN`, as for a
//! leader lost mid-write), the batcher is marked idle again and the queue goes on.
//! Writes leave in the order they were queued and enter the log in that order (the batches of
//! a window are handed to the Raft core from one task, in order; one refused by a leader that
//! lost its leadership is proposed again only where that keeps the order,
//! `WriteBatcher::settle`), and [`WriteBatcher::submit`] queues several at once, adjacent: the
//! commands of one pipelined Redis-protocol connection land in one entry, in order.
//!
//! Overload is refused, not queued: the queue holds at most `max_queued_writes` writes (a
//! write arriving at a full queue is refused at once, [`ClusterError::Overloaded`]), and a write
//! still queued when its request deadline passes is refused unproposed, as is dropped a write
//! whose caller stopped waiting (its client went away): neither is ever proposed later. A batch
//! is proposed with the earliest deadline among its writes, so no write is committed after its
//! caller was told it failed.
//!
//! On the leader, writes forwarded by followers (each already a batch) join the same queue, so
//! one log entry carries the writes of every node: fewer entries, fewer fsyncs on every replica.
//! They count towards the bound but are never refused for it: a follower has one batch in
//! flight at a time, which its own queue bounds.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use actix::prelude::*;
use futures_util::FutureExt;

use crate::{Command, Response};
use tokio::sync::oneshot;

use crate::consensus::actors::{ActorHost, Supervise};
use crate::consensus::cluster::{Cluster, ClusterError, CommittedHere, LocalWrite, Proposed};

type Reply = Result<Proposed, ClusterError>;

struct Pending {
    cmd: Command,
    /// A write a follower forwarded to the leader of this term: proposed only here, in this
    /// term ([`Cluster::propose_in_term`]).
    term: Option<u64>,
    bytes: usize,
    /// The client writes it carries (a forwarded batch: its follower's).
    writes: usize,
    /// When it was queued (`batch_queue` stage).
    queued: Instant,
    /// Refused unproposed when still queued at this instant.
    deadline: Instant,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Pending>,
    /// The client writes in `pending`.
    writes: usize,
    /// A runner is replicating (0 or 1): it takes every batch queued meanwhile.
    in_flight: usize,
    /// The runner was woken to take a further batch into its window and has not taken it yet.
    more_signalled: bool,
}

/// The write batcher of a node. Shared (`Arc`) by the session store, the touch coalescer,
/// the Redis-protocol door and the internal `/raft/write` endpoint.
pub struct WriteBatcher {
    cluster: Arc<Cluster>,
    queue: Mutex<Queue>,
    /// The replicator actor, once started ([`WriteBatcher::start_replicator`]); until then (and
    /// after the actors stopped) batches are replicated by a task on the Raft runtime.
    replicator: OnceLock<Recipient<Replicate>>,
    /// On the leader, at most this many batches proposed and not yet answered (the window).
    max_window: usize,
    /// A further batch joins a window that is not empty only with at least this many writes
    /// (fewer wait for the next answer and leave together: a log entry costs every replica a
    /// write and an fsync whatever it carries).
    min_window_writes: usize,
    /// Wakes the runner when `min_window_writes` writes are queued while its window has room.
    more: tokio::sync::Notify,
    max_batch: usize,
    max_batch_bytes: usize,
    max_queued_writes: usize,
}

/// A batch stops growing at this many (estimated) bytes, so a log entry — and an AppendEntries
/// request of `max_payload_entries` of them — stays far below the RPC body limit whatever the
/// sessions' sizes. A single write larger than this still goes, alone.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

/// The default bound of the write queue (`[raft] max_queued_writes`): four full batches, which
/// drain in well under the request deadline at the write rates measured here (~12k/s).
pub const DEFAULT_MAX_QUEUED_WRITES: usize = 4096;

/// A write handed to the batcher ([`WriteBatcher::submit`]): already queued, or already refused.
#[must_use = "a queued write's outcome is only known by awaiting it"]
pub struct Queued(Result<oneshot::Receiver<Reply>, ClusterError>);

impl Queued {
    /// The write's outcome: its own response once its batch is committed and applied.
    /// Dropping this instead abandons the write: unless its batch already left, it is never
    /// proposed.
    ///
    /// # Errors
    /// Refused at once (queue full, a feature the cluster version lacks), or what the batch
    /// failed with.
    pub async fn outcome(self) -> Reply {
        match self.0 {
            Ok(rx) => rx.await.map_err(|_| ClusterError::OutcomeUnknown {
                // its batch was dropped (the replicator restarted after a panic, or the node is
                // stopping): it may have been proposed
                reason: "the write batcher dropped its batch".into(),
            })?,
            Err(e) => Err(e),
        }
    }
}

impl WriteBatcher {
    /// A batcher proposing through `cluster`, queueing at most `max_queued_writes` writes
    /// (at least 1).
    pub fn new(cluster: Arc<Cluster>, max_queued_writes: usize) -> Arc<Self> {
        Arc::new(Self {
            cluster,
            queue: Mutex::new(Queue::default()),
            replicator: OnceLock::new(),
            // Two batches in flight on the leader, the second only with 64 writes or more:
            // `redis-benchmark -P 16 -c 32` ran at 1.16x (median of 5 alternating pairs,
            // 0.83-1.32x) with ~1.5x as many, smaller batches; small batches in flight
            // together cost more per write than they save (bench/PROFILE.md round 9; earlier,
            // on 3 nodes / 2 cores at 32 HTTP connections, 1 batch in flight gave ~4,000
            // writes/s, 2 ~3,200 and 4 ~3,150).
            max_window: 2,
            min_window_writes: 64,
            more: tokio::sync::Notify::new(),
            max_batch: 1024,
            max_batch_bytes: MAX_BATCH_BYTES,
            max_queued_writes: max_queued_writes.max(1),
        })
    }

    /// Replicate `cmd` in the next batch and answer its own response.
    ///
    /// # Errors
    /// [`ClusterError::Overloaded`] at once when the queue is full; what
    /// [`Cluster::propose`] fails with, for the whole batch.
    pub async fn write(self: &Arc<Self>, cmd: Command) -> Result<Proposed, ClusterError> {
        match self.submit(vec![cmd]).pop() {
            Some(queued) => queued.outcome().await,
            None => Err(ClusterError::Fatal("write batcher lost a write".into())),
        }
    }

    /// Queue `cmds` now, adjacent and in order (they leave in one batch unless it fills up),
    /// without waiting: one [`Queued`] per command, in the same order. A command the cluster
    /// version does not allow yet is refused at once rather than failing the batch it would
    /// join (the leader checks again: `Cluster`); so are the commands that find the queue
    /// full — the first ones that fit are queued, the rest refused.
    pub fn submit(self: &Arc<Self>, cmds: Vec<Command>) -> Vec<Queued> {
        let now = Instant::now();
        let deadline = now + self.cluster.deadlines.request;
        let mut out = Vec::with_capacity(cmds.len());
        let batch = {
            let mut q = self.lock();
            for cmd in cmds {
                if let Some(refused) = self.cluster.refuse_unsupported(&cmd) {
                    out.push(Queued(Err(refused)));
                    continue;
                }
                if q.writes >= self.max_queued_writes {
                    self.cluster.instruments.write_queue.full.inc();
                    out.push(Queued(Err(ClusterError::Overloaded(format!(
                        "{} writes are waiting to be committed on this node",
                        q.writes
                    )))));
                    continue;
                }
                let (tx, rx) = oneshot::channel();
                self.push(&mut q, cmd, None, now, deadline, tx);
                out.push(Queued(Ok(rx)));
            }
            self.signal_more(&mut q);
            self.next_batch(&mut q)
        };
        self.start(batch);
        out
    }

    /// Replicate `cmd`, a write a follower forwarded to the leader of `term`, in the next batch:
    /// only while this node leads in `term`, and never forwarded on (a batch carrying one is
    /// proposed with [`Cluster::propose_in_term`]). Never refused for a full queue (each
    /// follower has one batch in flight at a time).
    ///
    /// # Errors
    /// [`ClusterError::LeaderChanged`] when this node does not lead in `term`
    /// when the batch leaves, or the deadline passed in the queue; else what
    /// [`Cluster::propose_in_term`] fails with.
    pub(crate) async fn write_forwarded(
        self: &Arc<Self>,
        cmd: Command,
        term: u64,
    ) -> Result<Proposed, ClusterError> {
        let now = Instant::now();
        let (tx, rx) = oneshot::channel();
        let batch = {
            let mut q = self.lock();
            self.push(
                &mut q,
                cmd,
                Some(term),
                now,
                now + self.cluster.deadlines.request,
                tx,
            );
            self.signal_more(&mut q);
            self.next_batch(&mut q)
        };
        self.start(batch);
        Queued(Ok(rx)).outcome().await
    }

    fn push(
        &self,
        q: &mut Queue,
        cmd: Command,
        term: Option<u64>,
        queued: Instant,
        deadline: Instant,
        reply: oneshot::Sender<Reply>,
    ) {
        let writes = match (&cmd, term) {
            (Command::Batch(cmds), Some(_)) => cmds.len().max(1),
            _ => 1,
        };
        q.writes += writes;
        q.pending.push_back(Pending {
            bytes: cmd.approx_bytes(),
            writes,
            queued,
            deadline,
            cmd,
            term,
            reply,
        });
    }

    /// Runs the replicator as a supervised actor on `actors` from now on.
    pub fn start_replicator(self: &Arc<Self>, actors: &ActorHost) {
        let batcher = Arc::downgrade(self);
        let addr = actors.start_handler(move || BatchReplicator {
            batcher: batcher.clone(),
            in_progress: false,
        });
        let _ = self.replicator.set(addr.recipient());
    }

    /// Hand `batch` to the replicator (which then replicates the batches after it), if one may
    /// leave.
    fn start(self: &Arc<Self>, batch: Option<(Vec<Pending>, Instant)>) {
        let Some((batch, deadline)) = batch else {
            return;
        };
        let msg = Replicate { batch, deadline };
        let msg = match self.replicator.get() {
            Some(r) => match r.try_send(msg) {
                Ok(()) => return,
                Err(SendError::Full(m) | SendError::Closed(m)) => m,
            },
            None => msg,
        };
        // No replicator (not started, or the node's actors are stopping): a task of its own.
        let this = self.clone();
        self.cluster
            .rt
            .spawn(async move { this.run(msg.batch, msg.deadline).await });
    }

    /// After the replicator panicked with a batch in flight: that batch is gone (its callers
    /// were answered "unknown" when their reply channels dropped); the next one may leave.
    fn recover_in_flight(self: &Arc<Self>) {
        let next = {
            let mut q = self.lock();
            q.in_flight = q.in_flight.saturating_sub(1);
            self.next_batch(&mut q)
        };
        self.start(next);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next batch to send and its deadline (the earliest of its writes'), if one may leave
    /// now (counted in flight). Writes whose caller stopped waiting are dropped, and writes
    /// whose deadline passed are refused, as they come up: neither is ever proposed.
    fn next_batch(&self, q: &mut Queue) -> Option<(Vec<Pending>, Instant)> {
        if q.in_flight > 0 {
            return None;
        }
        let batch = self.take_batch(q)?;
        q.in_flight += 1;
        Some(batch)
    }

    /// Wake the runner when a further batch may join its window.
    fn signal_more(&self, q: &mut Queue) {
        if q.in_flight > 0 && !q.more_signalled && q.writes >= self.min_window_writes {
            q.more_signalled = true;
            self.more.notify_one();
        }
    }

    /// The next batch from the queue and its deadline, for a runner already counted in flight.
    fn take_batch(&self, q: &mut Queue) -> Option<(Vec<Pending>, Instant)> {
        q.more_signalled = false;
        if q.pending.is_empty() {
            return None;
        }
        let now = Instant::now();
        let refusals = &self.cluster.instruments.write_queue;
        let mut batch: Vec<Pending> = Vec::new();
        let mut bytes = 0;
        let mut deadline: Option<Instant> = None;
        while batch.len() < self.max_batch {
            let Some(p) = q.pending.front() else { break };
            if !batch.is_empty() && bytes + p.bytes > self.max_batch_bytes {
                break;
            }
            let Some(p) = q.pending.pop_front() else {
                break;
            };
            q.writes -= p.writes;
            if p.reply.is_closed() {
                refusals.abandoned.inc();
                continue;
            }
            if p.deadline <= now {
                refusals.deadline.inc();
                let waited = now.duration_since(p.queued);
                let _ = p.reply.send(Err(ClusterError::QueueTimeout {
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                }));
                continue;
            }
            bytes += p.bytes;
            deadline = Some(deadline.map_or(p.deadline, |d| d.min(p.deadline)));
            batch.push(p);
        }
        let deadline = deadline?;
        for p in &batch {
            crate::consensus::instruments::since(
                &self.cluster.instruments.stages.batch_queue,
                p.queued,
            );
        }
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
        Some((batch, deadline))
    }

    /// Replicate `batch`, then every batch queued meanwhile, until the queue is empty. Runs on
    /// the replicator actor (or a task on the Raft runtime).
    ///
    /// On the leader, batches are proposed without waiting for the ones before them to commit
    /// — up to `max_window` unanswered, a further one only once `min_window_writes` writes
    /// wait — so one entry is appended while the one before it replicates and the one before
    /// that applies. They are sent to the Raft core from this one task, in queue order, so
    /// their entries follow each other in the log in that order; [`WriteBatcher::settle`] keeps
    /// that order when one of them fails. Elsewhere (a follower forwards its batches to the
    /// leader) and whenever this node cannot propose at once, one batch at a time.
    async fn run(self: Arc<Self>, batch: Vec<Pending>, deadline: Instant) {
        let mut window: VecDeque<InWindow> = VecDeque::new();
        let mut next = Some((batch, deadline));
        loop {
            if let Some((batch, deadline)) = next.take() {
                if let Some((batch, deadline)) = self.send(batch, deadline, &mut window).await {
                    // Not proposed here: after everything in the window, the sequential way
                    // (forwarded to the leader, retried through elections).
                    self.settle(&mut window, None).await;
                    self.replicate(batch, deadline).await;
                }
            }
            if window.is_empty() {
                let mut q = self.lock();
                q.in_flight -= 1;
                match self.next_batch(&mut q) {
                    Some(b) => next = Some(b),
                    None => return,
                }
                continue;
            }
            let room = window.len() < self.max_window;
            if room {
                let mut q = self.lock();
                if q.writes >= self.min_window_writes {
                    next = self.take_batch(&mut q);
                }
            }
            if next.is_some() {
                continue;
            }
            let Some(head) = window.front_mut() else {
                continue;
            };
            let outcome = if room {
                tokio::select! {
                    outcome = &mut head.outcome => Some(outcome),
                    () = self.more.notified() => None,
                }
            } else {
                Some((&mut head.outcome).await)
            };
            let Some(outcome) = outcome else {
                continue;
            };
            let Some(head) = window.pop_front() else {
                continue;
            };
            match outcome {
                Ok(LocalWrite::Committed(c)) if head.in_its_term(&c) => {
                    answer(replies(head.batch), Ok(c.proposed));
                }
                failed => self.settle(&mut window, Some((head, failed))).await,
            }
        }
    }

    /// Propose `batch` here, as the leader, without waiting: into `window`. Handed back when
    /// this node cannot propose it at once (not the leader, no quorum, its deadline passed).
    async fn send(
        &self,
        batch: Vec<Pending>,
        deadline: Instant,
        window: &mut VecDeque<InWindow>,
    ) -> Option<(Vec<Pending>, Instant)> {
        let cluster = &self.cluster;
        let term = match cluster.leader_in_term() {
            Some((leader, _, term)) if leader == cluster.id => term,
            _ => return Some((batch, deadline)),
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() || cluster.check_quorum().is_some() {
            return Some((batch, deadline));
        }
        let batch = refuse_other_terms(batch, Some(term));
        if batch.is_empty() {
            return None;
        }
        let in_term = batch.iter().any(|p| p.term.is_some());
        let cmd = Command::Batch(batch.iter().map(|p| p.cmd.clone()).collect());
        match cluster.send_here(cmd).await {
            Ok(sent) => {
                let cluster = cluster.clone();
                window.push_back(InWindow {
                    batch,
                    deadline,
                    term,
                    in_term,
                    outcome: Box::pin(async move { cluster.outcome_here(sent, remaining).await }),
                });
            }
            // not sent: refused as a whole (a feature the cluster version lacks), or the core
            // stopped
            Err(e) => answer(replies(batch), Err(e)),
        }
        None
    }

    /// Answer every batch of `window` (after `failed`, the first one that did not commit
    /// cleanly), in order, waiting for each. A batch the leader refused unproposed (it stopped
    /// leading before the core read it, or a new leader truncated its entry) is proposed again
    /// the sequential way, in order — unless a batch after it in the window may have been
    /// applied: proposing it again would put it after that one, so it is refused instead
    /// (not applied, [`ClusterError::LeaderChanged`]), as a failed command in a pipeline is.
    /// Forwarded writes are never proposed again (their follower retries them).
    async fn settle(
        &self,
        window: &mut VecDeque<InWindow>,
        failed: Option<(InWindow, Result<LocalWrite, ClusterError>)>,
    ) {
        let mut done: Vec<(InWindow, Result<LocalWrite, ClusterError>)> =
            failed.into_iter().collect();
        while let Some(mut w) = window.pop_front() {
            let outcome = (&mut w.outcome).await;
            done.push((w, outcome));
        }
        let again_ok = may_propose_again(
            &done
                .iter()
                .map(|(_, o)| matches!(o, Ok(LocalWrite::Moved { .. })))
                .collect::<Vec<_>>(),
        );
        let mut again = Vec::new();
        for ((w, outcome), again_ok) in done.into_iter().zip(again_ok) {
            let result = match outcome {
                Ok(LocalWrite::Committed(c)) if w.in_its_term(&c) => Ok(c.proposed),
                Ok(LocalWrite::Committed(c)) => Err(ClusterError::OutcomeUnknown {
                    reason: format!(
                        "a write for the leader of term {} was committed in term {}",
                        w.term, c.term
                    ),
                }),
                Ok(LocalWrite::Moved { .. }) if w.in_term => Err(ClusterError::OutcomeUnknown {
                    reason: format!("leadership of term {} ended while committing", w.term),
                }),
                Ok(LocalWrite::Moved { .. }) if !again_ok => {
                    Err(ClusterError::not_leader_of(w.term))
                }
                Ok(LocalWrite::Moved { .. }) => {
                    again.push(w);
                    continue;
                }
                Err(e) => Err(e),
            };
            answer(replies(w.batch), result);
        }
        for w in again {
            self.replicate(w.batch, w.deadline).await;
        }
    }

    async fn replicate(&self, mut batch: Vec<Pending>, deadline: Instant) {
        // Forwarded writes go only into an entry of the term they were addressed to; those
        // of another term are refused unproposed (their follower already proposes them
        // elsewhere).
        let mut leading_term = None;
        if batch.iter().any(|p| p.term.is_some()) {
            leading_term = self
                .cluster
                .is_leader()
                .then(|| self.cluster.raft.metrics().borrow().current_term);
            batch = refuse_other_terms(batch, leading_term);
        }
        if batch.is_empty() {
            return;
        }
        let in_term = leading_term.filter(|_| batch.iter().any(|p| p.term.is_some()));
        let (cmds, replies): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
        let proposed = match in_term {
            Some(term) => {
                self.cluster
                    .propose_in_term(Command::Batch(cmds), term, deadline)
                    .await
            }
            None => {
                self.cluster
                    .propose_until(Command::Batch(cmds), deadline)
                    .await
            }
        };
        answer(replies, proposed);
    }
}

/// For the batches of a window, in log order, whether each was refused unproposed (`true`; the
/// others may have been applied): whether each may be proposed again. Only the refused ones
/// after the last that may have been applied: proposed again, they still follow every batch
/// before them.
fn may_propose_again(refused: &[bool]) -> Vec<bool> {
    let last_maybe_applied = refused.iter().rposition(|r| !r);
    refused
        .iter()
        .enumerate()
        .map(|(i, &r)| r && last_maybe_applied.is_none_or(|l| i > l))
        .collect()
}

/// A batch proposed on this node as leader, not answered yet.
struct InWindow {
    /// Its writes (kept to answer them, and to propose them again if the leader refused them).
    batch: Vec<Pending>,
    deadline: Instant,
    /// The term this node led when it proposed the batch.
    term: u64,
    /// It carries writes forwarded to the leader of `term`: applied only in `term`.
    in_term: bool,
    outcome: Pin<Box<dyn Future<Output = Result<LocalWrite, ClusterError>> + Send>>,
}

impl InWindow {
    /// Whether `committed` answers this batch: its forwarded writes apply only in the term
    /// they were sent to.
    fn in_its_term(&self, committed: &CommittedHere) -> bool {
        !self.in_term || committed.term == self.term
    }
}

/// `batch` without its forwarded writes addressed to another term than `leading` (refused
/// unproposed: their follower proposes them elsewhere).
fn refuse_other_terms(batch: Vec<Pending>, leading: Option<u64>) -> Vec<Pending> {
    let (keep, refuse): (Vec<Pending>, Vec<Pending>) = batch
        .into_iter()
        .partition(|p| p.term.is_none() || p.term == leading);
    for p in refuse {
        if let Some(term) = p.term {
            let _ = p.reply.send(Err(ClusterError::not_leader_of(term)));
        }
    }
    keep
}

/// Answer each of a batch's writes (their `replies`, in order) with its own response from the
/// batch's `proposed`, or with the batch's error.
fn answer(replies: Vec<oneshot::Sender<Reply>>, proposed: Result<Proposed, ClusterError>) {
    let n = replies.len();
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

/// The reply channels of `batch`'s writes, in order.
fn replies(batch: Vec<Pending>) -> Vec<oneshot::Sender<Reply>> {
    batch.into_iter().map(|p| p.reply).collect()
}

/// Typed message to the [`BatchReplicator`]: replicate `batch` (proposed with `deadline`), then
/// every batch queued meanwhile, until the queue is empty.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Replicate {
    batch: Vec<Pending>,
    deadline: Instant,
}

/// The replicator of a node's [`WriteBatcher`]: a supervised actor (`batcher`) on the node's
/// [`ActorHost`]. One batch at a time; a panic while replicating is caught, counted and
/// restarts it, and the batcher goes on with the next batch.
pub struct BatchReplicator {
    batcher: Weak<WriteBatcher>,
    /// A [`Replicate`] is being handled (a batch is in flight).
    in_progress: bool,
}

impl Supervise for BatchReplicator {
    const NAME: &'static str = "batcher";

    fn restarted(&mut self) {
        if std::mem::take(&mut self.in_progress) {
            if let Some(b) = self.batcher.upgrade() {
                b.recover_in_flight();
            }
        }
    }
}

impl Handler<Replicate> for crate::consensus::actors::Handling<BatchReplicator> {
    type Result = ();

    fn handle(&mut self, msg: Replicate, ctx: &mut Self::Context) {
        let Some(batcher) = self.inner.batcher.upgrade() else {
            return;
        };
        self.inner.in_progress = true;
        let run = AssertUnwindSafe(batcher.run(msg.batch, msg.deadline)).catch_unwind();
        ctx.spawn(run.into_actor(self).map(|outcome, act, ctx| match outcome {
            Ok(()) => act.inner.in_progress = false,
            Err(panic) => act.panicked(&panic, ctx),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::may_propose_again;

    #[test]
    fn a_refused_batch_is_proposed_again_only_after_every_batch_that_may_have_applied() {
        // R: refused unproposed; A: committed, or its outcome unknown (may have applied)
        let cases: &[(&[bool], &[bool])] = &[
            (&[true], &[true]),
            (&[true, true, true], &[true, true, true]),
            (&[false], &[false]),
            // R A R R: the first would land after the applied one; the last two still follow it
            (&[true, false, true, true], &[false, false, true, true]),
            (&[true, true, false], &[false, false, false]),
            (&[false, true], &[false, true]),
            (&[], &[]),
        ];
        for (refused, want) in cases {
            assert_eq!(may_propose_again(refused), *want, "{refused:?}");
        }
    }
}

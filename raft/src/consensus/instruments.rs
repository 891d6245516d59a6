//! What the consensus runtime measures, as Prometheus collectors that are *not* registered
//! here: the HTTP layer (`sessionraft-web`'s `Metrics`) registers them in its registry and
//! renders `/metrics`. Recording is a few atomic adds (label handles resolved once).

use std::sync::OnceLock;

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};

/// Monotonic operation counters of one node.
#[derive(Default, Debug)]
pub struct OpCounters {
    pub writes: std::sync::atomic::AtomicU64,
    pub reads: std::sync::atomic::AtomicU64,
    pub batches: std::sync::atomic::AtomicU64,
    pub batched_writes: std::sync::atomic::AtomicU64,
}

impl OpCounters {
    /// A snapshot of the counters.
    pub fn snapshot(&self) -> OpCountersSnapshot {
        use std::sync::atomic::Ordering::Relaxed;
        OpCountersSnapshot {
            writes: self.writes.load(Relaxed),
            reads: self.reads.load(Relaxed),
            batches: self.batches.load(Relaxed),
            batched_writes: self.batched_writes.load(Relaxed),
        }
    }
}

/// The counters as reported in `/cluster/status`.
#[derive(Default, Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct OpCountersSnapshot {
    pub writes: u64,
    pub reads: u64,
    pub batches: u64,
    pub batched_writes: u64,
}

/// How long the steps of a session write and read take on this node
/// (`sessionraft_stage_seconds{stage}`): where a request's latency goes, step by step. Created
/// before the Raft network and the cluster handle (which record into it) and registered with
/// the node's `Metrics` (in `sessionraft-web`). Each stage is recorded on the node where it runs:
///
/// | stage | where | from → to |
/// |---|---|---|
/// | `batch_queue` | every node | a write queued in the batcher → its batch leaves (a batch was in flight) |
/// | `commit` | leader | a batch's `client_write` → committed on a quorum and applied here |
/// | `forward` | follower | a batch sent to the leader's `/raft/write` → its answer (the leader's queue and commit) |
/// | `append_rpc` | leader | an AppendEntries carrying entries sent to a follower → its answer |
/// | `append_follower` | follower | an AppendEntries carrying entries handed to Raft → answered (log append and fsync) |
/// | `read_index_rpc` | follower | a read-index call to the leader → its answer |
/// | `read_barrier` | every node | a session load's read barrier, whole (its round, then the wait to apply) |
pub struct Stages {
    vec: HistogramVec,
    pub batch_queue: Histogram,
    pub commit: Histogram,
    pub forward: Histogram,
    pub append_rpc: Histogram,
    pub append_follower: Histogram,
    pub read_index_rpc: Histogram,
    pub read_barrier: Histogram,
}

impl Stages {
    /// Every stage's histogram, its label resolved once (an observation is then a few atomic
    /// adds, no lookup).
    pub fn new() -> Self {
        let vec = must(HistogramVec::new(
            HistogramOpts::new(
                "stage_seconds",
                "Time in each step of a session write or read (see the stage label)",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01,
                0.02, 0.05, 0.1, 0.5, 2.5,
            ]),
            &["stage"],
        ));
        let stage = |name: &str| vec.with_label_values(&[name]);
        Self {
            batch_queue: stage("batch_queue"),
            commit: stage("commit"),
            forward: stage("forward"),
            append_rpc: stage("append_rpc"),
            append_follower: stage("append_follower"),
            read_index_rpc: stage("read_index_rpc"),
            read_barrier: stage("read_barrier"),
            vec,
        }
    }
}

impl Default for Stages {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stages")
    }
}

/// Record the time since `started` in `h`.
pub fn since(h: &Histogram, started: std::time::Instant) {
    h.observe(started.elapsed().as_secs_f64());
}

/// Every collector of the runtime, shared (`Arc`) by the cluster handle, the network, the
/// batcher, the touch coalescer and the session store.
#[derive(Debug)]
pub struct Instruments {
    /// The steps of a write and a read, timed.
    pub stages: Stages,
    /// Session store operations by `op` (load, save, update, update_ttl, delete, touch_flush)
    /// and `outcome`.
    pub session_ops: IntCounterVec,
    /// Session store operation latency by `op`.
    pub session_op_seconds: HistogramVec,
    /// Commands per replicated batch entry.
    pub write_batch_size: Histogram,
    /// Session writes and reads served by this node, and write batches it proposed with the
    /// writes they carried (for the dashboard's rates).
    pub counters: OpCounters,
    /// Restarts of each actor after a panic (`sessionraft_actor_restarts_total{actor}`).
    pub actor_restarts: IntCounterVec,
    actor_names: std::sync::Mutex<Vec<&'static str>>,
    /// Writes the batcher did not propose (`sessionraft_write_queue_refused_total{reason}`).
    pub write_queue: WriteQueueRefusals,
    /// The label handles of `session_ops` and `session_op_seconds` for the operations the store
    /// records, resolved on first use (so a series shows in `/metrics` once it happened, as
    /// with a lookup, which costs a hash and a lock per call on every request).
    resolved_ops: [OnceLock<IntCounter>; KNOWN_OPS.len()],
    resolved_op_seconds: [OnceLock<Histogram>; KNOWN_OP_NAMES.len()],
}

/// The `(op, outcome)` pairs the session store and the touch flusher record.
const KNOWN_OPS: [(&str, &str); 16] = [
    ("load", "hit"),
    ("load", "miss"),
    ("load", "unavailable"),
    ("load", "error"),
    ("update_ttl", "queued"),
    ("update", "ok"),
    ("update", "unavailable"),
    ("update", "recreated"),
    ("update", "conflict"),
    ("save", "ok"),
    ("save", "error"),
    ("delete", "ok"),
    ("delete", "unavailable"),
    ("touch_flush", "ok"),
    ("touch_flush", "unavailable"),
    ("touch_flush", "error"),
];

/// The ops of [`KNOWN_OPS`].
const KNOWN_OP_NAMES: [&str; 6] = [
    "load",
    "update_ttl",
    "update",
    "save",
    "delete",
    "touch_flush",
];

/// Writes the batcher refused or dropped without proposing them, by reason (label handles
/// resolved once).
#[derive(Debug)]
pub struct WriteQueueRefusals {
    vec: IntCounterVec,
    /// The queue held `max_queued_writes` already: refused at once (503 / `-TRYAGAIN`).
    pub full: IntCounter,
    /// Still queued when its request deadline passed: refused unproposed.
    pub deadline: IntCounter,
    /// Its caller stopped waiting (the client went away) before it left the queue: dropped.
    pub abandoned: IntCounter,
}

impl WriteQueueRefusals {
    fn new() -> Self {
        let vec = must(IntCounterVec::new(
            Opts::new(
                "write_queue_refused_total",
                "Writes the batcher did not propose: queue full, deadline passed in the queue, or abandoned by their caller",
            ),
            &["reason"],
        ));
        Self {
            full: vec.with_label_values(&["full"]),
            deadline: vec.with_label_values(&["deadline"]),
            abandoned: vec.with_label_values(&["abandoned"]),
            vec,
        }
    }
}

impl Instruments {
    /// Every collector, created (not registered).
    pub fn new() -> Self {
        Self {
            stages: Stages::new(),
            session_ops: must(IntCounterVec::new(
                Opts::new("session_ops_total", "Session store operations"),
                &["op", "outcome"],
            )),
            session_op_seconds: must(HistogramVec::new(
                HistogramOpts::new("session_op_seconds", "Session store operation latency")
                    .buckets(vec![
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ]),
                &["op"],
            )),
            write_batch_size: must(Histogram::with_opts(
                HistogramOpts::new(
                    "write_batch_size",
                    "Session writes per replicated log entry",
                )
                .buckets(vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                ]),
            )),
            counters: OpCounters::default(),
            actor_restarts: must(IntCounterVec::new(
                Opts::new(
                    "actor_restarts_total",
                    "Restarts of a node's actor after a panic (see the actor label)",
                ),
                &["actor"],
            )),
            actor_names: std::sync::Mutex::new(Vec::new()),
            write_queue: WriteQueueRefusals::new(),
            resolved_ops: std::array::from_fn(|_| OnceLock::new()),
            resolved_op_seconds: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// One restart of the actor `name` after a panic.
    pub fn actor_restarted(&self, name: &str) {
        self.actor_restarts.with_label_values(&[name]).inc();
    }

    /// How often the actor `name` was restarted.
    pub fn actor_restarts(&self, name: &str) -> u64 {
        self.actor_restarts.with_label_values(&[name]).get()
    }

    /// An actor started: its restarts show (as 0) from now on, here and in `/metrics`.
    pub fn actor_started(&self, name: &'static str) {
        let _ = self.actor_restarts.with_label_values(&[name]);
        let mut names = self.actor_names.lock().unwrap_or_else(|e| e.into_inner());
        if !names.contains(&name) {
            names.push(name);
        }
    }

    /// Every actor started and its restarts, in the order they started.
    pub fn actor_restart_counts(&self) -> Vec<(String, u64)> {
        let names = self.actor_names.lock().unwrap_or_else(|e| e.into_inner());
        names
            .iter()
            .map(|n| ((*n).to_owned(), self.actor_restarts(n)))
            .collect()
    }

    /// The collectors to register (once) in a registry.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.session_ops.clone()),
            Box::new(self.session_op_seconds.clone()),
            Box::new(self.write_batch_size.clone()),
            Box::new(self.stages.vec.clone()),
            Box::new(self.actor_restarts.clone()),
            Box::new(self.write_queue.vec.clone()),
        ]
    }

    /// Record one store operation.
    pub fn observe(&self, op: &str, outcome: &str, started: std::time::Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        match op {
            "load" => {
                self.counters.reads.fetch_add(1, Relaxed);
            }
            "save" | "update" | "delete" => {
                self.counters.writes.fetch_add(1, Relaxed);
            }
            _ => {}
        }
        let elapsed = started.elapsed().as_secs_f64();
        match KNOWN_OPS.iter().position(|k| *k == (op, outcome)) {
            Some(i) => self.resolved_ops[i]
                .get_or_init(|| self.session_ops.with_label_values(&[op, outcome]))
                .inc(),
            None => self.session_ops.with_label_values(&[op, outcome]).inc(),
        }
        match KNOWN_OP_NAMES.iter().position(|k| *k == op) {
            Some(i) => self.resolved_op_seconds[i]
                .get_or_init(|| self.session_op_seconds.with_label_values(&[op]))
                .observe(elapsed),
            None => self
                .session_op_seconds
                .with_label_values(&[op])
                .observe(elapsed),
        }
    }
}

impl Default for Instruments {
    fn default() -> Self {
        Self::new()
    }
}

fn must<T>(r: prometheus::Result<T>) -> T {
    match r {
        Ok(v) => v,
        // Only reachable with a malformed metric definition in this file.
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observe_counts_in_the_labelled_series_only_once_used() {
        use prometheus::core::Collector;
        let ins = Instruments::new();
        let series = |ins: &Instruments| ins.session_ops.collect()[0].get_metric().len();
        assert_eq!(series(&ins), 0, "no series before an operation");
        let t = std::time::Instant::now();
        ins.observe("load", "hit", t);
        ins.observe("load", "hit", t);
        ins.observe("load", "miss", t);
        ins.observe("other_op", "odd", t);
        assert_eq!(series(&ins), 3);
        assert_eq!(ins.session_ops.with_label_values(&["load", "hit"]).get(), 2);
        assert_eq!(
            ins.session_ops.with_label_values(&["load", "miss"]).get(),
            1
        );
        assert_eq!(
            ins.session_ops
                .with_label_values(&["other_op", "odd"])
                .get(),
            1
        );
        let h = |op: &str| {
            ins.session_op_seconds
                .with_label_values(&[op])
                .get_sample_count()
        };
        assert_eq!((h("load"), h("other_op")), (3, 1));
        assert_eq!(ins.counters.snapshot().reads, 3);
        // every known pair names a known op
        for (op, _) in KNOWN_OPS {
            assert!(KNOWN_OP_NAMES.contains(&op), "{op}");
        }
    }
}

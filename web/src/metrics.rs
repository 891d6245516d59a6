//! Prometheus metrics of a node: session operations, latencies, write batch sizes, and Raft
//! figures read from openraft's metrics at scrape time. Secrets never appear here.

use std::sync::atomic::Ordering;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::cluster::Cluster;

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
/// the node's [`Metrics`]. Each stage is recorded on the node where it runs:
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

/// The metrics of one node.
pub struct Metrics {
    registry: Registry,
    /// Session store operations by `op` (load, save, update, update_ttl, delete) and `outcome`.
    pub session_ops: IntCounterVec,
    /// Session store operation latency by `op`.
    pub session_op_seconds: HistogramVec,
    /// Commands per replicated batch entry.
    pub write_batch_size: Histogram,
    /// Requests carrying an id the store never issued (or that expired).
    pub unknown_session_ids: IntCounterVec,
    /// Session cookies under an older key of the ring, re-issued under the newest.
    pub cookies_reissued: prometheus::IntCounter,
    /// Session writes (save, update, delete) and reads (load) served by this node, and write
    /// batches proposed by this node with the writes they carried (for the dashboard's rates).
    pub counters: OpCounters,
    term: IntGauge,
    leader: IntGauge,
    is_leader: IntGauge,
    last_log_index: IntGauge,
    applied_index: IntGauge,
    sessions: IntGauge,
    replication_lag: IntGaugeVec,
    read_index: IntCounterVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    match r {
        Ok(v) => v,
        // Only reachable with a malformed metric definition in this file.
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

impl Metrics {
    /// Create and register every metric, and `stages` (recorded by the cluster and network).
    pub fn new(node_id: u64, stages: &Stages) -> Self {
        let registry = must(Registry::new_custom(
            Some("sessionraft".into()),
            Some(
                [("node".to_string(), node_id.to_string())]
                    .into_iter()
                    .collect(),
            ),
        ));
        let session_ops = must(IntCounterVec::new(
            Opts::new("session_ops_total", "Session store operations"),
            &["op", "outcome"],
        ));
        let session_op_seconds = must(HistogramVec::new(
            HistogramOpts::new("session_op_seconds", "Session store operation latency").buckets(
                vec![
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
            &["op"],
        ));
        let write_batch_size = must(Histogram::with_opts(
            HistogramOpts::new(
                "write_batch_size",
                "Session writes per replicated log entry",
            )
            .buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ]),
        ));
        let unknown_session_ids = must(IntCounterVec::new(
            Opts::new(
                "unknown_session_ids_total",
                "Cookies naming no live session",
            ),
            &["reason"],
        ));
        let gauge = |name: &str, help: &str| must(IntGauge::new(name, help));
        let m = Self {
            counters: OpCounters::default(),
            term: gauge("raft_term", "Current Raft term"),
            leader: gauge("raft_leader", "Id of the known leader, 0 when none"),
            is_leader: gauge("raft_is_leader", "1 on the leader"),
            last_log_index: gauge("raft_last_log_index", "Last log index on this node"),
            applied_index: gauge("raft_applied_index", "Last applied log index on this node"),
            sessions: gauge("sessions_estimated", "Estimated stored sessions"),
            replication_lag: must(IntGaugeVec::new(
                Opts::new(
                    "raft_replication_lag",
                    "Entries a follower is behind (leader only)",
                ),
                &["follower"],
            )),
            read_index: must(IntCounterVec::new(
                Opts::new(
                    "read_index_total",
                    "Read indexes answered as leader: under the lease, or with a heartbeat round",
                ),
                &["how"],
            )),
            registry,
            session_ops,
            session_op_seconds,
            write_batch_size,
            unknown_session_ids,
            cookies_reissued: must(prometheus::IntCounter::new(
                "session_cookies_reissued_total",
                "Session cookies under an older key of the ring, re-issued under the newest",
            )),
        };
        let r = &m.registry;
        for c in [
            Box::new(m.session_ops.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.session_op_seconds.clone()),
            Box::new(m.write_batch_size.clone()),
            Box::new(m.unknown_session_ids.clone()),
            Box::new(m.cookies_reissued.clone()),
            Box::new(m.term.clone()),
            Box::new(m.leader.clone()),
            Box::new(m.is_leader.clone()),
            Box::new(m.last_log_index.clone()),
            Box::new(m.applied_index.clone()),
            Box::new(m.sessions.clone()),
            Box::new(m.replication_lag.clone()),
            Box::new(m.read_index.clone()),
            Box::new(stages.vec.clone()),
        ] {
            must(r.register(c));
        }
        m
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
        self.session_ops.with_label_values(&[op, outcome]).inc();
        self.session_op_seconds
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Render the Prometheus text format, refreshing the Raft figures first.
    pub fn render(&self, cluster: &Cluster) -> String {
        let m = cluster.raft.metrics().borrow().clone();
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.term.set(as_i64(m.current_term));
        self.leader.set(as_i64(m.current_leader.unwrap_or(0)));
        self.is_leader
            .set(i64::from(m.current_leader == Some(cluster.id)));
        self.last_log_index
            .set(as_i64(m.last_log_index.unwrap_or(0)));
        self.applied_index
            .set(as_i64(m.last_applied.map_or(0, |l| l.index)));
        self.sessions.set(as_i64(cluster.sm.estimated_sessions()));
        self.replication_lag.reset();
        if let Some(repl) = &m.replication {
            let last = m.last_log_index.unwrap_or(0);
            for (id, matched) in repl {
                if *id == cluster.id {
                    continue;
                }
                let lag = last.saturating_sub(matched.map_or(0, |l| l.index));
                self.replication_lag
                    .with_label_values(&[&id.to_string()])
                    .set(as_i64(lag));
            }
        }
        for (how, total) in [
            ("lease", &cluster.read_index_by_lease),
            ("round", &cluster.read_index_by_round),
        ] {
            let c = self.read_index.with_label_values(&[how]);
            c.inc_by(total.load(Ordering::Relaxed).saturating_sub(c.get()));
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            return format!("# metrics encoding failed: {e}\n");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

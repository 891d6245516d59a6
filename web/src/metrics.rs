//! Prometheus metrics of a node: session operations, latencies, write batch sizes, and Raft
//! figures read from openraft's metrics at scrape time. Secrets never appear here.

use std::sync::atomic::Ordering;

use std::sync::Arc;

use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use sessionraft_raft::consensus::cluster::Cluster;
use sessionraft_raft::consensus::instruments::Instruments;

/// The metrics of one node.
pub struct Metrics {
    registry: Registry,
    /// What the consensus runtime and the store record (registered here).
    pub instruments: Arc<Instruments>,
    /// Requests carrying an id the store never issued (or that expired).
    pub unknown_session_ids: IntCounterVec,
    /// Session cookies under an older key of the ring, re-issued under the newest.
    pub cookies_reissued: prometheus::IntCounter,
    /// Session requests refused at once, by reason (`in-flight`: the node's
    /// `max_requests_in_flight` was reached).
    pub http_requests_refused: IntCounterVec,
    /// Session requests this node works on now: [`crate::admission::Admission`]'s count,
    /// shown at scrape time as `http_requests_in_flight`.
    pub requests_in_flight: Arc<std::sync::atomic::AtomicUsize>,
    http_requests_in_flight: IntGauge,
    /// The cluster version applied here, as a label (the value is always 1).
    cluster_version: IntGaugeVec,
    term: IntGauge,
    leader: IntGauge,
    is_leader: IntGauge,
    last_log_index: IntGauge,
    applied_index: IntGauge,
    sessions: IntGauge,
    /// Exact counts kept by the state machine (`sessions_stored`, `kv_keys_stored`).
    sessions_stored: IntGauge,
    kv_keys_stored: IntGauge,
    replication_lag: IntGaugeVec,
    read_index: IntCounterVec,
    kv_keys: IntGauge,
    /// Redis-protocol commands served, by command and outcome (`ok`, `error`, `unavailable`).
    pub resp_commands: IntCounterVec,
    /// Open Redis-protocol connections.
    pub resp_connections: IntGauge,
    /// Redis-protocol commands served since start, all commands and outcomes (the dashboard's
    /// ops/s; `resp_commands` has them by label).
    pub resp_ops: std::sync::atomic::AtomicU64,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    match r {
        Ok(v) => v,
        // Only reachable with a malformed metric definition in this file.
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

impl Metrics {
    /// Create and register every metric, and the runtime's `instruments`.
    pub fn new(node_id: u64, instruments: Arc<Instruments>) -> Self {
        let registry = must(Registry::new_custom(
            Some("sessionraft".into()),
            Some(
                [("node".to_string(), node_id.to_string())]
                    .into_iter()
                    .collect(),
            ),
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
            term: gauge("raft_term", "Current Raft term"),
            leader: gauge("raft_leader", "Id of the known leader, 0 when none"),
            is_leader: gauge("raft_is_leader", "1 on the leader"),
            last_log_index: gauge("raft_last_log_index", "Last log index on this node"),
            applied_index: gauge("raft_applied_index", "Last applied log index on this node"),
            sessions: gauge("sessions_estimated", "Estimated stored sessions"),
            sessions_stored: gauge(
                "sessions_stored",
                "Stored sessions (live, or expired and not purged yet), exact",
            ),
            kv_keys_stored: gauge(
                "kv_keys_stored",
                "Stored keys of the Redis-protocol keyspace (as DBSIZE counts them), exact",
            ),
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
                    "Session loads made safe to read: read indexes answered as leader under the lease or with a heartbeat round, and token reads served from this follower's own replica (local)",
                ),
                &["how"],
            )),
            kv_keys: gauge(
                "kv_keys_estimated",
                "Estimated stored keys of the Redis-protocol keyspace",
            ),
            resp_commands: must(IntCounterVec::new(
                Opts::new(
                    "resp_commands_total",
                    "Redis-protocol commands served, by command and outcome",
                ),
                &["command", "outcome"],
            )),
            resp_connections: gauge("resp_connections", "Open Redis-protocol connections"),
            resp_ops: std::sync::atomic::AtomicU64::new(0),
            registry,
            instruments,
            unknown_session_ids,
            http_requests_refused: must(IntCounterVec::new(
                Opts::new(
                    "http_requests_refused_total",
                    "Session requests answered 503 not-applied at once, before any work, by reason",
                ),
                &["reason"],
            )),
            requests_in_flight: Arc::default(),
            http_requests_in_flight: gauge(
                "http_requests_in_flight",
                "Session requests this node works on now (at most [runtime] max_requests_in_flight)",
            ),
            cookies_reissued: must(prometheus::IntCounter::new(
                "session_cookies_reissued_total",
                "Session cookies under an older key of the ring, re-issued under the newest",
            )),
            cluster_version: must(IntGaugeVec::new(
                Opts::new(
                    "cluster_version_info",
                    "The cluster version applied on this node: the release line of the oldest member once recorded (the value is always 1)",
                ),
                &["cluster_version"],
            )),
        };
        let r = &m.registry;
        // The release this node runs, as Prometheus' build-info convention has it (always 1).
        let build_info = must(IntGaugeVec::new(
            Opts::new(
                "build_info",
                "The release this node runs (the value is always 1)",
            ),
            &["version", "storage_format"],
        ));
        build_info
            .with_label_values(&[
                sessionraft_raft::version::RELEASE,
                &sessionraft_raft::storage::format::STORAGE_FORMAT.to_string(),
            ])
            .set(1);
        let own: [Box<dyn prometheus::core::Collector>; 19] = [
            Box::new(build_info),
            Box::new(m.http_requests_in_flight.clone()),
            Box::new(m.http_requests_refused.clone()),
            Box::new(m.cluster_version.clone()),
            Box::new(m.kv_keys.clone()),
            Box::new(m.sessions_stored.clone()),
            Box::new(m.kv_keys_stored.clone()),
            Box::new(m.resp_commands.clone()),
            Box::new(m.resp_connections.clone()),
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
        ];
        for c in own.into_iter().chain(m.instruments.collectors()) {
            must(r.register(c));
        }
        m
    }

    /// Record one store operation.
    pub fn observe(&self, op: &str, outcome: &str, started: std::time::Instant) {
        self.instruments.observe(op, outcome, started);
    }

    /// Render the Prometheus text format, refreshing the Raft figures first.
    pub fn render(&self, cluster: &Cluster) -> String {
        let m = cluster.raft.metrics().borrow().clone();
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.http_requests_in_flight.set(
            i64::try_from(self.requests_in_flight.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        );
        self.term.set(as_i64(m.current_term));
        self.leader.set(as_i64(m.current_leader.unwrap_or(0)));
        self.is_leader
            .set(i64::from(m.current_leader == Some(cluster.id)));
        self.last_log_index
            .set(as_i64(m.last_log_index.unwrap_or(0)));
        self.applied_index
            .set(as_i64(m.last_applied.map_or(0, |l| l.index)));
        self.sessions.set(as_i64(cluster.sm.estimated_sessions()));
        self.kv_keys.set(as_i64(cluster.sm.estimated_kv_keys()));
        self.sessions_stored
            .set(as_i64(cluster.sm.sessions_stored()));
        self.kv_keys_stored.set(as_i64(cluster.sm.kv_keys()));
        self.cluster_version.reset();
        self.cluster_version
            .with_label_values(&[&cluster.sm.cluster_version().get().to_string()])
            .set(1);
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
            ("local", &cluster.read_local),
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

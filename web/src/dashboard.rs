//! The live cluster view behind `/cluster`: the `ClusterWatcher` task (on the Raft runtime) polls this node's Raft
//! metrics and every member's `/cluster/status` twice a second, derives roles, lag, health and
//! cluster-wide rates, and pushes the view to every `/cluster/events` subscriber (Server-Sent
//! Events). A member that does not answer is shown `unreachable` at the next poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::handlers::{node_status, NodeStatus};
use crate::metrics::Metrics;
use sessionraft_raft::clock::now_ms;
use sessionraft_raft::consensus::cluster::Cluster;
use sessionraft_raft::consensus::instruments::OpCountersSnapshot;

/// How often the view is refreshed.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// One node as the dashboard shows it.
#[derive(Serialize, Clone, Debug)]
pub struct NodeView {
    pub id: u64,
    pub addr: String,
    pub url: String,
    pub role: String,
    pub term: Option<u64>,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// Entries behind the leader's last log index.
    pub lag: Option<u64>,
    pub healthy: bool,
    /// How it serves session loads: `session · local` (a fresh follower, token reads from
    /// its own replica), `session · read index` (not fresh: it asks the leader),
    /// `session · lease` (the leader), or `linearizable`; empty when unreachable.
    pub reads: String,
    /// Why its address (a DNS name) does not resolve from the observer, when it does not.
    pub unresolved: Option<String>,
    /// The release it runs (`/cluster/status` `version`); empty when unreachable or older.
    pub version: String,
    /// Its actors and their restarts after a panic (`/cluster/status` `actors`); empty when
    /// unreachable.
    pub actors: Vec<crate::handlers::ActorStatus>,
}

/// The cluster as seen from one node.
#[derive(Serialize, Clone, Debug)]
pub struct ClusterView {
    pub ts_ms: u64,
    pub observer: u64,
    pub leader: Option<u64>,
    pub term: u64,
    pub nodes: Vec<NodeView>,
    pub sessions: u64,
    /// Keys of the Redis-protocol keyspace.
    pub keys: u64,
    /// Redis-protocol commands per second, over every node's door.
    pub resp_ops_per_sec: f64,
    pub writes_per_sec: f64,
    pub reads_per_sec: f64,
    /// Of `reads_per_sec`, the token reads served from a follower's own replica.
    pub local_reads_per_sec: f64,
    pub avg_batch_size: f64,
    /// The cluster version applied on the observing node (`MAJOR.MINOR`).
    pub cluster_version: String,
}

/// Where SSE subscribers get the view.
#[derive(Clone)]
pub struct DashboardFeed {
    tx: broadcast::Sender<Arc<str>>,
    latest: Arc<Mutex<Option<Arc<str>>>>,
}

impl Default for DashboardFeed {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(16);
        Self {
            tx,
            latest: Arc::new(Mutex::new(None)),
        }
    }
}

impl DashboardFeed {
    fn publish(&self, json: Arc<str>) {
        if let Ok(mut l) = self.latest.lock() {
            *l = Some(json.clone());
        }
        // No subscribers is fine.
        let _ = self.tx.send(json);
    }
}

/// The watcher: builds the view every 500 ms (`POLL_EVERY`) and publishes it to the feed. An
/// actor on the node's [`ActorHost`](sessionraft_raft::consensus::actors::ActorHost) (`dashboard`):
/// a poll waits for the previous one, so a slow peer delays the view, never piles polls up.
pub struct ClusterWatcher {
    cluster: Arc<Cluster>,
    metrics: Arc<Metrics>,
    feed: DashboardFeed,
    last_counters: HashMap<u64, Counters>,
}

/// A node's counters at the previous poll: when, its operation counters, its local reads and
/// its Redis-protocol commands.
type Counters = (Instant, OpCountersSnapshot, u64, u64);

impl ClusterWatcher {
    /// A watcher publishing to `feed`.
    pub fn new(cluster: Arc<Cluster>, metrics: Arc<Metrics>, feed: DashboardFeed) -> Self {
        Self {
            cluster,
            metrics,
            feed,
            last_counters: HashMap::new(),
        }
    }

    async fn poll(&mut self) {
        let local = node_status(&self.cluster, &self.metrics);
        let peers: Vec<(u64, String)> = local
            .members
            .iter()
            .filter(|m| m.id != self.cluster.id)
            .map(|m| (m.id, m.addr.clone()))
            .collect();
        let calls = peers.into_iter().map(|(id, addr)| {
            let c = self.cluster.clone();
            async move {
                let s = c
                    .peers
                    .get_json::<NodeStatus>(&addr, "/cluster/status")
                    .await
                    .ok();
                (id, addr, s)
            }
        });
        let polled = futures_util::future::join_all(calls).await;
        let view = self.view(local, polled);
        match serde_json::to_string(&view) {
            Ok(json) => self.feed.publish(json.into()),
            Err(e) => tracing::warn!(error = %e, "cannot encode the cluster view"),
        }
    }

    fn view(
        &mut self,
        local: NodeStatus,
        polled: Vec<(u64, String, Option<NodeStatus>)>,
    ) -> ClusterView {
        let now = Instant::now();
        let mut statuses: Vec<(u64, String, Option<NodeStatus>)> = polled;
        let self_addr = local
            .members
            .iter()
            .find(|m| m.id == local.id)
            .map(|m| m.addr.clone())
            .unwrap_or_default();
        let leader = local.leader;
        let term = local.term;
        let sessions = local.sessions.unwrap_or(local.sessions_estimated);
        let keys = local.kv_keys.unwrap_or(local.kv_keys_estimated);
        statuses.push((local.id, self_addr, Some(local)));
        statuses.sort_by_key(|(id, _, _)| *id);
        let leader_last = statuses
            .iter()
            .find(|(id, _, _)| Some(*id) == leader)
            .and_then(|(_, _, s)| s.as_ref())
            .and_then(|s| s.last_log_index);

        let (mut writes, mut reads, mut local, mut resp, mut batches, mut batched) =
            (0.0, 0.0, 0.0, 0.0, 0u64, 0u64);
        let unresolved = self.cluster.peer_names.unresolved();
        let resolve_error = |id: u64| {
            unresolved
                .iter()
                .find(|u| u.id == id)
                .map(|u| u.error.clone())
        };
        let nodes = statuses
            .into_iter()
            .map(|(id, addr, s)| match s {
                Some(s) => {
                    if let Some((then, prev, prev_local, prev_resp)) = self.last_counters.get(&id) {
                        let dt = now.duration_since(*then).as_secs_f64().max(0.001);
                        let c = s.ops;
                        // a restarted node starts its counters from zero: skip that interval
                        if c.writes >= prev.writes
                            && c.reads >= prev.reads
                            && c.batches >= prev.batches
                            && s.reads.local >= *prev_local
                            && s.resp_ops >= *prev_resp
                        {
                            writes += (c.writes - prev.writes) as f64 / dt;
                            reads += (c.reads - prev.reads) as f64 / dt;
                            local += (s.reads.local - prev_local) as f64 / dt;
                            resp += (s.resp_ops - prev_resp) as f64 / dt;
                            batches += c.batches - prev.batches;
                            batched += c.batched_writes - prev.batched_writes;
                        }
                    }
                    self.last_counters
                        .insert(id, (now, s.ops, s.reads.local, s.resp_ops));
                    let lag = leader_last.map(|l| l.saturating_sub(s.last_log_index.unwrap_or(0)));
                    NodeView {
                        id,
                        url: format!("{}://{addr}", self.cluster.peers.scheme()),
                        addr,
                        role: s.role.clone(),
                        term: Some(s.term),
                        last_log_index: s.last_log_index,
                        applied_index: s.applied_index,
                        lag,
                        healthy: s.leader.is_some() && s.role != "shutdown",
                        reads: if s.reads.consistency == "linearizable" {
                            "linearizable".into()
                        } else if s.role == "leader" {
                            "session · lease".into()
                        } else if s.reads.fresh {
                            "session · local".into()
                        } else {
                            "session · read index".into()
                        },
                        unresolved: resolve_error(id),
                        version: s.version.clone(),
                        actors: s.actors.clone(),
                    }
                }
                None => {
                    self.last_counters.remove(&id);
                    NodeView {
                        id,
                        url: format!("{}://{addr}", self.cluster.peers.scheme()),
                        addr,
                        role: if resolve_error(id).is_some() {
                            "unresolved".into()
                        } else {
                            "unreachable".into()
                        },
                        term: None,
                        last_log_index: None,
                        applied_index: None,
                        lag: None,
                        healthy: false,
                        reads: String::new(),
                        unresolved: resolve_error(id),
                        version: String::new(),
                        actors: Vec::new(),
                    }
                }
            })
            .collect();
        ClusterView {
            ts_ms: now_ms(),
            observer: self.cluster.id,
            leader,
            term,
            nodes,
            sessions,
            keys,
            resp_ops_per_sec: (resp * 10.0).round() / 10.0,
            writes_per_sec: (writes * 10.0).round() / 10.0,
            reads_per_sec: (reads * 10.0).round() / 10.0,
            local_reads_per_sec: (local * 10.0).round() / 10.0,
            cluster_version: self.cluster.sm.cluster_version().get().to_string(),
            avg_batch_size: if batches > 0 {
                ((batched as f64 / batches as f64) * 10.0).round() / 10.0
            } else {
                0.0
            },
        }
    }
}

/// `GET /cluster/events`: the view as Server-Sent Events, the latest one first.
pub async fn events(feed: web::Data<DashboardFeed>) -> HttpResponse {
    let rx = feed.tx.subscribe();
    let first = feed.latest.lock().ok().and_then(|l| l.clone());
    let frame = |json: &str| Ok::<_, actix_web::Error>(Bytes::from(format!("data: {json}\n\n")));
    let initial = futures_util::stream::iter(first.map(|j| frame(&j)));
    let updates = futures_util::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(json) => return Some((frame(&json), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures_util::StreamExt;
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(initial.chain(updates))
}

impl sessionraft_raft::consensus::actors::Step for ClusterWatcher {
    const NAME: &'static str = "dashboard";

    fn pause(&self) -> std::time::Duration {
        POLL_EVERY
    }

    fn step(mut self) -> sessionraft_raft::consensus::actors::StepFuture<Self> {
        Box::pin(async move {
            self.poll().await;
            Some(self)
        })
    }
}

//! [`ConsensusNode`]: the consensus side of one node — storage, openraft on a runtime of its
//! own, the peer client, and the background tasks (read barriers, elections with pre-vote, the write
//! batcher, touch coalescing, the purger, bootstrap). The HTTP layer mounts its inbound
//! transport ([`ConsensusNode::inbound`]) and proposes through its [`Cluster`] and
//! [`WriteBatcher`].
//!
//! Lifecycle: [`ConsensusNode::start`] (from any thread, inside an async runtime or not) →
//! serve → stop HTTP → [`ConsensusNode::shutdown`] (Raft, then storage).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;

use crate::consensus::actors::ActorHost;
use crate::consensus::batcher::WriteBatcher;
use crate::consensus::cluster::{Cluster, Deadlines};
use crate::consensus::cluster_version::VersionDriver;
use crate::consensus::failover::ElectionWatcher;
use crate::consensus::freshness::SessionReads;
use crate::consensus::instruments::Instruments;
use crate::consensus::lease::LeaseClock;
use crate::consensus::peer_names::NameChecker;
use crate::consensus::purger::Purger;
use crate::consensus::touch::PendingTouches;
use crate::consensus::touch::TouchFlusher;
use crate::transport::auth::PeerAuth;
use crate::transport::inbound::Inbound;
use crate::transport::network::{Network, PeerClient, Records};
use crate::{NodeId, Raft, StorageOptions};

/// Everything the consensus side of a node needs, already validated by the caller.
#[derive(Clone, Debug)]
pub struct ConsensusOptions {
    pub id: NodeId,
    pub data_dir: PathBuf,
    /// Address (host:port) peers use to reach this node's Raft listener.
    pub advertise_addr: String,
    /// The source IP of outgoing peer connections, when they should leave from one (the node's
    /// own Raft IP when it binds that IP itself: firewall rules between nodes on 127.0.0.11 and
    /// 127.0.0.12 can then match both ends); `None`: the kernel picks.
    pub source_ip: Option<std::net::IpAddr>,
    /// The initial membership (from `cluster.toml`). A node in it initializes the cluster on its
    /// first start when no peer already has; a node outside it (added later) never does.
    pub initial_members: BTreeMap<NodeId, String>,
    /// The cluster secret (peer MACs). Never logged.
    pub secret: Vec<u8>,
    pub raft: openraft::Config,
    /// Answer read indexes under the leader lease when it holds (lease.rs), instead of a
    /// heartbeat round each.
    pub lease_reads: bool,
    pub deadlines: Deadlines,
    /// The most writes the batcher queues (`[raft] max_queued_writes`); one more is refused at
    /// once, [`crate::consensus::cluster::ClusterError::Overloaded`].
    pub max_queued_writes: usize,
    pub storage: StorageOptions,
    /// Worker threads of the Raft runtime (at least 1).
    pub raft_threads: usize,
    /// The PEM of the CA that signs every node's certificate: peers are called over `https://`
    /// and trusted only with a certificate of that CA. `None`: plain HTTP.
    pub tls_ca: Option<Vec<u8>>,
    /// How session loads are served (`[raft] read_consistency`, `max_staleness_ms`).
    pub reads: SessionReads,
}

/// Why the consensus side of a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Storage(#[from] crate::Error),
    #[error("raft: {0}")]
    Raft(String),
    #[error("runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// How often the touch coalescer flushes TTL extensions.
const TOUCH_TICK: Duration = Duration::from_millis(200);
/// How often the leader looks for expired sessions to purge.
const PURGE_EVERY: Duration = Duration::from_secs(5);

/// A running consensus node.
pub struct ConsensusNode {
    rt: tokio::runtime::Runtime,
    /// This node's handle on the Raft group.
    pub cluster: Arc<Cluster>,
    /// The write batcher (group commit): session writes, touches and forwarded writes.
    pub batcher: Arc<WriteBatcher>,
    /// TTL extensions waiting for the coalescer's next flush.
    pub touches: Arc<PendingTouches>,
    /// What the runtime records (registered by the HTTP layer's metrics).
    pub instruments: Arc<Instruments>,
    /// The supervised actors of the long-lived components (the web layer starts its own
    /// dashboard watcher here too).
    pub actors: ActorHost,
    auth: PeerAuth,
}

impl ConsensusNode {
    /// Open storage, start Raft on a dedicated runtime, start the background tasks and begin
    /// bootstrap. The runtime is built on a thread of its own, so this may be called from
    /// inside another async runtime (it blocks the caller until storage is open and Raft runs).
    ///
    /// # Errors
    /// When storage cannot be opened (locked, corrupt) or Raft refuses the configuration.
    pub fn start(opts: ConsensusOptions) -> Result<Self, StartError> {
        std::thread::scope(|s| {
            s.spawn(|| Self::start_here(opts))
                .join()
                .unwrap_or_else(|_| Err(StartError::Raft("node start panicked".into())))
        })
    }

    fn start_here(opts: ConsensusOptions) -> Result<Self, StartError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.raft_threads.max(1))
            .thread_name(format!("raft-{}", opts.id))
            .enable_all()
            .build()?;
        let (log, sm) = crate::open(&opts.data_dir, &opts.storage)?;
        let auth = PeerAuth::new(&opts.secret);
        let local_ip = opts.source_ip.filter(|ip| !ip.is_unspecified());
        let peers = rt.block_on(async {
            PeerClient::new(
                auth.clone(),
                opts.deadlines.rpc,
                local_ip,
                opts.tls_ca.as_deref(),
                sm.cluster_version(),
            )
        })?;
        let lease = Arc::new(LeaseClock::new(opts.lease_reads.then(|| {
            LeaseClock::duration_for(
                Duration::from_millis(opts.raft.election_timeout_min),
                Duration::from_millis(opts.raft.election_timeout_max),
            )
        })));
        let instruments = Arc::new(Instruments::new());
        let records = Records {
            lease,
            instruments: instruments.clone(),
        };
        // Elections are ours: every campaign is preceded by a pre-vote (failover.rs, prevote.rs).
        let raft_config = openraft::Config {
            enable_elect: false,
            ..opts.raft.clone()
        };
        let raft = rt
            .block_on(Raft::new(
                opts.id,
                Arc::new(raft_config),
                Network::new(peers.clone(), records.clone()),
                log,
                sm.clone(),
            ))
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let cluster = Cluster::start(
            opts.id,
            raft,
            sm,
            peers,
            rt.handle().clone(),
            opts.deadlines,
            records,
            opts.reads,
        );
        let batcher = WriteBatcher::new(cluster.clone(), opts.max_queued_writes);
        let touches = Arc::new(PendingTouches::default());
        let actors = ActorHost::start(opts.id, instruments.clone())?;
        batcher.start_replicator(&actors);
        let weak = Arc::downgrade(&cluster);
        let timings = crate::consensus::failover::Timings {
            heartbeat: Duration::from_millis(opts.raft.heartbeat_interval),
            election_min: Duration::from_millis(opts.raft.election_timeout_min),
            lease: Duration::from_millis(opts.raft.election_timeout_max),
        };
        let w = weak.clone();
        actors.start_actor(move || ElectionWatcher::new(w.clone(), timings));
        let (pending, b, ins) = (
            Arc::downgrade(&touches),
            batcher.clone(),
            instruments.clone(),
        );
        actors.start_actor(move || TouchFlusher {
            pending: pending.clone(),
            batcher: b.clone(),
            tick: TOUCH_TICK,
            instruments: ins.clone(),
        });
        let w = weak.clone();
        actors.start_actor(move || Purger {
            cluster: w.clone(),
            every: PURGE_EVERY,
        });
        let w = weak.clone();
        actors.start_actor(move || VersionDriver::new(w.clone()));
        let (names, metrics, me) = (
            Arc::downgrade(&cluster.peer_names),
            cluster.raft.metrics(),
            cluster.id,
        );
        actors.start_actor(move || NameChecker {
            names: names.clone(),
            metrics: metrics.clone(),
            me,
        });
        rt.spawn(bootstrap(cluster.clone(), opts.initial_members.clone()));
        Ok(Self {
            rt,
            cluster,
            batcher,
            touches,
            instruments,
            actors,
            auth,
        })
    }

    /// The receiving side of the peer transport, for the HTTP layer's `/raft/*` routes.
    pub fn inbound(&self) -> Inbound {
        Inbound::new(
            self.cluster.clone(),
            self.auth.clone(),
            self.batcher.clone(),
        )
    }

    /// Shut Raft down, then let storage close. Call after the HTTP server stopped; runs on a
    /// thread of its own, so it may be called from inside an async runtime.
    pub fn shutdown(mut self) {
        // First the actors: none of them acts on a Raft that is stopping.
        self.actors.stop();
        std::thread::scope(|s| {
            s.spawn(move || {
                let raft = self.cluster.raft.clone();
                if let Err(e) = self.rt.block_on(raft.shutdown()) {
                    tracing::warn!(error = %e, "raft shutdown reported an error");
                }
                drop(self.cluster);
                drop(self.batcher);
                self.rt.shutdown_timeout(Duration::from_secs(5));
                tracing::info!("raft stopped, storage closed");
            });
        });
    }
}

/// What bootstrap reads of a peer's `/cluster/status`: whether it belongs to a cluster.
#[derive(serde::Deserialize)]
struct PeerMembers {
    #[serde(default)]
    members: Vec<serde::de::IgnoredAny>,
}

/// Initialize the cluster from the initial membership, exactly once: only a node in the initial
/// membership, only with empty storage, and only if no peer reports an initialized cluster.
/// Nodes that start together with empty storage all propose the identical membership entry,
/// which openraft accepts (log id 0 is the same everywhere).
async fn bootstrap(cluster: Arc<Cluster>, members: BTreeMap<NodeId, String>) {
    if !members.contains_key(&cluster.id) {
        return;
    }
    match cluster.raft.is_initialized().await {
        Ok(true) | Err(_) => return,
        Ok(false) => {}
    }
    for (id, addr) in &members {
        if *id == cluster.id {
            continue;
        }
        match cluster
            .peers
            .get_json::<PeerMembers>(addr, "/cluster/status")
            .await
        {
            Ok(s) if !s.members.is_empty() => {
                tracing::info!(
                    peer = id,
                    "cluster already initialized; waiting to be contacted"
                );
                return;
            }
            _ => {}
        }
    }
    let nodes: BTreeMap<NodeId, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
        .collect();
    match cluster.raft.initialize(nodes).await {
        Ok(()) => tracing::info!(members = members.len(), "cluster initialized"),
        Err(e) => tracing::info!(error = %e, "initialize skipped"),
    }
}

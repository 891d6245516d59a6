//! [`NodeRuntime`]: one sessionraft node embedded in a process — storage, Raft on its own
//! runtime, bootstrap, the actors (write batcher, touch coalescer, purger), the session store
//! and the HTTP routes. The `sessionraft` binary is a thin shell over it; so is `examples/`.
//!
//! Lifecycle: [`NodeRuntime::start`] (outside any async context) → [`NodeRuntime::start_actors`]
//! (inside the actix system) → serve HTTP → stop HTTP → [`NodeRuntime::shutdown`] (Raft, then
//! storage).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter};
use actix_session::config::{BrowserSession, CookieContentSecurity, TtlExtensionPolicy};
use actix_session::SessionMiddleware;
use actix_web::cookie::{Key, SameSite};
use actix_web::web;
use openraft::BasicNode;
use sessionraft_raft::{NodeId, Raft, StorageOptions};
use sha2::{Digest, Sha512};

use crate::admin::{self, AdminState};
use crate::auth::PeerAuth;
use crate::batcher::WriteBatcher;
use crate::cluster::{Cluster, Deadlines};
use crate::cookie_ring::CookieRing;
use crate::dashboard::{self, ClusterWatcher, DashboardFeed};
use crate::frontend::{self, FrontendState};
use crate::handlers::{self, AppState, NodeStatus};
use crate::lease::LeaseClock;
use crate::metrics::Metrics;
use crate::network::{Network, PeerClient};
use crate::purger::Purger;
use crate::raft_rpc::{self, RpcState};
use crate::session_store::{RaftSessionStore, StoreSettings};
use crate::touch::{PendingTouches, TouchCoalescer};

/// Everything a node needs to run, already validated by the caller.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub id: NodeId,
    pub data_dir: PathBuf,
    /// Address (host:port) peers use to reach this node's HTTP/RPC listener.
    pub advertise_addr: String,
    /// The initial membership (from `cluster.toml`). A node in it initializes the cluster on its
    /// first start when no peer already has; a node outside it (added later) never does.
    pub initial_members: BTreeMap<NodeId, String>,
    /// The cluster secret (peer MACs, cookie key derivation). Never logged.
    pub secret: Vec<u8>,
    /// The admin API token; empty disables the admin API. Never logged.
    pub admin_token: Vec<u8>,
    /// The load balancer's URL shown by the demo app, if any.
    pub lb_url: Option<String>,
    pub raft: openraft::Config,
    /// Answer read indexes under the leader lease when it holds (lease.rs), instead of a
    /// heartbeat round each.
    pub lease_reads: bool,
    pub deadlines: Deadlines,
    pub store: StoreSettings,
    pub idle_ttl: Duration,
    pub cookie_name: String,
    pub cookie_secure: bool,
    pub storage: StorageOptions,
    /// Worker threads of the Raft runtime (at least 1).
    pub raft_threads: usize,
    /// Cookie key ring secrets, newest first; empty: one key from `secret`.
    pub cookie_secrets: Vec<Vec<u8>>,
    /// The PEM of the CA that signs every node's certificate (`[tls] ca`): peers are called
    /// over `https://` and trusted only with a certificate of that CA. `None`: plain HTTP.
    pub tls_ca: Option<Vec<u8>>,
}

impl NodeOptions {
    /// Options with sessionraft's defaults for everything but identity, addresses and secret:
    /// the shortest way to embed a node (see `examples/embedded_store.rs`).
    pub fn with_defaults(
        id: NodeId,
        advertise_addr: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        secret: impl Into<Vec<u8>>,
        initial_members: BTreeMap<NodeId, String>,
    ) -> Self {
        let raft = openraft::Config {
            heartbeat_interval: 100,
            election_timeout_min: 210,
            election_timeout_max: 300,
            install_snapshot_timeout: 10_000,
            ..openraft::Config::default()
        };
        Self {
            id,
            data_dir: data_dir.into(),
            advertise_addr: advertise_addr.into(),
            initial_members,
            secret: secret.into(),
            admin_token: Vec::new(),
            lb_url: None,
            raft,
            lease_reads: true,
            deadlines: Deadlines {
                request: Duration::from_secs(3),
                rpc: Duration::from_secs(1),
            },
            store: StoreSettings {
                absolute_ttl: Duration::from_secs(86_400),
                max_state_bytes: 16 * 1024,
                unsafe_skip_read_barrier: false,
                max_sessions_per_user: 0,
            },
            idle_ttl: Duration::from_secs(1_800),
            cookie_name: "id".into(),
            cookie_secure: false,
            storage: StorageOptions::default(),
            raft_threads: 2,
            cookie_secrets: Vec::new(),
            tls_ca: None,
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Storage(#[from] sessionraft_raft::Error),
    #[error("raft: {0}")]
    Raft(String),
    #[error("runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// The actors and the store of a running node.
#[derive(Clone)]
pub struct Services {
    pub batcher: Arc<WriteBatcher>,
    pub toucher: Addr<TouchCoalescer>,
    pub purger: Addr<Purger>,
    pub watcher: Addr<ClusterWatcher>,
    pub store: RaftSessionStore,
}

/// How session cookies are made. Cheap to clone, `Send`.
#[derive(Clone)]
pub struct SessionCookie {
    /// The key ring, newest first (never empty).
    keys: Vec<Key>,
    name: String,
    secure: bool,
    idle_ttl: Duration,
    metrics: Option<Arc<Metrics>>,
}

impl SessionCookie {
    /// The cookie's name: with `Secure`, the configured name behind the `__Host-` prefix (the
    /// browser then only accepts it from a secure origin, for `Path=/`, without `Domain`).
    pub fn name(&self) -> String {
        if self.secure {
            format!("__Host-{}", self.name)
        } else {
            self.name.clone()
        }
    }

    /// The key-ring middleware; wrap it *outside* [`SessionCookie::middleware`] (registered
    /// after it), so it sees the request first.
    pub fn key_ring(&self) -> CookieRing {
        CookieRing::new(
            self.name(),
            self.keys.clone(),
            self.secure,
            self.metrics.clone(),
        )
    }

    /// actix-session's middleware over `store`: signed and encrypted cookie (`Private`),
    /// `HttpOnly`, `SameSite=Lax`, state TTL = idle TTL extended on every request (the touches
    /// are coalesced).
    pub fn middleware(&self, store: RaftSessionStore) -> SessionMiddleware<RaftSessionStore> {
        let newest = match self.keys.first() {
            Some(k) => k.clone(),
            None => Key::generate(),
        };
        SessionMiddleware::builder(store, newest)
            .cookie_name(self.name())
            .cookie_secure(self.secure)
            .cookie_path("/".into())
            .cookie_domain(None)
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .cookie_content_security(CookieContentSecurity::Private)
            .session_lifecycle(
                BrowserSession::default()
                    .state_ttl(actix_web::cookie::time::Duration::milliseconds(
                        i64::try_from(self.idle_ttl.as_millis()).unwrap_or(i64::MAX),
                    ))
                    .state_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
            )
            .build()
    }
}

/// A running node.
pub struct NodeRuntime {
    rt: tokio::runtime::Runtime,
    pub cluster: Arc<Cluster>,
    pub metrics: Arc<Metrics>,
    auth: PeerAuth,
    feed: DashboardFeed,
    opts: NodeOptions,
}

impl NodeRuntime {
    /// Open storage, start Raft on a dedicated runtime and begin bootstrap in the background.
    /// Must not be called from inside an async runtime.
    ///
    /// # Errors
    /// When storage cannot be opened (locked, corrupt) or Raft refuses the configuration.
    pub fn start(opts: NodeOptions) -> Result<Self, NodeError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.raft_threads.max(1))
            .thread_name(format!("raft-{}", opts.id))
            .enable_all()
            .build()?;
        let (log, sm) = sessionraft_raft::open(&opts.data_dir, &opts.storage)?;
        let auth = PeerAuth::new(&opts.secret);
        let local_ip = bind_ip(&opts.advertise_addr);
        let peers = rt.block_on(async {
            PeerClient::new(
                auth.clone(),
                opts.deadlines.rpc,
                local_ip,
                opts.tls_ca.as_deref(),
            )
        })?;
        let lease = Arc::new(LeaseClock::new(opts.lease_reads.then(|| {
            LeaseClock::duration_for(
                Duration::from_millis(opts.raft.election_timeout_min),
                Duration::from_millis(opts.raft.election_timeout_max),
            )
        })));
        let config = Arc::new(opts.raft.clone());
        let records = crate::network::Records {
            lease,
            stages: Arc::new(crate::metrics::Stages::new()),
        };
        let raft = rt
            .block_on(Raft::new(
                opts.id,
                config,
                Network::new(peers.clone(), records.clone()),
                log,
                sm.clone(),
            ))
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        let cluster = Cluster::start(
            opts.id,
            raft,
            sm,
            peers,
            rt.handle().clone(),
            opts.deadlines,
            records.clone(),
        );
        let metrics = Arc::new(Metrics::new(opts.id, &records.stages));
        rt.spawn(crate::failover::watch(
            Arc::downgrade(&cluster),
            crate::failover::Timings {
                heartbeat: Duration::from_millis(opts.raft.heartbeat_interval),
                lease: Duration::from_millis(opts.raft.election_timeout_max),
            },
        ));
        rt.spawn(bootstrap(cluster.clone(), opts.initial_members.clone()));
        Ok(Self {
            rt,
            cluster,
            metrics,
            auth,
            feed: DashboardFeed::default(),
            opts,
        })
    }

    /// Start the actors on their own arbiter. Call inside the actix system.
    pub fn start_actors(&self) -> Services {
        let arbiter = Arbiter::new();
        let handle = arbiter.handle();
        let (c, m) = (self.cluster.clone(), self.metrics.clone());
        let batcher = WriteBatcher::new(c, m);
        let touches = Arc::new(PendingTouches::default());
        let (t, b, m) = (touches.clone(), batcher.clone(), self.metrics.clone());
        let toucher = TouchCoalescer::start_in_arbiter(&handle, move |_| {
            TouchCoalescer::new(t, b, Duration::from_millis(200), m)
        });
        let c = self.cluster.clone();
        let purger =
            Purger::start_in_arbiter(&handle, move |_| Purger::new(c, Duration::from_secs(5)));
        let (c, m, f) = (
            self.cluster.clone(),
            self.metrics.clone(),
            self.feed.clone(),
        );
        let watcher =
            ClusterWatcher::start_in_arbiter(&handle, move |_| ClusterWatcher::new(c, m, f));
        // The arbiter lives as long as the actix system.
        std::mem::forget(arbiter);
        let store = RaftSessionStore::new(
            self.cluster.clone(),
            batcher.clone(),
            touches,
            self.opts.store.clone(),
            self.metrics.clone(),
        );
        Services {
            batcher,
            toucher,
            purger,
            watcher,
            store,
        }
    }

    /// The session cookie settings; `SessionCookie::middleware` builds actix-session's
    /// middleware inside an `HttpServer` factory (the middleware itself is not `Send`).
    pub fn session_cookie(&self) -> SessionCookie {
        let keys = if self.opts.cookie_secrets.is_empty() {
            vec![cookie_key(&self.opts.secret)]
        } else {
            self.opts
                .cookie_secrets
                .iter()
                .map(|s| cookie_key(s))
                .collect()
        };
        SessionCookie {
            keys,
            name: self.opts.cookie_name.clone(),
            secure: self.opts.cookie_secure,
            idle_ttl: self.opts.idle_ttl,
            metrics: Some(self.metrics.clone()),
        }
    }

    /// A route configurator for what every node needs besides the application: internal RPC,
    /// ops routes, the admin API and the dashboard feed; usable in an `HttpServer` factory.
    /// Register it before the session-wrapped scope.
    pub fn internal_routes(
        &self,
        services: &Services,
    ) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        let rpc_state = web::Data::new(RpcState {
            cluster: self.cluster.clone(),
            auth: self.auth.clone(),
            batcher: services.batcher.clone(),
        });
        let admin_state = web::Data::new(AdminState::new(
            self.cluster.clone(),
            &self.opts.admin_token,
            self.opts.data_dir.join("spool"),
        ));
        let feed = web::Data::new(self.feed.clone());
        move |cfg: &mut web::ServiceConfig| {
            raft_rpc::configure(cfg, rpc_state.clone());
            handlers::configure_ops(cfg);
            admin::configure(cfg, admin_state.clone());
            cfg.app_data(feed.clone())
                .route("/cluster/events", web::get().to(dashboard::events));
        }
    }

    /// A route configurator for sessionraft's own frontend: the demo app at `/`, the dashboard
    /// at `/cluster`, their assets and `/api/nodes` (the `sessionraft` binary mounts it; an
    /// application embedding the store usually does not).
    pub fn frontend_routes(&self) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        let frontend_state = web::Data::new(FrontendState {
            cluster: self.cluster.clone(),
            lb_url: self.opts.lb_url.clone(),
        });
        move |cfg: &mut web::ServiceConfig| frontend::configure(cfg, frontend_state.clone())
    }

    /// Shared state for the public handlers.
    pub fn app_state(&self) -> web::Data<AppState> {
        web::Data::new(AppState {
            cluster: self.cluster.clone(),
            metrics: self.metrics.clone(),
        })
    }

    /// Shut Raft down, then let storage close. Call after the HTTP server stopped.
    pub fn shutdown(self) {
        let raft = self.cluster.raft.clone();
        if let Err(e) = self.rt.block_on(raft.shutdown()) {
            tracing::warn!(error = %e, "raft shutdown reported an error");
        }
        drop(self.cluster);
        self.rt.shutdown_timeout(Duration::from_secs(5));
        tracing::info!("raft stopped, storage closed");
    }
}

/// The source address for outgoing peer connections: the IP of this node's own Raft address
/// when it is a specific one (not `0.0.0.0`/`::`, not a host name), so that a node on
/// 127.0.0.11 talks to its peers *from* 127.0.0.11 and firewall rules can match both ends.
fn bind_ip(advertise_addr: &str) -> Option<std::net::IpAddr> {
    let ip = advertise_addr.parse::<std::net::SocketAddr>().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// A cookie key: 64 bytes derived from a secret (every node derives the same).
pub fn cookie_key(secret: &[u8]) -> Key {
    let mut h = Sha512::new();
    h.update(b"sessionraft cookie key v1\0");
    h.update(secret);
    let bytes = h.finalize();
    // 64 bytes is exactly what `Key::from` needs; `Key::try_from` cannot fail on them.
    match Key::try_from(bytes.as_slice()) {
        Ok(k) => k,
        Err(_) => Key::generate(),
    }
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
            .get_json::<NodeStatus>(addr, "/cluster/status")
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

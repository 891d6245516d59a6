//! [`Server`]: one sessionraft node inside your actix-web app — the embedding API.
//!
//! ```text
//! let server = Server::start(Config::from_file("cluster.toml")?, node_id)?;
//! HttpServer::new({ let server = server.clone(); move || {
//!     App::new().configure(server.routes()).wrap(server.sessions()).route(...)
//! }})
//! ...
//! server.shutdown();
//! ```
//!
//! [`Server::start`] opens storage and starts the consensus node (`sessionraft-raft`'s
//! `ConsensusNode`) on a runtime of its own; [`Server::routes`] mounts what every node serves
//! besides your app (the peer transport `/raft/*`, `/healthz`, `/readyz`, `/metrics`,
//! `/cluster/*`, the admin API); [`Server::sessions`] is one middleware carrying the node's
//! in-flight bound (503 `not-applied` at once above it), the cookie key ring, the store-error
//! mapping (503/409/413/400 instead of actix-session's 500) and
//! actix-session over [`RaftSessionStore`]. The `sessionraft` binary is built on the same calls.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_session::config::{BrowserSession, CookieContentSecurity, TtlExtensionPolicy};
use actix_session::SessionMiddleware;
use actix_web::body::MessageBody;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::web;
use sessionraft_raft::consensus::cluster::{Cluster, Deadlines};
use sessionraft_raft::consensus::freshness::SessionReads;
use sessionraft_raft::consensus::runtime::{ConsensusNode, ConsensusOptions, StartError};
use sessionraft_raft::StorageOptions;
use sha2::{Digest, Sha512};

use crate::admin;
use crate::admin_access::AdminState;
use crate::admission::{Admission, AdmissionService};
use crate::config::{Config, ConfigError, NodeConfig};
use crate::cookie_ring::{CookieRing, CookieRingService};
use crate::dashboard::{self, ClusterWatcher, DashboardFeed};
use crate::frontend::{self, FrontendState};
use crate::handlers::{self, AppState};
use crate::metrics::Metrics;
use crate::raft_routes;
use crate::request_scope::{StoreErrors, StoreErrorsService};
use crate::resp::RespServer;
use crate::session_store::{RaftSessionStore, StoreSettings};

/// The environment variable of the planted stale-read bug (test only): `1` makes session loads
/// skip the read barrier. It exists only so chaos tests can prove that `sessionraft check`
/// detects stale reads.
pub const UNSAFE_SKIP_READ_BARRIER_ENV: &str = "SESSIONRAFT_UNSAFE_SKIP_READ_BARRIER";

/// Whether the planted stale-read bug is switched on (`SESSIONRAFT_UNSAFE_SKIP_READ_BARRIER=1`).
pub fn unsafe_skip_read_barrier() -> bool {
    std::env::var(UNSAFE_SKIP_READ_BARRIER_ENV).is_ok_and(|v| v.trim() == "1")
}

/// The environment variable of the planted freshness bug (test only): `1` makes token reads
/// skip the freshness check, so a paused or cut-off follower serves what it has. It exists
/// only so the checker's revocation workload can be shown to catch it.
pub const UNSAFE_SKIP_FRESHNESS_ENV: &str = "SESSIONRAFT_UNSAFE_SKIP_FRESHNESS";

/// Whether the planted freshness bug is switched on (`SESSIONRAFT_UNSAFE_SKIP_FRESHNESS=1`).
pub fn unsafe_skip_freshness() -> bool {
    std::env::var(UNSAFE_SKIP_FRESHNESS_ENV).is_ok_and(|v| v.trim() == "1")
}

/// The environment variable of the actor test switch: `1` lets `POST /admin/actors/{name}/panic`
/// (admin token required) make one of the node's actors panic, so tests can show that a
/// supervisor restarts it and the node keeps serving.
pub const UNSAFE_ACTOR_PANICS_ENV: &str = "SESSIONRAFT_UNSAFE_ACTOR_PANICS";

/// Whether the actor test switch is on (`SESSIONRAFT_UNSAFE_ACTOR_PANICS=1`).
pub fn unsafe_actor_panics() -> bool {
    std::env::var(UNSAFE_ACTOR_PANICS_ENV).is_ok_and(|v| v.trim() == "1")
}

/// Everything a node needs to run, already validated: the consensus side and the HTTP side.
/// Made from `cluster.toml` by [`ServerOptions::from_config`].
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Storage, Raft, peers.
    pub consensus: ConsensusOptions,
    /// The admin API token; empty disables the admin API. Never logged.
    pub admin_token: Vec<u8>,
    /// The load balancer's URL shown by the demo app, if any.
    pub lb_url: Option<String>,
    pub store: StoreSettings,
    pub idle_ttl: Duration,
    pub cookie_name: String,
    pub cookie_secure: bool,
    /// Cookie key ring secrets, newest first; empty: one key from the cluster secret.
    pub cookie_secrets: Vec<Vec<u8>>,
    /// Where the node's client (HTTP) listener binds: its listen address, or its advertised
    /// `http_addr` resolved at start.
    pub http_addr: SocketAddr,
    /// Where to serve the Redis protocol (the node's `resp_listen`, or its `resp_addr` resolved
    /// at start) and how; `None`: not at all.
    pub resp: Option<(SocketAddr, crate::resp::settings::RespConfig)>,
    /// With `[tls]` and a door: the door's rustls configuration ([`crate::resp::tls`]), so that
    /// it speaks TLS only; `None`: plaintext.
    pub resp_tls: Option<crate::resp::tls::DoorTls>,
    /// Session requests this node works on at once ([`crate::admission`]); one more is
    /// answered 503 `not-applied` at once.
    pub max_requests_in_flight: usize,
}

impl ServerOptions {
    /// The options of node `me` from the validated configuration: the same settings the
    /// `sessionraft` binary uses. `[runtime] raft_threads` unset: the cores divided by the
    /// configured nodes on `me`'s host.
    ///
    /// # Errors
    /// openraft refuses the `[raft]` timings, the `[tls]` CA cannot be read (or, for a node
    /// with a door, its certificate and key), or an advertised name without a listen address
    /// does not resolve.
    pub fn from_config(cfg: &Config, me: &NodeConfig) -> Result<Self, ConfigError> {
        let consensus = ConsensusOptions {
            id: me.id,
            data_dir: me.data_dir.clone(),
            advertise_addr: me.raft_addr.to_string(),
            // Peer calls leave from the node's Raft IP only when it binds that very IP (the
            // default for an IP address): behind a listen address (a container, NAT) the
            // advertised IP may not be one of this host's.
            source_ip: me
                .raft_listen
                .is_none()
                .then(|| me.raft_addr.ip())
                .flatten(),
            initial_members: cfg
                .nodes
                .iter()
                .map(|n| (n.id, n.raft_addr.to_string()))
                .collect(),
            secret: cfg.cluster.secret.expose().to_vec(),
            raft: cfg.openraft_config()?,
            lease_reads: cfg.raft.lease_reads,
            deadlines: Deadlines {
                request: cfg.raft.request_deadline,
                rpc: cfg.raft.rpc_timeout,
                contact: cfg.raft.election_timeout_max,
            },
            max_queued_writes: cfg.raft.max_queued_writes,
            storage: StorageOptions::default(),
            raft_threads: cfg.threads_per_node(me, cores()).1,
            tls_ca: cfg
                .tls
                .as_ref()
                .map(crate::config::TlsConfig::read_ca)
                .transpose()?,
            reads: SessionReads {
                consistency: cfg.raft.read_consistency,
                max_staleness: cfg.raft.max_staleness,
                heartbeat: cfg.raft.heartbeat,
                unsafe_skip_freshness: unsafe_skip_freshness(),
            },
        };
        let resp = me.resp_bind_addr()?.map(|a| (a, cfg.resp.clone()));
        let resp_tls = match (&resp, &cfg.tls) {
            (Some(_), Some(tls)) => Some(crate::resp::tls::server_config(
                tls,
                me.id,
                cfg.resp.tls_auth_clients,
            )?),
            _ => None,
        };
        Ok(Self {
            consensus,
            admin_token: cfg.cluster.admin_token.expose().to_vec(),
            // With [tls] the load balancer serves HTTPS too (scripts/cluster.sh: lb.crt of the CA).
            lb_url: cfg.lb_addr.as_ref().map(|a| {
                let scheme = if cfg.tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{a}/")
            }),
            store: StoreSettings {
                absolute_ttl: cfg.session.absolute_ttl,
                max_state_bytes: cfg.session.max_state_bytes,
                unsafe_skip_read_barrier: unsafe_skip_read_barrier(),
                max_sessions_per_user: cfg.session.max_sessions_per_user,
            },
            idle_ttl: cfg.session.idle_ttl,
            cookie_name: cfg.session.cookie_name.clone(),
            // Served over HTTPS only: the cookie is always `Secure` then.
            cookie_secure: cfg.session.cookie_secure || cfg.tls.is_some(),
            cookie_secrets: cfg
                .session
                .cookie_secrets
                .iter()
                .map(|s| s.expose().to_vec())
                .collect(),
            http_addr: me.http_bind_addr()?,
            resp,
            resp_tls,
            max_requests_in_flight: cfg.runtime.max_requests_in_flight,
        })
    }
}

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is invalid, or names no such node.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// Storage, Raft or the peer client could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The Redis-protocol address could not be bound.
    #[error("cannot serve the Redis protocol on {addr}: {source}")]
    Resp {
        addr: SocketAddr,
        source: std::io::Error,
    },
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

/// A running node: cheap to clone (a shared handle), `Send`, usable inside an `HttpServer`
/// factory. Call [`Server::shutdown`] once the HTTP server stopped.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

struct Inner {
    consensus: Mutex<Option<ConsensusNode>>,
    cluster: Arc<Cluster>,
    metrics: Arc<Metrics>,
    store: RaftSessionStore,
    cookie: SessionCookie,
    inbound: web::Data<sessionraft_raft::transport::inbound::Inbound>,
    admin: web::Data<AdminState>,
    feed: web::Data<DashboardFeed>,
    app_state: web::Data<AppState>,
    frontend: web::Data<FrontendState>,
    http_addr: SocketAddr,
    resp: Mutex<Option<RespServer>>,
    admission: Admission,
}

impl Server {
    /// Start node `node_id` of `config` (its `[[node]]` entry): open its storage, start Raft and
    /// the background tasks, and begin bootstrap (the nodes of the configuration initialize
    /// the cluster together on their first start). Returns once storage is open and Raft runs;
    /// the cluster serves once a leader is elected (`/readyz`). Callable inside or outside an
    /// async runtime.
    ///
    /// # Errors
    /// `node_id` is not in the configuration, a setting is refused, or storage cannot be opened
    /// (locked by another process, corrupt).
    pub fn start(config: Config, node_id: u64) -> Result<Self, ServerError> {
        let me = config.node(node_id)?.clone();
        Self::start_with(ServerOptions::from_config(&config, &me)?)
    }

    /// Start a node from options made by hand or by [`ServerOptions::from_config`] (a node
    /// joining from outside the configuration, for example).
    ///
    /// # Errors
    /// Storage cannot be opened, or Raft refuses the configuration.
    pub fn start_with(opts: ServerOptions) -> Result<Self, ServerError> {
        let consensus = ConsensusNode::start(opts.consensus.clone())?;
        let cluster = consensus.cluster.clone();
        let metrics = Arc::new(Metrics::new(
            opts.consensus.id,
            consensus.instruments.clone(),
        ));
        let store = RaftSessionStore::new(
            cluster.clone(),
            consensus.batcher.clone(),
            consensus.touches.clone(),
            opts.store.clone(),
            metrics.clone(),
        );
        let keys = if opts.cookie_secrets.is_empty() {
            vec![cookie_key(&opts.consensus.secret)]
        } else {
            opts.cookie_secrets.iter().map(|s| cookie_key(s)).collect()
        };
        let cookie = SessionCookie {
            keys,
            name: opts.cookie_name.clone(),
            secure: opts.cookie_secure,
            idle_ttl: opts.idle_ttl,
            metrics: Some(metrics.clone()),
        };
        let resp = match &opts.resp {
            Some((addr, config)) => {
                let shared = crate::resp::Shared::new(
                    cluster.clone(),
                    consensus.batcher.clone(),
                    metrics.clone(),
                    config,
                    addr.port(),
                );
                match RespServer::start(*addr, shared, opts.resp_tls.clone()) {
                    Ok(server) => Some(server),
                    Err(source) => {
                        consensus.shutdown();
                        return Err(ServerError::Resp {
                            addr: *addr,
                            source,
                        });
                    }
                }
            }
            None => None,
        };
        let feed = DashboardFeed::default();
        let (c, m, f) = (cluster.clone(), metrics.clone(), feed.clone());
        consensus
            .actors
            .start_actor(move || ClusterWatcher::new(c.clone(), m.clone(), f.clone()));
        let admission = Admission::new(
            opts.max_requests_in_flight,
            metrics.requests_in_flight.clone(),
            Some(
                metrics
                    .http_requests_refused
                    .with_label_values(&["in-flight"]),
            ),
        );
        let inner = Inner {
            inbound: web::Data::new(consensus.inbound()),
            admin: web::Data::new({
                let admin = AdminState::new(
                    cluster.clone(),
                    &opts.admin_token,
                    opts.consensus.data_dir.join("spool"),
                );
                if unsafe_actor_panics() {
                    tracing::warn!(
                        "TEST SWITCH ON: {UNSAFE_ACTOR_PANICS_ENV}=1 lets POST /admin/actors/NAME/panic \
                         make this node's actors panic; never set it in production"
                    );
                    admin.with_actor_panics(consensus.actors.panic_switch())
                } else {
                    admin
                }
            }),
            feed: web::Data::new(feed),
            app_state: web::Data::new(AppState {
                cluster: cluster.clone(),
                metrics: metrics.clone(),
            }),
            frontend: web::Data::new(FrontendState {
                cluster: cluster.clone(),
                lb_url: opts.lb_url.clone(),
            }),
            consensus: Mutex::new(Some(consensus)),
            cluster,
            metrics,
            store,
            cookie,
            http_addr: opts.http_addr,
            resp: Mutex::new(resp),
            admission,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.inner.cluster.id
    }

    /// Where this node's client (HTTP) listener binds (see [`ServerOptions::http_addr`]).
    pub fn http_addr(&self) -> SocketAddr {
        self.inner.http_addr
    }

    /// What every node serves besides the application: the peer transport (`/raft/*`),
    /// `/healthz`, `/readyz`, `/metrics`, `/cluster/status`, `/cluster/digest`,
    /// `/cluster/events` and the admin API (`/admin/*`). For `App::configure`. Peers, probes
    /// and the admin CLI send no session cookie, so [`Server::sessions`] around them loads
    /// nothing.
    pub fn routes(&self) -> impl FnOnce(&mut web::ServiceConfig) + Clone + Send + 'static {
        let inner = self.inner.clone();
        move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(inner.app_state.clone());
            raft_routes::configure(cfg, inner.inbound.clone());
            handlers::configure_ops(cfg);
            admin::configure(cfg, inner.admin.clone());
            cfg.app_data(inner.feed.clone())
                .route("/cluster/events", web::get().to(dashboard::events));
        }
    }

    /// sessionraft's own frontend: the demo app at `/`, the dashboard at `/cluster`, their
    /// assets and `/api/nodes` (the `sessionraft` binary mounts it; an application embedding
    /// the store usually does not).
    pub fn frontend_routes(&self) -> impl FnOnce(&mut web::ServiceConfig) + Clone + Send + 'static {
        let state = self.inner.frontend.clone();
        move |cfg: &mut web::ServiceConfig| frontend::configure(cfg, state)
    }

    /// The session middleware, for `App::wrap` (or a scope's): actix-session over the
    /// replicated store, inside the cookie key ring (a cookie under an older key is re-issued
    /// under the newest), inside the store-error mapping (no quorum: 503 with `Retry-After`;
    /// a lost update: 409; too large: 413; never a silent empty session). Build it inside the
    /// `HttpServer` factory (actix-session's middleware is not `Send`).
    pub fn sessions(&self) -> Sessions {
        Sessions {
            session: self.inner.cookie.middleware(self.inner.store.clone()),
            ring: self.inner.cookie.key_ring(),
            admission: self.inner.admission.clone(),
        }
    }

    /// The session store itself (for a custom `SessionMiddleware`; [`Server::sessions`] is the
    /// usual way).
    pub fn store(&self) -> RaftSessionStore {
        self.inner.store.clone()
    }

    /// The session cookie settings.
    pub fn session_cookie(&self) -> SessionCookie {
        self.inner.cookie.clone()
    }

    /// The address the Redis protocol is served on, if it is.
    pub fn resp_addr(&self) -> Option<SocketAddr> {
        match self.inner.resp.lock() {
            Ok(r) => r.as_ref().map(RespServer::local_addr),
            Err(poisoned) => poisoned.into_inner().as_ref().map(RespServer::local_addr),
        }
    }

    /// This node's handle on the Raft group.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.inner.cluster
    }

    /// This node's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Shut Raft down, then close storage (waits for both). Call after the HTTP server
    /// stopped; later calls do nothing. Callable inside or outside an async runtime.
    pub fn shutdown(&self) {
        // The Redis door first: its connections stop proposing before Raft goes.
        drop(match self.inner.resp.lock() {
            Ok(mut r) => r.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        });
        let taken = match self.inner.consensus.lock() {
            Ok(mut c) => c.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(c) = taken {
            c.shutdown();
        }
    }
}

impl Drop for Inner {
    /// A node dropped without [`Server::shutdown`] still stops Raft and closes storage in order.
    fn drop(&mut self) {
        let taken = match self.consensus.get_mut() {
            Ok(c) => c.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(c) = taken {
            c.shutdown();
        }
    }
}

/// The one middleware of [`Server::sessions`]: the node's in-flight bound around the
/// store-error mapping around the cookie key ring around actix-session over
/// [`RaftSessionStore`].
pub struct Sessions {
    session: SessionMiddleware<RaftSessionStore>,
    ring: CookieRing,
    admission: Admission,
}

type SessionService<S> =
    <SessionMiddleware<RaftSessionStore> as Transform<S, ServiceRequest>>::Transform;

impl<S, B> Transform<S, ServiceRequest> for Sessions
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = AdmissionService<StoreErrorsService<CookieRingService<SessionService<S>>>>;
    type InitError = ();
    type Future = Pin<Box<dyn Future<Output = Result<Self::Transform, Self::InitError>>>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let session = self.session.new_transform(service);
        let ring = self.ring.clone();
        let admission = self.admission.clone();
        Box::pin(async move {
            let session = session.await?;
            let ring = ring.new_transform(session).await?;
            let errors = StoreErrors.new_transform(ring).await?;
            admission.new_transform(errors).await
        })
    }
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

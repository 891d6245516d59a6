//! The HTTP surface every node serves (the contract operators and later tools rely on):
//! the demo API (`/api/*`, also the benchmark workload), health (`/healthz`, `/readyz`) and
//! cluster introspection (`/cluster/status`, `/cluster/digest`, `/metrics`).

use std::sync::Arc;

use actix_session::Session;
use actix_web::ResponseError as _;
use actix_web::{web, HttpResponse};
use openraft::ServerState;
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::session_store::USER_KEY;
use std::sync::atomic::Ordering::Relaxed;

use sessionraft_raft::consensus::cluster::Cluster;
use sessionraft_raft::consensus::freshness::ReadConsistency;

/// A follower counts as ready when it is at most this many entries behind its own log.
const READY_MAX_APPLY_LAG: u64 = 1_000;
/// A learner is ready within this many entries of the leader's read index (a restore's entries
/// carry ~1,000 sessions each, so the voters' local bound would call a learner ready far too soon).
const LEARNER_READY_MAX_LAG: u64 = 100;
/// How long a learner's readiness check waits for the leader's read index.
const LEARNER_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Shared state of the public handlers.
pub struct AppState {
    pub cluster: Arc<Cluster>,
    pub metrics: Arc<Metrics>,
}

/// Mount the demo API (needs the session middleware around it).
pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .app_data(web::JsonConfig::default().limit(4096))
            .route("/counter", web::post().to(increment))
            .route("/counter", web::get().to(read_counter))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .route("/whoami", web::get().to(whoami))
            .route("/sessions", web::get().to(my_sessions))
            .route("/logout-everywhere", web::post().to(logout_everywhere)),
    );
}

fn signed_in(session: &Session) -> Result<Option<String>, actix_web::Error> {
    Ok(session.get::<String>(USER_KEY)?)
}

fn not_signed_in() -> HttpResponse {
    HttpResponse::Unauthorized().json(serde_json::json!({ "error": "not signed in" }))
}

/// The signed-in user's live sessions (ids hashed: a session id is a bearer secret). Read after
/// this request's own load: linearizable in `linearizable` mode; in `session` mode at most
/// `max_staleness_ms` behind changes made through other nodes.
async fn my_sessions(
    state: web::Data<AppState>,
    session: Session,
) -> actix_web::Result<HttpResponse> {
    let Some(user) = signed_in(&session)? else {
        return Ok(not_signed_in());
    };
    let list = match state
        .cluster
        .sm
        .sessions_of_user(&user, sessionraft_raft::clock::now_ms())
    {
        Ok(list) => list,
        Err(e) => return Ok(crate::request_scope::local_read_failed("sessions", e)),
    };
    let sessions: Vec<serde_json::Value> = list
        .iter()
        .map(|(key, s)| {
            serde_json::json!({
                "sid_hash": sessionraft_raft::clock::key_hash(key),
                "created_at_ms": s.created_at_ms,
                "expires_at_ms": s.expires_at_ms,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "user": user, "sessions": sessions, "served_by": state.cluster.id,
    })))
}

/// "Log out everywhere": every session of the signed-in user, this one included, in one entry.
async fn logout_everywhere(
    state: web::Data<AppState>,
    session: Session,
) -> actix_web::Result<HttpResponse> {
    let Some(user) = signed_in(&session)? else {
        return Ok(not_signed_in());
    };
    let cmd = sessionraft_raft::Command::DeleteUser { user: user.clone() };
    match state.cluster.propose(cmd).await {
        Ok(p) => {
            session.purge();
            let revoked = match p.response {
                sessionraft_raft::Response::Count(n) => n,
                _ => 0,
            };
            tracing::info!(revoked, "a user logged out everywhere");
            Ok(HttpResponse::Ok().json(serde_json::json!({
                "signed_out": true, "revoked": revoked, "served_by": state.cluster.id,
            })))
        }
        // 503 `not-applied` only when certainly not applied; else 504 `unknown` (the
        // revocation may have happened), as every store failure is answered.
        Err(e) => {
            tracing::warn!(error = %e, "log out everywhere failed");
            Ok(crate::request_scope::StoreFailure::from(&e).error_response())
        }
    }
}

/// Mount health and introspection routes (no session needed).
pub fn configure_ops(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/cluster/status", web::get().to(status))
        .route("/cluster/digest", web::get().to(digest))
        .route("/metrics", web::get().to(metrics));
}

#[derive(Serialize)]
struct CounterReply {
    counter: i64,
    served_by: u64,
}

fn counter_of(session: &Session) -> Result<i64, actix_web::Error> {
    Ok(session.get::<i64>("counter")?.unwrap_or(0))
}

async fn increment(
    state: web::Data<AppState>,
    session: Session,
) -> actix_web::Result<HttpResponse> {
    let counter = counter_of(&session)?.saturating_add(1);
    session.insert("counter", counter)?;
    Ok(HttpResponse::Ok().json(CounterReply {
        counter,
        served_by: state.cluster.id,
    }))
}

async fn read_counter(
    state: web::Data<AppState>,
    session: Session,
) -> actix_web::Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(CounterReply {
        counter: counter_of(&session)?,
        served_by: state.cluster.id,
    }))
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
}

fn valid_user(name: &str) -> bool {
    (1..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | ' '))
}

async fn login(
    state: web::Data<AppState>,
    session: Session,
    form: web::Json<LoginForm>,
) -> actix_web::Result<HttpResponse> {
    let user = form.user.trim().to_string();
    if !valid_user(&user) {
        return Ok(HttpResponse::BadRequest().json(serde_json::json!({
            "error": "user must be 1 to 64 letters, digits, spaces or _-.@"
        })));
    }
    // A new session id at sign-in: an id known before login is worthless after it.
    session.renew();
    session.insert(USER_KEY, &user)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "user": user,
        "counter": counter_of(&session)?,
        "served_by": state.cluster.id,
    })))
}

async fn logout(state: web::Data<AppState>, session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::Ok()
        .json(serde_json::json!({ "signed_out": true, "served_by": state.cluster.id }))
}

async fn whoami(state: web::Data<AppState>, session: Session) -> actix_web::Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "user": session.get::<String>(USER_KEY)?,
        "counter": counter_of(&session)?,
        "served_by": state.cluster.id,
    })))
}

async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let running = state.cluster.raft.metrics().borrow().running_state.clone();
    match running {
        Ok(()) => HttpResponse::Ok().content_type("text/plain").body("ok\n"),
        Err(e) => HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(format!("raft core stopped: {e}\n")),
    }
}

/// What `/cluster/status` reports about this node.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct NodeStatus {
    pub id: u64,
    pub role: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub members: Vec<Member>,
    /// Stored sessions, RocksDB's estimate (overwrites and deletes not yet compacted count
    /// too): kept for older readers; `sessions` is exact.
    pub sessions_estimated: u64,
    /// Keys of the Redis-protocol keyspace (estimated, as `sessions_estimated`).
    #[serde(default)]
    pub kv_keys_estimated: u64,
    /// Stored sessions (live, or expired and not purged yet), exact: kept by the state machine.
    /// `None` from a member of an older release.
    #[serde(default)]
    pub sessions: Option<u64>,
    /// Stored keys of the Redis-protocol keyspace (as `DBSIZE` counts them), exact.
    #[serde(default)]
    pub kv_keys: Option<u64>,
    /// Redis-protocol commands this node served since start.
    #[serde(default)]
    pub resp_ops: u64,
    /// This node's operation counters (monotonic since start).
    #[serde(default)]
    pub ops: sessionraft_raft::consensus::instruments::OpCountersSnapshot,
    /// How this node's session loads are served, and how many were served each way.
    #[serde(default)]
    pub reads: ReadsStatus,
    /// Members whose Raft address (a DNS name) does not resolve now, with the resolver's error.
    #[serde(default)]
    pub unresolved: Vec<sessionraft_raft::consensus::peer_names::Unresolved>,
    /// The version of the `sessionraft` release this node runs.
    #[serde(default)]
    pub version: String,
    /// The cluster version applied on this node (`MAJOR.MINOR`): the release line of the
    /// cluster's oldest member once the leader recorded it; "0.1" before. Behaviour an older
    /// release cannot read (session tokens, the keyspace, wire format 2) is on from 0.2.
    #[serde(default)]
    pub cluster_version: String,
    /// What the leader would record as the cluster version now (the lowest release line among
    /// the members it heard from); `None` on a follower or while a member is silent.
    #[serde(default)]
    pub cluster_version_target: Option<String>,
    /// Whether a membership change is in progress (joint consensus).
    #[serde(default)]
    pub membership_joint: bool,
    /// This node's actors (its long-lived components) and how often each was restarted after
    /// a panic.
    #[serde(default)]
    pub actors: Vec<ActorStatus>,
}

/// `/cluster/status` `actors[]`: one supervised actor of the node.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ActorStatus {
    pub name: String,
    /// Restarts after a panic since the node started.
    pub restarts: u64,
}

/// `/cluster/status` `reads`: the mode in force and the loads by path since start.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ReadsStatus {
    /// `session` or `linearizable`.
    pub consistency: String,
    /// The staleness bound of `session` reads, in ms.
    pub max_staleness_ms: u64,
    /// Whether this node is fresh now (a follower that may serve token reads locally).
    pub fresh: bool,
    /// Token reads served from this node's own replica.
    pub local: u64,
    /// Read indexes answered as leader under the lease.
    pub lease: u64,
    /// Read indexes answered as leader with a heartbeat round.
    pub round: u64,
    /// AppendEntries accepted too late to make this node fresh (it was paused, the link stalled).
    pub late_appends: u64,
}

/// One member of the cluster as this node sees it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Member {
    pub id: u64,
    pub addr: String,
    pub voter: bool,
    /// Last log index replicated to it (known on the leader only).
    pub matched_index: Option<u64>,
    /// The release it runs: this node's own; the others' as they named it in their replies to
    /// the leader in the last seconds (known on the leader only; "0.1.0 or older" for a node
    /// that names none).
    #[serde(default)]
    pub version: Option<String>,
}

fn role(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

/// This node's status from openraft's metrics.
pub fn node_status(cluster: &Cluster, metrics: &Metrics) -> NodeStatus {
    let m = cluster.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let releases: std::collections::BTreeMap<u64, Option<String>> =
        sessionraft_raft::consensus::cluster_version::member_releases(cluster)
            .into_iter()
            .map(|m| (m.id, m.release))
            .collect();
    let members = membership
        .nodes()
        .map(|(id, node)| Member {
            version: releases.get(id).cloned().flatten(),
            id: *id,
            addr: node.addr.clone(),
            voter: voters.contains(id),
            matched_index: m
                .replication
                .as_ref()
                .and_then(|r| r.get(id))
                .and_then(|l| l.map(|l| l.index)),
        })
        .collect();
    NodeStatus {
        id: cluster.id,
        role: role(m.state).to_string(),
        term: m.current_term,
        leader: m.current_leader,
        last_log_index: m.last_log_index,
        applied_index: m.last_applied.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
        members,
        unresolved: cluster.peer_names.unresolved(),
        version: sessionraft_raft::version::RELEASE.to_owned(),
        cluster_version: cluster.sm.cluster_version().get().to_string(),
        cluster_version_target: (m.state == ServerState::Leader)
            .then(|| sessionraft_raft::consensus::cluster_version::target(cluster))
            .flatten()
            .map(|v| v.to_string()),
        membership_joint: membership.get_joint_config().len() > 1,
        actors: metrics
            .instruments
            .actor_restart_counts()
            .into_iter()
            .map(|(name, restarts)| ActorStatus { name, restarts })
            .collect(),
        sessions_estimated: cluster.sm.estimated_sessions(),
        kv_keys_estimated: cluster.sm.estimated_kv_keys(),
        sessions: Some(cluster.sm.sessions_stored()),
        kv_keys: Some(cluster.sm.kv_keys()),
        resp_ops: metrics.resp_ops.load(std::sync::atomic::Ordering::Relaxed),
        ops: metrics.instruments.counters.snapshot(),
        reads: ReadsStatus {
            consistency: match cluster.reads.consistency {
                ReadConsistency::Session => "session",
                ReadConsistency::Linearizable => "linearizable",
            }
            .into(),
            max_staleness_ms: u64::try_from(cluster.reads.max_staleness.as_millis())
                .unwrap_or(u64::MAX),
            fresh: m.state != ServerState::Leader
                && cluster
                    .freshness
                    .is_fresh(m.current_term, m.last_applied.map_or(0, |l| l.index)),
            local: cluster.read_local.load(Relaxed),
            lease: cluster.read_index_by_lease.load(Relaxed),
            round: cluster.read_index_by_round.load(Relaxed),
            late_appends: cluster.freshness.late_appends(),
        },
    }
}

async fn status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(node_status(&state.cluster, &state.metrics))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (ready, body) = readiness(&state.cluster, &state.metrics).await;
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Whether this node can serve now, and why (the body of `/readyz`): a leader known and in
/// contact with a quorum, this node's log applied to within a bound, and — for a learner — its
/// applied index near the leader's read index.
pub async fn readiness(
    cluster: &Arc<Cluster>,
    metrics: &Arc<Metrics>,
) -> (bool, serde_json::Value) {
    let s = node_status(cluster, metrics);
    let lag = s
        .last_log_index
        .unwrap_or(0)
        .saturating_sub(s.applied_index.unwrap_or(0));
    // Ready means "can serve now": a leader in contact with a quorum (CheckQuorum), a
    // follower in contact with its leader, within an election timeout.
    let serving = cluster.can_serve().and_then(|()| {
        if cluster.cluster_version_settled() {
            Ok(())
        } else {
            Err("cluster version not settled yet: hearing from every member's release")
        }
    });
    let mut ready =
        s.leader.is_some() && lag <= READY_MAX_APPLY_LAG && s.role != "shutdown" && serving.is_ok();
    // A learner (a node being added) has an empty or short log: its local lag says nothing.
    // It is ready once its applied index is near the leader's read index.
    let voter = s.members.iter().any(|m| m.id == s.id && m.voter);
    let mut leader_lag = None;
    if ready && !voter {
        leader_lag = cluster
            .lag_behind_leader(cluster.deadlines.rpc.min(LEARNER_READY_TIMEOUT))
            .await;
        ready = leader_lag.is_some_and(|l| l <= LEARNER_READY_MAX_LAG);
    }
    let body = serde_json::json!({
        "ready": ready, "leader": s.leader, "apply_lag": lag, "voter": voter, "lag_behind_leader": leader_lag,
        "not_serving": serving.err(),
    });
    (ready, body)
}

async fn digest(state: web::Data<AppState>) -> HttpResponse {
    let sm = state.cluster.sm.clone();
    match web::block(move || sm.digest()).await {
        Ok(Ok((applied, sessions, digest))) => HttpResponse::Ok().json(serde_json::json!({
            "id": state.cluster.id,
            "applied_index": applied.map(|l| l.index),
            "sessions": sessions,
            "digest": digest,
        })),
        Ok(Err(e)) => crate::request_scope::local_read_failed("digest", e),
        Err(e) => crate::request_scope::local_read_failed("digest", e),
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(&state.cluster))
}

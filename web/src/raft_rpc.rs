//! Incoming internal RPC (`/raft/*`): openraft's append-entries, vote and snapshot, plus our
//! forwarded writes and read index. Every request is authenticated before its body is decoded:
//! a missing or wrong MAC is 401, an undecodable body is 400; neither touches Raft.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use openraft::raft::AppendEntriesRequest;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sessionraft_raft::{Command, TypeConfig};

use crate::auth::{PeerAuth, MAC_HEADER};
use crate::batcher::WriteBatcher;
use crate::cluster::Cluster;
use crate::network::paths;
use crate::rpc::{self, PeerRefusal, WriteReply, MAX_RPC_BYTES};

/// Shared state of the RPC handlers.
pub struct RpcState {
    pub cluster: Arc<Cluster>,
    pub auth: PeerAuth,
    /// This node's write batcher: on the leader, forwarded writes join its batches.
    pub batcher: Arc<WriteBatcher>,
}

/// Mount the internal RPC routes.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<RpcState>) {
    cfg.service(
        web::scope("/raft")
            .app_data(state)
            .app_data(web::PayloadConfig::new(MAX_RPC_BYTES))
            .route("/append", web::post().to(append))
            .route("/vote", web::post().to(vote))
            .route("/snapshot", web::post().to(snapshot))
            .route("/write", web::post().to(write))
            .route("/read-index", web::post().to(read_index))
            .route("/admin", web::post().to(admin)),
    );
}

fn plain(status: StatusCode, msg: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(msg.into())
}

/// Why an internal request was refused before it reached Raft.
enum Refused {
    Unauthorized(&'static str),
    BadRequest(String),
}

impl From<Refused> for HttpResponse {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Unauthorized(msg) => plain(StatusCode::UNAUTHORIZED, msg),
            Refused::BadRequest(msg) => plain(StatusCode::BAD_REQUEST, msg),
        }
    }
}

/// Authenticate (the MAC first, then the destination, the timestamp and the sender's replay
/// window: see `auth`), then decode the body.
fn authenticated<T: DeserializeOwned>(
    state: &RpcState,
    req: &HttpRequest,
    path: &str,
    body: &[u8],
) -> Result<T, Refused> {
    use crate::auth::{PresentedHeaders, SENDER_HEADER, TO_HEADER, TS_HEADER};
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let presented = PresentedHeaders {
        to: header(TO_HEADER),
        sender: header(SENDER_HEADER),
        ts: header(TS_HEADER),
        mac: header(MAC_HEADER),
    };
    // Our own messages (forwarded writes, read index, admin ops) must be addressed to this node
    // once it knows its address from its membership: a copy captured on its way to another
    // node is refused here. A replay of openraft's messages is harmless (Raft's term and log
    // checks), so those are not tied to an address.
    let own_addr = match path {
        paths::WRITE | paths::READ_INDEX | paths::ADMIN => {
            let metrics = state.cluster.raft.metrics();
            let m = metrics.borrow();
            m.membership_config
                .membership()
                .get_node(&state.cluster.id)
                .map(|n| n.addr.clone())
        }
        _ => None,
    };
    let checked = state.auth.check(
        path,
        body,
        presented,
        own_addr.as_deref(),
        crate::clock::now_ms(),
    );
    if let Err(failure) = checked {
        // No header value is logged: the reason, the path and the peer say enough.
        tracing::warn!(
            path,
            peer = ?req.peer_addr(),
            reason = %failure,
            refused_total = state.auth.refused_count(),
            "internal request refused"
        );
        return Err(Refused::Unauthorized(failure.message()));
    }
    rpc::decode(body).map_err(|e| {
        tracing::warn!(path, error = %e, "undecodable internal request");
        Refused::BadRequest(e.to_string())
    })
}

fn reply<T: Serialize>(value: &T) -> HttpResponse {
    match rpc::encode(value) {
        Ok(bytes) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(bytes),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn append(state: web::Data<RpcState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    match authenticated::<AppendEntriesRequest<TypeConfig>>(&state, &req, paths::APPEND, &body) {
        Ok(rpc) => {
            state.cluster.leader_contact.note();
            let timed = !rpc.entries.is_empty();
            let started = std::time::Instant::now();
            let resp = state.cluster.raft.append_entries(rpc).await;
            if timed {
                crate::metrics::since(&state.cluster.stages.append_follower, started);
            }
            reply(&resp)
        }
        Err(r) => r.into(),
    }
}

async fn vote(state: web::Data<RpcState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    match authenticated::<openraft::raft::VoteRequest<sessionraft_raft::NodeId>>(
        &state,
        &req,
        paths::VOTE,
        &body,
    ) {
        Ok(rpc) => {
            // Counted before the core sees it: a lease check outside the core must not trust
            // a view in which this node leads while it may be granting its vote (lease.rs).
            let guard = state
                .cluster
                .lease
                .vote_request(rpc.vote.leader_id().get_term());
            let resp = state.cluster.raft.vote(rpc).await;
            if resp.as_ref().is_ok_and(|r| !r.vote_granted) {
                guard.refused();
            }
            reply(&resp)
        }
        Err(r) => r.into(),
    }
}

async fn snapshot(state: web::Data<RpcState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    match authenticated(&state, &req, paths::SNAPSHOT, &body) {
        Ok(rpc) => reply(&state.cluster.raft.install_snapshot(rpc).await),
        Err(r) => r.into(),
    }
}

async fn write(state: web::Data<RpcState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let cmd: Command = match authenticated(&state, &req, paths::WRITE, &body) {
        Ok(c) => c,
        Err(r) => return r.into(),
    };
    let c = &state.cluster;
    if !c.is_leader() {
        let (leader_id, leader_addr) = match c.leader() {
            Some((id, addr)) if id != c.id => (Some(id), addr),
            _ => (None, None),
        };
        return reply::<WriteReply>(&Err(PeerRefusal::NotLeader {
            leader_id,
            leader_addr,
        }));
    }
    // On the leader the forwarded batch joins the local batcher's next log entry, together with
    // this node's own writes and those forwarded by the other followers (group commit across
    // the cluster). A retry inside the batcher after an ambiguous attempt is reported as a
    // failure, so the follower keeps treating the outcome as ambiguous.
    let out: WriteReply = match state.batcher.write(cmd).await {
        Ok(p) if !p.after_ambiguous_attempt => Ok(p.response),
        Ok(_) => Err(PeerRefusal::Failed(
            "outcome ambiguous: leadership moved while committing".into(),
        )),
        Err(e) => Err(PeerRefusal::Failed(e.to_string())),
    };
    reply(&out)
}

async fn read_index(
    state: web::Data<RpcState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    match authenticated::<()>(&state, &req, paths::READ_INDEX, &body) {
        Ok(()) => reply(&state.cluster.leader_read_index().await),
        Err(r) => r.into(),
    }
}

async fn admin(state: web::Data<RpcState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let op: crate::rpc::AdminOp = match authenticated(&state, &req, paths::ADMIN, &body) {
        Ok(op) => op,
        Err(r) => return r.into(),
    };
    let outcome: crate::rpc::AdminReply = if state.cluster.is_leader() {
        state.cluster.admin_on_leader(op).await
    } else {
        Err(crate::rpc::AdminRefusal::Unavailable(
            "not the leader; retry through the current leader".into(),
        ))
    };
    reply(&outcome)
}

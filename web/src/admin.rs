//! The admin HTTP API (`/admin/*`), behind the admin token (`Authorization: Bearer <token>`,
//! compared in constant time). Without a valid token every admin route answers 401 and does
//! nothing. The token never appears in logs, `/metrics` or `/cluster/status`.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use sessionraft_raft::{Command, Response};
use sha2::{Digest, Sha256};

use crate::admin_backup;
use crate::clock::{key_hash, now_ms};
use crate::cluster::Cluster;
use crate::rpc::{AdminOp, AdminRefusal};

/// Shared state of the admin routes.
pub struct AdminState {
    pub cluster: Arc<Cluster>,
    /// Where backups and restores spool their files (under the node's data dir).
    pub(crate) spool_dir: std::path::PathBuf,
    token_digest: [u8; 32],
    /// No token configured: every admin request is refused.
    disabled: bool,
}

impl AdminState {
    /// Admin routes guarded by `token`; backups spool under `spool_dir`.
    pub fn new(cluster: Arc<Cluster>, token: &[u8], spool_dir: std::path::PathBuf) -> Self {
        Self {
            cluster,
            spool_dir,
            token_digest: Sha256::digest(token).into(),
            disabled: token.is_empty(),
        }
    }

    /// Whether the request carries the admin token. Constant time: both sides are hashed to 32
    /// bytes and compared without an early exit.
    fn authorized(&self, req: &HttpRequest) -> bool {
        if self.disabled {
            return false;
        }
        let Some(given) = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        given
            .iter()
            .zip(self.token_digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Mount the admin routes.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AdminState>) {
    cfg.service(
        web::scope("/admin")
            .app_data(state)
            .app_data(web::JsonConfig::default().limit(4096))
            .route("/snapshot", web::post().to(snapshot))
            .route("/backup", web::get().to(admin_backup::take_backup))
            .route("/restore", web::post().to(admin_backup::restore))
            .route("/nodes", web::post().to(add_learner))
            .route("/nodes/{id}/promote", web::post().to(promote))
            .route("/nodes/{id}/remove", web::post().to(remove))
            .route("/users/{user}/sessions", web::get().to(user_sessions))
            .route("/users/{user}/revoke", web::post().to(revoke_user)),
    );
}

/// Proof that a request carries the admin token: an extractor every admin handler takes, so
/// no handler can forget the check. Without the token the request ends here with 401.
pub struct Authorized;

/// The 401 of an admin request without a valid token.
#[derive(Debug, thiserror::Error)]
#[error("admin token required (Authorization: Bearer <token>)")]
pub struct AdminDenied;

impl actix_web::ResponseError for AdminDenied {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::UNAUTHORIZED
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .json(serde_json::json!({ "error": self.to_string() }))
    }
}

impl actix_web::FromRequest for Authorized {
    type Error = AdminDenied;
    type Future = std::future::Ready<Result<Self, AdminDenied>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let ok = req
            .app_data::<web::Data<AdminState>>()
            .is_some_and(|state| state.authorized(req));
        std::future::ready(if ok { Ok(Authorized) } else { Err(AdminDenied) })
    }
}

/// An admin error reply `{"ok": false, "error": ...}`; a 503 carries `Retry-After`.
pub(crate) fn error(
    status: actix_web::http::StatusCode,
    msg: impl std::fmt::Display,
) -> HttpResponse {
    let mut r = HttpResponse::build(status);
    if status == actix_web::http::StatusCode::SERVICE_UNAVAILABLE {
        r.insert_header((header::RETRY_AFTER, "1"));
    }
    r.json(serde_json::json!({ "ok": false, "error": msg.to_string() }))
}

fn unavailable(e: impl std::fmt::Display) -> HttpResponse {
    error(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, e)
}

async fn run(state: &AdminState, op: AdminOp) -> HttpResponse {
    match state.cluster.admin(op).await {
        Ok(msg) => HttpResponse::Ok().json(serde_json::json!({ "ok": true, "message": msg })),
        Err(AdminRefusal::Refused(e)) => {
            HttpResponse::BadRequest().json(serde_json::json!({ "ok": false, "error": e }))
        }
        Err(AdminRefusal::Unavailable(e)) => unavailable(e),
    }
}

async fn snapshot(_: Authorized, state: web::Data<AdminState>) -> HttpResponse {
    run(&state, AdminOp::Snapshot).await
}

#[derive(Deserialize)]
struct NewNode {
    id: u64,
    addr: String,
}

async fn add_learner(
    _: Authorized,
    state: web::Data<AdminState>,
    body: web::Json<NewNode>,
) -> HttpResponse {
    if body.addr.parse::<std::net::SocketAddr>().is_err() {
        return HttpResponse::BadRequest()
            .json(serde_json::json!({ "ok": false, "error": format!("addr: {:?} is not host:port", body.addr) }));
    }
    let op = AdminOp::AddLearner {
        id: body.id,
        addr: body.addr.clone(),
    };
    run(&state, op).await
}

async fn promote(_: Authorized, state: web::Data<AdminState>, id: web::Path<u64>) -> HttpResponse {
    run(&state, AdminOp::Promote { id: *id }).await
}

async fn remove(_: Authorized, state: web::Data<AdminState>, id: web::Path<u64>) -> HttpResponse {
    run(&state, AdminOp::Remove { id: *id }).await
}

async fn user_sessions(
    _: Authorized,
    state: web::Data<AdminState>,
    user: web::Path<String>,
) -> HttpResponse {
    if let Err(e) = state.cluster.read_barrier().await {
        return unavailable(e);
    }
    match state.cluster.sm.sessions_of_user(&user, now_ms()) {
        Ok(list) => {
            let sessions: Vec<serde_json::Value> = list
                .iter()
                .map(|(key, s)| {
                    serde_json::json!({
                        "sid_hash": key_hash(key),
                        "created_at_ms": s.created_at_ms,
                        "expires_at_ms": s.expires_at_ms,
                        "version": s.version,
                    })
                })
                .collect();
            HttpResponse::Ok()
                .json(serde_json::json!({ "user": user.as_str(), "sessions": sessions }))
        }
        Err(e) => {
            HttpResponse::InternalServerError().json(serde_json::json!({ "error": e.to_string() }))
        }
    }
}

async fn revoke_user(
    _: Authorized,
    state: web::Data<AdminState>,
    user: web::Path<String>,
) -> HttpResponse {
    let cmd = Command::DeleteUser { user: user.clone() };
    match state.cluster.propose(cmd).await {
        Ok(p) => match p.response {
            Response::Count(n) => {
                tracing::info!(revoked = n, "revoked every session of a user");
                HttpResponse::Ok().json(serde_json::json!({ "user": user.as_str(), "revoked": n }))
            }
            Response::Rejected(r) => {
                HttpResponse::BadRequest().json(serde_json::json!({ "error": r }))
            }
            other => HttpResponse::InternalServerError()
                .json(serde_json::json!({ "error": format!("unexpected response {other:?}") })),
        },
        Err(e) => unavailable(e),
    }
}

//! Access to the admin API: its shared state ([`AdminState`]), the token check (constant time)
//! and the [`Authorized`] extractor every admin handler takes, and the shape of an admin error
//! reply. Used by `admin` (membership, sessions) and `admin_backup` (backup, restore).

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sessionraft_raft::consensus::cluster::Cluster;
use sha2::{Digest, Sha256};

/// Shared state of the admin routes.
pub struct AdminState {
    pub cluster: Arc<Cluster>,
    /// Where backups and restores spool their files (under the node's data dir).
    pub(crate) spool_dir: std::path::PathBuf,
    token_digest: [u8; 32],
    /// No token configured: every admin request is refused.
    disabled: bool,
    /// The node's actors, when the test switch is on (`SESSIONRAFT_UNSAFE_ACTOR_PANICS=1`):
    /// `POST /admin/actors/{name}/panic` makes one panic.
    pub(crate) actor_panics: Option<sessionraft_raft::consensus::actors::PanicSwitch>,
}

impl AdminState {
    /// Admin routes guarded by `token`; backups spool under `spool_dir`.
    /// With the actor test switch (`SESSIONRAFT_UNSAFE_ACTOR_PANICS=1` only).
    pub fn with_actor_panics(
        mut self,
        switch: sessionraft_raft::consensus::actors::PanicSwitch,
    ) -> Self {
        self.actor_panics = Some(switch);
        self
    }

    pub fn new(cluster: Arc<Cluster>, token: &[u8], spool_dir: std::path::PathBuf) -> Self {
        Self {
            cluster,
            spool_dir,
            token_digest: Sha256::digest(token).into(),
            disabled: token.is_empty(),
            actor_panics: None,
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

/// This node failed at its own part of an admin request (its spool file, its replica, a
/// blocking task): 503 `not-applied` with `Retry-After`, logged. Nothing was changed; a later
/// try, or another node, may succeed. Never a 500.
pub fn node_failed(what: &str, e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "{what}: this node failed");
    let mut r = error(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        format!("{what}: {e}; nothing changed (this node failed: try again, or another node)"),
    );
    r.headers_mut().insert(
        header::HeaderName::from_static(crate::request_scope::OUTCOME_HEADER),
        header::HeaderValue::from_static("not-applied"),
    );
    r
}

/// A restore stopped after some of its entries may have been replicated: 504 `unknown`
/// (restoring is idempotent: running it again with `force` finishes it).
pub fn restore_stopped(msg: impl std::fmt::Display) -> HttpResponse {
    let mut r = error(actix_web::http::StatusCode::GATEWAY_TIMEOUT, msg);
    r.headers_mut().insert(
        header::HeaderName::from_static(crate::request_scope::OUTCOME_HEADER),
        header::HeaderValue::from_static("unknown"),
    );
    r
}

/// An admin error reply `{"ok": false, "error": ...}`; a 503 carries `Retry-After`.
pub fn error(status: actix_web::http::StatusCode, msg: impl std::fmt::Display) -> HttpResponse {
    let mut r = HttpResponse::build(status);
    if status == actix_web::http::StatusCode::SERVICE_UNAVAILABLE {
        r.insert_header((header::RETRY_AFTER, "1"));
    }
    r.json(serde_json::json!({ "ok": false, "error": msg.to_string() }))
}

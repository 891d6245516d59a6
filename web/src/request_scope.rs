//! Per-request memory shared between `RaftSessionStore` and the [`StoreErrors`] middleware.
//!
//! actix-session turns every store error into an opaque 500 (its `e500`), keeping the cause in
//! an `InternalError` we cannot look inside. So the store also records *why* it failed in a
//! task-local scope that the wrapping middleware opened around the request; the middleware then
//! answers 503 + `Retry-After` (no quorum, not applied), 504 + `Retry-After` (no quorum, outcome
//! unknown), 409 (lost-update conflict), 413 (state too large)
//! or 400, instead of the 500. The scope also remembers the version and creation time of the
//! session loaded by this request, for version-checked updates and the absolute TTL.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use std::future::Future;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use futures_util::future::LocalBoxFuture;

/// On a store failure without a quorum: `not-applied` with a 503 (the request certainly changed
/// nothing: resend it, here or on another node; HAProxy does so itself, `retry-on 503`) or
/// `unknown` with a 504 (a write may have been applied: never resent by the load balancer, a
/// client that retries it accepts that it may apply twice).
pub const OUTCOME_HEADER: &str = "x-sessionraft-outcome";

/// Why the store failed a request, as the client should see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreFailure {
    #[error("the session cluster has no quorum right now; retry shortly")]
    Unavailable {
        retry_after_secs: u32,
        /// The request certainly was not applied (nothing was proposed, or the leader refused
        /// it): a client or a load balancer may resend it. `false`: its outcome is unknown.
        not_applied: bool,
    },
    /// This node already works on its limit of session requests (`[runtime]
    /// max_requests_in_flight`): refused before anything was read or written.
    #[error(
        "this node is at its limit of {limit} requests in flight; nothing was applied, retry shortly"
    )]
    Overloaded { limit: usize },
    #[error("the session was changed by a concurrent request; retry")]
    Conflict,
    #[error("session state of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("invalid session data: {0}")]
    Invalid(String),
}

/// How a failed replicated operation is answered over HTTP, by cause: 503 `not-applied` with
/// `Retry-After` when it certainly was not applied (no quorum, leader changed, timed out in
/// the queue, overloaded, not yet allowed by the cluster version), 504 `unknown` when it may
/// have been (the leader was lost with the write in flight, a node failure).
impl From<&sessionraft_raft::consensus::cluster::ClusterError> for StoreFailure {
    fn from(e: &sessionraft_raft::consensus::cluster::ClusterError) -> Self {
        StoreFailure::Unavailable {
            retry_after_secs: 1,
            not_applied: e.not_applied(),
        }
    }
}

impl ResponseError for StoreFailure {
    fn status_code(&self) -> StatusCode {
        match self {
            StoreFailure::Unavailable {
                not_applied: true, ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            StoreFailure::Unavailable {
                not_applied: false, ..
            } => StatusCode::GATEWAY_TIMEOUT,
            StoreFailure::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            StoreFailure::Conflict => StatusCode::CONFLICT,
            StoreFailure::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            StoreFailure::Invalid(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        let retry = match self {
            StoreFailure::Unavailable {
                retry_after_secs,
                not_applied,
            } => Some((*retry_after_secs, *not_applied)),
            StoreFailure::Overloaded { .. } => Some((1, true)),
            _ => None,
        };
        if let Some((retry_after_secs, not_applied)) = retry {
            r.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            r.insert_header((
                OUTCOME_HEADER,
                if not_applied {
                    "not-applied"
                } else {
                    "unknown"
                },
            ));
        }
        r.json(serde_json::json!({ "error": self.to_string() }))
    }
}

/// This node could not read its own replica (a storage error): 503 `not-applied` with
/// `Retry-After` (a read changes nothing; another node may answer), never a 500. Logged.
pub fn local_read_failed(what: &str, e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "{what}: reading the local replica failed");
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "1"))
        .insert_header((OUTCOME_HEADER, "not-applied"))
        .json(serde_json::json!({ "error": format!("{what}: {e}") }))
}

/// What the store learned about a session while serving this request.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    pub version: u64,
    pub created_at_ms: u64,
    /// Its idle expiry as stored when loaded.
    pub expires_at_ms: u64,
}

#[derive(Default)]
struct Scope {
    failure: RefCell<Option<StoreFailure>>,
    loaded: RefCell<HashMap<String, Loaded>>,
    /// A delete the store held back: actix-session's `renew()` is `delete(old)` then
    /// `save(state)`, which the store turns into one atomic `Rename`; a delete no save follows
    /// (`purge()`) is carried out by [`StoreErrors`] when the request is done.
    deferred_delete: RefCell<Option<(String, DeferredDelete)>>,
}

/// How to carry out a held-back delete once the request is done: the store hands in a closure
/// over itself, so this module never names the store's type.
pub type DeferredDelete =
    Box<dyn FnOnce() -> futures_util::future::LocalBoxFuture<'static, Result<(), StoreFailure>>>;

tokio::task_local! {
    static SCOPE: Rc<Scope>;
}

/// Record why the store failed (first failure wins). No-op outside the middleware.
pub fn fail(f: StoreFailure) {
    let _ = SCOPE.try_with(|s| {
        let mut slot = s.failure.borrow_mut();
        if slot.is_none() {
            *slot = Some(f);
        }
    });
}

/// Remember the loaded session's version and creation time.
pub fn remember(key: &str, loaded: Loaded) {
    let _ = SCOPE.try_with(|s| s.loaded.borrow_mut().insert(key.to_string(), loaded));
}

/// Hold back the delete of `key` until the request is done (or a `save` in this same request
/// turns it into a rename). False outside the middleware: the caller deletes at once.
pub fn defer_delete(key: &str, delete: DeferredDelete) -> bool {
    SCOPE
        .try_with(|s| {
            *s.deferred_delete.borrow_mut() = Some((key.to_string(), delete));
        })
        .is_ok()
}

/// Take the held-back delete, if any: a `save` renews that session instead.
pub fn take_deferred_delete() -> Option<String> {
    SCOPE
        .try_with(|s| s.deferred_delete.borrow_mut().take().map(|(k, _)| k))
        .ok()
        .flatten()
}

/// What this request loaded under `key`, if anything.
pub fn loaded(key: &str) -> Option<Loaded> {
    SCOPE
        .try_with(|s| s.loaded.borrow().get(key).copied())
        .ok()
        .flatten()
}

/// Middleware that must wrap actix-session's `SessionMiddleware` (outside it): opens the scope
/// and maps recorded store failures to their statuses instead of an opaque 500. Part of
/// `Server::sessions`.
pub struct StoreErrors;

impl<S, B> Transform<S, ServiceRequest> for StoreErrors
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = StoreErrorsService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(StoreErrorsService {
            service: Rc::new(service),
        }))
    }
}

/// The service of [`StoreErrors`].
pub struct StoreErrorsService<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for StoreErrorsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse<B>, actix_web::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let inner = self.service.call(req);
        Box::pin(in_scope(inner))
    }
}

/// Run the inner service's future inside a fresh scope; then carry out a held-back delete and
/// turn a recorded failure into its status.
async fn in_scope<B>(
    inner: impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let scope = Rc::new(Scope::default());
    let res = SCOPE.scope(scope.clone(), inner).await;
    let deferred = scope.deferred_delete.borrow_mut().take();
    if let Some((_, delete)) = deferred {
        // A purge: the session goes now, before the client hears that it is gone.
        if let Err(f) = delete().await {
            return Err(f.into());
        }
    }
    let failure = scope.failure.borrow_mut().take();
    match (res, failure) {
        (Err(_), Some(f)) => Err(f.into()),
        (Ok(r), Some(f)) if r.status() == StatusCode::INTERNAL_SERVER_ERROR => Err(f.into()),
        (res, _) => res,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::reply::Reply;
    use sessionraft_raft::consensus::cluster::ClusterError;

    /// One of every cause, with the HTTP status and outcome header, and the Redis-protocol
    /// error code, it must be answered with. The match has no wildcard: a new cause does not
    /// compile until it is placed in this table.
    fn expected(e: &ClusterError) -> (u16, &'static str, &'static str) {
        match e {
            ClusterError::NoQuorum { .. } => (503, "not-applied", "TRYAGAIN"),
            ClusterError::LeaderChanged { .. } => (503, "not-applied", "TRYAGAIN"),
            ClusterError::QueueTimeout { .. } => (503, "not-applied", "TRYAGAIN"),
            ClusterError::Overloaded(_) => (503, "not-applied", "TRYAGAIN"),
            ClusterError::NotYet(_) => (503, "not-applied", "TRYAGAIN"),
            ClusterError::OutcomeUnknown { .. } => (504, "unknown", "CLUSTERDOWN"),
            ClusterError::Fatal(_) => (504, "unknown", "ERR"),
        }
    }

    #[test]
    fn every_cause_maps_to_its_status_and_redis_reply() {
        let causes = [
            ClusterError::NoQuorum {
                reason: "no leader".into(),
            },
            ClusterError::LeaderChanged { term: 7 },
            ClusterError::QueueTimeout { waited_ms: 10_001 },
            ClusterError::Overloaded("4096 writes are waiting".into()),
            ClusterError::NotYet("the keyspace needs cluster version 0.2".into()),
            ClusterError::OutcomeUnknown {
                reason: "the leader could not commit in time".into(),
            },
            ClusterError::Fatal("storage failed".into()),
        ];
        for e in &causes {
            let (status, outcome, code) = expected(e);
            let r = StoreFailure::from(e).error_response();
            assert_eq!(r.status().as_u16(), status, "{e:?}");
            assert_eq!(
                r.headers()
                    .get(OUTCOME_HEADER)
                    .and_then(|v| v.to_str().ok()),
                Some(outcome),
                "{e:?}"
            );
            assert!(r.headers().contains_key(header::RETRY_AFTER), "{e:?}");
            assert_ne!(status, 500, "{e:?}: never a 500");
            assert_eq!(e.not_applied(), status == 503, "{e:?}");
            match crate::resp::commands::no_quorum(e) {
                Reply::Error(text) => assert!(
                    text.starts_with(&format!("{code} ")),
                    "{e:?} answered -{text}"
                ),
                other => panic!("{e:?} answered {other:?}, not an error"),
            }
        }
    }
}

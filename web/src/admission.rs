//! A bound on the session requests one node works on at once (`[runtime]
//! max_requests_in_flight`).
//!
//! Above its capacity a node that admits every request only makes every request slower: each
//! one decrypts its cookie, loads its session and waits its turn for the CPU, and once the
//! time spent before a write even reaches the write queue passes the request deadline, every
//! answer comes too late although none is refused. [`Admission`] is the outermost layer of
//! [`crate::Server::sessions`]: a request arriving while the node already works on `limit`
//! session requests is answered at once with 503, `Retry-After: 1` and
//! `x-sessionraft-outcome: not-applied` (nothing was read or written; HAProxy's `retry-on 503`
//! resends it to another node), before its cookie is decrypted or its session loaded, and
//! counted in `sessionraft_http_requests_refused_total{reason="in-flight"}`
//! (`sessionraft_http_requests_in_flight` is the count). The node's own routes — the peer
//! transport, probes, `/metrics`, `/cluster/*`, the admin API — are never counted nor refused,
//! even when an application wraps them in [`crate::Server::sessions`] too.
//!
//! One counter per node, shared by every HTTP worker; a request counts from the moment this
//! layer sees it until its response is made (its body streams outside the count).

use std::future::{ready, Ready};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use futures_util::future::LocalBoxFuture;

use crate::request_scope::StoreFailure;

/// The default of `[runtime] max_requests_in_flight`: by Little's law, 1,024 requests at the
/// write capacity measured on two cores (~4,000 session writes/s per node) wait ~0.25 s, well
/// inside the default 3 s request deadline, while a closed-loop load of 2,000 users spread over
/// three nodes (~670 each) is never refused.
pub const DEFAULT_MAX_REQUESTS_IN_FLIGHT: usize = 1024;

/// The in-flight bound of one node; cheap to clone (every clone shares the count).
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Gate>,
}

struct Gate {
    limit: usize,
    /// The count (`/metrics` reads the same one at scrape time).
    in_flight: Arc<AtomicUsize>,
    refused: Option<prometheus::IntCounter>,
}

impl Admission {
    /// A bound of `limit` requests in flight (at least 1), counted in `in_flight`; `refused`
    /// counts the refusals.
    pub fn new(
        limit: usize,
        in_flight: Arc<AtomicUsize>,
        refused: Option<prometheus::IntCounter>,
    ) -> Self {
        Self {
            inner: Arc::new(Gate {
                limit: limit.max(1),
                in_flight,
                refused,
            }),
        }
    }

    /// The bound.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// Take a place, or `None` when all `limit` are taken (the refusal is counted).
    fn enter(&self) -> Option<Place> {
        let before = self.inner.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= self.inner.limit {
            self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
            if let Some(c) = &self.inner.refused {
                c.inc();
            }
            return None;
        }
        Some(Place {
            gate: self.inner.clone(),
        })
    }
}

/// The paths of [`crate::Server::routes`] — the peer transport, probes, `/metrics`, the
/// cluster status and events, the admin API: never counted nor refused, also when an
/// application wraps its whole `App` (routes included) in [`crate::Server::sessions`].
const NODE_ROUTES: [&str; 6] = [
    "/raft/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/cluster/",
    "/admin/",
];

fn is_node_route(path: &str) -> bool {
    NODE_ROUTES.iter().any(|p| path.starts_with(p))
}

/// One admitted request's place; given back when dropped (answered, failed or cancelled).
struct Place {
    gate: Arc<Gate>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, B> Transform<S, ServiceRequest> for Admission
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = AdmissionService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AdmissionService {
            service: Rc::new(service),
            admission: self.clone(),
        }))
    }
}

/// The service of [`Admission`].
pub struct AdmissionService<S> {
    service: Rc<S>,
    admission: Admission,
}

impl<S, B> Service<ServiceRequest> for AdmissionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse<B>, actix_web::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if is_node_route(req.path()) {
            return Box::pin(self.service.call(req));
        }
        match self.admission.enter() {
            Some(place) => {
                let inner = self.service.call(req);
                Box::pin(async move {
                    let res = inner.await;
                    drop(place);
                    res
                })
            }
            None => {
                let failure = StoreFailure::Overloaded {
                    limit: self.admission.limit(),
                };
                Box::pin(ready(Err(failure.into())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_scope::OUTCOME_HEADER;
    use actix_web::http::header::RETRY_AFTER;
    use actix_web::{test, web, App, HttpResponse};
    use std::sync::Mutex;
    use tokio::sync::oneshot;

    /// What the client gets: the response, or the error's (as actix-web answers it).
    async fn answer<S, R>(app: &S, req: R) -> HttpResponse
    where
        S: Service<R, Response = ServiceResponse, Error = actix_web::Error>,
    {
        match app.call(req).await {
            Ok(r) => r.into_parts().1,
            Err(e) => e.error_response(),
        }
    }

    /// Requests to `/hold` wait until the test lets them go; `/now` answers at once.
    #[actix_web::test]
    async fn a_request_over_the_bound_is_refused_at_once_and_a_freed_place_admits_again() {
        let refused = prometheus::IntCounter::new("refused", "refused").unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let admission = Admission::new(2, count.clone(), Some(refused.clone()));
        let gates: Arc<Mutex<Vec<oneshot::Sender<()>>>> = Arc::default();
        let held = gates.clone();
        let app = test::init_service(
            App::new()
                .wrap(admission.clone())
                .route(
                    "/hold",
                    web::get().to(move || {
                        let (tx, rx) = oneshot::channel();
                        held.lock().unwrap().push(tx);
                        async move {
                            let _ = rx.await;
                            HttpResponse::Ok().body("held")
                        }
                    }),
                )
                .route("/now", web::get().to(|| async { "now" })),
        )
        .await;
        let app = Rc::new(app);
        // two requests take both places and wait
        let mut waiting = Vec::new();
        for _ in 0..2 {
            let app = app.clone();
            waiting.push(tokio::task::spawn_local(async move {
                let req = test::TestRequest::get().uri("/hold").to_request();
                test::call_service(&*app, req).await.status().as_u16()
            }));
        }
        while gates.lock().unwrap().len() < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            (admission.in_flight(), count.load(Ordering::Relaxed)),
            (2, 2)
        );
        // a third is refused at once: 503, not applied, Retry-After, counted
        let req = test::TestRequest::get().uri("/now").to_request();
        let resp = answer(&*app, req).await;
        assert_eq!(resp.status().as_u16(), 503);
        assert_eq!(
            resp.headers()
                .get(OUTCOME_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("not-applied")
        );
        assert_eq!(
            resp.headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let body = actix_web::body::to_bytes(resp.into_body()).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("2 requests in flight"), "{text}");
        assert_eq!(refused.get(), 1);
        assert_eq!(admission.in_flight(), 2, "a refusal holds no place");
        // one held request answers: its place is free again
        let first = gates.lock().unwrap().remove(0);
        let _ = first.send(());
        assert_eq!(waiting.remove(0).await.unwrap(), 200);
        assert_eq!(admission.in_flight(), 1);
        let req = test::TestRequest::get().uri("/now").to_request();
        assert_eq!(answer(&*app, req).await.status().as_u16(), 200);
        // a request given up half-way (its future dropped) gives its place back
        let last = gates.lock().unwrap().remove(0);
        waiting.remove(0).abort();
        tokio::task::yield_now().await;
        drop(last);
        let mut spins = 0;
        while admission.in_flight() != 0 && spins < 1000 {
            tokio::task::yield_now().await;
            spins += 1;
        }
        assert_eq!(
            (admission.in_flight(), count.load(Ordering::Relaxed)),
            (0, 0)
        );
        assert_eq!(refused.get(), 1);
    }

    #[actix_web::test]
    async fn the_node_routes_are_never_refused() {
        let admission = Admission::new(1, Arc::default(), None);
        let app = test::init_service(
            App::new()
                .wrap(admission.clone())
                .default_service(web::to(|| async { "any" })),
        )
        .await;
        // the one place taken by a request that never ends
        let _held = admission.enter().expect("a place");
        for path in [
            "/raft/append",
            "/healthz",
            "/readyz",
            "/metrics",
            "/cluster/status",
            "/admin/users",
        ] {
            let req = test::TestRequest::get().uri(path).to_request();
            assert_eq!(answer(&app, req).await.status().as_u16(), 200, "{path}");
        }
        for path in ["/api/counter", "/", "/rafts", "/cluster"] {
            let req = test::TestRequest::get().uri(path).to_request();
            assert_eq!(answer(&app, req).await.status().as_u16(), 503, "{path}");
        }
    }

    #[actix_web::test]
    async fn a_bound_of_zero_is_one() {
        assert_eq!(Admission::new(0, Arc::default(), None).limit(), 1);
    }
}

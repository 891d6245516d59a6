//! The actix routes of the peer transport (`/raft/*`): each one hands the path, the presented
//! authentication headers and the body to `sessionraft_raft::transport::inbound::Inbound`,
//! which decides what the request means, and maps its `Answer` to an HTTP response.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use sessionraft_raft::transport::auth::{
    PresentedHeaders, MAC_HEADER, SENDER_HEADER, TO_HEADER, TS_HEADER,
};
use sessionraft_raft::transport::inbound::{Answer, Inbound, RpcHeaders};
use sessionraft_raft::transport::network::paths;
use sessionraft_raft::transport::wire::MAX_RPC_BYTES;
use sessionraft_raft::version::{RELEASE, TARGET_HEADER, VERSION_HEADER, WIRE_HEADER};

/// Mount the internal RPC routes.
pub fn configure(cfg: &mut web::ServiceConfig, inbound: web::Data<Inbound>) {
    let mut scope = web::scope("/raft")
        .app_data(inbound)
        .app_data(web::PayloadConfig::new(MAX_RPC_BYTES));
    for path in paths::ALL {
        let tail = path.trim_start_matches("/raft");
        scope = scope.route(
            tail,
            web::post().to(
                move |inbound: web::Data<Inbound>, req: HttpRequest, body: web::Bytes| async move {
                    answer(&inbound, path, &req, &body).await
                },
            ),
        );
    }
    cfg.service(scope);
}

async fn answer(inbound: &Inbound, path: &str, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let presented = PresentedHeaders {
        to: header(TO_HEADER),
        sender: header(SENDER_HEADER),
        ts: header(TS_HEADER),
        mac: header(MAC_HEADER),
    };
    let headers = RpcHeaders {
        presented,
        wire: header(WIRE_HEADER),
        cluster_target: header(TARGET_HEADER),
    };
    let mut res = match inbound.handle(path, headers, req.peer_addr(), body).await {
        Answer::Reply(bytes) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(bytes),
        Answer::Unauthorized(msg) => plain(StatusCode::UNAUTHORIZED, msg),
        Answer::BadRequest(msg) => plain(StatusCode::BAD_REQUEST, msg),
        Answer::Internal(msg) => plain(StatusCode::INTERNAL_SERVER_ERROR, msg),
        Answer::UnknownPath => plain(StatusCode::NOT_FOUND, "no such internal path"),
    };
    // Every reply names this node's release: the leader's cluster version rests on it.
    res.headers_mut().insert(
        HeaderName::from_static(VERSION_HEADER),
        HeaderValue::from_static(RELEASE),
    );
    res
}

fn plain(status: StatusCode, msg: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(msg.into())
}

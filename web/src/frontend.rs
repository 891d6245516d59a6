//! The embedded web frontend: the demo app at `/` and the cluster dashboard at `/cluster`.
//! The assets are compiled into the binary (`include_str!`): no CDN, no fetch at run time.

use std::sync::Arc;

use actix_web::{web, HttpResponse};

use sessionraft_raft::consensus::cluster::Cluster;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const CLUSTER_HTML: &str = include_str!("../assets/cluster.html");
const DASHBOARD_JS: &str = include_str!("../assets/dashboard.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

/// What `/api/nodes` needs.
pub struct FrontendState {
    pub cluster: Arc<Cluster>,
    /// The load balancer's URL, when one is configured.
    pub lb_url: Option<String>,
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(body)
}

/// The embedded assets: route, content type, body.
const ASSETS: [(&str, &str, &str); 5] = [
    ("/", "text/html; charset=utf-8", INDEX_HTML),
    ("/app.js", "text/javascript; charset=utf-8", APP_JS),
    ("/cluster", "text/html; charset=utf-8", CLUSTER_HTML),
    (
        "/dashboard.js",
        "text/javascript; charset=utf-8",
        DASHBOARD_JS,
    ),
    ("/style.css", "text/css; charset=utf-8", STYLE_CSS),
];

/// Mount the frontend routes (no session middleware needed: the pages call the API).
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<FrontendState>) {
    for (path, content_type, body) in ASSETS {
        cfg.route(
            path,
            web::get().to(move || async move { asset(content_type, body) }),
        );
    }
    cfg.app_data(state)
        .route(
            "/favicon.ico",
            web::get().to(|| async { HttpResponse::NoContent().finish() }),
        )
        .route("/api/nodes", web::get().to(nodes));
}

async fn nodes(state: web::Data<FrontendState>) -> HttpResponse {
    let m = state.cluster.raft.metrics().borrow().clone();
    // The scheme the nodes serve: https with `[tls]`.
    let scheme = state.cluster.peers.scheme();
    let nodes: Vec<serde_json::Value> = m
        .membership_config
        .membership()
        .nodes()
        .map(|(id, n)| serde_json::json!({ "id": id, "url": format!("{scheme}://{}", n.addr) }))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({
        "self": state.cluster.id,
        "nodes": nodes,
        "lb_url": state.lb_url,
    }))
}

//! The admin HTTP API (`/admin/*`), behind the admin token (`Authorization: Bearer <token>`,
//! compared in constant time). Without a valid token every admin route answers 401 and does
//! nothing. The token never appears in logs, `/metrics` or `/cluster/status`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use sessionraft_raft::{Command, Response};

use crate::admin_access::{error, AdminState, Authorized};
use crate::admin_backup;
use sessionraft_raft::clock::{key_hash, now_ms};
use sessionraft_raft::transport::wire::{AdminOp, AdminRefusal};

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
            .route("/users/{user}/revoke", web::post().to(revoke_user))
            .route("/actors/{name}/panic", web::post().to(panic_actor)),
    );
}

/// Test switch: make the node's actor `name` panic (it is restarted by its supervisor). Only
/// with `SESSIONRAFT_UNSAFE_ACTOR_PANICS=1`; 404 otherwise, and for an unknown name.
async fn panic_actor(
    _: Authorized,
    state: web::Data<AdminState>,
    name: web::Path<String>,
) -> HttpResponse {
    let Some(switch) = &state.actor_panics else {
        return error(
            actix_web::http::StatusCode::NOT_FOUND,
            "the actor test switch is off (SESSIONRAFT_UNSAFE_ACTOR_PANICS=1 turns it on)",
        );
    };
    if switch.inject(&name) {
        HttpResponse::Ok().json(serde_json::json!({ "ok": true, "actor": name.as_str() }))
    } else {
        error(
            actix_web::http::StatusCode::NOT_FOUND,
            format!("no actor {name:?} (actors: {:?})", switch.names()),
        )
    }
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
    // An IP or a DNS name: peers resolve it when they connect.
    if let Err(why) = crate::config::Address::parse(&body.addr) {
        return HttpResponse::BadRequest()
            .json(serde_json::json!({ "ok": false, "error": format!("addr: {why}") }));
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
        Err(e) => crate::request_scope::local_read_failed("user sessions", e),
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
            // applied, but the state machine answered something else: say so, not a 500
            other => {
                tracing::warn!(response = ?other, "revoke applied with an unexpected answer");
                HttpResponse::Ok().json(serde_json::json!({
                    "user": user.as_str(), "revoked": null, "response": format!("{other:?}"),
                }))
            }
        },
        // 503 only when the revoke certainly did not happen; 504 when it may have
        Err(e) => {
            use actix_web::ResponseError as _;
            crate::request_scope::StoreFailure::from(&e).error_response()
        }
    }
}

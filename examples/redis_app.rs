//! The baseline of the benchmarks: the demo API of a sessionraft node (`POST /api/counter`,
//! `GET /api/counter`, `POST /api/logout`) on stock actix-session with its `RedisSessionStore`,
//! with the same cookie settings as a node (`SessionCookie` in `web/src/server.rs`):
//! `Private` cookie content (signed and encrypted), `HttpOnly`, `SameSite=Lax`, not `Secure`,
//! named `id`, browser-session lifetime with a 30-minute idle TTL extended on every request.
//! One worker per CPU. `tests/it/resp_clients.rs` also points it at a sessionraft cluster's
//! Redis-protocol door.
//!
//! ```sh
//! cargo build --release --workspace --all-targets
//! redis-server --port 6379 --save '' &
//! target/release/examples/redis_app 127.0.0.1:8300 redis://127.0.0.1:6379
//! curl -c jar -b jar -X POST http://127.0.0.1:8300/api/counter   # {"counter":1,"served_by":0}
//! target/release/sessionraft bench --targets http://127.0.0.1:8300 --workload write \
//!     --connections 32 --duration 10
//! ```
//!
//! The cookie key is derived from `REDIS_APP_SECRET` (at least 32 bytes; a development default
//! otherwise), so several instances in front of one Redis accept each other's cookies.
//!
//! Over TLS: a `rediss://` URL (redis-rs with rustls, ring). The server is verified against the
//! system's roots, which rustls-native-certs reads from `SSL_CERT_FILE` when it is set:
//! `SSL_CERT_FILE=certs/ca.crt redis_app 127.0.0.1:8300 rediss://127.0.0.1:7200`. It presents no
//! client certificate (`RedisSessionStore` is built from a URL, which cannot name one).

use std::time::Duration;

use actix_session::config::{BrowserSession, CookieContentSecurity, TtlExtensionPolicy};
use actix_session::storage::RedisSessionStore;
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::{Key, SameSite};
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;

/// The idle TTL of a session (sessionraft's default `idle_ttl_secs`).
const IDLE_TTL: Duration = Duration::from_secs(1800);
const DEV_SECRET: &str = "redis-app-dev-secret-change-me-0123456789abcdef";

fn counter_of(session: &Session) -> Result<i64, actix_web::Error> {
    Ok(session.get::<i64>("counter")?.unwrap_or(0))
}

async fn increment(session: Session) -> actix_web::Result<HttpResponse> {
    let counter = counter_of(&session)?.saturating_add(1);
    session.insert("counter", counter)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "counter": counter, "served_by": 0 })))
}

async fn read_counter(session: Session) -> actix_web::Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "counter": counter_of(&session)?,
        "served_by": 0,
    })))
}

/// Ends the session: actix-session deletes it from Redis (`DEL`) and removes the cookie.
async fn logout(session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::Ok().json(serde_json::json!({ "signed_out": true, "served_by": 0 }))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

fn middleware(store: RedisSessionStore, key: Key) -> SessionMiddleware<RedisSessionStore> {
    SessionMiddleware::builder(store, key)
        .cookie_name("id".into())
        .cookie_secure(false)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_content_security(CookieContentSecurity::Private)
        .session_lifecycle(
            BrowserSession::default()
                .state_ttl(actix_web::cookie::time::Duration::seconds(
                    IDLE_TTL.as_secs() as i64,
                ))
                .state_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
        )
        .build()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(redis_url)) = (args.next(), args.next()) else {
        anyhow::bail!(
            "usage: redis_app LISTEN_ADDR REDIS_URL (e.g. 127.0.0.1:8300 redis://127.0.0.1:6379)"
        );
    };
    let secret = std::env::var("REDIS_APP_SECRET").unwrap_or_else(|_| DEV_SECRET.into());
    anyhow::ensure!(
        secret.len() >= 32,
        "REDIS_APP_SECRET must be at least 32 bytes"
    );
    let key = Key::derive_from(secret.as_bytes());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // rediss:// goes through rustls, and this build links both of its crypto providers (ring,
    // and aws-lc-rs by way of other test dependencies): name one, as the nodes do.
    let _ = rustls::crypto::ring::default_provider().install_default();

    actix_web::rt::System::new().block_on(async move {
        let store = RedisSessionStore::new(redis_url.as_str())
            .await
            .with_context(|| format!("connecting to Redis at {redis_url}"))?;
        println!(
            "redis_app: serving on http://{addr} with sessions in {redis_url}, {workers} workers"
        );
        HttpServer::new(move || {
            App::new()
                .route("/healthz", web::get().to(healthz))
                .service(
                    web::scope("/api")
                        .wrap(middleware(store.clone(), key.clone()))
                        .route("/counter", web::post().to(increment))
                        .route("/counter", web::get().to(read_counter))
                        .route("/logout", web::post().to(logout)),
                )
        })
        .workers(workers)
        .shutdown_timeout(5)
        .bind(&addr)
        .with_context(|| format!("binding {addr}"))?
        .run()
        .await
        .context("HTTP server")
    })
}

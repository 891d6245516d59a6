//! # sessionraft-web
//!
//! The HTTP side of a sessionraft node, and the API to embed one in your actix-web app:
//!
//! ```
//! use actix_session::Session;
//! use actix_web::{web, App, HttpServer};
//! use sessionraft_web::{Config, Server};
//!
//! async fn visits(session: Session) -> actix_web::Result<String> {
//!     let n = session.get::<u64>("visits")?.unwrap_or(0) + 1;
//!     session.insert("visits", n)?;
//!     Ok(format!("visits: {n}\n"))
//! }
//!
//! #[actix_web::main]
//! async fn main() -> anyhow::Result<()> {
//! #   // (hidden) a one-node cluster.toml in a temp dir, and a client that checks the app
//! #   let dir = tempfile::tempdir()?;
//! #   let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
//! #   std::fs::write(dir.path().join("cluster.toml"), format!(
//! #       "[cluster]\nname = \"doc\"\nsecret = \"doctest-secret-0123456789abcdef-0123\"\n\
//! #        admin_token = \"doctest-admin-token-0123\"\n\n\
//! #        [[node]]\nid = 1\nhttp_addr = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\n"))?;
//! #   std::env::set_current_dir(dir.path())?;
//!     let server = Server::start(Config::from_file("cluster.toml")?, 1)?;
//!     let app = server.clone();
//!     let http = HttpServer::new(move || {
//!         App::new()
//!             .configure(app.routes())
//!             .wrap(app.sessions())
//!             .route("/", web::get().to(visits))
//!     })
//!     .bind(server.http_addr())?
//!     .run();
//! #   let (handle, url) = (http.handle(), format!("http://127.0.0.1:{port}/"));
//! #   let checked = actix_web::rt::spawn(async move {
//! #       let user = reqwest::Client::builder().cookie_store(true).build()?;
//! #       for _ in 0..200 {
//! #           let ready = user.get(format!("{url}readyz")).send().await;
//! #           if ready.is_ok_and(|r| r.status() == 200) { break; }
//! #           actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
//! #       }
//! #       let first = user.get(&url).send().await?.text().await?;
//! #       let second = user.get(&url).send().await?.text().await?;
//! #       handle.stop(true).await;
//! #       anyhow::Ok((first, second))
//! #   });
//!     http.await?;
//!     server.shutdown();
//! #   let (first, second) = checked.await??;
//! #   assert_eq!((first.as_str(), second.as_str()), ("visits: 1\n", "visits: 2\n"));
//!     Ok(())
//! }
//! ```
//!
//! Map of the modules:
//! - [`server`]: [`Server`] — start a node from `cluster.toml`, its routes, its one session
//!   middleware ([`server::Sessions`]), shutdown. The `sessionraft` binary uses the same calls.
//! - [`config`]: `cluster.toml` parsed once into a validated [`Config`] (shared with the binary).
//! - [`session_store`]: [`RaftSessionStore`], actix-session's `SessionStore` on Raft.
//! - [`request_scope`]: the per-request scope and the [`request_scope::StoreErrors`]
//!   middleware that maps store failures to 503 / 409 / 413 / 400 instead of a 500.
//! - [`admission`]: the node's bound on session requests in flight (503 `not-applied` at once
//!   above it).
//! - [`cookie_ring`]: the cookie key ring (a cookie under an older key is re-issued).
//! - [`raft_routes`]: the actix routes of the peer transport (`/raft/*`); what a request
//!   means is decided in `sessionraft_raft::transport::inbound`.
//! - [`handlers`]: the public HTTP surface (demo API, health, readiness, status, metrics).
//! - [`admin_access`]: the admin token check; [`admin`]: the admin API (membership, users);
//!   `admin_backup`: backup and restore.
//! - [`frontend`]: the embedded demo app and dashboard pages. [`dashboard`]: the
//!   `ClusterWatcher` task and the `/cluster/events` SSE feed.
//! - [`resp`]: the Redis-protocol (RESP2/RESP3) door on a node's `resp_addr`.
//! - [`metrics`]: the Prometheus registry and `/metrics` (the runtime's collectors come from
//!   `sessionraft_raft::consensus::instruments`).

pub mod admin;
pub mod admin_access;
mod admin_backup;
pub mod admission;
pub mod config;
pub mod cookie_ring;
pub mod dashboard;
pub mod frontend;
pub mod handlers;
pub mod metrics;
pub mod raft_routes;
pub mod request_scope;
pub mod resp;
pub mod server;
pub mod session_store;

pub use config::Config;
pub use server::{Server, ServerError, ServerOptions, Sessions};
pub use session_store::{RaftSessionStore, StoreSettings};

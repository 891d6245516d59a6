//! # sessionraft-web
//!
//! The HTTP side of a sessionraft node, and the API to embed one in your actix-web app:
//!
//! ```no_run
//! use actix_session::Session;
//! use actix_web::{web, App, HttpServer};
//! use sessionraft_web::{Config, Node};
//!
//! async fn visits(session: Session) -> actix_web::Result<String> {
//!     let n = session.get::<u64>("visits")?.unwrap_or(0) + 1;
//!     session.insert("visits", n)?;
//!     Ok(format!("visits: {n}\n"))
//! }
//!
//! #[actix_web::main]
//! async fn main() -> anyhow::Result<()> {
//!     let node = Node::start(Config::from_file("cluster.toml")?, 1)?;
//!     let app = node.clone();
//!     HttpServer::new(move || {
//!         App::new()
//!             .configure(app.routes())
//!             .wrap(app.sessions())
//!             .route("/", web::get().to(visits))
//!     })
//!     .bind(node.http_addr())?
//!     .run()
//!     .await?;
//!     node.shutdown();
//!     Ok(())
//! }
//! ```
//!
//! Map of the modules:
//! - [`node`]: [`Node`] — start a node from `cluster.toml`, its routes, its one session
//!   middleware ([`node::Sessions`]), shutdown. The `sessionraft` binary uses the same calls.
//! - [`config`]: `cluster.toml` parsed once into a validated [`Config`] (shared with the binary).
//! - [`session_store`]: [`RaftSessionStore`], actix-session's `SessionStore` on Raft.
//! - [`request_scope`]: the per-request scope and the [`request_scope::StoreErrors`]
//!   middleware that maps store failures to 503 / 409 / 413 / 400 instead of a 500.
//! - [`cookie_ring`]: the cookie key ring (a cookie under an older key is re-issued).
//! - [`raft_routes`]: the actix routes of the peer transport (`/raft/*`); what a request
//!   means is decided in `sessionraft_raft::transport::inbound`.
//! - [`handlers`]: the public HTTP surface (demo API, health, readiness, status, metrics).
//! - [`admin_access`]: the admin token check; [`admin`]: the admin API (membership, users);
//!   `admin_backup`: backup and restore.
//! - [`frontend`]: the embedded demo app and dashboard pages. [`dashboard`]: the
//!   `ClusterWatcher` task and the `/cluster/events` SSE feed.
//! - [`metrics`]: the Prometheus registry and `/metrics` (the runtime's collectors come from
//!   `sessionraft_raft::node::instruments`).

pub mod admin;
pub mod admin_access;
mod admin_backup;
pub mod config;
pub mod cookie_ring;
pub mod dashboard;
pub mod frontend;
pub mod handlers;
pub mod metrics;
pub mod node;
pub mod raft_routes;
pub mod request_scope;
pub mod session_store;

pub use config::Config;
pub use node::{Node, NodeError, NodeOptions, Sessions};
pub use session_store::{RaftSessionStore, StoreSettings};

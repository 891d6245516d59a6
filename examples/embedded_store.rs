//! Your own actix-web app on sessionraft's replicated session store: one node of a three-node
//! cluster described by `cluster.toml`, serving a page counter kept in the session.
//!
//! ```sh
//! cargo build --release --workspace --all-targets
//! for n in 1 2 3; do target/release/examples/embedded_store --config cluster.toml --node $n & done
//! curl -c jar -b jar http://127.0.0.1:7101/     # visits: 1 (served by node 1)
//! curl -c jar -b jar http://127.0.0.1:7102/     # visits: 2 (node 2: same session)
//! kill %1; curl -c jar -b jar http://127.0.0.1:7103/   # visits: 3 — the session survived
//! ```
//!
//! Without `--config` it uses the embedded default `cluster.toml` (nodes on 127.0.0.1:7101–7103,
//! data under `data/`). Stop a node with Ctrl-C / SIGTERM: HTTP stops, then Raft, then storage.

use actix_session::Session;
use actix_web::{web, App, HttpServer};
use sessionraft_web::{Config, Server};

async fn visits(session: Session, node: web::Data<u64>) -> actix_web::Result<String> {
    let n = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", n)?;
    Ok(format!("visits: {n} (served by node {})\n", node.get_ref()))
}

fn main() -> anyhow::Result<()> {
    let (config, node_id) = arguments()?;
    let config = match config {
        Some(path) => Config::from_file(path)?,
        None => Config::embedded_default()?,
    };

    // 1. start the node: storage, Raft, bootstrap with the other nodes of cluster.toml
    let server = Server::start(config, node_id)?;

    // 2. your app: the node's routes, and one middleware for sessions
    let app = server.clone();
    let served = actix_web::rt::System::new().block_on(
        HttpServer::new(move || {
            App::new()
                .configure(app.routes())
                .wrap(app.sessions())
                .app_data(web::Data::new(app.id()))
                .route("/", web::get().to(visits))
        })
        .bind(server.http_addr())?
        .run(),
    );

    // 3. on exit: Raft, then storage
    server.shutdown();
    Ok(served?)
}

/// `[--config FILE] --node N`.
fn arguments() -> anyhow::Result<(Option<String>, u64)> {
    let mut args = std::env::args().skip(1);
    let (mut config, mut node) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next(),
            "--node" => node = args.next().map(|n| n.parse::<u64>()).transpose()?,
            other => anyhow::bail!("unknown argument {other:?}; usage: [--config FILE] --node N"),
        }
    }
    let node = node.ok_or_else(|| anyhow::anyhow!("usage: [--config FILE] --node N"))?;
    Ok((config, node))
}

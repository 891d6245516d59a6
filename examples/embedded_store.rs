//! Your own actix-web app on sessionraft's replicated session store, in a few lines.
//!
//! Runs a single-node cluster in-process (add peers to `members` for a real cluster, each
//! process with its own id) and serves a page counter kept in the session:
//!
//! ```sh
//! cargo build --release --workspace --all-targets
//! target/release/examples/embedded_store 127.0.0.1:8080 /tmp/my-app-data
//! curl -c jar -b jar http://127.0.0.1:8080/   # visits: 1, 2, 3, ...
//! ```
//! With `--selftest` it serves, makes two requests against itself and exits (used by the tests).

use std::collections::BTreeMap;

use actix_session::Session;
use actix_web::{middleware, web, App, HttpServer};
use sessionraft_web::request_scope::store_errors;
use sessionraft_web::{NodeOptions, NodeRuntime};

async fn visits(session: Session) -> actix_web::Result<String> {
    let n = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", n)?;
    Ok(format!("visits: {n}\n"))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let data = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "example-data".into());
    let selftest = args.iter().any(|a| a == "--selftest");

    // 1. start a node: storage, Raft, bootstrap (here a cluster of one)
    let members = BTreeMap::from([(1, addr.clone())]);
    let secret = b"example-secret-change-me-0123456789abcdef".to_vec();
    let node = NodeRuntime::start(NodeOptions::with_defaults(
        1,
        addr.clone(),
        data,
        secret,
        members,
    ))?;

    actix_web::rt::System::new().block_on(async {
        // 2. the store and the cookie settings
        let services = node.start_actors();
        let (cookie, store, internal) = (
            node.session_cookie(),
            services.store.clone(),
            node.internal_routes(&services),
        );
        // 3. your app: mount the internal routes, wrap your routes in the session middleware
        let server = HttpServer::new(move || {
            App::new().configure(internal.clone()).service(
                web::scope("")
                    .wrap(cookie.middleware(store.clone()))
                    // the cookie key ring: a cookie under an older key is re-issued
                    .wrap(cookie.key_ring())
                    .wrap(middleware::from_fn(store_errors))
                    .route("/", web::get().to(visits)),
            )
        })
        .bind(&addr)?
        .run();
        if !selftest {
            return Ok(server.await?);
        }
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let result = selftest_requests(&addr).await;
        handle.stop(true).await;
        result
    })?;
    node.shutdown();
    Ok(())
}

async fn selftest_requests(addr: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().cookie_store(true).build()?;
    let url = format!("http://{addr}/");
    let mut last = String::new();
    for _ in 0..100 {
        // the single node elects itself within a second or so
        last = client.get(&url).send().await?.text().await?;
        if last.starts_with("visits: 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let second = client.get(&url).send().await?.text().await?;
    println!("{}{}", last, second);
    anyhow::ensure!(
        last == "visits: 1\n" && second == "visits: 2\n",
        "unexpected: {last:?} {second:?}"
    );
    Ok(())
}

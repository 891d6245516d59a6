//! `sessionraft serve`: build the node from the validated config, serve HTTP, shut down in order
//! (HTTP, then Raft, then storage) on SIGTERM/SIGINT.

use std::collections::BTreeMap;

use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context;
use sessionraft_raft::StorageOptions;
use sessionraft_web::handlers::configure_api;
use sessionraft_web::request_scope::store_errors;
use sessionraft_web::{Deadlines, NodeOptions, NodeRuntime, StoreSettings};

use crate::config::Config;

/// Node options from the validated configuration.
pub fn node_options(cfg: &Config, node_id: u64) -> anyhow::Result<NodeOptions> {
    let me = cfg.node(node_id)?;
    Ok(NodeOptions {
        id: me.id,
        data_dir: me.data_dir.clone(),
        advertise_addr: me.raft_addr.to_string(),
        initial_members: cfg
            .nodes
            .iter()
            .map(|n| (n.id, n.raft_addr.to_string()))
            .collect::<BTreeMap<_, _>>(),
        secret: cfg.cluster.secret.expose().to_vec(),
        admin_token: cfg.cluster.admin_token.expose().to_vec(),
        lb_url: None,
        raft: cfg.openraft_config()?,
        deadlines: Deadlines {
            request: cfg.raft.request_deadline,
            rpc: cfg.raft.rpc_timeout,
        },
        store: StoreSettings {
            absolute_ttl: cfg.session.absolute_ttl,
            max_state_bytes: cfg.session.max_state_bytes,
        },
        idle_ttl: cfg.session.idle_ttl,
        cookie_name: cfg.session.cookie_name.clone(),
        cookie_secure: cfg.session.cookie_secure,
        storage: StorageOptions::default(),
    })
}

pub fn run(cfg: Config, node_id: u64) -> anyhow::Result<()> {
    let opts = node_options(&cfg, node_id)?;
    let me = cfg.node(node_id)?.clone();
    let node = NodeRuntime::start(opts).with_context(|| {
        format!(
            "starting node {} (data dir {})",
            me.id,
            me.data_dir.display()
        )
    })?;

    let mut addrs = vec![me.http_addr];
    if me.raft_addr != me.http_addr {
        addrs.push(me.raft_addr);
    }
    let served = actix_web::rt::System::new().block_on(async {
        let services = node.start_actors();
        let state = node.app_state();
        let internal = node.internal_routes();
        let frontend = node.frontend_routes();
        let cookie = node.session_cookie();
        let store = services.store.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(internal.clone())
                .configure(frontend.clone())
                .service(
                    web::scope("")
                        .wrap(cookie.middleware(store.clone()))
                        .wrap(middleware::from_fn(store_errors))
                        .configure(configure_api),
                )
        })
        // Stop accepting at once on SIGTERM/SIGINT; let in-flight requests finish.
        .shutdown_timeout(5);
        for a in &addrs {
            server = server.bind(a).with_context(|| format!("binding {a}"))?;
        }
        tracing::info!(node = me.id, http = %me.http_addr, "serving");
        server.run().await.context("HTTP server")
    });
    tracing::info!(node = me.id, "HTTP stopped; shutting down raft");
    node.shutdown();
    served
}

//! `sessionraft status`: ask every node of the configuration for its `/cluster/status`.

use std::time::Duration;

use sessionraft_web::handlers::NodeStatus;

use crate::config::Config;

pub fn run(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = crate::tls::client_builder(cfg)?
        .timeout(Duration::from_secs(2))
        .build()?;
    let rows: Vec<(u64, String, Result<NodeStatus, String>)> = rt.block_on(async {
        let mut rows = Vec::new();
        for n in &cfg.nodes {
            let url = crate::tls::url(cfg, &n.http_addr, "/cluster/status");
            let r = match client.get(&url).send().await {
                Ok(resp) => resp.json::<NodeStatus>().await.map_err(|e| e.to_string()),
                Err(e) => Err(if e.is_connect() {
                    "unreachable".to_string()
                } else {
                    e.to_string()
                }),
            };
            rows.push((n.id, n.http_addr.to_string(), r));
        }
        rows
    });
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(id, addr, r)| match r {
                Ok(s) => serde_json::json!({ "id": id, "addr": addr, "status": s }),
                Err(e) => serde_json::json!({ "id": id, "addr": addr, "error": e }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{:<4} {:<22} {:<10} {:>6} {:>7} {:>10} {:>10}",
        "node", "address", "role", "term", "leader", "last_log", "applied"
    );
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    for (id, addr, r) in rows {
        match r {
            Ok(s) => println!(
                "{:<4} {:<22} {:<10} {:>6} {:>7} {:>10} {:>10}",
                id,
                addr,
                s.role,
                s.term,
                opt(s.leader),
                opt(s.last_log_index),
                opt(s.applied_index)
            ),
            Err(e) => println!("{id:<4} {addr:<22} {e}"),
        }
    }
    Ok(())
}

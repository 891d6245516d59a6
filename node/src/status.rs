//! `sessionraft status`: ask every node of the configuration for its `/cluster/status`.

use std::time::Duration;

use sessionraft_web::handlers::NodeStatus;

use crate::config::Config;

/// Prints every node's status; with `ca` (`--ca`), that CA is trusted instead of `[tls] ca`.
///
/// # Errors
/// No runtime or client; `--ca` without `[tls]`; or a node whose TLS handshake failed (every
/// row is printed first, the failure named in its row).
pub fn run(cfg: &Config, json: bool, ca: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let mut cfg = cfg.clone();
    if let Some(ca) = ca {
        let Some(tls) = cfg.tls.as_mut() else {
            anyhow::bail!(
                "--ca {}: the configuration has no [tls] section (its nodes serve plain HTTP)",
                ca.display()
            );
        };
        tls.ca = ca;
    }
    let cfg = &cfg;
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
                Err(e) => Err(match crate::trust::tls_failure(&e) {
                    Some(why) => format!("TLS failure: {why}"),
                    None if e.is_connect() => "unreachable".to_string(),
                    None => e.to_string(),
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
        return tls_verdict(cfg, &rows);
    }
    println!(
        "{:<4} {:<22} {:<10} {:>6} {:>7} {:>10} {:>10}",
        "node", "address", "role", "term", "leader", "last_log", "applied"
    );
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    for (id, addr, r) in &rows {
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
    tls_verdict(cfg, &rows)
}

/// An error naming the first node whose TLS handshake failed (the CA trusted does not match the
/// nodes' certificates): that is a misconfiguration of this command, not a node being down.
fn tls_verdict(
    cfg: &Config,
    rows: &[(u64, String, Result<NodeStatus, String>)],
) -> anyhow::Result<()> {
    for (id, addr, r) in rows {
        if let Err(e) = r {
            if e.starts_with("TLS failure") {
                let ca = cfg.tls.as_ref().map(|t| t.ca.display().to_string());
                anyhow::bail!(
                    "node {id} at {addr}: {e} (trusting {}: the node certificates must be signed \
                     by that CA)",
                    ca.unwrap_or_else(|| "no CA".into())
                );
            }
        }
    }
    Ok(())
}

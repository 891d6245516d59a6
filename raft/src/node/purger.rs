//! The purger: a task on the Raft runtime that, on the leader only, proposes `PurgeExpired` so
//! expired sessions and their index entries leave the disk (reads ignore them before that), and
//! `Kv(Purge)` for the Redis-protocol keyspace's expired keys.
//!
//! It proposes only when the leader's own expiry index holds a session (or key) due now
//! ([`StateMachineStore::has_expired`](crate::StateMachineStore::has_expired)): an idle cluster
//! writes no log entry. The leader's state machine has applied everything it committed, so what
//! it sees due is what the purge entry will find (give or take writes in flight, which the
//! next tick covers).

use std::sync::Weak;
use std::time::Duration;

use crate::clock::now_ms;
use crate::node::cluster::Cluster;
use crate::storage::kv::{KvCommand, KvResponse};
use crate::{Command, Response};

/// Sessions removed per purge entry at most (bounds the entry and the apply time).
const PURGE_LIMIT: u32 = 5_000;

/// Every `every`, while this node leads and a session is due, propose one purge (and wait for
/// it before the next). Runs until the cluster handle is dropped.
pub async fn run(cluster: Weak<Cluster>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick of an interval fires at once: skip it, a node just started has no lease.
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(c) = cluster.upgrade() else {
            return;
        };
        if !c.is_leader() {
            continue;
        }
        let now = now_ms();
        // No key can exist before the cluster version allows the keyspace.
        let keyspace = c.allows(crate::version::Feature::Keyspace);
        match c.sm.kv_has_expired(now) {
            _ if !keyspace => {}
            Ok(false) => {}
            Ok(true) => {
                let cmd = Command::Kv(KvCommand::Purge {
                    now_ms: now,
                    limit: PURGE_LIMIT,
                });
                match c.propose_here(cmd).await {
                    Ok(p) if matches!(p.response, Response::Kv(KvResponse::Int(n)) if n > 0) => {
                        tracing::info!(purged = ?p.response, "purged expired keys");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "key purge not proposed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the key expiry index; purge skipped"),
        }
        match c.sm.has_expired(now) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the expiry index; purge skipped");
                continue;
            }
        }
        let cmd = Command::PurgeExpired {
            now_ms: now,
            limit: PURGE_LIMIT,
        };
        match c.propose_here(cmd).await {
            Ok(p) if matches!(p.response, Response::Count(n) if n > 0) => {
                tracing::info!(purged = ?p.response, "purged expired sessions");
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "purge not proposed"),
        }
    }
}

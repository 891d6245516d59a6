//! The purger: an actor ([`Purger`], a [`Step`]) that, on the leader only, proposes `PurgeExpired` so
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
use crate::consensus::actors::{Step, StepFuture};
use crate::consensus::cluster::Cluster;
use crate::storage::kv::{KvCommand, KvResponse};
use crate::{Command, Response};

/// Sessions removed per purge entry at most (bounds the entry and the apply time).
const PURGE_LIMIT: u32 = 5_000;

/// Every `every` (after the previous purge), while this node leads and a session or key is due,
/// propose one purge of each. Its steps end when the cluster handle is dropped.
pub struct Purger {
    pub cluster: Weak<Cluster>,
    pub every: Duration,
}

impl Step for Purger {
    const NAME: &'static str = "purger";

    fn pause(&self) -> Duration {
        self.every
    }

    fn step(self) -> StepFuture<Self> {
        Box::pin(async move {
            let c = self.cluster.upgrade()?;
            if c.is_leader() {
                purge_due(&c).await;
            }
            Some(self)
        })
    }
}

/// One purge of the keys due, then one of the sessions due (when any is).
async fn purge_due(c: &Cluster) {
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
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the expiry index; purge skipped");
            return;
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

//! The purger: an actix actor that, on the leader only, proposes `PurgeExpired` on a timer so
//! expired sessions and their index entries leave the disk (reads ignore them before that).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sessionraft_raft::{Command, Response};

use crate::clock::now_ms;
use crate::cluster::Cluster;

/// Sessions removed per purge entry at most (bounds the entry and the apply time).
const PURGE_LIMIT: u32 = 5_000;

/// The purger actor.
pub struct Purger {
    cluster: Arc<Cluster>,
    every: Duration,
    running: bool,
}

impl Purger {
    /// A purger proposing every `every` while this node leads.
    pub fn new(cluster: Arc<Cluster>, every: Duration) -> Self {
        Self {
            cluster,
            every,
            running: false,
        }
    }
}

impl Actor for Purger {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.every, |act, ctx| {
            if act.running || !act.cluster.is_leader() {
                return;
            }
            act.running = true;
            let cluster = act.cluster.clone();
            ctx.spawn(
                async move {
                    let cmd = Command::PurgeExpired {
                        now_ms: now_ms(),
                        limit: PURGE_LIMIT,
                    };
                    match cluster.propose(cmd).await {
                        Ok(p) if matches!(p.response, Response::Count(n) if n > 0) => {
                            tracing::info!(purged = ?p.response, "purged expired sessions")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "purge not proposed"),
                    }
                }
                .into_actor(act)
                .map(|(), act, _| act.running = false),
            );
        });
    }
}

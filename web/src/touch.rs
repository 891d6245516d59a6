//! The touch coalescer: an actix actor that collects TTL extensions (`update_ttl`) per session
//! key and flushes them as one `Command::Touch` per tick, so that extending the TTL on every
//! request does not cost one Raft entry per request.
//!
//! Guarantee: a touch is applied within about one tick unless the cluster has no quorum, in
//! which case it is dropped (logged): a TTL extension is best effort, never a correctness issue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sessionraft_raft::Command;

use crate::batcher::{Write, WriteBatcher};
use crate::clock::now_ms;

/// Extend `key` to expire at `expires_at_ms` (never shortens).
pub struct TouchKey {
    pub key: String,
    pub expires_at_ms: u64,
}

impl Message for TouchKey {
    type Result = ();
}

/// The coalescer actor.
pub struct TouchCoalescer {
    pending: HashMap<String, u64>,
    batcher: Addr<WriteBatcher>,
    tick: Duration,
    metrics: Arc<crate::metrics::Metrics>,
}

impl TouchCoalescer {
    /// A coalescer flushing through `batcher` every `tick`.
    pub fn new(
        batcher: Addr<WriteBatcher>,
        tick: Duration,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            pending: HashMap::new(),
            batcher,
            tick,
            metrics,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.pending.is_empty() {
            return;
        }
        let mut entries: Vec<(String, u64)> = self.pending.drain().collect();
        entries.sort();
        let n = entries.len();
        let cmd = Command::Touch {
            entries,
            now_ms: now_ms(),
        };
        let metrics = self.metrics.clone();
        let fut = self.batcher.send(Write(cmd));
        ctx.spawn(
            async move {
                let started = std::time::Instant::now();
                match fut.await {
                    Ok(Ok(_)) => metrics.observe("touch_flush", "ok", started),
                    Ok(Err(e)) => {
                        metrics.observe("touch_flush", "unavailable", started);
                        tracing::warn!(keys = n, error = %e, "dropped coalesced TTL extensions");
                    }
                    Err(e) => tracing::warn!(keys = n, error = %e, "write batcher gone"),
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for TouchCoalescer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.tick, |act, ctx| act.flush(ctx));
    }
}

impl Handler<TouchKey> for TouchCoalescer {
    type Result = ();

    fn handle(&mut self, msg: TouchKey, _ctx: &mut Self::Context) {
        let e = self.pending.entry(msg.key).or_insert(0);
        *e = (*e).max(msg.expires_at_ms);
    }
}

//! The touch coalescer: an actix actor that collects TTL extensions (`update_ttl`) per session
//! key and flushes them as one `Command::Touch` per tick, so that extending the TTL on every
//! request does not cost one Raft entry per request.
//!
//! Guarantee: a touch is applied within about one tick unless the cluster has no quorum, in
//! which case it is dropped (logged): a TTL extension is best effort, never a correctness issue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use sessionraft_raft::Command;

use crate::batcher::WriteBatcher;
use crate::clock::now_ms;

/// TTL extensions waiting for the next flush, per session key (the latest expiry wins). Shared
/// by the store, which adds one on every request, and the coalescer, which takes them all every
/// tick: a short lock rather than a message to the coalescer's thread, so that a request costs
/// no cross-thread wakeup.
#[derive(Debug, Default)]
pub struct PendingTouches(Mutex<HashMap<String, u64>>);

impl PendingTouches {
    /// Extend `key` to expire at `expires_at_ms` at the next flush (never shortens).
    pub fn touch(&self, key: &str, expires_at_ms: u64) {
        let mut pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get_mut(key) {
            Some(e) => *e = (*e).max(expires_at_ms),
            None => {
                pending.insert(key.to_owned(), expires_at_ms);
            }
        }
    }

    /// Everything pending, leaving nothing.
    fn take(&self) -> HashMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The coalescer actor.
pub struct TouchCoalescer {
    pending: Arc<PendingTouches>,
    batcher: Arc<WriteBatcher>,
    tick: Duration,
    metrics: Arc<crate::metrics::Metrics>,
}

impl TouchCoalescer {
    /// A coalescer flushing the touches added to `pending` through `batcher` every `tick`.
    pub fn new(
        pending: Arc<PendingTouches>,
        batcher: Arc<WriteBatcher>,
        tick: Duration,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            pending,
            batcher,
            tick,
            metrics,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        let pending = self.pending.take();
        if pending.is_empty() {
            return;
        }
        let mut entries: Vec<(String, u64)> = pending.into_iter().collect();
        entries.sort();
        let n = entries.len();
        let cmd = Command::Touch {
            entries,
            now_ms: now_ms(),
        };
        let metrics = self.metrics.clone();
        let batcher = self.batcher.clone();
        let fut = async move { batcher.write(cmd).await };
        ctx.spawn(
            async move {
                let started = std::time::Instant::now();
                match fut.await {
                    Ok(_) => metrics.observe("touch_flush", "ok", started),
                    Err(e) => {
                        metrics.observe("touch_flush", "unavailable", started);
                        tracing::warn!(keys = n, error = %e, "dropped coalesced TTL extensions");
                    }
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

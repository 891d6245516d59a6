//! The touch coalescer: an actor ([`TouchFlusher`]) that collects TTL extensions (`update_ttl`) per session
//! key and flushes them as one `Command::Touch` per tick, so that extending the TTL on every
//! request does not cost one Raft entry per request.
//!
//! Guarantee: a touch is applied within about one tick unless the cluster has no quorum, in
//! which case it is dropped (logged): a TTL extension is best effort, never a correctness issue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::Command;

use crate::clock::now_ms;
use crate::consensus::actors::{Step, StepFuture};
use crate::consensus::batcher::WriteBatcher;
use crate::consensus::instruments::Instruments;

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

/// Every `tick`, flushes the touches added to `pending` through `batcher` as one
/// `Command::Touch` (in the background: a slow flush does not delay the next tick). Its steps
/// end when `pending` is gone (the node is stopping).
pub struct TouchFlusher {
    pub pending: std::sync::Weak<PendingTouches>,
    pub batcher: Arc<WriteBatcher>,
    pub tick: Duration,
    pub instruments: Arc<Instruments>,
}

impl Step for TouchFlusher {
    const NAME: &'static str = "touch";

    fn pause(&self) -> Duration {
        self.tick
    }

    fn step(self) -> StepFuture<Self> {
        Box::pin(async move {
            let pending = self.pending.upgrade()?;
            flush(&pending, &self.batcher, &self.instruments);
            Some(self)
        })
    }
}

/// Takes every pending touch and writes them as one `Command::Touch`, in the background.
fn flush(pending: &PendingTouches, batcher: &Arc<WriteBatcher>, instruments: &Arc<Instruments>) {
    let taken = pending.take();
    if taken.is_empty() {
        return;
    }
    let mut entries: Vec<(String, u64)> = taken.into_iter().collect();
    entries.sort();
    let n = entries.len();
    let cmd = Command::Touch {
        entries,
        now_ms: now_ms(),
    };
    let (batcher, instruments) = (batcher.clone(), instruments.clone());
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match batcher.write(cmd).await {
            Ok(_) => instruments.observe("touch_flush", "ok", started),
            Err(e) => {
                instruments.observe("touch_flush", "unavailable", started);
                tracing::warn!(keys = n, error = %e, "dropped coalesced TTL extensions");
            }
        }
    });
}

//! [`LeaderContact`]: when this node last heard from a leader (an AppendEntries, heartbeat or
//! entries). Recorded by the inbound transport, read by the early-election watcher
//! (`failover.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When this node last received an AppendEntries (heartbeat or entries), in ms since `epoch`.
#[derive(Debug)]
pub struct LeaderContact {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Default for LeaderContact {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl LeaderContact {
    /// Record an AppendEntries from a leader, now.
    pub fn note(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long ago the last AppendEntries arrived.
    pub fn since(&self) -> Duration {
        let now = self.epoch.elapsed();
        now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

//! [`LeaderContact`]: when this node last heard from a leader (an AppendEntries, heartbeat or
//! entries), and whether its last pre-vote found it cut off from a majority. Recorded by the
//! inbound transport and the election loop (`failover.rs`), read by the election loop, the
//! pre-vote answer and readiness.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When this node last received an AppendEntries (heartbeat or entries), in ms since `epoch`.
#[derive(Debug)]
pub struct LeaderContact {
    epoch: Instant,
    last_ms: AtomicU64,
    /// Set when a pre-vote of this node heard from no majority (the others silent: it is cut
    /// off, or they are down); cleared by the next AppendEntries or a pre-vote that hears from a
    /// majority.
    isolated: AtomicBool,
}

impl Default for LeaderContact {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            isolated: AtomicBool::new(false),
        }
    }
}

impl LeaderContact {
    /// Record an AppendEntries from a leader, now.
    pub fn note(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
        self.isolated.store(false, Ordering::Relaxed);
    }

    /// Record what a pre-vote round found: whether a majority answered at all.
    pub fn set_isolated(&self, isolated: bool) {
        self.isolated.store(isolated, Ordering::Relaxed);
    }

    /// Whether the last pre-vote found this node cut off (and no leader was heard since).
    pub fn isolated(&self) -> bool {
        self.isolated.load(Ordering::Relaxed)
    }

    /// How long ago the last AppendEntries arrived.
    pub fn since(&self) -> Duration {
        let now = self.epoch.elapsed();
        now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

//! The rate limit on the source: at most `rate` keys read per second, over all workers.
//!
//! Virtual scheduling (GCRA without burst): each batch of `n` keys reserves the next `n / rate`
//! seconds of the schedule and waits until its slot starts, so over any stretch of time the
//! source is asked for no more than `rate` keys a second plus one batch.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A shared limiter; `None` rate: no limit.
pub struct RateLimit {
    per_key: Option<Duration>,
    next: Mutex<Option<Instant>>,
}

impl RateLimit {
    /// At most `keys_per_second` (0 or less: unlimited).
    pub fn new(keys_per_second: f64) -> Self {
        let per_key = (keys_per_second.is_finite() && keys_per_second > 0.0)
            .then(|| Duration::from_secs_f64(1.0 / keys_per_second));
        Self {
            per_key,
            next: Mutex::new(None),
        }
    }

    /// Reserves the slot of `n` keys asked for at `now`: when they may be read.
    fn reserve(&self, n: usize, now: Instant) -> Instant {
        let Some(per_key) = self.per_key else {
            return now;
        };
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let start = next.map_or(now, |t| t.max(now));
        *next = Some(start + per_key * u32::try_from(n).unwrap_or(u32::MAX));
        start
    }

    /// Waits until `n` more keys may be read.
    pub async fn acquire(&self, n: usize) {
        let start = self.reserve(n, Instant::now());
        tokio::time::sleep_until(tokio::time::Instant::from_std(start)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_spaced_to_the_rate() {
        let limit = RateLimit::new(1000.0);
        let t = Instant::now();
        let slots: Vec<Duration> = (0..5).map(|_| limit.reserve(100, t) - t).collect();
        // batches of 100 at 1,000 keys/s, all asked for at once: 0.1 s apart
        assert_eq!(
            slots,
            (0..5)
                .map(|i| Duration::from_millis(100 * i))
                .collect::<Vec<_>>()
        );
        // after a pause the schedule restarts from now: no burst saved up
        let later = t + Duration::from_secs(10);
        assert_eq!(limit.reserve(100, later), later);
    }

    #[test]
    fn no_rate_never_waits() {
        let limit = RateLimit::new(0.0);
        let t = Instant::now();
        assert_eq!(limit.reserve(1_000_000, t), t);
        assert_eq!(limit.reserve(1_000_000, t), t);
    }
}

//! [`Freshness`]: whether this follower may serve a session read from its own replica.
//!
//! A follower is *fresh* while it accepted, less than `window` ago, an AppendEntries from the
//! leader of its current term that was delivered promptly, and has applied at least the commit
//! index that request carried. Then its state includes every write the leader had committed
//! when it sent that request, so a write acknowledged at time t is visible here by
//! t + window + slack (+ the network's smallest one-way delay): that is `max_staleness_ms`,
//! the bound documented in the README (`window = max_staleness − slack`, `slack` = half a
//! heartbeat).
//!
//! *Delivered promptly*: a request that sat in a socket buffer (this process was paused, the
//! link stalled) carries an old commit index, and accepting it must not make the node fresh.
//! Each request carries the leader's wall clock at signing (`x-sessionraft-ts`, covered by the
//! MAC); `offset = our clock − theirs` is the clock skew plus the delivery delay. The smallest
//! offset seen from this term's leader stands for the skew plus the smallest delay; a request
//! whose offset exceeds it by more than `slack` was late and is not a freshness point. This
//! assumes, as the leader lease does, that the two clocks run at the same rate (a fixed skew,
//! even of minutes, is fine); a clock stepped backwards on the leader only makes requests look
//! late (reads fall back to the read index), one stepped forward lowers the minimum.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which guarantee a session load gets (`[raft] read_consistency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadConsistency {
    /// A load carrying a session token reads this node's own replica while the node is fresh
    /// and has applied the token's index: read-your-writes and monotonic reads for the token's
    /// holder, and any change by others visible within `max_staleness`.
    #[default]
    Session,
    /// Every load waits for a read index confirmed by the leader (a round, or its lease).
    Linearizable,
}

/// How session loads are served: the mode, the staleness bound, the heartbeat it is built on.
#[derive(Debug, Clone, Copy)]
pub struct SessionReads {
    pub consistency: ReadConsistency,
    /// A change acknowledged at t is visible on every node serving reads by t + this.
    pub max_staleness: Duration,
    /// The leader's heartbeat interval: half of it is the slack for late appends; two of it
    /// bound the wait for a token's entry before falling back to the read index.
    pub heartbeat: Duration,
    /// TEST ONLY — a planted bug: serve token reads locally without checking freshness (a
    /// paused or partitioned follower then serves what it has). Exists so the checker's
    /// revocation workload can be shown to catch it.
    pub unsafe_skip_freshness: bool,
}

impl SessionReads {
    /// The freshness record for these settings: points count for `max_staleness − slack`.
    pub fn freshness(&self) -> Freshness {
        let slack = self.heartbeat / 2;
        Freshness::new(self.max_staleness.saturating_sub(slack), slack)
    }
}

/// One freshness point: when a prompt append was accepted and the commit index it carried.
#[derive(Debug, Clone, Copy, Default)]
struct Point {
    /// Monotonic ms since `epoch` (0 = never).
    at_ms: u64,
    commit: u64,
}

#[derive(Debug, Default)]
struct State {
    term: u64,
    /// Smallest `our wall clock − leader's stamp` seen from this term's leader.
    min_offset_ms: Option<i64>,
    /// The latest point and the one before it: while the latest's commit is not yet applied
    /// (the append carried a new commit a moment ago), the previous one still counts.
    latest: Point,
    previous: Point,
}

/// Freshness of this node's replica; shared by the inbound transport (records) and the read
/// path (asks).
#[derive(Debug)]
pub struct Freshness {
    epoch: Instant,
    window: Duration,
    slack: Duration,
    state: Mutex<State>,
    /// Appends accepted but not counted: delivered late.
    late_appends: AtomicU64,
}

impl Freshness {
    /// Freshness points count for `window`; an append more than `slack` later than the
    /// prompt ones is not a point.
    pub fn new(window: Duration, slack: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            window,
            slack,
            state: Mutex::new(State::default()),
            late_appends: AtomicU64::new(0),
        }
    }

    fn mono_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Record an AppendEntries of the leader of `term`, accepted (Raft answered success),
    /// carrying `leader_commit`, stamped `sender_ts_ms` by the leader, and received at
    /// `local_wall_ms` on our wall clock and `received` on the monotonic one. The point is
    /// dated when the request arrived, not when Raft answered: a process paused in between
    /// must not wake up holding a point that looks new but carries an old commit index.
    pub fn accepted(
        &self,
        term: u64,
        leader_commit: u64,
        sender_ts_ms: u64,
        local_wall_ms: u64,
        received: Instant,
    ) {
        let offset = i64::try_from(local_wall_ms)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(sender_ts_ms).unwrap_or(i64::MAX));
        let at = u64::try_from(received.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if term != st.term {
            *st = State {
                term,
                ..State::default()
            };
        }
        let min = st.min_offset_ms.map_or(offset, |m| m.min(offset));
        st.min_offset_ms = Some(min);
        let late_by = offset.saturating_sub(min);
        if late_by > i64::try_from(self.slack.as_millis()).unwrap_or(i64::MAX) {
            self.late_appends.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let point = Point {
            at_ms: at,
            commit: leader_commit,
        };
        if point.commit > st.latest.commit {
            st.previous = st.latest;
            st.latest = point;
        } else if point.at_ms > st.latest.at_ms {
            // the same commit index, heard again later (a heartbeat)
            st.latest.at_ms = point.at_ms;
        }
        // an older point with no newer commit adds nothing (appends answered out of order)
    }

    /// Whether this node, in `current_term`, having applied `applied`, is fresh now.
    pub fn is_fresh(&self, current_term: u64, applied: u64) -> bool {
        let now = self.mono_ms();
        let window = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.term != current_term {
            return false;
        }
        [st.latest, st.previous]
            .iter()
            .any(|p| p.at_ms > 0 && now.saturating_sub(p.at_ms) < window && applied >= p.commit)
    }

    /// Appends accepted but delivered too late to count (since start).
    pub fn late_appends(&self) -> u64 {
        self.late_appends.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f() -> Freshness {
        Freshness::new(Duration::from_millis(400), Duration::from_millis(50))
    }

    #[test]
    fn never_fresh_before_an_append() {
        assert!(!f().is_fresh(1, 100));
    }

    #[test]
    fn fresh_after_a_prompt_append_once_its_commit_is_applied() {
        let f = f();
        f.accepted(3, 10, 1_000, 1_005, Instant::now());
        assert!(!f.is_fresh(3, 9), "commit 10 not applied yet");
        assert!(f.is_fresh(3, 10));
        assert!(!f.is_fresh(4, 10), "another term: not the leader we heard");
    }

    #[test]
    fn the_previous_point_covers_a_commit_not_yet_applied() {
        let f = f();
        f.accepted(3, 10, 1_000, 1_005, Instant::now());
        f.accepted(3, 12, 1_100, 1_105, Instant::now());
        assert!(f.is_fresh(3, 10), "the point of commit 10 still counts");
        assert!(!f.is_fresh(3, 9));
    }

    #[test]
    fn a_late_append_is_not_a_point_whatever_the_skew() {
        // the leader's clock is 90 s ahead of ours: offsets are negative, that is fine
        let f = Freshness::new(Duration::from_millis(30), Duration::from_millis(50));
        f.accepted(2, 5, 100_000, 10_003, Instant::now());
        assert!(f.is_fresh(2, 5));
        // we were paused past the window; on waking, an append that waited 3 s in our socket
        std::thread::sleep(Duration::from_millis(40));
        f.accepted(2, 7, 100_100, 13_103, Instant::now());
        assert_eq!(f.late_appends(), 1);
        assert!(
            !f.is_fresh(2, 7),
            "a late append makes no point, even applied"
        );
        // the next prompt heartbeat does
        f.accepted(2, 9, 103_200, 13_204, Instant::now());
        assert!(f.is_fresh(2, 9));
    }

    #[test]
    fn a_point_is_dated_when_its_append_arrived() {
        // received, then this process was paused for longer than the window before Raft
        // answered: the point is already too old when it is recorded
        let f = Freshness::new(Duration::from_millis(30), Duration::from_millis(50));
        let received = Instant::now();
        std::thread::sleep(Duration::from_millis(40));
        f.accepted(1, 1, 0, 0, received);
        assert!(!f.is_fresh(1, 1));
    }

    #[test]
    fn points_expire_after_the_window() {
        let f = Freshness::new(Duration::from_millis(30), Duration::from_millis(50));
        f.accepted(1, 1, 0, 0, Instant::now());
        assert!(f.is_fresh(1, 1));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!f.is_fresh(1, 1));
    }
}

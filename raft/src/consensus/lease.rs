//! The leader lease behind cheap read barriers.
//!
//! A read index normally costs the leader a heartbeat round to a quorum (openraft's
//! `get_read_log_id`). A lease makes that round unnecessary while the leader can prove that no
//! other leader can exist yet:
//!
//! - every voter that accepts an AppendEntries from the leader (openraft 0.9 touches its vote's
//!   time when it accepts one) refuses to vote for anybody else for `leader_lease` =
//!   `election_timeout_max` afterwards, does not campaign on its own before that lease plus an
//!   election timeout, and a restarted voter starts with a fresh lease (the vote's time is set on
//!   start); our early-election watcher (`failover.rs`) also waits for the lease;
//! - the voter accepts the request *after* the leader sent it, so if a quorum of every voter
//!   configuration accepted requests sent at or after `t`, no other leader can be elected before
//!   `t + election_timeout_max`, measured on any clock that runs at about the same rate.
//!
//! [`LeaseClock`] records, per follower, when the newest accepted AppendEntries (heartbeat or
//! entries) of the current vote was *sent*, and answers whether a quorum's acceptances are
//! younger than the lease. The lease is shorter than `election_timeout_max` (see
//! [`LeaseClock::duration_for`]) to leave room for clocks that drift and for the time between
//! a voter's receipt and the moment it touches its vote.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::NodeId;
use openraft::Vote;

/// When each follower last accepted an AppendEntries of one vote (one leadership), by the time
/// the leader sent it; and what would make a check outside the Raft core unsafe (a vote this
/// node is granting or granted, a membership change in progress).
#[derive(Debug)]
pub struct LeaseClock {
    duration: Option<Duration>,
    acks: Mutex<Acks>,
    /// Vote requests being handled by this node's Raft core right now.
    votes_in_flight: AtomicU64,
    /// The highest term this node granted its vote in (0: none).
    granted_term: AtomicU64,
    /// Membership changes this node is running (as leader) right now.
    membership_changes: AtomicU64,
}

/// Counts a vote request in flight until dropped. Unless [`VoteGuard::refused`] was called,
/// the vote counts as granted (a handler cancelled mid-way may have granted it).
pub struct VoteGuard<'a> {
    clock: &'a LeaseClock,
    term: u64,
    refused: bool,
}

impl VoteGuard<'_> {
    /// The core answered and did not grant the vote.
    pub fn refused(mut self) {
        self.refused = true;
    }
}

impl Drop for VoteGuard<'_> {
    fn drop(&mut self) {
        if !self.refused {
            self.clock.granted_term.fetch_max(self.term, SeqCst);
        }
        self.clock.votes_in_flight.fetch_sub(1, SeqCst);
    }
}

/// Counts a membership change in progress until dropped.
pub struct MembershipGuard<'a>(&'a LeaseClock);

impl Drop for MembershipGuard<'_> {
    fn drop(&mut self) {
        self.0.membership_changes.fetch_sub(1, SeqCst);
    }
}

#[derive(Debug, Default)]
struct Acks {
    vote: Option<Vote<NodeId>>,
    sent: HashMap<NodeId, Instant>,
    /// When each follower's latest acceptance *arrived* (CheckQuorum: is it still in contact?).
    replied: HashMap<NodeId, Instant>,
}

impl LeaseClock {
    /// A clock granting leases of `duration`; `None` disables lease reads (every read index
    /// then costs a heartbeat round).
    pub fn new(duration: Option<Duration>) -> Self {
        Self {
            duration,
            acks: Mutex::new(Acks::default()),
            votes_in_flight: AtomicU64::new(0),
            granted_term: AtomicU64::new(0),
            membership_changes: AtomicU64::new(0),
        }
    }

    /// A vote request of a candidate in `term` is about to be handed to the Raft core: while the
    /// guard lives, and for good unless it is marked refused, no lease check outside the core
    /// passes for a term at or below `term`.
    pub fn vote_request(&self, term: u64) -> VoteGuard<'_> {
        self.votes_in_flight.fetch_add(1, SeqCst);
        VoteGuard {
            clock: self,
            term,
            refused: false,
        }
    }

    /// A membership change is about to start on this node (as leader): no lease check outside
    /// the core passes until the guard is dropped.
    pub fn membership_change(&self) -> MembershipGuard<'_> {
        self.membership_changes.fetch_add(1, SeqCst);
        MembershipGuard(self)
    }

    /// Whether a lease check outside the Raft core may trust a (possibly stale) view that says
    /// this node leads in `term`: no vote request is being handled, this node never granted a
    /// vote in `term` or later, and no membership change is running.
    pub fn outside_core_allowed(&self, term: u64) -> bool {
        self.votes_in_flight.load(SeqCst) == 0
            && self.granted_term.load(SeqCst) < term
            && self.membership_changes.load(SeqCst) == 0
    }

    /// The lease for these Raft timings: 90% of `election_timeout_min`, which is at most 90% of
    /// the `election_timeout_max` every voter waits. With the defaults (210–300 ms) that is
    /// 189 ms against 300 ms: a clock may run up to ~50% slower than the leader's before the
    /// lease outlives the voters' promise. The leader refreshes the acceptances every heartbeat
    /// (100 ms by default), so a healthy leader always holds the lease.
    pub fn duration_for(
        election_timeout_min: Duration,
        election_timeout_max: Duration,
    ) -> Duration {
        (election_timeout_min.min(election_timeout_max) * 9) / 10
    }

    /// Whether lease reads are on.
    pub fn enabled(&self) -> bool {
        self.duration.is_some()
    }

    /// Follower `target` accepted (did not answer with a higher vote) an AppendEntries that the
    /// leader of `vote` sent at `sent`.
    /// Recorded whether or not lease reads are on: the leader's quorum contact
    /// ([`LeaseClock::quorum_within`], CheckQuorum) uses the same acceptances.
    pub fn accepted(&self, vote: &Vote<NodeId>, target: NodeId, sent: Instant) {
        if !vote.is_committed() {
            return;
        }
        let mut acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
        match &acks.vote {
            Some(v) if v == vote => {}
            // a late answer to a request of an older leadership of this node
            Some(v) if vote.partial_cmp(v) != Some(std::cmp::Ordering::Greater) => return,
            _ => {
                acks.vote = Some(*vote);
                acks.sent.clear();
                acks.replied.clear();
            }
        }
        acks.replied.insert(target, Instant::now());
        let at = acks.sent.entry(target).or_insert(sent);
        if sent > *at {
            *at = sent;
        }
    }

    /// Whether, at `now`, node `me` holding `vote` is the only possible leader: in every voter
    /// configuration of `configs` (two during a joint membership change) a majority, counting
    /// `me`, accepted an AppendEntries of `vote` sent less than the lease ago.
    pub fn holds(
        &self,
        vote: &Vote<NodeId>,
        me: NodeId,
        configs: &[BTreeSet<NodeId>],
        now: Instant,
    ) -> bool {
        self.duration
            .is_some_and(|d| self.quorum_within(vote, me, configs, now, d, false))
    }

    /// Whether any follower acknowledged an AppendEntries of `vote` yet (a leader elected a
    /// moment ago has none: its votes were its contact with a quorum).
    pub fn has_acks_for(&self, vote: &Vote<NodeId>) -> bool {
        let acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
        acks.vote.as_ref() == Some(vote) && !acks.sent.is_empty()
    }

    /// Whether, at `now`, in every voter configuration of `configs` a majority, counting `me`,
    /// accepted an AppendEntries of `vote` less than `within` ago — counted from when the
    /// AppendEntries was *sent* (the lease's safety needs that), or, with `by_reply`, from when
    /// the acceptance *arrived*: the leader's contact with a quorum (CheckQuorum). A follower
    /// busy applying a large batch answers late but answers; only a reply that never comes
    /// means the contact is lost.
    pub fn quorum_within(
        &self,
        vote: &Vote<NodeId>,
        me: NodeId,
        configs: &[BTreeSet<NodeId>],
        now: Instant,
        within: Duration,
        by_reply: bool,
    ) -> bool {
        let duration = within;
        if configs.is_empty() {
            return false;
        }
        let acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
        let same_vote = acks.vote.as_ref() == Some(vote);
        configs.iter().all(|voters| {
            let majority = voters.len() / 2 + 1;
            let needed = majority - usize::from(voters.contains(&me));
            if needed == 0 {
                return true;
            }
            if !same_vote {
                return false;
            }
            let mut fresh: Vec<Instant> = voters
                .iter()
                .filter(|id| **id != me)
                .filter_map(|id| {
                    if by_reply {
                        acks.replied.get(id).copied()
                    } else {
                        acks.sent.get(id).copied()
                    }
                })
                .collect();
            if fresh.len() < needed {
                return false;
            }
            // the needed-th most recent acceptance bounds the quorum's
            fresh.sort_unstable_by(|a, b| b.cmp(a));
            now.saturating_duration_since(fresh[needed - 1]) < duration
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(200);

    fn voters(ids: &[NodeId]) -> Vec<BTreeSet<NodeId>> {
        vec![ids.iter().copied().collect()]
    }

    #[test]
    fn a_quorum_of_fresh_acceptances_holds_the_lease_until_it_ages() {
        let clock = LeaseClock::new(Some(LEASE));
        let vote = Vote::new_committed(3, 1);
        let t0 = Instant::now();
        let cfg = voters(&[1, 2, 3]);
        assert!(!clock.holds(&vote, 1, &cfg, t0), "no acceptance yet");
        clock.accepted(&vote, 2, t0);
        assert!(clock.holds(&vote, 1, &cfg, t0 + Duration::from_millis(150)));
        assert!(
            !clock.holds(&vote, 1, &cfg, t0 + LEASE),
            "expired at the lease"
        );
        // a newer acceptance extends it; an older one does not move it back
        clock.accepted(&vote, 3, t0 + Duration::from_millis(100));
        clock.accepted(&vote, 3, t0 + Duration::from_millis(50));
        assert!(clock.holds(&vote, 1, &cfg, t0 + Duration::from_millis(250)));
        assert!(!clock.holds(&vote, 1, &cfg, t0 + Duration::from_millis(300)));
    }

    #[test]
    fn five_voters_need_two_followers_and_the_second_freshest_counts() {
        let clock = LeaseClock::new(Some(LEASE));
        let vote = Vote::new_committed(1, 1);
        let t0 = Instant::now();
        let cfg = voters(&[1, 2, 3, 4, 5]);
        clock.accepted(&vote, 2, t0 + Duration::from_millis(100));
        assert!(!clock.holds(&vote, 1, &cfg, t0 + Duration::from_millis(110)));
        clock.accepted(&vote, 3, t0);
        assert!(clock.holds(&vote, 1, &cfg, t0 + Duration::from_millis(190)));
        // bounded by node 3's (older) acceptance, not node 2's
        assert!(!clock.holds(&vote, 1, &cfg, t0 + Duration::from_millis(210)));
    }

    #[test]
    fn another_vote_or_an_uncommitted_one_grants_nothing() {
        let clock = LeaseClock::new(Some(LEASE));
        let t0 = Instant::now();
        let cfg = voters(&[1, 2, 3]);
        let old = Vote::new_committed(2, 1);
        let new = Vote::new_committed(4, 1);
        clock.accepted(&old, 2, t0);
        assert!(
            !clock.holds(&new, 1, &cfg, t0),
            "acceptances of term 2 prove nothing in 4"
        );
        clock.accepted(&new, 3, t0);
        assert!(clock.holds(&new, 1, &cfg, t0));
        // a late answer to the old leadership neither counts nor resets the new one
        clock.accepted(&old, 2, t0 + Duration::from_millis(10));
        assert!(clock.holds(&new, 1, &cfg, t0));
        assert!(!clock.holds(&old, 1, &cfg, t0));
        let candidate = Vote::new(5, 1);
        clock.accepted(&candidate, 2, t0);
        assert!(
            clock.holds(&new, 1, &cfg, t0),
            "an uncommitted vote is ignored"
        );
    }

    #[test]
    fn a_joint_configuration_needs_a_quorum_in_both() {
        let clock = LeaseClock::new(Some(LEASE));
        let vote = Vote::new_committed(1, 1);
        let t0 = Instant::now();
        let joint = vec![
            [1, 2, 3].into_iter().collect::<BTreeSet<_>>(),
            [1, 4, 5].into_iter().collect(),
        ];
        clock.accepted(&vote, 2, t0);
        assert!(!clock.holds(&vote, 1, &joint, t0));
        clock.accepted(&vote, 5, t0);
        assert!(clock.holds(&vote, 1, &joint, t0));
        // a configuration the leader is not in needs a majority of followers
        let without_me = vec![[2, 3, 4].into_iter().collect::<BTreeSet<_>>()];
        assert!(!clock.holds(&vote, 1, &without_me, t0));
        clock.accepted(&vote, 4, t0);
        assert!(clock.holds(&vote, 1, &without_me, t0));
    }

    #[test]
    fn a_single_voter_always_holds_and_a_disabled_clock_never_does() {
        let vote = Vote::new_committed(1, 1);
        let now = Instant::now();
        let clock = LeaseClock::new(Some(LEASE));
        assert!(clock.holds(&vote, 1, &voters(&[1]), now));
        let off = LeaseClock::new(None);
        off.accepted(&vote, 2, now);
        assert!(!off.holds(&vote, 1, &voters(&[1, 2, 3]), now));
        assert!(!off.holds(&vote, 1, &voters(&[1]), now));
        // quorum contact is tracked with lease reads off too
        let later = now + Duration::from_millis(100);
        assert!(off.quorum_within(&vote, 1, &voters(&[1, 2, 3]), later, LEASE, false));
        assert!(!off.quorum_within(&vote, 1, &voters(&[1, 2, 3]), now + LEASE, LEASE, false));
        // by reply: an acceptance that arrives now of an append sent long ago is contact now
        let old = LeaseClock::new(None);
        let sent_long_ago = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        old.accepted(&vote, 2, sent_long_ago);
        let now = Instant::now();
        let short = Duration::from_millis(20);
        assert!(!old.quorum_within(&vote, 1, &voters(&[1, 2, 3]), now, short, false));
        assert!(old.quorum_within(&vote, 1, &voters(&[1, 2, 3]), now, short, true));
    }

    #[test]
    fn votes_and_membership_changes_close_the_path_outside_the_core() {
        let clock = LeaseClock::new(Some(LEASE));
        assert!(clock.outside_core_allowed(3));
        let g = clock.vote_request(9);
        assert!(
            !clock.outside_core_allowed(3),
            "a vote request is in flight"
        );
        g.refused();
        assert!(
            clock.outside_core_allowed(3),
            "a refused vote changes nothing"
        );
        drop(clock.vote_request(4)); // answered with a grant, or cancelled: counts as granted
        assert!(!clock.outside_core_allowed(3), "granted in a later term");
        assert!(!clock.outside_core_allowed(4), "granted in this term");
        assert!(
            clock.outside_core_allowed(5),
            "a leadership after the grant"
        );
        let m = clock.membership_change();
        assert!(!clock.outside_core_allowed(5));
        drop(m);
        assert!(clock.outside_core_allowed(5));
    }

    #[test]
    fn the_lease_stays_inside_the_voters_promise() {
        let d = LeaseClock::duration_for(Duration::from_millis(210), Duration::from_millis(300));
        assert_eq!(d, Duration::from_millis(189));
        assert!(d < Duration::from_millis(300));
    }
}

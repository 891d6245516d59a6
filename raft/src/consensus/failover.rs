//! Elections: when this voter campaigns. openraft's own election timer is off
//! (`Config::enable_elect = false`, `runtime.rs`); this loop decides instead, and every campaign
//! is preceded by a pre-vote (`prevote.rs`), so a node that was cut off or paused does not
//! raise the cluster's term and depose a healthy leader when it returns.
//!
//! On every voter that is not the leader, the loop watches how long ago an AppendEntries was
//! last accepted (`leader_contact`). Once that exceeds the leader lease (`election_timeout_max`,
//! during which every other voter still refuses to vote) plus a grace, the voter asks for a
//! pre-vote and, on a majority of yes in every voter set, asks openraft for an election:
//! - the grace is one heartbeat interval — or half of one when the leader's Raft port refuses
//!   connections (its process is gone: crash, SIGKILL, OOM kill; a leader that is merely slow,
//!   paused or cut off by the network accepts or times out connections instead);
//! - plus a stagger of two heartbeat intervals per rank of this node among the voters (the last
//!   known leader left out, sorted by id), so two followers do not split the vote;
//! - a campaign that did not produce a leader (pre-vote lost, split vote, votes unanswered) is
//!   tried again after a random time between `election_timeout_min` and `election_timeout_max`.
//!
//! Safety does not depend on any of this: Raft's elections are safe whenever they start, and
//! openraft still enforces the term, the up-to-date log and the vote lease on every vote.
//! Liveness is argued in ARCHITECTURE.md: a leader that is really lost stops heartbeating, so
//! every voter's contact goes stale and every voter of the majority answers yes.

use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::NodeId;
use openraft::ServerState;
use rand::Rng;

use crate::consensus::actors::{Step, StepFuture};
use crate::consensus::cluster::Cluster;
use crate::consensus::prevote;

/// Timings of the loop, from the Raft configuration.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// The leader's heartbeat interval.
    pub heartbeat: Duration,
    /// `election_timeout_min`: the shortest wait before a failed campaign is retried.
    pub election_min: Duration,
    /// openraft's leader lease: `election_timeout_max`.
    pub lease: Duration,
}

impl Timings {
    /// How long after the last contact a voter of `rank` campaigns; `dead_leader` when the
    /// leader's port refuses connections.
    pub fn due(&self, rank: u32, dead_leader: bool) -> Duration {
        let grace = if dead_leader {
            self.heartbeat / 2
        } else {
            self.heartbeat
        };
        self.lease + grace + self.heartbeat * 2 * rank
    }
}

/// What this node sees of the cluster, when it is a voter that does not lead.
struct View {
    /// The leader it last followed and that leader's Raft address.
    leader: Option<(NodeId, String)>,
    term: u64,
    /// Its rank among the voters other than that leader.
    rank: u32,
}

/// The election watcher (an actor): every half heartbeat, whether this voter should campaign
/// (see the module's doc). Its steps end when the cluster handle is dropped.
pub struct ElectionWatcher {
    pub cluster: Weak<Cluster>,
    pub timings: Timings,
    /// When the last campaign was started, and how long to wait before another.
    last_campaign: Option<(Instant, Duration)>,
}

impl ElectionWatcher {
    pub fn new(cluster: Weak<Cluster>, timings: Timings) -> Self {
        Self {
            cluster,
            timings,
            last_campaign: None,
        }
    }
}

impl Step for ElectionWatcher {
    const NAME: &'static str = "failover";

    fn pause(&self) -> Duration {
        (self.timings.heartbeat / 2).max(Duration::from_millis(10))
    }

    fn step(mut self) -> StepFuture<Self> {
        Box::pin(async move {
            let c = self.cluster.upgrade()?;
            look(&c, &self.timings, &mut self.last_campaign).await;
            Some(self)
        })
    }
}

/// One look: campaign (after a won pre-vote) when the leader has been silent for long enough.
async fn look(c: &Cluster, t: &Timings, last_campaign: &mut Option<(Instant, Duration)>) {
    let Some(view) = view(c) else {
        *last_campaign = None;
        return;
    };
    let since = c.leader_contact.since();
    if since < t.due(view.rank, true) {
        return;
    }
    if last_campaign.is_some_and(|(at, wait)| at.elapsed() < wait) {
        return;
    }
    let dead = match &view.leader {
        Some((_, addr)) => probe_refused(addr, t.heartbeat).await,
        None => false,
    };
    if since < t.due(view.rank, dead) {
        return;
    }
    let wait = rand::thread_rng().gen_range(t.election_min..=t.lease);
    *last_campaign = Some((Instant::now(), wait));
    let pre = prevote::ask(c, t.heartbeat * 2).await;
    c.leader_contact.set_isolated(pre.isolated);
    if !pre.won {
        tracing::debug!(
            term = view.term,
            granted = ?pre.granted,
            refused = ?pre.refused,
            silent = ?pre.silent,
            "pre-vote lost: not campaigning"
        );
        return;
    }
    // A heartbeat that arrived while we asked means a leader is back: stand down.
    if c.leader_contact.since() < since {
        return;
    }
    tracing::info!(
        term = view.term,
        last_leader = ?view.leader.as_ref().map(|l| l.0),
        silent_ms = since.as_millis() as u64,
        leader_process_gone = dead,
        granted = ?pre.granted,
        "pre-vote won: starting an election"
    );
    if let Err(e) = c.raft.trigger().elect().await {
        tracing::warn!(error = %e, "could not start an election");
    }
}

/// This node's view, when it is a voter that does not lead (else `None`).
fn view(c: &Cluster) -> Option<View> {
    let rx = c.raft.metrics();
    let m = rx.borrow();
    if m.state == ServerState::Leader || m.running_state.is_err() {
        return None;
    }
    let membership = m.membership_config.membership();
    if !membership.voter_ids().any(|v| v == c.id) {
        return None;
    }
    let leader = m
        .current_leader
        .filter(|l| *l != c.id)
        .and_then(|l| membership.get_node(&l).map(|n| (l, n.addr.clone())));
    let skip = leader.as_ref().map(|l| l.0);
    let rank = membership
        .voter_ids()
        .filter(|v| Some(*v) != skip)
        .position(|v| v == c.id)?;
    Some(View {
        leader,
        term: m.current_term,
        rank: u32::try_from(rank).unwrap_or(u32::MAX),
    })
}

/// Whether a TCP connection to `addr` is actively refused (nothing listens: the process is
/// gone). A timeout, an unreachable network or a successful connect are all "not refused".
async fn probe_refused(addr: &str, timeout: Duration) -> bool {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        Ok(Ok(_)) | Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::Timings;
    use std::time::Duration;

    #[test]
    fn a_dead_leader_is_replaced_sooner_and_ranks_are_staggered() {
        let ms = Duration::from_millis;
        let t = Timings {
            heartbeat: ms(100),
            election_min: ms(210),
            lease: ms(300),
        };
        assert_eq!(t.due(0, true), ms(350));
        assert_eq!(t.due(0, false), ms(400));
        assert_eq!(t.due(1, false), ms(600));
        // every campaign waits out the lease, during which the other voters refuse to vote
        assert!(t.due(0, true) > t.lease);
    }
}

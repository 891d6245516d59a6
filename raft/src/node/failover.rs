//! Early elections when the leader's process is gone.
//!
//! openraft 0.9 makes a follower wait `leader_lease` (= `election_timeout_max`) plus a random
//! election timeout after the last heartbeat before it campaigns, and every other voter refuses
//! to vote until its own lease has run out. A leader whose *process* died (crash, SIGKILL, OOM
//! kill) while its host stays up is detectable much sooner: its Raft port refuses connections.
//!
//! This watcher, on every voter that follows a leader, probes the leader's Raft address once
//! heartbeats stop for two intervals. When the port refuses connections, the follower asks
//! openraft for an election as soon as the other voters' leases have expired (last heartbeat +
//! `election_timeout_max`), staggered by its rank among the remaining voters so that two
//! followers do not split the vote. A leader that is merely slow, paused or cut off by the
//! network still accepts (or times out) connections and is left to openraft's own timers.
//! Starting an election is always safe in Raft; this only changes when it happens.

use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::NodeId;
use openraft::ServerState;

use crate::node::cluster::Cluster;

/// Timings of the watcher, from the Raft configuration.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// The leader's heartbeat interval.
    pub heartbeat: Duration,
    /// openraft's leader lease: `election_timeout_max`.
    pub lease: Duration,
}

/// Watch the leader; run on the Raft runtime until the cluster handle is dropped.
pub async fn watch(cluster: Weak<Cluster>, t: Timings) {
    let tick = (t.heartbeat / 2).max(Duration::from_millis(10));
    let mut last_elect: Option<(u64, Instant)> = None;
    loop {
        tokio::time::sleep(tick).await;
        let Some(c) = cluster.upgrade() else {
            return;
        };
        let Some((leader, addr, term, rank)) = followed_leader(&c) else {
            continue;
        };
        let since = c.leader_contact.since();
        if since < t.heartbeat * 2 || !probe_refused(&addr, t.heartbeat).await {
            continue;
        }
        // The other voters heard the same last heartbeat; after their lease they will vote.
        let stagger = t.heartbeat * 2 * rank;
        if since < t.lease + t.heartbeat / 2 + stagger {
            continue;
        }
        // One early election per term: if it fails, openraft's own timers take over.
        if last_elect.is_some_and(|(tm, at)| tm == term && at.elapsed() < t.lease) {
            continue;
        }
        last_elect = Some((term, Instant::now()));
        tracing::info!(
            leader,
            term,
            silent_ms = since.as_millis() as u64,
            "the leader's Raft port refuses connections; starting an election early"
        );
        if let Err(e) = c.raft.trigger().elect().await {
            tracing::warn!(error = %e, "could not start an election");
        }
    }
}

/// The leader this node follows as a voter: (leader id, its Raft address, term, this node's rank
/// among the other voters). `None` when this node leads, is a learner or knows no leader.
fn followed_leader(c: &Cluster) -> Option<(NodeId, String, u64, u32)> {
    let rx = c.raft.metrics();
    let m = rx.borrow();
    if m.state != ServerState::Follower {
        return None;
    }
    let leader = m.current_leader?;
    if leader == c.id {
        return None;
    }
    let membership = m.membership_config.membership();
    let voters: Vec<NodeId> = membership.voter_ids().filter(|v| *v != leader).collect();
    let rank = voters.iter().position(|v| *v == c.id)?;
    let addr = membership.get_node(&leader)?.addr.clone();
    Some((
        leader,
        addr,
        m.current_term,
        u32::try_from(rank).unwrap_or(u32::MAX),
    ))
}

/// Whether a TCP connection to `addr` is actively refused (nothing listens: the process is
/// gone). A timeout, an unreachable network or a successful connect are all "not refused".
async fn probe_refused(addr: &str, timeout: Duration) -> bool {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        Ok(Ok(_)) | Err(_) => false,
    }
}

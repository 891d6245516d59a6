//! PreVote (Raft thesis §9.6): a voter asks the other voters whether it could win an election
//! *before* it raises its term, and campaigns only when a majority of every voter set says yes.
//!
//! openraft 0.9 has no pre-vote, so this node owns the decision to campaign: openraft's own
//! election timer is off (`Config::enable_elect = false`, set in `runtime.rs`) and the
//! campaign loop (`failover.rs`) calls [`ask`] and then `raft.trigger().elect()`.
//!
//! A voter answers yes ([`answer`]) unless one of these holds — each one would make its real
//! vote a refusal, or means a healthy leader exists that an election would only depose:
//! - it leads and a quorum acknowledged it within an election timeout (CheckQuorum, the same
//!   test as its readiness);
//! - it follows a leader it heard from within the leader lease (`election_timeout_max`: the
//!   span during which openraft itself refuses to vote for anyone else);
//! - the asker's last log id is behind its own (Raft's up-to-date check, as openraft's vote).
//!
//! A node cut off from the majority therefore never raises the term: its pre-votes go
//! unanswered (or refused), so when it returns it follows the leader that kept serving.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;
use openraft::ServerState;

use crate::consensus::cluster::Cluster;
use crate::transport::network::paths;
use crate::transport::wire::{PreVoteReply, PreVoteRequest};
use crate::NodeId;

/// Answer a pre-vote: would this node vote for `req.candidate` now?
pub fn answer(c: &Cluster, req: &PreVoteRequest) -> PreVoteReply {
    let (term, leading, leader) = {
        let rx = c.raft.metrics();
        let m = rx.borrow();
        let leading = m.state == ServerState::Leader && m.current_leader == Some(c.id);
        (m.current_term, leading, m.current_leader)
    };
    let refusal = if leading {
        c.can_serve()
            .is_ok()
            .then(|| "leading with a quorum's acknowledgements".to_string())
    } else {
        leader
            .filter(|_| c.leader_contact.since() < c.deadlines.contact)
            .map(|l| format!("heard from leader {l} within the election timeout"))
    };
    let refusal = refusal.or_else(|| {
        let mine = c.raft.data_metrics().borrow().last_log;
        (req.last_log < mine).then(|| {
            format!(
                "candidate's log ({:?}) is behind this voter's ({mine:?})",
                req.last_log
            )
        })
    });
    PreVoteReply {
        granted: refusal.is_none(),
        term,
        reason: refusal.unwrap_or_default(),
    }
}

/// What a pre-vote round found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// A majority of every voter set (this node included) would vote for it.
    pub won: bool,
    /// The voters that said yes (this node included).
    pub granted: BTreeSet<NodeId>,
    /// The voters that refused, with their reasons.
    pub refused: Vec<(NodeId, String)>,
    /// The voters that did not answer within the timeout (down, paused, cut off).
    pub silent: Vec<NodeId>,
    /// No majority of some voter set answered at all (yes or no): this node cannot reach a
    /// quorum, so it can serve nothing until it hears from a leader.
    pub isolated: bool,
}

/// Ask every other voter, in parallel, each bounded by `timeout`.
pub async fn ask(c: &Cluster, timeout: Duration) -> Outcome {
    let (term, configs, peers) = {
        let rx = c.raft.metrics();
        let m = rx.borrow();
        let membership = m.membership_config.membership();
        let configs: Vec<BTreeSet<NodeId>> = membership.get_joint_config().clone();
        let peers: Vec<(NodeId, String)> = membership
            .voter_ids()
            .filter(|v| *v != c.id)
            .filter_map(|v| membership.get_node(&v).map(|n| (v, n.addr.clone())))
            .collect();
        (m.current_term, configs, peers)
    };
    let req = PreVoteRequest {
        candidate: c.id,
        term,
        last_log: c.raft.data_metrics().borrow().last_log,
    };
    let replies = join_all(peers.iter().map(|(id, addr)| {
        let req = &req;
        async move {
            let r = c
                .peers
                .call::<PreVoteRequest, PreVoteReply>(addr, paths::PRE_VOTE, req, Some(timeout))
                .await;
            (*id, r)
        }
    }))
    .await;
    let mut granted = BTreeSet::from([c.id]);
    let mut answered = granted.clone();
    let mut refused = Vec::new();
    let mut silent = Vec::new();
    for (id, r) in replies {
        match r {
            Ok(reply) if reply.granted => {
                granted.insert(id);
                answered.insert(id);
            }
            Ok(reply) => {
                refused.push((id, reply.reason));
                answered.insert(id);
            }
            Err(_) => silent.push(id),
        }
    }
    Outcome {
        won: majority_of_each(&configs, &granted),
        isolated: !majority_of_each(&configs, &answered),
        granted,
        refused,
        silent,
    }
}

/// Whether `granted` holds a majority of every voter set of a (possibly joint) membership.
pub fn majority_of_each(configs: &[BTreeSet<NodeId>], granted: &BTreeSet<NodeId>) -> bool {
    !configs.is_empty()
        && configs
            .iter()
            .all(|cfg| cfg.iter().filter(|v| granted.contains(v)).count() * 2 > cfg.len())
}

#[cfg(test)]
mod tests {
    use super::majority_of_each;
    use std::collections::BTreeSet;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_majority_of_every_voter_set_is_needed() {
        let three = vec![set(&[1, 2, 3])];
        assert!(!majority_of_each(&three, &set(&[1])));
        assert!(majority_of_each(&three, &set(&[1, 2])));
        assert!(majority_of_each(&[set(&[1])], &set(&[1])));
        // joint: {1,2,3} and {3,4,5}; {1,2} is a majority of the first only
        let joint = vec![set(&[1, 2, 3]), set(&[3, 4, 5])];
        assert!(!majority_of_each(&joint, &set(&[1, 2])));
        assert!(majority_of_each(&joint, &set(&[1, 3, 4])));
        // four voters need three
        assert!(!majority_of_each(&[set(&[1, 2, 3, 4])], &set(&[1, 2])));
        assert!(!majority_of_each(&[], &set(&[1])));
    }
}

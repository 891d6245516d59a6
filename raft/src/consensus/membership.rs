//! Membership changes and cluster-wide admin operations, always executed on the leader.
//!
//! Safety checks before openraft's own: a node id already in use, promoting what is not a
//! learner, removing the last voter, or a second change while one is in progress are refused
//! with a message that says why.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use crate::consensus::cluster::Cluster;
use crate::transport::network::paths;
use crate::transport::wire::{AdminOp, AdminRefusal, AdminReply};

/// How long a learner may take to catch up before `AddLearner` gives up waiting.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

fn refused(msg: impl Into<String>) -> AdminRefusal {
    AdminRefusal::Refused(msg.into())
}

fn map_write_err(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> AdminRefusal {
    match e {
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => refused(format!(
            "membership change refused: {c} (only one change at a time; wait for the previous to finish)"
        )),
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            AdminRefusal::Unavailable("leadership moved during the change; retry".into())
        }
        RaftError::Fatal(f) => AdminRefusal::Unavailable(f.to_string()),
    }
}

impl Cluster {
    /// Run `op` on the leader: here when this node leads, else forwarded to it.
    ///
    /// # Errors
    /// [`AdminRefusal::Refused`] for an unsafe or invalid step, [`AdminRefusal::Unavailable`]
    /// when no leader answered before the deadline.
    pub async fn admin(self: &Arc<Self>, op: AdminOp) -> AdminReply {
        let this = self.clone();
        self.rt
            .spawn(async move { this.admin_here(op).await })
            .await
            .map_err(|e| AdminRefusal::Unavailable(format!("admin task failed: {e}")))?
    }

    async fn admin_here(&self, op: AdminOp) -> AdminReply {
        let deadline = Instant::now() + self.deadlines.request;
        loop {
            match self.leader() {
                Some((leader, _)) if leader == self.id => return self.admin_on_leader(op).await,
                Some((_, Some(addr))) => {
                    let timeout = CATCH_UP_TIMEOUT + self.deadlines.request;
                    return match self
                        .peers
                        .call::<AdminOp, AdminReply>(&addr, paths::ADMIN, &op, Some(timeout))
                        .await
                    {
                        Ok(reply) => reply,
                        Err(e) => Err(AdminRefusal::Unavailable(e.to_string())),
                    };
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(AdminRefusal::Unavailable("no leader known".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Execute `op` on this node, which must be the leader.
    ///
    /// # Errors
    /// As [`Cluster::admin`].
    pub async fn admin_on_leader(&self, op: AdminOp) -> AdminReply {
        // One membership change at a time: a second one while the first is still running (for
        // example a learner still catching up) is refused, not queued behind it.
        let _change = match op {
            AdminOp::Snapshot => None,
            _ => Some(self.membership_change.try_lock().map_err(|_| {
                refused("another membership change is in progress; wait for it to finish")
            })?),
        };
        // Lease checks go through the Raft core while voters may change (lease.rs).
        let _lease = (!matches!(op, AdminOp::Snapshot)).then(|| self.lease.membership_change());
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let nodes: BTreeMap<u64, BasicNode> =
            membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        if m.current_leader != Some(self.id) {
            return Err(AdminRefusal::Unavailable(
                "this node is no longer the leader".into(),
            ));
        }
        match op {
            AdminOp::Snapshot => {
                self.raft
                    .trigger()
                    .snapshot()
                    .await
                    .map_err(|e| AdminRefusal::Unavailable(e.to_string()))?;
                Ok(format!("snapshot triggered on node {}", self.id))
            }
            AdminOp::AddLearner { id, addr } => {
                if id == 0 {
                    return Err(refused("node id 0 is not allowed"));
                }
                if let Some(n) = nodes.get(&id) {
                    if n.addr != addr || voters.contains(&id) {
                        return Err(refused(format!(
                            "node {id} is already a member ({} at {})",
                            if voters.contains(&id) {
                                "voter"
                            } else {
                                "learner"
                            },
                            n.addr
                        )));
                    }
                }
                if let Some(pending) = nodes.keys().find(|n| !voters.contains(n) && **n != id) {
                    return Err(refused(format!(
                        "node {pending} is a learner that was never promoted (an add-node in \
                         progress or interrupted): promote or remove it before adding another"
                    )));
                }
                if let Some((other, _)) =
                    nodes.iter().find(|(oid, n)| n.addr == addr && **oid != id)
                {
                    return Err(refused(format!(
                        "address {addr} is already used by node {other}"
                    )));
                }
                let fut = self
                    .raft
                    .add_learner(id, BasicNode { addr: addr.clone() }, true);
                match tokio::time::timeout(CATCH_UP_TIMEOUT, fut).await {
                    Ok(Ok(r)) => Ok(format!("node {id} ({addr}) added as learner at log {}", r.log_id.index)),
                    Ok(Err(e)) => Err(map_write_err(e)),
                    Err(_) => Ok(format!(
                        "node {id} ({addr}) added as learner; still catching up after {CATCH_UP_TIMEOUT:?}"
                    )),
                }
            }
            AdminOp::Promote { id } => {
                if voters.contains(&id) {
                    return Err(refused(format!("node {id} is already a voter")));
                }
                if !nodes.contains_key(&id) {
                    return Err(refused(format!("node {id} is not a learner: add it first")));
                }
                let r = self
                    .raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map_err(map_write_err)?;
                Ok(format!(
                    "node {id} promoted to voter at log {}",
                    r.log_id.index
                ))
            }
            AdminOp::Remove { id } => {
                if !nodes.contains_key(&id) {
                    return Err(refused(format!("node {id} is not a member")));
                }
                let change = if voters.contains(&id) {
                    if voters.len() == 1 {
                        return Err(refused(format!(
                            "node {id} is the last voter: refusing to remove it"
                        )));
                    }
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                let r = self
                    .raft
                    .change_membership(change, false)
                    .await
                    .map_err(map_write_err)?;
                Ok(format!("node {id} removed at log {}", r.log_id.index))
            }
        }
    }
}

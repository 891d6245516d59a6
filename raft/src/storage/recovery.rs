//! Offline recovery of a node whose cluster lost a majority for good: make its data directory
//! the only voter of a new one-node cluster, keeping every entry of its log (etcd's
//! `--force-new-cluster`).
//!
//! How: one membership entry `{ id }` is appended after the last log entry, under that entry's
//! leader id, and synced. openraft takes the last membership entry of the log as the effective
//! one at start, so the node starts as the sole voter, elects itself in a higher term and
//! commits its whole log — including entries the lost majority never confirmed, which is what
//! "force" means: acknowledged writes are all there (a write is acknowledged only once a quorum
//! has it, and this log holds what this node had), unacknowledged ones may be too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::{BasicNode, EntryPayload, LogId, Membership};

use crate::storage::error::{Error, Result};
use crate::storage::types::{Entry, NodeId};
use crate::storage::{open, StorageOptions};

/// What a data directory holds, and what recovery appends.
#[derive(Debug, Clone)]
pub struct RecoveryPlan {
    /// The last entry of the log (`None`: the log is empty — nothing to recover).
    pub last_log: Option<openraft::LogId<NodeId>>,
    /// The last applied entry.
    pub applied: Option<openraft::LogId<NodeId>>,
    /// The voters of the membership in force (the last membership entry of the log, else the
    /// state machine's).
    pub voters: BTreeSet<NodeId>,
    /// The vote on disk, as text.
    pub vote: Option<String>,
    /// Where the new membership entry goes (index after the last entry).
    pub new_entry: Option<openraft::LogId<NodeId>>,
}

/// Reads what recovering `data_dir` as node `id` would do, and with `apply` does it.
///
/// # Errors
/// The directory does not exist or holds no RocksDB, another process has it open (the node
/// must be stopped), the log is empty, or a write fails.
pub fn force_new_cluster(
    data_dir: &Path,
    id: NodeId,
    raft_addr: &str,
    apply: bool,
) -> Result<RecoveryPlan> {
    let db_dir = data_dir.join("db");
    if !db_dir.is_dir() {
        return Err(Error::Corrupt {
            what: "data directory",
            reason: format!(
                "{} holds no node data (no {}); nothing to recover",
                data_dir.display(),
                db_dir.display()
            ),
        });
    }
    let (log, sm) = open(data_dir, &StorageOptions::default())?;
    let state = log.state()?;
    let vote = log.vote()?;
    let (applied, stored) = sm.applied_state()?;
    let mut voters: BTreeSet<NodeId> = stored.membership().voter_ids().collect();
    // A membership entry after the applied one is the one in force.
    let first_unapplied = applied.map_or(0, |l| l.index + 1);
    for entry in log.read_entries(first_unapplied..)? {
        if let EntryPayload::Membership(m) = &entry.payload {
            voters = m.voter_ids().collect();
        }
    }
    let last_log = state.last_log_id;
    let new_entry = last_log.map(|l| LogId::new(l.leader_id, l.index + 1));
    let plan = RecoveryPlan {
        last_log,
        applied,
        voters,
        vote: vote.map(|v| v.to_string()),
        new_entry,
    };
    let Some(at) = new_entry else {
        return Err(Error::Corrupt {
            what: "log",
            reason: format!(
                "{} holds an empty log: this node never joined a cluster, nothing to recover",
                data_dir.display()
            ),
        });
    };
    if apply {
        let nodes: BTreeMap<NodeId, BasicNode> = BTreeMap::from([(id, BasicNode::new(raft_addr))]);
        let membership = Membership::new(vec![BTreeSet::from([id])], nodes);
        let entry = Entry {
            log_id: at,
            payload: EntryPayload::Membership(membership),
        };
        // Synced before we report success: the operator starts the node next.
        log.write_entries_durably([entry])?;
    }
    Ok(plan)
}

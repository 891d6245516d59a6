//! The wire format of internal RPC: bincode 2 bodies with a size limit, and the messages that are
//! ours (forwarded writes, read index) rather than openraft's.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest internal request or response body accepted (append entries and snapshot chunks).
pub const MAX_RPC_BYTES: usize = 64 << 20;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_RPC_BYTES>,
> {
    bincode::config::standard().with_limit::<MAX_RPC_BYTES>()
}

/// A body could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

/// Encode an RPC body.
///
/// # Errors
/// When serde refuses the value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| WireError(e.to_string()))
}

/// Decode an RPC body; garbage, truncation, absurd lengths and trailing bytes are errors.
///
/// # Errors
/// [`WireError`] describing what is wrong with the bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (v, used) = bincode::serde::decode_from_slice::<T, _>(bytes, config())
        .map_err(|e| WireError(format!("undecodable body: {e}")))?;
    if used != bytes.len() {
        return Err(WireError(format!(
            "{} trailing bytes after the body",
            bytes.len() - used
        )));
    }
    Ok(v)
}

/// What a request's MAC covers as its path: the path, and the wire format when above 1 (so a
/// changed `sessionraft-wire` header fails the MAC instead of having the body misread). Format 1
/// signs the bare path, as 0.1.0 does.
pub fn signed_path(path: &str, wire: u32) -> std::borrow::Cow<'_, str> {
    if wire > 1 {
        format!("{path}#wire={wire}").into()
    } else {
        path.into()
    }
}

/// Why a forwarded write or a read-index request could not be served by the node asked.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum PeerRefusal {
    /// The node is not the leader; it names the leader when it knows one.
    NotLeader {
        leader_id: Option<u64>,
        leader_addr: Option<String>,
    },
    /// The node is shutting down or hit a storage error.
    Failed(String),
}

/// A forwarded write, committed and applied on the leader: what the state machine answered,
/// and the index of the log entry that carried it (the follower puts it in the session token).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub response: crate::Response,
    pub index: u64,
}

/// A write forwarded to the leader (`POST /raft/write`): the command, and the term in which the
/// sender took the receiver for the leader. The receiver acts on it only as the leader of that
/// very term. A copy held up in the network (TCP retransmitting it once a partition heals) and
/// delivered after a leader change is refused, so a write that its sender abandoned and
/// proposed again through the new leader is never applied a second time, later, over newer
/// writes (an entry of the old term that is not committed by then never will be).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ForwardedWrite {
    pub term: u64,
    pub cmd: crate::Command,
}

/// Reply to a forwarded write (`POST /raft/write`).
pub type WriteReply = Result<Committed, PeerRefusal>;

/// A forwarded write in wire format 1 (0.1.0): the bare command, for whichever node leads.
pub type ForwardedWriteV1 = crate::Command;

/// The reply to a format-1 forwarded write: the response without the entry's index.
pub type WriteReplyV1 = Result<crate::Response, PeerRefusal>;

/// Reply to a read-index request (`POST /raft/read-index`): the log index a linearizable read
/// must wait for (applied index at least this), as confirmed by the leader with a quorum.
pub type ReadIndexReply = Result<u64, PeerRefusal>;

/// A membership change, executed on the leader (forwarded there by any node).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum AdminOp {
    /// Add a node as a learner and wait until it has caught up.
    AddLearner { id: u64, addr: String },
    /// Make a learner a voter (joint consensus).
    Promote { id: u64 },
    /// Remove a voter or a learner from the cluster.
    Remove { id: u64 },
    /// Trigger a snapshot on the leader.
    Snapshot,
}

/// Reply to an admin op: a human-readable outcome, or why it was refused.
pub type AdminReply = Result<String, AdminRefusal>;

/// Why an admin op was refused.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminRefusal {
    /// The operation is unsafe or invalid in the current membership (400).
    #[error("{0}")]
    Refused(String),
    /// No leader could be reached (503).
    #[error("{0}")]
    Unavailable(String),
}

/// A pre-vote (Raft thesis §9.6), asked by a voter before it raises its term: could it win an
/// election now? Answered from the receiver's state; nothing changes on either side.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PreVoteRequest {
    /// The would-be candidate.
    pub candidate: u64,
    /// Its current term (it would campaign in the next one).
    pub term: u64,
    /// The id of its last log entry: a voter with a longer log would refuse its vote.
    pub last_log: Option<openraft::LogId<u64>>,
}

/// The answer to a [`PreVoteRequest`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PreVoteReply {
    /// Whether this voter would grant its vote now.
    pub granted: bool,
    /// The voter's current term.
    pub term: u64,
    /// Why not, when not granted (for the log).
    pub reason: String,
}

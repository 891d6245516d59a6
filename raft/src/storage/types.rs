//! The openraft type configuration shared by every crate of the workspace.

use crate::storage::command::{Command, Response};

/// Node ids are small integers taken from `cluster.toml`.
pub type NodeId = u64;

/// The node record kept in the Raft membership: where its HTTP/RPC listener is.
pub type Node = openraft::BasicNode;

openraft::declare_raft_types!(
    /// sessionraft's Raft: commands on sessions in, one response per command out; snapshots are
    /// files on disk, streamed through `tokio::fs::File`.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle of a sessionraft node.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry of sessionraft's log.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id of sessionraft's log.
pub type LogId = openraft::LogId<NodeId>;
/// The membership as stored in the state machine.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// The storage error type openraft expects from the stores.
pub type StorageError = openraft::StorageError<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;

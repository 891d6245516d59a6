//! Property tests ("fuzzing", bounded for CI) of the internal RPC wire format: every body type a
//! node decodes with `transport::wire::decode` — the requests of `/raft/{append,vote,snapshot,write,
//! read-index,admin}` and the replies a `PeerClient` decodes — fed arbitrary bytes and damaged
//! valid encodings, never panics and either refuses the bytes or returns a value that
//! round-trips; valid values round-trip.
//!
//! The MAC is checked before any of this runs (see `transport::auth`), so only a holder of the cluster
//! secret can reach these decoders; they must hold anyway.
//!
//! Policy for failures: proptest's failure persistence is off (no `proptest-regressions/`
//! files are written). A failing input found here is fixed in the decoder and kept below as a
//! named `#[test]` that reproduces it without proptest; commit no generated files.
//!
//! Each property runs at most 1,000 cases (well under a second in release);
//! `SESSIONRAFT_FUZZ_CASES=100000` runs more by hand.

use crate::strategies;

use crate::strategies::{
    append_request, append_response, command, config, int, mutate, mutation, node_id, response,
    snapshot_request, snapshot_response, text, vote_request, vote_response,
};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sessionraft_raft::transport::wire::{
    self, AdminOp, AdminRefusal, AdminReply, Committed, ForwardedWrite, PeerRefusal, PreVoteReply,
    PreVoteRequest, ReadIndexReply, WriteReply, MAX_RPC_BYTES,
};
use sessionraft_raft::{Command, TypeConfig};

type AppendReply = Result<AppendEntriesResponse<u64>, RaftError<u64>>;
type VoteReply = Result<VoteResponse<u64>, RaftError<u64>>;
type SnapshotReply = Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>;

/// `transport::wire::decode` must refuse `bytes` or give a value whose encoding decodes to the same value.
fn decodes_or_refuses<T: Serialize + DeserializeOwned>(bytes: &[u8]) {
    if let Ok(v) = wire::decode::<T>(bytes) {
        let again = wire::encode(&v).expect("a decoded value encodes");
        let back: T = wire::decode(&again).expect("its encoding decodes");
        assert_eq!(wire::encode(&back).expect("encodes"), again, "round trip");
    }
}

/// Every body type of the internal RPC, requests and replies, decoded from `bytes`.
fn decode_as_every_rpc_body(bytes: &[u8]) {
    decodes_or_refuses::<AppendEntriesRequest<TypeConfig>>(bytes);
    decodes_or_refuses::<VoteRequest<u64>>(bytes);
    decodes_or_refuses::<InstallSnapshotRequest<TypeConfig>>(bytes);
    decodes_or_refuses::<Command>(bytes);
    decodes_or_refuses::<ForwardedWrite>(bytes);
    decodes_or_refuses::<PreVoteRequest>(bytes);
    decodes_or_refuses::<PreVoteReply>(bytes);
    decodes_or_refuses::<()>(bytes);
    decodes_or_refuses::<AdminOp>(bytes);
    decodes_or_refuses::<AppendReply>(bytes);
    decodes_or_refuses::<VoteReply>(bytes);
    decodes_or_refuses::<SnapshotReply>(bytes);
    decodes_or_refuses::<WriteReply>(bytes);
    decodes_or_refuses::<ReadIndexReply>(bytes);
    decodes_or_refuses::<AdminReply>(bytes);
}

fn round_trips<T: Serialize + DeserializeOwned>(v: &T) -> Vec<u8> {
    let bytes = wire::encode(v).expect("encode");
    let back: T = wire::decode(&bytes).expect("a valid encoding decodes");
    assert_eq!(wire::encode(&back).expect("encode"), bytes, "round trip");
    bytes
}

fn admin_op() -> impl Strategy<Value = AdminOp> {
    prop_oneof![
        (node_id(), text()).prop_map(|(id, addr)| AdminOp::AddLearner { id, addr }),
        node_id().prop_map(|id| AdminOp::Promote { id }),
        node_id().prop_map(|id| AdminOp::Remove { id }),
        Just(AdminOp::Snapshot),
    ]
}

fn refusal() -> impl Strategy<Value = PeerRefusal> {
    prop_oneof![
        (option::of(node_id()), option::of(text())).prop_map(|(leader_id, leader_addr)| {
            PeerRefusal::NotLeader {
                leader_id,
                leader_addr,
            }
        }),
        text().prop_map(PeerRefusal::Failed),
    ]
}

fn write_reply() -> impl Strategy<Value = WriteReply> {
    prop_oneof![
        (response(), int()).prop_map(|(response, index)| Ok(Committed { response, index })),
        refusal().prop_map(Err)
    ]
}

fn read_index_reply() -> impl Strategy<Value = ReadIndexReply> {
    prop_oneof![int().prop_map(Ok), refusal().prop_map(Err)]
}

fn admin_reply() -> impl Strategy<Value = AdminReply> {
    prop_oneof![
        text().prop_map(Ok),
        text().prop_map(|s| Err(AdminRefusal::Refused(s))),
        text().prop_map(|s| Err(AdminRefusal::Unavailable(s))),
    ]
}

/// One valid encoding of any RPC body type (requests and replies).
fn any_valid_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        append_request().prop_map(|v| round_trips(&v)),
        vote_request().prop_map(|v| round_trips(&v)),
        snapshot_request().prop_map(|v| round_trips(&v)),
        command().prop_map(|v| round_trips(&v)),
        admin_op().prop_map(|v| round_trips(&v)),
        append_response().prop_map(|v| round_trips(&AppendReply::Ok(v))),
        vote_response().prop_map(|v| round_trips(&VoteReply::Ok(v))),
        snapshot_response().prop_map(|v| round_trips(&SnapshotReply::Ok(v))),
        write_reply().prop_map(|v| round_trips(&v)),
        read_index_reply().prop_map(|v| round_trips(&v)),
        admin_reply().prop_map(|v| round_trips(&v)),
    ]
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn fuzz_rpc_decode_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..256)) {
        decode_as_every_rpc_body(&bytes);
    }

    #[test]
    fn fuzz_rpc_decode_refuses_or_round_trips_damaged_bodies(
        body in any_valid_body(),
        damage in vec(mutation(), 1..4),
    ) {
        decode_as_every_rpc_body(&mutate(&body, &damage));
    }
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn fuzz_rpc_valid_bodies_round_trip(
        append in append_request(),
        vote in vote_request(),
        snapshot in snapshot_request(),
        cmd in command(),
        op in admin_op(),
        replies in (append_response(), vote_response(), snapshot_response()),
        ours in (write_reply(), read_index_reply(), admin_reply()),
    ) {
        round_trips(&append);
        prop_assert_eq!(wire::decode::<VoteRequest<u64>>(&round_trips(&vote)).expect("vote"), vote);
        let back: InstallSnapshotRequest<TypeConfig> =
            wire::decode(&round_trips(&snapshot)).expect("snapshot");
        prop_assert_eq!(back, snapshot);
        prop_assert_eq!(wire::decode::<Command>(&round_trips(&cmd)).expect("command"), cmd);
        prop_assert_eq!(wire::decode::<AdminOp>(&round_trips(&op)).expect("admin op"), op);
        round_trips(&AppendReply::Ok(replies.0));
        round_trips(&VoteReply::Ok(replies.1));
        round_trips(&SnapshotReply::Ok(replies.2));
        prop_assert_eq!(wire::decode::<WriteReply>(&round_trips(&ours.0)).expect("w"), ours.0);
        prop_assert_eq!(wire::decode::<ReadIndexReply>(&round_trips(&ours.1)).expect("r"), ours.1);
        prop_assert_eq!(wire::decode::<AdminReply>(&round_trips(&ours.2)).expect("a"), ours.2);
    }
}

/// An absurd length prefix written over every position of a real append request never panics
/// nor allocates what it claims (the 64 MiB limit); a vector claiming more than the limit is
/// refused.
#[test]
fn fuzz_rpc_length_prefixes_are_bounded() {
    let req = AppendEntriesRequest::<TypeConfig> {
        vote: openraft::Vote::new_committed(3, 1),
        prev_log_id: None,
        entries: vec![openraft::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), 1),
            payload: openraft::EntryPayload::Normal(Command::Batch(vec![Command::Delete {
                key: "k".into(),
            }])),
        }],
        leader_commit: None,
    };
    let body = wire::encode(&req).expect("encode");
    for at in 0..=body.len() {
        let damaged = mutate(&body, &[strategies::Mutation::HugeLength(at)]);
        decode_as_every_rpc_body(&damaged);
    }
    // a byte vector claiming one byte more than the limit, followed by that many bytes
    let claimed = MAX_RPC_BYTES + 1;
    let mut over = vec![0xfc]; // bincode's varint marker for a u32
    over.extend_from_slice(&u32::try_from(claimed).expect("fits").to_le_bytes());
    over.resize(over.len() + claimed, 0);
    let err = wire::decode::<Vec<u8>>(&over).expect_err("over the limit");
    assert!(err.to_string().contains("undecodable"), "{err}");
}

//! proptest strategies for the values that cross the wire or hit the disk: commands, sessions,
//! log entries, memberships and openraft's messages. Shared by `raft/tests/it/fuzz_decoders.rs`
//! and `web/tests/fuzz_rpc.rs` (included there by path), so both fuzz the same shapes.
//!
//! Sizes are kept small (short strings, few elements, shallow batches): the properties are
//! about structure — every variant, every optional field, every length prefix — not volume, and
//! small values keep a few thousand cases well under a second.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta,
    StoredMembership, Vote,
};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use sessionraft_raft::{Command, Response, Session, TypeConfig};

/// `cases` per property, or `SESSIONRAFT_FUZZ_CASES` for a longer run by hand; failures are
/// never persisted to files (a real one becomes a named regression test).
pub fn config(cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("SESSIONRAFT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// Short strings, including non-ASCII and empty ones.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9_-]{0,12}",
        1 => "\\PC{0,8}",
    ]
}

/// Small and extreme integers: varint encodings change size at 251, 2^16, 2^32.
pub fn int() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0..300u64,
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

pub fn node_id() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0..8u64, 1 => any::<u64>()]
}

pub fn log_id() -> impl Strategy<Value = LogId<u64>> {
    (int(), node_id(), int())
        .prop_map(|(term, node, index)| LogId::new(CommittedLeaderId::new(term, node), index))
}

pub fn vote() -> impl Strategy<Value = Vote<u64>> {
    (int(), node_id(), any::<bool>()).prop_map(|(term, node, committed)| {
        if committed {
            Vote::new_committed(term, node)
        } else {
            Vote::new(term, node)
        }
    })
}

pub fn state() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(text(), text(), 0..4)
}

pub fn session() -> impl Strategy<Value = Session> {
    (state(), int(), int(), int(), option::of(text())).prop_map(
        |(state, version, created_at_ms, expires_at_ms, user)| Session {
            state,
            version,
            created_at_ms,
            expires_at_ms,
            user,
        },
    )
}

/// Every command but `Batch`, one of each shape.
fn single_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (text(), state(), option::of(text()), int(), int()).prop_map(
            |(key, state, user, now_ms, expires_at_ms)| Command::Create {
                key,
                state,
                user,
                now_ms,
                expires_at_ms,
            }
        ),
        (
            text(),
            state(),
            option::of(text()),
            option::of(int()),
            int(),
            int()
        )
            .prop_map(
                |(key, state, user, expected_version, now_ms, expires_at_ms)| {
                    Command::Update {
                        key,
                        state,
                        user,
                        expected_version,
                        now_ms,
                        expires_at_ms,
                    }
                }
            ),
        (vec((text(), int()), 0..4), int())
            .prop_map(|(entries, now_ms)| Command::Touch { entries, now_ms }),
        text().prop_map(|key| Command::Delete { key }),
        (text(), text(), int()).prop_map(|(from, to, now_ms)| Command::Rename { from, to, now_ms }),
        text().prop_map(|user| Command::DeleteUser { user }),
        (int(), any::<u32>()).prop_map(|(now_ms, limit)| Command::PurgeExpired { now_ms, limit }),
        (vec((text(), session()), 0..3), int())
            .prop_map(|(sessions, now_ms)| Command::Import { sessions, now_ms }),
        (text(), any::<u32>(), text(), int()).prop_map(|(user, max, keep, now_ms)| {
            Command::CapUser {
                user,
                max,
                keep,
                now_ms,
            }
        }),
    ]
}

/// Any command, with batches nested up to two deep.
pub fn command() -> impl Strategy<Value = Command> {
    single_command().prop_recursive(2, 12, 4, |inner| vec(inner, 0..4).prop_map(Command::Batch))
}

pub fn response() -> impl Strategy<Value = Response> {
    let single = prop_oneof![
        int().prop_map(|version| Response::Written { version }),
        int().prop_map(Response::Count),
        Just(Response::NotFound),
        Just(Response::KeyExists),
        int().prop_map(|current| Response::VersionMismatch { current }),
        text().prop_map(Response::Rejected),
        Just(Response::Empty),
    ];
    single.prop_recursive(2, 12, 4, |inner| vec(inner, 0..4).prop_map(Response::Batch))
}

pub fn membership() -> impl Strategy<Value = Membership<u64, BasicNode>> {
    (
        vec(btree_set(node_id(), 1..4), 1..3),
        btree_set(node_id(), 0..3),
    )
        .prop_map(|(configs, learners)| {
            let voters: BTreeSet<u64> = configs.iter().flatten().copied().collect();
            let nodes: BTreeMap<u64, BasicNode> = voters
                .iter()
                .chain(&learners)
                .map(|id| (*id, BasicNode::new(format!("127.0.0.{id}:7000"))))
                .collect();
            Membership::new(configs, nodes)
        })
}

pub fn stored_membership() -> impl Strategy<Value = StoredMembership<u64, BasicNode>> {
    (option::of(log_id()), membership()).prop_map(|(id, m)| StoredMembership::new(id, m))
}

pub fn entry() -> impl Strategy<Value = Entry<TypeConfig>> {
    let payload = prop_oneof![
        Just(EntryPayload::Blank),
        command().prop_map(EntryPayload::Normal),
        membership().prop_map(EntryPayload::Membership),
    ];
    (log_id(), payload).prop_map(|(log_id, payload)| Entry { log_id, payload })
}

pub fn append_request() -> impl Strategy<Value = AppendEntriesRequest<TypeConfig>> {
    (
        vote(),
        option::of(log_id()),
        vec(entry(), 0..4),
        option::of(log_id()),
    )
        .prop_map(
            |(vote, prev_log_id, entries, leader_commit)| AppendEntriesRequest {
                vote,
                prev_log_id,
                entries,
                leader_commit,
            },
        )
}

pub fn append_response() -> impl Strategy<Value = AppendEntriesResponse<u64>> {
    // (not `Clone`, so no `Just`: one of the four variants by number)
    (0..4u8, option::of(log_id()), vote()).prop_map(|(variant, log_id, vote)| match variant {
        0 => AppendEntriesResponse::Success,
        1 => AppendEntriesResponse::PartialSuccess(log_id),
        2 => AppendEntriesResponse::Conflict,
        _ => AppendEntriesResponse::HigherVote(vote),
    })
}

pub fn vote_request() -> impl Strategy<Value = VoteRequest<u64>> {
    (vote(), option::of(log_id())).prop_map(|(v, last)| VoteRequest::new(v, last))
}

pub fn vote_response() -> impl Strategy<Value = VoteResponse<u64>> {
    (vote(), option::of(log_id()), any::<bool>())
        .prop_map(|(v, last, granted)| VoteResponse::new(v, last, granted))
}

pub fn snapshot_request() -> impl Strategy<Value = InstallSnapshotRequest<TypeConfig>> {
    (
        vote(),
        option::of(log_id()),
        stored_membership(),
        text(),
        int(),
        vec(any::<u8>(), 0..64),
        any::<bool>(),
    )
        .prop_map(
            |(vote, last_log_id, last_membership, snapshot_id, offset, data, done)| {
                InstallSnapshotRequest {
                    vote,
                    meta: SnapshotMeta {
                        last_log_id,
                        last_membership,
                        snapshot_id,
                    },
                    offset,
                    data,
                    done,
                }
            },
        )
}

pub fn snapshot_response() -> impl Strategy<Value = InstallSnapshotResponse<u64>> {
    vote().prop_map(|vote| InstallSnapshotResponse { vote })
}

/// Damage done to a valid encoding.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Keep only the first `n` bytes (`n` taken modulo the length).
    Truncate(usize),
    /// XOR one byte (position modulo the length) with a non-zero mask.
    Flip(usize, u8),
    /// Insert bytes at a position.
    Insert(usize, Vec<u8>),
    /// Overwrite from a position with a huge varint length prefix (bincode's u64 marker).
    HugeLength(usize),
    /// Append bytes.
    Append(Vec<u8>),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
        (any::<usize>(), vec(any::<u8>(), 1..9)).prop_map(|(at, b)| Mutation::Insert(at, b)),
        any::<usize>().prop_map(Mutation::HugeLength),
        vec(any::<u8>(), 1..9).prop_map(Mutation::Append),
    ]
}

/// Apply `mutations` in turn to a copy of `bytes`.
pub fn mutate(bytes: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for m in mutations {
        let len = out.len();
        match m {
            Mutation::Truncate(n) => out.truncate(n % (len + 1)),
            Mutation::Flip(at, mask) if len > 0 => out[at % len] ^= mask,
            Mutation::Flip(..) => {}
            Mutation::Insert(at, b) => {
                let at = at % (len + 1);
                out.splice(at..at, b.iter().copied());
            }
            Mutation::HugeLength(at) => {
                let at = at % (len + 1);
                let end = (at + 9).min(len);
                out.splice(
                    at..end,
                    [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
                );
            }
            Mutation::Append(b) => out.extend_from_slice(b),
        }
    }
    out
}

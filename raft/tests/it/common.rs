//! Helpers shared by the raft crate's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use sessionraft_raft::types::Entry;
use sessionraft_raft::{Command, Response, StateMachineStore, StorageOptions};
use tempfile::TempDir;

pub fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

pub fn entry(index: u64, cmd: Command) -> Entry {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(cmd),
    }
}

pub fn state(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub struct Node {
    pub dir: TempDir,
    pub log: sessionraft_raft::LogStore,
    pub sm: StateMachineStore,
    pub next_index: u64,
}

impl Node {
    pub fn new() -> Self {
        let dir = TempDir::new().expect("temp dir");
        let (log, sm) =
            sessionraft_raft::open(dir.path(), &StorageOptions::default()).expect("open");
        Self {
            dir,
            log,
            sm,
            next_index: 1,
        }
    }

    /// Apply commands, one log entry each, in one apply call.
    pub async fn apply(&mut self, cmds: Vec<Command>) -> Vec<Response> {
        let entries: Vec<Entry> = cmds
            .into_iter()
            .map(|c| {
                let e = entry(self.next_index, c);
                self.next_index += 1;
                e
            })
            .collect();
        self.sm.apply(entries).await.expect("apply")
    }

    pub async fn apply1(&mut self, cmd: Command) -> Response {
        self.apply(vec![cmd]).await.remove(0)
    }
}

pub fn create(key: &str, user: Option<&str>, now: u64, exp: u64) -> Command {
    Command::Create {
        key: key.into(),
        state: state(&[("counter", "0")]),
        user: user.map(String::from),
        now_ms: now,
        expires_at_ms: exp,
    }
}

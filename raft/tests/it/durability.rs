//! Crash recovery (a real SIGKILL of a writer process) and corrupted bytes on disk.

use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};

use crate::common::{create, entry};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{CommittedLeaderId, Vote};
use sessionraft_raft::{Command, StorageOptions};

const CHILD_ENV: &str = "SESSIONRAFT_CRASH_CHILD_DIR";

/// The child half of `acknowledged_entries_survive_sigkill`: writes durably and reports each
/// acknowledged index on stdout, forever, until it is killed.
#[tokio::test]
#[ignore = "runs only as the child process of acknowledged_entries_survive_sigkill"]
async fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mut log, mut sm) =
        sessionraft_raft::open(std::path::Path::new(&dir), &StorageOptions::default()).unwrap();
    log.save_vote(&Vote::new_committed(3, 1)).await.unwrap();
    println!("CRASHTEST-VOTE-SAVED");
    let mut index = 1u64;
    loop {
        let batch: Vec<_> = (0..10)
            .map(|i| {
                entry(
                    index + i,
                    create(&format!("k{}", index + i), None, 0, u64::MAX),
                )
            })
            .collect();
        log.write_entries_durably(batch.clone()).unwrap();
        // acknowledged: durable in the log
        println!("CRASHTEST-ACKED {}", index + 9);
        // apply some of them too, unsynced (the log is the durable record)
        if index % 20 == 1 {
            sm.apply(batch).await.unwrap();
        }
        index += 10;
    }
}

#[tokio::test]
async fn acknowledged_entries_survive_sigkill() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut child = Process::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durability::crash_child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut vote_seen = false;
    let mut acked = 0u64;
    while acked < 3_000 {
        let line = lines.next().expect("child stopped early").unwrap();
        // libtest may print its own text on the same line before ours
        if line.contains("CRASHTEST-VOTE-SAVED") {
            vote_seen = true;
        } else if let Some((_, n)) = line.split_once("CRASHTEST-ACKED ") {
            acked = n.trim().parse().unwrap();
        }
    }
    // SIGKILL: no destructor, no clean close of RocksDB
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(vote_seen);

    let (mut log, sm) = sessionraft_raft::open(dir.path(), &StorageOptions::default()).unwrap();
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(3, 1))
    );
    let state = log.get_log_state().await.unwrap();
    let last = state.last_log_id.expect("log survived").index;
    assert!(
        last >= acked,
        "acknowledged up to {acked}, log ends at {last}"
    );
    let entries = log.read_entries(1..=acked).unwrap();
    assert_eq!(entries.len() as u64, acked);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.log_id.index, i as u64 + 1);
    }
    // the state machine is consistent with its last-applied (data and marker are one batch)
    let (applied, _) = sm.applied_state().unwrap();
    if let Some(applied) = applied {
        assert!(sm
            .get_session(&format!("k{}", applied.index), 0)
            .unwrap()
            .is_some());
        assert!(sm
            .get_session(&format!("k{}", applied.index + 11), 0)
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn log_truncate_and_purge_are_durable() {
    let dir = tempfile::TempDir::new().unwrap();
    {
        let (mut log, _sm) =
            sessionraft_raft::open(dir.path(), &StorageOptions::default()).unwrap();
        let entries: Vec<_> = (1..=100)
            .map(|i| entry(i, Command::Delete { key: "x".into() }))
            .collect();
        log.write_entries_durably(entries).unwrap();
        log.truncate(openraft::LogId::new(CommittedLeaderId::new(1, 1), 61))
            .await
            .unwrap();
        log.purge(openraft::LogId::new(CommittedLeaderId::new(1, 1), 10))
            .await
            .unwrap();
    }
    let (mut log, _sm) = sessionraft_raft::open(dir.path(), &StorageOptions::default()).unwrap();
    let st = log.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id.map(|l| l.index), Some(10));
    assert_eq!(st.last_log_id.map(|l| l.index), Some(60));
    assert_eq!(log.read_entries(0..1000).unwrap().len(), 50);
}

/// Overwrite one value of a column family with garbage, with the store closed.
fn corrupt(dir: &std::path::Path, cf_name: &str, key_suffix: &[u8]) {
    let db_path = dir.join("db");
    let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), &db_path).unwrap();
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &db_path, cfs).unwrap();
    let cf = db.cf_handle(cf_name).unwrap();
    let key = db
        .iterator_cf(cf, rocksdb::IteratorMode::Start)
        .map(|kv| kv.unwrap().0)
        .find(|k| k.ends_with(key_suffix))
        .expect("key to corrupt");
    db.put_cf(cf, key, [1u8, 0xff, 0xfe, 0xfd]).unwrap();
}

#[tokio::test]
async fn corrupted_bytes_give_errors_naming_what_is_corrupt() {
    let dir = tempfile::TempDir::new().unwrap();
    {
        let (log, mut sm) = sessionraft_raft::open(dir.path(), &StorageOptions::default()).unwrap();
        let e = vec![
            entry(1, create("victim", None, 0, 100)),
            entry(2, create("fine", None, 0, 100)),
        ];
        log.write_entries_durably(e.clone()).unwrap();
        sm.apply(e).await.unwrap();
    }
    corrupt(dir.path(), "sessions", b"victim");
    corrupt(dir.path(), "logs", &2u64.to_be_bytes());
    let (mut log, sm) = sessionraft_raft::open(dir.path(), &StorageOptions::default()).unwrap();
    let err = sm.get_session("victim", 1).unwrap_err().to_string();
    assert!(err.contains("corrupt session"), "{err}");
    assert!(
        sm.get_session("fine", 1).unwrap().is_some(),
        "other sessions still readable"
    );
    let err = log.read_entries(1..3).unwrap_err().to_string();
    assert!(err.contains("corrupt log entry"), "{err}");
    let err = log.get_log_state().await.unwrap_err().to_string();
    assert!(err.contains("corrupt log entry"), "{err}");
    // a corrupt vote
    drop((log, sm));
    {
        let db_path = dir.path().join("db");
        let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), &db_path).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &db_path, cfs).unwrap();
        db.put_cf(db.cf_handle("log_meta").unwrap(), b"vote", b"\x07junk")
            .unwrap();
    }
    let (mut log, _sm) = sessionraft_raft::open(dir.path(), &StorageOptions::default()).unwrap();
    let err = log.read_vote().await.unwrap_err().to_string();
    assert!(err.contains("corrupt vote"), "{err}");
}

/// `sessionraft recover --force-new-cluster`: the survivor's data becomes a one-voter cluster
/// keeping every log entry; a dry run changes nothing; a node that still runs (the directory is
/// locked), an empty directory and a missing one are refused.
#[tokio::test]
async fn force_new_cluster_keeps_the_log_and_leaves_one_voter() {
    use openraft::{BasicNode, EntryPayload, Membership};
    use sessionraft_raft::storage::recovery::force_new_cluster;
    use std::collections::{BTreeMap, BTreeSet};

    let dir = tempfile::TempDir::new().unwrap();
    let three: BTreeMap<u64, BasicNode> = (1..=3)
        .map(|i| (i, BasicNode::new(format!("n{i}:7101"))))
        .collect();
    {
        let (log, _sm) = sessionraft_raft::open(dir.path(), &StorageOptions::default()).unwrap();
        let mut entries = vec![sessionraft_raft::types::Entry {
            log_id: openraft::LogId::new(CommittedLeaderId::new(1, 0), 0),
            payload: EntryPayload::Membership(Membership::new(
                vec![(1..=3).collect::<BTreeSet<u64>>()],
                three.clone(),
            )),
        }];
        entries.extend((1..=5).map(|i| entry(i, create(&format!("k{i}"), None, 0, u64::MAX))));
        log.write_entries_durably(entries).unwrap();
        // A running node holds the lock: refused, nothing written.
        let locked = force_new_cluster(dir.path(), 2, "n2:7101", true).unwrap_err();
        assert!(locked.to_string().contains("lock"), "{locked}");
    }
    let plan = force_new_cluster(dir.path(), 2, "n2:7101", false).unwrap();
    assert_eq!(plan.last_log.map(|l| l.index), Some(5));
    assert_eq!(plan.voters, BTreeSet::from([1, 2, 3]));
    assert_eq!(plan.new_entry.map(|l| l.index), Some(6));
    // The dry run wrote nothing: the plan is the same.
    let plan = force_new_cluster(dir.path(), 2, "n2:7101", true).unwrap();
    assert_eq!(plan.new_entry.map(|l| l.index), Some(6));

    let (mut log, _sm) = sessionraft_raft::open(dir.path(), &StorageOptions::default()).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id.map(|l| l.index), Some(6));
    let all = log.read_entries(0..).unwrap();
    assert_eq!(all.len(), 7, "every entry kept, one appended");
    match &all[6].payload {
        EntryPayload::Membership(m) => {
            assert_eq!(m.voter_ids().collect::<BTreeSet<_>>(), BTreeSet::from([2]));
            assert_eq!(
                m.get_node(&2).map(|n| n.addr.as_str()),
                Some("n2:7101"),
                "the node keeps its configured address"
            );
        }
        other => panic!("appended {other:?}, not a membership"),
    }
    assert_eq!(all[6].log_id.leader_id, all[5].log_id.leader_id);
    drop(log);

    let empty = tempfile::TempDir::new().unwrap();
    let missing = force_new_cluster(empty.path(), 1, "n1:7101", true).unwrap_err();
    assert!(missing.to_string().contains("no node data"), "{missing}");
    drop(sessionraft_raft::open(empty.path(), &StorageOptions::default()).unwrap());
    let blank = force_new_cluster(empty.path(), 1, "n1:7101", true).unwrap_err();
    assert!(blank.to_string().contains("empty log"), "{blank}");
}

/// A data directory records its storage format and the release that wrote it; a release never
/// opens one a newer release wrote (a higher format, or a column family it does not know), and
/// says which release that was.
#[test]
fn a_newer_releases_data_directory_is_refused_naming_the_release() {
    use sessionraft_raft::codec;
    use sessionraft_raft::storage::format::{StorageMarker, MARKER_KEY, STORAGE_FORMAT};

    let dir = tempfile::TempDir::new().unwrap();
    drop(sessionraft_raft::open(dir.path(), &StorageOptions::default()).unwrap());
    let db_path = dir.path().join("db");
    let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), &db_path).unwrap();
    let marker_of = |db: &rocksdb::DB| -> StorageMarker {
        let cf = db.cf_handle("log_meta").unwrap();
        codec::decode("marker", &db.get_cf(cf, MARKER_KEY).unwrap().unwrap()).unwrap()
    };
    let future = StorageMarker {
        format: STORAGE_FORMAT + 1,
        written_by: "9.8.7".into(),
    };
    {
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &db_path, &cfs).unwrap();
        assert_eq!(marker_of(&db), StorageMarker::current(), "written on open");
        let cf = db.cf_handle("log_meta").unwrap();
        db.put_cf(cf, MARKER_KEY, codec::encode("marker", &future).unwrap())
            .unwrap();
    }
    let e = sessionraft_raft::open(dir.path(), &StorageOptions::default())
        .err()
        .expect("a newer format is refused")
        .to_string();
    for needle in [
        "newer release",
        "9.8.7",
        &format!("format {}", STORAGE_FORMAT + 1),
    ] {
        assert!(e.contains(needle), "{e}");
    }

    // A column family this release does not know: refused before RocksDB's own error, naming
    // the release from the marker.
    let dir = tempfile::TempDir::new().unwrap();
    drop(sessionraft_raft::open(dir.path(), &StorageOptions::default()).unwrap());
    let db_path = dir.path().join("db");
    let mut opts = rocksdb::Options::default();
    opts.create_missing_column_families(true);
    let mut with_new = rocksdb::DB::list_cf(&opts, &db_path).unwrap();
    with_new.push("added_by_a_newer_release".into());
    {
        let db = rocksdb::DB::open_cf(&opts, &db_path, &with_new).unwrap();
        let cf = db.cf_handle("log_meta").unwrap();
        let marker = StorageMarker {
            format: STORAGE_FORMAT,
            written_by: "9.8.8".into(),
        };
        db.put_cf(cf, MARKER_KEY, codec::encode("marker", &marker).unwrap())
            .unwrap();
    }
    let e = sessionraft_raft::open(dir.path(), &StorageOptions::default())
        .err()
        .expect("an unknown column family is refused")
        .to_string();
    assert!(e.contains("9.8.8") && e.contains("newer release"), "{e}");
}

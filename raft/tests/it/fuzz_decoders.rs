//! Property tests ("fuzzing", bounded for CI) of every decoder of bytes read from disk or
//! received from a peer: the versioned value codec (`codec::decode`), the backup reader and the
//! snapshot reader. For arbitrary bytes and for damaged valid encodings they never panic; they
//! either refuse the bytes or return a value that encodes back to a value that decodes the same;
//! valid values round-trip; checksummed files refuse any damage their checksum must catch.
//!
//! Policy for failures: proptest's failure persistence is off (no `proptest-regressions/`
//! files are written). A failing input found here is fixed in the decoder and kept below as a
//! named `#[test]` that reproduces it without proptest; commit no generated files.
//!
//! Each property runs at most 1,000 cases (well under a second in release);
//! `SESSIONRAFT_FUZZ_CASES=100000` runs more by hand.

use crate::strategies::{
    config, entry, mutate, mutation, session, stored_membership, text, vote, Mutation,
};
use openraft::{BasicNode, LogId, SnapshotMeta, StoredMembership, Vote};
use proptest::collection::vec;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sessionraft_raft::backup::{self, BackupHeader, BackupRecord, BackupTrailer, BackupWriter};
use sessionraft_raft::codec::{self, FORMAT_V1};
use sessionraft_raft::snapshot_file::{SnapshotReader, SnapshotRecord, SnapshotWriter};
use sessionraft_raft::types::Entry;
use sessionraft_raft::{Command, Session};

/// `codec::decode` must refuse `bytes` or give a value that round-trips.
fn decodes_or_refuses<T: Serialize + DeserializeOwned>(bytes: &[u8]) {
    if let Ok(v) = codec::decode::<T>("fuzzed value", bytes) {
        let again = codec::encode("fuzzed value", &v).expect("a decoded value encodes");
        let back: T = codec::decode("fuzzed value", &again).expect("its encoding decodes");
        assert_eq!(
            codec::encode("fuzzed value", &back).expect("encodes"),
            again,
            "round trip"
        );
    }
}

/// Every persisted type, decoded from `bytes`.
fn decode_as_every_persisted_type(bytes: &[u8]) {
    decodes_or_refuses::<Entry>(bytes);
    decodes_or_refuses::<Command>(bytes);
    decodes_or_refuses::<Session>(bytes);
    decodes_or_refuses::<(String, Session)>(bytes);
    decodes_or_refuses::<Vote<u64>>(bytes);
    decodes_or_refuses::<LogId<u64>>(bytes);
    decodes_or_refuses::<Option<LogId<u64>>>(bytes);
    decodes_or_refuses::<StoredMembership<u64, BasicNode>>(bytes);
    decodes_or_refuses::<SnapshotMeta<u64, BasicNode>>(bytes);
    decodes_or_refuses::<u64>(bytes);
    decodes_or_refuses::<BackupHeader>(bytes);
    decodes_or_refuses::<BackupTrailer>(bytes);
    decodes_or_refuses::<BackupRecord>(bytes);
}

fn round_trips<T: Serialize + DeserializeOwned>(v: &T) -> Vec<u8> {
    let bytes = codec::encode("value", v).expect("encode");
    let back: T = codec::decode("value", &bytes).expect("a valid encoding decodes");
    assert_eq!(codec::encode("value", &back).expect("encode"), bytes);
    bytes
}

/// Sessions under distinct ascending keys.
fn sessions() -> impl Strategy<Value = Vec<(String, Session)>> {
    proptest::collection::btree_map(text(), session(), 0..5)
        .prop_map(|m| m.into_iter().collect::<Vec<_>>())
}

fn backup_file(records: &[(String, Session)]) -> Vec<u8> {
    let header = BackupHeader {
        created_at_ms: 1_700_000_000_000,
        node_id: 2,
        applied_index: Some(41),
    };
    let mut w = BackupWriter::new(Vec::new(), &header).expect("backup header");
    for (k, s) in records {
        w.add(k, s).expect("backup record");
    }
    w.finish().expect("backup trailer").0
}

fn read_backup(bytes: &[u8]) -> Result<Vec<(String, Session)>, sessionraft_raft::Error> {
    let mut out = Vec::new();
    backup::read(bytes, |r| match r {
        BackupRecord::Session(k, s) => {
            out.push((k, s));
            Ok(())
        }
        BackupRecord::Kv(..) => Err(sessionraft_raft::Error::Corrupt {
            what: "test backup",
            reason: "a keyspace record in a sessions-only file".into(),
        }),
    })?;
    Ok(out)
}

fn snapshot_file(records: &[(String, Session)]) -> Vec<u8> {
    let mut w = SnapshotWriter::new(Vec::new()).expect("snapshot");
    for (k, s) in records {
        w.write_record(k, s).expect("snapshot record");
    }
    w.finish().expect("snapshot trailer").0
}

fn read_snapshot(bytes: &[u8]) -> Result<Vec<(String, Session)>, sessionraft_raft::Error> {
    let mut r = SnapshotReader::new(bytes)?;
    let mut out = Vec::new();
    while let Some(rec) = r.next_record()? {
        match rec {
            SnapshotRecord::Session(k, s) => out.push((k, s)),
            // only mutated inputs decode to keyspace or version records here (the writer
            // writes sessions)
            SnapshotRecord::Kv(..) | SnapshotRecord::ClusterVersion(_) => {}
        }
    }
    Ok(out)
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn fuzz_codec_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..200)) {
        decode_as_every_persisted_type(&bytes);
        // the same bytes behind the right version byte reach bincode
        decode_as_every_persisted_type(&[&[FORMAT_V1], bytes.as_slice()].concat());
    }

    #[test]
    fn fuzz_backup_and_snapshot_readers_never_panic_on_arbitrary_bytes(
        bytes in vec(any::<u8>(), 0..300),
    ) {
        // as they come, and behind the right magic (so the length prefixes are reached)
        prop_assert!(read_backup(&bytes).is_err());
        let behind_magic = [backup::MAGIC.as_slice(), &[backup::FORMAT], &bytes].concat();
        prop_assert!(read_backup(&behind_magic).is_err());
        prop_assert!(backup::verify(behind_magic.as_slice()).is_err());
        let _ = read_snapshot(&bytes);
        let _ = read_snapshot(&[b"SRSNAP\0\x01".as_slice(), &bytes].concat());
        let _ = read_snapshot(&[b"SRSNAP\0\x02".as_slice(), &bytes].concat());
    }
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn fuzz_codec_round_trips_valid_values(
        e in entry(),
        s in session(),
        m in stored_membership(),
        v in vote(),
        key in text(),
    ) {
        round_trips(&e);
        round_trips(&s);
        round_trips(&m);
        round_trips(&v);
        round_trips(&(key, s));
    }

    #[test]
    fn fuzz_codec_refuses_or_round_trips_damaged_encodings(
        e in entry(),
        damage in vec(mutation(), 1..4),
    ) {
        let bytes = round_trips(&e);
        let damaged = mutate(&bytes, &damage);
        decode_as_every_persisted_type(&damaged);
    }

    #[test]
    fn fuzz_backup_reader_refuses_any_damage(
        records in sessions(),
        damage in vec(mutation(), 1..3),
    ) {
        let file = backup_file(&records);
        prop_assert_eq!(read_backup(&file).expect("a valid backup reads"), records.clone());
        let damaged = mutate(&file, &damage);
        let read = read_backup(&damaged);
        if damaged == file {
            prop_assert!(read.is_ok());
        } else {
            // the file SHA-256 covers every byte
            prop_assert!(read.is_err(), "damage {:?} went unnoticed", damage);
            prop_assert!(backup::verify(damaged.as_slice()).is_err());
        }
    }

    #[test]
    fn fuzz_snapshot_reader_never_panics_on_damage(
        records in sessions(),
        damage in vec(mutation(), 1..3),
        flip in (any::<usize>(), 1..=255u8),
    ) {
        let file = snapshot_file(&records);
        prop_assert_eq!(read_snapshot(&file).expect("a valid snapshot reads"), records);
        let _ = read_snapshot(&mutate(&file, &damage));
        // CRC-32 detects every single-byte error
        let flipped = mutate(&file, &[Mutation::Flip(flip.0, flip.1)]);
        prop_assert!(read_snapshot(&flipped).is_err());
    }
}

//! The snapshot file format: every live and expired-but-unpurged session in key order, then every
//! key of the Redis-protocol keyspace in its stored order (FNV-1a hash of the key, then the key),
//! after the cluster version when the cluster recorded one.
//!
//! ```text
//! magic "SRSNAP\0\x03"
//! repeated: u32 BE length (1..=MAX_RECORD) | record (codec-encoded [`SnapshotRecord`])
//! u32 BE 0 (end marker) | u64 BE record count | u32 BE CRC-32 of every byte before it
//! ```
//! A writer uses the oldest format that holds the state ([`SnapshotFormat::for_state`]), so a
//! leader of a mixed-version cluster sends its older followers a snapshot they read:
//! - version 1 (magic `SRSNAP\0\x01`, 0.1.0): `(key, Session)` records, sessions only;
//! - version 2 (`\x02`): [`SnapshotRecord`]s, sessions and keys, no cluster version;
//! - version 3 (`\x03`): version 2 with a [`SnapshotRecord::ClusterVersion`] record first.
//!
//! The reader accepts all three. The same state always gives the same bytes (keys are iterated
//! in order, the session map is a `BTreeMap`, bincode is canonical), so two replicas can compare
//! snapshots byte for byte.

use std::io::{self, BufReader, BufWriter, Read, Write};

use crate::storage::codec;
use crate::storage::command::Session;
use crate::storage::error::{Error, Result};
use crate::storage::kv::KvEntry;
use crate::version::ClusterVersion;

const MAGIC_V1: &[u8; 8] = b"SRSNAP\0\x01";
const MAGIC_V2: &[u8; 8] = b"SRSNAP\0\x02";
const MAGIC_V3: &[u8; 8] = b"SRSNAP\0\x03";

/// The version of a snapshot file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SnapshotFormat {
    /// Sessions only (0.1.0 reads this and nothing else).
    V1,
    /// Sessions and keys.
    V2,
    /// Sessions and keys after the cluster version.
    V3,
}

impl SnapshotFormat {
    /// The oldest format that holds a state with a recorded cluster version (or none) and with
    /// or without keys: what every member of that cluster reads.
    pub fn for_state(cluster_version: Option<ClusterVersion>, has_keys: bool) -> Self {
        match (cluster_version, has_keys) {
            (Some(_), _) => Self::V3,
            (None, true) => Self::V2,
            (None, false) => Self::V1,
        }
    }

    fn magic(self) -> &'static [u8; 8] {
        match self {
            Self::V1 => MAGIC_V1,
            Self::V2 => MAGIC_V2,
            Self::V3 => MAGIC_V3,
        }
    }
}

/// One record of a snapshot.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub enum SnapshotRecord {
    /// A session under its key.
    Session(String, Session),
    /// A keyspace entry under its key.
    Kv(Vec<u8>, KvEntry),
    /// The cluster version the state was at (version 3, the first record).
    ClusterVersion(ClusterVersion),
}
/// Largest record accepted when reading: bounds allocations driven by a corrupt length.
const MAX_RECORD: u32 = 64 << 20;

/// Writes a snapshot file record by record.
pub struct SnapshotWriter<W: Write> {
    out: BufWriter<W>,
    crc: crc32fast::Hasher,
    count: u64,
    format: SnapshotFormat,
}

impl<W: Write> SnapshotWriter<W> {
    /// Start a snapshot of the newest format on `out`.
    ///
    /// # Errors
    /// On a write error.
    pub fn new(out: W) -> io::Result<Self> {
        Self::with_format(out, SnapshotFormat::V3)
    }

    /// Start a snapshot of `format` on `out` ([`SnapshotFormat::for_state`] picks it).
    ///
    /// # Errors
    /// On a write error.
    pub fn with_format(out: W, format: SnapshotFormat) -> io::Result<Self> {
        let mut w = Self {
            out: BufWriter::with_capacity(1 << 20, out),
            crc: crc32fast::Hasher::new(),
            count: 0,
            format,
        };
        w.put(format.magic())?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc.update(bytes);
        self.out.write_all(bytes)
    }

    /// Append one session.
    ///
    /// # Errors
    /// On a write or encoding error.
    pub fn write_record(&mut self, key: &str, session: &Session) -> Result<()> {
        if self.format == SnapshotFormat::V1 {
            let payload = codec::encode("snapshot record", &(key, session))?;
            return self.write_payload(&payload);
        }
        self.write(&SnapshotRecord::Session(key.to_string(), session.clone()))
    }

    /// Record the cluster version (version 3 only; call it before any other record).
    ///
    /// # Errors
    /// On a write or encoding error, or when the format has no place for it.
    pub fn write_cluster_version(&mut self, version: ClusterVersion) -> Result<()> {
        if self.format != SnapshotFormat::V3 || self.count != 0 {
            return Err(corrupt(
                "a cluster version goes first in a version 3 snapshot",
            ));
        }
        self.write(&SnapshotRecord::ClusterVersion(version))
    }

    /// Append one keyspace entry.
    ///
    /// # Errors
    /// On a write or encoding error.
    pub fn write_kv(&mut self, key: &[u8], entry: &KvEntry) -> Result<()> {
        if self.format == SnapshotFormat::V1 {
            return Err(corrupt("a version 1 snapshot holds no keys"));
        }
        self.write(&SnapshotRecord::Kv(key.to_vec(), entry.clone()))
    }

    fn write(&mut self, record: &SnapshotRecord) -> Result<()> {
        let payload = codec::encode("snapshot record", record)?;
        self.write_payload(&payload)
    }

    fn write_payload(&mut self, payload: &[u8]) -> Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD)
            .ok_or(Error::Corrupt {
                what: "snapshot record",
                reason: format!("{} bytes is larger than the format allows", payload.len()),
            })?;
        self.put(&len.to_be_bytes()).map_err(io_err)?;
        self.put(payload).map_err(io_err)?;
        self.count += 1;
        Ok(())
    }

    /// Write the trailer and flush; returns the underlying writer and the record count.
    ///
    /// # Errors
    /// On a write error.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.put(&0u32.to_be_bytes())?;
        let count = self.count;
        self.put(&count.to_be_bytes())?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_be_bytes())?;
        let inner = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok((inner, count))
    }
}

fn io_err(e: io::Error) -> Error {
    Error::SnapshotIo {
        path: "<snapshot stream>".into(),
        source: e,
    }
}

fn corrupt(reason: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "snapshot file",
        reason: reason.into(),
    }
}

/// Reads a snapshot file record by record; the trailer is checked when the last record is read.
pub struct SnapshotReader<R: Read> {
    input: BufReader<R>,
    crc: crc32fast::Hasher,
    count: u64,
    done: bool,
    format: SnapshotFormat,
}

impl<R: Read> SnapshotReader<R> {
    /// Open a snapshot stream and check its magic.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the stream is not a sessionraft snapshot.
    pub fn new(input: R) -> Result<Self> {
        let mut r = Self {
            input: BufReader::with_capacity(1 << 20, input),
            crc: crc32fast::Hasher::new(),
            count: 0,
            done: false,
            format: SnapshotFormat::V1,
        };
        let mut magic = [0u8; 8];
        r.take(&mut magic)?;
        r.format = match &magic {
            MAGIC_V1 => SnapshotFormat::V1,
            MAGIC_V2 => SnapshotFormat::V2,
            MAGIC_V3 => SnapshotFormat::V3,
            m if m[..7] == MAGIC_V3[..7] => {
                return Err(corrupt(format!(
                    "snapshot format {} is newer than this release ({}) reads (1 to 3)",
                    m[7],
                    crate::version::RELEASE
                )))
            }
            _ => return Err(corrupt("bad magic: not a sessionraft snapshot")),
        };
        Ok(r)
    }

    /// The version of the file being read.
    pub fn format(&self) -> SnapshotFormat {
        self.format
    }

    fn take(&mut self, buf: &mut [u8]) -> Result<()> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                corrupt("truncated")
            } else {
                io_err(e)
            }
        })?;
        self.crc.update(buf);
        Ok(())
    }

    /// The next record, `None` after the last one once the trailer checked out.
    ///
    /// # Errors
    /// [`Error::Corrupt`] on a truncated stream, a bad record, a wrong count or checksum.
    pub fn next_record(&mut self) -> Result<Option<SnapshotRecord>> {
        if self.done {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        self.take(&mut len)?;
        let len = u32::from_be_bytes(len);
        if len == 0 {
            let mut count = [0u8; 8];
            self.take(&mut count)?;
            let expected_crc = self.crc.clone().finalize();
            let mut crc = [0u8; 4];
            self.input
                .read_exact(&mut crc)
                .map_err(|_| corrupt("truncated trailer"))?;
            let count = u64::from_be_bytes(count);
            if count != self.count {
                return Err(corrupt(format!(
                    "trailer says {count} records, found {}",
                    self.count
                )));
            }
            if u32::from_be_bytes(crc) != expected_crc {
                return Err(corrupt("checksum mismatch"));
            }
            let mut extra = [0u8; 1];
            if self.input.read(&mut extra).map_err(io_err)? != 0 {
                return Err(corrupt("trailing bytes after the trailer"));
            }
            self.done = true;
            return Ok(None);
        }
        if len > MAX_RECORD {
            return Err(corrupt(format!("record of {len} bytes exceeds the limit")));
        }
        let mut payload = vec![0u8; len as usize];
        self.take(&mut payload)?;
        let record = match self.format {
            SnapshotFormat::V1 => {
                let (key, session): (String, Session) = codec::decode("snapshot record", &payload)?;
                SnapshotRecord::Session(key, session)
            }
            SnapshotFormat::V2 | SnapshotFormat::V3 => {
                let record: SnapshotRecord = codec::decode("snapshot record", &payload)?;
                let first = self.count == 0;
                match (&record, self.format, first) {
                    (SnapshotRecord::ClusterVersion(_), SnapshotFormat::V3, true) => {}
                    (SnapshotRecord::ClusterVersion(_), _, _) => {
                        return Err(corrupt("a cluster version record out of place"))
                    }
                    _ => {}
                }
                record
            }
        };
        self.count += 1;
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(v: u64) -> Session {
        Session {
            state: [("a".to_string(), v.to_string())].into_iter().collect(),
            version: v,
            created_at_ms: 1,
            expires_at_ms: 100,
            user: None,
        }
    }

    #[test]
    fn round_trip_and_corruption_is_named() {
        let mut w = SnapshotWriter::new(Vec::new()).unwrap();
        w.write_record("k1", &session(1)).unwrap();
        w.write_record("k2", &session(2)).unwrap();
        let entry = KvEntry {
            value: vec![0, 0xff, 7],
            expires_at_ms: Some(9),
        };
        w.write_kv(b"\x00bin", &entry).unwrap();
        let (bytes, n) = w.finish().unwrap();
        assert_eq!(n, 3);
        let mut r = SnapshotReader::new(&bytes[..]).unwrap();
        assert_eq!(
            r.next_record().unwrap().unwrap(),
            SnapshotRecord::Session("k1".into(), session(1))
        );
        assert_eq!(
            r.next_record().unwrap().unwrap(),
            SnapshotRecord::Session("k2".into(), session(2))
        );
        assert_eq!(
            r.next_record().unwrap().unwrap(),
            SnapshotRecord::Kv(b"\x00bin".to_vec(), entry)
        );
        assert!(r.next_record().unwrap().is_none());

        // flip one byte inside a record: the checksum (or the record decoder) catches it
        let mut bad = bytes.clone();
        bad[20] ^= 0x55;
        let mut r = SnapshotReader::new(&bad[..]).unwrap();
        let err = loop {
            match r.next_record() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("corruption not detected"),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("corrupt snapshot"), "{err}");

        let truncated = &bytes[..bytes.len() - 3];
        let mut r = SnapshotReader::new(truncated).unwrap();
        let err = std::iter::from_fn(|| Some(r.next_record()))
            .find_map(|x| x.err())
            .unwrap();
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(SnapshotReader::new(&b"garbage!garbage"[..]).is_err());
    }

    /// A version-1 file (sessions only, `(key, Session)` records) written by an older node.
    #[test]
    fn reads_version_one() {
        let mut bytes = MAGIC_V1.to_vec();
        let payload = codec::encode("v1", &("k1", session(3))).unwrap();
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&1u64.to_be_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        let mut r = SnapshotReader::new(&bytes[..]).unwrap();
        assert_eq!(
            r.next_record().unwrap().unwrap(),
            SnapshotRecord::Session("k1".into(), session(3))
        );
        assert!(r.next_record().unwrap().is_none());
    }

    /// A leader of a cluster that still has a 0.1.0 member writes what 0.1.0 reads: the bytes
    /// of a version-1 file, record for record; with a cluster version, version 3.
    #[test]
    fn writes_the_oldest_format_that_holds_the_state() {
        assert_eq!(SnapshotFormat::for_state(None, false), SnapshotFormat::V1);
        assert_eq!(SnapshotFormat::for_state(None, true), SnapshotFormat::V2);
        let v = ClusterVersion::new(0, 2);
        assert_eq!(
            SnapshotFormat::for_state(Some(v), false),
            SnapshotFormat::V3
        );

        let mut w = SnapshotWriter::with_format(Vec::new(), SnapshotFormat::V1).unwrap();
        w.write_record("k1", &session(3)).unwrap();
        assert!(w
            .write_kv(
                b"k",
                &KvEntry {
                    value: vec![1],
                    expires_at_ms: None
                }
            )
            .is_err());
        let (v1, _) = w.finish().unwrap();
        let mut by_hand = MAGIC_V1.to_vec();
        let payload = codec::encode("v1", &("k1", session(3))).unwrap();
        by_hand.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        by_hand.extend_from_slice(&payload);
        by_hand.extend_from_slice(&0u32.to_be_bytes());
        by_hand.extend_from_slice(&1u64.to_be_bytes());
        let crc = crc32fast::hash(&by_hand);
        by_hand.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(v1, by_hand);

        let mut w = SnapshotWriter::with_format(Vec::new(), SnapshotFormat::V3).unwrap();
        w.write_cluster_version(v).unwrap();
        w.write_record("k1", &session(3)).unwrap();
        assert!(w.write_cluster_version(v).is_err(), "only first");
        let (v3, _) = w.finish().unwrap();
        let mut r = SnapshotReader::new(&v3[..]).unwrap();
        assert_eq!(r.format(), SnapshotFormat::V3);
        assert_eq!(
            r.next_record().unwrap(),
            Some(SnapshotRecord::ClusterVersion(v))
        );
        assert_eq!(
            r.next_record().unwrap(),
            Some(SnapshotRecord::Session("k1".into(), session(3)))
        );
        assert_eq!(r.next_record().unwrap(), None);

        // a file of a newer format is refused by name, not misread
        let mut newer = v3.clone();
        newer[7] = 4;
        let err = SnapshotReader::new(&newer[..]).err().unwrap().to_string();
        assert!(err.contains("snapshot format 4 is newer"), "{err}");
    }
}

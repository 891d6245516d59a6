//! The backup file: every live session and every live key of the Redis-protocol keyspace of a
//! cluster at one applied log index, with checksums.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! magic "SRBACKUP" | format u8 (2)
//! header: u32 length | codec(BackupHeader)
//! records: (u32 length | codec(BackupRecord))*        sessions, then keyspace entries
//! end marker: u32 0xFFFF_FFFF
//! trailer: u32 length | codec(BackupTrailer)           counts and content checksum
//! file checksum: 32 bytes, SHA-256 of every byte before it
//! ```
//!
//! Records are [`BackupRecord`]s: first every session live at the header's `created_at_ms`, in
//! ascending key order (the `sessions` column family's order), then every keyspace entry live
//! at that instant (value and `expires_at_ms`), in the `kv` column family's stored order:
//! ascending (FNV-1a-64 hash of the key, key bytes). The reader refuses a file whose records
//! break that order (a duplicate, a session after a key) or whose keyspace entries exceed the
//! limits apply enforces, so everything a verified file holds can be restored.
//!
//! Format 1 (before the keyspace existed) held `codec((key, Session))` records only and a
//! trailer without the key count; [`read`] still accepts it (as sessions, no keys).
//!
//! The *content* checksum covers the records only (not the header's time or index), so two
//! backups of the same data compare equal however they were taken: a backup, a restore into a
//! new cluster and a second backup give the same content checksum. (It is computed over the
//! records as stored, so a format-1 file and a format-2 backup of the same sessions differ.) The
//! *file* checksum catches any damaged or truncated byte; a reader refuses the file before
//! anything is restored ([`verify`] is a full pass that applies nothing).

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::codec;
use crate::storage::command::Session;
use crate::storage::db::kv_hash;
use crate::storage::error::{Error, Result};
use crate::storage::kv::{KvEntry, MAX_KV_KEY_BYTES, MAX_KV_VALUE_BYTES};

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"SRBACKUP";
/// The backup format this code writes (it reads this one and [`FORMAT_V1`]).
pub const FORMAT: u8 = 2;
/// The first format: sessions only.
pub const FORMAT_V1: u8 = 1;
const END_OF_RECORDS: u32 = u32::MAX;
/// Largest record (key + session) accepted when reading: bounds allocations on a corrupt file.
const MAX_RECORD_BYTES: u32 = 64 << 20;

/// Where and when a backup was taken.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BackupHeader {
    /// When the backup was taken (ms since the Unix epoch): it holds what is live at this instant.
    pub created_at_ms: u64,
    /// The node that wrote it.
    pub node_id: u64,
    /// The applied log index the records reflect.
    pub applied_index: Option<u64>,
}

/// One record of a backup (format 2).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum BackupRecord {
    /// A session under its key.
    Session(String, Session),
    /// A keyspace entry (value and expiry) under its key.
    Kv(Vec<u8>, KvEntry),
}

/// [`BackupRecord`] by reference, for writing without copies: the same encoding (serde encodes
/// `&str` as `String` and `&[u8]` as `Vec<u8>`, variants by index).
#[derive(Serialize)]
enum BackupRecordRef<'a> {
    Session(&'a str, &'a Session),
    Kv(&'a [u8], &'a KvEntry),
}

/// What follows the records.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BackupTrailer {
    /// Number of session records (the name is format 1's, where every record was a session).
    pub count: u64,
    /// Number of keyspace records (0 in format 1).
    pub keys: u64,
    /// SHA-256 (hex) of the records, see the module docs.
    pub content_sha256: String,
}

/// Format 1's trailer.
#[derive(Deserialize)]
struct BackupTrailerV1 {
    count: u64,
    content_sha256: String,
}

/// A summary of a complete, verified backup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    pub header: BackupHeader,
    /// The file's format ([`FORMAT_V1`] or [`FORMAT`]).
    pub format: u8,
    /// Number of sessions.
    pub count: u64,
    /// Number of keyspace entries.
    pub keys: u64,
    pub content_sha256: String,
    /// SHA-256 (hex) of the whole file but its last 32 bytes.
    pub file_sha256: String,
}

fn corrupt(reason: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "backup file",
        reason: reason.into(),
    }
}

fn out_of_order(reason: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "backup writer",
        reason: reason.into(),
    }
}

fn io(e: std::io::Error) -> Error {
    Error::SnapshotIo {
        path: "backup".into(),
        source: e,
    }
}

/// The stored order of the keyspace: (FNV-1a-64 of the key, key bytes), as in the `kv` column
/// family (`db::kv_key`).
fn kv_order(key: &[u8]) -> (u64, &[u8]) {
    (kv_hash(key), key)
}

/// Why a keyspace entry cannot be restored (apply would reject it), if it cannot.
fn kv_too_large(key: &[u8], entry: &KvEntry) -> Option<String> {
    if key.len() > MAX_KV_KEY_BYTES {
        Some(format!(
            "a key of {} bytes (at most {MAX_KV_KEY_BYTES})",
            key.len()
        ))
    } else if entry.value.len() > MAX_KV_VALUE_BYTES {
        Some(format!(
            "a value of {} bytes (at most {MAX_KV_VALUE_BYTES})",
            entry.value.len()
        ))
    } else {
        None
    }
}

/// Writes a backup file record by record: sessions in ascending key order, then keyspace
/// entries in the stored order (see the module docs); anything else is refused.
pub struct BackupWriter<W: Write> {
    out: W,
    file: Sha256,
    content: Sha256,
    count: u64,
    keys: u64,
    last_session: Option<String>,
    last_kv: Option<Vec<u8>>,
}

impl<W: Write> BackupWriter<W> {
    /// Start a backup: writes the magic, the format and the header.
    ///
    /// # Errors
    /// On a write error.
    pub fn new(out: W, header: &BackupHeader) -> Result<Self> {
        let mut w = Self {
            out,
            file: Sha256::new(),
            content: Sha256::new(),
            count: 0,
            keys: 0,
            last_session: None,
            last_kv: None,
        };
        w.raw(MAGIC)?;
        w.raw(&[FORMAT])?;
        let h = codec::encode("backup header", header)?;
        w.framed(&h)?;
        Ok(w)
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.update(bytes);
        self.out.write_all(bytes).map_err(io)
    }

    fn framed(&mut self, bytes: &[u8]) -> Result<()> {
        let len = u32::try_from(bytes.len())
            .ok()
            // MAX_RECORD_BYTES < END_OF_RECORDS: a frame never reads as the end marker.
            .filter(|l| *l <= MAX_RECORD_BYTES)
            .ok_or_else(|| corrupt("record too large"))?;
        self.raw(&len.to_be_bytes())?;
        self.raw(bytes)
    }

    fn record(&mut self, rec: &BackupRecordRef<'_>) -> Result<()> {
        let rec = codec::encode("backup record", rec)?;
        self.content.update((rec.len() as u64).to_be_bytes());
        self.content.update(&rec);
        self.framed(&rec)
    }

    /// Append one session. Keys must come in ascending order (the sessions column family's
    /// order), before any keyspace entry, which makes the content checksum canonical.
    ///
    /// # Errors
    /// On a write error, or a key out of order.
    pub fn add(&mut self, key: &str, session: &Session) -> Result<()> {
        if self.keys > 0 {
            return Err(out_of_order("a session after keyspace entries"));
        }
        if self.last_session.as_deref().is_some_and(|k| k >= key) {
            return Err(out_of_order("session keys out of order or duplicated"));
        }
        self.record(&BackupRecordRef::Session(key, session))?;
        self.last_session = Some(key.to_owned());
        self.count += 1;
        Ok(())
    }

    /// Append one keyspace entry, after every session. Keys must come in the `kv` column
    /// family's order (ascending FNV-1a hash, then bytes).
    ///
    /// # Errors
    /// On a write error, a key out of order, or a key or value larger than apply accepts.
    pub fn add_kv(&mut self, key: &[u8], entry: &KvEntry) -> Result<()> {
        if let Some(why) = kv_too_large(key, entry) {
            return Err(out_of_order(why));
        }
        if self
            .last_kv
            .as_deref()
            .is_some_and(|k| kv_order(k) >= kv_order(key))
        {
            return Err(out_of_order("keyspace keys out of order or duplicated"));
        }
        self.record(&BackupRecordRef::Kv(key, entry))?;
        self.last_kv = Some(key.to_vec());
        self.keys += 1;
        Ok(())
    }

    /// Write the trailer and the file checksum; returns the writer and the trailer.
    ///
    /// # Errors
    /// On a write error.
    pub fn finish(mut self) -> Result<(W, BackupTrailer)> {
        self.raw(&END_OF_RECORDS.to_be_bytes())?;
        let trailer = BackupTrailer {
            count: self.count,
            keys: self.keys,
            content_sha256: hex::encode(self.content.clone().finalize()),
        };
        let t = codec::encode("backup trailer", &trailer)?;
        self.framed(&t)?;
        let sum = self.file.clone().finalize();
        self.out.write_all(&sum).map_err(io)?;
        self.out.flush().map_err(io)?;
        Ok((self.out, trailer))
    }
}

/// Reads `input` through to the end, calling `each` for every record (sessions first, then
/// keyspace entries), and checks the order of the records and both checksums. `each` runs
/// before the file checksum is known: call [`verify`] first when nothing may be applied from a
/// damaged file.
///
/// # Errors
/// [`Error::Corrupt`] naming what is wrong (magic, format, a truncated or oversized record,
/// records out of order, trailing bytes, a checksum mismatch), or the error of `each`.
pub fn read<R: Read>(
    input: R,
    mut each: impl FnMut(BackupRecord) -> Result<()>,
) -> Result<BackupSummary> {
    let mut r = HashingReader {
        inner: input,
        hash: Sha256::new(),
    };
    let mut magic = [0u8; 9];
    r.exact(&mut magic, "magic")?;
    if &magic[..8] != MAGIC {
        return Err(corrupt("not a sessionraft backup (bad magic)"));
    }
    let format = magic[8];
    if format != FORMAT && format != FORMAT_V1 {
        return Err(corrupt(format!(
            "unknown backup format {format} (this build reads {FORMAT_V1} and {FORMAT})"
        )));
    }
    let header: BackupHeader = match r.frame("header")? {
        Some(bytes) => codec::decode("backup header", &bytes)?,
        None => return Err(corrupt("missing header")),
    };
    let mut content = Sha256::new();
    let (mut count, mut keys) = (0u64, 0u64);
    let mut last_key: Option<String> = None;
    let mut last_kv: Option<Vec<u8>> = None;
    while let Some(rec) = r.frame("record")? {
        content.update((rec.len() as u64).to_be_bytes());
        content.update(&rec);
        let n = count + keys;
        let record = if format == FORMAT_V1 {
            let (key, session): (String, Session) = codec::decode("backup record", &rec)?;
            BackupRecord::Session(key, session)
        } else {
            codec::decode("backup record", &rec)?
        };
        match &record {
            BackupRecord::Session(key, _) => {
                if keys > 0 {
                    return Err(corrupt(format!(
                        "record {n}: a session after keyspace entries"
                    )));
                }
                if last_key.as_ref().is_some_and(|k| k >= key) {
                    return Err(corrupt(format!(
                        "record {n}: keys out of order or duplicated"
                    )));
                }
                last_key = Some(key.clone());
                count += 1;
            }
            BackupRecord::Kv(key, entry) => {
                if last_kv
                    .as_deref()
                    .is_some_and(|k| kv_order(k) >= kv_order(key))
                {
                    return Err(corrupt(format!(
                        "record {n}: keyspace keys out of order or duplicated"
                    )));
                }
                if let Some(why) = kv_too_large(key, entry) {
                    return Err(corrupt(format!("record {n}: {why}")));
                }
                last_kv = Some(key.clone());
                keys += 1;
            }
        }
        each(record)?;
    }
    let trailer: BackupTrailer = match r.frame("trailer")? {
        Some(bytes) if format == FORMAT_V1 => {
            let t: BackupTrailerV1 = codec::decode("backup trailer", &bytes)?;
            BackupTrailer {
                count: t.count,
                keys: 0,
                content_sha256: t.content_sha256,
            }
        }
        Some(bytes) => codec::decode("backup trailer", &bytes)?,
        None => return Err(corrupt("missing trailer")),
    };
    let file_sha = r.hash.clone().finalize();
    let mut stored = [0u8; 32];
    r.inner
        .read_exact(&mut stored)
        .map_err(|_| corrupt("truncated: the file checksum is missing"))?;
    let mut extra = [0u8; 1];
    if r.inner.read(&mut extra).map_err(io)? != 0 {
        return Err(corrupt("trailing bytes after the file checksum"));
    }
    if stored != file_sha.as_slice() {
        return Err(corrupt("file checksum mismatch: the file is damaged"));
    }
    let content_sha256 = hex::encode(content.finalize());
    if trailer.count != count || trailer.keys != keys || trailer.content_sha256 != content_sha256 {
        return Err(corrupt(format!(
            "trailer says {} sessions and {} keys with content {}, found {count} and {keys} \
             with {content_sha256}",
            trailer.count, trailer.keys, trailer.content_sha256
        )));
    }
    Ok(BackupSummary {
        header,
        format,
        count,
        keys,
        content_sha256,
        file_sha256: hex::encode(file_sha),
    })
}

/// Check a whole backup without applying anything.
///
/// # Errors
/// As [`read`].
pub fn verify<R: Read>(input: R) -> Result<BackupSummary> {
    read(input, |_| Ok(()))
}

struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                corrupt(format!("truncated in the {what}"))
            } else {
                io(e)
            }
        })?;
        self.hash.update(&*buf);
        Ok(())
    }

    /// One length-prefixed frame; `None` at the end-of-records marker.
    fn frame(&mut self, what: &str) -> Result<Option<Vec<u8>>> {
        let mut len = [0u8; 4];
        self.exact(&mut len, what)?;
        let len = u32::from_be_bytes(len);
        if len == END_OF_RECORDS {
            return Ok(None);
        }
        if len > MAX_RECORD_BYTES {
            return Err(corrupt(format!("{what} of {len} bytes exceeds the limit")));
        }
        let mut buf = vec![0u8; len as usize];
        self.exact(&mut buf, what)?;
        Ok(Some(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn session(n: u64) -> Session {
        Session {
            state: BTreeMap::from([("counter".to_string(), n.to_string())]),
            version: n,
            created_at_ms: 10,
            expires_at_ms: 10_000 + n,
            user: n.is_multiple_of(2).then(|| format!("user{n}")),
        }
    }

    fn header(at: u64) -> BackupHeader {
        BackupHeader {
            created_at_ms: at,
            node_id: 3,
            applied_index: Some(42),
        }
    }

    fn sessions() -> Vec<(String, Session)> {
        (0..5).map(|n| (format!("s{n:02}"), session(n))).collect()
    }

    /// Keyspace entries (binary keys among them, with and without expiry) in stored order.
    fn kv_entries() -> Vec<(Vec<u8>, KvEntry)> {
        let mut out: Vec<(Vec<u8>, KvEntry)> = (0..40u8)
            .map(|i| {
                let key = if i % 7 == 0 {
                    vec![0, 0xff, i]
                } else {
                    format!("key:{i}").into_bytes()
                };
                let entry = KvEntry {
                    value: vec![i; usize::from(i)],
                    expires_at_ms: (i % 3 == 0).then_some(50_000 + u64::from(i)),
                };
                (key, entry)
            })
            .collect();
        out.sort_by(|a, b| kv_order(&a.0).cmp(&kv_order(&b.0)));
        out
    }

    fn write(
        at: u64,
        sessions: &[(String, Session)],
        kv: &[(Vec<u8>, KvEntry)],
    ) -> (Vec<u8>, BackupTrailer) {
        let mut w = BackupWriter::new(Vec::new(), &header(at)).unwrap();
        for (k, s) in sessions {
            w.add(k, s).unwrap();
        }
        for (k, e) in kv {
            w.add_kv(k, e).unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<(Vec<BackupRecord>, BackupSummary)> {
        let mut records = Vec::new();
        let summary = read(bytes, |r| {
            records.push(r);
            Ok(())
        })?;
        Ok((records, summary))
    }

    /// A file of `format` with the given encoded records and trailer, its checksum correct:
    /// what a writer without this module's checks could produce.
    fn craft(format: u8, records: &[Vec<u8>], trailer: &[u8]) -> Vec<u8> {
        let mut f = MAGIC.to_vec();
        f.push(format);
        let frame = |f: &mut Vec<u8>, b: &[u8]| {
            f.extend_from_slice(&(b.len() as u32).to_be_bytes());
            f.extend_from_slice(b);
        };
        frame(&mut f, &codec::encode("h", &header(1)).unwrap());
        for r in records {
            frame(&mut f, r);
        }
        f.extend_from_slice(&END_OF_RECORDS.to_be_bytes());
        frame(&mut f, trailer);
        let sum = Sha256::digest(&f);
        f.extend_from_slice(&sum);
        f
    }

    fn content_of(records: &[Vec<u8>]) -> String {
        let mut h = Sha256::new();
        for r in records {
            h.update((r.len() as u64).to_be_bytes());
            h.update(r);
        }
        hex::encode(h.finalize())
    }

    /// A format-2 file of arbitrary records with a consistent trailer.
    fn craft_v2(records: &[BackupRecord]) -> Vec<u8> {
        let enc: Vec<Vec<u8>> = records
            .iter()
            .map(|r| codec::encode("r", r).unwrap())
            .collect();
        let count = records
            .iter()
            .filter(|r| matches!(r, BackupRecord::Session(..)))
            .count() as u64;
        let trailer = BackupTrailer {
            count,
            keys: records.len() as u64 - count,
            content_sha256: content_of(&enc),
        };
        craft(FORMAT, &enc, &codec::encode("t", &trailer).unwrap())
    }

    #[test]
    fn sessions_and_keyspace_entries_round_trip_in_order() {
        let (s, kv) = (sessions(), kv_entries());
        let (bytes, trailer) = write(100, &s, &kv);
        assert_eq!((trailer.count, trailer.keys), (5, 40));
        let (records, summary) = read_all(&bytes).unwrap();
        let expected: Vec<BackupRecord> = s
            .iter()
            .map(|(k, v)| BackupRecord::Session(k.clone(), v.clone()))
            .chain(
                kv.iter()
                    .map(|(k, e)| BackupRecord::Kv(k.clone(), e.clone())),
            )
            .collect();
        assert_eq!(records, expected);
        assert_eq!(summary.format, FORMAT);
        assert_eq!((summary.count, summary.keys), (5, 40));
        assert_eq!(summary.content_sha256, trailer.content_sha256);
        assert_eq!(summary.header, header(100));

        // The by-reference encoding the writer uses is BackupRecord's.
        for r in &expected {
            let by_ref = match r {
                BackupRecord::Session(k, s) => BackupRecordRef::Session(k, s),
                BackupRecord::Kv(k, e) => BackupRecordRef::Kv(k, e),
            };
            assert_eq!(
                codec::encode("r", &by_ref).unwrap(),
                codec::encode("r", r).unwrap()
            );
        }

        // Canonical: the same records at another time and node give the same content checksum
        // (and a different file checksum); a changed expiry changes it.
        let (again, t2) = write(999, &s, &kv);
        assert_eq!(t2, trailer);
        assert_ne!(again, bytes);
        let mut changed = kv.clone();
        changed[3].1.expires_at_ms = Some(1);
        assert_ne!(
            write(100, &s, &changed).1.content_sha256,
            trailer.content_sha256
        );

        // Sessions only, keys only and nothing at all are valid files too.
        for (s, kv, n) in [
            (&s[..], &[][..], (5, 0)),
            (&[][..], &kv[..], (0, 40)),
            (&[][..], &[][..], (0, 0)),
        ] {
            let (bytes, _) = write(1, s, kv);
            let summary = verify(bytes.as_slice()).unwrap();
            assert_eq!((summary.count, summary.keys), n);
        }
    }

    #[test]
    fn a_format_1_file_still_reads() {
        #[derive(Serialize)]
        struct TrailerV1 {
            count: u64,
            content_sha256: String,
        }
        let s = sessions();
        let enc: Vec<Vec<u8>> = s
            .iter()
            .map(|(k, v)| codec::encode("r", &(k, v)).unwrap())
            .collect();
        let trailer = TrailerV1 {
            count: 5,
            content_sha256: content_of(&enc),
        };
        let file = craft(FORMAT_V1, &enc, &codec::encode("t", &trailer).unwrap());
        let (records, summary) = read_all(&file).unwrap();
        let expected: Vec<BackupRecord> = s
            .iter()
            .map(|(k, v)| BackupRecord::Session(k.clone(), v.clone()))
            .collect();
        assert_eq!(records, expected);
        assert_eq!(summary.format, FORMAT_V1);
        assert_eq!((summary.count, summary.keys), (5, 0));
        assert_eq!(summary.content_sha256, trailer.content_sha256);
        // Damage is caught in format 1 as well.
        let mut bad = file.clone();
        bad[30] ^= 1;
        assert!(verify(bad.as_slice()).is_err());
        // A format-1 file with a wrong count in its trailer is refused.
        let wrong = TrailerV1 {
            count: 4,
            content_sha256: content_of(&enc),
        };
        let file = craft(FORMAT_V1, &enc, &codec::encode("t", &wrong).unwrap());
        let e = verify(file.as_slice()).unwrap_err().to_string();
        assert!(e.contains("trailer says 4 sessions"), "{e}");
        // An unknown format is refused.
        let mut v3 = craft_v2(&[]);
        v3[8] = 3;
        let e = verify(v3.as_slice()).unwrap_err().to_string();
        assert!(e.contains("unknown backup format 3"), "{e}");
    }

    #[test]
    fn every_damaged_byte_or_truncation_is_refused() {
        let kv: Vec<_> = kv_entries().into_iter().take(6).collect();
        let (bytes, _) = write(7, &sessions()[..3], &kv);
        verify(bytes.as_slice()).unwrap();
        for pos in 0..bytes.len() {
            for bit in [0x01, 0x80] {
                let mut bad = bytes.clone();
                bad[pos] ^= bit;
                assert!(verify(bad.as_slice()).is_err(), "byte {pos} ^ {bit:#x}");
            }
        }
        for len in 0..bytes.len() {
            assert!(verify(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(verify(long.as_slice()).is_err());
        // A trailer whose counts disagree with the records (checksums otherwise right).
        let enc: Vec<Vec<u8>> = kv
            .iter()
            .map(|(k, e)| codec::encode("r", &BackupRecord::Kv(k.clone(), e.clone())).unwrap())
            .collect();
        let trailer = BackupTrailer {
            count: 0,
            keys: 5,
            content_sha256: content_of(&enc),
        };
        let e = verify(craft(FORMAT, &enc, &codec::encode("t", &trailer).unwrap()).as_slice())
            .unwrap_err()
            .to_string();
        assert!(e.contains("0 sessions and 5 keys"), "{e}");
    }

    #[test]
    fn records_out_of_order_duplicated_or_too_large_are_refused() {
        let s = |k: &str| BackupRecord::Session(k.into(), session(1));
        let kv = |k: &[u8]| {
            BackupRecord::Kv(
                k.to_vec(),
                KvEntry {
                    value: b"v".to_vec(),
                    expires_at_ms: None,
                },
            )
        };
        let mut keys: Vec<Vec<u8>> = (0..3).map(|i| format!("k{i}").into_bytes()).collect();
        keys.sort_by(|a, b| kv_order(a).cmp(&kv_order(b)));
        let (k0, k1, k2) = (&keys[0][..], &keys[1][..], &keys[2][..]);
        // The order check is the stored (hash, key) order, not the byte order of the keys.
        assert!(kv_hash(k0) < kv_hash(k1) && kv_hash(k1) < kv_hash(k2));

        let fine = craft_v2(&[s("a"), s("b"), kv(k0), kv(k1), kv(k2)]);
        assert_eq!(verify(fine.as_slice()).unwrap().keys, 3);
        for (records, want) in [
            (vec![s("b"), s("a")], "keys out of order"),
            (vec![s("a"), s("a")], "keys out of order"),
            (vec![kv(k1), kv(k0)], "keyspace keys out of order"),
            (vec![kv(k0), kv(k0)], "keyspace keys out of order"),
            (vec![kv(k0), s("a")], "a session after keyspace entries"),
        ] {
            let e = verify(craft_v2(&records).as_slice())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{records:?}: {e}");
        }
        let big = BackupRecord::Kv(
            b"big".to_vec(),
            KvEntry {
                value: vec![0; MAX_KV_VALUE_BYTES + 1],
                expires_at_ms: None,
            },
        );
        let e = verify(craft_v2(&[big]).as_slice()).unwrap_err().to_string();
        assert!(e.contains("a value of"), "{e}");

        // The writer refuses the same mistakes instead of writing a file nobody can read.
        let entry = KvEntry {
            value: b"v".to_vec(),
            expires_at_ms: None,
        };
        let mut w = BackupWriter::new(Vec::new(), &header(1)).unwrap();
        w.add("b", &session(1)).unwrap();
        assert!(w.add("a", &session(1)).is_err());
        assert!(w.add("b", &session(1)).is_err());
        w.add_kv(k1, &entry).unwrap();
        assert!(w.add_kv(k0, &entry).is_err());
        assert!(w.add_kv(k1, &entry).is_err());
        assert!(w.add("c", &session(1)).is_err());
        let too_big = KvEntry {
            value: vec![0; MAX_KV_VALUE_BYTES + 1],
            expires_at_ms: None,
        };
        assert!(w.add_kv(k2, &too_big).is_err());
        w.add_kv(k2, &entry).unwrap();
        let (bytes, trailer) = w.finish().unwrap();
        assert_eq!((trailer.count, trailer.keys), (1, 2));
        verify(bytes.as_slice()).unwrap();
    }
}

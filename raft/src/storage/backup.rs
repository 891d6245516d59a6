//! The backup file: every live session of a cluster at one applied log index, with checksums.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! magic "SRBACKUP" | format u8 (1)
//! header: u32 length | codec(BackupHeader)
//! records: (u32 length | codec((key, Session)))*      keys ascending
//! end marker: u32 0xFFFF_FFFF
//! trailer: u32 length | codec(BackupTrailer)           count and content checksum
//! file checksum: 32 bytes, SHA-256 of every byte before it
//! ```
//!
//! The *content* checksum covers the records only (not the header's time or index), so two
//! backups of the same sessions compare equal however they were taken: a backup, a restore into
//! a new cluster and a second backup give the same content checksum. The *file* checksum
//! catches any damaged or truncated byte; a reader refuses the file before anything is restored
//! ([`verify`] is a full pass that applies nothing).

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::codec;
use crate::storage::command::Session;
use crate::storage::error::{Error, Result};

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"SRBACKUP";
/// The backup format this code writes and reads.
pub const FORMAT: u8 = 1;
const END_OF_RECORDS: u32 = u32::MAX;
/// Largest record (key + session) accepted when reading: bounds allocations on a corrupt file.
const MAX_RECORD_BYTES: u32 = 64 << 20;

/// Where and when a backup was taken.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BackupHeader {
    /// When the backup was taken (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// The node that wrote it.
    pub node_id: u64,
    /// The applied log index the sessions reflect.
    pub applied_index: Option<u64>,
}

/// What follows the records.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BackupTrailer {
    /// Number of records.
    pub count: u64,
    /// SHA-256 (hex) of the records, see the module docs.
    pub content_sha256: String,
}

/// A summary of a complete, verified backup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    pub header: BackupHeader,
    pub count: u64,
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

fn io(e: std::io::Error) -> Error {
    Error::SnapshotIo {
        path: "backup".into(),
        source: e,
    }
}

/// Writes a backup file record by record.
pub struct BackupWriter<W: Write> {
    out: W,
    file: Sha256,
    content: Sha256,
    count: u64,
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
            .filter(|l| *l < END_OF_RECORDS)
            .ok_or_else(|| corrupt("record too large"))?;
        self.raw(&len.to_be_bytes())?;
        self.raw(bytes)
    }

    /// Append one session. Keys must come in ascending order (the sessions column family's
    /// order), which makes the content checksum canonical.
    ///
    /// # Errors
    /// On a write error.
    pub fn add(&mut self, key: &str, session: &Session) -> Result<()> {
        let rec = codec::encode("backup record", &(key, session))?;
        self.content.update((rec.len() as u64).to_be_bytes());
        self.content.update(&rec);
        self.framed(&rec)?;
        self.count += 1;
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

/// Reads `input` through to the end, calling `each` for every record, and checks both
/// checksums. `each` runs before the file checksum is known: call [`verify`] first when
/// nothing may be applied from a damaged file.
///
/// # Errors
/// [`Error::Corrupt`] naming what is wrong (magic, format, a truncated or oversized record,
/// trailing bytes, a checksum mismatch), or the error of `each`.
pub fn read<R: Read>(
    input: R,
    mut each: impl FnMut(String, Session) -> Result<()>,
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
    if magic[8] != FORMAT {
        return Err(corrupt(format!(
            "unknown backup format {} (this build reads {FORMAT})",
            magic[8]
        )));
    }
    let header: BackupHeader = match r.frame("header")? {
        Some(bytes) => codec::decode("backup header", &bytes)?,
        None => return Err(corrupt("missing header")),
    };
    let mut content = Sha256::new();
    let mut count = 0u64;
    let mut last_key: Option<String> = None;
    while let Some(rec) = r.frame("record")? {
        content.update((rec.len() as u64).to_be_bytes());
        content.update(&rec);
        let (key, session): (String, Session) = codec::decode("backup record", &rec)?;
        if last_key.as_ref().is_some_and(|k| *k >= key) {
            return Err(corrupt(format!(
                "record {count}: keys out of order or duplicated"
            )));
        }
        last_key = Some(key.clone());
        each(key, session)?;
        count += 1;
    }
    let trailer: BackupTrailer = match r.frame("trailer")? {
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
    if trailer.count != count || trailer.content_sha256 != content_sha256 {
        return Err(corrupt(format!(
            "trailer says {} records with content {}, found {count} with {content_sha256}",
            trailer.count, trailer.content_sha256
        )));
    }
    Ok(BackupSummary {
        header,
        count,
        content_sha256,
        file_sha256: hex::encode(file_sha),
    })
}

/// Check a whole backup without applying anything.
///
/// # Errors
/// As [`read`].
pub fn verify<R: Read>(input: R) -> Result<BackupSummary> {
    read(input, |_, _| Ok(()))
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

//! Backup and restore over the admin API.
//!
//! - `GET /admin/backup`: after a read barrier (every write acknowledged before the request is
//!   included), every live session and every live key of the Redis-protocol keyspace from one
//!   consistent RocksDB view, as a backup file (`sessionraft_raft::backup`, format 2), streamed
//!   from a spool file. Headers `x-backup-sessions`, `x-backup-keys`, `x-backup-content-sha256`.
//! - `POST /admin/restore[?force=true]`: the body (a backup file, format 1 or 2) is spooled to
//!   disk and verified whole before anything is applied; then its sessions are replicated as
//!   `Import` commands and its keys as `KvCommand::Import` commands, each of bounded size.
//!   Sessions and keys already expired when a chunk is proposed are skipped. Refused (409) when
//!   the cluster already holds sessions or keys, unless `force`. Both imports are idempotent: an
//!   interrupted restore is finished by running it again with `force`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use sessionraft_raft::backup::{self, BackupRecord};
use sessionraft_raft::storage::kv::{KvCommand, KvEntry, KvResponse};
use sessionraft_raft::{Command, Response, Session};
use tokio::io::AsyncReadExt;

use crate::admin_access::{error, node_failed, restore_stopped, AdminState, Authorized};
use sessionraft_raft::clock::now_ms;

/// Largest backup accepted by a restore.
const MAX_RESTORE_BYTES: u64 = 16 << 30;
/// Bound of one `Import` log entry: records (sessions or keys) and bytes (an entry exceeds the
/// bytes only when one record alone does).
const IMPORT_RECORDS: usize = 1024;
const IMPORT_BYTES: usize = 1 << 20;
/// `Import` entries proposed concurrently: the leader appends and replicates several per round
/// (one fsync, one AppendEntries) instead of one entry per round trip.
const IMPORTS_IN_FLIGHT: usize = 4;

/// The restore's reader of its spool file failed after entries were proposed: 504 `unknown`.
fn stopped_reading(
    sessions: &Counts,
    keys: &Counts,
    summary: &backup::BackupSummary,
    e: impl std::fmt::Display,
) -> HttpResponse {
    restore_stopped(format!(
        "restore stopped reading its spool file after {} of {} sessions and {} of {} keys: {e}; \
         run it again with force to finish (restoring is idempotent)",
        sessions.restored, summary.count, keys.restored, summary.keys
    ))
}

/// A spool file in `dir`, unlinked at once: it lives as long as its handle.
fn spool_file(dir: &Path) -> std::io::Result<File> {
    std::fs::create_dir_all(dir)?;
    let path: PathBuf = dir.join(format!(
        "spool-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}

pub(crate) async fn take_backup(_: Authorized, state: web::Data<AdminState>) -> HttpResponse {
    use actix_web::http::StatusCode;
    if let Err(e) = state.cluster.read_barrier().await {
        return error(StatusCode::SERVICE_UNAVAILABLE, e);
    }
    let (sm, dir, id) = (
        state.cluster.sm.clone(),
        state.spool_dir.clone(),
        state.cluster.id,
    );
    let written = web::block(move || -> anyhow::Result<_> {
        let file = spool_file(&dir)?;
        let (out, header, trailer) = sm.backup(BufWriter::new(file), id, now_ms())?;
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        file.seek(SeekFrom::Start(0))?;
        Ok((file, header, trailer))
    })
    .await;
    let (file, header, trailer) = match written {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return node_failed("backup", format!("{e:#}")),
        Err(e) => return node_failed("backup", e),
    };
    tracing::info!(
        sessions = trailer.count,
        keys = trailer.keys,
        applied_index = header.applied_index,
        "backup taken"
    );
    let body = futures_util::stream::unfold(Some(tokio::fs::File::from_std(file)), |f| async {
        let mut f = f?;
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(web::Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("x-backup-sessions", trailer.count.to_string()))
        .insert_header(("x-backup-keys", trailer.keys.to_string()))
        .insert_header(("x-backup-content-sha256", trailer.content_sha256))
        .streaming(body)
}

#[derive(Deserialize)]
pub(crate) struct RestoreQuery {
    #[serde(default)]
    force: bool,
}

pub(crate) async fn restore(
    _: Authorized,
    state: web::Data<AdminState>,
    query: web::Query<RestoreQuery>,
    mut body: web::Payload,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let started = std::time::Instant::now();
    // 1. Spool the body to disk.
    let dir = state.spool_dir.clone();
    let file = match web::block(move || spool_file(&dir)).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return node_failed("restore: spool", e),
        Err(e) => return node_failed("restore: spool", e),
    };
    let mut spool = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
        };
        received += chunk.len() as u64;
        if received > MAX_RESTORE_BYTES {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a backup larger than {MAX_RESTORE_BYTES} bytes is refused"),
            );
        }
        if let Err(e) = tokio::io::AsyncWriteExt::write_all(&mut spool, &chunk).await {
            return node_failed("restore: spool", e);
        }
    }
    if let Err(e) = tokio::io::AsyncWriteExt::flush(&mut spool).await {
        return node_failed("restore: spool", e);
    }
    let file = spool.into_inner().into_std().await;
    let spooled = started.elapsed();

    // 2. Verify the whole file before anything is applied.
    let verified = web::block(move || -> sessionraft_raft::Result<_> {
        let mut file = file;
        file.seek(SeekFrom::Start(0)).map_err(spool_err)?;
        let summary = backup::verify(BufReader::new(&mut file))?;
        file.seek(SeekFrom::Start(0)).map_err(spool_err)?;
        Ok((file, summary))
    })
    .await;
    let (file, summary) = match verified {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not restored, nothing changed: {e}"),
            )
        }
        Err(e) => return node_failed("restore: verify", e),
    };
    let verified = started.elapsed();

    // 3. A restore seeds an empty cluster (linearizable check), unless forced.
    if !query.force {
        if let Err(e) = state.cluster.read_barrier().await {
            return error(StatusCode::SERVICE_UNAVAILABLE, e);
        }
        match state.cluster.sm.is_empty() {
            Ok(true) => {}
            Ok(false) => {
                return error(
                    StatusCode::CONFLICT,
                    "the cluster already holds sessions or keys: a restore seeds a new \
                     cluster (use force to restore over them; sessions and keys in the backup \
                     replace those under the same ids and names)",
                )
            }
            Err(e) => return node_failed("restore: reading this node's replica", e),
        }
    }

    // 4. Replicate the records in bounded Import entries, read from the spool on a blocking
    //    thread, up to IMPORTS_IN_FLIGHT entries being committed at a time. The entries hold
    //    distinct keys (sessions and the keyspace are apart), so their order does not matter.
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(IMPORTS_IN_FLIGHT);
    let reader = tokio::task::spawn_blocking(move || {
        let mut chunker = Chunker::new(tx);
        let r = backup::read(BufReader::new(file), |record| chunker.push(record));
        if r.is_ok() {
            chunker.flush()?;
        }
        r
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let cluster = state.cluster.clone();
    let committed = chunks
        .map(|chunk| {
            let cluster = cluster.clone();
            async move {
                let now = now_ms();
                let (kind, n, cmd) = match chunk {
                    Chunk::Sessions(sessions) => (
                        Kind::Sessions,
                        sessions.len() as u64,
                        Command::Import {
                            sessions,
                            now_ms: now,
                        },
                    ),
                    Chunk::Keys(mut keys) => {
                        // Keys expired by now are not proposed: apply (which never reads the
                        // clock) would write them, only for the purger to remove them.
                        let n = keys.len() as u64;
                        keys.retain(|(_, e)| e.is_live(now));
                        if keys.is_empty() {
                            return (Kind::Keys, n, None);
                        }
                        (Kind::Keys, n, Command::Kv(KvCommand::Import(keys)))
                    }
                };
                (kind, n, Some(cluster.propose(cmd).await))
            }
        })
        .buffered(IMPORTS_IN_FLIGHT);
    let mut committed = std::pin::pin!(committed);
    let mut sessions = Counts::default();
    let mut keys = Counts::default();
    while let Some((kind, n, proposed)) = committed.next().await {
        let Some(proposed) = proposed else {
            keys.skipped_expired += n;
            continue;
        };
        let written = match proposed.map(|p| p.response) {
            Ok(Response::Count(w)) if kind == Kind::Sessions => Ok(w),
            Ok(Response::Kv(KvResponse::Int(w))) if kind == Kind::Keys => {
                Ok(u64::try_from(w).unwrap_or(0))
            }
            Ok(other) => Err((
                StatusCode::BAD_REQUEST,
                format!("the cluster refused a chunk: {other:?}"),
            )),
            // chunks before it, and beside it, may have been applied: the restore's outcome
            // is partial whatever the cause
            Err(e) => Err((
                StatusCode::GATEWAY_TIMEOUT,
                format!("{e}; run it again with force to finish (restoring is idempotent)"),
            )),
        };
        match written {
            Ok(w) => {
                let c = if kind == Kind::Sessions {
                    &mut sessions
                } else {
                    &mut keys
                };
                c.restored += w;
                c.skipped_expired += n - w.min(n);
            }
            Err((status, why)) => {
                let msg = format!(
                    "restore stopped after {} of {} sessions and {} of {} keys: {why}",
                    sessions.restored, summary.count, keys.restored, summary.keys
                );
                return if status == StatusCode::GATEWAY_TIMEOUT {
                    restore_stopped(msg)
                } else {
                    error(status, msg)
                };
            }
        }
    }
    match reader.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return stopped_reading(&sessions, &keys, &summary, e),
        Err(e) => return stopped_reading(&sessions, &keys, &summary, e),
    }
    tracing::info!(
        restored = sessions.restored,
        skipped_expired = sessions.skipped_expired,
        restored_keys = keys.restored,
        skipped_expired_keys = keys.skipped_expired,
        format = summary.format,
        spool_s = spooled.as_secs_f64(),
        verify_s = (verified - spooled).as_secs_f64(),
        import_s = (started.elapsed() - verified).as_secs_f64(),
        "backup restored"
    );
    HttpResponse::Ok().json(serde_json::json!({
        "ok": true,
        "restored": sessions.restored,
        "skipped_expired": sessions.skipped_expired,
        "restored_keys": keys.restored,
        "skipped_expired_keys": keys.skipped_expired,
        "backup_sessions": summary.count,
        "backup_keys": summary.keys,
        "backup_format": summary.format,
        "content_sha256": summary.content_sha256,
        "backup_applied_index": summary.header.applied_index,
    }))
}

fn spool_err(e: std::io::Error) -> sessionraft_raft::Error {
    sessionraft_raft::Error::SnapshotIo {
        path: "restore spool".into(),
        source: e,
    }
}

fn stopped() -> sessionraft_raft::Error {
    sessionraft_raft::Error::Corrupt {
        what: "restore",
        reason: "the restore stopped before the file was read".into(),
    }
}

/// One `Import` entry's worth of records.
enum Chunk {
    Sessions(Vec<(String, Session)>),
    Keys(Vec<(Vec<u8>, KvEntry)>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sessions,
    Keys,
}

/// Restored and skipped records of one kind.
#[derive(Default)]
struct Counts {
    restored: u64,
    skipped_expired: u64,
}

/// Groups the records of a backup, in file order, into chunks of at most `IMPORT_RECORDS`
/// records and (unless one record alone is larger) `IMPORT_BYTES` bytes, sent to the proposer.
struct Chunker {
    tx: tokio::sync::mpsc::Sender<Chunk>,
    sessions: Vec<(String, Session)>,
    keys: Vec<(Vec<u8>, KvEntry)>,
    bytes: usize,
}

impl Chunker {
    fn new(tx: tokio::sync::mpsc::Sender<Chunk>) -> Self {
        Self {
            tx,
            sessions: Vec::new(),
            keys: Vec::new(),
            bytes: 0,
        }
    }

    fn push(&mut self, record: BackupRecord) -> sessionraft_raft::Result<()> {
        let size = match &record {
            BackupRecord::Session(key, session) => {
                key.len()
                    + session
                        .state
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
            }
            BackupRecord::Kv(key, entry) => key.len() + entry.value.len(),
        };
        let pending = self.sessions.len() + self.keys.len();
        if pending > 0 && (pending >= IMPORT_RECORDS || self.bytes + size > IMPORT_BYTES) {
            self.flush()?;
        }
        match record {
            // Sessions come first in a backup: a session never waits behind pending keys.
            BackupRecord::Session(key, session) => {
                if !self.keys.is_empty() {
                    self.flush()?;
                }
                self.sessions.push((key, session));
            }
            BackupRecord::Kv(key, entry) => {
                if !self.sessions.is_empty() {
                    self.flush()?;
                }
                self.keys.push((key, entry));
            }
        }
        self.bytes += size;
        Ok(())
    }

    fn flush(&mut self) -> sessionraft_raft::Result<()> {
        self.bytes = 0;
        for chunk in [
            (!self.sessions.is_empty())
                .then(|| Chunk::Sessions(std::mem::take(&mut self.sessions))),
            (!self.keys.is_empty()).then(|| Chunk::Keys(std::mem::take(&mut self.keys))),
        ]
        .into_iter()
        .flatten()
        {
            self.tx.blocking_send(chunk).map_err(|_| stopped())?;
        }
        Ok(())
    }
}

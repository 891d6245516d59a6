//! Backup and restore over the admin API.
//!
//! - `GET /admin/backup`: after a read barrier (every write acknowledged before the request is
//!   included), every live session from one consistent RocksDB view, as a backup file
//!   (`sessionraft_raft::backup`), streamed from a spool file.
//! - `POST /admin/restore[?force=true]`: the body (a backup file) is spooled to disk and verified
//!   whole before anything is applied; then its sessions are replicated as `Import` commands of
//!   bounded size. Refused (409) when the cluster already holds sessions, unless `force`.
//!   `Import` is idempotent: an interrupted restore is finished by running it again with `force`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use sessionraft_raft::{backup, Command, Response, Session};
use tokio::io::AsyncReadExt;

use crate::admin_access::{error, AdminState, Authorized};
use sessionraft_raft::clock::now_ms;

/// Largest backup accepted by a restore.
const MAX_RESTORE_BYTES: u64 = 16 << 30;
/// Bound of one `Import` log entry: sessions and bytes.
const IMPORT_SESSIONS: usize = 1024;
const IMPORT_BYTES: usize = 1 << 20;
/// `Import` entries proposed concurrently: the leader appends and replicates several per round
/// (one fsync, one AppendEntries) instead of one entry per round trip.
const IMPORTS_IN_FLIGHT: usize = 4;

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
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("backup: {e:#}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("backup: {e}")),
    };
    tracing::info!(
        sessions = trailer.count,
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
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("spool: {e}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("spool: {e}")),
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
            return error(StatusCode::INTERNAL_SERVER_ERROR, format!("spool: {e}"));
        }
    }
    if let Err(e) = tokio::io::AsyncWriteExt::flush(&mut spool).await {
        return error(StatusCode::INTERNAL_SERVER_ERROR, format!("spool: {e}"));
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
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("verify: {e}")),
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
                    "the cluster already holds sessions: a restore seeds a new cluster \
                     (use force to restore over them; sessions in the backup replace those \
                     under the same ids)",
                )
            }
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }

    // 4. Replicate the sessions in bounded Import entries, read from the spool on a blocking
    //    thread, up to IMPORTS_IN_FLIGHT entries being committed at a time. The entries hold
    //    distinct keys, so their order does not matter.
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<(String, Session)>>(IMPORTS_IN_FLIGHT);
    let reader = tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::new();
        let mut bytes = 0usize;
        let r = backup::read(BufReader::new(file), |key, session| {
            bytes += key.len()
                + session
                    .state
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>();
            chunk.push((key, session));
            if chunk.len() >= IMPORT_SESSIONS || bytes >= IMPORT_BYTES {
                bytes = 0;
                tx.blocking_send(std::mem::take(&mut chunk))
                    .map_err(|_| stopped())?;
            }
            Ok(())
        });
        if r.is_ok() && !chunk.is_empty() {
            tx.blocking_send(chunk).map_err(|_| stopped())?;
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
                let n = chunk.len() as u64;
                let cmd = Command::Import {
                    sessions: chunk,
                    now_ms: now_ms(),
                };
                (n, cluster.propose(cmd).await)
            }
        })
        .buffered(IMPORTS_IN_FLIGHT);
    let mut committed = std::pin::pin!(committed);
    let mut restored = 0u64;
    let mut skipped_expired = 0u64;
    while let Some((n, proposed)) = committed.next().await {
        match proposed {
            Ok(p) => match p.response {
                Response::Count(written) => {
                    restored += written;
                    skipped_expired += n - written.min(n);
                }
                other => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "restore stopped after {restored} sessions: the cluster refused a chunk: {other:?}"
                        ),
                    )
                }
            },
            Err(e) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "restore stopped after {restored} of {} sessions: {e}; run it again with \
                         force to finish (restoring is idempotent)",
                        summary.count
                    ),
                )
            }
        }
    }
    match reader.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading: {e}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading: {e}")),
    }
    tracing::info!(
        restored,
        skipped_expired,
        spool_s = spooled.as_secs_f64(),
        verify_s = (verified - spooled).as_secs_f64(),
        import_s = (started.elapsed() - verified).as_secs_f64(),
        "backup restored"
    );
    HttpResponse::Ok().json(serde_json::json!({
        "ok": true,
        "restored": restored,
        "skipped_expired": skipped_expired,
        "backup_sessions": summary.count,
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

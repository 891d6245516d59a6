//! `sessionraft bench-backup`: a synthetic backup file of N live sessions, for catch-up and
//! memory measurements (`sessionraft restore --from FILE` loads it into a running cluster).
//!
//! Keys look like real session ids (43 characters of base64url, as `RaftSessionStore` makes
//! them) but are generated in ascending byte order, as a backup requires, without holding them
//! in memory: the first `PREFIX` characters encode the session's number in the base64url
//! alphabet sorted by byte value, the rest are random. Every session lives 24 hours from now and
//! holds `{"counter": "<n>", "pad": "\"xxx…\""}` (values are JSON, as actix-session stores them),
//! so a demo app reading it sees a counter.

use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sessionraft_raft::backup::{BackupHeader, BackupTrailer, BackupWriter};
use sessionraft_raft::{Session, SessionState};

/// The base64url alphabet in ascending byte order.
const SORTED_B64URL: &[u8; 64] =
    b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
/// Length of a session key (32 bytes in base64url without padding).
const KEY_LEN: usize = 43;
/// Ordered prefix characters: 64^6 ≈ 6.9 · 10^10 distinct sessions.
const PREFIX: usize = 6;
/// How long the generated sessions live.
pub const LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What `bench-backup` was asked for.
#[derive(Clone, Debug)]
pub struct BackupGenOptions {
    pub sessions: u64,
    pub state_bytes: usize,
    pub seed: u64,
}

/// The key of session number `n` (ascending in `n`).
fn key(n: u64, rng: &mut StdRng, buf: &mut [u8; KEY_LEN]) {
    let mut x = n;
    for i in (0..PREFIX).rev() {
        buf[i] = SORTED_B64URL[(x % 64) as usize];
        x /= 64;
    }
    for b in buf.iter_mut().skip(PREFIX) {
        *b = SORTED_B64URL[rng.gen_range(0..64)];
    }
    // The last character of 32 bytes in base64 carries 4 bits: its low 2 bits are zero in the
    // standard alphabet order ("A", "E", "I", …), as in a real key.
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    buf[KEY_LEN - 1] = STD[rng.gen_range(0..16) * 4];
}

/// Write the backup to `out` (through `out.partial`, synced, then renamed).
///
/// # Errors
/// Bad options or a write error.
pub fn run(opts: &BackupGenOptions, out: &Path) -> anyhow::Result<BackupTrailer> {
    anyhow::ensure!(
        opts.sessions < 64u64.pow(PREFIX as u32),
        "--sessions: at most {}",
        64u64.pow(PREFIX as u32) - 1
    );
    let now_ms = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the clock is before 1970")?
            .as_millis(),
    )?;
    let started = Instant::now();
    let partial = out.with_extension("partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let header = BackupHeader {
        created_at_ms: now_ms,
        node_id: 0,
        applied_index: None,
    };
    let mut w = BackupWriter::new(BufWriter::with_capacity(1 << 20, file), &header)?;
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let pad = format!("\"{}\"", "x".repeat(opts.state_bytes));
    let mut buf = [0u8; KEY_LEN];
    let mut session = Session {
        state: SessionState::new(),
        version: 1,
        created_at_ms: now_ms,
        expires_at_ms: now_ms + LIFETIME.as_millis() as u64,
        user: None,
    };
    session.state.insert("pad".into(), pad);
    for n in 0..opts.sessions {
        key(n, &mut rng, &mut buf);
        // Only ASCII from the alphabets above.
        let k = std::str::from_utf8(&buf).context("key")?;
        session.state.insert("counter".into(), (n + 1).to_string());
        w.add(k, &session)?;
    }
    let (writer, trailer) = w.finish()?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, out).with_context(|| format!("renaming to {}", out.display()))?;
    tracing::debug!(elapsed = ?started.elapsed(), "backup generated");
    Ok(trailer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ascend_and_look_like_session_ids() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut prev = String::new();
        for n in (0..5000u64).chain([64u64.pow(6) - 2, 64u64.pow(6) - 1]) {
            let mut buf = [0u8; KEY_LEN];
            key(n, &mut rng, &mut buf);
            let k = String::from_utf8(buf.to_vec()).unwrap();
            assert!(k > prev, "{k} after {prev}");
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&k)
                .unwrap();
            assert_eq!(raw.len(), 32);
            prev = k;
        }
    }

    #[test]
    fn writes_a_valid_backup() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b.srbackup");
        let opts = BackupGenOptions {
            sessions: 2000,
            state_bytes: 50,
            seed: 7,
        };
        let trailer = run(&opts, &out).unwrap();
        assert_eq!(trailer.count, 2000);
        let mut n = 0u64;
        let f = std::fs::File::open(&out).unwrap();
        let summary = sessionraft_raft::backup::read(std::io::BufReader::new(f), |r| {
            let sessionraft_raft::backup::BackupRecord::Session(_, s) = r else {
                panic!("only sessions: {r:?}");
            };
            n += 1;
            assert_eq!(s.state["counter"], n.to_string());
            assert_eq!(s.state["pad"].len(), 52);
            assert!(s.expires_at_ms > s.created_at_ms);
            Ok(())
        })
        .unwrap();
        assert_eq!((summary.count, summary.keys), (2000, 0));
        assert_eq!(summary.content_sha256, trailer.content_sha256);
        assert!(!dir.path().join("b.partial").exists());
    }
}

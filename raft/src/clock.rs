//! Wall-clock time for the commands a node proposes. Only proposers read the clock; the state
//! machine never does (the time travels inside the command).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A short, stable, non-reversible tag of a session key for logs and metrics (never log the key).
pub fn key_hash(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(key.as_bytes())[..6])
}

//! The data directory's format marker: which on-disk layout a data directory holds and which
//! release last wrote it, so that a release never opens a directory a newer one wrote.
//!
//! Every release writes `log_meta["storage_format"]` (a [`StorageMarker`]) when it opens a data
//! directory. A directory whose marker names a format above [`STORAGE_FORMAT`], or that holds a
//! column family this release does not know (a newer release added it: RocksDB would refuse to
//! open it without naming why), is refused with a message naming the release that wrote it —
//! never opened, never misread. Directories written before the marker existed are format 1.

use std::path::Path;

use rocksdb::{Options, DB};
use serde::{Deserialize, Serialize};

use crate::storage::codec;
use crate::storage::db::{self, CF_LOG_META};
use crate::storage::error::{rocks, Error, Result};

/// The on-disk layout this release reads and writes (column families, key layouts, value
/// encodings). Raise it when a release changes any of them; keep reading the previous one.
pub const STORAGE_FORMAT: u32 = 1;

/// The key of the marker in the `log_meta` column family.
pub const MARKER_KEY: &[u8] = b"storage_format";

/// What a data directory says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageMarker {
    /// Its on-disk layout.
    pub format: u32,
    /// The version of the release that last opened it for writing.
    pub written_by: String,
}

impl StorageMarker {
    /// The marker this release writes.
    pub fn current() -> Self {
        Self {
            format: STORAGE_FORMAT,
            written_by: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

fn newer(path: &Path, found: &str) -> Error {
    Error::NewerFormat {
        path: path.display().to_string(),
        found: found.to_owned(),
        supported: STORAGE_FORMAT,
        version: env!("CARGO_PKG_VERSION"),
    }
}

/// Before opening: a directory with a column family outside `known` was written by a newer
/// release; read its marker (read-only) to say which.
///
/// # Errors
/// [`Error::NewerFormat`] for such a directory.
pub(crate) fn refuse_unknown_column_families(path: &Path, known: &[&str]) -> Result<()> {
    if !path.join("CURRENT").exists() {
        return Ok(());
    }
    let Ok(existing) = DB::list_cf(&Options::default(), path) else {
        // Not a RocksDB we can list: opening it reports what is wrong.
        return Ok(());
    };
    let unknown: Vec<&String> = existing
        .iter()
        .filter(|cf| !known.contains(&cf.as_str()) && cf.as_str() != "default")
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let marker = DB::open_cf_for_read_only(&Options::default(), path, &existing, false)
        .ok()
        .and_then(|ro| {
            let cf = ro.cf_handle(CF_LOG_META)?;
            let bytes = ro.get_cf(cf, MARKER_KEY).ok()??;
            codec::decode::<StorageMarker>("storage format marker", &bytes).ok()
        });
    let found = match marker {
        Some(m) => format!(
            "format {} written by sessionraft {}",
            m.format, m.written_by
        ),
        None => {
            format!("column families {unknown:?} unknown to this release (written by a newer one)")
        }
    };
    Err(newer(path, &found))
}

/// After opening: refuse a newer format; otherwise record this release as the writer.
///
/// # Errors
/// [`Error::NewerFormat`], a corrupt marker, or a failed write.
pub(crate) fn check_and_mark(db: &DB, path: &Path) -> Result<StorageMarker> {
    let cf = db::cf(db, CF_LOG_META)?;
    let stored = db
        .get_cf(cf, MARKER_KEY)
        .map_err(rocks("read storage format marker"))?
        .map(|b| codec::decode::<StorageMarker>("storage format marker", &b))
        .transpose()?;
    if let Some(m) = &stored {
        if m.format > STORAGE_FORMAT {
            return Err(newer(
                path,
                &format!(
                    "format {} written by sessionraft {}",
                    m.format, m.written_by
                ),
            ));
        }
    }
    let current = StorageMarker::current();
    if stored.as_ref() != Some(&current) {
        db.put_cf_opt(
            cf,
            MARKER_KEY,
            codec::encode("storage format marker", &current)?,
            &db::synced(),
        )
        .map_err(rocks("write storage format marker"))?;
    }
    Ok(stored.unwrap_or(current))
}

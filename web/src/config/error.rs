//! [`ConfigError`]: why a configuration was refused, naming the field (or the file); and where in
//! the text a TOML error points (`node[1].http_addr`, line and column).

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use sessionraft_raft::consensus::settings::SettingsError;

/// The name used for the configuration in error messages when no file path is known.
pub(super) const DEFAULT_FILE_LABEL: &str = "cluster.toml";

/// Why the configuration could not be loaded. Every message is a single sentence that names
/// the offending field (or file), and never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The file that was to be read.
        path: PathBuf,
        /// Why reading failed.
        error: io::Error,
    },

    /// The current directory, against which relative paths of the embedded default
    /// configuration resolve, could not be determined.
    #[error("cannot determine the current directory to resolve relative paths in the built-in cluster.toml: {error}")]
    CurrentDir {
        /// Why the current directory is unavailable.
        error: io::Error,
    },

    /// The text is not valid TOML, or does not have the expected shape (unknown key, wrong
    /// type, missing key). `detail` holds toml's message and the line and column.
    #[error("invalid {file}: {detail}")]
    Syntax {
        /// The file (or `cluster.toml` when parsing text).
        file: String,
        /// The path of the key the error points at, when it could be determined.
        field: Option<String>,
        /// The field path, toml's message, line and column.
        detail: String,
    },

    /// A value is well-formed but breaks a validation rule.
    #[error("invalid {file}: {field}: {reason}")]
    Invalid {
        /// The file (or `cluster.toml` when parsing text).
        file: String,
        /// The path of the offending field, e.g. `node[1].http_addr`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// `--node` names a node id that the configuration does not define.
    #[error("--node {id}: no such node in the cluster configuration (known node ids: {})", join_ids(.known))]
    UnknownNode {
        /// The requested node id.
        id: u64,
        /// The node ids the configuration defines, ascending.
        known: Vec<u64>,
    },
}

impl ConfigError {
    /// The path of the offending field (e.g. `node[1].http_addr`, `cluster.secret`, `--node`),
    /// when the error concerns a single field.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Syntax { field, .. } => field.as_deref(),
            Self::Invalid { field, .. } => Some(field),
            Self::UnknownNode { .. } => Some("--node"),
            Self::Read { .. } | Self::CurrentDir { .. } => None,
        }
    }

    /// A validation error on `field` in the default-named file.
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            file: DEFAULT_FILE_LABEL.to_owned(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Attributes a parse or validation error to the file `label`.
    pub(super) fn in_file(self, label: String) -> Self {
        match self {
            Self::Syntax { field, detail, .. } => Self::Syntax {
                file: label,
                field,
                detail,
            },
            Self::Invalid { field, reason, .. } => Self::Invalid {
                file: label,
                field,
                reason,
            },
            other => other,
        }
    }
}

/// A refused `[raft]` setting (checked by the raft crate), word for word.
impl From<SettingsError> for ConfigError {
    fn from(e: SettingsError) -> Self {
        Self::invalid(e.field, e.reason)
    }
}

/// Formats node ids as `1, 2, 3` (or `none`).
fn join_ids(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Turns a toml deserialization error into a [`ConfigError::Syntax`] carrying toml's message,
/// the line and column, and (best effort) the path of the key it points at.
pub(super) fn syntax_error(text: &str, error: &toml::de::Error) -> ConfigError {
    // toml's message may span several lines; keep the error on one line.
    let message = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let (field, detail) = match error.span() {
        Some(span) => {
            let offset = floor_char_boundary(text, span.start);
            let (line, column) = line_column(text, offset);
            let field = field_at(text, offset);
            let detail = match &field {
                Some(field) => format!("{field}: {message} (line {line}, column {column})"),
                None => format!("{message} (line {line}, column {column})"),
            };
            (field, detail)
        }
        None => (None, message),
    };
    ConfigError::Syntax {
        file: DEFAULT_FILE_LABEL.to_owned(),
        field,
        detail,
    }
}

/// The largest char boundary of `text` not after `offset`.
fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// 1-based line and column (in characters) of the byte `offset`, a char boundary of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Best-effort dotted path (e.g. `node[1].http_addr`, `session.bogus`) of the key on the line
/// containing byte `offset`, found by scanning the table headers above it.
fn field_at(text: &str, offset: usize) -> Option<String> {
    let mut table: Option<String> = None;
    let mut array_counts: HashMap<String, usize> = HashMap::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let line_end = line_start + line.len();
        let content = line.trim();
        let is_header = content.starts_with('[');
        if let Some(rest) = content.strip_prefix("[[") {
            let name = rest.split_once("]]").map_or(rest, |(name, _)| name).trim();
            let count = array_counts.entry(name.to_owned()).or_insert(0);
            table = Some(format!("{name}[{count}]"));
            *count += 1;
        } else if let Some(rest) = content.strip_prefix('[') {
            table = Some(
                rest.split_once(']')
                    .map_or(rest, |(name, _)| name)
                    .trim()
                    .to_owned(),
            );
        }
        if offset < line_end {
            if is_header || content.starts_with('#') {
                return table;
            }
            return match content.split_once('=') {
                Some((key, _)) => {
                    let key = key.trim().trim_matches(['"', '\'']);
                    Some(match table {
                        Some(table) => format!("{table}.{key}"),
                        None => key.to_owned(),
                    })
                }
                None => table,
            };
        }
        line_start = line_end;
    }
    table
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::config::test_support::*;

    #[test]
    fn errors_name_the_file_when_loaded_from_a_path() {
        let error = parse(&edit("id = 3", "id = 1"), base())
            .unwrap_err()
            .in_file("conf/prod.toml".to_owned());
        assert!(error
            .to_string()
            .starts_with("invalid conf/prod.toml: node[2].id:"));
        assert_eq!(error.field(), Some("node[2].id"));
    }
}

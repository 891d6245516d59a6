//! Cluster configuration: `cluster.toml`, parsed once into a typed, validated [`Config`].
//!
//! Loading happens in two stages:
//!
//! 1. The TOML text is deserialized into [`RawConfig`], which mirrors the file one-to-one and
//!    rejects unknown keys (`#[serde(deny_unknown_fields)]`), so a typo is an error rather than a
//!    silently ignored setting.
//! 2. [`Config::from_raw`] validates it, resolves the secrets (inline, from a file or from an
//!    environment variable) and relative paths, and produces a [`Config`] whose invariants the
//!    rest of the node can rely on without re-checking.
//!
//! Every [`ConfigError`] names the offending field with a path such as `node[1].http_addr`,
//! `cluster.secret`, `raft.election_timeout_min_ms` or `session.idle_ttl_secs`. Node indices
//! are the 0-based positions of the `[[node]]` tables in the file.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

mod address;
mod environment;

pub use address::Address;
pub use environment::{hostname, node_id_from, CONFIG_FILE_ENV, NODE_ID_ENV};

/// The default configuration (the repository's `cluster.toml`), embedded in the binary: a
/// 3-node cluster on `127.0.0.1:7101..=7103` with development-only secrets.
pub const DEFAULT_CLUSTER_TOML: &str = include_str!("../../../cluster.toml");

/// The name used for the configuration in error messages when no file path is known.
const DEFAULT_FILE_LABEL: &str = "cluster.toml";

/// Minimum length of the cluster secret, in bytes.
const MIN_SECRET_BYTES: usize = 32;
/// Minimum length of the admin token, in bytes.
const MIN_ADMIN_TOKEN_BYTES: usize = 16;
/// Smallest accepted `session.max_state_bytes`.
const MIN_STATE_BYTES: usize = 64;
/// Largest accepted `session.max_state_bytes` (1 MiB).
const MAX_STATE_BYTES: usize = 1_048_576;
/// Smallest accepted `raft.install_snapshot_timeout_ms`.
const MIN_INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 1000;
/// How many log entries openraft purges per batch at most (fewer when snapshots are more
/// frequent, so that a purge follows every snapshot).
const PURGE_BATCH_SIZE: u64 = 256;

/// Entries per AppendEntries RPC at most. openraft's default (300) of restore `Import` entries
/// (up to 1 MiB each) made a catch-up append exceed the 64 MiB RPC body limit, which the
/// follower refused forever. Log entries are at most ~2 MiB (the write batcher stops a batch at
/// 1 MiB, a restore `Import` at 1 MiB), so 4 keep an append near 8 MiB at worst: bounded
/// decode buffers on the follower (its RSS) and an append that finishes within openraft's
/// per-append timeout (the heartbeat interval). With 8, a node catching up a restored cluster
/// saw appends time out (bench/PROFILE.md, catch-up: 4 was as fast or faster, fewer timeouts).
const MAX_PAYLOAD_ENTRIES: u64 = 4;

/// Loads the cluster configuration, with the keys the process environment sets
/// (`SESSIONRAFT_<SECTION>__<KEY>`, see [`load_with_env`]).
///
/// - `None`: parses the embedded [`DEFAULT_CLUSTER_TOML`]; relative paths in it resolve
///   against the current directory.
/// - `Some(path)`: reads and parses that file; relative `data_dir`s and `secret_file` resolve
///   against the file's directory, and errors name the file.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    load_with_env(path, std::env::vars())
}

/// [`load`] with the environment given: every `SESSIONRAFT_<SECTION>__<KEY>` (and
/// `SESSIONRAFT_NODE__<ID>__<KEY>`) pair of `env` sets that key over the file's value; other
/// pairs are ignored. A variable naming no key is an error naming the variable.
///
/// # Errors
/// As [`load`], and a malformed or unknown configuration variable.
pub fn load_with_env(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let overrides = environment::overrides(env)?;
    match path {
        None => {
            let cwd = std::env::current_dir().map_err(|error| ConfigError::CurrentDir { error })?;
            parse_with(DEFAULT_CLUSTER_TOML, &cwd, &overrides)
        }
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                path: path.to_path_buf(),
                error,
            })?;
            let base_dir = path.parent().unwrap_or_else(|| Path::new(""));
            parse_with(&text, base_dir, &overrides)
                .map_err(|e| e.in_file(path.display().to_string()))
        }
    }
}

/// Parses and validates configuration text; relative paths resolve against `base_dir`. The
/// environment is not read.
pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
    parse_with(text, base_dir, &[])
}

/// [`parse`] with keys set from the environment. Without any, the text is deserialized
/// directly, so errors carry its line and column.
fn parse_with(
    text: &str,
    base_dir: &Path,
    overrides: &[environment::Override],
) -> Result<Config, ConfigError> {
    if overrides.is_empty() {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
        return Config::from_raw(raw, base_dir);
    }
    let file: toml::Table = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
    let mut table = file.clone();
    environment::apply(&mut table, overrides)?;
    let raw = match RawConfig::deserialize(table) {
        Ok(raw) => raw,
        Err(e) => return Err(blame_environment(text, file, overrides, e.message())),
    };
    Config::from_raw(raw, base_dir)
}

/// The error of a configuration the environment's keys made unreadable: the variable whose key
/// first breaks it, found by adding them one at a time (toml's message alone does not always
/// name the key: "invalid type: string \"fast\", expected u64"); the file's own error when the
/// file is unreadable without them.
fn blame_environment(
    text: &str,
    file: toml::Table,
    overrides: &[environment::Override],
    message: &str,
) -> ConfigError {
    if let Err(e) = toml::from_str::<RawConfig>(text) {
        return syntax_error(text, &e);
    }
    let mut table = file;
    for o in overrides {
        if environment::apply(&mut table, std::slice::from_ref(o)).is_err() {
            break;
        }
        if let Err(e) = RawConfig::deserialize(table.clone()) {
            return ConfigError::invalid(
                o.var.clone(),
                format!("sets {}: {}", o.target.field(), e.message()),
            );
        }
    }
    ConfigError::Syntax {
        file: DEFAULT_FILE_LABEL.to_owned(),
        field: None,
        detail: format!("{message} (with keys set from the environment)"),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

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
    fn in_file(self, label: String) -> Self {
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
fn syntax_error(text: &str, error: &toml::de::Error) -> ConfigError {
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

// ---------------------------------------------------------------------------------------------
// Validated configuration
// ---------------------------------------------------------------------------------------------

/// The validated cluster configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Cluster identity and secrets (`[cluster]`).
    pub cluster: ClusterConfig,
    /// Session cookie and lifetime settings (`[session]`).
    pub session: SessionConfig,
    /// Raft timings and snapshot policy (`[raft]`).
    pub raft: RaftTimings,
    /// The cluster members (`[[node]]`), sorted by id; ids, addresses and data dirs are unique.
    pub nodes: Vec<NodeConfig>,
    /// The load balancer's address (`[load_balancer] addr`), if one fronts the cluster: where
    /// `scripts/cluster.sh` runs HAProxy and the URL the demo app shows.
    pub lb_addr: Option<Address>,
    /// The load balancer's Redis-protocol address (`[load_balancer] resp_addr`): the TCP
    /// frontend `scripts/cluster.sh` adds for the nodes' `resp_addr`s.
    pub lb_resp_addr: Option<Address>,
    /// The Redis-protocol door's settings (`[resp]`).
    pub resp: RespConfig,
    /// Thread counts of each node (`[runtime]`); `None` = automatic.
    pub runtime: RuntimeConfig,
    /// HTTPS for every listener and every client (`[tls]`); `None` = plain HTTP.
    pub tls: Option<TlsConfig>,
}

/// `[resp]`: the Redis-protocol (RESP2/RESP3) door of every node that has a `resp_addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespConfig {
    /// The password of `AUTH` / `HELLO … AUTH` (`password` or `password_env`); `None`: the door
    /// is open to whoever reaches the address, as a local Redis without `requirepass` is.
    pub password: Option<Secret>,
    /// Connections per node at most; one more is answered `-ERR max number of clients reached`
    /// and closed.
    pub max_connections: usize,
    /// A connection idle this long is closed (`Duration::ZERO`: never).
    pub idle_timeout: Duration,
    /// The longest bulk string (key or value) accepted, checked before it is read.
    pub max_bulk_bytes: usize,
    /// The most elements of one command (array length), checked before they are read.
    pub max_array_len: usize,
    /// Client certificates on the door (`tls_auth_clients`, Redis's `tls-auth-clients`): only
    /// with `[tls]`, verified against `tls.ca`.
    pub tls_auth_clients: TlsAuthClients,
}

/// `[resp] tls_auth_clients`: whether a client of the door (with `[tls]`) must present a
/// certificate signed by the cluster CA (`tls.ca`), as Redis's `tls-auth-clients`. The door's
/// password (`AUTH`) applies either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsAuthClients {
    /// `"no"` (default): no certificate is asked for.
    #[default]
    No,
    /// `"optional"`: a certificate is asked for; one that is presented must be signed by the
    /// CA, a client without one is let in.
    Optional,
    /// `"yes"`: a client without a certificate signed by the CA is refused in the handshake.
    Yes,
}

impl TlsAuthClients {
    /// The configuration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::Optional => "optional",
            Self::Yes => "yes",
        }
    }
}

impl RespConfig {
    /// Largest accepted `max_bulk_bytes` (a value travels in one Raft log entry).
    pub const MAX_BULK_BYTES: usize = 1 << 20;
    /// Largest accepted `max_array_len`.
    pub const MAX_ARRAY_LEN: usize = 1 << 20;
}

impl Default for RespConfig {
    fn default() -> Self {
        Self {
            password: None,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(300),
            max_bulk_bytes: 512 * 1024,
            max_array_len: 65_536,
            tls_auth_clients: TlsAuthClients::No,
        }
    }
}

/// `[runtime]`: how many threads a node runs. Unset values are chosen per node at start:
/// the machine's cores divided by the number of configured nodes on the same host (at least 1),
/// so that three nodes on one laptop do not run three times the threads the cores can serve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// actix-web worker threads (HTTP).
    pub http_workers: Option<usize>,
    /// Threads of the Raft runtime (consensus, replication, peer I/O).
    pub raft_threads: Option<usize>,
}

impl RuntimeConfig {
    /// Largest accepted thread count.
    pub const MAX_THREADS: usize = 256;
}

/// `[tls]`: every node serves HTTPS only (client and Raft listeners), peers and the CLI connect
/// with `https://` and trust the CA `ca` alone. Only the paths are checked when the file is
/// parsed; the files are read by [`TlsConfig::read_ca`] and [`TlsConfig::read_node_identity`]
/// (when a node starts, or a CLI command connects), so that `sessionraft nodes` works before the
/// certificates exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `cert_dir`: holds `node<ID>.crt` (PEM chain, leaf first) and `node<ID>.key` (PEM private
    /// key) of each node; resolved against the base directory.
    pub cert_dir: PathBuf,
    /// `ca`: the PEM certificate(s) of the CA that signed every node's certificate; resolved
    /// against the base directory.
    pub ca: PathBuf,
}

/// A node's TLS certificate chain (leaf first) and private key, read from `tls.cert_dir`.
pub struct NodeIdentity {
    /// The certificate chain, leaf first (at least one certificate).
    pub chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The private key of the leaf certificate.
    pub key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl TlsConfig {
    /// `cert_dir/node<id>.crt`.
    pub fn cert_file(&self, id: u64) -> PathBuf {
        self.cert_dir.join(format!("node{id}.crt"))
    }

    /// `cert_dir/node<id>.key`.
    pub fn key_file(&self, id: u64) -> PathBuf {
        self.cert_dir.join(format!("node{id}.key"))
    }

    /// The PEM text of `ca`, checked to hold at least one certificate, all of them parsable.
    ///
    /// # Errors
    /// The file cannot be read or holds no (or a malformed) certificate; the error names
    /// `tls.ca` and the file.
    pub fn read_ca(&self) -> Result<Vec<u8>, ConfigError> {
        let field = "tls.ca";
        let pem = read_tls_file(field, &self.ca)?;
        let certs = parse_certs(field, &self.ca, &pem)?;
        if certs.is_empty() {
            return Err(ConfigError::invalid(
                field,
                format!("{} holds no PEM certificate", self.ca.display()),
            ));
        }
        Ok(pem)
    }

    /// Node `id`'s certificate chain and key: `cert_dir/node<id>.crt` and `node<id>.key`.
    ///
    /// # Errors
    /// `cert_dir` is not a directory, or a file cannot be read or holds no certificate / private
    /// key; the error names `tls.cert_dir` and the file.
    pub fn read_node_identity(&self, id: u64) -> Result<NodeIdentity, ConfigError> {
        use rustls::pki_types::pem::PemObject;
        let field = "tls.cert_dir";
        if !self.cert_dir.is_dir() {
            return Err(ConfigError::invalid(
                field,
                format!(
                    "{} is not a directory (make the certificates with scripts/dev-certs.sh)",
                    self.cert_dir.display()
                ),
            ));
        }
        let (cert_file, key_file) = (self.cert_file(id), self.key_file(id));
        let chain = parse_certs(field, &cert_file, &read_tls_file(field, &cert_file)?)?;
        if chain.is_empty() {
            return Err(ConfigError::invalid(
                field,
                format!("{} holds no PEM certificate", cert_file.display()),
            ));
        }
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(&read_tls_file(field, &key_file)?)
                .map_err(|e| {
                    ConfigError::invalid(
                        field,
                        format!(
                            "{} holds no usable PEM private key: {e}",
                            key_file.display()
                        ),
                    )
                })?;
        Ok(NodeIdentity { chain, key })
    }
}

/// Reads a `[tls]` file; the error names `field` and the path.
fn read_tls_file(field: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| {
        ConfigError::invalid(
            field,
            format!(
                "cannot read {}: {e} (make the certificates with scripts/dev-certs.sh)",
                path.display()
            ),
        )
    })
}

/// Every PEM `CERTIFICATE` in `pem` (other blocks are skipped); a malformed one is an error.
fn parse_certs(
    field: &str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ConfigError> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ConfigError::invalid(field, format!("{} is not valid PEM: {e}", path.display()))
        })
}

/// `[cluster]`: cluster identity and secrets.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The cluster name (non-empty); also the openraft cluster name.
    pub name: String,
    /// The shared cluster secret, at least 32 bytes.
    pub secret: Secret,
    /// The admin API bearer token, at least 16 bytes.
    pub admin_token: Secret,
}

/// Secret bytes (the cluster secret, the admin token).
///
/// `Debug` prints `Secret(***)`, and there is no `Display`: the bytes are only reachable
/// through [`Secret::expose`], which makes every use visible.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The secret bytes. Never log or display them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// Constant-time in the contents (only the lengths may leak), so that a comparison of secrets
/// never becomes a timing oracle, wherever it is used.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `[session]`: session cookie and lifetime settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The cookie name: non-empty, RFC 6265 token characters only.
    pub cookie_name: String,
    /// A session unused for this long expires (> 0).
    pub idle_ttl: Duration,
    /// A session expires this long after creation, however active (>= `idle_ttl`).
    pub absolute_ttl: Duration,
    /// The largest serialized session state accepted, in bytes (64 ..= 1 MiB).
    pub max_state_bytes: usize,
    /// Whether the cookie carries the `Secure` attribute (and then the `__Host-` name prefix).
    pub cookie_secure: bool,
    /// The cookie key ring, newest first: the first encrypts, every one decrypts (a cookie under
    /// an older one is re-issued under the first). Empty: one key derived from the cluster
    /// secret.
    pub cookie_secrets: Vec<Secret>,
    /// At most this many live sessions per signed-in user (the oldest are evicted); 0 = no cap.
    pub max_sessions_per_user: u32,
}

/// `[raft]`: Raft timings and snapshot policy.
///
/// Invariants: `heartbeat > 0`, `election_timeout_min > 2 * heartbeat`,
/// `election_timeout_max > election_timeout_min`, `request_deadline > election_timeout_max`,
/// `0 < rpc_timeout < request_deadline`, `install_snapshot_timeout >= 1s`,
/// `snapshot_logs_since_last >= 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTimings {
    /// Interval between leader heartbeats.
    pub heartbeat: Duration,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min: Duration,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max: Duration,
    /// Build a snapshot once this many entries were applied since the last one.
    pub snapshot_logs_since_last: u64,
    /// How many log entries already in a snapshot are kept rather than purged.
    pub max_in_snapshot_log_to_keep: u64,
    /// Timeout for sending and installing a snapshot.
    pub install_snapshot_timeout: Duration,
    /// How long a client request may wait for the cluster, including an election.
    pub request_deadline: Duration,
    /// Timeout of a single RPC between nodes.
    pub rpc_timeout: Duration,
    /// Whether the leader answers read indexes under its lease (no heartbeat round while a
    /// quorum accepted its AppendEntries within 90% of `election_timeout_min`).
    pub lease_reads: bool,
    /// How session loads are served: `session` (token reads from the node's own replica while
    /// it is fresh) or `linearizable` (a read index for every load).
    pub read_consistency: ReadConsistency,
    /// The staleness bound of `session` reads: a change acknowledged at t is visible on every
    /// node serving reads by t + this.
    pub max_staleness: Duration,
    /// The most writes a node's batcher queues (at least 1); one more is refused at once
    /// (HTTP 503 `not-applied`, RESP `-TRYAGAIN`).
    pub max_queued_writes: usize,
}

/// `raft.read_consistency`: see `sessionraft_raft::consensus::freshness::ReadConsistency`.
pub use sessionraft_raft::consensus::freshness::ReadConsistency;

/// Largest accepted `raft.max_staleness_ms`.
pub const MAX_STALENESS_MS: u64 = 1000;

/// `[[node]]`: one cluster member.
///
/// Its addresses are *advertised*: what peers, clients and the load balancer dial (an IP or a
/// DNS name, resolved by whoever connects, when it connects). Where the node binds is
/// [`NodeConfig::http_listen`] and its siblings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node id (>= 1, unique).
    pub id: u64,
    /// The address clients reach the node's HTTP on (port != 0, unique).
    pub http_addr: Address,
    /// The address peers reach the node on for Raft RPCs (defaults to `http_addr`).
    pub raft_addr: Address,
    /// The node's RocksDB directory, already resolved against the base directory (unique among
    /// the nodes of one host).
    pub data_dir: PathBuf,
    /// The address clients reach the node's Redis protocol on, if any (unique).
    pub resp_addr: Option<Address>,
    /// Where the HTTP listener binds when it is not the advertised address (`http_listen`, or
    /// `[listen] ip` at `http_addr`'s port).
    pub http_listen: Option<SocketAddr>,
    /// Where the Raft listener binds when it is not the advertised address.
    pub raft_listen: Option<SocketAddr>,
    /// Where the Redis-protocol listener binds when it is not the advertised address.
    pub resp_listen: Option<SocketAddr>,
}

impl NodeConfig {
    /// Where the HTTP listener binds: `http_listen` (or `[listen] ip`) when configured, else
    /// `http_addr` resolved now (an IP binds itself; a name the first address it resolves to).
    ///
    /// # Errors
    /// The advertised name does not resolve; the message says to configure a listen address.
    pub fn http_bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.bind_addr("http", &self.http_addr, self.http_listen)
    }

    /// Where the Raft listener binds (as [`NodeConfig::http_bind_addr`]); `None` when Raft
    /// shares the HTTP listener (the same advertised and listen address).
    ///
    /// # Errors
    /// As [`NodeConfig::http_bind_addr`].
    pub fn raft_bind_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.raft_addr == self.http_addr && self.raft_listen == self.http_listen {
            return Ok(None);
        }
        self.bind_addr("raft", &self.raft_addr, self.raft_listen)
            .map(Some)
    }

    /// Where the Redis-protocol listener binds; `None` without `resp_addr`.
    ///
    /// # Errors
    /// As [`NodeConfig::http_bind_addr`].
    pub fn resp_bind_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        self.resp_addr
            .as_ref()
            .map(|a| self.bind_addr("resp", a, self.resp_listen))
            .transpose()
    }

    fn bind_addr(
        &self,
        key: &str,
        advertised: &Address,
        listen: Option<SocketAddr>,
    ) -> Result<SocketAddr, ConfigError> {
        if let Some(addr) = listen {
            return Ok(addr);
        }
        match advertised.resolve() {
            Ok(addrs) => Ok(addrs[0]),
            Err(e) => Err(ConfigError::invalid(
                format!("node(id {}).{key}_addr", self.id),
                format!(
                    "cannot bind {advertised}: {e}; set {key}_listen in its [[node]] or \
                     [listen] ip (e.g. \"0.0.0.0\") to bind an address of this host"
                ),
            )),
        }
    }
}

impl Config {
    /// Validates `raw`, reads secrets from files or the environment, and resolves relative
    /// `data_dir` and `secret_file` paths against `base_dir`.
    pub fn from_raw(raw: RawConfig, base_dir: &Path) -> Result<Self, ConfigError> {
        let RawConfig {
            cluster,
            session,
            raft,
            nodes,
            load_balancer,
            resp,
            runtime,
            tls,
            listen,
        } = raw;
        let listen_ip = validate_listen(listen)?;
        let nodes = validate_nodes(nodes, base_dir, listen_ip)?;
        let (lb_addr, lb_resp_addr) = validate_load_balancer(load_balancer, &nodes)?;
        let resp = validate_resp(resp)?;
        let tls = validate_tls(tls, base_dir)?;
        if tls.is_none() && resp.tls_auth_clients != TlsAuthClients::No {
            return Err(ConfigError::invalid(
                "resp.tls_auth_clients",
                format!(
                    "is \"{}\" but there is no [tls] section: client certificates need the door \
                     to speak TLS, which it does with [tls]",
                    resp.tls_auth_clients.as_str()
                ),
            ));
        }
        Ok(Self {
            cluster: validate_cluster(cluster, base_dir)?,
            session: validate_session(session, base_dir)?,
            raft: validate_raft(raft)?,
            nodes,
            lb_addr,
            lb_resp_addr,
            resp,
            runtime: validate_runtime(runtime)?,
            tls,
        })
    }

    /// Read and validate a configuration file, as `sessionraft --config FILE` does: relative
    /// paths resolve against the file's directory and errors name the file and the field.
    ///
    /// # Errors
    /// The file cannot be read, is not valid TOML, or a setting is refused ([`ConfigError`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        load(Some(path.as_ref()))
    }

    /// The embedded default configuration (the repository's `cluster.toml`: three nodes on
    /// 127.0.0.1:7101–7103, development secrets), paths relative to the current directory.
    ///
    /// # Errors
    /// Only if the embedded file were invalid (a test checks it is not).
    pub fn embedded_default() -> Result<Self, ConfigError> {
        load(None)
    }

    /// (HTTP workers, Raft threads) for node `me` on a machine with `cores` cores: the
    /// `[runtime]` values, or the cores divided by the configured nodes on `me`'s host (same IP
    /// or name, or loopback for both), at least 1.
    pub fn threads_per_node(&self, me: &NodeConfig, cores: usize) -> (usize, usize) {
        let same_host = self
            .nodes
            .iter()
            .filter(|n| n.http_addr.same_host(&me.http_addr))
            .count()
            .max(1);
        let auto = (cores / same_host).max(1);
        (
            self.runtime.http_workers.unwrap_or(auto),
            self.runtime.raft_threads.unwrap_or(auto),
        )
    }

    /// The node with id `id`, or an error naming `--node` and listing the known ids.
    pub fn node(&self, id: u64) -> Result<&NodeConfig, ConfigError> {
        self.nodes
            .iter()
            .find(|node| node.id == id)
            .ok_or_else(|| ConfigError::UnknownNode {
                id,
                known: self.node_ids().collect(),
            })
    }

    /// The ids of all cluster members, ascending.
    pub fn node_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.nodes.iter().map(|node| node.id)
    }

    /// The openraft configuration for these timings, checked by openraft's own validation.
    pub fn openraft_config(&self) -> Result<openraft::Config, ConfigError> {
        let raft = &self.raft;
        let config = openraft::Config {
            cluster_name: self.cluster.name.clone(),
            heartbeat_interval: millis("raft.heartbeat_ms", raft.heartbeat)?,
            election_timeout_min: millis(
                "raft.election_timeout_min_ms",
                raft.election_timeout_min,
            )?,
            election_timeout_max: millis(
                "raft.election_timeout_max_ms",
                raft.election_timeout_max,
            )?,
            install_snapshot_timeout: millis(
                "raft.install_snapshot_timeout_ms",
                raft.install_snapshot_timeout,
            )?,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(raft.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: raft.max_in_snapshot_log_to_keep,
            purge_batch_size: PURGE_BATCH_SIZE.min(raft.snapshot_logs_since_last),
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            enable_heartbeat: true,
            ..openraft::Config::default()
        };
        config
            .validate()
            .map_err(|e| ConfigError::invalid("raft", format!("rejected by openraft: {e}")))
    }
}

/// `duration` in whole milliseconds, for openraft.
fn millis(field: &str, duration: Duration) -> Result<u64, ConfigError> {
    u64::try_from(duration.as_millis()).map_err(|_| {
        ConfigError::invalid(
            field,
            format!("{duration:?} does not fit in u64 milliseconds"),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Raw (as written) configuration
// ---------------------------------------------------------------------------------------------

/// The configuration file as written, before validation. Unknown keys are rejected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[cluster]` (required).
    pub cluster: RawClusterConfig,
    /// `[session]` (optional; every key defaults).
    #[serde(default)]
    pub session: RawSessionConfig,
    /// `[raft]` (optional; every key defaults).
    #[serde(default)]
    pub raft: RawRaftConfig,
    /// The `[[node]]` tables, in file order.
    #[serde(default, rename = "node")]
    pub nodes: Vec<RawNodeConfig>,
    /// `[load_balancer]` (optional).
    pub load_balancer: Option<RawLoadBalancerConfig>,
    /// `[resp]` (optional; every key defaults).
    #[serde(default)]
    pub resp: RawRespConfig,
    /// `[runtime]` (optional; every key defaults to automatic).
    #[serde(default)]
    pub runtime: RawRuntimeConfig,
    /// `[tls]` (optional).
    pub tls: Option<RawTlsConfig>,
    /// `[listen]` (optional): where this node's listeners bind.
    pub listen: Option<RawListenConfig>,
}

/// `[listen]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenConfig {
    /// `ip`: every listener without its own `*_listen` binds this IP at the port of its
    /// advertised address (`0.0.0.0`: every interface).
    pub ip: String,
}

/// `[runtime]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRuntimeConfig {
    /// `http_workers`: actix-web workers per node.
    pub http_workers: Option<i64>,
    /// `raft_threads`: threads of each node's Raft runtime.
    pub raft_threads: Option<i64>,
}

/// `[load_balancer]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoadBalancerConfig {
    /// `addr`: `HOST:PORT` the load balancer listens on.
    pub addr: String,
    /// `resp_addr`: `HOST:PORT` of the load balancer's Redis-protocol (TCP) frontend.
    pub resp_addr: Option<String>,
}

/// `[resp]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRespConfig {
    /// `password`: the `AUTH` password (at least 16 bytes).
    #[serde(deserialize_with = "deserialize_secret")]
    pub password: Option<Secret>,
    /// `password_env`: an environment variable holding it.
    pub password_env: Option<String>,
    /// `max_connections` per node (default 1024).
    pub max_connections: Option<i64>,
    /// `idle_timeout_secs` (default 300; 0 = never).
    pub idle_timeout_secs: Option<i64>,
    /// `max_bulk_bytes` (default 512 KiB, at most 1 MiB).
    pub max_bulk_bytes: Option<i64>,
    /// `max_array_len` (default 65536).
    pub max_array_len: Option<i64>,
    /// `tls_auth_clients`: `"no"` (default), `"optional"` or `"yes"`; needs `[tls]`.
    pub tls_auth_clients: Option<String>,
}

/// `[tls]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsConfig {
    /// `cert_dir`: the directory of `node<ID>.crt` and `node<ID>.key`.
    pub cert_dir: String,
    /// `ca`: the CA certificate (PEM) every node and CLI trusts.
    pub ca: String,
}

/// `[cluster]` as written. Secrets are held as [`Secret`] so that `Debug` never shows them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClusterConfig {
    /// `name`: the cluster name.
    pub name: String,
    /// `secret`: the cluster secret, inline.
    #[serde(default, deserialize_with = "deserialize_secret")]
    pub secret: Option<Secret>,
    /// `secret_file`: a file holding the cluster secret.
    pub secret_file: Option<PathBuf>,
    /// `secret_env`: an environment variable holding the cluster secret.
    pub secret_env: Option<String>,
    /// `admin_token`: the admin API token, inline.
    #[serde(default, deserialize_with = "deserialize_secret")]
    pub admin_token: Option<Secret>,
    /// `admin_token_env`: an environment variable holding the admin API token.
    pub admin_token_env: Option<String>,
}

/// Deserializes a TOML string straight into a [`Secret`].
fn deserialize_secret<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Secret>, D::Error> {
    String::deserialize(de).map(|s| Some(Secret(s.into_bytes())))
}

/// `[session]` as written; missing keys take the defaults of [`RawSessionConfig::default`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSessionConfig {
    /// `cookie_name` (default `"id"`).
    pub cookie_name: String,
    /// `idle_ttl_secs` (default 1800).
    pub idle_ttl_secs: u64,
    /// `absolute_ttl_secs` (default 86400).
    pub absolute_ttl_secs: u64,
    /// `max_state_bytes` (default 16384).
    pub max_state_bytes: usize,
    /// `cookie_secure` (default `false`).
    pub cookie_secure: bool,
    /// `cookie_secrets`: the cookie key ring inline, newest first (default: none).
    #[serde(deserialize_with = "deserialize_secrets")]
    pub cookie_secrets: Option<Vec<Secret>>,
    /// `cookie_secrets_file`: a file with one cookie secret per line, newest first.
    pub cookie_secrets_file: Option<PathBuf>,
    /// `max_sessions_per_user` (default 0: no cap).
    pub max_sessions_per_user: u32,
}

impl Default for RawSessionConfig {
    fn default() -> Self {
        Self {
            cookie_name: "id".to_owned(),
            idle_ttl_secs: 1800,
            absolute_ttl_secs: 86_400,
            max_state_bytes: 16_384,
            cookie_secure: false,
            cookie_secrets: None,
            cookie_secrets_file: None,
            max_sessions_per_user: 0,
        }
    }
}

/// Deserializes a TOML array of strings into [`Secret`]s.
fn deserialize_secrets<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Vec<Secret>>, D::Error> {
    Vec::<String>::deserialize(de)
        .map(|v| Some(v.into_iter().map(|s| Secret(s.into_bytes())).collect()))
}

/// Most cookie secrets in the ring.
const MAX_COOKIE_SECRETS: usize = 16;

/// `[raft]` as written; missing keys take the defaults of [`RawRaftConfig::default`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRaftConfig {
    /// `heartbeat_ms` (default 100).
    pub heartbeat_ms: u64,
    /// `election_timeout_min_ms` (default 210).
    pub election_timeout_min_ms: u64,
    /// `election_timeout_max_ms` (default 300).
    pub election_timeout_max_ms: u64,
    /// `snapshot_logs_since_last` (default 5000).
    pub snapshot_logs_since_last: u64,
    /// `max_in_snapshot_log_to_keep` (default 1000).
    pub max_in_snapshot_log_to_keep: u64,
    /// `install_snapshot_timeout_ms` (default 10000).
    pub install_snapshot_timeout_ms: u64,
    /// `request_deadline_ms` (default 3000).
    pub request_deadline_ms: u64,
    /// `rpc_timeout_ms` (default 1000).
    pub rpc_timeout_ms: u64,
    /// `lease_reads` (default true).
    pub lease_reads: bool,
    /// `read_consistency` (default "session").
    pub read_consistency: String,
    /// `max_staleness_ms` (default 500).
    pub max_staleness_ms: u64,
    /// `max_queued_writes` (default 4096).
    pub max_queued_writes: u64,
}

impl Default for RawRaftConfig {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_timeout_min_ms: 210,
            election_timeout_max_ms: 300,
            snapshot_logs_since_last: 5000,
            max_in_snapshot_log_to_keep: 1000,
            install_snapshot_timeout_ms: 10_000,
            request_deadline_ms: 3000,
            rpc_timeout_ms: 1000,
            lease_reads: true,
            read_consistency: "session".into(),
            max_staleness_ms: 500,
            max_queued_writes: sessionraft_raft::consensus::batcher::DEFAULT_MAX_QUEUED_WRITES
                as u64,
        }
    }
}

/// One `[[node]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNodeConfig {
    /// `id`: the node id.
    pub id: u64,
    /// `http_addr`: `HOST:PORT` clients reach the node's HTTP on.
    pub http_addr: String,
    /// `raft_addr`: `HOST:PORT` peers use for Raft RPCs (optional, defaults to `http_addr`).
    pub raft_addr: Option<String>,
    /// `data_dir`: the node's RocksDB directory.
    pub data_dir: String,
    /// `resp_addr`: `HOST:PORT` clients reach the Redis protocol on (optional).
    pub resp_addr: Option<String>,
    /// `http_listen`: `IP:PORT` the HTTP listener binds (optional).
    pub http_listen: Option<String>,
    /// `raft_listen`: `IP:PORT` the Raft listener binds (optional).
    pub raft_listen: Option<String>,
    /// `resp_listen`: `IP:PORT` the Redis-protocol listener binds (optional).
    pub resp_listen: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

fn validate_cluster(raw: RawClusterConfig, base_dir: &Path) -> Result<ClusterConfig, ConfigError> {
    let RawClusterConfig {
        name,
        secret,
        secret_file,
        secret_env,
        admin_token,
        admin_token_env,
    } = raw;
    if name.trim().is_empty() {
        return Err(ConfigError::invalid("cluster.name", "must not be empty"));
    }
    let secret = resolve_secret(secret, secret_file, secret_env, base_dir)?;
    let admin_token = resolve_admin_token(admin_token, admin_token_env)?;
    Ok(ClusterConfig {
        name,
        secret,
        admin_token,
    })
}

/// The cluster secret from exactly one of `secret`, `secret_file`, `secret_env`.
fn resolve_secret(
    secret: Option<Secret>,
    file: Option<PathBuf>,
    env: Option<String>,
    base_dir: &Path,
) -> Result<Secret, ConfigError> {
    let (field, what, value) = match (secret, file, env) {
        (Some(secret), None, None) => ("cluster.secret", "the secret".to_owned(), secret),
        (None, Some(file), None) => {
            let path = base_dir.join(file);
            let value = read_secret_file("cluster.secret_file", &path)?;
            let what = format!("the secret in {}", path.display());
            ("cluster.secret_file", what, value)
        }
        (None, None, Some(var)) => {
            let value = read_secret_env("cluster.secret_env", &var)?;
            let what = format!("the value of environment variable {var}");
            ("cluster.secret_env", what, value)
        }
        (secret, file, env) => {
            let given = [
                secret.is_some().then_some("`secret`"),
                file.is_some().then_some("`secret_file`"),
                env.is_some().then_some("`secret_env`"),
            ];
            return Err(ConfigError::invalid(
                "cluster.secret",
                exactly_one_reason("`secret`, `secret_file` or `secret_env`", &given),
            ));
        }
    };
    check_length(field, &what, value, MIN_SECRET_BYTES)
}

/// The admin token from exactly one of `admin_token`, `admin_token_env`.
fn resolve_admin_token(token: Option<Secret>, env: Option<String>) -> Result<Secret, ConfigError> {
    let (field, what, value) = match (token, env) {
        (Some(token), None) => ("cluster.admin_token", "the admin token".to_owned(), token),
        (None, Some(var)) => {
            let value = read_secret_env("cluster.admin_token_env", &var)?;
            let what = format!("the value of environment variable {var}");
            ("cluster.admin_token_env", what, value)
        }
        (token, env) => {
            let given = [
                token.is_some().then_some("`admin_token`"),
                env.is_some().then_some("`admin_token_env`"),
            ];
            return Err(ConfigError::invalid(
                "cluster.admin_token",
                exactly_one_reason("`admin_token` or `admin_token_env`", &given),
            ));
        }
    };
    check_length(field, &what, value, MIN_ADMIN_TOKEN_BYTES)
}

/// The reason for a "set exactly one of" error, given which of the forms were set.
fn exactly_one_reason(forms: &str, given: &[Option<&str>]) -> String {
    let given: Vec<&str> = given.iter().flatten().copied().collect();
    if given.is_empty() {
        format!("is missing: set exactly one of {forms}")
    } else {
        format!(
            "set exactly one of {forms}, but {} are set",
            given.join(" and ")
        )
    }
}

/// Checks that `value` is at least `min` bytes long, without ever printing it.
fn check_length(field: &str, what: &str, value: Secret, min: usize) -> Result<Secret, ConfigError> {
    let len = value.expose().len();
    if len < min {
        return Err(ConfigError::invalid(
            field,
            format!("{what} is {len} bytes long, but at least {min} bytes are required"),
        ));
    }
    Ok(value)
}

/// Reads a secret file; one trailing newline (`\n` or `\r\n`) is not part of the secret.
fn read_secret_file(field: &str, path: &Path) -> Result<Secret, ConfigError> {
    let mut bytes = std::fs::read(path).map_err(|e| {
        ConfigError::invalid(
            field,
            format!("cannot read secret file {}: {e}", path.display()),
        )
    })?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Ok(Secret(bytes))
}

/// Reads a secret from the environment variable `var`, which must be set and non-empty.
fn read_secret_env(field: &str, var: &str) -> Result<Secret, ConfigError> {
    if var.is_empty() || var.contains(['=', '\0']) {
        return Err(ConfigError::invalid(
            field,
            format!("{var:?} is not a valid environment variable name"),
        ));
    }
    match std::env::var(var) {
        Ok(value) if value.is_empty() => Err(ConfigError::invalid(
            field,
            format!("environment variable {var} is empty"),
        )),
        Ok(value) => Ok(Secret(value.into_bytes())),
        Err(std::env::VarError::NotPresent) => Err(ConfigError::invalid(
            field,
            format!("environment variable {var} is not set"),
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::invalid(
            field,
            format!("environment variable {var} is not valid UTF-8"),
        )),
    }
}

fn validate_session(raw: RawSessionConfig, base_dir: &Path) -> Result<SessionConfig, ConfigError> {
    let RawSessionConfig {
        cookie_name,
        idle_ttl_secs,
        absolute_ttl_secs,
        max_state_bytes,
        cookie_secure,
        cookie_secrets,
        cookie_secrets_file,
        max_sessions_per_user,
    } = raw;
    if cookie_name.starts_with("__Host-") || cookie_name.starts_with("__Secure-") {
        return Err(ConfigError::invalid(
            "session.cookie_name",
            format!(
                "{cookie_name:?}: leave the prefix out; with cookie_secure = true the name \
                 gets the `__Host-` prefix by itself"
            ),
        ));
    }
    let cookie_secrets = resolve_cookie_secrets(cookie_secrets, cookie_secrets_file, base_dir)?;
    if cookie_name.is_empty() {
        return Err(ConfigError::invalid(
            "session.cookie_name",
            "must not be empty",
        ));
    }
    if let Some(c) = cookie_name.chars().find(|&c| !is_cookie_token_char(c)) {
        return Err(ConfigError::invalid(
            "session.cookie_name",
            format!(
                "{cookie_name:?} contains {c:?}, which is not allowed in a cookie name \
                 (only RFC 6265 token characters: visible ASCII except separators)"
            ),
        ));
    }
    if idle_ttl_secs == 0 {
        return Err(ConfigError::invalid(
            "session.idle_ttl_secs",
            "must be greater than 0",
        ));
    }
    if absolute_ttl_secs < idle_ttl_secs {
        return Err(ConfigError::invalid(
            "session.absolute_ttl_secs",
            format!("{absolute_ttl_secs} must be at least session.idle_ttl_secs ({idle_ttl_secs})"),
        ));
    }
    if !(MIN_STATE_BYTES..=MAX_STATE_BYTES).contains(&max_state_bytes) {
        return Err(ConfigError::invalid(
            "session.max_state_bytes",
            format!(
                "{max_state_bytes} is out of range; it must be between {MIN_STATE_BYTES} and \
                 {MAX_STATE_BYTES}"
            ),
        ));
    }
    Ok(SessionConfig {
        cookie_name,
        idle_ttl: Duration::from_secs(idle_ttl_secs),
        absolute_ttl: Duration::from_secs(absolute_ttl_secs),
        max_state_bytes,
        cookie_secure,
        cookie_secrets,
        max_sessions_per_user,
    })
}

/// The cookie key ring from at most one of `cookie_secrets` and `cookie_secrets_file`: each
/// secret at least 32 bytes, no duplicates, at most [`MAX_COOKIE_SECRETS`].
fn resolve_cookie_secrets(
    inline: Option<Vec<Secret>>,
    file: Option<PathBuf>,
    base_dir: &Path,
) -> Result<Vec<Secret>, ConfigError> {
    let (field, secrets) = match (inline, file) {
        (None, None) => return Ok(Vec::new()),
        (Some(v), None) => ("session.cookie_secrets", v),
        (None, Some(file)) => {
            let field = "session.cookie_secrets_file";
            let path = base_dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid(field, format!("cannot read {}: {e}", path.display()))
            })?;
            let secrets = text
                .lines()
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .map(|l| Secret(l.as_bytes().to_vec()))
                .collect();
            (field, secrets)
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                "session.cookie_secrets",
                "set at most one of `cookie_secrets` and `cookie_secrets_file`",
            ))
        }
    };
    if secrets.is_empty() || secrets.len() > MAX_COOKIE_SECRETS {
        return Err(ConfigError::invalid(
            field,
            format!(
                "{} secrets given; the ring holds 1 to {MAX_COOKIE_SECRETS} (newest first)",
                secrets.len()
            ),
        ));
    }
    for (i, s) in secrets.iter().enumerate() {
        if s.expose().len() < MIN_SECRET_BYTES {
            return Err(ConfigError::invalid(
                field,
                format!(
                    "secret #{} is {} bytes long, but at least {MIN_SECRET_BYTES} bytes are required",
                    i + 1,
                    s.expose().len()
                ),
            ));
        }
        if secrets[..i].iter().any(|o| o.expose() == s.expose()) {
            return Err(ConfigError::invalid(
                field,
                format!("secret #{} repeats an earlier one", i + 1),
            ));
        }
    }
    Ok(secrets)
}

/// An RFC 6265 `token` character (RFC 2616): visible ASCII except separators.
fn is_cookie_token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c)
}

fn validate_raft(raw: RawRaftConfig) -> Result<RaftTimings, ConfigError> {
    let RawRaftConfig {
        heartbeat_ms,
        election_timeout_min_ms: min_ms,
        election_timeout_max_ms: max_ms,
        snapshot_logs_since_last,
        max_in_snapshot_log_to_keep,
        install_snapshot_timeout_ms,
        request_deadline_ms: deadline_ms,
        rpc_timeout_ms,
        lease_reads,
        read_consistency,
        max_staleness_ms,
        max_queued_writes,
    } = raw;
    if heartbeat_ms == 0 {
        return Err(ConfigError::invalid(
            "raft.heartbeat_ms",
            "must be greater than 0",
        ));
    }
    if min_ms <= heartbeat_ms.saturating_mul(2) {
        return Err(ConfigError::invalid(
            "raft.election_timeout_min_ms",
            format!("{min_ms} must be more than twice raft.heartbeat_ms ({heartbeat_ms})"),
        ));
    }
    if max_ms <= min_ms {
        return Err(ConfigError::invalid(
            "raft.election_timeout_max_ms",
            format!("{max_ms} must be greater than raft.election_timeout_min_ms ({min_ms})"),
        ));
    }
    if deadline_ms <= max_ms {
        return Err(ConfigError::invalid(
            "raft.request_deadline_ms",
            format!(
                "{deadline_ms} must be greater than raft.election_timeout_max_ms ({max_ms}), \
                 so that a request can outlast a leader election"
            ),
        ));
    }
    if rpc_timeout_ms == 0 {
        return Err(ConfigError::invalid(
            "raft.rpc_timeout_ms",
            "must be greater than 0",
        ));
    }
    if rpc_timeout_ms >= deadline_ms {
        return Err(ConfigError::invalid(
            "raft.rpc_timeout_ms",
            format!("{rpc_timeout_ms} must be less than raft.request_deadline_ms ({deadline_ms})"),
        ));
    }
    if install_snapshot_timeout_ms < MIN_INSTALL_SNAPSHOT_TIMEOUT_MS {
        return Err(ConfigError::invalid(
            "raft.install_snapshot_timeout_ms",
            format!(
                "{install_snapshot_timeout_ms} must be at least {MIN_INSTALL_SNAPSHOT_TIMEOUT_MS}"
            ),
        ));
    }
    if snapshot_logs_since_last == 0 {
        return Err(ConfigError::invalid(
            "raft.snapshot_logs_since_last",
            "must be at least 1",
        ));
    }
    let read_consistency = match read_consistency.as_str() {
        "session" => ReadConsistency::Session,
        "linearizable" => ReadConsistency::Linearizable,
        other => {
            return Err(ConfigError::invalid(
                "raft.read_consistency",
                format!("{other:?} must be \"session\" or \"linearizable\""),
            ))
        }
    };
    if max_staleness_ms < heartbeat_ms.saturating_mul(2) || max_staleness_ms > MAX_STALENESS_MS {
        return Err(ConfigError::invalid(
            "raft.max_staleness_ms",
            format!(
                "{max_staleness_ms} must be between twice raft.heartbeat_ms ({}) and \
                 {MAX_STALENESS_MS}: a follower stays fresh for it less half a heartbeat, and \
                 needs a heartbeat within that",
                heartbeat_ms.saturating_mul(2)
            ),
        ));
    }
    if max_queued_writes == 0 {
        return Err(ConfigError::invalid(
            "raft.max_queued_writes",
            "must be at least 1",
        ));
    }
    Ok(RaftTimings {
        heartbeat: Duration::from_millis(heartbeat_ms),
        election_timeout_min: Duration::from_millis(min_ms),
        election_timeout_max: Duration::from_millis(max_ms),
        snapshot_logs_since_last,
        max_in_snapshot_log_to_keep,
        install_snapshot_timeout: Duration::from_millis(install_snapshot_timeout_ms),
        request_deadline: Duration::from_millis(deadline_ms),
        rpc_timeout: Duration::from_millis(rpc_timeout_ms),
        lease_reads,
        read_consistency,
        max_staleness: Duration::from_millis(max_staleness_ms),
        max_queued_writes: usize::try_from(max_queued_writes).unwrap_or(usize::MAX),
    })
}

/// `[listen] ip`, if given.
fn validate_listen(raw: Option<RawListenConfig>) -> Result<Option<std::net::IpAddr>, ConfigError> {
    raw.map(|l| {
        l.ip.trim().parse().map_err(|_| {
            ConfigError::invalid(
                "listen.ip",
                format!(
                    "{:?} is not an IP address (e.g. \"0.0.0.0\" for every interface, or \"::\")",
                    l.ip
                ),
            )
        })
    })
    .transpose()
}

/// A listen address (`IP:PORT`, port 0 refused).
fn parse_listen(field: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        ConfigError::invalid(
            field,
            format!(
                "{text:?} is not IP:PORT (a listen address binds an IP, e.g. \"0.0.0.0:7101\")"
            ),
        )
    })?;
    if addr.port() == 0 {
        return Err(ConfigError::invalid(
            field,
            format!("{addr} uses port 0; a fixed port is required"),
        ));
    }
    Ok(addr)
}

fn validate_nodes(
    raw: Vec<RawNodeConfig>,
    base_dir: &Path,
    listen_ip: Option<std::net::IpAddr>,
) -> Result<Vec<NodeConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::invalid(
            "node",
            "at least one [[node]] table is required",
        ));
    }
    // Which node (index) already uses each id, address and data directory.
    let mut ids: HashMap<u64, usize> = HashMap::new();
    let mut addrs: HashMap<Address, (usize, &'static str)> = HashMap::new();
    let mut dirs: Vec<(PathBuf, Address, usize)> = Vec::new();
    let mut nodes = Vec::with_capacity(raw.len());
    for (index, node) in raw.into_iter().enumerate() {
        let field = |key: &str| format!("node[{index}].{key}");

        if node.id == 0 {
            return Err(ConfigError::invalid(
                field("id"),
                "node ids must be at least 1",
            ));
        }
        if let Some(previous) = ids.insert(node.id, index) {
            return Err(ConfigError::invalid(
                field("id"),
                format!(
                    "duplicate node id {} (already used by node[{previous}])",
                    node.id
                ),
            ));
        }

        let http_addr = parse_addr(&field("http_addr"), &node.http_addr)?;
        let raft_addr = match &node.raft_addr {
            Some(raft_addr) => parse_addr(&field("raft_addr"), raft_addr)?,
            None => http_addr.clone(),
        };
        let resp_addr = match &node.resp_addr {
            Some(a) => Some(parse_addr(&field("resp_addr"), a)?),
            None => None,
        };
        // The Redis protocol needs a listener of its own.
        if let Some(a) = resp_addr
            .as_ref()
            .filter(|a| **a == http_addr || **a == raft_addr)
        {
            return Err(ConfigError::invalid(
                field("resp_addr"),
                format!("{a} is this node's HTTP or Raft address: RESP needs a port of its own"),
            ));
        }
        // A node may use one address for HTTP and Raft; two nodes may not share any address.
        let resp = resp_addr.clone().map(|a| ("resp_addr", a));
        for (key, addr) in [
            ("http_addr", http_addr.clone()),
            ("raft_addr", raft_addr.clone()),
        ]
        .into_iter()
        .chain(resp)
        {
            let (owner, owner_key) = *addrs.entry(addr.clone()).or_insert((index, key));
            if owner != index {
                return Err(ConfigError::invalid(
                    field(key),
                    format!("{addr} is already used by node[{owner}].{owner_key}"),
                ));
            }
        }

        // Listen addresses: the node's own key, else `[listen] ip` at the advertised port.
        let listen = |key: &str, given: &Option<String>, advertised: Option<&Address>| match (
            given, advertised,
        ) {
            (Some(_), None) => Err(ConfigError::invalid(
                field(key),
                "is set but the node has no such listener (resp_listen needs resp_addr)",
            )),
            (Some(text), Some(_)) => parse_listen(&field(key), text).map(Some),
            (None, Some(a)) => Ok(listen_ip.map(|ip| SocketAddr::new(ip, a.port()))),
            (None, None) => Ok(None),
        };
        let http_listen = listen("http_listen", &node.http_listen, Some(&http_addr))?;
        let raft_listen = match &node.raft_listen {
            // One listener serves both when they share the advertised address.
            None if raft_addr == http_addr => http_listen,
            _ => listen("raft_listen", &node.raft_listen, Some(&raft_addr))?,
        };
        let resp_listen = listen("resp_listen", &node.resp_listen, resp_addr.as_ref())?;
        if let Some(a) = resp_listen.filter(|a| Some(*a) == http_listen || Some(*a) == raft_listen)
        {
            return Err(ConfigError::invalid(
                field("resp_listen"),
                format!(
                    "{a} is this node's HTTP or Raft listen address: RESP needs a port of its own"
                ),
            ));
        }

        if node.data_dir.trim().is_empty() {
            return Err(ConfigError::invalid(field("data_dir"), "must not be empty"));
        }
        // `Path` equality compares components, so `data/n1` and `./data/n1` collide. Nodes on
        // different hosts may use the same path (every pod of a StatefulSet uses /data).
        let data_dir = base_dir.join(&node.data_dir);
        if let Some((_, _, previous)) = dirs
            .iter()
            .find(|(dir, host, _)| *dir == data_dir && host.same_host(&http_addr))
        {
            return Err(ConfigError::invalid(
                field("data_dir"),
                format!(
                    "{} is already used by node[{previous}] on the same host",
                    data_dir.display()
                ),
            ));
        }
        dirs.push((data_dir.clone(), http_addr.clone(), index));

        nodes.push(NodeConfig {
            id: node.id,
            http_addr,
            raft_addr,
            data_dir,
            resp_addr,
            http_listen,
            raft_listen,
            resp_listen,
        });
    }
    nodes.sort_by_key(|node| node.id);
    Ok(nodes)
}

fn validate_runtime(raw: RawRuntimeConfig) -> Result<RuntimeConfig, ConfigError> {
    let count = |field: &str, v: Option<i64>| -> Result<Option<usize>, ConfigError> {
        match v {
            None => Ok(None),
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| (1..=RuntimeConfig::MAX_THREADS).contains(n))
                .map(Some)
                .ok_or_else(|| {
                    ConfigError::invalid(
                        field,
                        format!("{n} must be within 1..={}", RuntimeConfig::MAX_THREADS),
                    )
                }),
        }
    };
    Ok(RuntimeConfig {
        http_workers: count("runtime.http_workers", raw.http_workers)?,
        raft_threads: count("runtime.raft_threads", raw.raft_threads)?,
    })
}

/// `[load_balancer]`: (`addr`, `resp_addr`), neither used by a node, nor the same.
fn validate_load_balancer(
    raw: Option<RawLoadBalancerConfig>,
    nodes: &[NodeConfig],
) -> Result<(Option<Address>, Option<Address>), ConfigError> {
    let Some(raw) = raw else {
        return Ok((None, None));
    };
    let not_a_node = |field: &str, addr: Address| -> Result<Address, ConfigError> {
        match nodes.iter().enumerate().find(|(_, n)| {
            n.http_addr == addr || n.raft_addr == addr || n.resp_addr.as_ref() == Some(&addr)
        }) {
            Some((index, node)) => Err(ConfigError::invalid(
                field,
                format!(
                    "{addr} is already used by node {} (node[{index}] after sorting by id)",
                    node.id
                ),
            )),
            None => Ok(addr),
        }
    };
    let addr = not_a_node(
        "load_balancer.addr",
        parse_addr("load_balancer.addr", &raw.addr)?,
    )?;
    let resp = match &raw.resp_addr {
        Some(a) => Some(not_a_node(
            "load_balancer.resp_addr",
            parse_addr("load_balancer.resp_addr", a)?,
        )?),
        None => None,
    };
    if resp.as_ref() == Some(&addr) {
        return Err(ConfigError::invalid(
            "load_balancer.resp_addr",
            format!("{addr} is also load_balancer.addr"),
        ));
    }
    Ok((Some(addr), resp))
}

/// `[resp]`: the password (exactly one of `password`, `password_env`, or neither) and limits.
fn validate_resp(raw: RawRespConfig) -> Result<RespConfig, ConfigError> {
    let d = RespConfig::default();
    let password = match (raw.password, raw.password_env) {
        (None, None) => None,
        (Some(p), None) => Some(check_length(
            "resp.password",
            "the RESP password",
            p,
            MIN_ADMIN_TOKEN_BYTES,
        )?),
        (None, Some(var)) => {
            let value = read_secret_env("resp.password_env", &var)?;
            let what = format!("the value of environment variable {var}");
            Some(check_length(
                "resp.password_env",
                &what,
                value,
                MIN_ADMIN_TOKEN_BYTES,
            )?)
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                "resp.password",
                "set at most one of `password` or `password_env`, but both are set",
            ))
        }
    };
    let within = |field: &str, v: Option<i64>, lo: i64, hi: usize, default: usize| match v {
        None => Ok(default),
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|u| n >= lo && *u <= hi)
            .ok_or_else(|| ConfigError::invalid(field, format!("{n} must be within {lo}..={hi}"))),
    };
    Ok(RespConfig {
        password,
        max_connections: within(
            "resp.max_connections",
            raw.max_connections,
            1,
            1_000_000,
            d.max_connections,
        )?,
        idle_timeout: Duration::from_secs(within(
            "resp.idle_timeout_secs",
            raw.idle_timeout_secs,
            0,
            86_400 * 365,
            300,
        )? as u64),
        max_bulk_bytes: within(
            "resp.max_bulk_bytes",
            raw.max_bulk_bytes,
            64,
            RespConfig::MAX_BULK_BYTES,
            d.max_bulk_bytes,
        )?,
        max_array_len: within(
            "resp.max_array_len",
            raw.max_array_len,
            8,
            RespConfig::MAX_ARRAY_LEN,
            d.max_array_len,
        )?,
        tls_auth_clients: match raw.tls_auth_clients.as_deref() {
            None | Some("no") => TlsAuthClients::No,
            Some("optional") => TlsAuthClients::Optional,
            Some("yes") => TlsAuthClients::Yes,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "resp.tls_auth_clients",
                    format!("{other:?} must be \"no\", \"optional\" or \"yes\""),
                ))
            }
        },
    })
}

/// `[tls]`: both paths non-empty, resolved against `base_dir` (like `data_dir`). The files are
/// read later (see [`TlsConfig`]).
fn validate_tls(
    raw: Option<RawTlsConfig>,
    base_dir: &Path,
) -> Result<Option<TlsConfig>, ConfigError> {
    let Some(RawTlsConfig { cert_dir, ca }) = raw else {
        return Ok(None);
    };
    for (field, value) in [("tls.cert_dir", &cert_dir), ("tls.ca", &ca)] {
        if value.trim().is_empty() {
            return Err(ConfigError::invalid(field, "must not be empty"));
        }
    }
    Ok(Some(TlsConfig {
        cert_dir: base_dir.join(cert_dir),
        ca: base_dir.join(ca),
    }))
}

/// Parses `HOST:PORT` (an IP, `[IPv6]` or a DNS name) and rejects port 0.
fn parse_addr(field: &str, text: &str) -> Result<Address, ConfigError> {
    Address::parse(text).map_err(|reason| ConfigError::invalid(field, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small valid configuration with every section spelled out.
    const VALID: &str = r#"
[cluster]
name = "test-cluster"
secret = "0123456789abcdef0123456789abcdef-test"
admin_token = "admin-token-0123456789"

[session]
cookie_name = "sid"
idle_ttl_secs = 60
absolute_ttl_secs = 600
max_state_bytes = 4096
cookie_secure = true

[raft]
heartbeat_ms = 50
election_timeout_min_ms = 300
election_timeout_max_ms = 600
snapshot_logs_since_last = 100
max_in_snapshot_log_to_keep = 10
install_snapshot_timeout_ms = 5000
request_deadline_ms = 2000
rpc_timeout_ms = 500

[[node]]
id = 1
http_addr = "127.0.0.1:8001"
data_dir = "data/n1"

[[node]]
id = 2
http_addr = "127.0.0.1:8002"
raft_addr = "127.0.0.1:9002"
data_dir = "data/n2"

[[node]]
id = 3
http_addr = "127.0.0.1:8003"
data_dir = "/abs/n3"
"#;

    /// `VALID` with the first occurrence of `from` replaced by `to`.
    fn edit(from: &str, to: &str) -> String {
        assert!(VALID.contains(from), "test bug: {from:?} is not in VALID");
        VALID.replacen(from, to, 1)
    }

    fn base() -> &'static Path {
        Path::new("/base")
    }

    /// The error message for `text`, which must be rejected.
    fn error(text: &str) -> String {
        parse(text, base())
            .expect_err("configuration should be rejected")
            .to_string()
    }

    /// Asserts that `text` is rejected with a message containing every one of `needles`.
    fn assert_rejected(text: &str, needles: &[&str]) {
        let message = error(text);
        for needle in needles {
            assert!(
                message.contains(needle),
                "error {message:?} does not contain {needle:?}"
            );
        }
        assert!(
            !message.contains('\n'),
            "error {message:?} is not a single line"
        );
    }

    #[test]
    fn lease_reads_default_on_and_take_a_boolean_only() {
        assert!(parse(VALID, base()).unwrap().raft.lease_reads);
        let off = edit("[raft]\n", "[raft]\nlease_reads = false\n");
        assert!(!parse(&off, base()).unwrap().raft.lease_reads);
        assert_rejected(
            &edit("[raft]\n", "[raft]\nlease_reads = \"yes\"\n"),
            &["lease_reads"],
        );
    }

    #[test]
    fn embedded_default_parses_with_three_nodes() {
        let config = parse(DEFAULT_CLUSTER_TOML, Path::new("/srv/sessionraft")).unwrap();
        assert_eq!(config.nodes.len(), 3);
        assert_eq!(config.node_ids().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(config.cluster.name, "sessionraft-local");
        for node in &config.nodes {
            let port = 7100 + u16::try_from(node.id).unwrap();
            assert_eq!(node.http_addr.to_string(), format!("127.0.0.1:{port}"));
            assert_eq!(node.raft_addr, node.http_addr);
            assert_eq!(
                node.data_dir,
                Path::new("/srv/sessionraft").join(format!("data/node{}", node.id))
            );
        }
        assert_eq!(
            config.session,
            SessionConfig {
                cookie_name: "id".to_owned(),
                idle_ttl: Duration::from_secs(1800),
                absolute_ttl: Duration::from_secs(86_400),
                max_state_bytes: 16_384,
                cookie_secure: false,
                cookie_secrets: Vec::new(),
                max_sessions_per_user: 0,
            }
        );
        assert_eq!(config.raft.heartbeat, Duration::from_millis(100));
        assert_eq!(config.raft.request_deadline, Duration::from_millis(3000));
        assert!(config.raft.lease_reads);
        assert_eq!(
            config.lb_addr.as_ref().map(ToString::to_string).as_deref(),
            Some("127.0.0.1:7100")
        );
        config.openraft_config().unwrap();
        load(None).unwrap();
    }

    #[test]
    fn embedded_default_equals_builtin_defaults() {
        // The [session] and [raft] values in cluster.toml are exactly the built-in defaults.
        let from_file = parse(DEFAULT_CLUSTER_TOML, base()).unwrap();
        let minimal = r#"
[cluster]
name = "x"
secret = "0123456789abcdef0123456789abcdef"
admin_token = "0123456789abcdef"
[[node]]
id = 1
http_addr = "127.0.0.1:1"
data_dir = "d"
"#;
        let defaults = parse(minimal, base()).unwrap();
        assert_eq!(from_file.session, defaults.session);
        assert_eq!(from_file.raft, defaults.raft);
    }

    #[test]
    fn runtime_threads_are_optional_and_checked() {
        let config = parse(VALID, base()).unwrap();
        assert_eq!(config.runtime, RuntimeConfig::default());
        // VALID has 3 nodes on 127.0.0.1: they share one host.
        assert_eq!(config.threads_per_node(&config.nodes[0], 2), (1, 1));
        assert_eq!(config.threads_per_node(&config.nodes[0], 12), (4, 4));
        let set = format!("{VALID}\n[runtime]\nhttp_workers = 3\nraft_threads = 2\n");
        let config = parse(&set, base()).unwrap();
        assert_eq!(config.threads_per_node(&config.nodes[0], 2), (3, 2));
        for bad in [
            "http_workers = 0",
            "raft_threads = -1",
            "http_workers = 100000",
        ] {
            let text = format!("{VALID}\n[runtime]\n{bad}\n");
            assert_rejected(&text, &["runtime.", "must be within 1..=256"]);
        }
        assert_rejected(&format!("{VALID}\n[runtime]\nworkers = 2\n"), &["workers"]);
    }

    #[test]
    fn cookie_key_ring_and_user_cap_are_checked() {
        // extra keys in VALID's [session] table
        let session = |extra: &str| {
            VALID.replace(
                "cookie_secure = true\n",
                &format!("cookie_secure = true\n{extra}"),
            )
        };
        let a = "a".repeat(32);
        let b = "b".repeat(40);
        let ring = session(&format!(
            "cookie_secrets = [\"{a}\", \"{b}\"]\nmax_sessions_per_user = 3\n"
        ));
        let s = parse(&ring, base()).unwrap().session;
        let got: Vec<&[u8]> = s.cookie_secrets.iter().map(Secret::expose).collect();
        assert_eq!(got, vec![a.as_bytes(), b.as_bytes()]);
        assert_eq!(s.max_sessions_per_user, 3);
        assert!(
            !format!("{s:?}").contains(&a),
            "Debug shows a cookie secret"
        );
        let short = session(&format!("cookie_secrets = [\"{a}\", \"short\"]\n"));
        assert_rejected(
            &short,
            &["session.cookie_secrets", "secret #2", "at least 32"],
        );
        let dup = session(&format!("cookie_secrets = [\"{a}\", \"{a}\"]\n"));
        assert_rejected(&dup, &["session.cookie_secrets", "repeats"]);
        let empty = session("cookie_secrets = []\n");
        assert_rejected(&empty, &["session.cookie_secrets", "1 to 16"]);
        let both = session(&format!(
            "cookie_secrets = [\"{a}\"]\ncookie_secrets_file = \"x\"\n"
        ));
        assert_rejected(&both, &["at most one"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ring"),
            format!("# newest first\n{b}\n\n{a}\n"),
        )
        .unwrap();
        let file = session("cookie_secrets_file = \"ring\"\n");
        let s = parse(&file, dir.path()).unwrap().session;
        let got: Vec<&[u8]> = s.cookie_secrets.iter().map(Secret::expose).collect();
        assert_eq!(got, vec![b.as_bytes(), a.as_bytes()]);
        let missing = session("cookie_secrets_file = \"nope\"\n");
        assert_rejected(&missing, &["session.cookie_secrets_file", "cannot read"]);
        let prefixed = VALID.replace("cookie_name = \"sid\"", "cookie_name = \"__Host-id\"");
        assert_rejected(&prefixed, &["session.cookie_name", "prefix"]);
    }

    #[test]
    fn load_balancer_address_is_optional_and_checked() {
        assert_eq!(parse(VALID, base()).unwrap().lb_addr, None);
        let with_lb = format!("{VALID}\n[load_balancer]\naddr = \"127.0.0.1:8000\"\n");
        assert_eq!(
            parse(&with_lb, base())
                .unwrap()
                .lb_addr
                .map(|a| a.to_string())
                .as_deref(),
            Some("127.0.0.1:8000")
        );
        let clash = format!("{VALID}\n[load_balancer]\naddr = \"127.0.0.1:9002\"\n");
        assert_rejected(&clash, &["load_balancer.addr", "already used by node 2"]);
        let bad = format!("{VALID}\n[load_balancer]\naddr = \"localhost\"\n");
        assert_rejected(&bad, &["load_balancer.addr", "HOST:PORT"]);
        let unknown = format!("{VALID}\n[load_balancer]\naddr = \"127.0.0.1:8000\"\nport = 1\n");
        assert_rejected(&unknown, &["port"]);
    }

    #[test]
    fn tls_is_optional_and_paths_resolve_against_base_dir() {
        assert_eq!(parse(VALID, base()).unwrap().tls, None);
        let text = format!("{VALID}\n[tls]\ncert_dir = \"certs\"\nca = \"/etc/pki/ca.crt\"\n");
        assert_eq!(
            parse(&text, base()).unwrap().tls,
            Some(TlsConfig {
                cert_dir: PathBuf::from("/base/certs"),
                ca: PathBuf::from("/etc/pki/ca.crt"),
            })
        );
        let tls = parse(&text, base()).unwrap().tls.unwrap();
        assert_eq!(tls.cert_file(2), Path::new("/base/certs/node2.crt"));
        assert_eq!(tls.key_file(2), Path::new("/base/certs/node2.key"));
    }

    #[test]
    fn resp_tls_auth_clients_is_no_optional_or_yes_and_needs_tls() {
        let tls = "\n[tls]\ncert_dir = \"certs\"\nca = \"ca.crt\"\n";
        assert_eq!(
            parse(VALID, base()).unwrap().resp.tls_auth_clients,
            TlsAuthClients::No
        );
        for (value, want) in [
            ("no", TlsAuthClients::No),
            ("optional", TlsAuthClients::Optional),
            ("yes", TlsAuthClients::Yes),
        ] {
            let text = format!("{VALID}{tls}\n[resp]\ntls_auth_clients = \"{value}\"\n");
            assert_eq!(parse(&text, base()).unwrap().resp.tls_auth_clients, want);
        }
        let bad = format!("{VALID}{tls}\n[resp]\ntls_auth_clients = \"required\"\n");
        assert_rejected(
            &bad,
            &[
                "resp.tls_auth_clients",
                "\"required\"",
                "\"no\", \"optional\" or \"yes\"",
            ],
        );
        let boolean = format!("{VALID}{tls}\n[resp]\ntls_auth_clients = true\n");
        assert_rejected(&boolean, &["tls_auth_clients", "expected a string"]);
        let without_tls = format!("{VALID}\n[resp]\ntls_auth_clients = \"yes\"\n");
        assert_rejected(&without_tls, &["resp.tls_auth_clients", "no [tls] section"]);
        // "no" needs nothing.
        let no = format!("{VALID}\n[resp]\ntls_auth_clients = \"no\"\n");
        assert!(parse(&no, base()).is_ok());
    }

    #[test]
    fn tls_keys_are_checked() {
        let missing_ca = format!("{VALID}\n[tls]\ncert_dir = \"certs\"\n");
        assert_rejected(&missing_ca, &["tls", "missing field `ca`"]);
        let missing_dir = format!("{VALID}\n[tls]\nca = \"ca.crt\"\n");
        assert_rejected(&missing_dir, &["tls", "missing field `cert_dir`"]);
        let empty = format!("{VALID}\n[tls]\ncert_dir = \"\"\nca = \"ca.crt\"\n");
        assert_rejected(&empty, &["tls.cert_dir", "must not be empty"]);
        let unknown = format!("{VALID}\n[tls]\ncert_dir = \"c\"\nca = \"ca.crt\"\ncert = \"x\"\n");
        assert_rejected(&unknown, &["tls.cert", "unknown field"]);
    }

    #[test]
    fn missing_or_bad_tls_files_are_reported_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{VALID}\n[tls]\ncert_dir = \"certs\"\nca = \"certs/ca.crt\"\n");
        let config_path = dir.path().join("cluster.toml");
        std::fs::write(&config_path, &text).unwrap();
        // Parsing does not need the files (`sessionraft nodes` runs before they exist) ...
        let tls = load(Some(&config_path)).unwrap().tls.unwrap();
        // ... reading them names the field and the path.
        let message = tls.read_ca().err().unwrap().to_string();
        assert!(message.contains("tls.ca"), "{message}");
        assert!(message.contains("certs/ca.crt"), "{message}");
        assert!(message.contains("cannot read"), "{message}");
        let message = tls.read_node_identity(1).err().unwrap().to_string();
        assert!(message.contains("tls.cert_dir"), "{message}");
        assert!(message.contains("not a directory"), "{message}");

        std::fs::create_dir(dir.path().join("certs")).unwrap();
        std::fs::write(dir.path().join("certs/ca.crt"), "not a certificate\n").unwrap();
        let message = tls.read_ca().err().unwrap().to_string();
        assert!(message.contains("tls.ca"), "{message}");
        assert!(message.contains("holds no PEM certificate"), "{message}");
        let message = tls.read_node_identity(1).err().unwrap().to_string();
        assert!(message.contains("tls.cert_dir"), "{message}");
        assert!(message.contains("node1.crt"), "{message}");

        let garbled = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join("certs/node1.crt"), garbled).unwrap();
        let message = tls.read_node_identity(1).err().unwrap().to_string();
        assert!(message.contains("tls.cert_dir"), "{message}");
        assert!(message.contains("not valid PEM"), "{message}");
    }

    #[test]
    fn valid_config_parses() {
        let config = parse(VALID, base()).unwrap();
        assert_eq!(config.session.cookie_name, "sid");
        assert!(config.session.cookie_secure);
        let expected = Address::parse("127.0.0.1:9002").unwrap();
        assert_eq!(config.node(2).unwrap().raft_addr, expected);
        assert_eq!(
            config.node(1).unwrap().raft_addr,
            config.node(1).unwrap().http_addr
        );
        let raft = config.openraft_config().unwrap();
        assert_eq!(raft.heartbeat_interval, 50);
        assert_eq!(raft.election_timeout_min, 300);
        assert_eq!(raft.election_timeout_max, 600);
        assert_eq!(raft.install_snapshot_timeout, 5000);
        assert_eq!(
            raft.snapshot_policy,
            openraft::SnapshotPolicy::LogsSinceLast(100)
        );
        assert_eq!(raft.max_in_snapshot_log_to_keep, 10);
        assert_eq!(
            raft.purge_batch_size, 100,
            "purges follow every snapshot: min(256, snapshot_logs_since_last)"
        );
        assert!(raft.enable_heartbeat);
        assert_eq!(raft.cluster_name, "test-cluster");
    }

    #[test]
    fn nodes_are_sorted_by_id() {
        let text = edit("id = 1\n", "id = 9\n");
        let config = parse(&text, base()).unwrap();
        assert_eq!(config.node_ids().collect::<Vec<_>>(), [2, 3, 9]);
    }

    #[test]
    fn relative_data_dir_resolves_against_base_dir() {
        let config = parse(VALID, Path::new("/etc/sessionraft")).unwrap();
        assert_eq!(
            config.node(1).unwrap().data_dir,
            Path::new("/etc/sessionraft/data/n1")
        );
        assert_eq!(config.node(3).unwrap().data_dir, Path::new("/abs/n3"));
    }

    #[test]
    fn duplicate_node_id_is_rejected() {
        let text = edit("id = 3", "id = 1");
        assert_eq!(
            error(&text),
            "invalid cluster.toml: node[2].id: duplicate node id 1 (already used by node[0])"
        );
    }

    #[test]
    fn node_id_zero_is_rejected() {
        assert_rejected(&edit("id = 2", "id = 0"), &["node[1].id", "at least 1"]);
    }

    #[test]
    fn bad_address_is_rejected() {
        assert_rejected(
            &edit("\"127.0.0.1:8002\"", "\"local_host:8002\""),
            &[
                "node[1].http_addr",
                "local_host:8002",
                "not a valid DNS label",
            ],
        );
        assert_rejected(
            &edit("\"127.0.0.1:9002\"", "\"127.0.0.1\""),
            &["node[1].raft_addr"],
        );
    }

    #[test]
    fn port_zero_is_rejected() {
        assert_rejected(
            &edit("127.0.0.1:8003", "127.0.0.1:0"),
            &["node[2].http_addr", "port 0"],
        );
        assert_rejected(
            &edit("127.0.0.1:9002", "127.0.0.1:0"),
            &["node[1].raft_addr", "port 0"],
        );
    }

    #[test]
    fn shared_address_is_rejected() {
        assert_rejected(
            &edit("127.0.0.1:8003", "127.0.0.1:8001"),
            &["node[2].http_addr", "already used by node[0].http_addr"],
        );
        // Node 3's http_addr (and thus its raft_addr) collides with node 2's raft_addr.
        assert_rejected(
            &edit("127.0.0.1:8003", "127.0.0.1:9002"),
            &["node[2].http_addr", "already used by node[1].raft_addr"],
        );
    }

    /// Three nodes known by name on three hosts, as a StatefulSet's pods: the same data dir on
    /// every host, bound on every interface.
    const NAMED: &str = r#"
[cluster]
name = "k8s"
secret = "0123456789abcdef0123456789abcdef-test"
admin_token = "admin-token-0123456789"

[listen]
ip = "0.0.0.0"

[load_balancer]
addr = "sessionraft:7100"

[[node]]
id = 1
http_addr = "sessionraft-0.sessionraft:7101"
resp_addr = "sessionraft-0.sessionraft:7201"
data_dir = "/data"

[[node]]
id = 2
http_addr = "sessionraft-1.sessionraft:7101"
raft_addr = "sessionraft-1.sessionraft:7102"
raft_listen = "10.0.0.2:7102"
data_dir = "/data"

[[node]]
id = 3
http_addr = "[fd00::3]:7101"
data_dir = "/data"
"#;

    fn named() -> String {
        NAMED.to_owned()
    }

    #[test]
    fn names_listen_addresses_and_shared_data_dirs_across_hosts() {
        let config = parse(&named(), base()).unwrap();
        let n1 = config.node(1).unwrap();
        assert_eq!(n1.http_addr.to_string(), "sessionraft-0.sessionraft:7101");
        assert_eq!(n1.raft_addr, n1.http_addr);
        assert_eq!(n1.http_listen, Some("0.0.0.0:7101".parse().unwrap()));
        assert_eq!(n1.raft_listen, n1.http_listen);
        assert_eq!(n1.resp_listen, Some("0.0.0.0:7201".parse().unwrap()));
        assert_eq!(
            n1.http_bind_addr().unwrap(),
            "0.0.0.0:7101".parse().unwrap()
        );
        let n2 = config.node(2).unwrap();
        assert_eq!(n2.raft_listen, Some("10.0.0.2:7102".parse().unwrap()));
        assert_eq!(
            n2.raft_bind_addr().unwrap().unwrap(),
            "10.0.0.2:7102".parse().unwrap()
        );
        let n3 = config.node(3).unwrap();
        assert_eq!(n3.http_addr.to_string(), "[fd00::3]:7101");
        assert_eq!(n3.resp_bind_addr().unwrap(), None);
        assert_eq!(
            config.lb_addr.as_ref().map(ToString::to_string).as_deref(),
            Some("sessionraft:7100")
        );
        assert!(config
            .nodes
            .iter()
            .all(|n| n.data_dir == Path::new("/data")));
        // Each node is alone on its host: all the cores are its own.
        assert_eq!(config.threads_per_node(n1, 4), (4, 4));
    }

    #[test]
    fn a_name_without_a_listen_address_is_resolved_to_bind() {
        let text = named().replace("[listen]\nip = \"0.0.0.0\"\n", "");
        let config = parse(&text, base()).unwrap();
        let e = config
            .node(1)
            .unwrap()
            .http_bind_addr()
            .unwrap_err()
            .to_string();
        for needle in [
            "sessionraft-0.sessionraft:7101",
            "http_listen",
            "[listen] ip",
        ] {
            assert!(e.contains(needle), "{e}");
        }
        let local = parse(
            &text.replace("sessionraft-0.sessionraft", "localhost"),
            base(),
        )
        .unwrap();
        assert!(local
            .node(1)
            .unwrap()
            .http_bind_addr()
            .unwrap()
            .ip()
            .is_loopback());
    }

    #[test]
    fn bad_listen_addresses_are_rejected() {
        assert_rejected(
            &named().replace("ip = \"0.0.0.0\"", "ip = \"any\""),
            &["listen.ip", "not an IP address"],
        );
        assert_rejected(
            &named().replace("10.0.0.2:7102", "node-2:7102"),
            &["node[1].raft_listen", "not IP:PORT"],
        );
        assert_rejected(
            &named().replace(
                "raft_listen = \"10.0.0.2:7102\"",
                "resp_listen = \"0.0.0.0:7201\"",
            ),
            &["node[1].resp_listen", "no such listener"],
        );
        assert_rejected(
            &named().replace("10.0.0.2:7102", "10.0.0.2:0"),
            &["node[1].raft_listen", "port 0"],
        );
    }

    #[test]
    fn environment_sets_and_overrides_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, named()).unwrap();
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect()
        };
        let config = load_with_env(
            Some(&path),
            env(&[
                ("SESSIONRAFT_RAFT__HEARTBEAT_MS", "40"),
                ("SESSIONRAFT_RAFT__LEASE_READS", "false"),
                ("SESSIONRAFT_LISTEN__IP", "127.0.0.1"),
                ("SESSIONRAFT_NODE__3__DATA_DIR", "/srv/n3"),
                (
                    "SESSIONRAFT_NODE__4__HTTP_ADDR",
                    "sessionraft-3.sessionraft:7101",
                ),
                ("SESSIONRAFT_NODE__4__DATA_DIR", "/data"),
                ("SESSIONRAFT_CLUSTER__NAME", "from-env"),
                ("SESSIONRAFT_NODE_ID", "2"),
                ("SESSIONRAFT_CONFIG", "/elsewhere.toml"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(config.raft.heartbeat, Duration::from_millis(40));
        assert!(!config.raft.lease_reads);
        assert_eq!(config.cluster.name, "from-env");
        assert_eq!(config.node(3).unwrap().data_dir, Path::new("/srv/n3"));
        assert_eq!(
            config.node(1).unwrap().http_listen,
            Some("127.0.0.1:7101".parse().unwrap())
        );
        assert_eq!(
            config.node(4).unwrap().http_addr.to_string(),
            "sessionraft-3.sessionraft:7101"
        );
        // The embedded file too.
        let config = load_with_env(None, env(&[("SESSIONRAFT_RAFT__HEARTBEAT_MS", "60")])).unwrap();
        assert_eq!(config.raft.heartbeat, Duration::from_millis(60));

        for (var, value, needles) in [
            (
                "SESSIONRAFT_RAFT__HEARTBEAT_MSS",
                "40",
                &["SESSIONRAFT_RAFT__HEARTBEAT_MSS", "heartbeat_mss"][..],
            ),
            (
                "SESSIONRAFT_RAFT__HEARTBEAT_MS",
                "fast",
                &["SESSIONRAFT_RAFT__HEARTBEAT_MS", "heartbeat_ms"][..],
            ),
            (
                "SESSIONRAFT_NOSUCH__KEY",
                "1",
                &["SESSIONRAFT_NOSUCH__KEY", "nosuch"][..],
            ),
            (
                "SESSIONRAFT_NODE__2__PORT",
                "1",
                &["SESSIONRAFT_NODE__2__PORT", "port"][..],
            ),
            (
                "SESSIONRAFT_NODE__X__DATA_DIR",
                "1",
                &["SESSIONRAFT_NODE__X__DATA_DIR"][..],
            ),
            (
                "SESSIONRAFT_NODE__2__HTTP_ADDR",
                "bad_name:1",
                &["node[1].http_addr", "bad_name"][..],
            ),
        ] {
            let e = load_with_env(Some(&path), env(&[(var, value)]))
                .expect_err(var)
                .to_string();
            for needle in needles {
                assert!(e.contains(needle), "{var}={value}: {e}");
            }
        }
    }

    #[test]
    fn duplicate_or_empty_data_dir_is_rejected() {
        assert_rejected(
            &edit("\"data/n2\"", "\"./data/n1\""),
            &["node[1].data_dir", "already used by node[0]"],
        );
        assert_rejected(
            &edit("\"data/n2\"", "\"\""),
            &["node[1].data_dir", "must not be empty"],
        );
    }

    #[test]
    fn no_nodes_is_rejected() {
        let text = VALID.split("[[node]]").next().unwrap();
        assert_rejected(text, &["invalid cluster.toml: node: at least one"]);
    }

    #[test]
    fn short_secret_is_rejected_without_printing_it() {
        let message = error(&edit(
            "secret = \"0123456789abcdef0123456789abcdef-test\"",
            "secret = \"too-short-secret\"",
        ));
        assert!(message.contains("cluster.secret"), "{message}");
        assert!(message.contains("16 bytes"), "{message}");
        assert!(message.contains("at least 32"), "{message}");
        assert!(!message.contains("too-short-secret"), "{message}");
    }

    #[test]
    fn short_admin_token_is_rejected() {
        let message = error(&edit("\"admin-token-0123456789\"", "\"tiny\""));
        assert!(message.contains("cluster.admin_token"), "{message}");
        assert!(message.contains("at least 16"), "{message}");
        assert!(!message.contains("tiny"), "{message}");
    }

    #[test]
    fn two_secret_forms_are_rejected() {
        assert_rejected(
            &edit("admin_token =", "secret_env = \"SOME_VAR\"\nadmin_token ="),
            &["cluster.secret", "exactly one", "`secret` and `secret_env`"],
        );
        assert_rejected(
            &edit(
                "admin_token =",
                "admin_token_env = \"SOME_VAR\"\nadmin_token =",
            ),
            &["cluster.admin_token", "`admin_token` and `admin_token_env`"],
        );
    }

    #[test]
    fn missing_secret_is_rejected() {
        let text = edit("secret = \"0123456789abcdef0123456789abcdef-test\"\n", "");
        assert_rejected(&text, &["cluster.secret", "is missing"]);
        let text = edit("admin_token = \"admin-token-0123456789\"\n", "");
        assert_rejected(&text, &["cluster.admin_token", "is missing"]);
    }

    #[test]
    fn missing_secret_env_variable_is_rejected() {
        let var = "SESSIONRAFT_TEST_SURELY_UNSET_SECRET_VAR";
        assert!(std::env::var_os(var).is_none());
        let text = edit(
            "secret = \"0123456789abcdef0123456789abcdef-test\"",
            &format!("secret_env = \"{var}\""),
        );
        assert_rejected(&text, &["cluster.secret_env", var, "not set"]);
        let text = edit(
            "admin_token = \"admin-token-0123456789\"",
            &format!("admin_token_env = \"{var}\""),
        );
        assert_rejected(&text, &["cluster.admin_token_env", var, "not set"]);
    }

    #[test]
    fn unreadable_secret_file_is_rejected() {
        let text = edit(
            "secret = \"0123456789abcdef0123456789abcdef-test\"",
            "secret_file = \"no/such/secret\"",
        );
        assert_rejected(&text, &["cluster.secret_file", "/base/no/such/secret"]);
    }

    #[test]
    fn secret_file_resolves_against_base_dir() {
        let dir =
            std::env::temp_dir().join(format!("sessionraft-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = "file-secret-0123456789abcdef0123456789";
        std::fs::write(dir.join("secret.txt"), format!("{secret}\n")).unwrap();
        let text = edit(
            "secret = \"0123456789abcdef0123456789abcdef-test\"",
            "secret_file = \"secret.txt\"",
        );
        let config_path = dir.join("cluster.toml");
        std::fs::write(&config_path, &text).unwrap();
        let result = load(Some(&config_path));
        std::fs::remove_dir_all(&dir).unwrap();
        let config = result.unwrap();
        assert_eq!(config.cluster.secret.expose(), secret.as_bytes());
        assert_eq!(config.node(1).unwrap().data_dir, dir.join("data/n1"));
    }

    #[test]
    fn missing_config_file_names_the_path() {
        let message = load(Some(Path::new("/no/such/dir/cluster.toml")))
            .unwrap_err()
            .to_string();
        assert!(message.contains("/no/such/dir/cluster.toml"), "{message}");
    }

    #[test]
    fn election_timeouts_are_checked() {
        assert_rejected(
            &edit(
                "election_timeout_max_ms = 600",
                "election_timeout_max_ms = 300",
            ),
            &[
                "raft.election_timeout_max_ms",
                "greater than raft.election_timeout_min_ms",
            ],
        );
        assert_rejected(
            &edit(
                "election_timeout_min_ms = 300",
                "election_timeout_min_ms = 100",
            ),
            &[
                "raft.election_timeout_min_ms",
                "must be more than twice raft.heartbeat_ms",
            ],
        );
        assert_rejected(
            &edit("heartbeat_ms = 50", "heartbeat_ms = 0"),
            &["raft.heartbeat_ms"],
        );
    }

    #[test]
    fn request_deadline_must_exceed_election_timeout() {
        assert_rejected(
            &edit("request_deadline_ms = 2000", "request_deadline_ms = 600"),
            &["raft.request_deadline_ms", "raft.election_timeout_max_ms"],
        );
    }

    #[test]
    fn other_raft_limits_are_checked() {
        assert_rejected(
            &edit("rpc_timeout_ms = 500", "rpc_timeout_ms = 2000"),
            &["raft.rpc_timeout_ms", "less than raft.request_deadline_ms"],
        );
        assert_rejected(
            &edit("rpc_timeout_ms = 500", "rpc_timeout_ms = 0"),
            &["raft.rpc_timeout_ms"],
        );
        assert_rejected(
            &edit(
                "install_snapshot_timeout_ms = 5000",
                "install_snapshot_timeout_ms = 999",
            ),
            &["raft.install_snapshot_timeout_ms", "at least 1000"],
        );
        assert_rejected(
            &edit(
                "snapshot_logs_since_last = 100",
                "snapshot_logs_since_last = 0",
            ),
            &["raft.snapshot_logs_since_last"],
        );
    }

    #[test]
    fn session_limits_are_checked() {
        assert_rejected(
            &edit("idle_ttl_secs = 60", "idle_ttl_secs = 0"),
            &["session.idle_ttl_secs", "greater than 0"],
        );
        assert_rejected(
            &edit("absolute_ttl_secs = 600", "absolute_ttl_secs = 30"),
            &["session.absolute_ttl_secs", "session.idle_ttl_secs"],
        );
        assert_rejected(
            &edit("max_state_bytes = 4096", "max_state_bytes = 10"),
            &["session.max_state_bytes"],
        );
        assert_rejected(
            &edit("cookie_name = \"sid\"", "cookie_name = \"my sid\""),
            &["session.cookie_name", "RFC 6265"],
        );
        assert_rejected(
            &edit("cookie_name = \"sid\"", "cookie_name = \"\""),
            &["session.cookie_name", "must not be empty"],
        );
    }

    #[test]
    fn unknown_key_is_rejected() {
        assert_rejected(
            &edit("cookie_secure = true", "cookie_secure = true\nbogus = 1"),
            &["session.bogus", "unknown field", "(line 13, column 1)"],
        );
        assert_rejected(
            &edit(
                "raft_addr = \"127.0.0.1:9002\"",
                "raft_addr = \"127.0.0.1:9002\"\nport = 1",
            ),
            &["node[1].port", "unknown field"],
        );
    }

    #[test]
    fn wrong_type_and_syntax_errors_name_the_location() {
        assert_rejected(
            &edit("idle_ttl_secs = 60", "idle_ttl_secs = \"60\""),
            &["session.idle_ttl_secs", "line 9"],
        );
        assert_rejected(
            &edit("heartbeat_ms = 50", "heartbeat_ms == 50"),
            &["raft.heartbeat_ms", "line 15"],
        );
    }

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

    #[test]
    fn unknown_node_id_lists_known_ids() {
        let config = parse(VALID, base()).unwrap();
        let error = config.node(7).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("--node 7"), "{message}");
        assert!(message.contains("1, 2, 3"), "{message}");
        assert_eq!(error.field(), Some("--node"));
    }

    #[test]
    fn secret_debug_does_not_reveal_it() {
        let secret = Secret(b"super-secret-value".to_vec());
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        let config = parse(VALID, base()).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("0123456789abcdef0123456789abcdef-test"));
        assert!(!debug.contains("admin-token-0123456789"));
        let raw: RawConfig = toml::from_str(VALID).unwrap();
        assert!(!format!("{raw:?}").contains("admin-token-0123456789"));
    }
}

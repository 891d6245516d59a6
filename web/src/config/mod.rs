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
//!
//! This file loads the whole: [`load`], [`parse`], [`Config`] and [`RawConfig`]. Each section
//! is read and checked in a file of its own, or beside what it configures:
//! - `cluster.rs`: `[cluster]` ([`ClusterConfig`]); `secret.rs`: [`Secret`] and reading secrets.
//! - `session.rs`: `[session]` ([`SessionConfig`]), the cookie and session lifetimes.
//! - `nodes.rs`: `[[node]]` and `[listen]` ([`NodeConfig`]); `address.rs`: [`Address`].
//! - `load_balancer.rs`: `[load_balancer]`. `runtime.rs`: `[runtime]` ([`RuntimeConfig`]).
//! - `tls.rs`: `[tls]` ([`TlsConfig`]).
//! - `[raft]`: [`RaftSettings`], in the raft crate (`sessionraft_raft::consensus::settings`),
//!   whose refusals ([`SettingsError`]) become a [`ConfigError`] word for word.
//! - `[resp]`: [`RespConfig`], beside the door (`crate::resp::settings`).
//! - `environment.rs`: every key from the environment, and the node id.
//! - `error.rs`: [`ConfigError`] and where a TOML error points.

use std::path::Path;

use serde::Deserialize;

mod address;
mod cluster;
mod environment;
mod error;
mod load_balancer;
mod nodes;
mod runtime;
mod secret;
mod session;
#[cfg(test)]
pub(crate) mod test_support;
mod tls;

pub use crate::resp::settings::{RawRespConfig, RespConfig, TlsAuthClients};
pub use address::Address;
pub use cluster::{ClusterConfig, RawClusterConfig};
pub use environment::{hostname, node_id_from, CONFIG_FILE_ENV, NODE_ID_ENV};
pub use error::ConfigError;
pub use load_balancer::RawLoadBalancerConfig;
pub use nodes::{NodeConfig, RawListenConfig, RawNodeConfig};
pub use runtime::{RawRuntimeConfig, RuntimeConfig};
pub use secret::Secret;
pub(crate) use secret::{check_length, deserialize_secret, read_secret_env, MIN_ADMIN_TOKEN_BYTES};
pub use session::{RawSessionConfig, SessionConfig};
/// `raft.read_consistency`: see `sessionraft_raft::consensus::freshness::ReadConsistency`.
pub use sessionraft_raft::consensus::freshness::ReadConsistency;
/// `[raft]`: see `sessionraft_raft::consensus::settings`.
pub use sessionraft_raft::consensus::settings::{
    RaftSettings, RawRaftSettings, SettingsError, MAX_STALENESS_MS,
};
pub use tls::{NodeIdentity, RawTlsConfig, TlsConfig};

use error::{syntax_error, DEFAULT_FILE_LABEL};

/// The default configuration (the repository's `cluster.toml`), embedded in the binary: a
/// 3-node cluster on `127.0.0.1:7101..=7103` with development-only secrets.
pub const DEFAULT_CLUSTER_TOML: &str = include_str!("../../../cluster.toml");

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

/// The validated cluster configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Cluster identity and secrets (`[cluster]`).
    pub cluster: ClusterConfig,
    /// Session cookie and lifetime settings (`[session]`).
    pub session: SessionConfig,
    /// Raft timings and snapshot policy (`[raft]`).
    pub raft: RaftSettings,
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
        let listen_ip = nodes::validate_listen(listen)?;
        let nodes = nodes::validate_nodes(nodes, base_dir, listen_ip)?;
        let (lb_addr, lb_resp_addr) = load_balancer::validate_load_balancer(load_balancer, &nodes)?;
        let resp = crate::resp::settings::validate_resp(resp)?;
        let tls = tls::validate_tls(tls, base_dir)?;
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
            cluster: cluster::validate_cluster(cluster, base_dir)?,
            session: session::validate_session(session, base_dir)?,
            raft: raft.validate()?,
            nodes,
            lb_addr,
            lb_resp_addr,
            resp,
            runtime: runtime::validate_runtime(runtime)?,
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

    /// The openraft configuration for the `[raft]` settings, checked by openraft's own
    /// validation (see [`RaftSettings::openraft_config`]).
    pub fn openraft_config(&self) -> Result<openraft::Config, ConfigError> {
        Ok(self.raft.openraft_config(&self.cluster.name)?)
    }
}

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
    pub raft: RawRaftSettings,
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::test_support::*;
    use super::*;

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
    fn missing_config_file_names_the_path() {
        let message = load(Some(Path::new("/no/such/dir/cluster.toml")))
            .unwrap_err()
            .to_string();
        assert!(message.contains("/no/such/dir/cluster.toml"), "{message}");
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
    fn unknown_node_id_lists_known_ids() {
        let config = parse(VALID, base()).unwrap();
        let error = config.node(7).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("--node 7"), "{message}");
        assert!(message.contains("1, 2, 3"), "{message}");
        assert_eq!(error.field(), Some("--node"));
    }

    #[test]
    fn raft_refusals_keep_their_message() {
        assert_eq!(
            error(&edit("heartbeat_ms = 50", "heartbeat_ms = 0")),
            "invalid cluster.toml: raft.heartbeat_ms: must be greater than 0"
        );
    }
}

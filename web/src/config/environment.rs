//! Configuration from the environment: one naming rule for every key, and the node id.
//!
//! - `SESSIONRAFT_<SECTION>__<KEY>` sets `key` of `[section]` (`SESSIONRAFT_RAFT__HEARTBEAT_MS`).
//! - `SESSIONRAFT_NODE__<ID>__<KEY>` sets `key` of the `[[node]]` whose id is ID, adding such a
//!   node when the file has none (`SESSIONRAFT_NODE__2__DATA_DIR=/data`).
//!
//! A value is read as a TOML integer, float, boolean or array when it is one, else as a string,
//! so `SESSIONRAFT_LISTEN__IP=0.0.0.0` needs no quotes (and a string that looks like a number
//! needs them: `'"1234"'`). The environment wins over the file. Variables with one underscore
//! after the prefix (`SESSIONRAFT_CONFIG`, `SESSIONRAFT_NODE_ID`) are not keys.
//!
//! The node id comes from `--node`, else `SESSIONRAFT_NODE_ID`, else the ordinal ending the host
//! name as a StatefulSet names its pods (`sessionraft-0` is node 1).

use super::ConfigError;

/// The prefix of every variable this module reads.
pub const PREFIX: &str = "SESSIONRAFT_";
/// The variable naming the configuration file (as `--config`).
pub const CONFIG_FILE_ENV: &str = "SESSIONRAFT_CONFIG";
/// The variable giving the node id (as `--node`).
pub const NODE_ID_ENV: &str = "SESSIONRAFT_NODE_ID";

/// One key set from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The variable, e.g. `SESSIONRAFT_RAFT__HEARTBEAT_MS`.
    pub var: String,
    /// Where it goes.
    pub target: Target,
    /// The value, already typed.
    pub value: toml::Value,
}

/// Which key an [`Override`] sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `[section] key`.
    Section { section: String, key: String },
    /// `key` of the `[[node]]` with this id.
    Node { id: u64, key: String },
}

impl Target {
    /// The key as an error message names it (`raft.heartbeat_ms`, `node(id 2).data_dir`).
    pub fn field(&self) -> String {
        match self {
            Target::Section { section, key } => format!("{section}.{key}"),
            Target::Node { id, key } => format!("node(id {id}).{key}"),
        }
    }
}

/// The configuration keys set by `env` (every other variable is ignored), sorted by name so the
/// result does not depend on the environment's order.
///
/// # Errors
/// A `SESSIONRAFT_…__…` variable whose name is not `SECTION__KEY` or `NODE__ID__KEY`.
pub fn overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Override>, ConfigError> {
    let mut found = Vec::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let bad = |why: &str| {
            ConfigError::invalid(
                var.clone(),
                format!(
                    "{why}: configuration variables are named SESSIONRAFT_<SECTION>__<KEY> or \
                     SESSIONRAFT_NODE__<ID>__<KEY>"
                ),
            )
        };
        if parts.iter().any(String::is_empty) {
            return Err(bad("an empty part in the name"));
        }
        let target = match parts.as_slice() {
            [node, id, key] if node == "node" => Target::Node {
                id: id
                    .parse()
                    .ok()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| bad(&format!("{id:?} is not a node id")))?,
                key: key.clone(),
            },
            [node, _] if node == "node" => return Err(bad("a node key needs the node's id")),
            [section, key] => Target::Section {
                section: section.clone(),
                key: key.clone(),
            },
            _ => return Err(bad("too many parts in the name")),
        };
        found.push(Override {
            value: typed(&value),
            var,
            target,
        });
    }
    found.sort_by(|a, b| a.var.cmp(&b.var));
    Ok(found)
}

/// `text` as a TOML number, boolean or array when it is one, else as a string.
fn typed(text: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {text}")) {
        Ok(mut t) => match t.remove("v") {
            Some(
                v @ (toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Boolean(_)
                | toml::Value::Array(_)
                | toml::Value::String(_)),
            ) => v,
            _ => toml::Value::String(text.to_owned()),
        },
        Err(_) => toml::Value::String(text.to_owned()),
    }
}

/// Writes `overrides` into the parsed file `table`.
///
/// # Errors
/// A section that is not a table in the file, or nodes that are not an array of tables.
pub fn apply(table: &mut toml::Table, overrides: &[Override]) -> Result<(), ConfigError> {
    for o in overrides {
        let not_table = |what: &str| {
            ConfigError::invalid(
                o.var.clone(),
                format!(
                    "sets {} but {what} is not a table in the file",
                    o.target.field()
                ),
            )
        };
        match &o.target {
            Target::Section { section, key } => {
                let entry = table
                    .entry(section.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                entry
                    .as_table_mut()
                    .ok_or_else(|| not_table(section))?
                    .insert(key.clone(), o.value.clone());
            }
            Target::Node { id, key } => {
                let nodes = table
                    .entry("node")
                    .or_insert_with(|| toml::Value::Array(Vec::new()))
                    .as_array_mut()
                    .ok_or_else(|| not_table("node"))?;
                let wanted = i64::try_from(*id).unwrap_or(i64::MAX);
                let position = nodes
                    .iter()
                    .position(|n| n.get("id").and_then(toml::Value::as_integer) == Some(wanted));
                let node = match position {
                    Some(i) => &mut nodes[i],
                    None => {
                        let mut t = toml::Table::new();
                        t.insert("id".into(), toml::Value::Integer(wanted));
                        nodes.push(toml::Value::Table(t));
                        let last = nodes.len() - 1;
                        &mut nodes[last]
                    }
                };
                node.as_table_mut()
                    .ok_or_else(|| not_table("node"))?
                    .insert(key.clone(), o.value.clone());
            }
        }
    }
    Ok(())
}

/// The node id: `flag` (`--node`), else `env_node_id` (`SESSIONRAFT_NODE_ID`), else the
/// ordinal ending `hostname` (`sessionraft-0` → 1).
///
/// # Errors
/// None of the three gives an id, or the variable is not a number ≥ 1; the message names all
/// three.
pub fn node_id_from(
    flag: Option<u64>,
    env_node_id: Option<&str>,
    hostname: Option<&str>,
) -> Result<u64, ConfigError> {
    if let Some(id) = flag {
        return Ok(id);
    }
    if let Some(text) = env_node_id.map(str::trim).filter(|t| !t.is_empty()) {
        return text
            .parse::<u64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| {
                ConfigError::invalid(
                    NODE_ID_ENV,
                    format!("{text:?} is not a node id (an integer, at least 1)"),
                )
            });
    }
    let hostname = hostname.map(str::trim).unwrap_or_default();
    if let Some(ordinal) = hostname
        .split('.')
        .next()
        .and_then(|h| h.rsplit_once('-'))
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u64>().ok())
        .and_then(|n| n.checked_add(1))
    {
        return Ok(ordinal);
    }
    Err(ConfigError::invalid(
        "--node",
        format!(
            "no node id: give --node ID, set {NODE_ID_ENV}, or run on a host named like \
             NAME-<ordinal> (sessionraft-0 is node 1; this host is {hostname:?})"
        ),
    ))
}

/// This machine's host name: `HOSTNAME` when set (Kubernetes sets it to the pod name), else the
/// kernel's.
pub fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn names_map_to_keys_and_values_are_typed() {
        let o = overrides(env(&[
            ("SESSIONRAFT_RAFT__HEARTBEAT_MS", "100"),
            ("SESSIONRAFT_LISTEN__IP", "0.0.0.0"),
            ("SESSIONRAFT_NODE__2__DATA_DIR", "/data"),
            ("SESSIONRAFT_RAFT__LEASE_READS", "false"),
            ("SESSIONRAFT_SESSION__COOKIE_SECRETS", r#"["a", "b"]"#),
            ("SESSIONRAFT_CONFIG", "/etc/x.toml"),
            ("SESSIONRAFT_NODE_ID", "3"),
            ("PATH", "/bin"),
        ]))
        .expect("valid");
        let got: Vec<(String, String, toml::Value)> = o
            .into_iter()
            .map(|o| (o.var, o.target.field(), o.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "SESSIONRAFT_LISTEN__IP".into(),
                    "listen.ip".into(),
                    toml::Value::String("0.0.0.0".into())
                ),
                (
                    "SESSIONRAFT_NODE__2__DATA_DIR".into(),
                    "node(id 2).data_dir".into(),
                    toml::Value::String("/data".into())
                ),
                (
                    "SESSIONRAFT_RAFT__HEARTBEAT_MS".into(),
                    "raft.heartbeat_ms".into(),
                    toml::Value::Integer(100)
                ),
                (
                    "SESSIONRAFT_RAFT__LEASE_READS".into(),
                    "raft.lease_reads".into(),
                    toml::Value::Boolean(false)
                ),
                (
                    "SESSIONRAFT_SESSION__COOKIE_SECRETS".into(),
                    "session.cookie_secrets".into(),
                    toml::Value::Array(vec![
                        toml::Value::String("a".into()),
                        toml::Value::String("b".into())
                    ])
                ),
            ]
        );
    }

    #[test]
    fn malformed_names_are_refused_by_name() {
        for var in [
            "SESSIONRAFT_NODE__X__DATA_DIR",
            "SESSIONRAFT_NODE__0__DATA_DIR",
            "SESSIONRAFT_NODE__DATA_DIR",
            "SESSIONRAFT_RAFT__",
            "SESSIONRAFT_A__B__C",
        ] {
            let e = overrides(env(&[(var, "1")])).expect_err(var).to_string();
            assert!(e.contains(var), "{var}: {e}");
        }
    }

    #[test]
    fn nodes_are_found_by_id_or_added() {
        let mut t: toml::Table =
            toml::from_str("[[node]]\nid = 1\nhttp_addr = \"a:1\"\n").expect("toml");
        let o = overrides(env(&[
            ("SESSIONRAFT_NODE__1__HTTP_ADDR", "b:2"),
            ("SESSIONRAFT_NODE__5__HTTP_ADDR", "c:3"),
        ]))
        .expect("valid");
        apply(&mut t, &o).expect("applies");
        let nodes = t["node"].as_array().expect("array");
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0]["http_addr"].as_str(), Some("b:2"));
        assert_eq!(nodes[1]["id"].as_integer(), Some(5));
        assert_eq!(nodes[1]["http_addr"].as_str(), Some("c:3"));
    }

    #[test]
    fn node_id_comes_from_flag_then_env_then_host_name() {
        assert_eq!(node_id_from(Some(4), Some("2"), Some("x-0")).ok(), Some(4));
        assert_eq!(node_id_from(None, Some("2"), Some("x-0")).ok(), Some(2));
        assert_eq!(
            node_id_from(None, None, Some("sessionraft-0")).ok(),
            Some(1)
        );
        assert_eq!(
            node_id_from(None, Some(" "), Some("sessionraft-2.sessionraft.ns.svc")).ok(),
            Some(3)
        );
        let e = node_id_from(None, Some("zero"), None)
            .expect_err("bad")
            .to_string();
        assert!(e.contains(NODE_ID_ENV), "{e}");
        for host in [None, Some("web"), Some("web-"), Some("web-x1")] {
            let e = node_id_from(None, None, host)
                .expect_err("none")
                .to_string();
            for needle in ["--node", NODE_ID_ENV, "sessionraft-0"] {
                assert!(e.contains(needle), "{host:?}: {e}");
            }
        }
    }
}

//! `[[node]]` and `[listen]`: the cluster members, their advertised addresses, where each
//! listener binds, and their data directories.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Address, ConfigError};

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

/// `[listen]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenConfig {
    /// `ip`: every listener without its own `*_listen` binds this IP at the port of its
    /// advertised address (`0.0.0.0`: every interface).
    pub ip: String,
}

/// `[listen] ip`, if given.
pub(super) fn validate_listen(
    raw: Option<RawListenConfig>,
) -> Result<Option<std::net::IpAddr>, ConfigError> {
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

pub(super) fn validate_nodes(
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

/// Parses `HOST:PORT` (an IP, `[IPv6]` or a DNS name) and rejects port 0.
pub(super) fn parse_addr(field: &str, text: &str) -> Result<Address, ConfigError> {
    Address::parse(text).map_err(|reason| ConfigError::invalid(field, reason))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;
    use crate::config::test_support::*;

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
}

//! `[load_balancer]`: the address of the load balancer in front of the cluster, if any.

use serde::Deserialize;

use super::nodes::parse_addr;
use super::{Address, ConfigError, NodeConfig};

/// `[load_balancer]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoadBalancerConfig {
    /// `addr`: `HOST:PORT` the load balancer listens on.
    pub addr: String,
    /// `resp_addr`: `HOST:PORT` of the load balancer's Redis-protocol (TCP) frontend.
    pub resp_addr: Option<String>,
}

/// `[load_balancer]`: (`addr`, `resp_addr`), neither used by a node, nor the same.
pub(super) fn validate_load_balancer(
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

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::config::test_support::*;

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
}

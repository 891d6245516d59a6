//! [`Address`]: where a node, or the load balancer, is reached — `IP:PORT`, `[IPv6]:PORT` or
//! `NAME:PORT` with a DNS name.
//!
//! A name is kept as written and resolved by whoever connects, when it connects (reqwest and
//! tokio resolve on every new connection): a peer that comes back under the same name with a new
//! IP is reached at the new one without restarting anyone. Only a listener resolves its own
//! advertised name, once, at start, and only when no listen address is configured.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// A host and a port (never 0). Equality is textual for names (`a.example` and `A.example` are
/// the same: DNS names are case-insensitive, so names are kept lower-case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    host: Host,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

/// The longest DNS name (RFC 1035, without the trailing dot).
const MAX_NAME_LEN: usize = 253;
/// The longest label of a DNS name.
const MAX_LABEL_LEN: usize = 63;

impl Address {
    /// Parses `IP:PORT`, `[IPv6]:PORT` or `NAME:PORT`. Port 0 is refused: peers must know
    /// where to reach the node.
    ///
    /// # Errors
    /// A sentence saying what is wrong, to be prefixed with the field's name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = "expected HOST:PORT such as \"127.0.0.1:7101\", \"[::1]:7101\" or \
                        \"sessionraft-1.sessionraft:7101\"";
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Self::from_socket_addr(addr).ok_or_else(port_zero(text));
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(format!("{text:?} has no port; {expected}"));
        };
        if host.contains(':') || host.starts_with('[') {
            return Err(format!("{text:?} is not a valid address; {expected}"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{text:?} has no valid port (1..=65535); {expected}"))?;
        if port == 0 {
            return Err(port_zero(text)());
        }
        check_name(host).map_err(|why| format!("{text:?}: {why}; {expected}"))?;
        Ok(Self {
            // A fully qualified name's final dot is dropped: `a.example.` is `a.example`.
            host: Host::Name(host.trim_end_matches('.').to_ascii_lowercase()),
            port,
        })
    }

    /// The address of a socket address, `None` for port 0.
    pub fn from_socket_addr(addr: SocketAddr) -> Option<Self> {
        (addr.port() != 0).then_some(Self {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The IP when the host is an IP literal, `None` for a name.
    pub fn ip(&self) -> Option<IpAddr> {
        match &self.host {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        }
    }

    /// The socket address when the host is an IP literal, `None` for a name.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip().map(|ip| SocketAddr::new(ip, self.port))
    }

    /// The host as written in a URL: the name, the IPv4 address, or `[IPv6]`.
    pub fn host(&self) -> String {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        }
    }

    /// The name when the host is a DNS name.
    pub fn name(&self) -> Option<&str> {
        match &self.host {
            Host::Name(name) => Some(name),
            Host::Ip(_) => None,
        }
    }

    /// Whether the host is a loopback IP or `localhost`.
    pub fn is_loopback(&self) -> bool {
        match &self.host {
            Host::Ip(ip) => ip.is_loopback(),
            Host::Name(name) => name == "localhost",
        }
    }

    /// Whether two addresses are on the same machine as far as the configuration can tell: the
    /// same host (IP or name), or both on loopback.
    pub fn same_host(&self, other: &Self) -> bool {
        self.host == other.host || (self.is_loopback() && other.is_loopback())
    }

    /// The same host at another port.
    pub fn with_port(&self, port: u16) -> Self {
        Self {
            host: self.host.clone(),
            port,
        }
    }

    /// Resolves the address now (blocking; the system resolver, so `/etc/hosts` counts).
    ///
    /// # Errors
    /// The name does not resolve, or resolves to nothing.
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        if let Some(addr) = self.socket_addr() {
            return Ok(vec![addr]);
        }
        let addrs: Vec<SocketAddr> = self.to_string().to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{self} resolves to no address"),
            ));
        }
        Ok(addrs)
    }
}

fn port_zero(text: &str) -> impl FnOnce() -> String + '_ {
    move || {
        format!("{text} uses port 0, but a fixed port is required so that peers can reach the node")
    }
}

/// Checks a DNS name (RFC 1123 host names): dot-separated labels of letters, digits and
/// hyphens, none starting or ending with a hyphen; a last label of digits only is an IPv4
/// address gone wrong, not a name.
fn check_name(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("the host is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the host name is longer than {MAX_NAME_LEN} characters"
        ));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{label:?} is not a valid DNS label (1-{MAX_LABEL_LEN} letters, digits and \
                 hyphens, no hyphen first or last)"
            ));
        }
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("{name:?} is neither an IP address nor a host name"));
    }
    Ok(())
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host(), self.port)
    }
}

impl std::str::FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_names_and_ipv6_parse_and_print_back() {
        for text in [
            "127.0.0.1:7101",
            "[::1]:7101",
            "sessionraft-1.sessionraft:7101",
            "localhost:1",
            "db.example.com.:65535",
        ] {
            let a = Address::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(a.to_string(), text.replace(".:", ":"), "{text}");
        }
        let a = Address::parse("Node-1.Example:80").expect("a name");
        assert_eq!(a.to_string(), "node-1.example:80");
        assert_eq!(a.name(), Some("node-1.example"));
        assert_eq!(a.ip(), None);
        let b = Address::parse("[::1]:9").expect("v6");
        assert_eq!(b.host(), "[::1]");
        assert!(b.is_loopback());
    }

    #[test]
    fn bad_addresses_say_why() {
        for (text, needle) in [
            ("127.0.0.1", "no port"),
            ("127.0.0.1:0", "port 0"),
            ("node:0", "port 0"),
            ("node:http", "no valid port"),
            ("node:70000", "no valid port"),
            (":7101", "empty"),
            ("-node:7101", "not a valid DNS label"),
            ("no_underscore:7101", "not a valid DNS label"),
            ("a..b:7101", "not a valid DNS label"),
            ("999.1.1.1:7101", "neither an IP address nor a host name"),
            ("::1:7101", "not a valid address"),
            ("[::1:7101", "not a valid address"),
        ] {
            let e = Address::parse(text).expect_err(text);
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn same_host_treats_loopback_as_one_machine() {
        let p = |t: &str| Address::parse(t).expect("valid");
        assert!(p("127.0.0.11:1").same_host(&p("127.0.0.12:2")));
        assert!(p("localhost:1").same_host(&p("127.0.0.1:2")));
        assert!(p("a.svc:1").same_host(&p("a.svc:2")));
        assert!(!p("a.svc:1").same_host(&p("b.svc:1")));
        assert!(!p("10.0.0.1:1").same_host(&p("10.0.0.2:1")));
    }

    #[test]
    fn literal_addresses_resolve_to_themselves() {
        let a = Address::parse("127.0.0.1:7101").expect("valid");
        assert_eq!(
            a.resolve().expect("no lookup"),
            vec!["127.0.0.1:7101".parse::<SocketAddr>().expect("addr")]
        );
        assert!(Address::parse("localhost:7101")
            .expect("valid")
            .resolve()
            .is_ok_and(|v| v.iter().all(|a| a.ip().is_loopback())));
        assert!(Address::parse("surely-not-a-host.invalid:1")
            .expect("valid")
            .resolve()
            .is_err());
    }
}

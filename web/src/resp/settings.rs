//! `[resp]`: the Redis-protocol door's settings (password, limits, client certificates), as
//! written and validated; read by `crate::config` with the rest of `cluster.toml`.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{
    check_length, deserialize_secret, read_secret_env, ConfigError, Secret, MIN_ADMIN_TOKEN_BYTES,
};

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

/// `[resp]`: the password (exactly one of `password`, `password_env`, or neither) and limits.
pub(crate) fn validate_resp(raw: RawRespConfig) -> Result<RespConfig, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::config::test_support::*;

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
}

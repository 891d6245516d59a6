//! One side of a copy: a Redis URL (a redis-server, or the cluster's Redis-protocol door),
//! connected with the `redis` crate, and what went wrong said in words: not a Redis server, a
//! wrong or missing password, nothing listening.

use std::time::Duration;

use anyhow::Context;
use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisError};

use crate::config::Config;

/// How long connecting (TCP, TLS, `AUTH`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one pipeline may wait for its replies (a cluster in an election answers within
/// its request deadline).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A Redis-protocol server to read from or write to.
pub struct Endpoint {
    /// `source` or `destination`, for messages.
    pub role: &'static str,
    /// The URL without its password.
    pub shown: String,
    info: ConnectionInfo,
    /// The CA (PEM) a `rediss://` server is verified by; `None`: the system's roots.
    ca: Option<Vec<u8>>,
}

impl Endpoint {
    /// `redis://[[user]:password@]host:port[/db]` or `rediss://…`. `password` is used when the
    /// URL names none (the cluster's `[resp] password`).
    ///
    /// # Errors
    /// A URL the `redis` crate does not read.
    pub fn parse(
        role: &'static str,
        url: &str,
        password: Option<String>,
        ca: Option<Vec<u8>>,
    ) -> anyhow::Result<Self> {
        let mut info = url
            .into_connection_info()
            .map_err(|e| anyhow::anyhow!("{role} {url:?} is not a Redis URL: {e}"))?;
        if info.redis.password.is_none() {
            info.redis.password = password;
        }
        let scheme = match info.addr {
            ConnectionAddr::TcpTls { .. } => "rediss",
            _ => "redis",
        };
        let db = match info.redis.db {
            0 => String::new(),
            n => format!("/{n}"),
        };
        Ok(Self {
            role,
            shown: format!("{scheme}://{}{db}", info.addr),
            info,
            ca,
        })
    }

    /// The cluster of `cfg`: its load balancer's Redis frontend (`[load_balancer] resp_addr`),
    /// else the first node with a `resp_addr`; `rediss://` with `[tls]` (verified by `ca`, else
    /// `[tls] ca`), with the `[resp]` password.
    ///
    /// # Errors
    /// No Redis-protocol address in the configuration, or an unreadable CA.
    pub fn cluster(role: &'static str, cfg: &Config, ca: Option<Vec<u8>>) -> anyhow::Result<Self> {
        let addr = cfg
            .lb_resp_addr
            .clone()
            .or_else(|| cfg.nodes.iter().find_map(|n| n.resp_addr.clone()))
            .context(
                "the configuration names no Redis-protocol address ([load_balancer] resp_addr \
                 or a node's resp_addr): pass the cluster's URL",
            )?;
        let scheme = if cfg.tls.is_some() { "rediss" } else { "redis" };
        Self::parse_for_cluster(role, &format!("{scheme}://{addr}"), cfg, ca)
    }

    /// `url`, a URL of the cluster of `cfg`: with the `[resp]` password when the URL names
    /// none, and for `rediss://` the CA `ca`, else `[tls] ca`.
    ///
    /// # Errors
    /// As [`Endpoint::parse`], or an unreadable CA.
    pub fn parse_for_cluster(
        role: &'static str,
        url: &str,
        cfg: &Config,
        ca: Option<Vec<u8>>,
    ) -> anyhow::Result<Self> {
        let password = match &cfg.resp.password {
            Some(p) => Some(
                String::from_utf8(p.expose().to_vec())
                    .context("resp.password is not UTF-8: pass it in the URL")?,
            ),
            None => None,
        };
        let ca = match (ca, &cfg.tls) {
            (Some(ca), _) => Some(ca),
            (None, Some(tls)) if url.starts_with("rediss://") => Some(tls.read_ca()?),
            (None, _) => None,
        };
        Self::parse(role, url, password, ca)
    }

    /// A connection that answered `PING` with `PONG`.
    ///
    /// # Errors
    /// In words: nothing listening, a TLS failure, a wrong or missing password, a server that
    /// does not speak the Redis protocol.
    pub async fn connect(&self) -> anyhow::Result<MultiplexedConnection> {
        let client = match &self.ca {
            Some(pem) => redis::Client::build_with_tls(
                self.info.clone(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            None => redis::Client::open(self.info.clone()),
        }
        .map_err(|e| self.explain(&e))?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let mut conn = tokio::time::timeout(
            CONNECT_TIMEOUT * 2,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "{} {}: no answer within {} s while connecting: is it a Redis server?",
                self.role,
                self.shown,
                (CONNECT_TIMEOUT * 2).as_secs()
            )
        })?
        .map_err(|e| self.explain(&e))?;
        let pong: redis::Value =
            tokio::time::timeout(CONNECT_TIMEOUT, redis::cmd("PING").query_async(&mut conn))
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "{} {}: no answer to PING within {} s: is it a Redis server?",
                        self.role,
                        self.shown,
                        CONNECT_TIMEOUT.as_secs()
                    )
                })?
                .map_err(|e| self.explain(&e))?;
        match pong {
            redis::Value::SimpleString(s) if s == "PONG" => Ok(conn),
            other => anyhow::bail!(
                "{} {}: is not a Redis server (PING answered {other:?})",
                self.role,
                self.shown
            ),
        }
    }

    /// A connection error in words, naming this side.
    pub fn explain(&self, e: &RedisError) -> anyhow::Error {
        let (role, url) = (self.role, &self.shown);
        let code = e.code().unwrap_or_default();
        let detail = e.detail().unwrap_or_default();
        if e.kind() == ErrorKind::AuthenticationFailed || code == "WRONGPASS" {
            return anyhow::anyhow!(
                "{role} {url}: wrong password: the server refused it ({e}); the password goes \
                 in the URL, redis://:PASSWORD@host:port"
            );
        }
        if code == "NOAUTH" || detail.contains("NOAUTH") {
            return anyhow::anyhow!(
                "{role} {url}: the server wants a password ({e}): put it in the URL, \
                 redis://:PASSWORD@host:port"
            );
        }
        if e.is_connection_refusal() {
            return anyhow::anyhow!("{role} {url}: cannot connect: {e}");
        }
        if let Some(why) = crate::trust::tls_failure(e) {
            return anyhow::anyhow!("{role} {url}: TLS failure: {why}");
        }
        if matches!(e.kind(), ErrorKind::ParseError)
            || (e.is_io_error() && !e.is_timeout() && !e.is_connection_dropped())
        {
            // the parser's message spans lines (one per byte it did not expect): its first one
            let e = e.to_string();
            let first = e.lines().next().unwrap_or_default();
            return anyhow::anyhow!(
                "{role} {url}: is not a Redis server: its answer is not the Redis protocol \
                 ({first})"
            );
        }
        anyhow::anyhow!("{role} {url}: {e}")
    }
}

//! Outgoing internal RPC: [`PeerClient`] (one pooled HTTP client per node) and the openraft
//! network ([`Network`] / [`PeerConnection`]).
//!
//! openraft calls `new_client` for every voter on every heartbeat round and read barrier, so a
//! connection is only a target address and a clone of the pooled client: no dialing here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{NodeId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::consensus::instruments::Instruments;
use crate::consensus::lease::LeaseClock;
use crate::transport::auth::{PeerAuth, RequestSigner};
use crate::transport::wire::{self, WireError};
use crate::version::{
    ClusterVersionCell, PeerVersions, TARGET_HEADER, VERSION_HEADER, WIRE_HEADER,
};

/// Internal RPC paths.
pub mod paths {
    pub const APPEND: &str = "/raft/append";
    pub const VOTE: &str = "/raft/vote";
    pub const SNAPSHOT: &str = "/raft/snapshot";
    pub const WRITE: &str = "/raft/write";
    pub const READ_INDEX: &str = "/raft/read-index";
    pub const ADMIN: &str = "/raft/admin";
    /// Could the asker win an election now? (`prevote.rs`; asked before it raises its term.)
    pub const PRE_VOTE: &str = "/raft/pre-vote";
    /// Every internal path, for the HTTP layer's routes.
    pub const ALL: [&str; 7] = [APPEND, VOTE, SNAPSHOT, WRITE, READ_INDEX, ADMIN, PRE_VOTE];
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nothing was sent, or the peer certainly did not act (connection refused).
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    /// Sent, but no answer in time: the peer may or may not have acted.
    #[error("peer {addr} did not answer in time")]
    Timeout { addr: String },
    /// The peer answered with an HTTP error (401, 400, 5xx).
    #[error("peer {addr} answered {status}: {body}")]
    Status {
        addr: String,
        status: u16,
        body: String,
    },
    /// The reply could not be decoded.
    #[error("peer {addr} sent an undecodable reply: {source}")]
    Wire { addr: String, source: WireError },
}

impl CallError {
    /// Whether the request may have been acted upon. A 400, 401 or 413 is refused by the
    /// receiver before the body reaches Raft (authentication, replay window, decoding, size), so
    /// it certainly did nothing: a forwarded write refused that way is retried as a clean
    /// failure, not reported as an unknown outcome.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            CallError::Unreachable { .. } => false,
            CallError::Status { status, .. } => !matches!(status, 400 | 401 | 413),
            CallError::Timeout { .. } | CallError::Wire { .. } => true,
        }
    }
}

/// A pooled, authenticating HTTP client for internal RPC. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PeerClient {
    http: reqwest::Client,
    /// Signs every request under this process's random epoch (see `auth`): clones share the
    /// sequence counter.
    signer: RequestSigner,
    timeout: Duration,
    /// `https` when peers serve TLS, else `http`.
    scheme: &'static str,
    /// What the client was built from, for [`PeerClient::with_own_pool`].
    local_ip: Option<std::net::IpAddr>,
    tls_ca: Option<Arc<[u8]>>,
    /// The releases peers named in their replies (shared by every clone).
    pub versions: Arc<PeerVersions>,
    /// The cluster version applied on this node: it decides the wire format of our requests.
    cluster_version: Arc<ClusterVersionCell>,
}

/// `builder` made to speak HTTPS (rustls) trusting only the CA certificate(s) in `ca_pem` (PEM):
/// no built-in or system roots, so only certificates of the cluster's own CA are accepted.
///
/// # Errors
/// When `ca_pem` holds a certificate that does not parse.
pub fn trust_only(
    builder: reqwest::ClientBuilder,
    ca_pem: &[u8],
) -> Result<reqwest::ClientBuilder, reqwest::Error> {
    let mut builder = builder.use_rustls_tls().tls_built_in_root_certs(false);
    for cert in reqwest::Certificate::from_pem_bundle(ca_pem)? {
        builder = builder.add_root_certificate(cert);
    }
    Ok(builder)
}

impl PeerClient {
    /// A client signing with `auth`, each call bounded by `timeout` unless told otherwise.
    /// With `local_ip`, every outgoing connection is bound to that source address (a node's
    /// own Raft IP), so peer traffic between 127.0.0.11 and 127.0.0.12 can be told apart — and
    /// cut — by address. With `tls_ca` (the PEM of the CA that signs every node's certificate),
    /// peers are called over `https://` and must present a certificate of that CA for their IP.
    ///
    /// # Errors
    /// When the TLS backend cannot initialize or `tls_ca` does not parse.
    pub fn new(
        auth: PeerAuth,
        timeout: Duration,
        local_ip: Option<std::net::IpAddr>,
        tls_ca: Option<&[u8]>,
        cluster_version: Arc<ClusterVersionCell>,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: Self::build_http(timeout, local_ip, tls_ca)?,
            signer: auth.signer(),
            timeout,
            scheme: if tls_ca.is_some() { "https" } else { "http" },
            local_ip,
            tls_ca: tls_ca.map(Arc::from),
            versions: Arc::default(),
            cluster_version,
        })
    }

    /// The wire format this node sends its requests in now (`crate::version`).
    pub fn wire(&self) -> u32 {
        self.cluster_version.wire()
    }

    fn build_http(
        timeout: Duration,
        local_ip: Option<std::net::IpAddr>,
        tls_ca: Option<&[u8]>,
    ) -> Result<reqwest::Client, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .pool_max_idle_per_host(32)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .connect_timeout(timeout)
            .local_address(local_ip);
        if let Some(ca) = tls_ca {
            builder = trust_only(builder, ca)?;
        }
        builder.build()
    }

    /// `https` when the nodes serve TLS (`[tls]`), else `http`: the scheme of every node URL.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// The same client (same signer, so one sequence space) with a connection pool of its
    /// own. A pooled connection is driven by a task on the runtime that opened it: a thread
    /// that calls peers through its own pool does its peer I/O itself, without waking another
    /// thread (the actix workers' read-index calls, `cluster.rs`).
    ///
    /// # Errors
    /// When the TLS backend cannot initialize.
    pub fn with_own_pool(&self) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: Self::build_http(self.timeout, self.local_ip, self.tls_ca.as_deref())?,
            ..self.clone()
        })
    }

    /// POST a bincode `req` to `{scheme}://{addr}{path}` in wire format 1 (the bodies every
    /// release reads) and decode the bincode reply.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        req: &Req,
        timeout: Option<Duration>,
    ) -> Result<Resp, CallError> {
        self.call_in(1, addr, path, req, timeout).await
    }

    /// [`PeerClient::call`] with a body of wire format `wire`: above 1 it is named in the
    /// request's header and covered by its MAC (`wire::signed_path`). The caller sends a
    /// format above 1 only when [`PeerClient::wire`] allows it.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn call_in<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        wire: u32,
        addr: &str,
        path: &str,
        req: &Req,
        timeout: Option<Duration>,
    ) -> Result<Resp, CallError> {
        let body = wire::encode(req).map_err(|e| CallError::Unreachable {
            addr: addr.to_string(),
            reason: format!("cannot encode request: {e}"),
        })?;
        let signed = self
            .signer
            .sign(addr, &wire::signed_path(path, wire), &body);
        let mut request = self.http.post(format!("{}://{addr}{path}", self.scheme));
        for (name, value) in signed.pairs() {
            request = request.header(name, value);
        }
        if wire > 1 {
            request = request.header(WIRE_HEADER, wire.to_string());
        }
        if path == paths::APPEND {
            request = request.header(TARGET_HEADER, self.versions.target_header());
        }
        let sent = request
            .header("content-type", "application/octet-stream")
            .timeout(timeout.unwrap_or(self.timeout))
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return Err(CallError::Unreachable {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(CallError::Timeout {
                    addr: addr.to_string(),
                })
            }
        };
        let status = resp.status();
        // Every reply of a sessionraft node counts as hearing from it: 0.1.0 names no release.
        let release = resp
            .headers()
            .get(VERSION_HEADER)
            .and_then(|v| v.to_str().ok());
        self.versions.heard(addr, release);
        let bytes = resp.bytes().await.map_err(|_| CallError::Timeout {
            addr: addr.to_string(),
        })?;
        if !status.is_success() {
            return Err(CallError::Status {
                addr: addr.to_string(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            });
        }
        wire::decode(&bytes).map_err(|source| CallError::Wire {
            addr: addr.to_string(),
            source,
        })
    }
}

impl PeerClient {
    /// GET `{scheme}://{addr}{path}` and decode a JSON reply (public, unauthenticated endpoints).
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
    ) -> Result<T, CallError> {
        let resp = self
            .http
            .get(format!("{}://{addr}{path}", self.scheme))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| CallError::Unreachable {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        resp.json::<T>().await.map_err(|e| CallError::Wire {
            addr: addr.to_string(),
            source: WireError(e.to_string()),
        })
    }
}

/// What the network records into, shared with the cluster handle that reads it: the
/// followers' acceptances of AppendEntries (lease reads) and the stage timings.
#[derive(Clone, Debug)]
pub struct Records {
    pub lease: Arc<LeaseClock>,
    pub instruments: Arc<Instruments>,
}

/// The openraft network factory.
#[derive(Clone, Debug)]
pub struct Network {
    client: PeerClient,
    records: Records,
}

impl Network {
    /// A network sending through `client`, recording the followers' acceptances of
    /// AppendEntries and the round trips of those carrying entries in `records`.
    pub fn new(client: PeerClient, records: Records) -> Self {
        Self { client, records }
    }
}

/// A "connection" to one peer: its address and a clone of the pooled client.
pub struct PeerConnection {
    client: PeerClient,
    records: Records,
    target: NodeId,
    addr: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerConnection {
            client: self.client.clone(),
            records: self.records.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

impl PeerConnection {
    async fn send<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        ttl: Option<Duration>,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        RaftError<NodeId, E>: DeserializeOwned,
    {
        let reply: Result<Resp, RaftError<NodeId, E>> = self
            .client
            .call(&self.addr, path, req, ttl)
            .await
            .map_err(|e| match e {
                CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            })?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        // openraft's hard TTL is heartbeat-sized: right for a heartbeat, too short for a batch
        // of large entries (a catch-up of Import entries of up to 1 MiB each), which would time
        // out and be resent forever. Entries get the RPC timeout instead.
        let ttl = if rpc.entries.is_empty() {
            Some(option.hard_ttl())
        } else {
            None
        };
        // Taken before sending: the follower's lease starts later than this (lease.rs).
        let sent = Instant::now();
        let reply = self.send(paths::APPEND, &rpc, ttl).await;
        if let Ok(r) = &reply {
            if !matches!(r, AppendEntriesResponse::HigherVote(_)) {
                self.records.lease.accepted(&rpc.vote, self.target, sent);
            }
            if ttl.is_none() {
                crate::consensus::instruments::since(
                    &self.records.instruments.stages.append_rpc,
                    sent,
                );
            }
        }
        reply
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.send(paths::SNAPSHOT, &rpc, Some(option.hard_ttl()))
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.send(paths::VOTE, &rpc, Some(option.hard_ttl())).await
    }
}

#[cfg(test)]
mod tests {
    use super::CallError;

    #[test]
    fn refusals_before_raft_are_not_ambiguous() {
        let status = |status| CallError::Status {
            addr: "a".into(),
            status,
            body: String::new(),
        };
        for s in [400, 401, 413] {
            assert!(!status(s).is_ambiguous(), "{s}");
        }
        for s in [500, 502, 503] {
            assert!(status(s).is_ambiguous(), "{s}");
        }
        let unreachable = CallError::Unreachable {
            addr: "a".into(),
            reason: "refused".into(),
        };
        assert!(!unreachable.is_ambiguous());
        assert!(CallError::Timeout { addr: "a".into() }.is_ambiguous());
    }
}

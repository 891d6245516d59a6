//! Incoming internal RPC, independent of the HTTP framework: what each `/raft/*` request means
//! and what it answers. openraft's append-entries, vote and snapshot, plus our forwarded
//! writes, read index, admin operations and pre-votes.
//!
//! Every request is authenticated before its body is decoded (the MAC first, then the
//! destination, the timestamp and the sender's replay window: see [`auth`](super::auth)): a
//! missing or wrong MAC is [`Answer::Unauthorized`], an undecodable body
//! [`Answer::BadRequest`]; neither touches Raft. The HTTP layer maps an [`Answer`] to a
//! status and a body and nothing else.

use std::net::SocketAddr;
use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock::now_ms;
use crate::consensus::batcher::WriteBatcher;
use crate::consensus::cluster::Cluster;
use crate::consensus::instruments::since;
use crate::transport::auth::{PeerAuth, PresentedHeaders};
use crate::transport::network::paths;
use crate::transport::wire::{
    self, AdminOp, AdminRefusal, AdminReply, Committed, ForwardedWrite, ForwardedWriteV1,
    PeerRefusal, WriteReply, WriteReplyV1,
};
use crate::version::{RELEASE, WIRE};
use crate::{NodeId, TypeConfig};

/// The headers of an internal request that say what it is: the authentication headers, the
/// wire format (`sessionraft-wire`; `None`: format 1) and, on AppendEntries, the cluster version
/// the leader announces (`sessionraft-cluster-target`). Unverified.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcHeaders<'a> {
    pub presented: PresentedHeaders<'a>,
    pub wire: Option<&'a str>,
    pub cluster_target: Option<&'a str>,
}

/// One internal request as received.
#[derive(Clone, Copy)]
struct Call<'a> {
    path: &'a str,
    /// Its body's wire format (`crate::version`).
    wire: u32,
    presented: PresentedHeaders<'a>,
    peer: Option<SocketAddr>,
    body: &'a [u8],
}

/// What an internal request gets back.
#[derive(Debug)]
pub enum Answer {
    /// The encoded reply (200).
    Reply(Vec<u8>),
    /// Refused before decoding: the MAC, destination, timestamp or sequence check failed (401;
    /// a fixed message, no header value).
    Unauthorized(&'static str),
    /// Authenticated, but the body does not decode (400).
    BadRequest(String),
    /// The reply could not be encoded (500).
    Internal(String),
    /// No such internal path (404).
    UnknownPath,
}

/// The receiving side of the peer transport: this node's cluster handle, the MAC checker and
/// the write batcher (on the leader, forwarded writes join its batches). Cheap to clone.
#[derive(Clone)]
pub struct Inbound {
    cluster: Arc<Cluster>,
    auth: PeerAuth,
    batcher: Arc<WriteBatcher>,
}

impl Inbound {
    /// The inbound side over `cluster`, checking MACs with `auth`.
    pub fn new(cluster: Arc<Cluster>, auth: PeerAuth, batcher: Arc<WriteBatcher>) -> Self {
        Self {
            cluster,
            auth,
            batcher,
        }
    }

    /// Answer one internal request to `path` (one of [`paths`]) with its `headers` and
    /// `body`; `peer` is only for the log.
    pub async fn handle(
        &self,
        path: &str,
        headers: RpcHeaders<'_>,
        peer: Option<SocketAddr>,
        body: &[u8],
    ) -> Answer {
        let RpcHeaders {
            presented,
            wire: wire_header,
            cluster_target,
        } = headers;
        let wire = match wire_header.map(str::parse::<u32>) {
            None => 1,
            Some(Ok(w)) if (1..=WIRE).contains(&w) => w,
            Some(_) => {
                let named = wire_header.unwrap_or_default();
                let named: String = named.chars().take(16).collect();
                tracing::warn!(path, peer = ?peer, wire = %named, "internal request of an unknown wire format");
                return Answer::BadRequest(format!(
                    "wire format {named:?} is not one this release ({RELEASE}) reads (1 to {WIRE})"
                ));
            }
        };
        let call = Call {
            path,
            wire,
            presented,
            peer,
            body,
        };
        match path {
            paths::APPEND => match self.open(&call) {
                // the MAC covered the stamp: it is the leader's clock when it signed
                Ok(rpc) => {
                    let stamped = presented.ts.and_then(|t| t.parse::<u64>().ok());
                    self.append(rpc, stamped, cluster_target).await
                }
                Err(a) => a,
            },
            paths::VOTE => match self.open(&call) {
                Ok(rpc) => self.vote(rpc).await,
                Err(a) => a,
            },
            paths::SNAPSHOT => match self.open(&call) {
                Ok(rpc) => reply(&self.cluster.raft.install_snapshot(rpc).await),
                Err(a) => a,
            },
            paths::WRITE if wire >= 2 => match self.open(&call) {
                Ok(fw) => reply(&self.write(fw).await),
                Err(a) => a,
            },
            // Format 1, from a 0.1.x node or a node of a cluster that has one: the bare
            // command for whichever node leads now, and the response without the index.
            paths::WRITE => match self.open::<ForwardedWriteV1>(&call) {
                Ok(cmd) => {
                    let term = self.cluster.raft.metrics().borrow().current_term;
                    let out: WriteReplyV1 = self
                        .write(ForwardedWrite { term, cmd })
                        .await
                        .map(|c| c.response);
                    reply(&out)
                }
                Err(a) => a,
            },
            paths::READ_INDEX => match self.open::<()>(&call) {
                Ok(()) => reply(&self.cluster.leader_read_index().await),
                Err(a) => a,
            },
            paths::ADMIN => match self.open(&call) {
                Ok(op) => reply(&self.admin(op).await),
                Err(a) => a,
            },
            paths::PRE_VOTE => match self.open(&call) {
                Ok(req) => reply(&crate::consensus::prevote::answer(&self.cluster, &req)),
                Err(a) => a,
            },
            _ => Answer::UnknownPath,
        }
    }

    /// Authenticate, then decode the body.
    fn open<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, Answer> {
        let Call {
            path,
            wire,
            presented,
            peer,
            body,
        } = *call;
        // Our own messages (forwarded writes, read index, admin ops) must be addressed to this
        // node once it knows its address from its membership: a copy captured on its way to
        // another node is refused here. A replay of openraft's messages is harmless (Raft's
        // term and log checks), so those are not tied to an address.
        let own_addr = match path {
            paths::WRITE | paths::READ_INDEX | paths::ADMIN => {
                let metrics = self.cluster.raft.metrics();
                let m = metrics.borrow();
                m.membership_config
                    .membership()
                    .get_node(&self.cluster.id)
                    .map(|n| n.addr.clone())
            }
            _ => None,
        };
        let checked = self.auth.check(
            &wire::signed_path(path, wire),
            body,
            presented,
            own_addr.as_deref(),
            now_ms(),
        );
        if let Err(failure) = checked {
            // No header value is logged: the reason, the path and the peer say enough.
            tracing::warn!(
                path,
                peer = ?peer,
                reason = %failure,
                refused_total = self.auth.refused_count(),
                "internal request refused"
            );
            return Err(Answer::Unauthorized(failure.message()));
        }
        wire::decode(body).map_err(|e| {
            tracing::warn!(path, error = %e, "undecodable internal request");
            Answer::BadRequest(e.to_string())
        })
    }

    async fn append(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
        stamped: Option<u64>,
        target: Option<&str>,
    ) -> Answer {
        let received_ms = now_ms();
        let received = std::time::Instant::now();
        let timed = !rpc.entries.is_empty();
        let term = rpc.vote.leader_id().get_term();
        let leader_commit = rpc.leader_commit.map_or(0, |l| l.index);
        let started = std::time::Instant::now();
        let resp = self.cluster.raft.append_entries(rpc).await;
        if timed {
            since(&self.cluster.instruments.stages.append_follower, started);
        }
        // Contact with a leader of at least our term: not a stale leader we refused.
        if resp
            .as_ref()
            .is_ok_and(|r| !matches!(r, AppendEntriesResponse::HigherVote(_)))
        {
            self.cluster.leader_contact.note();
        }
        if let Ok(AppendEntriesResponse::Success) = &resp {
            self.cluster.peers.versions.leader_sent(term, target);
        }
        if let (Ok(AppendEntriesResponse::Success), Some(ts)) = (&resp, stamped) {
            self.cluster
                .freshness
                .accepted(term, leader_commit, ts, received_ms, received);
        }
        reply(&resp)
    }

    async fn vote(&self, rpc: openraft::raft::VoteRequest<NodeId>) -> Answer {
        // Counted before the core sees it: a lease check outside the core must not trust a
        // view in which this node leads while it may be granting its vote (lease.rs).
        let guard = self
            .cluster
            .lease
            .vote_request(rpc.vote.leader_id().get_term());
        let resp = self.cluster.raft.vote(rpc).await;
        if resp.as_ref().is_ok_and(|r| !r.vote_granted) {
            guard.refused();
        }
        reply(&resp)
    }

    /// A follower's forwarded batch, addressed to the leader of `fw.term`. On the leader it joins
    /// the local batcher's next log entry, together with this node's own writes and those
    /// forwarded by the other followers (group commit across the cluster) — but only in an
    /// entry of `fw.term`, never forwarded on: a follower that gave up on this leader proposes
    /// the write elsewhere, so a request that reaches this node late (it was paused, the link
    /// stalled) must not execute a second time after the writes that followed the first. A
    /// failure after the write was proposed is reported as such, so the follower treats the
    /// outcome as ambiguous.
    async fn write(&self, fw: ForwardedWrite) -> WriteReply {
        let c = &self.cluster;
        let ForwardedWrite { term, cmd } = fw;
        let not_leader = || {
            let (leader_id, leader_addr) = match c.leader() {
                Some((id, addr)) if id != c.id => (Some(id), addr),
                _ => (None, None),
            };
            PeerRefusal::NotLeader {
                leader_id,
                leader_addr,
            }
        };
        if !c.is_leader() || c.raft.metrics().borrow().current_term != term {
            return Err(not_leader());
        }
        match self.batcher.write_forwarded(cmd, term).await {
            Ok(p) if !p.after_ambiguous_attempt => Ok(Committed {
                response: p.response,
                index: p.log_index,
            }),
            Ok(_) => Err(PeerRefusal::Failed(
                "outcome ambiguous: leadership moved while committing".into(),
            )),
            // Refused before it was proposed: certainly not applied.
            Err(e) if e.not_applied() => Err(not_leader()),
            Err(e) => Err(PeerRefusal::Failed(e.to_string())),
        }
    }

    async fn admin(&self, op: AdminOp) -> AdminReply {
        if self.cluster.is_leader() {
            self.cluster.admin_on_leader(op).await
        } else {
            Err(AdminRefusal::Unavailable(
                "not the leader; retry through the current leader".into(),
            ))
        }
    }
}

fn reply<T: Serialize>(value: &T) -> Answer {
    match wire::encode(value) {
        Ok(bytes) => Answer::Reply(bytes),
        Err(e) => Answer::Internal(e.to_string()),
    }
}

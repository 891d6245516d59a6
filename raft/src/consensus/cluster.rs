//! [`Cluster`]: this node's handle on the Raft group — proposing commands (forwarded to the
//! leader when this node is not it) and linearizable read barriers.
//!
//! Everything that talks to peers runs on the Raft runtime (`Cluster::rt`), where the pooled
//! HTTP client and its connections live — except the read-index calls of read barriers asked
//! on an actix worker, which the worker makes itself through a pool of its own
//! (`worker_barrier` below).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Command, NodeId, Raft, Response, StateMachineStore};
use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;
use tokio::sync::{mpsc, oneshot};

use crate::consensus::freshness::{Freshness, ReadConsistency, SessionReads};
use crate::consensus::lease::LeaseClock;
use crate::transport::network::{paths, PeerClient};
use crate::transport::wire::{
    Committed, ForwardedWrite, ForwardedWriteV1, PeerRefusal, ReadIndexReply, WriteReply,
    WriteReplyV1,
};
use crate::version::{ClusterVersion, Feature};

/// Why a replicated operation did not complete: one variant per cause, each saying whether
/// the operation may have been applied ([`ClusterError::not_applied`]); the web layer maps each
/// to its HTTP status and Redis-protocol reply (in `sessionraft-web`: `request_scope` and
/// `resp::commands::no_quorum`, tested variant by variant).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// No leader with a quorum answered before the deadline (an election, a lost quorum, an
    /// unreachable leader), and no attempt may have been applied. Not applied.
    #[error("no quorum within the deadline ({reason})")]
    NoQuorum { reason: String },
    /// The deadline passed after an attempt whose outcome is unknown: its leader was lost, or
    /// did not answer in time, after the write reached it. It may have been applied.
    #[error("outcome unknown: the leader was lost or slow with the write in flight ({reason})")]
    OutcomeUnknown { reason: String },
    /// A write forwarded to the leader of `term` arrived after that leadership ended: refused
    /// unproposed (its follower proposes it again elsewhere). Not applied.
    #[error("leader changed: this node does not lead term {term}")]
    LeaderChanged { term: u64 },
    /// Its request deadline passed while it waited in this node's write queue: refused, never
    /// proposed. Not applied.
    #[error("still queued after {waited_ms} ms, past the request deadline")]
    QueueTimeout { waited_ms: u64 },
    /// Refused at once, before it was queued: this node's write queue is full (writes arrive
    /// faster than the cluster commits them). Not applied; resend after a moment.
    #[error("overloaded ({0})")]
    Overloaded(String),
    /// Refused at once: it needs a feature the cluster version does not allow yet (a member
    /// runs an older release). Not applied.
    #[error("not yet ({0})")]
    NotYet(String),
    /// The node is shutting down or its storage failed.
    #[error("node failure: {0}")]
    Fatal(String),
}

impl ClusterError {
    /// Whether the operation certainly was not applied (a client may resend it anywhere).
    pub fn not_applied(&self) -> bool {
        match self {
            Self::NoQuorum { .. }
            | Self::LeaderChanged { .. }
            | Self::QueueTimeout { .. }
            | Self::Overloaded(_)
            | Self::NotYet(_) => true,
            Self::OutcomeUnknown { .. } | Self::Fatal(_) => false,
        }
    }

    /// The deadline passed: [`ClusterError::OutcomeUnknown`] when an attempt may have been
    /// applied (`ambiguous`), else [`ClusterError::NoQuorum`].
    pub fn deadline_passed(reason: String, ambiguous: bool) -> Self {
        if ambiguous {
            Self::OutcomeUnknown { reason }
        } else {
            Self::NoQuorum { reason }
        }
    }

    /// A write for the leader of `term` refused unproposed: this node does not lead in it.
    pub(crate) fn not_leader_of(term: u64) -> Self {
        Self::LeaderChanged { term }
    }
}

/// What one `client_write` on this node came to (its errors are `ClusterError`s).
pub(crate) enum LocalWrite {
    Committed(CommittedHere),
    /// Not the leader (any more): the new one, when known, with its address.
    Moved {
        new_leader: Option<(NodeId, String)>,
    },
}

/// A command committed and applied here, in `term`.
pub(crate) struct CommittedHere {
    pub(crate) term: u64,
    pub(crate) proposed: Proposed,
}

/// A proposal handed to this node's Raft core ([`Cluster::send_here`]), its outcome still to
/// come ([`Cluster::outcome_here`]).
pub(crate) struct SentHere {
    rx: oneshot::Receiver<openraft::raft::ClientWriteResult<crate::TypeConfig>>,
    started: Instant,
}

/// Timing of replicated operations.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// How long a request may wait for a quorum before it fails with 503.
    pub request: Duration,
    /// Bound of one internal RPC.
    pub rpc: Duration,
    /// How long a leader may go without an acknowledgement from a quorum before it refuses
    /// requests at once and reports itself unready (CheckQuorum): an election timeout
    /// (`election_timeout_max`); and how long a follower may go without hearing from its leader
    /// before it reports itself unready.
    pub contact: Duration,
}

/// A committed command's response.
#[derive(Debug, Clone)]
pub struct Proposed {
    /// What the state machine answered.
    pub response: Response,
    /// The index of the log entry that carried the command: once a node has applied it, the
    /// node's state includes this write (the session token's index).
    pub log_index: u64,
    /// Whether an earlier attempt of this same command may have been applied already (it was
    /// retried after a timeout): a `KeyExists` or `VersionMismatch` may then be our own doing.
    pub after_ambiguous_attempt: bool,
}

type BarrierWaiter = oneshot::Sender<Result<(), ClusterError>>;

/// How a session load was made safe to read locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPath {
    /// From this follower's own replica: fresh, and the token's index applied (no RPC).
    Local,
    /// After a read barrier (a read index from the leader, or its lease).
    Barrier,
}

/// This node's handle on the cluster. Shared (`Arc`) by every worker.
pub struct Cluster {
    pub id: NodeId,
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub peers: PeerClient,
    /// The runtime Raft and all peer I/O run on.
    pub rt: tokio::runtime::Handle,
    pub deadlines: Deadlines,
    barrier_tx: mpsc::UnboundedSender<BarrierWaiter>,
    /// Held by the membership change being executed on this node (as leader): a second one
    /// arriving meanwhile is refused rather than queued.
    pub(crate) membership_change: tokio::sync::Mutex<()>,
    /// When this node last heard from a leader (AppendEntries), for the early-election watcher.
    pub leader_contact: crate::consensus::leader_contact::LeaderContact,
    /// The followers' acceptances of this node's AppendEntries, for lease reads (shared with
    /// the openraft network, which records them).
    pub lease: Arc<LeaseClock>,
    /// Read indexes this node answered as leader: under its lease, and with a heartbeat round.
    pub read_index_by_lease: AtomicU64,
    pub read_index_by_round: AtomicU64,
    /// Session loads served from this follower's own replica (a session token, fresh).
    pub read_local: AtomicU64,
    /// Whether this follower's replica is fresh enough for token reads (recorded by the
    /// inbound transport on every accepted AppendEntries).
    pub freshness: Freshness,
    /// The read mode and the staleness bound.
    pub reads: SessionReads,
    /// The steps of a write and a read, timed (`/metrics`: `sessionraft_stage_seconds`).
    pub instruments: Arc<crate::consensus::instruments::Instruments>,
    /// Members whose Raft address does not resolve now (`peer_names::watch` keeps it).
    pub peer_names: Arc<crate::consensus::peer_names::PeerNames>,
    /// This handle, for the worker threads' barrier tasks (which must not keep it alive).
    me: std::sync::Weak<Cluster>,
}

const BACKOFF: Duration = Duration::from_millis(50);

/// How many heartbeat intervals a follower's read-index call may take before it is abandoned
/// and asked again (of the leader known by then).
const READ_INDEX_HEARTBEATS: u32 = 4;

impl Cluster {
    /// Build the handle and start the read-barrier task on `rt`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        id: NodeId,
        raft: Raft,
        sm: StateMachineStore,
        peers: PeerClient,
        rt: tokio::runtime::Handle,
        deadlines: Deadlines,
        records: crate::transport::network::Records,
        reads: SessionReads,
    ) -> Arc<Self> {
        let crate::transport::network::Records { lease, instruments } = records;
        let (barrier_tx, barrier_rx) = mpsc::unbounded_channel();
        let cluster = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            peer_names: Default::default(),
            id,
            raft,
            sm,
            peers,
            rt: rt.clone(),
            deadlines,
            barrier_tx,
            membership_change: tokio::sync::Mutex::new(()),
            leader_contact: crate::consensus::leader_contact::LeaderContact::default(),
            lease,
            read_index_by_lease: AtomicU64::new(0),
            read_index_by_round: AtomicU64::new(0),
            read_local: AtomicU64::new(0),
            freshness: reads.freshness(),
            reads,
            instruments,
        });
        rt.spawn(read_barrier_loop(Arc::downgrade(&cluster), barrier_rx));
        cluster
    }

    /// The leader this node currently knows, with its address.
    pub fn leader(&self) -> Option<(NodeId, Option<String>)> {
        self.leader_in_term().map(|(id, addr, _)| (id, addr))
    }

    /// The leader this node currently knows, with its address and the term it leads in.
    pub fn leader_in_term(&self) -> Option<(NodeId, Option<String>, u64)> {
        // Read in place: this runs on every write attempt and barrier round, and a clone of the
        // metrics copies the membership and the replication map.
        let rx = self.raft.metrics();
        let m = rx.borrow();
        let leader = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone());
        Some((leader, addr, m.current_term))
    }

    /// Whether this node believes it is the leader.
    pub fn is_leader(&self) -> bool {
        let rx = self.raft.metrics();
        let m = rx.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Whether this node can serve requests now: a leader that heard from a quorum within
    /// `deadlines.contact` (CheckQuorum), or a voter or learner that heard from its leader
    /// within it. `Err` says why not.
    ///
    /// # Errors
    /// The reason this node cannot serve now, for `/readyz` and the 503 it answers.
    pub fn can_serve(&self) -> Result<(), &'static str> {
        let rx = self.raft.metrics();
        let m = rx.borrow();
        match m.state {
            ServerState::Leader if m.current_leader == Some(self.id) => {
                let configs = m.membership_config.membership().get_joint_config();
                // Just elected: no acknowledgement yet, but a quorum's votes a moment ago.
                if !self.lease.has_acks_for(&m.vote)
                    || self.lease.quorum_within(
                        &m.vote,
                        self.id,
                        configs,
                        Instant::now(),
                        self.deadlines.contact,
                        true,
                    )
                {
                    Ok(())
                } else {
                    Err("leader cut off from a quorum")
                }
            }
            ServerState::Follower | ServerState::Learner if m.current_leader.is_some() => {
                if self.leader_contact.since() < self.deadlines.contact {
                    Ok(())
                } else {
                    Err("no contact with the leader")
                }
            }
            ServerState::Candidate => Err("election in progress"),
            _ => Err("no leader known"),
        }
    }

    /// A leader cut off from a quorum cannot commit, and a follower whose pre-vote found it cut
    /// off from a majority (and that has not heard from a leader since) cannot reach one: both
    /// refuse at once (nothing was proposed, so the request certainly was not applied) instead
    /// of holding the request for the whole deadline. `None` otherwise — a follower waiting
    /// out an election that a majority holds keeps waiting for the new leader.
    pub(crate) fn check_quorum(&self) -> Option<ClusterError> {
        if !self.is_leader() && !self.leader_contact.isolated() {
            return None;
        }
        self.can_serve().err().map(|reason| ClusterError::NoQuorum {
            reason: reason.into(),
        })
    }

    /// Replicate `cmd` and return the state machine's response: on the leader with
    /// `client_write`, elsewhere forwarded to the leader. Retries through elections until the
    /// deadline. Returns once the command is committed on a quorum and applied on the leader.
    ///
    /// # Errors
    /// [`ClusterError::NoQuorum`] when no leader with a quorum answered before the deadline.
    pub async fn propose(self: &Arc<Self>, cmd: Command) -> Result<Proposed, ClusterError> {
        let this = self.clone();
        self.rt
            .spawn(async move { this.propose_here(cmd).await })
            .await
            .map_err(|e| ClusterError::Fatal(format!("propose task failed: {e}")))?
    }

    /// Propose `cmd` here, as the leader of `term`, once — never forwarded elsewhere: for writes
    /// a follower forwarded to the leader of `term`. When this node does not lead in `term`
    /// (any more, or again in a later term) the write is refused unproposed (not ambiguous):
    /// the follower gave up on this leader and proposed the write elsewhere, and a second
    /// execution, later than the writes that followed the first one, would undo them. When
    /// leadership moves while it commits, the outcome is ambiguous: an entry of `term` can only
    /// commit through a leader that already has it, before the follower's retry.
    ///
    /// # Errors
    /// [`ClusterError::NoQuorum`] as above, or [`ClusterError::OutcomeUnknown`] when the commit did not finish by the deadline.
    pub(crate) async fn propose_in_term(
        &self,
        cmd: Command,
        term: u64,
        deadline: Instant,
    ) -> Result<Proposed, ClusterError> {
        if !self.is_leader() || self.raft.metrics().borrow().current_term != term {
            return Err(ClusterError::not_leader_of(term));
        }
        if let Some(refused) = self.check_quorum() {
            return Err(refused);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(ClusterError::NoQuorum {
                reason: "the request deadline passed before the write was proposed".into(),
            });
        }
        match self.client_write_once(cmd, remaining).await? {
            LocalWrite::Committed(p) if p.term == term => Ok(p.proposed),
            // Leadership was lost and won again between the check and the proposal: applied,
            // but perhaps after the follower's retry, which it cannot tell.
            LocalWrite::Committed(p) => Err(ClusterError::OutcomeUnknown {
                reason: format!(
                    "a write for the leader of term {term} was committed in term {}",
                    p.term
                ),
            }),
            LocalWrite::Moved { .. } => Err(ClusterError::OutcomeUnknown {
                reason: format!("leadership of term {term} ended while committing"),
            }),
        }
    }

    /// The cluster version this node may act on now: the one applied here, or — before the
    /// record reaches it — the target the leader computes from every member's release (this
    /// node's own computation when it leads, else what its leader of the current term
    /// announced in the last seconds). Every member heard from runs at least that release, so
    /// everything that needs it is readable by all of them.
    pub fn effective_cluster_version(&self) -> ClusterVersion {
        let applied = self.sm.cluster_version().get();
        let (leading, term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.current_leader == Some(self.id), m.current_term)
        };
        let target = if leading {
            self.cluster_version_target()
        } else {
            self.peers.versions.leader_target(term).flatten()
        };
        target.map_or(applied, |t| applied.max(t))
    }

    /// Whether this node knows which cluster version to act on: the one applied here is this
    /// release's own line (nothing newer to learn), or — as leader — it has heard every member
    /// or waited long enough for a silent one, or — as follower — its leader announced a
    /// version in the current term (a 0.1.x leader, announcing nothing, runs 0.1). A node that
    /// does not know is not ready: a new cluster would otherwise refuse what its first requests
    /// need until the leader's first round of heartbeats.
    pub fn cluster_version_settled(&self) -> bool {
        if self.sm.cluster_version().get() >= ClusterVersion::current() {
            return true;
        }
        let (leading, term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.current_leader == Some(self.id), m.current_term)
        };
        if leading {
            self.peers.versions.announced().is_some()
        } else {
            self.peers
                .versions
                .leader_target(term)
                .is_some_and(|said| said.is_some())
        }
    }

    /// The lowest release line among the members — this node's own, and each other member's
    /// from its replies in the last seconds (`PeerVersions`) — or `None` while a member has not
    /// been heard from: what a leader records as the cluster version.
    pub fn cluster_version_target(&self) -> Option<ClusterVersion> {
        let addrs: Vec<String> = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            m.membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != self.id)
                .map(|(_, node)| node.addr.clone())
                .collect()
        };
        let others: Vec<Option<ClusterVersion>> = addrs
            .iter()
            .map(|addr| self.peers.versions.line_of(addr))
            .collect();
        crate::version::lowest_of(ClusterVersion::current(), &others)
    }

    /// Whether this node may use `feature` now ([`Cluster::effective_cluster_version`]).
    pub fn allows(&self, feature: Feature) -> bool {
        self.sm.cluster_version().allows(feature)
            || self.effective_cluster_version().allows(feature)
    }

    /// `cmd` refused (unproposed, not ambiguous) when it needs a feature the cluster version
    /// has not switched on: a member of an older release could not decode it.
    pub fn refuse_unsupported(&self, cmd: &Command) -> Option<ClusterError> {
        let feature = cmd.required_feature()?;
        if self.allows(feature) {
            return None;
        }
        let version = self.effective_cluster_version();
        Some(ClusterError::NotYet(format!(
            "the {} needs cluster version {} and the cluster runs {version} (a member runs an older release, or the leader has not heard from every member yet)",
            feature.name(),
            feature.since(),
        )))
    }

    /// One `client_write` of `cmd` on this node, bounded by `timeout` (then ambiguous).
    async fn client_write_once(
        &self,
        cmd: Command,
        timeout: Duration,
    ) -> Result<LocalWrite, ClusterError> {
        let sent = self.send_here(cmd).await?;
        self.outcome_here(sent, timeout).await
    }

    /// Hand `cmd` to this node's Raft core without waiting for its commit
    /// (`client_write_ff`): the core takes proposals in the order they are sent, so the entry
    /// follows, in the log, every proposal sent before it — if this node leads when the core
    /// reads it; else [`Cluster::outcome_here`] answers [`LocalWrite::Moved`].
    ///
    /// # Errors
    /// A command the cluster version does not allow yet; the core has stopped.
    pub(crate) async fn send_here(&self, cmd: Command) -> Result<SentHere, ClusterError> {
        if let Some(refused) = self.refuse_unsupported(&cmd) {
            return Err(refused);
        }
        let started = Instant::now();
        let rx = self
            .raft
            .client_write_ff(cmd)
            .await
            .map_err(|e| ClusterError::Fatal(e.to_string()))?;
        Ok(SentHere { rx, started })
    }

    /// What a proposal [`Cluster::send_here`] sent came to, waiting at most `timeout` for its
    /// commit and apply (then ambiguous).
    pub(crate) async fn outcome_here(
        &self,
        sent: SentHere,
        timeout: Duration,
    ) -> Result<LocalWrite, ClusterError> {
        match tokio::time::timeout(timeout, sent.rx).await {
            Ok(Ok(Ok(resp))) => {
                crate::consensus::instruments::since(&self.instruments.stages.commit, sent.started);
                Ok(LocalWrite::Committed(CommittedHere {
                    term: resp.log_id.leader_id.term,
                    proposed: Proposed {
                        response: resp.data,
                        log_index: resp.log_id.index,
                        after_ambiguous_attempt: false,
                    },
                }))
            }
            // Refused by a core that did not lead, or its entry truncated by a new leader's:
            // not applied.
            Ok(Ok(Err(ClientWriteError::ForwardToLeader(f)))) => Ok(LocalWrite::Moved {
                new_leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
            }),
            Ok(Ok(Err(ClientWriteError::ChangeMembershipError(e)))) => {
                Err(ClusterError::Fatal(e.to_string()))
            }
            // The core stopped (the node is shutting down, or failed) with the entry perhaps
            // appended.
            Ok(Err(_)) => Err(ClusterError::OutcomeUnknown {
                reason: "the Raft core stopped with the write in flight".into(),
            }),
            Err(_) => Err(ClusterError::OutcomeUnknown {
                reason: "the leader could not commit in time".into(),
            }),
        }
    }

    /// [`Cluster::propose`] on the current task, which must run on the Raft runtime.
    pub(crate) async fn propose_here(&self, cmd: Command) -> Result<Proposed, ClusterError> {
        self.propose_until(cmd, Instant::now() + self.deadlines.request)
            .await
    }

    /// [`Cluster::propose_here`] bounded by `deadline` (the batcher passes the earliest
    /// deadline of the writes in a batch: a write is never proposed after its client was told
    /// it failed).
    pub(crate) async fn propose_until(
        &self,
        cmd: Command,
        deadline: Instant,
    ) -> Result<Proposed, ClusterError> {
        let mut ambiguous = false;
        let mut last_reason = String::from("no leader known");
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClusterError::deadline_passed(last_reason, ambiguous));
            }
            if let Some(refused) = self.check_quorum() {
                return Err(match refused {
                    ClusterError::NoQuorum { reason } => {
                        ClusterError::deadline_passed(reason, ambiguous)
                    }
                    other => other,
                });
            }
            let target = match self.leader_in_term() {
                Some((leader, _, _)) if leader == self.id => {
                    match self.client_write_once(cmd.clone(), remaining).await? {
                        LocalWrite::Committed(p) => {
                            return Ok(Proposed {
                                after_ambiguous_attempt: ambiguous,
                                ..p.proposed
                            })
                        }
                        LocalWrite::Moved { new_leader } => {
                            last_reason = "leadership moved".into();
                            let term = self.raft.metrics().borrow().current_term;
                            new_leader.map(|(id, addr)| (id, addr, term))
                        }
                    }
                }
                Some((leader, addr, term)) => addr.map(|a| (leader, a, term)),
                None => None,
            };
            // No leader known, or one not heard from within an election timeout (paused, cut
            // off, dead): a write sent there would only hang. Wait for the election (or for the
            // pre-vote to declare this node cut off: check_quorum above then refuses).
            let target = target.filter(|_| self.leader_contact.since() < self.deadlines.contact);
            let Some((leader, addr, term)) = target else {
                tokio::time::sleep(BACKOFF.min(remaining)).await;
                continue;
            };
            let timeout = remaining.min(self.deadlines.request);
            let started = Instant::now();
            // Abandoned as soon as this node follows another leader (or an election began:
            // the old one can no longer commit it in its term) or finds itself cut off:
            // waiting for the answer would hold the request for the whole deadline. Whether the old leader appended it
            // is unknown, so the outcome is ambiguous from here on (the retry below proposes
            // the same command to the new leader; session_store resolves a conflict it meets).
            let call = async {
                if self.peers.wire() >= 2 {
                    let forwarded = ForwardedWrite {
                        term,
                        cmd: cmd.clone(),
                    };
                    self.peers
                        .call_in::<ForwardedWrite, WriteReply>(
                            2,
                            &addr,
                            paths::WRITE,
                            &forwarded,
                            Some(timeout),
                        )
                        .await
                } else {
                    // A cluster with a 0.1.x member: the bare command, which every release
                    // reads, for whichever node leads; the reply has no index (no token is
                    // issued at this cluster version).
                    self.peers
                        .call::<ForwardedWriteV1, WriteReplyV1>(
                            &addr,
                            paths::WRITE,
                            &cmd,
                            Some(timeout),
                        )
                        .await
                        .map(|r| r.map(|response| Committed { response, index: 0 }))
                }
            };
            let outcome = tokio::select! {
                r = call => r,
                () = self.forward_hopeless(leader) => {
                    ambiguous = true;
                    last_reason = format!("leader {leader} was replaced or cut off while it held the write");
                    continue;
                }
            };
            match outcome {
                Ok(Ok(resp)) => {
                    crate::consensus::instruments::since(&self.instruments.stages.forward, started);
                    return Ok(Proposed {
                        response: resp.response,
                        log_index: resp.index,
                        after_ambiguous_attempt: ambiguous,
                    });
                }
                Ok(Err(PeerRefusal::NotLeader { .. })) => {
                    last_reason = format!("{addr} is no longer the leader");
                }
                Ok(Err(PeerRefusal::Failed(reason))) => {
                    ambiguous = true;
                    last_reason = reason;
                }
                Err(e) => {
                    ambiguous |= e.is_ambiguous();
                    last_reason = e.to_string();
                }
            }
            tokio::time::sleep(BACKOFF.min(deadline.saturating_duration_since(Instant::now())))
                .await;
        }
    }

    /// Wait until a local read is linearizable: this node has applied everything the leader had
    /// committed when the barrier started (confirmed by the leader with a quorum). Concurrent
    /// callers share one barrier round; a caller only joins a round that starts after it asked.
    ///
    /// # Errors
    /// [`ClusterError::NoQuorum`] when no leader with a quorum answered before the deadline.
    pub async fn read_barrier(&self) -> Result<(), ClusterError> {
        let started = Instant::now();
        let done = self.read_barrier_untimed().await;
        if done.is_ok() {
            crate::consensus::instruments::since(&self.instruments.stages.read_barrier, started);
        }
        done
    }

    /// Make a session load safe to read locally. With a session token (`token`: the index of
    /// the entry that carried the session's latest write, from its cookie) in `session` mode,
    /// a follower that is fresh ([`Freshness`]) and has applied the token's index — waiting up
    /// to two heartbeats for it — reads its own replica without any RPC. Otherwise (no token,
    /// `linearizable` mode, the leader, a node not fresh, a token index not reached in time)
    /// this is [`Cluster::read_barrier`]: linearizable, or 503 without a quorum.
    ///
    /// # Errors
    /// [`ClusterError::NoQuorum`] when the fallback barrier finds no quorum in time.
    pub async fn session_read(&self, token: Option<u64>) -> Result<ReadPath, ClusterError> {
        if let (Some(index), ReadConsistency::Session) = (token, self.reads.consistency) {
            if !self.is_leader() && self.local_read_allowed(index).await {
                self.read_local.fetch_add(1, Ordering::Relaxed);
                return Ok(ReadPath::Local);
            }
        }
        self.read_barrier().await.map(|()| ReadPath::Barrier)
    }

    /// This node's current term and applied index.
    fn term_and_applied(&self) -> (u64, u64) {
        let rx = self.raft.metrics();
        let m = rx.borrow();
        (m.current_term, m.last_applied.map_or(0, |l| l.index))
    }

    /// Whether this node is fresh now and has applied `token` (waiting for it at most two
    /// heartbeats: a token's entry is normally applied within one).
    async fn local_read_allowed(&self, token: u64) -> bool {
        let (term, applied) = self.term_and_applied();
        if !self.is_fresh(term, applied) {
            return false;
        }
        if applied >= token {
            return true;
        }
        let waited = self
            .raft
            .wait(Some(self.reads.heartbeat * 2))
            .applied_index_at_least(Some(token), "session token")
            .await;
        if waited.is_err() {
            return false;
        }
        let (term, applied) = self.term_and_applied();
        applied >= token && self.is_fresh(term, applied)
    }

    fn is_fresh(&self, term: u64, applied: u64) -> bool {
        self.reads.unsafe_skip_freshness || self.freshness.is_fresh(term, applied)
    }

    async fn read_barrier_untimed(&self) -> Result<(), ClusterError> {
        // The leader under its lease needs neither a round nor the barrier task: it checks the
        // lease itself, from the caller's thread (no peer I/O).
        if self.lease.enabled() && self.is_leader() {
            if let Some(index) = self.lease_read_index().await {
                self.read_index_by_lease.fetch_add(1, Ordering::Relaxed);
                return self.wait_applied(index, self.deadlines.request).await;
            }
        }
        // Asked only once the lease did not hold (a held lease implies a quorum's recent
        // acknowledgements): a leader cut off from the quorum refuses here, at once.
        if let Some(refused) = self.check_quorum() {
            return Err(refused);
        }
        let (tx, rx) = oneshot::channel();
        if let Err(tx) = worker_barrier::enqueue(self, tx) {
            // Not on an actix thread (or no pool of its own): the barrier task on the Raft
            // runtime.
            self.barrier_tx
                .send(tx)
                .map_err(|_| ClusterError::Fatal("read barrier stopped".into()))?;
        }
        rx.await
            .map_err(|_| ClusterError::Fatal("read barrier stopped".into()))?
    }

    /// How far this node's applied index is behind the leader's read index, asked of the leader
    /// (one RPC, bounded by `timeout`). `None` when no leader answered. For the readiness of a
    /// node that is not a voter (a learner catching up knows nothing of the leader's log).
    pub async fn lag_behind_leader(self: &Arc<Self>, timeout: Duration) -> Option<u64> {
        let this = self.clone();
        self.rt
            .spawn(async move {
                let (_, addr) = this.leader()?;
                let index = this
                    .peers
                    .call::<(), ReadIndexReply>(&addr?, paths::READ_INDEX, &(), Some(timeout))
                    .await
                    .ok()?
                    .ok()?;
                let applied = this
                    .raft
                    .metrics()
                    .borrow()
                    .last_applied
                    .map_or(0, |l| l.index);
                Some(index.saturating_sub(applied))
            })
            .await
            .ok()
            .flatten()
    }

    /// The leader side of a read index: confirm leadership — under the lease when it holds
    /// (`Cluster::lease_read_index`), else with a heartbeat round to a quorum — and return the
    /// index a reader must have applied.
    ///
    /// # Errors
    /// [`PeerRefusal::NotLeader`] when this node is not the leader.
    pub async fn leader_read_index(&self) -> ReadIndexReply {
        if let Some(refused) = self.check_quorum() {
            return Err(PeerRefusal::Failed(refused.to_string()));
        }
        if let Some(index) = self.lease_read_index().await {
            self.read_index_by_lease.fetch_add(1, Ordering::Relaxed);
            return Ok(index);
        }
        self.read_index_by_round.fetch_add(1, Ordering::Relaxed);
        match self.raft.get_read_log_id().await {
            Ok((read, applied)) => {
                let read = read.map_or(0, |l| l.index);
                let applied = applied.map_or(0, |l| l.index);
                Ok(read.max(applied))
            }
            Err(RaftError::APIError(e)) => {
                let (leader_id, leader_addr) = match self.leader() {
                    Some((id, addr)) if id != self.id => (Some(id), addr),
                    _ => (None, None),
                };
                tracing::debug!(error = %e, "read index refused");
                Err(PeerRefusal::NotLeader {
                    leader_id,
                    leader_addr,
                })
            }
            Err(RaftError::Fatal(e)) => Err(PeerRefusal::Failed(e.to_string())),
        }
    }

    /// Resolves once this node no longer takes `leader` for the leader (another leader is
    /// known, or an election is under way), or its pre-vote found it cut off from a majority;
    /// never while neither holds.
    pub(crate) async fn forward_hopeless(&self, leader: NodeId) {
        let mut rx = self.raft.metrics();
        loop {
            if rx.borrow_and_update().current_leader != Some(leader)
                || self.leader_contact.isolated()
            {
                return;
            }
            // the metrics change with the leader; isolation is polled
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        // Raft stopped: nothing will change; let the call itself finish.
                        std::future::pending::<()>().await;
                    }
                }
                () = tokio::time::sleep(BACKOFF) => {}
            }
        }
    }

    /// Wait until this node has applied `index`, within the request deadline: a node that
    /// proposed through the leader reads its own write in its replica after this.
    ///
    /// # Errors
    /// [`ClusterError::NoQuorum`] when the index was not applied in time.
    pub async fn applied_at_least(&self, index: u64) -> Result<(), ClusterError> {
        self.wait_applied(index, self.deadlines.request).await
    }

    /// Wait until this node has applied `index` (at once when it has).
    async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), ClusterError> {
        let applied = self
            .raft
            .metrics()
            .borrow()
            .last_applied
            .map_or(0, |l| l.index);
        if applied >= index {
            return Ok(());
        }
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::NoQuorum {
                reason: format!("catching up to the read index: {e}"),
            })
    }

    /// The read index without a heartbeat round: first outside the Raft core
    /// ([`Cluster::lease_read_index_outside_core`]), else this node's commit index, when —
    /// checked inside the Raft core, in this order — it is the leader of a committed vote, has committed
    /// an entry of its own term (so nothing an earlier leader committed is missing), and then
    /// still holds the lease (no other leader can exist yet: lease.rs). `None` otherwise; the
    /// caller falls back to the heartbeat round.
    async fn lease_read_index(&self) -> Option<u64> {
        if !self.lease.enabled() {
            return None;
        }
        if let Some(index) = self.lease_read_index_outside_core() {
            return Some(index);
        }
        let (lease, me) = (self.lease.clone(), self.id);
        self.raft
            .with_raft_state(move |st| {
                let vote = st.vote_ref();
                if st.server_state != ServerState::Leader
                    || !vote.is_committed()
                    || vote.leader_id().voted_for() != Some(me)
                {
                    return None;
                }
                let committed = st.committed.as_ref()?;
                if committed.leader_id.term != vote.leader_id().get_term() {
                    return None;
                }
                let configs = st
                    .membership_state
                    .effective()
                    .membership()
                    .get_joint_config();
                lease
                    .holds(vote, me, configs, Instant::now())
                    .then_some(committed.index)
            })
            .await
            .ok()
            .flatten()
    }

    /// [`Cluster::lease_read_index`] without a message to the Raft core (which is busy with
    /// appends: the message cost reads ~30% of their throughput), from views that may be
    /// stale — openraft's metrics and our state machine — made safe by what can change them:
    /// - another leader needs a majority's votes: the voters of the lease quorum other than
    ///   this node refuse until their leases end, so it needs this node's vote, and a vote
    ///   request in flight or granted (in this term or later) closes this path
    ///   ([`LeaseClock::outside_core_allowed`]: whatever the view says, a grant that finished
    ///   before the counters are read is visible in them, and one after cannot yet have made
    ///   a leader);
    /// - voters only change through this node's admin operations, which close this path while
    ///   they run; the metrics' membership must also be the applied one;
    /// - the index is the state machine's applied index, taken after the checks: every write
    ///   acknowledged so far was applied here first (the leader answers after applying), and
    ///   an applied entry of this term means every earlier leader's entries are applied too.
    ///
    /// `None` (the caller asks the core) whenever one of these does not hold.
    fn lease_read_index_outside_core(&self) -> Option<u64> {
        let rx = self.raft.metrics();
        let m = rx.borrow();
        let term = m.vote.leader_id().get_term();
        if !self.lease.outside_core_allowed(term)
            || m.state != ServerState::Leader
            || !m.vote.is_committed()
            || m.vote.leader_id().voted_for() != Some(self.id)
        {
            return None;
        }
        let (applied, membership) = self.sm.applied_log_ids().ok()?;
        let applied = applied?;
        if applied.leader_id.term != term
            || membership.as_ref() != m.membership_config.log_id().as_ref()
        {
            return None;
        }
        let configs = m.membership_config.membership().get_joint_config();
        self.lease
            .holds(&m.vote, self.id, configs, Instant::now())
            .then_some(applied.index)
    }

    /// One barrier round through `peers`, retried through elections until the deadline.
    async fn barrier_round(&self, peers: &PeerClient) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.deadlines.request;
        let mut last_reason = String::from("no leader known");
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClusterError::NoQuorum {
                    reason: last_reason,
                });
            }
            let index = match self.leader() {
                Some((leader, _)) if leader == self.id => {
                    match tokio::time::timeout(remaining, self.leader_read_index()).await {
                        Ok(Ok(i)) => Some(i),
                        Ok(Err(r)) => {
                            last_reason = format!("{r:?}");
                            None
                        }
                        Err(_) => {
                            last_reason = "the leader could not confirm a quorum in time".into();
                            None
                        }
                    }
                }
                Some((_, Some(addr))) => {
                    let started = Instant::now();
                    // A few heartbeats, not the RPC timeout: a leader that does not answer a
                    // read index that fast is slow, cut off or gone; the next attempt asks
                    // whoever leads by then (a read index is safe to ask again).
                    let rpc_timeout = remaining.min(self.reads.heartbeat * READ_INDEX_HEARTBEATS);
                    match peers
                        .call::<(), ReadIndexReply>(
                            &addr,
                            paths::READ_INDEX,
                            &(),
                            Some(rpc_timeout),
                        )
                        .await
                    {
                        Ok(Ok(i)) => {
                            crate::consensus::instruments::since(
                                &self.instruments.stages.read_index_rpc,
                                started,
                            );
                            Some(i)
                        }
                        Ok(Err(r)) => {
                            last_reason = format!("{addr}: {r:?}");
                            None
                        }
                        Err(e) => {
                            last_reason = e.to_string();
                            None
                        }
                    }
                }
                _ => None,
            };
            if let Some(index) = index {
                return self
                    .wait_applied(index, deadline.saturating_duration_since(Instant::now()))
                    .await;
            }
            tokio::time::sleep(BACKOFF.min(deadline.saturating_duration_since(Instant::now())))
                .await;
        }
    }
}

/// Serve read barriers: take every waiter queued so far, run one round for all of them. Waiters
/// arriving during a round stay queued for the next round, which starts after they arrived —
/// that is what makes sharing a round linearizable.
async fn read_barrier_loop(
    cluster: std::sync::Weak<Cluster>,
    mut rx: mpsc::UnboundedReceiver<BarrierWaiter>,
) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let Some(c) = cluster.upgrade() else {
            return;
        };
        let result = c.barrier_round(&c.peers).await;
        drop(c);
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

/// Read barriers of the actix worker threads, run on the worker itself. A follower's round is
/// a read-index RPC to the leader; from the barrier task on the Raft runtime it costs two
/// cross-thread wakeups per round (the worker hands the waiter over, the task hands the result
/// back), as many as the RPC itself on this machine. Each worker thread instead keeps its own
/// queue, a local task that runs its rounds, and its own connection pool to the peers
/// ([`PeerClient::with_own_pool`]), so a round never leaves the thread. Rounds are shared by
/// the waiters of one worker exactly as the barrier task shares them: a waiter only joins a
/// round that starts after it was queued.
mod worker_barrier {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use std::rc::Rc;
    use std::sync::Weak;

    use super::{BarrierWaiter, Cluster, PeerClient};

    /// One worker thread's barrier for one cluster handle. Without `peers` (the pool could
    /// not be built: logged once) this thread uses the barrier task.
    struct Local {
        cluster: Weak<Cluster>,
        peers: Option<PeerClient>,
        queue: RefCell<Vec<BarrierWaiter>>,
        running: Cell<bool>,
    }

    thread_local! {
        /// Keyed by the handle's address; an entry whose handle is gone is replaced.
        static LOCAL: RefCell<HashMap<usize, Rc<Local>>> = RefCell::new(HashMap::new());
    }

    /// Queue `waiter` on this thread's barrier and start its task if none runs. The waiter
    /// comes back when this is not an actix thread or no pool could be built: the caller then
    /// uses the barrier task.
    pub(super) fn enqueue(cluster: &Cluster, waiter: BarrierWaiter) -> Result<(), BarrierWaiter> {
        if actix_rt::Arbiter::try_current().is_none() {
            return Err(waiter);
        }
        let local = local_for(cluster);
        if local.peers.is_none() {
            return Err(waiter);
        }
        local.queue.borrow_mut().push(waiter);
        if !local.running.replace(true) {
            actix_rt::spawn(run(local));
        }
        Ok(())
    }

    fn local_for(cluster: &Cluster) -> Rc<Local> {
        let key = std::ptr::from_ref(cluster) as usize;
        LOCAL.with(|map| {
            let mut map = map.borrow_mut();
            if let Some(l) = map.get(&key) {
                if l.cluster.strong_count() > 0 {
                    return l.clone();
                }
            }
            let peers = cluster
                .peers
                .with_own_pool()
                .map_err(|e| {
                    tracing::warn!(error = %e, "cannot build a worker's peer pool; its read barriers use the Raft runtime");
                })
                .ok();
            let l = Rc::new(Local {
                cluster: cluster.me.clone(),
                peers,
                queue: RefCell::new(Vec::new()),
                running: Cell::new(false),
            });
            map.retain(|_, l| l.cluster.strong_count() > 0);
            map.insert(key, l.clone());
            l
        })
    }

    /// Run rounds until the queue is empty: each round serves the waiters queued before it.
    async fn run(local: Rc<Local>) {
        loop {
            let waiters = std::mem::take(&mut *local.queue.borrow_mut());
            let (Some(cluster), Some(peers)) = (
                local.cluster.upgrade().filter(|_| !waiters.is_empty()),
                local.peers.as_ref(),
            ) else {
                local.running.set(false);
                return;
            };
            let result = cluster.barrier_round(peers).await;
            drop(cluster);
            for w in waiters {
                let _ = w.send(result.clone());
            }
        }
    }
}

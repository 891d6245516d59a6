//! The cluster version's driver (an actor, [`VersionDriver`]): on the leader, every [`TICK`], the lowest release line among
//! the members (this node's own, and each other member's from its replies in the last
//! [`HEARD_WITHIN`](crate::version::HEARD_WITHIN)) is compared with the cluster version
//! applied here; when every member is known and the lowest is higher, the leader proposes
//! [`Command::SetClusterVersion`]. A member not heard from holds it back; it never goes down.
//!
//! Voters and learners both count: a learner serves requests too, and will be a voter.

use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::consensus::actors::{Step, StepFuture};
use crate::consensus::cluster::Cluster;
use crate::version::ClusterVersion;
use crate::Command;

/// How often the leader looks (and refreshes the target it announces in AppendEntries).
pub const TICK: Duration = Duration::from_millis(100);

/// How long a new leader waits to hear from every member before it settles on the applied
/// version (its followers and itself are not ready meanwhile, unless the applied version is
/// already this release's: then there is nothing to wait for).
pub const SETTLE_WITHIN: Duration = Duration::from_secs(1);

/// What the leader knows of one member's release.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberRelease {
    pub id: u64,
    /// The release it named in its last reply (this node's own for itself); `None` when not
    /// heard from within the window (or when this node does not lead: only the leader calls
    /// every member).
    pub release: Option<String>,
}

/// The releases of every member as this node knows them, in id order.
pub fn member_releases(c: &Cluster) -> Vec<MemberRelease> {
    let metrics = c.raft.metrics().borrow().clone();
    let leading = metrics.current_leader == Some(c.id);
    metrics
        .membership_config
        .membership()
        .nodes()
        .map(|(id, node)| MemberRelease {
            id: *id,
            release: if *id == c.id {
                Some(crate::version::RELEASE.to_owned())
            } else if leading {
                c.peers.versions.release_of(&node.addr)
            } else {
                None
            },
        })
        .collect()
}

/// What the cluster version should be now, as the leader sees it: `None` while a member has
/// not been heard from ([`Cluster::cluster_version_target`]).
pub fn target(c: &Cluster) -> Option<ClusterVersion> {
    c.cluster_version_target()
}

/// Drives the cluster version while this node leads, every [`TICK`]; its steps end when the
/// cluster handle is dropped.
pub struct VersionDriver {
    pub cluster: Weak<Cluster>,
    /// The term this node leads in and since when (`None` while it does not lead).
    leading_since: Option<(u64, Instant)>,
}

impl VersionDriver {
    pub fn new(cluster: Weak<Cluster>) -> Self {
        Self {
            cluster,
            leading_since: None,
        }
    }
}

impl Step for VersionDriver {
    const NAME: &'static str = "cluster_version";

    fn pause(&self) -> Duration {
        TICK
    }

    fn step(mut self) -> StepFuture<Self> {
        Box::pin(async move {
            let c = self.cluster.upgrade()?;
            self.leading_since = drive(&c, self.leading_since).await;
            Some(self)
        })
    }
}

/// One look at the cluster version (see the module's doc); the term this node leads in and
/// since when, for the next look.
async fn drive(c: &Cluster, leading_since: Option<(u64, Instant)>) -> Option<(u64, Instant)> {
    let term = c.raft.metrics().borrow().current_term;
    if !c.is_leader() {
        c.peers.versions.announce(None);
        return None;
    }
    let since = match leading_since {
        Some((t, at)) if t == term => at,
        _ => Instant::now(),
    };
    let leading_since = Some((term, since));
    let applied = c.sm.cluster_version().get();
    let target = target(c);
    // A member silent since this node took over holds the version where it is; after a
    // moment the leader stops waiting for it and settles on the applied version.
    let settled = target.or_else(|| (since.elapsed() > SETTLE_WITHIN).then_some(applied));
    c.peers.versions.announce(settled.map(|t| t.max(applied)));
    let Some(target) = target else {
        return leading_since;
    };
    if target <= applied {
        return leading_since;
    }
    tracing::info!(from = %applied, to = %target, "every member runs {target} or newer: raising the cluster version");
    match c.propose_here(Command::SetClusterVersion(target)).await {
        Ok(p) => {
            tracing::info!(cluster_version = %target, index = p.log_index, "cluster version recorded")
        }
        Err(e) => tracing::warn!(error = %e, "cluster version not recorded yet"),
    }
    leading_since
}

//! Whether the members' Raft addresses resolve: an actor ([`NameChecker`]) that looks every member's name up
//! every [`CHECK_EVERY`] (backing off to [`MAX_BACKOFF`] for a name that keeps failing) and
//! keeps the failures for `/cluster/status` and the dashboard.
//!
//! Peer calls resolve names themselves on every new connection (reqwest, tokio): this task
//! only *reports*. A name that does not resolve is never fatal: openraft keeps retrying the
//! peer, and the report says why it is unreachable.

use std::collections::BTreeMap;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::consensus::actors::{Step, StepFuture};
use crate::NodeId;

/// How often every member's address is looked up.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// The longest wait before a failing name is looked up again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A lookup that takes longer counts as failed.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// A member whose Raft address does not resolve now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unresolved {
    /// The member.
    pub id: NodeId,
    /// Its Raft address as configured.
    pub addr: String,
    /// The resolver's answer.
    pub error: String,
}

/// The failing names, and when each is due for another lookup.
#[derive(Debug, Default)]
pub struct PeerNames {
    failing: Mutex<BTreeMap<NodeId, (Unresolved, Instant, Duration)>>,
}

impl PeerNames {
    /// The members whose address did not resolve at the last lookup, by id.
    pub fn unresolved(&self) -> Vec<Unresolved> {
        let failing = match self.failing.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        failing.values().map(|(u, _, _)| u.clone()).collect()
    }

    fn record(&self, id: NodeId, addr: &str, result: Result<(), String>, now: Instant) {
        let mut failing = match self.failing.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        match result {
            Ok(()) => {
                if failing.remove(&id).is_some() {
                    tracing::info!(peer = id, addr, "peer address resolves again");
                }
            }
            Err(error) => {
                let backoff = failing
                    .get(&id)
                    .map_or(CHECK_EVERY, |(_, _, b)| (*b * 2).min(MAX_BACKOFF));
                if !failing.contains_key(&id) {
                    tracing::warn!(peer = id, addr, %error, "peer address does not resolve");
                }
                let u = Unresolved {
                    id,
                    addr: addr.to_owned(),
                    error,
                };
                failing.insert(id, (u, now + backoff, backoff));
            }
        }
    }

    /// Whether member `id` is due for a lookup at `now` (a failing name waits its backoff).
    fn due(&self, id: NodeId, addr: &str, now: Instant) -> bool {
        let mut failing = match self.failing.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        match failing.get(&id) {
            // Its address changed (a membership change): look the new one up now.
            Some((u, _, _)) if u.addr != addr => {
                failing.remove(&id);
                true
            }
            Some((_, next, _)) => now >= *next,
            None => true,
        }
    }

    /// Forgets members no longer in the membership.
    fn retain(&self, members: &BTreeMap<NodeId, String>) {
        let mut failing = match self.failing.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        failing.retain(|id, _| members.contains_key(id));
    }
}

/// Looks up `addr` (`host:port`) now.
async fn lookup(addr: &str) -> Result<(), String> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(addr)).await {
        Ok(Ok(mut addrs)) => addrs
            .next()
            .map(|_| ())
            .ok_or_else(|| "resolves to no address".to_owned()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {LOOKUP_TIMEOUT:?}")),
    }
}

/// Every [`CHECK_EVERY`], looks up each member's Raft address but `me`'s (those due) and
/// records the outcome in `names`. Its steps end when `names` is dropped or Raft stops
/// publishing metrics.
pub struct NameChecker {
    pub names: Weak<PeerNames>,
    pub metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, openraft::BasicNode>>,
    pub me: NodeId,
}

impl Step for NameChecker {
    const NAME: &'static str = "peer_names";

    fn pause(&self) -> Duration {
        CHECK_EVERY
    }

    fn step(self) -> StepFuture<Self> {
        Box::pin(async move {
            let names = self.names.upgrade()?;
            if self.metrics.has_changed().is_err() {
                return None;
            }
            check(&names, &self.metrics, self.me).await;
            Some(self)
        })
    }
}

/// One round of lookups (those due).
async fn check(
    names: &PeerNames,
    metrics: &tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, openraft::BasicNode>>,
    me: NodeId,
) {
    let members: BTreeMap<NodeId, String> = metrics
        .borrow()
        .membership_config
        .membership()
        .nodes()
        .filter(|(id, _)| **id != me)
        .map(|(id, n)| (*id, n.addr.clone()))
        .collect();
    names.retain(&members);
    for (id, addr) in &members {
        if names.due(*id, addr, Instant::now()) {
            let result = lookup(addr).await;
            names.record(*id, addr, result, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_and_clear() {
        let names = PeerNames::default();
        let t0 = Instant::now();
        names.record(2, "n2:1", Err("no such host".into()), t0);
        assert_eq!(
            names.unresolved(),
            vec![Unresolved {
                id: 2,
                addr: "n2:1".into(),
                error: "no such host".into()
            }]
        );
        assert!(!names.due(2, "n2:1", t0 + CHECK_EVERY / 2));
        assert!(names.due(2, "n2:1", t0 + CHECK_EVERY));
        // Failing again doubles the wait, up to the cap.
        let mut now = t0;
        for _ in 0..10 {
            names.record(2, "n2:1", Err("no such host".into()), now);
            now += MAX_BACKOFF;
        }
        assert!(!names.due(2, "n2:1", now - MAX_BACKOFF + MAX_BACKOFF / 2));
        // A new address is looked up at once; success clears the entry.
        assert!(names.due(2, "n2-new:1", t0));
        names.record(2, "n2-new:1", Ok(()), t0);
        assert!(names.unresolved().is_empty());
    }

    #[tokio::test]
    async fn lookups_of_literals_and_bad_names() {
        assert!(lookup("127.0.0.1:7101").await.is_ok());
        assert!(lookup("surely-not-a-host.invalid:7101").await.is_err());
    }
}

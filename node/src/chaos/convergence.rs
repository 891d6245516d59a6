//! Convergence after a chaos run: every node's `/cluster/digest` polled until they all report
//! the same applied index, then their state digests must be equal (the same log applied gives
//! byte-identical state — the state machine never reads the clock).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::check::{Violation, ViolationKind};

/// What one node reported last.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NodeDigest {
    /// The base URL polled.
    pub url: String,
    pub id: Option<u64>,
    pub applied_index: Option<u64>,
    pub sessions: Option<u64>,
    pub digest: Option<String>,
    /// Why the last poll failed, if it did.
    pub error: Option<String>,
}

/// The result of the convergence check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Convergence {
    /// All nodes answered with the same applied index and the same digest.
    pub converged: bool,
    /// How long polling took.
    pub waited_ms: u64,
    pub nodes: Vec<NodeDigest>,
}

#[derive(Deserialize)]
struct DigestReply {
    id: Option<u64>,
    applied_index: Option<u64>,
    sessions: Option<u64>,
    digest: Option<String>,
}

async fn poll(client: &reqwest::Client, url: &str) -> NodeDigest {
    let failed = |error: String| NodeDigest {
        url: url.to_string(),
        id: None,
        applied_index: None,
        sessions: None,
        digest: None,
        error: Some(error),
    };
    let resp = match client.get(format!("{url}/cluster/digest")).send().await {
        Ok(r) => r,
        Err(e) => return failed(format!("unreachable: {e}")),
    };
    if !resp.status().is_success() {
        return failed(format!("HTTP {}", resp.status().as_u16()));
    }
    match resp.json::<DigestReply>().await {
        Ok(d) => NodeDigest {
            url: url.to_string(),
            id: d.id,
            applied_index: d.applied_index,
            sessions: d.sessions,
            digest: d.digest,
            error: None,
        },
        Err(e) => failed(format!("undecodable digest: {e}")),
    }
}

/// Poll every node (all at once, every 500 ms) for up to `timeout` until they all answer with
/// one applied index; return what they reported and, when they differ, the violation.
pub async fn await_convergence(
    nodes: &[String],
    timeout: Duration,
) -> (Convergence, Option<Violation>) {
    let started = Instant::now();
    let client = crate::trust::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    loop {
        let got = poll_all(&client, nodes).await;
        let all_answered = got.iter().all(|n| n.error.is_none());
        let first = got.first().and_then(|n| n.applied_index);
        let same_index = all_answered && got.iter().all(|n| n.applied_index == first);
        let waited_ms = started.elapsed().as_millis() as u64;
        if same_index {
            let digest = got.first().and_then(|n| n.digest.clone());
            let same_digest = got.iter().all(|n| n.digest == digest);
            let violation = (!same_digest).then(|| Violation {
                kind: ViolationKind::Divergence,
                session: String::new(),
                message: format!(
                    "nodes at applied index {} hold different state: {}",
                    first.map_or("none".into(), |i| i.to_string()),
                    describe(&got)
                ),
                ops: Vec::new(),
            });
            return (
                Convergence {
                    converged: same_digest,
                    waited_ms,
                    nodes: got,
                },
                violation,
            );
        }
        if started.elapsed() >= timeout {
            let violation = Violation {
                kind: ViolationKind::NotConverged,
                session: String::new(),
                message: format!(
                    "the nodes did not reach one applied index within {}s: {}",
                    timeout.as_secs(),
                    describe(&got)
                ),
                ops: Vec::new(),
            };
            return (
                Convergence {
                    converged: false,
                    waited_ms,
                    nodes: got,
                },
                Some(violation),
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `url: node 2 applied 123 digest ab12cd34…` for each node.
pub fn describe(nodes: &[NodeDigest]) -> String {
    nodes
        .iter()
        .map(|n| match &n.error {
            Some(e) => format!("{}: {e}", n.url),
            None => format!(
                "{}: node {} applied {} digest {}",
                n.url,
                n.id.map_or("?".into(), |i| i.to_string()),
                n.applied_index.map_or("none".into(), |i| i.to_string()),
                n.digest
                    .as_deref()
                    .map_or("none".to_string(), |d| d.chars().take(16).collect())
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Poll every node at the same time (so their answers are close in time), in node order.
async fn poll_all(client: &reqwest::Client, nodes: &[String]) -> Vec<NodeDigest> {
    let handles: Vec<_> = nodes
        .iter()
        .map(|url| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { poll(&client, &url).await })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for (h, url) in handles.into_iter().zip(nodes) {
        out.push(h.await.unwrap_or_else(|e| NodeDigest {
            url: url.clone(),
            id: None,
            applied_index: None,
            sessions: None,
            digest: None,
            error: Some(format!("poll task failed: {e}")),
        }));
    }
    out
}

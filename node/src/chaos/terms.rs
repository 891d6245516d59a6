//! The terms file written by `scripts/chaos.sh` while the load runs (`terms.jsonl`, read by
//! `sessionraft check --terms`): every 100 ms, each node's `GET /cluster/status` as one line.
//!
//! ```json
//! {"t_ms":1718000003123,"node":2,"term":5,"leader":3,"role":"follower"}
//! {"t_ms":1718000003131,"node":3,"term":null,"leader":null,"role":"unreachable"}
//! ```
//!
//! `t_ms` is when the answer arrived (milliseconds since the Unix epoch, the history's wall
//! clock); a node that did not answer within the sampler's timeout (killed, paused,
//! restarting) is a line without a term (`role` `"unreachable"`), which says nothing about the
//! term.
//!
//! [`TermTimeline`] derives the *cluster's term* from the samples: at time t, the highest term
//! any node reported at or before t. A node's term never goes down (a wiped node starts again
//! from 0, which the maximum ignores), so the cluster's term only rises, and each rise is one
//! [`Election`] (a jump over a term nobody was seen in is one election too).

use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One answer (or non-answer) of one node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TermSample {
    pub t_ms: f64,
    pub node: u64,
    /// None: the node did not answer.
    #[serde(default)]
    pub term: Option<u64>,
    /// The leader the node named (none: it knew of no leader).
    #[serde(default)]
    pub leader: Option<u64>,
    /// `leader`, `follower`, `candidate`, `learner`, `shutdown` or `unreachable`.
    #[serde(default)]
    pub role: String,
}

/// A rise of the cluster's term.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Election {
    /// The first sample that reported `to_term`.
    pub t_ms: f64,
    pub from_term: u64,
    pub to_term: u64,
    /// The leader of `to_term`, as named by the first sample of that term that named one (none:
    /// no node named a leader in that term).
    pub leader: Option<u64>,
}

/// Read a terms file (JSON lines); blank lines are skipped.
///
/// # Errors
/// The file cannot be read or a line is not a sample.
pub fn read_terms(path: &Path) -> Result<Vec<TermSample>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut samples = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let s: TermSample = serde_json::from_str(&line)
            .map_err(|e| format!("{}:{}: not a term sample: {e}", path.display(), i + 1))?;
        samples.push(s);
    }
    Ok(samples)
}

/// The cluster's term over time, from the samples that carry a term.
#[derive(Clone, Debug, Default)]
pub struct TermTimeline {
    /// (t_ms, the highest term reported at or before t_ms), in time order.
    max_by_time: Vec<(f64, u64)>,
    elections: Vec<Election>,
}

impl TermTimeline {
    pub fn new(samples: &[TermSample]) -> Self {
        let mut answered: Vec<&TermSample> = samples.iter().filter(|s| s.term.is_some()).collect();
        answered.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        let mut max_by_time = Vec::with_capacity(answered.len());
        let mut elections: Vec<Election> = Vec::new();
        let mut current: Option<u64> = None;
        for s in &answered {
            let term = s.term.unwrap_or(0);
            match current {
                Some(c) if term > c => elections.push(Election {
                    t_ms: s.t_ms,
                    from_term: c,
                    to_term: term,
                    leader: None,
                }),
                _ => {}
            }
            let max = current.map_or(term, |c| c.max(term));
            current = Some(max);
            max_by_time.push((s.t_ms, max));
        }
        for e in &mut elections {
            e.leader = answered
                .iter()
                .filter(|s| s.term == Some(e.to_term) && s.t_ms >= e.t_ms)
                .find_map(|s| s.leader);
        }
        Self {
            max_by_time,
            elections,
        }
    }

    /// Whether no sample carried a term.
    pub fn is_empty(&self) -> bool {
        self.max_by_time.is_empty()
    }

    /// The cluster's term at `t_ms`: the highest term reported at or before it (none before the
    /// first answer).
    pub fn term_at(&self, t_ms: f64) -> Option<u64> {
        let n = self.max_by_time.partition_point(|(t, _)| *t <= t_ms);
        n.checked_sub(1).map(|i| self.max_by_time[i].1)
    }

    /// Every rise of the cluster's term, in time order.
    pub fn elections(&self) -> &[Election] {
        &self.elections
    }

    /// The rises seen at `from_ms <= t_ms <= to_ms`.
    pub fn elections_between(&self, from_ms: f64, to_ms: f64) -> Vec<Election> {
        self.elections
            .iter()
            .filter(|e| e.t_ms >= from_ms && e.t_ms <= to_ms)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_ms: f64, node: u64, term: Option<u64>, leader: Option<u64>) -> TermSample {
        TermSample {
            t_ms,
            node,
            term,
            leader,
            role: if term.is_some() {
                "follower"
            } else {
                "unreachable"
            }
            .into(),
        }
    }

    #[test]
    fn the_cluster_term_is_the_highest_reported_so_far() {
        let t = TermTimeline::new(&[
            s(100.0, 1, Some(3), Some(1)),
            s(101.0, 2, Some(3), Some(1)),
            // Out of order in the file: sorted by time.
            s(350.0, 3, Some(5), Some(3)),
            s(300.0, 2, Some(4), None),
            s(320.0, 1, None, None),
            s(400.0, 1, Some(3), Some(1)),
            // A wiped node starting again from 0 does not lower the cluster's term.
            s(500.0, 2, Some(0), None),
        ]);
        assert_eq!(t.term_at(99.0), None);
        assert_eq!(t.term_at(100.0), Some(3));
        assert_eq!(t.term_at(320.0), Some(4));
        assert_eq!(t.term_at(1000.0), Some(5));
        assert_eq!(
            t.elections(),
            &[
                // Term 4 never named a leader; term 5's leader is named by its first sample.
                Election {
                    t_ms: 300.0,
                    from_term: 3,
                    to_term: 4,
                    leader: None
                },
                Election {
                    t_ms: 350.0,
                    from_term: 4,
                    to_term: 5,
                    leader: Some(3)
                },
            ]
        );
        assert_eq!(t.elections_between(301.0, 350.0).len(), 1);
        assert!(TermTimeline::new(&[s(1.0, 1, None, None)]).is_empty());
    }
}

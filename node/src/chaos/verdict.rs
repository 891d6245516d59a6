//! `sessionraft check`: read a history (and the faults injected, and the nodes' terms sampled
//! meanwhile), check it (the counters per session, and revocations against the staleness bound),
//! check convergence, and write `verdict.json`, `summary.json` (with each fault's window,
//! elections and long requests) and `report.svg` into the output directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::check::{check_history, check_revocations, count_by_kind, RevocationStats, Violation};
use super::convergence::{await_convergence, describe, Convergence};
use super::fault_impact::{FAULT_SETTLE_MS, LONG_REQUEST_MS};
use super::faults::{read_faults, Fault};
use super::history::read_history;
use super::report::{render_svg, summarize, Summary};
use super::terms::{read_terms, TermTimeline};

/// How long nodes are polled for convergence.
pub const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// What `sessionraft check` was asked to do.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub history: PathBuf,
    /// Base URLs of the nodes whose digests must converge (none: skip that check).
    pub nodes: Vec<String>,
    pub faults: Option<PathBuf>,
    /// The nodes' terms sampled during the run (`terms.jsonl`; none: no elections reported).
    pub terms: Option<PathBuf>,
    pub out: PathBuf,
    /// The staleness bound revocations are judged against (none: the `reads.max_staleness_ms`
    /// of the first of `nodes` that answers `/cluster/status`, else
    /// [`DEFAULT_MAX_STALENESS_MS`]).
    pub max_staleness_ms: Option<u64>,
}

/// The bound used when neither the command line nor a node gives one.
pub const DEFAULT_MAX_STALENESS_MS: u64 = 500;

/// Where the revocation bound came from, and the read mode the cluster reported.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RevocationVerdict {
    /// `option` (`--max-staleness-ms`), `cluster` (a node's `/cluster/status`) or `default`.
    pub bound_from: String,
    /// `reads.consistency` of the node asked (`session` or `linearizable`), when one answered.
    pub consistency: Option<String>,
    #[serde(flatten)]
    pub stats: RevocationStats,
}

/// `verdict.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Verdict {
    /// `"pass"` or `"fail"`.
    pub verdict: String,
    pub ops: usize,
    pub sessions: usize,
    pub violations_by_kind: std::collections::BTreeMap<String, usize>,
    pub violations: Vec<Violation>,
    /// Absent when no nodes were given.
    pub convergence: Option<Convergence>,
    /// The revocation check (`served_after_revoke`): its bound and what it judged.
    #[serde(default)]
    pub revocation: RevocationVerdict,
}

/// Why the check could not run (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Input(String),
    #[error("writing {path}: {source}")]
    Output {
        path: String,
        source: std::io::Error,
    },
}

/// Everything the check produced.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub verdict: Verdict,
    pub summary: Summary,
    pub faults: Vec<Fault>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.verdict.violations.is_empty()
    }

    /// The human summary printed by `sessionraft check` (at most `max_listed` violations).
    pub fn human(&self, max_listed: usize) -> String {
        let s = &self.summary;
        let v = &self.verdict;
        let mut out = format!(
            "{}: {} ops in {} sessions over {:.1}s — ok {}, fail {}, unknown {}; {:.1} ok ops/s; \
             latency p50 {:.1} ms, p99 {:.1} ms; {} unavailability window(s); {} skipped ticks\n",
            v.verdict.to_uppercase(),
            s.ops.total,
            s.sessions,
            s.duration_s,
            s.ops.ok,
            s.ops.fail,
            s.ops.unknown,
            s.throughput_ok_per_s,
            s.latency_ms.p50,
            s.latency_ms.p99,
            s.unavailability.len(),
            s.skipped_ticks
        );
        for w in &s.unavailability {
            out.push_str(&format!(
                "  unavailable for {:.1}s from {:+.1}s ({} ops attempted)\n",
                w.duration_ms / 1000.0,
                (w.start_ms - s.start_ms) / 1000.0,
                w.ops_attempted
            ));
        }
        if !s.faults.is_empty() {
            let w = &s.fault_windows_ms;
            out.push_str(&format!(
                "faults: {} — window p50 {:.2} s, max {:.2} s (window: the longest time without \
                 a successful operation while some waited, from a fault's start to {:.0} s after \
                 its end; with the elections then and the requests over {:.0} s in flight)\n",
                w.count,
                w.p50 / 1000.0,
                w.max / 1000.0,
                FAULT_SETTLE_MS / 1000.0,
                LONG_REQUEST_MS / 1000.0
            ));
            for f in &s.faults {
                out.push_str(&format!("  {}\n", f.describe(s.start_ms)));
            }
        }
        let r = &v.revocation;
        if r.stats.revokes > 0 {
            out.push_str(&format!(
                "revocation: {} revokes acknowledged, {} probes answered after them ({} after the \
                 bound of {} ms from {}{}), {} served the revoked session after the bound\n",
                r.stats.revokes,
                r.stats.probes,
                r.stats.probes_after_bound,
                r.stats.bound_ms,
                r.bound_from,
                r.consistency
                    .as_deref()
                    .map(|c| format!(", {c} reads"))
                    .unwrap_or_default(),
                r.stats.served_after_bound
            ));
        }
        if let Some(c) = &v.convergence {
            out.push_str(&format!(
                "convergence: {} after {:.1}s — {}\n",
                if c.converged { "ok" } else { "FAILED" },
                c.waited_ms as f64 / 1000.0,
                describe(&c.nodes)
            ));
        }
        if v.violations.is_empty() {
            out.push_str("no violations\n");
        } else {
            let kinds: Vec<String> = v
                .violations_by_kind
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            out.push_str(&format!(
                "{} violations ({})\n",
                v.violations.len(),
                kinds.join(", ")
            ));
            for x in v.violations.iter().take(max_listed) {
                out.push_str(&format!("  [{}] {}\n", x.kind.as_str(), x.message));
            }
            if v.violations.len() > max_listed {
                out.push_str(&format!(
                    "  … {} more in verdict.json\n",
                    v.violations.len() - max_listed
                ));
            }
        }
        out
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CheckError> {
    std::fs::write(path, bytes).map_err(|source| CheckError::Output {
        path: path.display().to_string(),
        source,
    })
}

/// Run the whole check and write its three files.
///
/// # Errors
/// [`CheckError::Input`] when the history or faults file is unreadable,
/// [`CheckError::Output`] when the output directory cannot be written. Violations are not
/// errors: they are in the report.
pub fn run(opts: &CheckOptions) -> Result<CheckReport, CheckError> {
    let ops = read_history(&opts.history).map_err(|e| CheckError::Input(e.to_string()))?;
    let faults = match &opts.faults {
        Some(p) => read_faults(p).map_err(CheckError::Input)?,
        None => Vec::new(),
    };
    let terms = match &opts.terms {
        Some(p) => Some(TermTimeline::new(
            &read_terms(p).map_err(CheckError::Input)?,
        )),
        None => None,
    };
    let mut violations = check_history(&ops);
    let rt = if opts.nodes.is_empty() {
        None
    } else {
        Some(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CheckError::Input(format!("starting a runtime: {e}")))?,
        )
    };
    let reported = match &rt {
        Some(rt) => rt.block_on(read_settings(&opts.nodes)),
        None => None,
    };
    let (bound_ms, bound_from) = match (opts.max_staleness_ms, &reported) {
        (Some(ms), _) => (ms, "option"),
        (None, Some((ms, _))) => (*ms, "cluster"),
        (None, None) => (DEFAULT_MAX_STALENESS_MS, "default"),
    };
    let (revoked, stats) = check_revocations(&ops, bound_ms as f64);
    violations.extend(revoked);
    let revocation = RevocationVerdict {
        bound_from: bound_from.to_string(),
        consistency: reported.and_then(|(_, c)| c),
        stats,
    };
    let convergence = match &rt {
        Some(rt) => {
            let (c, v) = rt.block_on(await_convergence(&opts.nodes, CONVERGENCE_TIMEOUT));
            violations.extend(v);
            Some(c)
        }
        None => None,
    };
    let summary = summarize(&ops, &violations, &faults, terms.as_ref());
    let verdict = Verdict {
        verdict: if violations.is_empty() {
            "pass"
        } else {
            "fail"
        }
        .into(),
        ops: ops.len(),
        sessions: summary.sessions,
        violations_by_kind: count_by_kind(&violations),
        violations,
        convergence,
        revocation,
    };
    std::fs::create_dir_all(&opts.out).map_err(|source| CheckError::Output {
        path: opts.out.display().to_string(),
        source,
    })?;
    write(&opts.out.join("verdict.json"), pretty(&verdict).as_bytes())?;
    write(&opts.out.join("summary.json"), pretty(&summary).as_bytes())?;
    let svg = render_svg(&ops, &faults, &verdict.violations, &summary);
    write(&opts.out.join("report.svg"), svg.as_bytes())?;
    Ok(CheckReport {
        verdict,
        summary,
        faults,
    })
}

/// `reads.max_staleness_ms` and `reads.consistency` of the first node that answers
/// `/cluster/status` with a bound.
async fn read_settings(nodes: &[String]) -> Option<(u64, Option<String>)> {
    let client = crate::trust::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    for n in nodes {
        let Ok(resp) = client.get(format!("{n}/cluster/status")).send().await else {
            continue;
        };
        let Ok(status) = resp.json::<serde_json::Value>().await else {
            continue;
        };
        let reads = &status["reads"];
        if let Some(ms) = reads["max_staleness_ms"].as_u64() {
            return Some((ms, reads["consistency"].as_str().map(str::to_string)));
        }
    }
    None
}

/// Pretty JSON (a serialization failure is written as an error object rather than lost).
fn pretty<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| {
        serde_json::json!({ "error": format!("serializing the report: {e}") }).to_string()
    }) + "\n"
}

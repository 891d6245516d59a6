//! `[runtime]`: how many threads a node runs (HTTP workers, the Raft runtime), and how many
//! session requests it works on at once.

use serde::Deserialize;

use super::{Config, ConfigError, NodeConfig};

/// `[runtime]`: how many threads a node runs. Unset values are chosen per node at start:
/// the machine's cores divided by the number of configured nodes on the same host (at least 1),
/// so that three nodes on one laptop do not run three times the threads the cores can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// actix-web worker threads (HTTP).
    pub http_workers: Option<usize>,
    /// Threads of the Raft runtime (consensus, replication, peer I/O).
    pub raft_threads: Option<usize>,
    /// Session requests one node works on at once; one more is answered 503 `not-applied`
    /// with `Retry-After` at once ([`crate::admission`]).
    pub max_requests_in_flight: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            http_workers: None,
            raft_threads: None,
            max_requests_in_flight: crate::admission::DEFAULT_MAX_REQUESTS_IN_FLIGHT,
        }
    }
}

impl RuntimeConfig {
    /// Largest accepted thread count.
    pub const MAX_THREADS: usize = 256;
    /// Largest accepted `max_requests_in_flight`.
    pub const MAX_REQUESTS_IN_FLIGHT: usize = 1_000_000;
}

/// `[runtime]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRuntimeConfig {
    /// `http_workers`: actix-web workers per node.
    pub http_workers: Option<i64>,
    /// `raft_threads`: threads of each node's Raft runtime.
    pub raft_threads: Option<i64>,
    /// `max_requests_in_flight`: session requests per node at once (default 1024).
    pub max_requests_in_flight: Option<i64>,
}

pub(super) fn validate_runtime(raw: RawRuntimeConfig) -> Result<RuntimeConfig, ConfigError> {
    // A count in 1..=max, or unset.
    let count = |field: &str, v: Option<i64>, max: usize| -> Result<Option<usize>, ConfigError> {
        match v {
            None => Ok(None),
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| (1..=max).contains(n))
                .map(Some)
                .ok_or_else(|| {
                    ConfigError::invalid(field, format!("{n} must be within 1..={max}"))
                }),
        }
    };
    let threads = RuntimeConfig::MAX_THREADS;
    Ok(RuntimeConfig {
        http_workers: count("runtime.http_workers", raw.http_workers, threads)?,
        raft_threads: count("runtime.raft_threads", raw.raft_threads, threads)?,
        max_requests_in_flight: count(
            "runtime.max_requests_in_flight",
            raw.max_requests_in_flight,
            RuntimeConfig::MAX_REQUESTS_IN_FLIGHT,
        )?
        .unwrap_or(crate::admission::DEFAULT_MAX_REQUESTS_IN_FLIGHT),
    })
}

impl Config {
    /// (HTTP workers, Raft threads) for node `me` on a machine with `cores` cores: the
    /// `[runtime]` values, or the cores divided by the configured nodes on `me`'s host (same IP
    /// or name, or loopback for both), at least 1.
    pub fn threads_per_node(&self, me: &NodeConfig, cores: usize) -> (usize, usize) {
        let same_host = self
            .nodes
            .iter()
            .filter(|n| n.http_addr.same_host(&me.http_addr))
            .count()
            .max(1);
        let auto = (cores / same_host).max(1);
        (
            self.runtime.http_workers.unwrap_or(auto),
            self.runtime.raft_threads.unwrap_or(auto),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::config::test_support::*;

    #[test]
    fn runtime_threads_are_optional_and_checked() {
        let config = parse(VALID, base()).unwrap();
        assert_eq!(config.runtime, RuntimeConfig::default());
        // VALID has 3 nodes on 127.0.0.1: they share one host.
        assert_eq!(config.threads_per_node(&config.nodes[0], 2), (1, 1));
        assert_eq!(config.threads_per_node(&config.nodes[0], 12), (4, 4));
        let set = format!("{VALID}\n[runtime]\nhttp_workers = 3\nraft_threads = 2\n");
        let config = parse(&set, base()).unwrap();
        assert_eq!(config.threads_per_node(&config.nodes[0], 2), (3, 2));
        for bad in [
            "http_workers = 0",
            "raft_threads = -1",
            "http_workers = 100000",
        ] {
            let text = format!("{VALID}\n[runtime]\n{bad}\n");
            assert_rejected(&text, &["runtime.", "must be within 1..=256"]);
        }
        assert_rejected(&format!("{VALID}\n[runtime]\nworkers = 2\n"), &["workers"]);
        assert_eq!(config.runtime.max_requests_in_flight, 1024);
        let set = format!("{VALID}\n[runtime]\nmax_requests_in_flight = 64\n");
        assert_eq!(
            parse(&set, base()).unwrap().runtime.max_requests_in_flight,
            64
        );
        for bad in ["0", "-5", "1000001"] {
            let text = format!("{VALID}\n[runtime]\nmax_requests_in_flight = {bad}\n");
            assert_rejected(
                &text,
                &[
                    "runtime.max_requests_in_flight",
                    "must be within 1..=1000000",
                ],
            );
        }
    }
}

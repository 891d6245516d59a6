//! The operator and measurement tools against a TLS cluster (issue 28, item 3): a 3-node cluster
//! with `[tls]` (certificates from `scripts/dev-certs.sh`), and `sessionraft status`, `load`,
//! `check`, `bench` and `staleness` run against its `https://` URLs.
//!
//! Asserted: each succeeds trusting the cluster CA (`--ca FILE`, or the `[tls] ca` of
//! `--config`); an `https://` target without a CA to trust is refused before any request, naming
//! `--ca`; a CA that did not sign the node certificates is refused with the TLS failure named
//! (`UnknownIssuer`), by every tool, `status --ca` included. Never "accept invalid". And the
//! demo app's node links (`/api/nodes`) are `https://` URLs.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{binary, TestCluster, Tuning};

const DEADLINE: Duration = Duration::from_secs(30);

/// `scripts/dev-certs.sh` for `config` into `dir/certs`, its `[tls]` snippet appended.
fn make_certs(dir: &Path, config: &Path) {
    common::add_dev_certs(config, &dir.join("certs"), &[]);
}

/// A second CA, one that signed nothing of this cluster.
fn stranger_ca(dir: &Path) -> PathBuf {
    let crt = dir.join("stranger-ca.crt");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=a stranger CA", "-keyout"])
        .arg(dir.join("stranger-ca.key"))
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    crt
}

fn sessionraft(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env_remove("SESSIONRAFT_CONFIG")
        .output()
        .expect("run sessionraft")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let out = sessionraft(args);
    let t = text(&out);
    assert!(out.status.success(), "sessionraft {args:?} failed:\n{t}");
    eprintln!("sessionraft {} ok", args[0]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails with exit code `code`, and stderr contains every one of `want`.
fn refused(args: &[&str], code: i32, want: &[&str]) {
    let out = sessionraft(args);
    let t = text(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "sessionraft {args:?} should fail:\n{t}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for w in want {
        assert!(
            stderr.contains(w),
            "no {w:?} in the error of {args:?}:\n{t}"
        );
    }
    eprintln!(
        "sessionraft {} refused: {}",
        args[0],
        stderr.lines().last().unwrap_or_default()
    );
}

#[test]
fn the_tools_run_against_a_tls_cluster_trusting_its_ca_and_only_it() {
    let started = Instant::now();
    let c = TestCluster::start_prepared(3, Tuning::default(), make_certs);
    let dir = c.dir.path();
    let ca = dir.join("certs/ca.crt");
    let ca = ca.to_str().expect("utf-8 path");
    let config = c.config.to_str().expect("utf-8 path");
    let stranger = stranger_ca(dir);
    let stranger = stranger.to_str().expect("utf-8 path");
    let https: Vec<String> = (1..=3)
        .map(|id| c.url(id, "").replacen("http://", "https://", 1))
        .collect();
    let targets = https.join(",");

    // status: every node answers over HTTPS with one leader (elections take a moment).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = sessionraft(&["status", "--json", "--config", config]);
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let leaders = rows
            .iter()
            .filter(|r| r["status"]["role"] == "leader")
            .count();
        if out.status.success() && rows.len() == 3 && leaders == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no leader over TLS: {}\n{}",
            text(&out),
            c.log(1)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("cluster up over TLS after {:?}", started.elapsed());

    // The demo app's node links name the scheme the nodes serve.
    let pem = std::fs::read(ca).expect("ca.crt");
    let nodes: serde_json::Value =
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                common::ca_client(&pem, false)
                    .get(format!("{}/api/nodes", https[0]))
                    .send()
                    .await
                    .expect("GET /api/nodes")
                    .json()
                    .await
                    .expect("JSON")
            });
    let urls: Vec<&str> = nodes["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["url"].as_str())
        .collect();
    assert_eq!(urls.len(), 3, "{nodes}");
    assert!(urls.iter().all(|u| u.starts_with("https://")), "{nodes}");
    let table = ok(&["status", "--config", config, "--ca", ca]);
    assert!(table.contains("leader"), "{table}");
    refused(
        &["status", "--config", config, "--ca", stranger],
        1,
        &["TLS failure", "UnknownIssuer"],
    );

    // load: a short run over https with --ca; then without a CA, and with the wrong one.
    let history = dir.join("history.jsonl");
    let history = history.to_str().expect("utf-8 path");
    let load = [
        "load",
        "--targets",
        &targets,
        "--users",
        "3",
        "--rate",
        "30",
        "--duration",
        "2",
        "--settle",
        "1",
        "--out",
        history,
    ];
    let summary = ok(&[&load[..], &["--ca", ca]].concat());
    eprintln!("{}", summary.trim());
    assert!(
        !summary.contains("(ok 0,"),
        "no operation succeeded: {summary}"
    );
    let elsewhere = dir.join("h2.jsonl");
    let elsewhere = elsewhere.to_str().expect("utf-8 path");
    let mut no_ca = load;
    no_ca[12] = elsewhere;
    refused(&no_ca, 1, &["no CA to trust", "--ca"]);
    refused(
        &[&no_ca[..], &["--ca", stranger]].concat(),
        1,
        &["TLS failure", "UnknownIssuer", stranger],
    );

    // check: the history judged and the nodes' convergence read over https (the CA of --config).
    let verdict = dir.join("verdict");
    let verdict = verdict.to_str().expect("utf-8 path");
    let check = [
        "check",
        "--history",
        history,
        "--nodes",
        &targets,
        "--out",
        verdict,
    ];
    let report = ok(&[&check[..], &["--config", config]].concat());
    eprintln!("{}", report.lines().next().unwrap_or_default());
    refused(&check, 2, &["no CA to trust"]);
    refused(
        &[&check[..], &["--ca", stranger]].concat(),
        2,
        &["TLS failure", "UnknownIssuer"],
    );

    // bench and staleness, briefly.
    let bench = [
        "bench",
        "--targets",
        &targets,
        "--workload",
        "mixed",
        "--connections",
        "2",
        "--duration",
        "1",
        "--warmup",
        "0",
    ];
    let b = ok(&[&bench[..], &["--ca", ca]].concat());
    eprintln!("{}", b.trim());
    refused(&bench, 1, &["no CA to trust"]);
    let staleness = [
        "staleness",
        "--targets",
        &targets,
        "--samples",
        "5",
        "--config",
        config,
    ];
    let s = ok(&staleness);
    eprintln!("{}", s.trim());
    refused(
        &[&staleness[..5], &["--ca", stranger]].concat(),
        1,
        &["TLS failure", "UnknownIssuer"],
    );
    eprintln!("done in {:?}", started.elapsed());
}

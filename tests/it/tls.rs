//! TLS for real: `scripts/dev-certs.sh` makes a development CA and node certificates for a
//! 3-node configuration on free ports, the snippet it prints is appended as `[tls]`, and three
//! `sessionraft serve` processes run with it.
//!
//! Asserted: every node answers `/readyz` over HTTPS (verified against the CA) and the nodes
//! agree on a leader, so peer traffic (votes, appends, read-index) works over TLS; plain HTTP
//! gets no answer; a client that does not trust the CA is refused; a session written on one node
//! over HTTPS is read back on the other two, and its cookie is `Secure` and `HttpOnly`;
//! `sessionraft status` and `sessionraft backup` work against the cluster; after SIGKILL of the
//! leader a new one is elected and the session is still served and written by the survivors.
//!
//! And `scripts/dev-certs.sh` on its own: SANs from `sessionraft nodes --json` by field name, IP
//! SANs for IP addresses and DNS SANs for names (the repository's `cluster.toml`, a configuration
//! of names, `--node ID=IP,NAME`).

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{binary, ca_client, increment, read, TestCluster, Tuning};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `scripts/dev-certs.sh` for `config` into `dir/certs` and appends the `[tls]` snippet it
/// prints to `config`.
fn make_certs(dir: &Path, config: &Path) {
    let snippet = common::add_dev_certs(config, &dir.join("certs"), &[]);
    assert!(snippet.contains("cert_dir = \"certs\""), "{snippet}");
}

fn https(c: &TestCluster, id: u64, path: &str) -> String {
    c.url(id, path).replacen("http://", "https://", 1)
}

/// The leader every node in `ids` reports over HTTPS, once they agree on one of them.
async fn agreed_leader(c: &TestCluster, client: &reqwest::Client, ids: &[u64]) -> u64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut seen = Vec::new();
        for &id in ids {
            let status: Option<Value> =
                match client.get(https(c, id, "/cluster/status")).send().await {
                    Ok(r) => r.json().await.ok(),
                    Err(_) => None,
                };
            seen.push(status.and_then(|s| s["leader"].as_u64()));
        }
        if let Some(Some(l)) = seen.first() {
            if seen.iter().all(|x| *x == Some(*l)) && ids.contains(l) {
                return *l;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no agreed leader among {ids:?} over TLS in {DEADLINE:?}: {seen:?}\n{}",
            ids.iter()
                .map(|&id| c.log(id))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET /api/counter until it answers 200 (an election may be under way), returning the counter.
async fn read_until_ok(client: &reqwest::Client, url: &str) -> Option<i64> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, counter) = read(client, url).await;
        if status == 200 {
            return counter;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: still {status} after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn run_cli(args: &[&str], config: &Path) -> String {
    let out = Command::new(binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run sessionraft");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sessionraft {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cluster_serves_https_only_and_survives_leader_loss() {
    let started = Instant::now();
    let mut c = TestCluster::start_prepared(3, Tuning::default(), make_certs);
    let ca = std::fs::read(c.dir.path().join("certs/ca.crt")).expect("ca.crt");
    let client = ca_client(&ca, false);

    // Every node ready over HTTPS, and one leader: votes and appends went over TLS.
    let deadline = Instant::now() + DEADLINE;
    for id in 1..=3 {
        loop {
            let ok = client
                .get(https(&c, id, "/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} not ready over TLS in {DEADLINE:?}:\n{}",
                c.log(id)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let leader = agreed_leader(&c, &client, &[1, 2, 3]).await;
    eprintln!(
        "ready over TLS, leader {leader}, after {:?}",
        started.elapsed()
    );

    // Plain HTTP gets no HTTP answer at all (the TLS acceptor closes the connection).
    for id in 1..=3 {
        let plain = common::http().get(c.url(id, "/readyz")).send().await;
        assert!(
            plain.is_err(),
            "node {id} answered plain HTTP: {:?}",
            plain.map(|r| r.status())
        );
    }

    // A client that does not trust the development CA (only the public web roots) is refused.
    let stranger = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let refused = stranger
        .get(https(&c, 1, "/readyz"))
        .send()
        .await
        .expect_err("a client without the CA must not get an answer");
    let why = format!("{refused:?}");
    assert!(
        why.contains("UnknownIssuer") || why.to_lowercase().contains("certificate"),
        "not a certificate error: {why}"
    );

    // A session created on a follower (its write is forwarded to the leader over TLS) ...
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    let user = ca_client(&ca, true);
    let resp = user
        .post(https(&c, follower, "/api/counter"))
        .send()
        .await
        .expect("first increment");
    assert_eq!(resp.status(), 200);
    let cookies: Vec<String> = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(cookies.len(), 1, "one session cookie: {cookies:?}");
    let attributes: Vec<String> = cookies[0]
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for want in ["secure", "httponly"] {
        assert!(
            attributes.iter().any(|a| a == want),
            "cookie without {want}: {}",
            cookies[0]
        );
    }
    let (status, counter, _) = increment(&user, &https(&c, follower, "/api/counter")).await;
    assert_eq!((status, counter), (200, Some(2)));
    // ... is read back with its value on the other two nodes.
    for id in (1..=3).filter(|&id| id != follower) {
        assert_eq!(
            read(&user, &https(&c, id, "/api/counter")).await,
            (200, Some(2)),
            "node {id}"
        );
    }

    // The CLI against the TLS cluster: status (every node answers, one leader) and a backup.
    let status = run_cli(&["status", "--json"], &c.config);
    let rows: Vec<Value> = serde_json::from_str(&status).expect("status --json");
    assert_eq!(rows.len(), 3, "{status}");
    assert!(rows.iter().all(|r| r["status"].is_object()), "{status}");
    let leaders: Vec<&Value> = rows
        .iter()
        .filter(|r| r["status"]["role"] == "leader")
        .collect();
    assert_eq!(leaders.len(), 1, "{status}");
    assert_eq!(leaders[0]["id"], leader, "{status}");
    let backup = c.dir.path().join("backup.bin");
    run_cli(
        &["backup", "--to", backup.to_str().expect("utf-8 path")],
        &c.config,
    );
    assert!(backup.metadata().expect("backup file").len() > 0);

    // SIGKILL the leader: the survivors elect a new one over TLS and still serve the session.
    c.kill(leader);
    let killed_at = Instant::now();
    let survivors: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let new_leader = agreed_leader(&c, &client, &survivors).await;
    assert_ne!(new_leader, leader);
    eprintln!(
        "new leader {new_leader} {:?} after killing {leader}",
        killed_at.elapsed()
    );
    for &id in &survivors {
        let url = https(&c, id, "/api/counter");
        assert_eq!(read_until_ok(&user, &url).await, Some(2), "node {id}");
    }
    let (status, counter, _) = increment(&user, &https(&c, survivors[0], "/api/counter")).await;
    assert_eq!((status, counter), (200, Some(3)));
    assert_eq!(
        read(&user, &https(&c, survivors[1], "/api/counter")).await,
        (200, Some(3))
    );
    eprintln!("done in {:?}", started.elapsed());
}

/// The subjectAltName of a certificate as openssl prints it.
fn san_of(crt: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(crt)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl x509 {}", crt.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// `scripts/dev-certs.sh` reads `sessionraft nodes --json` by field name: the repository's own
/// `cluster.toml` (whose nodes have a `resp_addr`, the fifth column that broke the positional
/// read) gets IP SANs, a configuration of names gets DNS SANs (listen addresses none), and
/// `--node ID=NAME` works as `--node ID=IP`.
#[test]
fn dev_certs_issue_ip_and_dns_sans_from_the_node_listing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dev-certs.sh");
    let run = |config: &Path, out: &Path, extra: &[&str]| {
        let out = Command::new("bash")
            .arg(&script)
            .arg("--config")
            .arg(config)
            .arg("--out")
            .arg(out)
            .args(extra)
            .env("SESSIONRAFT_BIN", binary())
            .output()
            .expect("run scripts/dev-certs.sh");
        assert!(
            out.status.success(),
            "dev-certs.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };

    let repo_certs = dir.path().join("repo-certs");
    run(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster.toml"),
        &repo_certs,
        &[],
    );
    for id in 1..=3 {
        assert_eq!(
            san_of(&repo_certs.join(format!("node{id}.crt"))),
            "IP Address:127.0.0.1, DNS:localhost"
        );
    }
    client_certificate_from_dev_certs(&repo_certs, &|extra| {
        run(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster.toml"),
            &repo_certs,
            extra,
        )
    });

    let config = dir.path().join("named.toml");
    let mut text = format!(
        "[cluster]\nname = \"named\"\nsecret = \"{}\"\nadmin_token = \"{}\"\n\n[listen]\nip = \"0.0.0.0\"\n",
        common::SECRET,
        common::ADMIN_TOKEN
    );
    for (id, host) in [
        (1, "sessionraft-0.sessionraft"),
        (2, "sessionraft-1.sessionraft"),
    ] {
        text.push_str(&format!(
            "\n[[node]]\nid = {id}\nhttp_addr = \"{host}:7101\"\nresp_addr = \"{host}:7201\"\n\
             data_dir = \"/data\"\n"
        ));
    }
    text.push_str(
        "\n[[node]]\nid = 3\nhttp_addr = \"10.0.0.13:7101\"\nraft_addr = \"sessionraft-2.sessionraft:7102\"\n\
         data_dir = \"/data\"\n",
    );
    std::fs::write(&config, text).expect("write config");
    let certs = dir.path().join("certs");
    run(
        &config,
        &certs,
        &["--node", "4=10.0.0.14,sessionraft-3.sessionraft"],
    );
    let want = [
        "DNS:sessionraft-0.sessionraft, DNS:localhost, IP Address:127.0.0.1",
        "DNS:sessionraft-1.sessionraft, DNS:localhost, IP Address:127.0.0.1",
        "IP Address:10.0.0.13, DNS:sessionraft-2.sessionraft, DNS:localhost, IP Address:127.0.0.1",
        "IP Address:10.0.0.14, DNS:sessionraft-3.sessionraft, DNS:localhost, IP Address:127.0.0.1",
    ];
    for (id, want) in (1..=4).zip(want) {
        assert_eq!(
            san_of(&certs.join(format!("node{id}.crt"))),
            want,
            "node {id}"
        );
    }
}

/// `dev-certs.sh --client app` (run by `issue`) issues `client-app.{crt,key}` in `certs`: CN=app,
/// for client authentication only, signed by the CA beside it; a second run keeps it; a name
/// that is not one is refused (exit 1, naming it) before anything is written.
fn client_certificate_from_dev_certs(certs: &Path, issue: &dyn Fn(&[&str])) {
    issue(&["--client", "app"]);
    let crt = certs.join("client-app.crt");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("run openssl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let ca = certs.join("ca.crt");
    let (ca, crt_s) = (ca.to_str().expect("utf-8"), crt.to_str().expect("utf-8"));
    let (ok, text) = openssl(&["verify", "-CAfile", ca, "-purpose", "sslclient", crt_s]);
    assert!(
        ok,
        "client-app.crt verifies as a client certificate: {text}"
    );
    let (ok, text) = openssl(&["verify", "-CAfile", ca, "-purpose", "sslserver", crt_s]);
    assert!(
        !ok,
        "client-app.crt must not be a server certificate: {text}"
    );
    let (_, text) = openssl(&[
        "x509", "-in", crt_s, "-noout", "-subject", "-nameopt", "RFC2253",
    ]);
    assert_eq!(text.trim(), "subject=CN=app");
    let before = std::fs::read(&crt).expect("client-app.crt");
    issue(&["--client", "app"]);
    assert_eq!(
        std::fs::read(&crt).expect("client-app.crt"),
        before,
        "kept on a second run"
    );

    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dev-certs.sh"))
        .args(["--out"])
        .arg(certs)
        .args(["--client", "app server"])
        .env("SESSIONRAFT_BIN", binary())
        .output()
        .expect("run scripts/dev-certs.sh");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--client app server"), "{err}");
    assert!(!certs.join("client-app server.crt").exists());
}

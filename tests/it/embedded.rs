//! The embedding API end to end: `examples/embedded_store` (a user's own actix-web app built
//! on `Server::start(Config::from_file(..), id)`, `server.routes()` and `server.sessions()`) run as
//! three processes from one `cluster.toml`; a session written through one node is read and
//! written through the others, one node is killed with SIGKILL, and the session survives.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, write_config, Tuning};

fn example() -> PathBuf {
    let exe = common::binary()
        .parent()
        .expect("dir")
        .join("examples/embedded_store");
    assert!(
        exe.exists(),
        "build the example first: cargo build --release --workspace --all-targets"
    );
    exe
}

/// The example's processes, killed by pid when dropped (also when the test panics).
struct Apps(Vec<Option<Child>>);

impl Drop for Apps {
    fn drop(&mut self) {
        for c in self.0.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn visits(client: &reqwest::Client, port: u16) -> Option<(u64, u64)> {
    let r = client
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    // "visits: N (served by node M)"
    let text = r.text().await.ok()?;
    let rest = text.strip_prefix("visits: ")?;
    let (n, rest) = rest.split_once(" (served by node ")?;
    let m = rest.trim_end().trim_end_matches(')');
    Some((n.parse().ok()?, m.parse().ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_embedded_nodes_keep_a_session_through_a_kill() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let config = write_config(dir.path(), &ports, &Tuning::default(), None);
    let mut apps = Apps(Vec::new());
    for id in 1..=3u64 {
        let log = std::fs::File::create(dir.path().join(format!("app{id}.log"))).expect("log");
        let child = Command::new(example())
            .arg("--config")
            .arg(&config)
            .args(["--node", &id.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn example");
        apps.0.push(Some(child));
    }
    let http = common::http();
    // every node ready (a leader elected and known) through the embedded routes
    let deadline = Instant::now() + Duration::from_secs(30);
    for port in &ports {
        loop {
            let ok = http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "node on {port} never ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // one cluster of three, not three clusters of one
    let status: serde_json::Value = http
        .get(format!("http://127.0.0.1:{}/cluster/status", ports[0]))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(
        status["members"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );

    // one user's session, written through every node in turn
    let user = common::user();
    for (i, port) in ports.iter().enumerate() {
        let got = visits(&user, *port).await;
        assert_eq!(
            got,
            Some((i as u64 + 1, i as u64 + 1)),
            "through node {}",
            i + 1
        );
    }

    // SIGKILL node 1; the session lives on in the other two
    if let Some(mut c) = apps.0[0].take() {
        c.kill().expect("kill node 1");
        c.wait().expect("reap node 1");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    // A request that failed during the election may still have been applied (its outcome is
    // unknown): each such failure may have counted one visit.
    let mut failed = 0;
    let after = loop {
        if let Some(v) = visits(&user, ports[1]).await {
            break v;
        }
        failed += 1;
        assert!(
            Instant::now() < deadline,
            "node 2 never served the session after node 1 died"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after.1, 2, "served by node 2");
    assert!(
        (4..=4 + failed).contains(&after.0),
        "the count went on from 3 on node 2: {after:?} after {failed} failed attempts"
    );
    assert_eq!(
        visits(&user, ports[2]).await,
        Some((after.0 + 1, 3)),
        "and on node 3"
    );
}

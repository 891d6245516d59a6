//! `scripts/cluster.sh` on a TLS cluster (issue 28, items 2 and 3), for real: a 3-node
//! configuration on free ports with a load balancer, `scripts/dev-certs.sh` (node certificates
//! and HAProxy's `lb.crt`), `cluster.sh up`.
//!
//! Asserted: `up` prints https:// URLs; the HAProxy config it wrote terminates TLS with the load
//! balancer's certificate and checks every node's /readyz over HTTPS verifying the cluster CA;
//! HAProxy reports every node UP (so its TLS checks pass); `cluster.sh status` reads every node
//! over https; a session counts through HAProxy over HTTPS (verified against the CA alone) and
//! plain HTTP to HAProxy gets no answer; `cluster.sh down` stops everything.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{binary, free_port, increment, write_config, Tuning};
use tempfile::TempDir;

struct Ops {
    _dir: TempDir,
    config: PathBuf,
    run_dir: PathBuf,
    certs: PathBuf,
    lb: String,
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Ops {
    fn new() -> Self {
        let dir = TempDir::new().expect("temp dir");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let lb_port = free_port();
        let config = write_config(dir.path(), &ports, &Tuning::default(), Some(lb_port));
        let certs = dir.path().join("certs");
        common::add_dev_certs(&config, &certs, &[]);
        assert!(certs.join("lb.crt").exists() && certs.join("lb.key").exists());
        let run_dir = dir.path().join("run");
        Self {
            _dir: dir,
            config,
            run_dir,
            certs,
            lb: format!("127.0.0.1:{lb_port}"),
        }
    }

    fn sh(&self, args: &[&str]) -> Output {
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh"))
            .args(args)
            .env("SESSIONRAFT_CONFIG", &self.config)
            .env("SESSIONRAFT_RUN_DIR", &self.run_dir)
            .env("SESSIONRAFT_BIN", binary())
            .output()
            .expect("run cluster.sh")
    }

    fn sh_ok(&self, args: &[&str]) -> String {
        let t = Instant::now();
        let out = self.sh(args);
        assert!(
            out.status.success(),
            "cluster.sh {args:?} failed: {}",
            show(&out)
        );
        eprintln!("cluster.sh {args:?}: {:.2} s", t.elapsed().as_secs_f64());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Ops {
    fn drop(&mut self) {
        // Whatever happened, stop what the script started (by its pid files).
        let _ = self.sh(&["down"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_sh_runs_a_tls_cluster_behind_an_https_haproxy() {
    let ops = Ops::new();
    let up = ops.sh_ok(&["up"]);
    let lb_https = format!("https://{}/", ops.lb);
    assert!(up.contains(&format!("demo: {lb_https}")), "{up}");
    assert!(!up.contains("http://"), "{up}");

    let cfg = std::fs::read_to_string(ops.run_dir.join("haproxy.cfg")).expect("haproxy.cfg");
    let ca = ops.certs.join("ca.crt");
    assert!(
        cfg.contains(&format!(
            "bind {} ssl crt {}",
            ops.lb,
            ops.run_dir.join("haproxy-lb.pem").display()
        )),
        "{cfg}"
    );
    let servers: Vec<&str> = cfg
        .lines()
        .filter(|l| l.trim_start().starts_with("server "))
        .collect();
    assert_eq!(servers.len(), 3, "{cfg}");
    for s in &servers {
        assert!(
            s.contains(&format!(
                "check ssl check-ssl verify required ca-file {}",
                ca.display()
            )),
            "{s}"
        );
    }

    // HAProxy's TLS checks pass: every node UP (L7OK) within 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lb = ops.sh_ok(&["lb-status"]);
        let up = lb
            .lines()
            .filter(|l| l.starts_with("nodes") && l.contains(" UP ") && l.contains("L7OK"))
            .count();
        if up == 3 {
            eprintln!("{lb}");
            break;
        }
        assert!(Instant::now() < deadline, "not every node UP: {lb}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = ops.sh_ok(&["status"]);
    assert_eq!(status.matches(" ready ").count(), 3, "{status}");
    assert!(status.contains("3/3 servers UP"), "{status}");

    // A session through HAProxy over HTTPS, trusting the cluster CA alone.
    let pem = std::fs::read(&ca).expect("ca.crt");
    let client = common::ca_client(&pem, true);
    let url = format!("{lb_https}api/counter");
    for want in 1..=3 {
        let (status, counter, _) = increment(&client, &url).await;
        assert_eq!((status, counter), (200, Some(want)), "increment {want}");
    }
    let plain = common::http()
        .get(format!("http://{}/readyz", ops.lb))
        .send()
        .await;
    assert!(plain.is_err(), "HAProxy answered plain HTTP: {plain:?}");

    let down = ops.sh_ok(&["down"]);
    assert!(down.contains("haproxy stopped"), "{down}");
}

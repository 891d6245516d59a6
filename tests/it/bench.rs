//! `sessionraft bench` and `sessionraft bench-backup`, as processes:
//! - a synthetic backup verifies with `backup-info`, restores into a real 3-node cluster and
//!   every node ends up with its sessions;
//! - write, read and mixed runs against that cluster report successes, no errors, JSON;
//! - the etcd kind against a fake v3 JSON gateway: one key per user with the requested value
//!   size, non-2xx answers counted as errors (not throughput);
//! - the open loop (`--rate`) against the cluster (every arrival accounted for, every counter
//!   right) and against a fake app with planted faults (503 not applied, 504 applied, and
//!   acknowledged writes dropped: found, exit 1).

use std::collections::HashMap;
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::{binary, free_port, TestCluster, Tuning};
use actix_web::{web, App, HttpResponse, HttpServer};
use base64::Engine as _;
use serde_json::Value;

async fn cli(args: &[&str]) -> Output {
    tokio::process::Command::new(binary())
        .args(args)
        .env("SESSIONRAFT_LOG", "warn")
        .output()
        .await
        .expect("run sessionraft")
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `sessionraft bench ... --json`, parsed.
async fn bench(args: &[&str]) -> (Output, Value) {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = cli(&all).await;
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bench JSON: {e}\n{}", show(&out)));
    (out, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_backup_restores_and_bench_measures_a_cluster() {
    // 1. a synthetic backup, verified by backup-info
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("synthetic.srbackup");
    let path = file.to_str().expect("path");
    let out = cli(&[
        "bench-backup",
        "--sessions",
        "5000",
        "--out",
        path,
        "--state-bytes",
        "64",
    ])
    .await;
    assert!(out.status.success(), "bench-backup: {}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("wrote 5000 sessions"),
        "{}",
        show(&out)
    );
    let out = cli(&["backup-info", path]).await;
    assert!(out.status.success(), "backup-info: {}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": 5000 sessions"),
        "{}",
        show(&out)
    );

    // 2. restored into a 3-node cluster: every node holds the 5000 sessions
    let cluster = TestCluster::start(3, Tuning::default());
    cluster.wait_ready(Duration::from_secs(30)).await;
    let config = cluster.config.to_str().expect("config").to_string();
    let out = cli(&["restore", "--config", &config, "--from", path]).await;
    assert!(out.status.success(), "restore: {}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("restored 5000 sessions"),
        "{}",
        show(&out)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in 1..=3 {
        loop {
            let d = cluster.digest(id).await;
            if d["sessions"] == 5000 {
                break;
            }
            assert!(Instant::now() < deadline, "node {id}: {d}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // 3. bench runs over all three nodes: successes, no errors
    let targets = (1..=3)
        .map(|id| cluster.url(id, ""))
        .collect::<Vec<_>>()
        .join(",");
    for workload in ["write", "read", "mixed"] {
        let (out, v) = bench(&[
            "--targets",
            &targets,
            "--workload",
            workload,
            "--connections",
            "6",
            "--duration",
            "2",
            "--warmup",
            "0.5",
        ])
        .await;
        assert!(out.status.success(), "{workload}: {}", show(&out));
        assert_eq!(v["kind"], "session", "{v}");
        assert_eq!(v["workload"], workload, "{v}");
        assert_eq!(v["connections"], 6, "{v}");
        assert_eq!(v["duration_s"], 2.0, "{v}");
        assert!(v["ok"].as_u64().is_some_and(|n| n > 0), "{v}");
        assert_eq!(v["errors"], 0, "{workload}: {v}");
        let throughput = v["throughput_per_s"].as_f64().expect("throughput");
        assert!(
            (throughput - v["ok"].as_f64().expect("ok") / 2.0).abs() < 1.0,
            "{v}"
        );
        let (p50, p99, max) = (
            v["p50_ms"].as_f64().expect("p50"),
            v["p99_ms"].as_f64().expect("p99"),
            v["max_ms"].as_f64().expect("max"),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{v}");
        // What explains the number, over the same window: the machine's load and the Raft
        // log's growth (every write is in some entry; a batch carries several).
        let busy = v["machine_cpu_busy_percent"].as_f64().expect("machine CPU");
        assert!(0.0 < busy && busy <= 100.0, "{v}");
        assert!(
            v["context_switches_per_s"]
                .as_f64()
                .is_some_and(|cs| cs > 0.0),
            "{v}"
        );
        let entries = v["raft_entries_per_s"].as_f64().expect("Raft entries/s");
        if workload == "write" {
            // Every entry carries at least one write; the writes in flight at either edge of
            // the window (one per connection) may have an entry without being counted.
            let entries_in_window = entries * 2.0;
            let writes_counted = v["ok"].as_f64().expect("ok");
            assert!(
                0.0 < entries && entries_in_window <= writes_counted + 2.0 * 6.0 + 1.0,
                "{v}"
            );
        } else {
            assert!(entries >= 0.0, "{v}");
        }
        let line = String::from_utf8_lossy(&out.stderr);
        assert!(
            line.contains(&format!("bench session {workload}: 6 connections")),
            "{line}"
        );
    }
    // Each run's 6 users created one session each, besides the restored ones.
    let d = cluster.digest(1).await;
    assert_eq!(d["sessions"], 5018, "{d}");

    // The open loop: 200 arrivals scheduled in 1 s, whatever the answers; then every session's
    // counter read and checked against its acknowledged increments.
    let (out, v) = bench(&[
        "--targets",
        &targets,
        "--workload",
        "write",
        "--rate",
        "200",
        "--connections",
        "8",
        "--duration",
        "1",
        "--warmup",
        "0",
    ])
    .await;
    assert!(out.status.success(), "open loop: {}", show(&out));
    assert_open_loop_adds_up(&v, 200);
    assert!(v["ok"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert_eq!(v["check"]["sessions_checked"], 8, "{v}");
    assert_eq!(v["check"]["lost_writes"], 0, "{v}");
    assert_eq!(v["check"]["invented_writes"], 0, "{v}");

    // 4. a target that is down: setup fails, exit 1, a message
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = cli(&[
        "bench",
        "--targets",
        &dead,
        "--workload",
        "read",
        "--connections",
        "1",
        "--duration",
        "1",
        "--timeout",
        "1",
        "--setup-timeout",
        "1",
    ])
    .await;
    assert!(!out.status.success(), "{}", show(&out));
}

/// A fake server of the routes `configure` adds, on a thread of its own: its handle and base URL.
fn serve_fake(
    configure: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
) -> (actix_web::dev::ServerHandle, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            // Port 0: the kernel picks a free port at bind time (a probed port can be taken by
            // the cluster test starting alongside before this bind).
            let bound = HttpServer::new(move || App::new().configure(configure.clone()))
                .workers(1)
                .bind(("127.0.0.1", 0))
                .expect("bind");
            let port = bound.addrs()[0].port();
            let server = bound.run();
            tx.send((server.handle(), port)).expect("handle");
            let _ = server.await;
        })
    });
    let (handle, port) = rx.recv().expect("fake server started");
    (handle, format!("http://127.0.0.1:{port}"))
}

/// An open-loop report's counts add up: every scheduled arrival was sent or not sent, every
/// sent one answered by exactly one kind of outcome.
fn assert_open_loop_adds_up(v: &Value, scheduled: u64) {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}: {v}"));
    assert_eq!(v["mode"], "open-loop", "{v}");
    assert_eq!(n("scheduled"), scheduled, "{v}");
    assert_eq!(n("sent") + n("not_sent_in_flight_cap"), scheduled, "{v}");
    let other: u64 = v["other_status"]
        .as_object()
        .expect("other_status")
        .values()
        .map(|x| x.as_u64().expect("count"))
        .sum();
    let answered = n("ok") + n("refused_503") + n("unknown_504") + other + n("transport_errors");
    assert_eq!(answered, n("sent"), "{v}");
    assert_eq!(answered - n("ok"), n("errors"), "{v}");
}

/// A fake `/api/counter` app with planted faults, counting the increments of each session
/// (cookie `id=<n>`): of the increments on an existing session, every 3rd answers 503 without
/// applying, every 7th applies and answers 504, and, when `lose_every` is set, every
/// `lose_every`-th answers 200 without applying (an acknowledged write lost).
#[derive(Default)]
struct FakeCounter {
    counters: Mutex<Vec<u64>>,
    increments: Mutex<u64>,
    lose_every: u64,
}

fn fake_session(req: &actix_web::HttpRequest) -> Option<usize> {
    req.cookie("id")?.value().parse().ok()
}

async fn fake_increment(
    state: web::Data<FakeCounter>,
    req: actix_web::HttpRequest,
) -> HttpResponse {
    let mut counters = state.counters.lock().expect("counters");
    let Some(id) = fake_session(&req).filter(|id| *id < counters.len()) else {
        counters.push(1);
        return HttpResponse::Ok()
            .insert_header(("set-cookie", format!("id={}; Path=/", counters.len() - 1)))
            .json(serde_json::json!({ "counter": 1 }));
    };
    let k = {
        let mut n = state.increments.lock().expect("increments");
        *n += 1;
        *n
    };
    if k % 3 == 0 {
        return HttpResponse::ServiceUnavailable().body("overloaded");
    }
    if state.lose_every == 0 || k % state.lose_every != 0 {
        counters[id] += 1;
    }
    if k % 7 == 0 {
        return HttpResponse::GatewayTimeout().body("outcome unknown");
    }
    HttpResponse::Ok().json(serde_json::json!({ "counter": counters[id] }))
}

async fn fake_read(state: web::Data<FakeCounter>, req: actix_web::HttpRequest) -> HttpResponse {
    let counters = state.counters.lock().expect("counters");
    match fake_session(&req).and_then(|id| counters.get(id)) {
        Some(c) => HttpResponse::Ok().json(serde_json::json!({ "counter": c })),
        None => HttpResponse::Ok().json(serde_json::json!({ "counter": 0 })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_open_loop_counts_outcomes_and_finds_a_lost_acknowledged_write() {
    for lose_every in [0, 5] {
        let fake = web::Data::new(FakeCounter {
            lose_every,
            ..FakeCounter::default()
        });
        let state = fake.clone();
        let (handle, target) = serve_fake(move |cfg| {
            cfg.app_data(state.clone())
                .route("/api/counter", web::post().to(fake_increment))
                .route("/api/counter", web::get().to(fake_read));
        });
        let (out, v) = bench(&[
            "--targets",
            &target,
            "--workload",
            "write",
            "--rate",
            "300",
            "--connections",
            "6",
            "--duration",
            "1",
            "--warmup",
            "0.2",
        ])
        .await;
        // 0.2 s + 1 s at 300/s: 360 arrivals, the last 300 of them measured
        assert_open_loop_adds_up(&v, 300);
        assert_eq!(fake.counters.lock().expect("counters").len(), 6, "{v}");
        let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}: {v}"));
        assert!(n("refused_503") > 0 && n("unknown_504") > 0, "{v}");
        assert!(
            v["first_error"]
                .as_str()
                .is_some_and(|e| e.contains("HTTP 5")),
            "{v}"
        );
        let check = &v["check"];
        assert_eq!(check["sessions_checked"], 6, "{v}");
        assert_eq!(check["invented_writes"], 0, "{v}");
        if lose_every == 0 {
            // 503s applied nothing and 504s applied: the counters are within their ranges
            assert!(out.status.success(), "{}", show(&out));
            assert_eq!(check["lost_writes"], 0, "{v}");
        } else {
            assert!(
                !out.status.success(),
                "a lost write exits 1: {}",
                show(&out)
            );
            assert!(check["lost_writes"].as_u64().is_some_and(|l| l > 0), "{v}");
            assert!(
                check["first_problem"]
                    .as_str()
                    .is_some_and(|p| p.contains("increments were acknowledged")),
                "{v}"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("acknowledged writes lost"), "{err}");
        }
        handle.stop(false).await;
    }
}

/// A fake etcd v3 JSON gateway: puts store the value under the key, ranges return it; every
/// 4th range answers 503.
#[derive(Default)]
struct FakeEtcd {
    kv: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    ranges: Mutex<u64>,
}

fn b64(v: &Value) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str()?)
        .ok()
}

async fn put(state: web::Data<FakeEtcd>, body: web::Json<Value>) -> HttpResponse {
    match (b64(&body["key"]), b64(&body["value"])) {
        (Some(k), Some(v)) => {
            state.kv.lock().expect("kv").insert(k, v);
            HttpResponse::Ok().json(serde_json::json!({ "header": { "revision": "1" } }))
        }
        _ => HttpResponse::BadRequest().finish(),
    }
}

async fn range(state: web::Data<FakeEtcd>, body: web::Json<Value>) -> HttpResponse {
    let n = {
        let mut r = state.ranges.lock().expect("ranges");
        *r += 1;
        *r
    };
    if n % 4 == 0 {
        return HttpResponse::ServiceUnavailable().body("etcdserver: leader changed");
    }
    let Some(k) = b64(&body["key"]) else {
        return HttpResponse::BadRequest().finish();
    };
    let v = state.kv.lock().expect("kv").get(&k).cloned();
    let e = base64::engine::general_purpose::STANDARD;
    HttpResponse::Ok().json(match v {
        Some(v) => serde_json::json!({
            "header": {}, "count": "1",
            "kvs": [{ "key": e.encode(&k), "value": e.encode(&v) }]
        }),
        None => serde_json::json!({ "header": {} }),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_etcd_kind_puts_one_key_per_user_and_counts_errors() {
    let fake = web::Data::new(FakeEtcd::default());
    let state = fake.clone();
    let (handle, target) = serve_fake(move |cfg| {
        cfg.app_data(state.clone())
            .route("/v3/kv/put", web::post().to(put))
            .route("/v3/kv/range", web::post().to(range));
    });

    let (out, v) = bench(&[
        "--kind",
        "etcd",
        "--targets",
        &target,
        "--workload",
        "write",
        "--connections",
        "4",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--value-bytes",
        "100",
    ])
    .await;
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(v["kind"], "etcd", "{v}");
    assert!(v["ok"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert!(v["raft_entries_per_s"].is_null(), "not sessionraft: {v}");
    assert!(v["machine_cpu_busy_percent"].as_f64().is_some(), "{v}");
    {
        let kv = fake.kv.lock().expect("kv");
        assert_eq!(kv.len(), 4, "one key per user");
        assert!(kv.values().all(|v| v.len() == 100));
    }

    let (out, v) = bench(&[
        "--kind",
        "etcd",
        "--targets",
        &target,
        "--workload",
        "read",
        "--connections",
        "4",
        "--duration",
        "1",
        "--warmup",
        "0",
    ])
    .await;
    assert!(out.status.success(), "{}", show(&out));
    let (ok, errors) = (
        v["ok"].as_u64().expect("ok"),
        v["errors"].as_u64().expect("errors"),
    );
    // One range in four fails: errors are counted, not throughput.
    assert!(ok > 0 && errors > 0, "{v}");
    assert!(errors * 2 < ok && ok < errors * 4 + 10, "{v}");
    assert!(
        v["throughput_per_s"].as_f64().expect("throughput") <= ok as f64 + 1.0,
        "{v}"
    );
    assert!(
        v["first_error"]
            .as_str()
            .is_some_and(|e| e.contains("503") && e.contains("leader changed")),
        "{v}"
    );
    handle.stop(false).await;
}

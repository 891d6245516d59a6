//! Moving in from Redis without logging anyone out, and back out (issue 31): `sessionraft
//! import` and `sessionraft export` with the real apps and users of `tests/it/resp_clients.rs`
//! (this is its submodule: `App`, `RunningApp`, `User`, `RedisServer` and `Cluster` are the
//! parent's).
//!
//! - `sessions_move_in_while_users_count_and_back_out`: the Express app (connect-redis) and
//!   the Flask app (Flask-Session) on a real redis-server, 100 users each signed in and
//!   counting; `import` into a 3-node cluster (scripts/cluster.sh: HAProxy in front) while they
//!   keep counting, the apps stopped, a final `import` pass, the apps started again with the
//!   load balancer as their Redis URL: every user's next increment carries on from their last
//!   acknowledged counter, with the same cookie, and a user who logged out on the old Redis
//!   after the first pass stays logged out (`--delete-missing`). Then `export` into a fresh
//!   redis-server: the same keys, values and lifetimes (± 1 s).
//! - `import_names_what_it_cannot_copy_and_copies_the_rest`: a hash, a list and a value over
//!   `max_bulk_bytes` are named and counted as failed while the rest is copied; keys that
//!   expire during the copy do not come back; a source that is not Redis, a wrong and a missing
//!   password stop the run before anything is written.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::cookie::CookieStore;
use serde_json::Value;
use tempfile::TempDir;

use super::common::{binary, free_port};
use super::{wait_pong, App, Cluster, Proc, RedisServer, RunningApp, User};

const USERS_PER_APP: usize = 100;
const APPS: [App; 2] = [App::Express, App::Flask];

/// `sessionraft ARGS --json` (import or export): success, the summary, stderr.
async fn sessionraft(args: &[&str]) -> (bool, Value, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(binary())
            .args(&args)
            .arg("--json")
            .env_remove("SESSIONRAFT_CONFIG")
            .stdin(Stdio::null())
            .output()
    })
    .await
    .expect("join")
    .expect("run sessionraft");
    let summary = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), summary, stderr)
}

/// A key's value and its `PTTL` (ms; -1: no expiry).
type Keyspace = BTreeMap<Vec<u8>, (Vec<u8>, i64)>;

async fn connect(addr: SocketAddr) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}"))
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
}

/// Every key of `addr` (`SCAN`), then all their values and lifetimes in one pipeline.
async fn keyspace(addr: SocketAddr) -> Keyspace {
    let mut c = connect(addr).await;
    let mut cursor = "0".to_string();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    loop {
        let (next, batch): (String, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(&cursor)
            .arg("COUNT")
            .arg(500)
            .query_async(&mut c)
            .await
            .unwrap_or_else(|e| panic!("SCAN on {addr}: {e}"));
        keys.extend(batch);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("GET").arg(k).cmd("PTTL").arg(k);
    }
    let replies: Vec<(Option<Vec<u8>>, i64)> = if keys.is_empty() {
        Vec::new()
    } else {
        let flat: Vec<redis::Value> = pipe
            .query_async(&mut c)
            .await
            .unwrap_or_else(|e| panic!("GET/PTTL on {addr}: {e}"));
        flat.chunks_exact(2)
            .map(|p| {
                (
                    redis::from_redis_value(&p[0]).expect("GET reply"),
                    redis::from_redis_value(&p[1]).expect("PTTL reply"),
                )
            })
            .collect()
    };
    keys.into_iter()
        .zip(replies)
        .filter_map(|(k, (v, ttl))| v.map(|v| (k, (v, ttl))))
        .collect()
}

/// The same keys and values on both sides, lifetimes within a second; the number of keys.
async fn same_keyspace(a: SocketAddr, b: SocketAddr) -> Result<usize, String> {
    let (ka, kb) = tokio::join!(keyspace(a), keyspace(b));
    let only = |x: &Keyspace, y: &Keyspace| -> Vec<String> {
        x.keys()
            .filter(|k| !y.contains_key(*k))
            .take(5)
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    };
    if ka.len() != kb.len() || !only(&ka, &kb).is_empty() {
        return Err(format!(
            "{a} holds {} keys, {b} {}; only in {a}: {:?}; only in {b}: {:?}",
            ka.len(),
            kb.len(),
            only(&ka, &kb),
            only(&kb, &ka)
        ));
    }
    for (k, (va, ta)) in &ka {
        let (vb, tb) = &kb[k];
        let key = String::from_utf8_lossy(k);
        if va != vb {
            return Err(format!("{key}: another value on {b} than on {a}"));
        }
        let ttl_ok = if *ta < 0 || *tb < 0 {
            ta == tb
        } else {
            (ta - tb).abs() <= 1000
        };
        if !ttl_ok {
            return Err(format!("{key}: PTTL {ta} ms on {a}, {tb} ms on {b}"));
        }
    }
    Ok(ka.len())
}

/// Increments of one user until `stop`, a short pause between them.
async fn keep_counting(
    user: &mut User,
    app: &RunningApp,
    stop: &AtomicBool,
    acks: &AtomicUsize,
) -> Result<(), String> {
    while !stop.load(Ordering::Relaxed) {
        user.increments(app, 1, None, acks, Duration::from_millis(20))
            .await
            .map_err(|e| app.failure(&e))?;
    }
    Ok(())
}

/// The first errors of `results`, or nothing.
fn first_errors(what: &str, results: Vec<Result<(), String>>) -> Result<(), String> {
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{what}: {} users failed; the first:\n{}",
        errors.len(),
        errors.into_iter().take(2).collect::<Vec<_>>().join("\n")
    ))
}

fn count(summary: &Value, field: &str) -> u64 {
    summary[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in the summary {summary}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_move_in_while_users_count_and_back_out() {
    let t = Instant::now();
    let dir = TempDir::new().expect("temp dir");
    for d in ["old", "fresh"] {
        std::fs::create_dir(dir.path().join(d)).expect("dir");
    }
    let old = RedisServer::start(&dir.path().join("old")).await;
    let cluster = Cluster::new();
    cluster.sh_ok(&["up"]);
    wait_pong(cluster.lb_resp, Duration::from_secs(20))
        .await
        .expect("the load balancer's Redis frontend answers");
    let config = cluster.config.to_string_lossy().into_owned();
    let from_old = format!("redis://{}", old.addr);
    let import = ["import", "--from", &from_old, "--config", &config];

    // 1. the apps on the old Redis; 100 users of each sign in and count to 3
    let mut apps = Vec::new();
    for app in APPS {
        apps.push(
            RunningApp::start(app, old.addr, dir.path(), None)
                .await
                .expect("app on redis-server"),
        );
    }
    let acks = AtomicUsize::new(0);
    let mut users: Vec<Vec<User>> = APPS
        .iter()
        .enumerate()
        .map(|(a, app)| {
            (0..USERS_PER_APP)
                .map(|i| {
                    let mut u = User::new(a * 1000 + i);
                    if matches!(app, App::Flask) {
                        // waitress serves at most 100 connections (`connection_limit`): 100
                        // users' idle keep-alive connections would hold them all
                        u.client = reqwest::Client::builder()
                            .cookie_provider(u.jar.clone())
                            .pool_max_idle_per_host(0)
                            .timeout(Duration::from_secs(10))
                            .build()
                            .expect("client");
                    }
                    u
                })
                .collect()
        })
        .collect();
    let mut signing_in = Vec::new();
    for (app, us) in apps.iter().zip(users.iter_mut()) {
        for u in us.iter_mut() {
            signing_in.push(u.increments(app, 3, None, &acks, Duration::ZERO));
        }
    }
    first_errors(
        "signing in",
        futures_util::future::join_all(signing_in).await,
    )
    .expect("200 users count to 3 on redis-server");

    // 2. they keep counting while `import` copies (slowed down to last a few seconds)
    let stop = AtomicBool::new(false);
    let mut counting = Vec::new();
    for (app, us) in apps.iter().zip(users.iter_mut()) {
        for u in us.iter_mut() {
            counting.push(keep_counting(u, app, &stop, &acks));
        }
    }
    let acked_before = acks.load(Ordering::Relaxed);
    let first_pass = async {
        let slow = [&import[..], &["--rate", "80", "--batch", "8"]].concat();
        let r = sessionraft(&slow).await;
        stop.store(true, Ordering::Relaxed);
        r
    };
    let (counted, (ok, first, stderr)) =
        tokio::join!(futures_util::future::join_all(counting), first_pass);
    first_errors("counting during the import", counted).expect("users count during the import");
    assert!(ok, "the first import pass failed: {stderr}");
    let during = acks.load(Ordering::Relaxed) - acked_before;
    println!("first pass: {first} ({during} increments acknowledged by redis-server meanwhile)");
    assert_eq!(
        (count(&first, "matched"), count(&first, "created")),
        (200, 200),
        "the first pass copies all 200 sessions: {first}"
    );
    assert_eq!(count(&first, "failed"), 0, "{stderr}");

    // one Express user logs out on the old Redis after the first pass copied their session
    let leaver = &mut users[0][0];
    let base: reqwest::Url = apps[0].base.parse().expect("url");
    let left_cookie = leaver.jar.cookies(&base).expect("a session cookie");
    leaver
        .logout(&apps[0], None)
        .await
        .expect("logout on redis-server");

    // 3. the apps stop (the cut-over's pause); the final pass copies what changed since, and
    //    deletes what the old Redis no longer holds
    let bases: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    drop(apps);
    let final_pass = [&import[..], &["--delete-missing"]].concat();
    let (ok, last, stderr) = sessionraft(&final_pass).await;
    assert!(ok, "the final import pass failed: {stderr}");
    println!("final pass: {last}");
    assert!(
        count(&last, "updated") > 0
            && count(&last, "created") == 0
            && count(&last, "updated") + count(&last, "unchanged") == 199
            && count(&last, "failed") + count(&last, "expired") == 0
            && count(&last, "deleted") == 1,
        "the final pass updates the sessions that changed during the first, and only those, \
         and deletes the one logged out: {last}"
    );
    let n = same_keyspace(old.addr, cluster.lb_resp)
        .await
        .expect("after the final pass the cluster holds what redis-server holds");
    assert_eq!(n, 199);

    // 4. the switch: the apps start again with the load balancer as their Redis URL
    let mut apps = Vec::new();
    for app in APPS {
        apps.push(
            RunningApp::start(app, cluster.lb_resp, dir.path(), None)
                .await
                .expect("app on the cluster"),
        );
    }

    // 5. every user's next increment carries on from the last acknowledged one, same cookie;
    //    the one who logged out stays logged out
    let (status, v, _) = super::send(
        super::common::http()
            .get(apps[0].counter())
            .header(reqwest::header::COOKIE, left_cookie.clone()),
    )
    .await;
    assert_eq!(
        (status, v["counter"].as_i64()),
        (200, Some(0)),
        "a cookie logged out on redis-server before the switch reads a session on the cluster"
    );
    let mut next = Vec::new();
    for ((app, old_base), us) in apps.iter().zip(&bases).zip(users.iter_mut()) {
        for u in us.iter_mut().filter(|u| u.id != 0) {
            next.push(async move {
                let jar = u.jar.clone();
                let cookie = |base: &str| jar.cookies(&base.parse().expect("url"));
                let before = cookie(old_base).ok_or_else(|| u.fail("no cookie"))?;
                let last_acked = u.acked;
                u.increments(app, 1, None, &AtomicUsize::new(0), Duration::ZERO)
                    .await
                    .map_err(|e| app.failure(&e))?;
                u.check_read(app, None).await.map_err(|e| app.failure(&e))?;
                let after = cookie(&app.base).ok_or_else(|| u.fail("no cookie after"))?;
                if after != before {
                    return Err(u.fail(&format!("the cookie changed: {before:?} -> {after:?}")));
                }
                if u.acked != last_acked + 1 {
                    return Err(u.fail(&format!(
                        "counted {} after {last_acked} acknowledged on redis-server",
                        u.acked
                    )));
                }
                Ok(())
            });
        }
    }
    first_errors(
        "the first request through the cluster",
        futures_util::future::join_all(next).await,
    )
    .expect("every user carries on where they were");

    // 6. and back out: export into a fresh redis-server
    let fresh = RedisServer::start(&dir.path().join("fresh")).await;
    let to_fresh = format!("redis://{}", fresh.addr);
    let (ok, out, stderr) = sessionraft(&["export", "--to", &to_fresh, "--config", &config]).await;
    assert!(ok, "export failed: {stderr}");
    println!("export: {out}");
    assert_eq!(
        (count(&out, "created"), count(&out, "failed")),
        (199, 0),
        "{out}"
    );
    let n = same_keyspace(cluster.lb_resp, fresh.addr)
        .await
        .expect("the exported keyspace is the cluster's");
    assert_eq!(n, 199);
    println!(
        "200 users moved from redis-server to the cluster and their sessions back out: ok in \
         {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// A redis-server with `requirepass`, stopped by pid when dropped.
async fn redis_with_password(dir: &Path, password: &str) -> (Proc, SocketAddr) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            password,
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server: run `scripts/install-deps.sh --resp-clients`");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "redis-server on {addr} does not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (Proc(child), addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn import_names_what_it_cannot_copy_and_copies_the_rest() {
    let dir = TempDir::new().expect("temp dir");
    let source = RedisServer::start(dir.path()).await;
    let cluster = Cluster::new();
    cluster.sh_ok(&["up"]);
    wait_pong(cluster.lb_resp, Duration::from_secs(20))
        .await
        .expect("the load balancer's Redis frontend answers");
    let config = cluster.config.to_string_lossy().into_owned();

    let mut c = connect(source.addr).await;
    let mut pipe = redis::pipe();
    for i in 0..50 {
        pipe.cmd("SET")
            .arg(format!("sess:good{i}"))
            .arg(format!("{{\"counter\":{i}}}"))
            .arg("PX")
            .arg(600_000);
    }
    for i in 0..20 {
        pipe.cmd("SET")
            .arg(format!("sess:soon{i}"))
            .arg("x")
            .arg("PX")
            .arg(1500);
    }
    pipe.cmd("HSET").arg("sess:a-hash").arg("f").arg("v");
    pipe.cmd("RPUSH").arg("session:a-list").arg("v");
    // over the cluster's default [resp] max_bulk_bytes (512 KiB)
    pipe.cmd("SET").arg("sess:big").arg(vec![b'b'; 600 * 1024]);
    pipe.cmd("SET").arg("not-a-session").arg("x");
    let _: Vec<redis::Value> = pipe.query_async(&mut c).await.expect("seed the source");

    // 73 matching keys at 25 keys/s: about 3 s, so some of the 1.5 s keys expire on the way
    let from = format!("redis://{}", source.addr);
    let (ok, s, stderr) = sessionraft(&[
        "import", "--from", &from, "--config", &config, "--rate", "25", "--batch", "5",
    ])
    .await;
    println!("import: {s}\n{stderr}");
    assert!(!ok, "a run with keys it could not copy exits non-zero");
    for (key, why) in [
        ("sess:a-hash", "holds a hash, not a string"),
        ("session:a-list", "holds a list, not a string"),
        ("sess:big", "over the destination's max_bulk_bytes (524288)"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("key \"{key}\"")) && l.contains(why)),
            "no line names {key} ({why}): {stderr}"
        );
    }
    assert_eq!(count(&s, "matched"), 73, "{s}");
    assert_eq!(count(&s, "failed"), 3, "{s}");
    assert_eq!(
        count(&s, "created") + count(&s, "expired"),
        70,
        "every string key is copied or found expired: {s}"
    );
    assert!(count(&s, "created") >= 50, "{s}");

    // the good keys are there; nothing of the failed ones; the expiring ones do not come back
    let cluster_keys = keyspace(cluster.lb_resp).await;
    for i in 0..50 {
        let k = format!("sess:good{i}");
        let (v, ttl) = cluster_keys
            .get(k.as_bytes())
            .unwrap_or_else(|| panic!("{k} was not copied"));
        assert_eq!(v, format!("{{\"counter\":{i}}}").as_bytes());
        assert!((590_000..=600_000).contains(ttl), "{k}: PTTL {ttl}");
    }
    for k in ["sess:a-hash", "session:a-list", "sess:big", "not-a-session"] {
        assert!(
            !cluster_keys.contains_key(k.as_bytes()),
            "{k} is on the cluster"
        );
    }
    for (k, (_, ttl)) in &cluster_keys {
        if k.starts_with(b"sess:soon") {
            assert!(
                (0..=1500).contains(ttl),
                "{}: copied with PTTL {ttl}, more than it had",
                String::from_utf8_lossy(k)
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let later = keyspace(cluster.lb_resp).await;
    assert!(
        !later.keys().any(|k| k.starts_with(b"sess:soon")),
        "a key that expired on the source lives on in the cluster"
    );
    assert_eq!(later.len(), 50);

    // sources that stop the run before anything is written
    let (_pw_server, pw_addr) = redis_with_password(dir.path(), "the-right-password-123").await;
    let http = format!("redis://127.0.0.1:{}", cluster.http[0]);
    let wrong = format!("redis://:not-the-password@{pw_addr}");
    let none = format!("redis://{pw_addr}");
    for (url, says) in [
        (http.as_str(), "is not a Redis server"),
        (wrong.as_str(), "wrong password"),
        (none.as_str(), "wants a password"),
    ] {
        let (ok, _, stderr) = sessionraft(&["import", "--from", url, "--config", &config]).await;
        assert!(
            !ok && stderr.contains(says),
            "import --from {url}: {stderr}"
        );
        println!("import --from {url}: {}", stderr.trim());
    }
    assert_eq!(
        keyspace(cluster.lb_resp).await.len(),
        50,
        "nothing was written"
    );
}

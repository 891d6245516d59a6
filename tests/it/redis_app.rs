//! `examples/redis_app.rs` (the benchmark baseline: actix-session on Redis) against a real
//! `redis-server` on a free port: the counter increments, persists across requests (in Redis,
//! not in the cookie), and the cookie has the same attributes as a sessionraft node's.
//! Both processes are killed by pid at the end (also when the test fails).

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, increment, read, user};

/// Children killed (by pid) and reaped on drop.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn example_binary() -> PathBuf {
    let bin = common::binary()
        .parent()
        .expect("target dir")
        .join("examples/redis_app");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --release --workspace --all-targets`",
        bin.display()
    );
    bin
}

/// One RESP command over a fresh connection; the raw reply.
fn redis_cmd(port: u16, cmd: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(cmd.as_bytes())?;
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_app_counts_in_redis() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (redis_port, app_port) = (free_port(), free_port());
    let mut procs = Procs(Vec::new());
    let redis = Command::new("redis-server")
        .args(["--port", &redis_port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server not found: install it (scripts/install-deps.sh --all)");
    procs.0.push(redis);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis_cmd(redis_port, "PING\r\n").is_ok_and(|r| r.starts_with("+PONG")) {
        assert!(Instant::now() < deadline, "redis-server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let app = Command::new(example_binary())
        .arg(format!("127.0.0.1:{app_port}"))
        .arg(format!("redis://127.0.0.1:{redis_port}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn redis_app");
    procs.0.push(app);
    let base = format!("http://127.0.0.1:{app_port}");
    let url = format!("{base}/api/counter");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let up = common::http()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "redis_app did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The cookie: same attributes as a sessionraft node (HttpOnly, SameSite=Lax, no Max-Age:
    // a browser session; content encrypted, so not readable JSON).
    let first = common::http().post(&url).send().await.expect("first POST");
    assert_eq!(first.status(), 200);
    let set_cookie = first
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string();
    assert!(set_cookie.starts_with("id="), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(!set_cookie.contains("Max-Age"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    let reply: serde_json::Value = first.json().await.expect("json");
    assert_eq!(reply, serde_json::json!({ "counter": 1, "served_by": 0 }));

    // One user: 1, 2, 3, then reads see 3.
    let alice = user();
    for want in 1..=3 {
        assert_eq!(increment(&alice, &url).await, (200, Some(want), Some(0)));
    }
    for _ in 0..3 {
        assert_eq!(read(&alice, &url).await, (200, Some(3)));
    }
    // Another user starts from scratch; alice is unaffected.
    let bob = user();
    assert_eq!(increment(&bob, &url).await, (200, Some(1), Some(0)));
    assert_eq!(increment(&alice, &url).await, (200, Some(4), Some(0)));
    // No cookie: no session, counter 0.
    assert_eq!(read(&common::http(), &url).await, (200, Some(0)));

    // Logout deletes the session from Redis: a copy of the old cookie finds nothing.
    let carol = common::http();
    let made = carol.post(&url).send().await.expect("carol's POST");
    let cookie = made
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("carol's cookie")
        .to_string();
    let with_cookie = |req: reqwest::RequestBuilder| req.header("cookie", &cookie);
    let out = with_cookie(carol.post(format!("{base}/api/logout")))
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 200);
    let gone = out
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        gone.starts_with("id=;"),
        "logout removes the cookie: {gone}"
    );
    let after: serde_json::Value = with_cookie(carol.get(&url))
        .send()
        .await
        .expect("read after logout")
        .json()
        .await
        .expect("json");
    assert_eq!(after["counter"], 0, "the old cookie reads nothing: {after}");

    // The sessions live in Redis (first, alice, bob), with the idle TTL.
    let keys = redis_cmd(redis_port, "DBSIZE\r\n").expect("DBSIZE");
    assert_eq!(keys.trim(), ":3", "DBSIZE answered {keys:?}");
    let scan = redis_cmd(redis_port, "KEYS *\r\n").expect("KEYS");
    let key = scan
        .lines()
        .find(|l| !l.starts_with(['*', '$']))
        .expect("a key")
        .to_string();
    let ttl = redis_cmd(redis_port, &format!("TTL {key}\r\n")).expect("TTL");
    let ttl: i64 = ttl.trim().trim_start_matches(':').parse().expect("TTL int");
    assert!((1700..=1800).contains(&ttl), "TTL {ttl}");

    drop(procs);
}

//! Session hygiene against a real 3-node cluster: hostile cookies, strict ids, atomic renewal
//! on login, replay after logout, the per-user cap and "log out everywhere" (also across a
//! leader failure), oversized state, and cookie-key rotation with retirement.
//!
//! Cookies are handled by hand (no cookie jar), so each request says exactly what it carries;
//! the test knows the cluster's cookie secrets and decrypts what the nodes send back.

use crate::common;

use std::time::Duration;

use crate::common::{binary, metric, TestCluster, Tuning};
use actix_web::cookie::{Cookie, CookieJar, Key};
use serde_json::Value;
use sessionraft_web::server::cookie_key;

const READY: Duration = Duration::from_secs(30);
const K1: &str = "cookie-key-one-0123456789abcdef-0123456789";
const K2: &str = "cookie-key-two-0123456789abcdef-0123456789";
const ATTACKER: &str = "attacker-key-0123456789abcdef-0123456789ab";

/// A cookie value as it travels in headers (percent-encoded), encrypting `plain` under `secret`.
fn encrypt(secret: &str, plain: &str) -> String {
    let mut jar = CookieJar::new();
    jar.private_mut(&cookie_key(secret.as_bytes()))
        .add(Cookie::new("id", plain.to_string()));
    let c = jar.get("id").expect("cookie");
    let encoded = c.encoded().to_string();
    encoded.trim_start_matches("id=").to_string()
}

/// The plaintext of a header cookie value, if it decrypts under `secret`.
fn decrypt(secret: &str, value: &str) -> Option<String> {
    let parsed = Cookie::parse_encoded(format!("id={value}")).ok()?;
    let mut jar = CookieJar::new();
    jar.add_original(Cookie::new("id", parsed.value().to_string()));
    let key: Key = cookie_key(secret.as_bytes());
    jar.private(&key).get("id").map(|c| c.value().to_string())
}

/// The cluster's staleness bound for session reads (`reads.max_staleness_ms`).
async fn staleness_bound(c: &TestCluster) -> Duration {
    let s = c.status(1).await.expect("status");
    Duration::from_millis(s["reads"]["max_staleness_ms"].as_u64().expect("bound"))
}

/// One response: status, JSON body and the `id` cookie it set (None: none set; Some(""):
/// removed).
struct Reply {
    status: u16,
    body: Value,
    set_cookie: Option<String>,
    set_cookie_line: Option<String>,
}

async fn call(method: &str, url: &str, cookie: Option<&str>, json: Option<Value>) -> Reply {
    let client = common::http();
    let mut req = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    };
    if let Some(c) = cookie {
        req = req.header("cookie", format!("id={c}"));
    }
    if let Some(j) = json {
        req = req.json(&j);
    }
    let r = req.send().await.expect("answer");
    let status = r.status().as_u16();
    let line = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|l| l.starts_with("id="))
        .map(str::to_string);
    let set_cookie = line.as_ref().map(|l| {
        l.trim_start_matches("id=")
            .split(';')
            .next()
            .unwrap_or("")
            .to_string()
    });
    let body = r.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        body,
        set_cookie,
        set_cookie_line: line,
    }
}

fn session_toml(ring: &[&str], ttls: Option<(u64, u64)>) -> String {
    let quoted: Vec<String> = ring.iter().map(|k| format!("\"{k}\"")).collect();
    let mut s = format!(
        "\n[session]\ncookie_secrets = [{}]\nmax_sessions_per_user = 2\nmax_state_bytes = 64\n",
        quoted.join(", ")
    );
    if let Some((idle, absolute)) = ttls {
        s += &format!("idle_ttl_secs = {idle}\nabsolute_ttl_secs = {absolute}\n");
    }
    s
}

/// Replace the `[session]` section of the config (it is the last one) and restart every node.
async fn restart_with_ring(c: &mut TestCluster, ring: &[&str], ttls: Option<(u64, u64)>) {
    let text = std::fs::read_to_string(&c.config).expect("config");
    let base = text
        .split("\n[session]")
        .next()
        .unwrap_or(&text)
        .to_string();
    std::fs::write(&c.config, base + &session_toml(ring, ttls)).expect("write config");
    for id in 1..=3 {
        c.kill(id);
        c.start_node(id);
    }
    c.wait_ready(READY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_cookies_renewal_caps_and_key_rotation() {
    assert!(binary().exists(), "build the workspace first");
    let mut c = TestCluster::start_prepared(3, Tuning::default(), |_, config| {
        let text = std::fs::read_to_string(config).expect("config");
        std::fs::write(config, text + &session_toml(&[K1], None)).expect("write config");
    });
    c.wait_ready(READY).await;
    let url = |c: &TestCluster, id: u64, path: &str| c.url(id, path);

    // --- a fresh session, and what a fresh one looks like
    let a = call("POST", &url(&c, 1, "/api/counter"), None, None).await;
    assert_eq!(a.status, 200);
    let cookie_a = a.set_cookie.clone().expect("a cookie");
    let line = a.set_cookie_line.clone().unwrap_or_default();
    assert!(line.contains("HttpOnly"), "{line}");
    assert!(line.contains("SameSite=Lax"), "{line}");
    assert!(line.contains("Path=/"), "{line}");
    assert!(!line.to_ascii_lowercase().contains("domain"), "{line}");
    let sid_a = decrypt(K1, &cookie_a).expect("our cookie decrypts under K1");
    for _ in 0..2 {
        let r = call("POST", &url(&c, 2, "/api/counter"), Some(&cookie_a), None).await;
        assert_eq!(r.status, 200);
    }
    let r = call("GET", &url(&c, 3, "/api/counter"), Some(&cookie_a), None).await;
    assert_eq!(
        r.body["counter"], 3,
        "the session follows its cookie across nodes"
    );

    // --- hostile cookies: each is a fresh, empty session, never an error or someone else's
    let undecryptable_before = metric(
        &c,
        1,
        "unknown_session_ids_total",
        "reason=\"undecryptable\"",
    )
    .await;
    let oversized_before = metric(&c, 1, "unknown_session_ids_total", "reason=\"oversized\"").await;
    let forged = "Zm9yZ2VkLWNvb2tpZS12YWx1ZS10aGF0LWlzLW5vdC1lbmNyeXB0ZWQ";
    let truncated = &cookie_a[..cookie_a.len() - 5];
    let resigned = encrypt(ATTACKER, &sid_a); // the victim's id under the attacker's key
    let oversized = "A".repeat(5000);
    let mut flipped = cookie_a.clone().into_bytes();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    for (what, cookie) in [
        ("forged", forged.to_string()),
        ("truncated", truncated.to_string()),
        ("re-signed", resigned),
        ("bit-flipped", flipped),
        ("oversized", oversized),
        ("empty", String::new()),
    ] {
        let r = call("GET", &url(&c, 1, "/api/counter"), Some(&cookie), None).await;
        assert_eq!(r.status, 200, "{what}: {:?}", r.body);
        assert_eq!(r.body["counter"], 0, "{what} cookie reached a session");
    }
    assert!(
        metric(
            &c,
            1,
            "unknown_session_ids_total",
            "reason=\"undecryptable\""
        )
        .await
            >= undecryptable_before + 5.0,
        "refused cookies are counted"
    );
    assert!(
        metric(&c, 1, "unknown_session_ids_total", "reason=\"oversized\"").await > oversized_before
    );
    // a Cookie header far over any sane size: refused by the HTTP layer or ignored, never a 5xx
    let huge = format!("id={}", "B".repeat(40_000));
    let r = common::http()
        .get(url(&c, 1, "/api/counter"))
        .header("cookie", huge)
        .send()
        .await;
    if let Ok(r) = r {
        assert!(
            r.status().as_u16() < 500,
            "huge cookie header: {}",
            r.status()
        );
    }
    assert_eq!(
        common::http()
            .get(url(&c, 1, "/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    let log = c.log(1);
    assert!(
        log.contains("session cookie refused"),
        "refusals are logged"
    );
    assert!(
        !log.contains(forged),
        "a refused cookie value was logged verbatim"
    );

    // --- strict ids / fixation: an attacker-chosen id, correctly encrypted, is never adopted
    let chosen = "attacker-chosen-session-id-AAAAAAAAAAAAAAAAAAAA";
    let unknown_before = metric(
        &c,
        2,
        "unknown_session_ids_total",
        "reason=\"unknown_or_expired\"",
    )
    .await;
    let r = call(
        "POST",
        &url(&c, 2, "/api/counter"),
        Some(&encrypt(K1, chosen)),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["counter"], 1, "a fresh session");
    let issued = decrypt(K1, &r.set_cookie.clone().expect("cookie")).expect("decrypts");
    assert_ne!(issued, chosen, "the store adopted an id it never issued");
    assert!(
        metric(
            &c,
            2,
            "unknown_session_ids_total",
            "reason=\"unknown_or_expired\""
        )
        .await
            > unknown_before
    );
    assert!(
        !c.log(2).contains(chosen),
        "an unknown id was logged verbatim"
    );

    // --- login renews the id atomically: the pre-login id is dead, the state moved
    let login = call(
        "POST",
        &url(&c, 3, "/api/login"),
        Some(&cookie_a),
        Some(serde_json::json!({ "user": "alice" })),
    )
    .await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    assert_eq!(login.body["counter"], 3, "the state moved with the renewal");
    let cookie_b = login.set_cookie.clone().expect("renewed cookie");
    let sid_b = decrypt(K1, &cookie_b).expect("decrypts");
    assert_ne!(sid_b, sid_a, "login kept the session id");
    let r = call("GET", &url(&c, 1, "/api/whoami"), Some(&cookie_b), None).await;
    assert_eq!(r.body["user"], "alice");
    assert_eq!(r.body["counter"], 3);
    // the pre-login id is another cookie than the one the login re-issued: on another node its
    // death is visible within the staleness bound (at once in `linearizable` mode)
    tokio::time::sleep(staleness_bound(&c).await).await;
    let fixated = call("GET", &url(&c, 2, "/api/whoami"), Some(&cookie_a), None).await;
    assert_eq!(
        fixated.body["user"],
        Value::Null,
        "the pre-login id still signs in"
    );
    assert_eq!(
        fixated.body["counter"], 0,
        "the pre-login id still reaches the state"
    );
    assert!(
        (1..=3).any(|id| c.log(id).contains("session id renewed")),
        "renewal goes through the atomic rename"
    );

    // --- replay after logout: refused on every node once the logout is visible everywhere,
    // i.e. after the staleness bound of session reads (`[raft] max_staleness_ms`; in
    // `linearizable` mode at once)
    let out = call("POST", &url(&c, 1, "/api/logout"), Some(&cookie_b), None).await;
    assert_eq!(out.status, 200);
    tokio::time::sleep(staleness_bound(&c).await).await;
    let replay = call("GET", &url(&c, 3, "/api/whoami"), Some(&cookie_b), None).await;
    assert_eq!(replay.status, 200);
    assert_eq!(
        replay.body["user"],
        Value::Null,
        "a cookie replayed after logout signs in"
    );

    // --- oversized state: 413 with a clear message, nothing stored
    let long_user = "x".repeat(60);
    let r = call("POST", &url(&c, 1, "/api/counter"), None, None).await;
    let cookie_big = r.set_cookie.expect("cookie");
    let r = call(
        "POST",
        &url(&c, 1, "/api/login"),
        Some(&cookie_big),
        Some(serde_json::json!({ "user": long_user })),
    )
    .await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    assert!(
        r.body["error"]
            .as_str()
            .unwrap_or("")
            .contains("exceeds the limit of 64 bytes"),
        "{:?}",
        r.body
    );
    let r = call("GET", &url(&c, 2, "/api/whoami"), Some(&cookie_big), None).await;
    assert_eq!(
        r.body["user"],
        Value::Null,
        "the oversized state was stored"
    );
    assert_eq!(
        r.body["counter"], 1,
        "the refused write damaged the session"
    );
    // request bodies are bounded too
    let r = common::http()
        .post(url(&c, 1, "/api/login"))
        .header("content-type", "application/json")
        .body(format!("{{\"user\": \"{}\"}}", "y".repeat(100_000)))
        .send()
        .await
        .expect("answer");
    assert!(
        r.status().is_client_error(),
        "a 100 kB login body: {}",
        r.status()
    );

    // --- per-user cap (2): a third sign-in evicts the oldest, consistently after a failover
    let mut bob = Vec::new();
    for node in 1..=3 {
        let r = call("POST", &url(&c, node, "/api/counter"), None, None).await;
        let anon = r.set_cookie.expect("cookie");
        let r = call(
            "POST",
            &url(&c, node, "/api/login"),
            Some(&anon),
            Some(serde_json::json!({ "user": "bob" })),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        bob.push(r.set_cookie.expect("cookie"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let who = |cookie: String, node: u64, c: &TestCluster| {
        let u = url(c, node, "/api/whoami");
        async move { call("GET", &u, Some(&cookie), None).await.body["user"].clone() }
    };
    // the eviction changed another session than the evicting one's: visible everywhere within
    // the staleness bound
    tokio::time::sleep(staleness_bound(&c).await).await;
    assert_eq!(
        who(bob[0].clone(), 2, &c).await,
        Value::Null,
        "the oldest was not evicted"
    );
    assert_eq!(who(bob[1].clone(), 3, &c).await, "bob");
    assert_eq!(who(bob[2].clone(), 1, &c).await, "bob");
    let listed = call("GET", &url(&c, 1, "/api/sessions"), Some(&bob[2]), None).await;
    assert_eq!(
        listed.body["sessions"].as_array().map(Vec::len),
        Some(2),
        "{:?}",
        listed.body
    );
    assert!(
        !listed
            .body
            .to_string()
            .contains(&decrypt(K1, &bob[2]).expect("sid")),
        "the session list shows raw session ids"
    );
    let leader = c.leader(READY).await;
    c.kill(leader);
    let survivor = (1..=3).find(|id| *id != leader).expect("survivor");
    let listed = call(
        "GET",
        &url(&c, survivor, "/api/sessions"),
        Some(&bob[1]),
        None,
    )
    .await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.body["sessions"].as_array().map(Vec::len), Some(2));
    assert_eq!(who(bob[0].clone(), survivor, &c).await, Value::Null);
    c.start_node(leader);
    c.wait_ready(READY).await;

    // --- log out everywhere
    let r = call(
        "POST",
        &url(&c, 1, "/api/logout-everywhere"),
        Some(&bob[1]),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["revoked"], 2);
    tokio::time::sleep(staleness_bound(&c).await).await;
    assert_eq!(
        who(bob[2].clone(), 3, &c).await,
        Value::Null,
        "another device stayed signed in"
    );
    assert_eq!(who(bob[1].clone(), 2, &c).await, Value::Null);

    // --- key rotation: [K2, K1] — K1 cookies still work and are re-issued under K2
    let r = call("POST", &url(&c, 1, "/api/counter"), None, None).await;
    let carol_anon = r.set_cookie.expect("cookie");
    let r = call(
        "POST",
        &url(&c, 1, "/api/login"),
        Some(&carol_anon),
        Some(serde_json::json!({ "user": "carol" })),
    )
    .await;
    let carol_k1 = r.set_cookie.expect("cookie"); // will visit while K1 is an old key
    let r = call("POST", &url(&c, 2, "/api/counter"), None, None).await;
    let dave_k1 = r.set_cookie.expect("cookie"); // will not visit before K1 is retired
    let r = call("POST", &url(&c, 2, "/api/counter"), Some(&dave_k1), None).await;
    assert_eq!(r.body["counter"], 2);

    restart_with_ring(&mut c, &[K2, K1], None).await;
    let reissued_before = metric(&c, 3, "session_cookies_reissued_total", "").await;
    let r = call("GET", &url(&c, 3, "/api/whoami"), Some(&carol_k1), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["user"], "carol",
        "a cookie under the older key lost its session"
    );
    let carol_k2 = r.set_cookie.expect("re-issued cookie");
    assert!(
        decrypt(K2, &carol_k2).is_some(),
        "not re-issued under the newest key"
    );
    assert!(decrypt(K1, &carol_k2).is_none());
    assert_eq!(
        decrypt(K2, &carol_k2),
        decrypt(K1, &carol_k1),
        "re-issue changed the session id"
    );
    assert!(metric(&c, 3, "session_cookies_reissued_total", "").await > reissued_before);

    // --- K1 retired: [K2] — only sessions still under K1 are logged out
    restart_with_ring(&mut c, &[K2], None).await;
    let r = call("GET", &url(&c, 1, "/api/whoami"), Some(&carol_k2), None).await;
    assert_eq!(
        r.body["user"], "carol",
        "retiring K1 logged out a re-issued session"
    );
    let r = call("GET", &url(&c, 2, "/api/counter"), Some(&dave_k1), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["counter"], 0,
        "a cookie under a retired key still reaches its session"
    );

    // --- server-side timeouts, whatever the cookie says: idle 3 s, absolute 8 s (margins of
    // seconds around each: a request may take a second on a busy CI machine)
    restart_with_ring(&mut c, &[K2], Some((3, 8))).await;
    let r = call("POST", &url(&c, 1, "/api/counter"), None, None).await;
    let busy = r.set_cookie.expect("cookie");
    let r = call("POST", &url(&c, 2, "/api/counter"), None, None).await;
    let idle = r.set_cookie.expect("cookie");
    let started = std::time::Instant::now();
    // the busy session is used every 0.5 s: the idle timeout never fires ...
    while started.elapsed() < Duration::from_millis(5000) {
        let r = call("GET", &url(&c, 3, "/api/counter"), Some(&busy), None).await;
        assert_eq!(
            r.body["counter"], 1,
            "a session in use expired before its absolute timeout"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // ... the idle one (unused for 5 s > 3 s) is gone, although its cookie is still presented
    let r = call("GET", &url(&c, 1, "/api/counter"), Some(&idle), None).await;
    assert_eq!(r.body["counter"], 0, "the idle timeout was not enforced");
    // ... and 8 s after its creation the busy one is gone too (absolute timeout)
    while started.elapsed() < Duration::from_millis(8600) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = call("GET", &url(&c, 2, "/api/counter"), Some(&busy), None).await;
    assert_eq!(
        r.body["counter"], 0,
        "the absolute timeout was not enforced"
    );

    // --- after all of it the cluster serves and agrees
    c.wait_ready(READY).await;
    let r = call("POST", &url(&c, 3, "/api/counter"), Some(&carol_k2), None).await;
    assert_eq!(r.status, 200);
    let deadline = std::time::Instant::now() + READY;
    loop {
        let d: Vec<Value> = futures_util::future::join_all((1..=3).map(|id| c.digest(id))).await;
        if d.iter().all(|x| {
            x["digest"] == d[0]["digest"]
                && x["applied_index"] == d[0]["applied_index"]
                && !x["applied_index"].is_null()
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replicas disagree: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

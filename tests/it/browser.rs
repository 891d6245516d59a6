//! The embedded frontend in a real browser (Debian's chromium over chromedriver/WebDriver)
//! against a real 3-node cluster: session continuity across nodes, the live dashboard, a leader
//! SIGKILL seen without a reload, and the admin token. Screenshots go to `target/screenshots/`.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{TestCluster, Tuning, ADMIN_TOKEN};
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    let port = common::free_port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (scripts/install-deps.sh --all installs chromium-driver)");
    Driver {
        child,
        port,
        _profile: tempfile::TempDir::new().expect("profile dir"),
    }
}

async fn browser(driver: &Driver) -> Client {
    // Two rustls crypto providers are compiled into this test; pick one (only the local
    // WebDriver connection is made, over plain HTTP).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut caps = Capabilities::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    let url = format!("http://127.0.0.1:{}", driver.port);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut builder = ClientBuilder::rustls().expect("rustls");
        match builder.capabilities(caps.clone()).connect(&url).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot start chromium: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// chromedriver's browser console log (`POST /session/{id}/se/log`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// Console errors since the last call (severity SEVERE), ignoring the expected failed
/// requests to the node this test killed on purpose and deliberate 401s.
async fn console_errors(c: &Client) -> Vec<String> {
    let v = c.issue_cmd(BrowserLog).await.expect("browser log");
    v.as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["level"] == "SEVERE")
                .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn text(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Poll `cond` (page state read through JS or the DOM) until true.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap_or(Value::Null)
}

fn screenshot_dir() -> std::path::PathBuf {
    let dir = common::binary()
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn save_screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn fill(c: &Client, css: &str, value: &str) {
    let e = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    e.clear().await.expect("clear");
    e.send_keys(value).await.expect("type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_in_a_real_browser() {
    // every node also serves the Redis protocol: the dashboard counts its keys
    let (mut cluster, resp_ports) = TestCluster::start_with_doors(3, Tuning::default(), "");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let driver = chromedriver();
    let c = browser(&driver).await;

    // 1. sign in on node 1, increment, open node 2 in the same profile: same user, same counter
    c.goto(&cluster.url(1, "/")).await.expect("open demo");
    c.wait()
        .for_element(Locator::Css("#login-name"))
        .await
        .expect("login form");
    fill(&c, "#login-name", "alice").await;
    click(&c, "#login-btn").await;
    eventually("signed in as alice", || async {
        text(&c, "#whoami-user").await == "alice"
    })
    .await;
    for n in 1..=3 {
        click(&c, "#inc-btn").await;
        let (c, want) = (&c, n.to_string());
        eventually(&format!("counter shows {n}"), || {
            let want = want.clone();
            async move { text(c, "#counter").await.trim() == want }
        })
        .await;
    }
    save_screenshot(&c, "demo.png").await;
    assert!(
        console_errors(&c).await.is_empty(),
        "console errors on the demo page"
    );
    c.goto(&cluster.url(2, "/")).await.expect("open node 2");
    eventually("node 2 knows alice", || async {
        text(&c, "#whoami-user").await == "alice"
    })
    .await;
    eventually("node 2 shows counter 3", || async {
        text(&c, "#counter").await.trim() == "3"
    })
    .await;
    // the switch-node control links every node
    let links = c
        .find_all(Locator::Css("#node-links a.node-link"))
        .await
        .expect("links");
    assert_eq!(links.len(), 3, "one link per node");

    // 2. the dashboard on node 1 shows three nodes and exactly one leader
    c.goto(&cluster.url(1, "/cluster"))
        .await
        .expect("open dashboard");
    eventually("three node cards, one leader", || async {
        let v = js(
            &c,
            "return [document.querySelectorAll('.node-card').length, \
             document.querySelectorAll('.node-card[data-role=\"leader\"]').length];",
        )
        .await;
        v == json!([3, 1])
    })
    .await;
    // three keys written through node 2's Redis-protocol door show in the summary
    for key in ["k1", "k2", "k3"] {
        let reply = common::resp_once(resp_ports[1], &[b"SET", key.as_bytes(), b"v"]).await;
        assert_eq!(reply.expect("SET answered"), b"+OK\r\n", "SET {key}");
    }
    eventually("the dashboard counts 3 keys", || async {
        text(&c, "#stat-keys").await.trim() == "3"
    })
    .await;
    let ops = text(&c, "#stat-resp-ops").await;
    assert!(
        ops.trim().parse::<f64>().is_ok(),
        "Redis-protocol ops/s shown as a number: {ops:?}"
    );
    save_screenshot(&c, "dashboard.png").await;
    // the leader's card says "leader" once in its head (its role pill), not in two badges
    let marks = js(
        &c,
        "const head = document.querySelector('.node-card[data-role=\"leader\"] .node-card-head'); \
         return Array.from(head.querySelectorAll('*')) \
           .filter(e => e.children.length === 0 && !e.hidden && /leader/i.test(e.textContent)) \
           .map(e => e.textContent);",
    )
    .await;
    assert_eq!(marks, json!(["★ leader"]), "leader marks in the card head");
    assert!(
        console_errors(&c).await.is_empty(),
        "console errors on the dashboard"
    );

    // 3. SIGKILL the leader; a surviving node's dashboard shows it unreachable and a new leader,
    //    without a reload
    let leader = cluster.leader(WAIT).await;
    let survivor = (1..=3).find(|n| *n != leader).expect("survivor");
    c.goto(&cluster.url(survivor, "/cluster"))
        .await
        .expect("open survivor dashboard");
    eventually("survivor dashboard live", || async {
        text(&c, "#leader-id").await.trim() == leader.to_string()
    })
    .await;
    js(&c, "window.__noReloadMarker = 42; return true;").await;
    cluster.kill(leader);
    let killed_at = Instant::now();
    eventually(
        "killed leader shown unreachable, new leader elected",
        || async {
            let v = js(
                &c,
                &format!(
                "const dead = document.querySelector('.node-card[data-node-id=\"{leader}\"]'); \
                 return [dead ? dead.getAttribute('data-role') : null, \
                 document.querySelector('#leader-id').textContent.trim()];"
            ),
            )
            .await;
            v[0] == "unreachable"
                && v[1] != json!(leader.to_string())
                && v[1] != "none"
                && v[1] != ""
        },
    )
    .await;
    eprintln!(
        "dashboard showed the failover after {:?}",
        killed_at.elapsed()
    );
    assert_eq!(
        js(&c, "return window.__noReloadMarker;").await,
        json!(42),
        "the page reloaded"
    );
    save_screenshot(&c, "dashboard-failover.png").await;

    // 4. admin without the token is refused; with it, revoking alice signs her out
    c.execute("sessionStorage.clear(); return true;", vec![])
        .await
        .expect("js");
    c.goto(&cluster.url(survivor, "/cluster"))
        .await
        .expect("reopen dashboard");
    js(&c, "document.querySelector('details') && (document.querySelector('details').open = true); return true;").await;
    fill(&c, "#admin-token", "").await;
    fill(&c, "#user-name", "alice").await;
    click(&c, "#revoke-btn").await;
    eventually("401 shown", || async {
        text(&c, "#admin-result").await.contains("401")
    })
    .await;
    // still signed in
    let api = common::http();
    fill(&c, "#admin-token", ADMIN_TOKEN).await;
    click(&c, "#list-sessions-btn").await;
    eventually("alice's sessions listed", || async {
        js(
            &c,
            "return document.querySelectorAll('#sessions-table tbody tr').length;",
        )
        .await
            == json!(1)
    })
    .await;
    click(&c, "#revoke-btn").await;
    eventually("revoked shown", || async {
        text(&c, "#admin-result")
            .await
            .to_lowercase()
            .contains("revoked")
    })
    .await;
    c.goto(&cluster.url(survivor, "/"))
        .await
        .expect("open demo");
    eventually("alice is signed out", || async {
        c.find(Locator::Css("#login-name")).await.is_ok()
            && text(&c, "#whoami-user").await.is_empty()
    })
    .await;
    // the admin API itself refuses requests without the token
    let r = api
        .post(cluster.url(survivor, "/admin/users/alice/revoke"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 401);

    // phone width: still usable, screenshot for the record
    c.set_window_size(390, 844).await.expect("resize");
    c.goto(&cluster.url(survivor, "/cluster"))
        .await
        .expect("dashboard");
    eventually("cards rendered", || async {
        js(&c, "return document.querySelectorAll('.node-card').length;").await == json!(3)
    })
    .await;
    save_screenshot(&c, "dashboard-phone.png").await;
    let errors: Vec<String> = console_errors(&c)
        .await
        .into_iter()
        .filter(|e| !e.contains("401"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    c.close().await.expect("close browser");
}

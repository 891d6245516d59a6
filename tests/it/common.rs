//! Test harness: real `sessionraft` processes on free ports with temporary data dirs, readiness
//! by polling, and cleanup by pid (each child is killed and reaped when the harness drops).
#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
pub const ADMIN_TOKEN: &str = "integration-admin-token-0123";

/// The `sessionraft` binary built in the same target directory as this test.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/sessionraft
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("sessionraft");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --release --workspace` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A free TCP port on 127.0.0.1 for a node or a load balancer to bind later.
///
/// Ports come from 10000-19999, below the kernel's ephemeral range (32768-60999 by default): a
/// port taken there with bind(0) and released can be handed out again as the source port of any
/// outgoing connection (the nodes make many) before the node binds it, and two calls can even
/// return the same port. Each port is handed out once per test process (tests of one binary run
/// in parallel threads) and only after a bind probe succeeded. `scripts/chaos.sh` picks from
/// 20000-32000, so the two never compete.
pub fn free_port() -> u16 {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    const LOW: u32 = 10_000;
    const SPAN: u32 = 10_000;
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    // a start that differs between processes and between calls
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default()
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for i in 0..SPAN {
        let port = (LOW + (seed.wrapping_add(i.wrapping_mul(7_919)) % SPAN)) as u16;
        if handed_out.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        handed_out.insert(port);
        return port;
    }
    panic!("no free port in {LOW}-{}", LOW + SPAN - 1)
}

/// Extra `[raft]` settings for a test cluster.
#[derive(Clone)]
pub struct Tuning {
    pub snapshot_logs_since_last: u64,
    pub max_in_snapshot_log_to_keep: u64,
    pub request_deadline_ms: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            snapshot_logs_since_last: 5000,
            max_in_snapshot_log_to_keep: 1000,
            request_deadline_ms: 3000,
        }
    }
}

/// Write `cluster.toml` into `dir`: node `i + 1` on `127.0.0.1:ports[i]` with data under
/// `dir/data/node<id>`, short election timeouts, and an optional load balancer port.
pub fn write_config(dir: &Path, ports: &[u16], tuning: &Tuning, lb_port: Option<u16>) -> PathBuf {
    let hosts = vec!["127.0.0.1".to_string(); ports.len()];
    write_config_on(dir, &hosts, ports, tuning, lb_port)
}

/// [`write_config`] with node `i + 1` on `hosts[i]:ports[i]` (e.g. 127.0.0.11, 127.0.0.12, …).
pub fn write_config_on(
    dir: &Path,
    hosts: &[String],
    ports: &[u16],
    tuning: &Tuning,
    lb_port: Option<u16>,
) -> PathBuf {
    let mut toml = format!(
        "[cluster]\nname = \"test\"\nsecret = \"{SECRET}\"\nadmin_token = \"{ADMIN_TOKEN}\"\n\n\
         [raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 400\nelection_timeout_max_ms = 800\n\
         request_deadline_ms = {}\nrpc_timeout_ms = 1000\nsnapshot_logs_since_last = {}\n\
         max_in_snapshot_log_to_keep = {}\n",
        tuning.request_deadline_ms,
        tuning.snapshot_logs_since_last,
        tuning.max_in_snapshot_log_to_keep
    );
    if let Some(lb) = lb_port {
        let _ = write!(toml, "\n[load_balancer]\naddr = \"127.0.0.1:{lb}\"\n");
    }
    for (i, port) in ports.iter().enumerate() {
        let _ = write!(
            toml,
            "\n[[node]]\nid = {}\nhttp_addr = \"{}:{port}\"\ndata_dir = \"data/node{}\"\n",
            i + 1,
            hosts[i],
            i + 1
        );
    }
    let config = dir.join("cluster.toml");
    std::fs::write(&config, toml).expect("write config");
    config
}

/// How [`TestCluster::start_with`] runs its nodes.
#[derive(Clone, Default)]
pub struct ClusterOptions {
    pub tuning: Tuning,
    /// Node `i + 1` listens on `hosts[i]` (default: 127.0.0.1 for every node).
    pub hosts: Option<Vec<String>>,
    /// Extra environment variables of every `sessionraft serve` process.
    pub env: Vec<(String, String)>,
}

pub struct TestCluster {
    pub dir: TempDir,
    pub config: PathBuf,
    pub ports: Vec<u16>,
    hosts: Vec<String>,
    env: Vec<(String, String)>,
    children: Vec<Option<Child>>,
}

impl TestCluster {
    /// Write a config for `n` nodes and start them all.
    pub fn start(n: usize, tuning: Tuning) -> Self {
        Self::start_with(
            n,
            ClusterOptions {
                tuning,
                ..ClusterOptions::default()
            },
        )
    }

    /// [`TestCluster::start`] with per-node hosts and extra environment variables.
    pub fn start_with(n: usize, opts: ClusterOptions) -> Self {
        let dir = TempDir::new().expect("temp dir");
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let hosts = opts
            .hosts
            .unwrap_or_else(|| vec!["127.0.0.1".to_string(); n]);
        assert_eq!(hosts.len(), n, "one host per node");
        let config = write_config_on(dir.path(), &hosts, &ports, &opts.tuning, None);
        let mut c = Self {
            dir,
            config,
            ports,
            hosts,
            env: opts.env,
            children: (0..n).map(|_| None).collect(),
        };
        for id in 1..=n as u64 {
            c.start_node(id);
        }
        c
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("data/node{id}"))
    }

    pub fn url(&self, id: u64, path: &str) -> String {
        let i = id as usize - 1;
        format!("http://{}:{}{path}", self.hosts[i], self.ports[i])
    }

    /// The process id of a running node.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.children[id as usize - 1].as_ref().map(Child::id)
    }

    pub fn start_node(&mut self, id: u64) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node{id}.log")))
            .expect("log file");
        let child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&self.config)
            .args(["--node", &id.to_string()])
            .env("SESSIONRAFT_LOG", "info,openraft=warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sessionraft");
        self.children[id as usize - 1] = Some(child);
    }

    /// SIGKILL one node (by its pid) and reap it.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.children[id as usize - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{id}.log"))).unwrap_or_default()
    }

    pub fn alive(&self) -> Vec<u64> {
        (1..=self.children.len() as u64)
            .filter(|id| self.children[*id as usize - 1].is_some())
            .collect()
    }

    /// `/cluster/status` of a node, if it answers.
    pub async fn status(&self, id: u64) -> Option<Value> {
        let r = http()
            .get(self.url(id, "/cluster/status"))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// Wait until every live node is ready (knows a leader, applied close to its log).
    pub async fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for id in self.alive() {
            loop {
                let ok = http()
                    .get(self.url(id, "/readyz"))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if ok {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {id} not ready in {timeout:?}:\n{}",
                    self.log(id)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The leader as agreed by the live nodes.
    pub async fn leader(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen = Vec::new();
            for id in self.alive() {
                if let Some(s) = self.status(id).await {
                    seen.push(s["leader"].as_u64());
                }
            }
            if let Some(Some(l)) = seen.first() {
                if seen.iter().all(|x| *x == Some(*l)) && self.alive().contains(l) {
                    return *l;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader in {timeout:?}: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `/cluster/digest` of a node.
    pub async fn digest(&self, id: u64) -> Value {
        http()
            .get(self.url(id, "/cluster/digest"))
            .send()
            .await
            .expect("digest")
            .json()
            .await
            .expect("digest json")
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut() {
            if let Some(mut c) = c.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A plain client (no cookies) with a request timeout.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Runs `scripts/dev-certs.sh --config CONFIG --out OUT ARGS…` (this build's binary) and
/// appends the `[tls]` snippet it prints to `config`; returns the snippet.
pub fn add_dev_certs(config: &Path, out: &Path, args: &[&str]) -> String {
    let run = std::process::Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dev-certs.sh"))
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(args)
        .env("SESSIONRAFT_BIN", binary())
        .output()
        .expect("run scripts/dev-certs.sh");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "dev-certs.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let snippet = stdout[stdout.find("[tls]").expect("a [tls] snippet on stdout")..].to_owned();
    let mut text = std::fs::read_to_string(config).expect("read config");
    text.push('\n');
    text.push_str(&snippet);
    std::fs::write(config, text).expect("write config");
    snippet
}

/// A client that trusts the cluster's CA (PEM) alone, with a request timeout, keeping cookies
/// when `cookies`.
pub fn ca_client(ca_pem: &[u8], cookies: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).expect("CA PEM"))
        .cookie_store(cookies)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A browser-like user: its own cookie jar, shared across nodes (cookies ignore ports).
pub fn user() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// POST /api/counter, returning (status, counter, served_by).
pub async fn increment(client: &reqwest::Client, url: &str) -> (u16, Option<i64>, Option<u64>) {
    match client.post(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, v["counter"].as_i64(), v["served_by"].as_u64())
        }
        Err(_) => (0, None, None),
    }
}

/// GET /api/counter.
pub async fn read(client: &reqwest::Client, url: &str) -> (u16, Option<i64>) {
    match client.get(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, v["counter"].as_i64())
        }
        Err(_) => (0, None),
    }
}

impl TestCluster {
    /// [`TestCluster::start`], with `prepare(dir, config)` run after the config is written and
    /// before any node starts: e.g. make certificates and append a `[tls]` section.
    pub fn start_prepared(n: usize, tuning: Tuning, prepare: impl FnOnce(&Path, &Path)) -> Self {
        let dir = TempDir::new().expect("temp dir");
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let config = write_config(dir.path(), &ports, &tuning, None);
        prepare(dir.path(), &config);
        let mut c = Self {
            dir,
            config,
            ports,
            hosts: vec!["127.0.0.1".to_string(); n],
            env: Vec::new(),
            children: (0..n).map(|_| None).collect(),
        };
        for id in 1..=n as u64 {
            c.start_node(id);
        }
        c
    }
}

impl TestCluster {
    /// [`TestCluster::start`] with `[raft] read_consistency = mode` ("session" is the default).
    pub fn start_with_reads(n: usize, tuning: Tuning, mode: &str) -> Self {
        Self::start_prepared(n, tuning, |_, config| {
            let text = std::fs::read_to_string(config).expect("config");
            let text = text.replacen(
                "[raft]\n",
                &format!("[raft]\nread_consistency = \"{mode}\"\n"),
                1,
            );
            std::fs::write(config, text).expect("write config");
        })
    }
}

/// Send `sig` (e.g. "STOP", "CONT") to the process `pid` (one this harness started).
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid}");
}

/// Sends SIGCONT to a paused node when dropped (also when the test panics mid-pause).
pub struct Paused(pub u32);

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

impl TestCluster {
    /// SIGSTOP every node of 1..=3 but `keep` (resumed when the guards drop).
    pub fn pause_all_but(&self, keep: u64) -> Vec<Paused> {
        (1..=3u64)
            .filter(|id| *id != keep)
            .map(|id| {
                let pid = self.pid(id).expect("pid");
                signal(pid, "STOP");
                Paused(pid)
            })
            .collect()
    }
}

/// The sum of metric `name` (without its `sessionraft_` prefix) over the lines carrying `label`
/// on node `id`'s `/metrics`.
pub async fn metric(c: &TestCluster, id: u64, name: &str, label: &str) -> f64 {
    let prefix = format!("sessionraft_{name}");
    let text = http()
        .get(c.url(id, "/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl TestCluster {
    /// [`TestCluster::start`] with default tuning, node `i + 1` listening on `hosts[i]` (own
    /// loopback addresses, e.g. so iptables can cut one node off).
    pub fn start_on_hosts(hosts: &[String]) -> Self {
        Self::start_with(
            hosts.len(),
            ClusterOptions {
                hosts: Some(hosts.to_vec()),
                ..ClusterOptions::default()
            },
        )
    }

    /// [`TestCluster::start`] with a Redis-protocol door on every node (`resp_addr` on a free
    /// port of 127.0.0.1) and `extra_config` appended (e.g. a `[resp]` section); the doors'
    /// ports, in node order. Does not wait for readiness.
    pub fn start_with_doors(n: usize, tuning: Tuning, extra_config: &str) -> (Self, Vec<u16>) {
        let doors: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let c = Self::start_prepared(n, tuning, |_, config| {
            let mut text = std::fs::read_to_string(config).expect("config");
            for (i, port) in doors.iter().enumerate() {
                let at = format!("[[node]]\nid = {}\n", i + 1);
                assert!(text.contains(&at), "{text}");
                text = text.replacen(&at, &format!("{at}resp_addr = \"127.0.0.1:{port}\"\n"), 1);
            }
            text.push_str(extra_config);
            std::fs::write(config, text).expect("write config");
        });
        (c, doors)
    }
}

/// The length of the first complete RESP2 reply in `buf` (simple string, error, integer or bulk
/// string; not arrays), if it is complete.
fn resp_reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")? + 2;
    if buf[0] != b'$' {
        return Some(line_end);
    }
    let len: i64 = std::str::from_utf8(&buf[1..line_end - 2])
        .ok()?
        .parse()
        .ok()?;
    if len < 0 {
        return Some(line_end);
    }
    let total = line_end + len as usize + 2;
    (buf.len() >= total).then_some(total)
}

/// One command (a RESP2 array of bulk strings) on a fresh connection to the door on
/// 127.0.0.1:`port`; its raw reply (a non-array reply), each step bounded by 5 s.
pub async fn resp_once(port: u16, args: &[&[u8]]) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut frame = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        frame.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        frame.extend_from_slice(a);
        frame.extend_from_slice(b"\r\n");
    }
    let step = Duration::from_secs(5);
    let mut s =
        tokio::time::timeout(step, tokio::net::TcpStream::connect(("127.0.0.1", port))).await??;
    s.write_all(&frame).await?;
    let mut buf = Vec::new();
    loop {
        if let Some(n) = (!buf.is_empty()).then(|| resp_reply_len(&buf)).flatten() {
            buf.truncate(n);
            return Ok(buf);
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(step, s.read(&mut chunk)).await??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

// ---- Rolling upgrades (tests/it/solo/upgrade.rs): other binaries on the same data dirs ---------------

/// The previous release's `sessionraft` (the newest line of `RELEASES`): `SESSIONRAFT_PREVIOUS_BIN`
/// when set, else where `scripts/previous-release.sh --path` says it is for this target directory.
/// A missing binary fails the test (CI must build it: `scripts/test.sh` runs the script).
pub fn previous_release_binary() -> PathBuf {
    let bin = match std::env::var_os("SESSIONRAFT_PREVIOUS_BIN").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => {
            let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
            // target/<profile>/deps/<test> -> target
            let exe = std::env::current_exe().expect("current exe");
            let target = exe
                .parent()
                .and_then(Path::parent)
                .and_then(Path::parent)
                .expect("target dir");
            let out = Command::new(repo.join("scripts/previous-release.sh"))
                .arg("--path")
                .env("CARGO_TARGET_DIR", target)
                .output()
                .expect("run scripts/previous-release.sh --path");
            assert!(
                out.status.success(),
                "scripts/previous-release.sh --path failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    assert!(
        bin.is_file(),
        "the previous release's binary {} is missing: build it with scripts/previous-release.sh \
         (scripts/test.sh runs it before the build; then rebuild this tree: `cargo build --release \
         --workspace`), or set SESSIONRAFT_PREVIOUS_BIN to one",
        bin.display()
    );
    bin
}

impl TestCluster {
    /// [`TestCluster::start_with`] without starting any node: start each with
    /// [`TestCluster::start_node_as`] (e.g. another release's binary).
    pub fn configured(n: usize, opts: ClusterOptions) -> Self {
        let dir = TempDir::new().expect("temp dir");
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let hosts = opts
            .hosts
            .unwrap_or_else(|| vec!["127.0.0.1".to_string(); n]);
        assert_eq!(hosts.len(), n, "one host per node");
        let config = write_config_on(dir.path(), &hosts, &ports, &opts.tuning, None);
        Self {
            dir,
            config,
            ports,
            hosts,
            env: opts.env,
            children: (0..n).map(|_| None).collect(),
        }
    }

    /// Start node `id` running `bin` (on its data dir and the cluster's config), with `env` added
    /// to the cluster's environment. Its stderr goes on appending to the node's log, after a line
    /// naming the binary.
    pub fn start_node_as(&mut self, id: u64, bin: &Path, env: &[(String, String)]) {
        use std::io::Write as _;
        assert!(
            self.children[id as usize - 1].is_none(),
            "node {id} is already running"
        );
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node{id}.log")))
            .expect("log file");
        let _ = writeln!(log, "=== test harness: starting {}", bin.display());
        let child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(&self.config)
            .args(["--node", &id.to_string()])
            .env("SESSIONRAFT_LOG", "info,openraft=warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sessionraft");
        self.children[id as usize - 1] = Some(child);
    }

    /// Wait up to `timeout` for node `id` to exit on its own: its exit status (the node is then
    /// no longer running), or `None` while it still runs.
    pub async fn wait_exit(
        &mut self,
        id: u64,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let slot = &mut self.children[id as usize - 1];
            let child = slot.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                *slot = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM node `id` (by its pid) and wait up to `timeout` for it to exit: its exit status,
    /// or `None` when it did not exit in time (it is then SIGKILLed and reaped).
    pub async fn terminate(
        &mut self,
        id: u64,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let pid = self.pid(id)?;
        signal(pid, "TERM");
        let status = self.wait_exit(id, timeout).await;
        if status.is_none() {
            self.kill(id);
        }
        status
    }

    /// The length of node `id`'s log now (to read what a later start wrote: `log(id)[len..]`).
    pub fn log_len(&self, id: u64) -> usize {
        self.log(id).len()
    }
}

/// HAProxy (Debian's `haproxy`) in the foreground on free ports of 127.0.0.1, in front of nodes
/// on 127.0.0.1: an HTTP frontend balancing `http_ports` round-robin with `/readyz` checks (the
/// settings of `scripts/cluster.sh`'s: L7 retries only of refused connections and 503s), and a
/// TCP frontend for `resp_ports` whose check is a TCP connect (a node without a door is out of
/// the rotation). Stopped by its pid when dropped.
pub struct Haproxy {
    child: Option<Child>,
    pub http_port: u16,
    pub resp_port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Haproxy {
    /// Write `haproxy.cfg` into `dir` and start HAProxy; waits until the HTTP frontend listens.
    pub async fn start(dir: &Path, http_ports: &[u16], resp_ports: &[u16]) -> Self {
        let http_port = free_port();
        let resp_port = free_port();
        let mut cfg = String::from(
            "global\n    maxconn 4096\n\n\
             defaults\n    mode http\n    option http-server-close\n    option idle-close-on-response\n\
             \x20   timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n\
             \x20   timeout http-request 10s\n    timeout http-keep-alive 10s\n    timeout queue 5s\n\
             \x20   timeout check 250ms\n    retries 3\n    retry-on conn-failure 503\n\
             \x20   option redispatch 1\n    option http-buffer-request\n\n",
        );
        let _ = write!(
            cfg,
            "frontend lb\n    bind 127.0.0.1:{http_port}\n    default_backend nodes\n\n\
             backend nodes\n    balance roundrobin\n    option httpchk GET /readyz\n\
             \x20   http-check expect status 200\n"
        );
        for (i, port) in http_ports.iter().enumerate() {
            let _ = writeln!(
                cfg,
                "    server node{} 127.0.0.1:{port} check inter 250ms fastinter 100ms fall 2 rise 2",
                i + 1
            );
        }
        let _ = write!(
            cfg,
            "\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1h\n\
             \x20   timeout server 1h\n    timeout check 250ms\n    retries 3\n    option redispatch 1\n\n\
             frontend resp\n    bind 127.0.0.1:{resp_port}\n    default_backend resp\n\n\
             backend resp\n    balance leastconn\n"
        );
        for (i, port) in resp_ports.iter().enumerate() {
            let _ = writeln!(
                cfg,
                "    server node{} 127.0.0.1:{port} check inter 250ms fastinter 100ms fall 2 rise 2",
                i + 1
            );
        }
        let config = dir.join("haproxy.cfg");
        std::fs::write(&config, cfg).expect("write haproxy.cfg");
        let log = dir.join("haproxy.log");
        let out = std::fs::File::create(&log).expect("haproxy log");
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&config)
            .arg("-db")
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("spawn haproxy (Debian's haproxy: scripts/install-deps.sh)");
        let mut lb = Self {
            child: Some(child),
            http_port,
            resp_port,
            config,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", http_port))
            .await
            .is_err()
        {
            if let Some(Ok(Some(status))) = lb.child.as_mut().map(Child::try_wait) {
                lb.child = None;
                panic!(
                    "haproxy exited ({status}): {}",
                    std::fs::read_to_string(&lb.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "haproxy does not listen in 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        lb
    }

    /// `http://127.0.0.1:<http_port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One RESP2 connection kept open across commands (a client's connection).
pub struct RespConnection {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RespConnection {
    /// Connect to 127.0.0.1:`port` within `timeout`.
    pub async fn connect(port: u16, timeout: Duration) -> std::io::Result<Self> {
        let stream =
            tokio::time::timeout(timeout, tokio::net::TcpStream::connect(("127.0.0.1", port)))
                .await??;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::new(),
        })
    }

    /// Send one command (an array of bulk strings) and read its raw reply (a non-array reply);
    /// each step bounded by `timeout`. An error leaves the connection unusable.
    pub async fn command(&mut self, args: &[&[u8]], timeout: Duration) -> std::io::Result<Vec<u8>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            frame.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            frame.extend_from_slice(a);
            frame.extend_from_slice(b"\r\n");
        }
        tokio::time::timeout(timeout, self.stream.write_all(&frame)).await??;
        loop {
            if let Some(n) = (!self.buf.is_empty())
                .then(|| resp_reply_len(&self.buf))
                .flatten()
            {
                return Ok(self.buf.drain(..n).collect());
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(timeout, self.stream.read(&mut chunk)).await??;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

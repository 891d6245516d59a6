//! Operator commands that drive a running cluster through its admin API:
//! `cluster add-node`, `cluster remove-node`, `cluster rejoin-node`, `backup`, `restore`; and
//! `recover`, which rewrites a stopped node's data directory (a majority lost for good).
//!
//! Requests go to the configured nodes in turn (a node that cannot be reached is skipped; any
//! node forwards membership changes to the leader) with the admin token from the configuration.
//! A 503 (no leader yet) is retried until a deadline; a 400/409 is a refusal, printed as is.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use reqwest::{Method, StatusCode};
use sessionraft_raft::backup;
use sessionraft_web::handlers::NodeStatus;

use crate::config::{Address, Config};

/// How long a request keeps being retried while the cluster answers 503 or cannot be reached.
const UNAVAILABLE_DEADLINE: Duration = Duration::from_secs(30);
/// How long a new node may take to catch up before `add-node` gives up.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(300);

/// A request body.
enum Payload {
    Bytes(Vec<u8>),
    /// A file streamed from disk, and its length.
    File(std::path::PathBuf, u64),
}

struct Admin {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    token: String,
    nodes: Vec<Address>,
    /// `https` with `[tls]`, else `http`.
    scheme: &'static str,
}

/// A refusal or failure reported by the cluster, with its message.
fn reply_error(status: StatusCode, body: &[u8]) -> anyhow::Error {
    let msg = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    match status {
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT => anyhow!("refused: {msg}"),
        StatusCode::UNAUTHORIZED => anyhow!("the admin token of the configuration was rejected"),
        s => anyhow!("{s}: {msg}"),
    }
}

impl Admin {
    fn new(cfg: &Config) -> anyhow::Result<Self> {
        let token = std::str::from_utf8(cfg.cluster.admin_token.expose())
            .context("cluster.admin_token is not UTF-8")?
            .to_owned();
        Ok(Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            http: crate::tls::client_builder(cfg)?
                .connect_timeout(Duration::from_secs(2))
                .build()?,
            token,
            nodes: cfg.nodes.iter().map(|n| n.http_addr.clone()).collect(),
            scheme: crate::tls::scheme(cfg),
        })
    }

    /// Send to the first node that answers with something other than 503; retry through
    /// elections until the deadline. Returns the 2xx response, its body not yet read.
    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, &Payload)>,
        timeout: Duration,
    ) -> anyhow::Result<reqwest::Response> {
        let deadline = Instant::now() + UNAVAILABLE_DEADLINE;
        let mut last = String::from("no node configured");
        loop {
            for addr in &self.nodes {
                let mut req = self
                    .http
                    .request(method.clone(), format!("{}://{addr}{path}", self.scheme))
                    .bearer_auth(&self.token)
                    .timeout(timeout);
                let r = self.rt.block_on(async {
                    if let Some((content_type, payload)) = body {
                        req = req.header(reqwest::header::CONTENT_TYPE, content_type);
                        req = match payload {
                            Payload::Bytes(b) => req.body(b.clone()),
                            // Streamed from disk: the file is never held in memory.
                            Payload::File(path, len) => {
                                let f = tokio::fs::File::open(path)
                                    .await
                                    .map_err(|e| anyhow!("opening {}: {e}", path.display()))?;
                                req.header(reqwest::header::CONTENT_LENGTH, *len)
                                    .body(reqwest::Body::from(f))
                            }
                        };
                    }
                    let resp = req.send().await?;
                    let status = resp.status();
                    if status.is_success() {
                        return Ok(Ok(resp));
                    }
                    let bytes = resp.bytes().await?;
                    Ok::<_, anyhow::Error>(Err((status, bytes)))
                });
                match r {
                    Ok(Ok(resp)) => return Ok(resp),
                    Ok(Err((StatusCode::SERVICE_UNAVAILABLE, b))) => {
                        last = format!(
                            "{addr}: {}",
                            reply_error(StatusCode::SERVICE_UNAVAILABLE, &b)
                        );
                    }
                    Ok(Err((s, b))) => return Err(reply_error(s, &b)),
                    Err(e) => last = format!("{addr}: {e:#}"),
                }
            }
            if Instant::now() >= deadline {
                bail!("the cluster did not answer within {UNAVAILABLE_DEADLINE:?}: {last}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// [`Admin::send`], then the whole 2xx body.
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, &Payload)>,
        timeout: Duration,
    ) -> anyhow::Result<Vec<u8>> {
        let resp = self.send(method, path, body, timeout)?;
        let bytes = self
            .rt
            .block_on(resp.bytes())
            .context("reading the cluster's reply")?;
        Ok(bytes.to_vec())
    }

    fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        timeout: Duration,
    ) -> anyhow::Result<serde_json::Value> {
        let body = body.map(|b| Payload::Bytes(b.to_string().into_bytes()));
        let bytes = self.call(
            method,
            path,
            body.as_ref().map(|b| ("application/json", b)),
            timeout,
        )?;
        serde_json::from_slice(&bytes).context("the cluster's reply is not JSON")
    }

    fn status_of(&self, addr: &str) -> anyhow::Result<NodeStatus> {
        self.rt.block_on(async {
            let r = self
                .http
                .get(format!("{}://{addr}/cluster/status", self.scheme))
                .timeout(Duration::from_secs(2))
                .send()
                .await?;
            Ok(r.error_for_status()?.json::<NodeStatus>().await?)
        })
    }

    /// The leader's status, asked of the configured nodes.
    fn leader_status(&self) -> anyhow::Result<NodeStatus> {
        for addr in &self.nodes {
            if let Ok(s) = self.status_of(&addr.to_string()) {
                if s.role == "leader" {
                    return Ok(s);
                }
                if let Some(addr) = s
                    .leader
                    .and_then(|l| s.members.iter().find(|m| m.id == l))
                    .map(|m| m.addr.clone())
                {
                    if let Ok(l) = self.status_of(&addr) {
                        if l.role == "leader" {
                            return Ok(l);
                        }
                    }
                }
            }
        }
        bail!("no leader found among the configured nodes")
    }
}

fn message(v: &serde_json::Value) -> String {
    v.get("message")
        .and_then(|m| m.as_str())
        .map_or_else(|| v.to_string(), str::to_owned)
}

/// `sessionraft cluster add-node`: the node must already run (`serve --node N --http ...`);
/// it is added as a learner, waits until it has caught up, then is promoted to voter.
///
/// # Errors
/// When the node is not running, is already a member elsewhere, or the cluster refuses a step.
pub fn add_node(cfg: &Config, id: u64, http: &Address, raft: &Address) -> anyhow::Result<()> {
    let admin = Admin::new(cfg)?;
    add_with(&admin, id, http, raft)
}

fn add_with(admin: &Admin, id: u64, http: &Address, raft: &Address) -> anyhow::Result<()> {
    let started = Instant::now();
    let status = admin.status_of(&http.to_string()).with_context(|| {
        format!(
            "node {id} does not answer at {}://{http}/cluster/status: start it first \
             (sessionraft serve --node {id} --http {http} --raft {raft} --data-dir DIR)",
            admin.scheme
        )
    })?;
    if status.id != id {
        bail!("the node at {http} is node {}, not node {id}", status.id);
    }
    let leader = admin.leader_status()?;
    if leader.members.iter().any(|m| m.id == id && m.voter) {
        bail!("refused: node {id} is already a voter of the cluster");
    }
    if !status.members.is_empty() && !status.members.iter().any(|m| m.id == leader.id) {
        bail!(
            "refused: node {id} already belongs to another cluster (it knows members {:?}); \
             wipe its data dir to add it here",
            status.members.iter().map(|m| m.id).collect::<Vec<_>>()
        );
    }
    println!("adding node {id} ({raft}) as a learner; it catches up first...");
    let r = admin.json(
        Method::POST,
        "/admin/nodes",
        Some(serde_json::json!({ "id": id, "addr": raft.to_string() })),
        CATCH_UP_DEADLINE,
    )?;
    println!("  {}", message(&r));
    // Caught up: its applied index reaches the leader's last log index (sampled now).
    let target = admin.leader_status()?.last_log_index.unwrap_or(0);
    let deadline = Instant::now() + CATCH_UP_DEADLINE;
    loop {
        let applied = admin
            .status_of(&http.to_string())
            .ok()
            .and_then(|s| s.applied_index)
            .unwrap_or(0);
        if applied >= target {
            println!("  node {id} caught up (applied {applied} >= {target})");
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "node {id} did not catch up within {CATCH_UP_DEADLINE:?} (applied {applied} of \
                 {target}); it stays a learner: run add-node again or remove-node {id}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = admin.json(
        Method::POST,
        &format!("/admin/nodes/{id}/promote"),
        None,
        Duration::from_secs(30),
    )?;
    println!("  {}", message(&r));
    println!(
        "node {id} is a voter ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `sessionraft cluster rejoin-node N`: node N of the configuration came back under its name
/// with an empty data directory. It is removed from the membership if it is still a member
/// (its vote and log are gone: it must not count in a quorum as if it remembered them), added
/// again as a learner at its configured addresses, caught up (by snapshot when the leader
/// purged the log), and promoted.
///
/// # Errors
/// N is not in the configuration, does not run, or the cluster refuses a step.
pub fn rejoin_node(cfg: &Config, id: u64) -> anyhow::Result<()> {
    let me = cfg.node(id)?;
    let admin = Admin::new(cfg)?;
    let started = Instant::now();
    let status = admin
        .status_of(&me.http_addr.to_string())
        .with_context(|| {
            format!(
                "node {id} does not answer at {}://{}/cluster/status: start it first (with its \
             empty data directory)",
                admin.scheme, me.http_addr
            )
        })?;
    if status.id != id {
        bail!(
            "the node at {} is node {}, not node {id}",
            me.http_addr,
            status.id
        );
    }
    let leader = admin.leader_status()?;
    if leader.id == id {
        bail!("refused: node {id} leads the cluster, so its data is not lost");
    }
    if leader.members.iter().any(|m| m.id == id) {
        println!("removing node {id} from the membership (its data directory was lost)...");
        println!("  {}", remove_with(&admin, id)?);
        let deadline = Instant::now() + UNAVAILABLE_DEADLINE;
        while admin.leader_status()?.members.iter().any(|m| m.id == id) {
            if Instant::now() >= deadline {
                bail!("node {id} is still a member after {UNAVAILABLE_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    } else {
        println!("node {id} is not a member; adding it");
    }
    add_with(&admin, id, &me.http_addr, &me.raft_addr)?;
    println!(
        "node {id} rejoined ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What `recover` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// The data directory was rewritten.
    Done,
    /// Only printed (no `--force-new-cluster`).
    DryRun,
}

/// `sessionraft recover --node N --force-new-cluster`: make node N's (stopped) data directory
/// the only voter of a new one-node cluster keeping its whole log.
///
/// # Errors
/// N is unknown, its data directory is missing, locked (the node runs) or empty.
pub fn recover(
    cfg: &Config,
    id: u64,
    data_dir: Option<std::path::PathBuf>,
    force: bool,
) -> anyhow::Result<Recovered> {
    let me = cfg.node(id)?;
    let data_dir = data_dir.unwrap_or_else(|| me.data_dir.clone());
    let plan = sessionraft_raft::storage::recovery::force_new_cluster(
        &data_dir,
        id,
        &me.raft_addr.to_string(),
        force,
    )
    .with_context(|| {
        format!(
            "recovering node {id} from {} (the node must be stopped)",
            data_dir.display()
        )
    })?;
    let log_id =
        |l: Option<openraft::LogId<u64>>| l.map_or_else(|| "-".to_owned(), |l| l.to_string());
    println!(
        "node {id}, {}: log ends at {}, applied {}, voters {:?}, vote {}",
        data_dir.display(),
        log_id(plan.last_log),
        log_id(plan.applied),
        plan.voters,
        plan.vote.as_deref().unwrap_or("-")
    );
    if !force {
        println!(
            "would append membership {{{id}}} at {} so that node {id} is the only voter of a new \
             one-node cluster keeping all of its log; run again with --force-new-cluster to do it \
             (only when the other voters are lost for good: a node that comes back with its old \
             data would otherwise form a second cluster)",
            log_id(plan.new_entry)
        );
        return Ok(Recovered::DryRun);
    }
    println!(
        "appended membership {{{id}}} at {}; now start node {id} (it elects itself), then for each \
         other node: start it with an empty data directory and run `sessionraft cluster \
         rejoin-node ID`",
        log_id(plan.new_entry)
    );
    Ok(Recovered::Done)
}

/// `sessionraft cluster remove-node N`.
///
/// # Errors
/// When the cluster refuses (the last voter, a change in progress, not a member).
pub fn remove_node(cfg: &Config, id: u64) -> anyhow::Result<()> {
    println!("{}", remove_with(&Admin::new(cfg)?, id)?);
    Ok(())
}

/// Asks the cluster to remove member `id`; the leader's message.
fn remove_with(admin: &Admin, id: u64) -> anyhow::Result<String> {
    let r = admin.json(
        Method::POST,
        &format!("/admin/nodes/{id}/remove"),
        None,
        Duration::from_secs(30),
    )?;
    Ok(message(&r))
}

fn print_summary(what: &str, path: &Path, s: &backup::BackupSummary) {
    println!(
        "{what} {}: {} sessions, {} keys, applied index {}, format {}, content sha256 {}",
        path.display(),
        s.count,
        s.keys,
        s.header
            .applied_index
            .map_or_else(|| "-".to_owned(), |i| i.to_string()),
        s.format,
        s.content_sha256
    );
}

/// `sessionraft backup --to FILE`: a consistent backup of every live session and every live key
/// of the Redis-protocol keyspace, streamed to a temporary file (never held in memory), synced,
/// verified, then renamed into place.
///
/// # Errors
/// When no node answers, the download fails, or the received file does not verify.
pub fn backup(cfg: &Config, to: &Path) -> anyhow::Result<()> {
    let admin = Admin::new(cfg)?;
    let mut resp = admin.send(Method::GET, "/admin/backup", None, Duration::from_secs(600))?;
    let partial = to.with_extension("partial");
    let written = (|| {
        use std::io::Write;
        let f = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, f);
        while let Some(chunk) = admin
            .rt
            .block_on(resp.chunk())
            .context("downloading the backup")?
        {
            out.write_all(&chunk)
                .with_context(|| format!("writing {}", partial.display()))?;
        }
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        let f = std::fs::File::open(&partial)?;
        backup::verify(std::io::BufReader::new(f)).context("the received backup is damaged")
    })();
    let summary = match written {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, to).with_context(|| format!("renaming to {}", to.display()))?;
    print_summary("backup written to", to, &summary);
    Ok(())
}

/// `sessionraft backup-info FILE`: verify a backup file and print its summary.
///
/// # Errors
/// When the file cannot be read or is damaged.
pub fn backup_info(file: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let summary = backup::verify(std::io::BufReader::new(f))
        .with_context(|| format!("{} is not a valid backup", file.display()))?;
    print_summary("backup", file, &summary);
    Ok(())
}

/// `sessionraft restore --from FILE`: verify the file here, then seed the (empty) cluster with
/// it, streamed from disk.
///
/// # Errors
/// When the file is damaged, the cluster is not empty (without `force`) or unavailable.
pub fn restore(cfg: &Config, from: &Path, force: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let f = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let len = f.metadata()?.len();
    let summary = backup::verify(std::io::BufReader::with_capacity(1 << 20, f))
        .with_context(|| format!("{} is not a valid backup; nothing restored", from.display()))?;
    print_summary("restoring", from, &summary);
    let path = if force {
        "/admin/restore?force=true"
    } else {
        "/admin/restore"
    };
    let reply = Admin::new(cfg)?.call(
        Method::POST,
        path,
        Some((
            "application/octet-stream",
            &Payload::File(from.to_path_buf(), len),
        )),
        Duration::from_secs(3600),
    )?;
    let v: serde_json::Value = serde_json::from_slice(&reply)?;
    println!(
        "restored {} sessions ({} already expired were skipped) and {} keys ({} already expired \
         were skipped) in {:.1} s, content sha256 {}",
        v["restored"],
        v["skipped_expired"],
        v["restored_keys"],
        v["skipped_expired_keys"],
        started.elapsed().as_secs_f64(),
        v["content_sha256"]
    );
    Ok(())
}

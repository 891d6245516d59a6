//! The drift test of `deploy/`: every setting the packaging gives the binary is one it accepts.
//!
//! For each container of `deploy/compose.yaml`, each pod of the Kubernetes StatefulSet
//! (`deploy/kubernetes/`) and each machine of the systemd unit (`deploy/systemd/`), the test
//! gathers what the process would get — the image's `ENV` and `ENTRYPOINT` (`deploy/Dockerfile`),
//! the manifest's environment (a secret from a Secret, `.env` interpolation or an env file
//! becomes a 40-byte placeholder), the command line, the host name (the pod name; the compose
//! `hostname`) and the `cluster.toml` mounted at the path it uses (the compose bind mount, the
//! ConfigMap's key, the unit's file) — writes that configuration to a temporary directory and
//! runs it through the real loader, `config::load_with_env` and `config::node_id_from`.
//!
//! Asserted for every one of them: the configuration loads with exactly that environment (so
//! every `SESSIONRAFT_*` key the files set exists: the loader refuses unknown ones, and every
//! secret the configuration names is given), the node id resolves to a node of the
//! configuration, and the node is advertised under the name it is reachable by (service name;
//! `pod.service`). Around it: readiness and liveness probes and the image's `HEALTHCHECK` hit
//! `/readyz` / `/healthz` on the node's HTTP port, container ports and exposed ports are the
//! configuration's, listeners bind all interfaces, `data_dir` is the volume, HAProxy's servers
//! are the nodes' addresses, the Services and the PodDisruptionBudget select the pods, the Secret
//! example has every key the pods read, the systemd unit's `ExecStart` flags are flags of
//! `sessionraft serve` and its data directory is writable under its hardening.
//!
//! The last tests mutate copies (an unknown `SESSIONRAFT_RAFT__HEARTBEAT_MSS`, an unknown key in
//! the ConfigMap, a missing secret, a wrong probe path) and expect the check to fail naming it.
//! No network, no container engine: files only (and `sessionraft serve --help` for the flags).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize as _;
use serde_yaml::Value;
use sessionraft_web::config::{self, Config, NodeConfig};

/// The value of every secret a manifest takes from elsewhere (a Kubernetes Secret, compose's
/// `.env`, an env file): 40 bytes, above every minimum (cluster secret 32, tokens 16).
const PLACEHOLDER: &str = "drift-test-placeholder-secret-0123456789";

/// `Err(message)` unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// A check passed for three nodes: prints what each was found to be.
fn assert_three_nodes(result: Result<Vec<String>, String>) {
    let report = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.len(), 3, "{report:#?}");
    eprintln!("{}", report.join("\n"));
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: impl AsRef<Path>) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A YAML scalar as the string a process would see in its environment or arguments.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// Whether every label of `selector` (a `matchLabels` or a Service's `selector`) is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector.as_mapping().is_some_and(|m| {
        !m.is_empty() && m.iter().all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
    })
}

// ---------------------------------------------------------------------------------------------
// What a process is given, and the real loader
// ---------------------------------------------------------------------------------------------

/// What one node process gets: its host name, environment, arguments after the program name,
/// and the text of the configuration file at the path it uses.
#[derive(Debug, Clone)]
struct Launch {
    what: String,
    hostname: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
    config_path: String,
    config_text: String,
}

/// The loader reads the secrets named by `secret_env` & co. from the process environment: one
/// load at a time sets them (tests of this binary run in parallel threads).
static PROCESS_ENV: Mutex<()> = Mutex::new(());

impl Launch {
    /// The last value of `name` (a later entry overrides an earlier one, as in a container).
    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `--flag VALUE` or `--flag=VALUE` among the arguments.
    fn flag(&self, flag: &str) -> Option<&str> {
        flag_of(&self.args, flag)
    }

    /// Loads the configuration as the process would: written to a temporary directory, the
    /// launch's environment given to `load_with_env`, the id from `--node`,
    /// `SESSIONRAFT_NODE_ID` or the host name. Returns the configuration and this node's id.
    fn load(&self) -> Result<(Config, u64), String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, &self.config_text).expect("write cluster.toml");
        // The variables the configuration names (secret_env = "X", or through the environment)
        // exist in the process environment while it loads, and only then.
        let named: Vec<&(String, String)> = self
            .env
            .iter()
            .filter(|(k, _)| {
                self.config_text.contains(&format!("\"{k}\""))
                    || self.env.iter().any(|(_, v)| v == k)
            })
            .collect();
        let _one_at_a_time = PROCESS_ENV.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in &named {
            std::env::set_var(k, v);
        }
        let loaded = config::load_with_env(Some(&path), self.env.clone());
        for (k, _) in &named {
            std::env::remove_var(k);
        }
        let cfg = loaded
            .map_err(|e| format!("{}: {} does not load: {e}", self.what, self.config_path))?;
        let flag = match self.flag("--node") {
            Some(n) => Some(
                n.parse()
                    .map_err(|_| format!("{}: --node {n}", self.what))?,
            ),
            None => None,
        };
        let id = config::node_id_from(flag, self.var(config::NODE_ID_ENV), Some(&self.hostname))
            .map_err(|e| format!("{}: no node id: {e}", self.what))?;
        cfg.node(id)
            .map_err(|e| format!("{}: node id {id} (host {}): {e}", self.what, self.hostname))?;
        Ok((cfg, id))
    }

    /// The configuration path: `--config`, else `SESSIONRAFT_CONFIG`.
    fn config_path_of(
        what: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<String, String> {
        if let Some(p) = flag_of(args, "--config") {
            return Ok(p.to_owned());
        }
        env.iter()
            .rev()
            .find(|(k, _)| k == config::CONFIG_FILE_ENV)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                format!(
                    "{what}: neither --config nor {} is given: the node would run the built-in \
                     loopback configuration",
                    config::CONFIG_FILE_ENV
                )
            })
    }
}

fn flag_of<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(flag).and_then(|r| r.strip_prefix('='))
        }
    })
}

/// Checks that hold for every node, however it is deployed: the listeners bind all interfaces
/// (peers, probes and the load balancer reach the node by its name's address, the container's
/// health check on 127.0.0.1) and every advertised address is on the host `host`.
fn check_node_binds_everywhere(what: &str, node: &NodeConfig, host: &str) -> Result<(), String> {
    let listens = [
        ("http", Some(&node.http_addr), node.http_listen),
        (
            "raft",
            Some(&node.raft_addr),
            node.raft_listen.or(node.http_listen),
        ),
        ("resp", node.resp_addr.as_ref(), node.resp_listen),
    ];
    for (key, advertised, listen) in listens {
        let Some(advertised) = advertised else {
            continue;
        };
        ensure!(
            advertised.host() == host || advertised.host().starts_with(&format!("{host}.")),
            "{what}: node {} {key}_addr {advertised} is not on its host name {host}",
            node.id
        );
        let listen = listen.ok_or_else(|| {
            format!(
                "{what}: node {} {key}: no listen address (set [listen] ip)",
                node.id
            )
        })?;
        ensure!(
            listen.ip().is_unspecified() && listen.port() == advertised.port(),
            "{what}: node {} binds {key} at {listen}, not all interfaces at {advertised}'s port",
            node.id
        );
    }
    Ok(())
}

/// A URL's scheme, host, port and path (`http://127.0.0.1:7101/readyz`).
fn split_url(url: &str) -> Option<(&str, &str, u16, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (host_port, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = host_port.rsplit_once(':')?;
    Some((scheme, host, port.parse().ok()?, path))
}

/// `text` with `$NAME` and `${NAME}` replaced from `env`.
fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = text.to_owned();
    let mut vars: Vec<&(String, String)> = env.iter().collect();
    vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    for (k, v) in vars {
        out = out
            .replace(&format!("${{{k}}}"), v)
            .replace(&format!("${k}"), v);
    }
    out
}

/// The health-check command hits `/readyz` on the node's HTTP port, on this machine.
fn check_health_command(
    what: &str,
    command: &str,
    launch: &Launch,
    cfg: &Config,
    node: &NodeConfig,
) -> Result<(), String> {
    let command = expand(command, &launch.env);
    let url = command
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .ok_or_else(|| format!("{what}: no URL in the health check {command:?}"))?;
    let (scheme, host, port, path) =
        split_url(url).ok_or_else(|| format!("{what}: health check URL {url:?}"))?;
    let want_scheme = if cfg.tls.is_some() { "https" } else { "http" };
    ensure!(
        scheme == want_scheme && path == "/readyz" && port == node.http_addr.port(),
        "{what}: the health check asks {url}, not {want_scheme}://…:{}/readyz",
        node.http_addr.port()
    );
    ensure!(
        host == "127.0.0.1" || host == "localhost" || host == "[::1]",
        "{what}: the health check asks {host}, not this container"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// deploy/Dockerfile
// ---------------------------------------------------------------------------------------------

/// The final stage of `deploy/Dockerfile`, as far as the process sees it.
#[derive(Debug, Clone)]
struct Image {
    env: Vec<(String, String)>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    uid: u32,
    exposed: BTreeSet<u16>,
    volumes: Vec<String>,
    healthcheck: String,
    installed: BTreeSet<String>,
}

impl Image {
    /// The arguments after the program name of a container that sets `entrypoint` (Kubernetes:
    /// `command`) and `command` (`args`), each empty when not set: an entrypoint set drops the
    /// image's `CMD`, as Docker and Kubernetes do.
    ///
    /// # Errors
    /// The container does not run `sessionraft serve`.
    fn serve_args(
        &self,
        what: &str,
        entrypoint: Vec<String>,
        command: Vec<String>,
    ) -> Result<Vec<String>, String> {
        let (entrypoint, command) = match (entrypoint.is_empty(), command.is_empty()) {
            (true, true) => (self.entrypoint.clone(), self.cmd.clone()),
            (true, false) => (self.entrypoint.clone(), command),
            (false, _) => (entrypoint, command),
        };
        ensure!(
            entrypoint
                .first()
                .is_some_and(|p| p.ends_with("/sessionraft") || p == "sessionraft"),
            "{what}: runs {entrypoint:?}, not sessionraft"
        );
        let args: Vec<String> = entrypoint[1..].iter().chain(&command).cloned().collect();
        ensure!(
            args.first().is_some_and(|a| a == "serve"),
            "{what}: runs {args:?}, not serve"
        );
        Ok(args)
    }
}

fn image() -> Image {
    let text = read("deploy/Dockerfile").replace("\\\n", " ");
    let last_stage = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>();
    let from = last_stage
        .iter()
        .rposition(|l| l.trim_start().starts_with("FROM "))
        .expect("a FROM");
    let mut image = Image {
        env: Vec::new(),
        entrypoint: Vec::new(),
        cmd: Vec::new(),
        uid: u32::MAX,
        exposed: BTreeSet::new(),
        volumes: Vec::new(),
        healthcheck: String::new(),
        installed: BTreeSet::new(),
    };
    let json = |s: &str| -> Vec<String> {
        serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("Dockerfile: {s}: {e}"))
    };
    for line in &last_stage[from + 1..] {
        let line = line.trim();
        let (op, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match op {
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("Dockerfile: ENV {pair}: write KEY=VALUE"));
                    image.env.push((k.to_owned(), v.to_owned()));
                }
            }
            "ENTRYPOINT" => image.entrypoint = json(rest),
            "CMD" => image.cmd = json(rest),
            "USER" => {
                image.uid = rest
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| {
                        panic!(
                            "Dockerfile: USER {rest}: give a numeric uid (runAsNonRoot needs it)"
                        )
                    })
            }
            "EXPOSE" => {
                image.exposed = rest
                    .split_whitespace()
                    .map(|p| p.trim_end_matches("/tcp").parse().expect("EXPOSE port"))
                    .collect()
            }
            "VOLUME" => image.volumes = json(rest),
            "HEALTHCHECK" => {
                image.healthcheck = rest
                    .split_once(" CMD ")
                    .map(|(_, c)| c.trim().to_owned())
                    .expect("HEALTHCHECK … CMD …")
            }
            "RUN" if rest.contains("apt-get install") => {
                image.installed.extend(
                    rest.split_whitespace()
                        .filter(|w| {
                            w.chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        })
                        .map(str::to_owned),
                );
            }
            _ => {}
        }
    }
    image
}

#[test]
fn dockerfile_runs_sessionraft_serve_as_non_root_with_a_data_volume_and_a_ready_check() {
    let image = image();
    assert_eq!(
        image.entrypoint.len(),
        2,
        "ENTRYPOINT {:?}",
        image.entrypoint
    );
    assert!(
        image.entrypoint[0].ends_with("/sessionraft") && image.entrypoint[1] == "serve",
        "ENTRYPOINT {:?}",
        image.entrypoint
    );
    assert!(
        image.uid != 0 && image.uid != u32::MAX,
        "USER must be a numeric non-root uid"
    );
    assert_eq!(image.volumes, ["/data"]);
    let tool = image.healthcheck.split_whitespace().next().unwrap_or("");
    assert!(
        image.installed.contains(tool),
        "the HEALTHCHECK runs {tool}, not installed in the runtime stage"
    );
    let text = read("deploy/Dockerfile");
    assert!(text.contains("STOPSIGNAL SIGTERM"), "STOPSIGNAL SIGTERM");
    assert!(
        text.contains("clang") && text.contains("libclang-dev"),
        "RocksDB needs clang and libclang-dev"
    );
    assert!(
        image.env.iter().any(|(k, _)| k == config::CONFIG_FILE_ENV),
        "the image names its configuration file with {}",
        config::CONFIG_FILE_ENV
    );
}

// ---------------------------------------------------------------------------------------------
// deploy/compose.yaml and deploy/haproxy.cfg
// ---------------------------------------------------------------------------------------------

fn compose_doc() -> Value {
    let mut doc: Value = serde_yaml::from_str(&read("deploy/compose.yaml")).expect("compose.yaml");
    doc.apply_merge().expect("compose.yaml merge keys");
    doc
}

/// The values of `${NAME:?…}`, `${NAME:-default}`, `${NAME}` in a compose value: the default
/// when there is one, else the placeholder (the user's `.env` gives it). Collects the names.
fn interpolate(text: &str, names: &mut BTreeSet<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .expect("closed ${…}");
        let inner = &rest[start + 2..end];
        let name_end = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        names.insert(inner[..name_end].to_owned());
        let op = &inner[name_end..];
        match op.strip_prefix(":-").or_else(|| op.strip_prefix('-')) {
            Some(default) => out.push_str(default),
            None => out.push_str(PLACEHOLDER),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `KEY=VALUE` lines of an env file (comments and blank lines skipped).
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("env file line {l:?}"));
            (k.trim().to_owned(), v.trim().trim_matches('"').to_owned())
        })
        .collect()
}

/// The compose services that run the sessionraft image, by service name.
type ComposeNodes = Vec<(String, Launch)>;

/// The compose services that run the sessionraft image, with what each is given; and every
/// name interpolated from `.env`.
fn compose_launches(
    doc: &Value,
    image: &Image,
) -> Result<(ComposeNodes, BTreeSet<String>), String> {
    let services = doc["services"]
        .as_mapping()
        .ok_or("compose.yaml: no services")?;
    let mut names = BTreeSet::new();
    let mut launches = Vec::new();
    for (name, service) in services {
        let name = name.as_str().ok_or("service name")?.to_owned();
        let runs_us = service["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("sessionraft"))
            || service["build"]["dockerfile"]
                .as_str()
                .is_some_and(|d| d.ends_with("deploy/Dockerfile"));
        if !runs_us {
            continue;
        }
        let what = format!("compose service {name}");
        let mut env = image.env.clone();
        for file in strings(&service["env_file"]) {
            env.extend(
                env_file(&read(Path::new("deploy").join(file)))
                    .into_iter()
                    .map(|(k, _)| (k, PLACEHOLDER.to_owned())),
            );
        }
        match &service["environment"] {
            Value::Mapping(m) => {
                for (k, v) in m {
                    let k = k.as_str().ok_or("environment key")?.to_owned();
                    let v = scalar(v)
                        .map_or_else(|| PLACEHOLDER.to_owned(), |v| interpolate(&v, &mut names));
                    env.push((k, v));
                }
            }
            Value::Sequence(items) => {
                for item in items.iter().filter_map(scalar) {
                    match item.split_once('=') {
                        Some((k, v)) => env.push((k.to_owned(), interpolate(v, &mut names))),
                        None => env.push((item, PLACEHOLDER.to_owned())),
                    }
                }
            }
            Value::Null => {}
            other => return Err(format!("{what}: environment {other:?}")),
        }
        let args = image.serve_args(
            &what,
            strings(&service["entrypoint"]),
            strings(&service["command"]),
        )?;
        let config_path = Launch::config_path_of(&what, &args, &env)?;
        let mut config_text = None;
        for (source, target) in compose_mounts(service) {
            let source_path = Path::new("deploy").join(&source);
            if target == config_path {
                config_text = Some(read(&source_path));
            } else if Path::new(&config_path).parent() == Some(Path::new(&target))
                && repo().join(&source_path).is_dir()
            {
                let file = Path::new(&config_path).file_name().expect("file name");
                config_text = Some(read(source_path.join(file)));
            }
        }
        let config_text =
            config_text.ok_or_else(|| format!("{what}: nothing is mounted at {config_path}"))?;
        // A container's host name is its id unless `hostname` is set; never the service name.
        let hostname = service["hostname"]
            .as_str()
            .unwrap_or("4f3c2a1b9d8e")
            .to_owned();
        launches.push((
            name.clone(),
            Launch {
                what,
                hostname,
                env,
                args,
                config_path,
                config_text,
            },
        ));
    }
    Ok((launches, names))
}

/// (source, target) of a service's volumes, short (`src:dst[:ro]`) or long syntax.
fn compose_mounts(service: &Value) -> Vec<(String, String)> {
    let Some(volumes) = service["volumes"].as_sequence() else {
        return Vec::new();
    };
    volumes
        .iter()
        .filter_map(|v| match v {
            Value::String(s) => {
                let mut parts = s.split(':');
                Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
            }
            Value::Mapping(_) => Some((
                v["source"].as_str()?.to_owned(),
                v["target"].as_str()?.to_owned(),
            )),
            _ => None,
        })
        .collect()
}

/// HAProxy's frontends (bind port → default backend) and backends by name.
#[derive(Debug, Default)]
struct Haproxy {
    frontends: BTreeMap<u16, String>,
    backends: BTreeMap<String, Backend>,
}

/// A backend's `option httpchk` path and its servers as (address, `port` of the check).
#[derive(Debug, Default)]
struct Backend {
    check: String,
    servers: Vec<(String, Option<u16>)>,
}

fn haproxy(text: &str) -> Haproxy {
    let mut h = Haproxy::default();
    let mut section: (String, String) = Default::default();
    let mut bind = None;
    for line in text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [kind @ ("global" | "defaults" | "frontend" | "backend" | "resolvers"), rest @ ..] => {
                section = (
                    (*kind).to_owned(),
                    rest.first().map_or(String::new(), |s| (*s).to_owned()),
                );
                if *kind == "backend" {
                    h.backends.insert(section.1.clone(), Default::default());
                }
            }
            ["bind", addr, ..] if section.0 == "frontend" => {
                bind = addr.rsplit(':').next().and_then(|p| p.parse().ok());
            }
            ["default_backend", backend] if section.0 == "frontend" => {
                h.frontends.insert(
                    bind.take().expect("bind before default_backend"),
                    (*backend).to_owned(),
                );
            }
            ["option", "httpchk", _method, path] if section.0 == "backend" => {
                h.backends.get_mut(&section.1).expect("backend").check = (*path).to_owned();
            }
            ["server", _name, addr, rest @ ..] if section.0 == "backend" => {
                let port = rest
                    .iter()
                    .position(|w| *w == "port")
                    .and_then(|i| rest.get(i + 1)?.parse().ok());
                h.backends
                    .get_mut(&section.1)
                    .expect("backend")
                    .servers
                    .push(((*addr).to_owned(), port));
            }
            _ => {}
        }
    }
    h
}

/// Everything checked about the compose deployment; the loaded configuration of each node.
fn check_compose(doc: &Value) -> Result<Vec<String>, String> {
    let image = image();
    let (launches, interpolated) = compose_launches(doc, &image)?;
    ensure!(
        launches.len() >= 3,
        "compose.yaml runs {} sessionraft nodes, not 3",
        launches.len()
    );
    let mut report = Vec::new();
    let mut configs = Vec::new();
    let mut data_volumes = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (service_name, launch) in &launches {
        let what = &launch.what;
        let (cfg, id) = launch.load()?;
        let node = cfg.node(id).expect("checked by load").clone();
        ensure!(ids.insert(id), "{what}: node {id} twice");
        // Other containers reach it by its service name.
        check_node_binds_everywhere(what, &node, service_name)?;
        let service = &doc["services"][service_name.as_str()];
        let data = node.data_dir.to_string_lossy().into_owned();
        let volume = compose_mounts(service)
            .into_iter()
            .find(|(_, target)| *target == data)
            .map(|(source, _)| source)
            .ok_or_else(|| format!("{what}: no volume at data_dir {data}"))?;
        ensure!(
            doc["volumes"].get(&volume).is_some() && data_volumes.insert(volume.clone()),
            "{what}: data_dir {data} must be a named volume of its own, not {volume}"
        );
        let health = match &service["healthcheck"]["test"] {
            Value::Null => image.healthcheck.clone(),
            t => strings(t).join(" "),
        };
        check_health_command(what, &health, launch, &cfg, &node)?;
        let ports = [
            Some(node.http_addr.port()),
            node.resp_addr.as_ref().map(|a| a.port()),
        ];
        for port in ports.into_iter().flatten() {
            ensure!(
                image.exposed.contains(&port),
                "{what}: the Dockerfile does not EXPOSE {port}"
            );
        }
        report.push(format!(
            "{what}: host {}, node {id}, {} ({})",
            launch.hostname, node.http_addr, launch.config_path
        ));
        configs.push(cfg);
    }
    let cfg = &configs[0];
    ensure!(
        ids.iter().copied().eq(cfg.node_ids()),
        "compose.yaml runs nodes {ids:?}, the configuration has {:?}",
        cfg.node_ids().collect::<Vec<_>>()
    );
    // .env.example names every variable the compose file interpolates.
    let example: BTreeSet<String> = env_file(&read("deploy/.env.example"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let missing: Vec<&String> = interpolated.difference(&example).collect();
    ensure!(missing.is_empty(), "deploy/.env.example lacks {missing:?}");
    // HAProxy: its frontends are the configured load balancer's ports, published; its servers
    // are the nodes, checked on /readyz at their HTTP port.
    let lb = haproxy(&read("deploy/haproxy.cfg"));
    let (lb_service, _) = doc["services"]
        .as_mapping()
        .and_then(|m| {
            m.iter().find(|(_, s)| {
                s["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("haproxy"))
            })
        })
        .ok_or("compose.yaml: no haproxy service")?;
    let published: BTreeSet<u16> =
        strings(&doc["services"][lb_service.as_str().unwrap_or("")]["ports"])
            .iter()
            .filter_map(|p| p.rsplit(':').next()?.split('/').next()?.parse().ok())
            .collect();
    let http_nodes: BTreeSet<String> = cfg.nodes.iter().map(|n| n.http_addr.to_string()).collect();
    let resp_nodes: BTreeMap<String, u16> = cfg
        .nodes
        .iter()
        .filter_map(|n| Some((n.resp_addr.as_ref()?.to_string(), n.http_addr.port())))
        .collect();
    let frontends = [
        ("load_balancer.addr", cfg.lb_addr.as_ref(), false),
        ("load_balancer.resp_addr", cfg.lb_resp_addr.as_ref(), true),
    ];
    for (key, addr, resp) in frontends {
        let addr = addr.ok_or_else(|| format!("deploy/cluster.toml: no {key}"))?;
        let backend = lb
            .frontends
            .get(&addr.port())
            .ok_or_else(|| format!("haproxy.cfg binds no frontend at {key} {addr}"))?;
        ensure!(
            published.contains(&addr.port()),
            "compose.yaml does not publish HAProxy's port {}",
            addr.port()
        );
        let Backend { check, servers } = &lb.backends[backend];
        ensure!(
            check == "/readyz",
            "haproxy.cfg backend {backend} checks {check:?}, not /readyz"
        );
        let got: BTreeSet<String> = servers.iter().map(|(a, _)| a.clone()).collect();
        if resp {
            ensure!(
                got == resp_nodes.keys().cloned().collect(),
                "haproxy.cfg backend {backend}: {got:?}, nodes' resp_addr {:?}",
                resp_nodes.keys()
            );
            for (addr, port) in servers {
                ensure!(
                    *port == Some(resp_nodes[addr]),
                    "haproxy.cfg: {addr} checked at port {port:?}, the node's HTTP port is {}",
                    resp_nodes[addr]
                );
            }
        } else {
            ensure!(
                got == http_nodes,
                "haproxy.cfg backend {backend}: {got:?}, nodes' http_addr {http_nodes:?}"
            );
        }
    }
    Ok(report)
}

#[test]
fn compose_nodes_load_with_their_environment_and_haproxy_matches() {
    assert_three_nodes(check_compose(&compose_doc()));
}

// ---------------------------------------------------------------------------------------------
// deploy/kubernetes/
// ---------------------------------------------------------------------------------------------

/// Every object of every YAML file in `deploy/kubernetes/`, with its file name.
fn kubernetes_docs() -> Vec<(String, Value)> {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read manifest");
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        for de in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(de).unwrap_or_else(|e| panic!("{name}: {e}"));
            if !v.is_null() {
                docs.push((name.clone(), v));
            }
        }
    }
    docs
}

fn kind<'a>(docs: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|(_, d)| d["kind"].as_str() == Some(kind))
        .map(|(_, d)| d)
        .collect()
}

fn named<'a>(docs: &'a [(String, Value)], k: &str, name: &str) -> Option<&'a Value> {
    kind(docs, k)
        .into_iter()
        .find(|d| d["metadata"]["name"].as_str() == Some(name))
}

/// The keys of a Secret (`data` and `stringData`) or a ConfigMap (`data`).
fn keys_of(object: &Value) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    for field in ["data", "stringData"] {
        if let Some(m) = object[field].as_mapping() {
            for (k, v) in m {
                keys.insert(
                    k.as_str().unwrap_or_default().to_owned(),
                    scalar(v).unwrap_or_default(),
                );
            }
        }
    }
    keys
}

/// The port number of a probe's or Service's port: a number, or a name of the container's ports.
fn port_number(port: &Value, container: &Value) -> Option<u16> {
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).ok();
    }
    let name = port.as_str()?;
    container["ports"]
        .as_sequence()?
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| u16::try_from(p["containerPort"].as_u64()?).ok())
}

/// What pod `ordinal` of the StatefulSet is given. Secrets of `secret_example` become the
/// placeholder (their real values are the operator's); a key the example lacks is an error.
fn pod_launch(
    docs: &[(String, Value)],
    sts: &Value,
    ordinal: u64,
    image: &Image,
) -> Result<Launch, String> {
    let sts_name = sts["metadata"]["name"].as_str().ok_or("StatefulSet name")?;
    let pod = format!("{sts_name}-{ordinal}");
    let what = format!("pod {pod}");
    let spec = &sts["spec"]["template"]["spec"];
    let container = sessionraft_container(sts)?;
    let mut env = image.env.clone();
    let secret = |name: &str, key: Option<&str>| -> Result<BTreeMap<String, String>, String> {
        let s = named(docs, "Secret", name)
            .ok_or_else(|| format!("{what}: no Secret {name} (secret.example.yaml)"))?;
        let keys = keys_of(s);
        if let Some(key) = key {
            ensure!(
                keys.contains_key(key),
                "{what}: Secret {name} has no key {key}"
            );
        }
        Ok(keys
            .into_keys()
            .map(|k| (k, PLACEHOLDER.to_owned()))
            .collect())
    };
    let config_map = |name: &str| -> Result<BTreeMap<String, String>, String> {
        named(docs, "ConfigMap", name)
            .map(keys_of)
            .ok_or_else(|| format!("{what}: no ConfigMap {name}"))
    };
    for from in container["envFrom"].as_sequence().into_iter().flatten() {
        if let Some(name) = from["secretRef"]["name"].as_str() {
            env.extend(secret(name, None)?);
        }
        if let Some(name) = from["configMapRef"]["name"].as_str() {
            env.extend(config_map(name)?);
        }
    }
    for var in container["env"].as_sequence().into_iter().flatten() {
        let name = var["name"].as_str().ok_or("env name")?.to_owned();
        let from = &var["valueFrom"];
        let value = if let Some(v) = scalar(&var["value"]) {
            expand(&v, &env)
        } else if let Some(s) = from["secretKeyRef"]["name"].as_str() {
            let key = from["secretKeyRef"]["key"]
                .as_str()
                .ok_or("secretKeyRef key")?;
            secret(s, Some(key))?;
            PLACEHOLDER.to_owned()
        } else if let Some(c) = from["configMapKeyRef"]["name"].as_str() {
            let key = from["configMapKeyRef"]["key"]
                .as_str()
                .ok_or("configMapKeyRef key")?;
            config_map(c)?
                .remove(key)
                .ok_or_else(|| format!("{what}: ConfigMap {c} has no key {key}"))?
        } else if from["fieldRef"]["fieldPath"].as_str() == Some("metadata.name") {
            pod.clone()
        } else {
            PLACEHOLDER.to_owned()
        };
        env.push((name, value));
    }
    let args = image.serve_args(
        &what,
        strings(&container["command"]),
        strings(&container["args"]),
    )?;
    let config_path = Launch::config_path_of(&what, &args, &env)?;
    // The ConfigMap volume mounted over the configuration file's directory (or the file itself
    // with subPath).
    let path = Path::new(&config_path);
    let mut config_text = None;
    for mount in container["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        let mount_path = Path::new(mount["mountPath"].as_str().unwrap_or(""));
        let key_path = match mount["subPath"].as_str() {
            Some(sub) if mount_path == path => sub.to_owned(),
            None if path.parent() == Some(mount_path) => path
                .file_name()
                .expect("file")
                .to_string_lossy()
                .into_owned(),
            _ => continue,
        };
        let volume = spec["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == mount["name"])
            .ok_or_else(|| format!("{what}: no volume {:?}", mount["name"]))?;
        let cm = volume["configMap"]["name"]
            .as_str()
            .ok_or_else(|| format!("{what}: {config_path} is not from a ConfigMap"))?;
        // `items` maps keys to paths; without it every key is a file of its name.
        let key = match volume["configMap"]["items"].as_sequence() {
            Some(items) => items
                .iter()
                .find(|i| i["path"].as_str() == Some(key_path.as_str()))
                .and_then(|i| i["key"].as_str())
                .ok_or_else(|| format!("{what}: ConfigMap {cm} items give no {key_path}"))?
                .to_owned(),
            None => key_path,
        };
        config_text = Some(
            config_map(cm)?
                .remove(&key)
                .ok_or_else(|| format!("{what}: ConfigMap {cm} has no key {key}"))?,
        );
    }
    let config_text =
        config_text.ok_or_else(|| format!("{what}: nothing is mounted at {config_path}"))?;
    Ok(Launch {
        what,
        hostname: pod,
        env,
        args,
        config_path,
        config_text,
    })
}

fn sessionraft_container(sts: &Value) -> Result<&Value, String> {
    sts["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .and_then(|c| {
            c.iter().find(|c| {
                c["image"]
                    .as_str()
                    .is_some_and(|i| i.contains("sessionraft"))
            })
        })
        .ok_or_else(|| "StatefulSet: no sessionraft container".to_owned())
}

/// Everything checked about the Kubernetes manifests; a line per pod.
fn check_kubernetes(docs: &[(String, Value)]) -> Result<Vec<String>, String> {
    let image = image();
    // kustomization.yaml applies every manifest but the Secret example.
    let kustomization = docs
        .iter()
        .find(|(f, _)| f == "kustomization.yaml")
        .map(|(_, d)| d)
        .ok_or("no kustomization.yaml")?;
    let listed: BTreeSet<String> = strings(&kustomization["resources"]).into_iter().collect();
    let files: BTreeSet<String> = docs
        .iter()
        .map(|(f, _)| f.clone())
        .filter(|f| f != "kustomization.yaml")
        .collect();
    let want: BTreeSet<String> = files
        .iter()
        .filter(|f| !f.contains("example"))
        .cloned()
        .collect();
    ensure!(
        listed == want,
        "kustomization.yaml resources {listed:?}, manifests {want:?} (examples left out)"
    );

    let stss = kind(docs, "StatefulSet");
    ensure!(stss.len() == 1, "{} StatefulSets", stss.len());
    let sts = stss[0];
    let spec = &sts["spec"];
    let labels = &spec["template"]["metadata"]["labels"];
    ensure!(
        selects(&spec["selector"]["matchLabels"], labels),
        "the StatefulSet's selector does not select its pods"
    );
    ensure!(
        spec["podManagementPolicy"].as_str() == Some("Parallel"),
        "podManagementPolicy must be Parallel"
    );
    let replicas = spec["replicas"].as_u64().ok_or("replicas")?;
    let pod_spec = &spec["template"]["spec"];
    ensure!(
        pod_spec["terminationGracePeriodSeconds"]
            .as_u64()
            .is_some_and(|s| s >= 10),
        "terminationGracePeriodSeconds"
    );
    let anti = &pod_spec["affinity"]["podAntiAffinity"];
    let terms: Vec<&Value> = [
        "requiredDuringSchedulingIgnoredDuringExecution",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ]
    .iter()
    .flat_map(|k| anti[*k].as_sequence().into_iter().flatten())
    .map(|t| {
        if t["podAffinityTerm"].is_null() {
            t
        } else {
            &t["podAffinityTerm"]
        }
    })
    .collect();
    ensure!(
        terms
            .iter()
            .any(|t| selects(&t["labelSelector"]["matchLabels"], labels)
                && t["topologyKey"].as_str() == Some("kubernetes.io/hostname")),
        "no pod anti-affinity per machine over the pods' labels"
    );
    let security = &pod_spec["securityContext"];
    ensure!(
        security["runAsNonRoot"].as_bool() == Some(true),
        "runAsNonRoot"
    );
    ensure!(
        security["runAsUser"]
            .as_u64()
            .filter(|u| *u != u64::from(image.uid))
            .is_none(),
        "runAsUser {:?} is not the image's user {}",
        security["runAsUser"],
        image.uid
    );

    // The headless Service names the peers; a client Service serves the ready ones.
    let service_name = spec["serviceName"].as_str().ok_or("serviceName")?;
    let headless =
        named(docs, "Service", service_name).ok_or_else(|| format!("no Service {service_name}"))?;
    ensure!(
        headless["spec"]["clusterIP"].as_str() == Some("None"),
        "Service {service_name}: clusterIP: None"
    );
    ensure!(
        headless["spec"]["publishNotReadyAddresses"].as_bool() == Some(true),
        "Service {service_name}: publishNotReadyAddresses: true"
    );
    let container = sessionraft_container(sts)?;
    let services = kind(docs, "Service");
    ensure!(
        services.len() >= 2,
        "a headless Service and a client Service"
    );
    for service in &services {
        let name = service["metadata"]["name"].as_str().unwrap_or("?");
        ensure!(
            selects(&service["spec"]["selector"], labels),
            "Service {name} does not select the pods"
        );
        for port in service["spec"]["ports"].as_sequence().into_iter().flatten() {
            let target = if port["targetPort"].is_null() {
                &port["port"]
            } else {
                &port["targetPort"]
            };
            ensure!(
                port_number(target, container).is_some(),
                "Service {name}: targetPort {target:?} is no port of the container"
            );
        }
    }
    let pdbs = kind(docs, "PodDisruptionBudget");
    ensure!(
        pdbs.iter()
            .any(|p| p["spec"]["maxUnavailable"].as_u64() == Some(1)
                && selects(&p["spec"]["selector"]["matchLabels"], labels)),
        "no PodDisruptionBudget maxUnavailable: 1 over the pods"
    );
    let claims: BTreeSet<&str> = spec["volumeClaimTemplates"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .collect();

    let mut report = Vec::new();
    let mut ids = BTreeSet::new();
    let mut node_ids = Vec::new();
    for ordinal in 0..replicas {
        let launch = pod_launch(docs, sts, ordinal, &image)?;
        let what = &launch.what;
        let (cfg, id) = launch.load()?;
        ensure!(ids.insert(id), "{what}: node {id} twice");
        node_ids = cfg.node_ids().collect();
        let node = cfg.node(id).expect("checked by load").clone();
        // Peers reach the pod as <pod>.<service> (its stable name under the headless Service).
        check_node_binds_everywhere(what, &node, &format!("{}.{service_name}", launch.hostname))?;
        let scheme = if cfg.tls.is_some() { "HTTPS" } else { "HTTP" };
        for (probe, paths) in [
            ("readinessProbe", &["/readyz"][..]),
            ("livenessProbe", &["/healthz"][..]),
            ("startupProbe", &["/healthz", "/readyz"][..]),
        ] {
            let get = &container[probe]["httpGet"];
            if probe == "startupProbe" && container[probe].is_null() {
                continue;
            }
            let path = get["path"].as_str().unwrap_or("");
            let port = port_number(&get["port"], container);
            let probe_scheme = get["scheme"].as_str().unwrap_or("HTTP");
            ensure!(
                paths.contains(&path)
                    && port == Some(node.http_addr.port())
                    && probe_scheme == scheme,
                "{what}: {probe} asks {probe_scheme} {path} at port {}; \
                 the node serves {scheme} {paths:?} at {}",
                port.map_or_else(|| format!("{:?}", get["port"]), |p| p.to_string()),
                node.http_addr.port()
            );
        }
        let ports: BTreeSet<u16> = container["ports"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|p| u16::try_from(p["containerPort"].as_u64()?).ok())
            .collect();
        let wanted = [
            Some(&node.http_addr),
            Some(&node.raft_addr),
            node.resp_addr.as_ref(),
        ];
        for addr in wanted.into_iter().flatten() {
            ensure!(
                ports.contains(&addr.port()),
                "{what}: no containerPort {} ({addr})",
                addr.port()
            );
        }
        let data = node.data_dir.to_string_lossy().into_owned();
        ensure!(
            container["volumeMounts"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|m| {
                    m["mountPath"].as_str() == Some(data.as_str())
                        && m["name"].as_str().is_some_and(|n| claims.contains(n))
                }),
            "{what}: data_dir {data} is not a volumeClaimTemplate's mount"
        );
        report.push(format!(
            "{what}: node {id}, {}, binds {:?}",
            node.http_addr, node.http_listen
        ));
    }
    ensure!(
        ids.iter().copied().eq(node_ids.iter().copied()),
        "the StatefulSet runs nodes {ids:?} ({replicas} replicas), \
         the configuration has {node_ids:?}"
    );
    Ok(report)
}

#[test]
fn kubernetes_pods_load_with_their_environment_and_the_objects_fit() {
    assert_three_nodes(check_kubernetes(&kubernetes_docs()));
}

// ---------------------------------------------------------------------------------------------
// deploy/systemd/
// ---------------------------------------------------------------------------------------------

/// `key -> values` of the unit's `[Service]` section (a key may repeat).
fn unit_service(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut section = "";
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section == "[Service]" {
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("unit line {line:?}"));
            keys.entry(k.trim().to_owned())
                .or_default()
                .push(v.trim().to_owned());
        }
    }
    keys
}

/// The file of `deploy/systemd/` that an installed path stands for: `cluster.toml`, and
/// `NAME.example` for a file the operator fills in (`sessionraft.env`).
fn installed(path: &str) -> String {
    let name = Path::new(path)
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    let dir = repo().join("deploy/systemd");
    if dir.join(&name).exists() {
        read(Path::new("deploy/systemd").join(name))
    } else {
        read(Path::new("deploy/systemd").join(format!("{name}.example")))
    }
}

/// The unit's launches, one per node of its configuration (the env file with that machine's
/// SESSIONRAFT_NODE_ID), and its `ExecStart` arguments.
fn check_systemd(unit: &str, env_text: &str) -> Result<Vec<String>, String> {
    let service = unit_service(unit);
    let one = |k: &str| -> Result<&str, String> {
        service
            .get(k)
            .and_then(|v| v.last())
            .map(String::as_str)
            .ok_or_else(|| format!("sessionraft.service: no {k}="))
    };
    ensure!(
        one("Type")? == "notify",
        "Type=notify (sessionraft serve sends READY=1)"
    );
    ensure!(one("Restart")? == "always", "Restart=always");
    ensure!(
        one("LimitNOFILE")?
            .parse::<u64>()
            .is_ok_and(|n| n >= 65_536),
        "LimitNOFILE >= 65536"
    );
    ensure!(
        !one("User")?.is_empty() && one("User")? != "root",
        "a dedicated User="
    );
    one("TimeoutStopSec")?;
    let exec: Vec<String> = one("ExecStart")?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    ensure!(
        exec.first().is_some_and(|b| b.ends_with("/sessionraft"))
            && exec.get(1).is_some_and(|a| a == "serve"),
        "ExecStart {exec:?}"
    );
    let args = exec[1..].to_vec();
    let config_path = Launch::config_path_of("sessionraft.service", &args, &[])?;
    let config_text = installed(&config_path);
    ensure!(
        service.get("EnvironmentFile").is_some_and(|f| f
            .iter()
            .any(|f| f.trim_start_matches('-') == "/etc/sessionraft/sessionraft.env")),
        "EnvironmentFile=/etc/sessionraft/sessionraft.env (deploy/systemd/sessionraft.env.example)"
    );
    let base_env = env_file(env_text);
    let state_dirs: Vec<PathBuf> = service
        .get("StateDirectory")
        .into_iter()
        .flatten()
        .flat_map(|v| v.split_whitespace())
        .map(|d| Path::new("/var/lib").join(d))
        .chain(
            service
                .get("ReadWritePaths")
                .into_iter()
                .flatten()
                .flat_map(|v| v.split_whitespace())
                .map(|p| PathBuf::from(p.trim_start_matches('-'))),
        )
        .collect();
    // Which machines: the configuration's nodes, each with its own SESSIONRAFT_NODE_ID.
    let probe = Launch {
        what: "systemd".into(),
        hostname: "node1".into(),
        env: base_env.clone(),
        args: args.clone(),
        config_path: config_path.clone(),
        config_text: config_text.clone(),
    };
    let (cfg, _) = probe.load()?;
    let mut report = Vec::new();
    for id in cfg.node_ids() {
        let mut env: Vec<(String, String)> = base_env
            .iter()
            .filter(|(k, _)| k != config::NODE_ID_ENV)
            .cloned()
            .collect();
        env.push((config::NODE_ID_ENV.to_owned(), id.to_string()));
        let node = cfg.node(id).expect("listed");
        let launch = Launch {
            what: format!("systemd machine of node {id}"),
            hostname: node.http_addr.host(),
            env,
            args: args.clone(),
            config_path: config_path.clone(),
            config_text: config_text.clone(),
        };
        let (cfg, got) = launch.load()?;
        ensure!(
            got == id,
            "{}: SESSIONRAFT_NODE_ID={id} gives node {got}",
            launch.what
        );
        let node = cfg.node(id).expect("checked");
        check_node_binds_everywhere(&launch.what, node, &node.http_addr.host())?;
        ensure!(
            state_dirs.iter().any(|d| node.data_dir.starts_with(d)),
            "{}: data_dir {} is not writable under ProtectSystem \
             (StateDirectory/ReadWritePaths {state_dirs:?})",
            launch.what,
            node.data_dir.display()
        );
        report.push(format!(
            "{}: {} data {}",
            launch.what,
            node.http_addr,
            node.data_dir.display()
        ));
    }
    Ok(report)
}

#[test]
fn systemd_unit_loads_its_configuration_on_every_machine() {
    let env = read("deploy/systemd/sessionraft.env.example");
    assert_three_nodes(check_systemd(
        &read("deploy/systemd/sessionraft.service"),
        &env,
    ));
}

/// The flags `ExecStart` gives `sessionraft serve` are flags it has (asked of the real binary).
#[test]
fn systemd_exec_start_flags_are_flags_of_serve() {
    let service = unit_service(&read("deploy/systemd/sessionraft.service"));
    let exec = service["ExecStart"].last().expect("ExecStart").clone();
    let out = std::process::Command::new(common::binary())
        .args(["serve", "--help"])
        .output()
        .expect("run sessionraft serve --help");
    assert!(out.status.success(), "sessionraft serve --help failed");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in exec.split_whitespace().filter(|w| w.starts_with("--")) {
        let flag = flag.split('=').next().unwrap_or(flag);
        assert!(
            help.split(|c: char| c.is_whitespace() || c == ',')
                .any(|w| w == flag),
            "ExecStart passes {flag}, which `sessionraft serve` does not take:\n{help}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The test fails on drift
// ---------------------------------------------------------------------------------------------

const UNKNOWN_VAR: &str = "SESSIONRAFT_RAFT__HEARTBEAT_MSS";

fn statefulset_mut(docs: &mut [(String, Value)]) -> &mut Value {
    docs.iter_mut()
        .map(|(_, d)| d)
        .find(|d| d["kind"].as_str() == Some("StatefulSet"))
        .expect("a StatefulSet")
}

fn container_mut(docs: &mut [(String, Value)]) -> &mut Value {
    statefulset_mut(docs)["spec"]["template"]["spec"]["containers"]
        .as_sequence_mut()
        .expect("containers")
        .iter_mut()
        .find(|c| {
            c["image"]
                .as_str()
                .is_some_and(|i| i.contains("sessionraft"))
        })
        .expect("the sessionraft container")
}

fn env_entry(name: &str, value: &str) -> Value {
    serde_yaml::from_str(&format!("{{name: {name}, value: \"{value}\"}}")).expect("yaml")
}

fn assert_fails(result: Result<Vec<String>, String>, needles: &[&str]) {
    let e = result.expect_err("the mutated copy must fail the check");
    eprintln!("refused as it must be: {e}");
    for needle in needles {
        assert!(e.contains(needle), "the error does not name {needle}: {e}");
    }
}

#[test]
fn an_unknown_variable_in_the_statefulset_fails_naming_it() {
    let mut docs = kubernetes_docs();
    container_mut(&mut docs)["env"]
        .as_sequence_mut()
        .expect("env")
        .push(env_entry(UNKNOWN_VAR, "100"));
    assert_fails(check_kubernetes(&docs), &[UNKNOWN_VAR]);
}

#[test]
fn an_unknown_variable_in_compose_fails_naming_it() {
    let mut doc = compose_doc();
    let env = doc["services"]["sessionraft-1"]["environment"]
        .as_mapping_mut()
        .expect("environment mapping");
    env.insert(UNKNOWN_VAR.into(), "100".into());
    assert_fails(check_compose(&doc), &[UNKNOWN_VAR]);
}

#[test]
fn an_unknown_variable_in_the_systemd_env_file_fails_naming_it() {
    let env = format!(
        "{}\n{UNKNOWN_VAR}=100\n",
        read("deploy/systemd/sessionraft.env.example")
    );
    assert_fails(
        check_systemd(&read("deploy/systemd/sessionraft.service"), &env),
        &[UNKNOWN_VAR],
    );
}

#[test]
fn an_unknown_key_in_the_configmap_fails_naming_it() {
    let mut docs = kubernetes_docs();
    let cm = docs
        .iter_mut()
        .map(|(_, d)| d)
        .find(|d| d["kind"].as_str() == Some("ConfigMap"))
        .expect("ConfigMap");
    let text = cm["data"]["cluster.toml"]
        .as_str()
        .expect("cluster.toml key")
        .replace("[raft]\n", "[raft]\nheartbeat_mss = 100\n");
    cm["data"]["cluster.toml"] = text.into();
    assert_fails(check_kubernetes(&docs), &["heartbeat_mss"]);
}

#[test]
fn a_secret_the_configuration_names_but_the_pod_lacks_fails() {
    let mut docs = kubernetes_docs();
    let env = container_mut(&mut docs)["env"]
        .as_sequence_mut()
        .expect("env");
    env.retain(|v| v["name"].as_str() != Some("SESSIONRAFT_CLUSTER_SECRET"));
    assert_fails(check_kubernetes(&docs), &["SESSIONRAFT_CLUSTER_SECRET"]);
}

#[test]
fn a_probe_on_the_wrong_path_or_port_fails() {
    let mut docs = kubernetes_docs();
    container_mut(&mut docs)["readinessProbe"]["httpGet"]["path"] = "/healthz".into();
    assert_fails(check_kubernetes(&docs), &["readinessProbe", "/healthz"]);
    let mut docs = kubernetes_docs();
    container_mut(&mut docs)["livenessProbe"]["httpGet"]["port"] = 7102.into();
    assert_fails(check_kubernetes(&docs), &["livenessProbe", "7102"]);
}

#[test]
fn a_pod_whose_name_is_not_its_nodes_fails() {
    // Renamed StatefulSet: the pods' host names no longer match the configured peer names.
    let mut docs = kubernetes_docs();
    statefulset_mut(&mut docs)["metadata"]["name"] = "sessions".into();
    assert_fails(check_kubernetes(&docs), &["sessions-0"]);
}

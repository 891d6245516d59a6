//! The commands of the Redis-protocol door: the part of Redis that session stores use, with
//! Redis's reply types and error texts.
//!
//! [`plan`] decides what a command needs — a [`Step`] — without running anything; the
//! connection's pipeline (`pipeline.rs`) runs the steps. Reads (`GET`, `MGET`, `EXISTS`, `TTL`,
//! `SCAN`, …) read this node's replica once that is linearizable (a read barrier: read index,
//! or the leader's lease). Writes are one [`KvCommand`] each, through the node's write batcher
//! (the group commit of session writes), answered after commit on a majority and apply;
//! conditions (`NX`, `XX`, `GET`, `GT`, …) are decided in apply. The proposing node picks `now`
//! and expiry instants; they travel in the command.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sessionraft_raft::clock::now_ms;
use sessionraft_raft::consensus::batcher::WriteBatcher;
use sessionraft_raft::consensus::cluster::{Cluster, ClusterError, Proposed};
use sessionraft_raft::storage::kv::{
    ExpireCondition, KvCommand, KvEntry, KvResponse, SetCondition, SetExpiry,
};
use sessionraft_raft::{Command, Response};
use sha2::{Digest, Sha256};

use super::frame::Limits;
use super::glob;
use super::reply::Reply;
use crate::metrics::Metrics;

/// The Redis version whose command set and replies this door follows (reported by `HELLO`
/// and `INFO`; clients pick features by it).
pub const REDIS_COMPAT_VERSION: &str = "7.2.0";

/// What every connection of a node shares.
pub struct Shared {
    pub cluster: Arc<Cluster>,
    pub batcher: Arc<WriteBatcher>,
    pub metrics: Arc<Metrics>,
    /// SHA-256 of the password; `None`: no `AUTH` needed.
    pub password: Option<[u8; 32]>,
    pub limits: Limits,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub port: u16,
    pub(crate) next_id: AtomicU64,
    pub(crate) connections: AtomicUsize,
    pub(crate) started: std::time::Instant,
}

impl Shared {
    /// The state of a node's door.
    pub fn new(
        cluster: Arc<Cluster>,
        batcher: Arc<WriteBatcher>,
        metrics: Arc<Metrics>,
        config: &super::settings::RespConfig,
        port: u16,
    ) -> Self {
        Self {
            cluster,
            batcher,
            metrics,
            password: config
                .password
                .as_ref()
                .map(|p| Sha256::digest(p.expose()).into()),
            limits: Limits {
                max_bulk_bytes: config.max_bulk_bytes,
                max_array_len: config.max_array_len,
            },
            max_connections: config.max_connections,
            idle_timeout: config.idle_timeout,
            port,
            next_id: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            started: std::time::Instant::now(),
        }
    }

    fn password_matches(&self, given: &[u8]) -> bool {
        // Digests of equal length compared whole: no early exit on the first differing byte.
        self.password.is_some_and(|want| {
            let got: [u8; 32] = Sha256::digest(given).into();
            want.iter().zip(got).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        })
    }
}

/// One connection's state.
pub struct Conn {
    pub id: u64,
    /// 2 or 3 (`HELLO`).
    pub proto: u8,
    pub authed: bool,
    pub name: Option<Vec<u8>>,
    /// Close after this reply (`QUIT`).
    pub quit: bool,
}

impl Conn {
    pub fn new(shared: &Shared) -> Self {
        Self {
            id: shared.next_id.fetch_add(1, Ordering::Relaxed),
            proto: 2,
            authed: shared.password.is_none(),
            name: None,
            quit: false,
        }
    }
}

type Args = [Vec<u8>];

fn err(text: impl Into<String>) -> Reply {
    Reply::error(text)
}

fn syntax() -> Reply {
    err("ERR syntax error")
}

fn not_int() -> Reply {
    err("ERR value is not an integer or out of range")
}

fn arity(name: &str) -> Reply {
    err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn invalid_expire(name: &str) -> Reply {
    err(format!("ERR invalid expire time in '{name}' command"))
}

fn int(b: &[u8]) -> Result<i64, Reply> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(not_int)
}

/// `b` in upper case (a command's name).
pub(crate) fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

/// The reply to a command the cluster could not serve.
pub(crate) fn no_quorum(e: &ClusterError) -> Reply {
    match e {
        ClusterError::NoQuorum { reason } => err(format!(
            "TRYAGAIN no quorum: {reason}; the command was not applied, resend it"
        )),
        ClusterError::LeaderChanged { .. } | ClusterError::QueueTimeout { .. } => err(format!(
            "TRYAGAIN {e}; the command was not applied, resend it"
        )),
        ClusterError::OutcomeUnknown { reason } => err(format!(
            "CLUSTERDOWN no quorum: {reason}; the write may or may not have been applied"
        )),
        ClusterError::Overloaded(reason) => err(format!(
            "TRYAGAIN overloaded: {reason}; the command was not applied, resend it in a moment"
        )),
        ClusterError::NotYet(reason) => err(format!(
            "TRYAGAIN not yet: {reason}; the command was not applied, resend it once every member is upgraded"
        )),
        ClusterError::Fatal(reason) => err(format!("ERR node failure: {reason}")),
    }
}

/// What one command needs, decided by [`plan`] before anything of its pipeline runs; the
/// connection's pipeline (`pipeline.rs`) runs the steps in the order Redis promises.
pub enum Step {
    /// Answered at once: connection commands, and every error found in the arguments.
    Now(Reply),
    /// One keyspace write (a `Command::Kv`) through the write batcher; the [`Answer`] makes
    /// its reply.
    Write(Command, Answer),
    /// A read of this node's replica, after the connection's earlier commands and (unless
    /// [`ReadOp::needs_barrier`] says otherwise) a read barrier.
    Read(ReadOp),
}

/// How a write's [`KvResponse`] becomes its reply.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// `+OK` (`SETEX`, `PSETEX`).
    Ok,
    /// An integer (`DEL`, `EXPIRE`, `PERSIST`, …).
    Int,
    /// A value or null (`GETDEL`, `GETEX` with an option).
    Value,
    /// `SET`: `+OK` or null, or the old value with `GET`.
    Set { want_old: bool },
}

impl Answer {
    /// The reply to a write whose batch came to `outcome`.
    pub fn reply(self, outcome: Result<Proposed, ClusterError>) -> Reply {
        let r = match outcome {
            Ok(Proposed {
                response: Response::Kv(r),
                ..
            }) => r,
            Ok(p) => return unexpected(&p.response),
            Err(e) => return no_quorum(&e),
        };
        match (self, r) {
            (_, KvResponse::Rejected(reason)) => err(format!("ERR {reason}")),
            (Answer::Ok, _) => Reply::ok(),
            (Answer::Int, KvResponse::Int(n)) => Reply::Int(n),
            (Answer::Value, KvResponse::Value(v)) => Reply::bulk_or_null(v),
            (Answer::Set { want_old: true }, KvResponse::Set { old, .. }) => {
                Reply::bulk_or_null(old)
            }
            (Answer::Set { .. }, KvResponse::Set { written: true, .. }) => Reply::ok(),
            (Answer::Set { .. }, KvResponse::Set { written: false, .. }) => Reply::Null,
            (_, other) => unexpected(&other),
        }
    }
}

fn unexpected(answer: &impl std::fmt::Debug) -> Reply {
    err(format!("ERR unexpected state machine answer {answer:?}"))
}

/// A read command, evaluated on this node's replica by [`ReadOp::run`].
pub struct ReadOp {
    kind: ReadKind,
    args: Vec<Vec<u8>>,
}

enum ReadKind {
    Get,
    MGet,
    Exists,
    Type,
    Ttl { millis: bool },
    DbSize,
    Scan(ScanArgs),
    Info,
}

struct ScanArgs {
    cursor: u64,
    count: usize,
    pattern: Option<Vec<u8>>,
    only_strings: bool,
}

impl ReadOp {
    fn step(kind: ReadKind, args: Vec<Vec<u8>>) -> Step {
        Step::Read(Self { kind, args })
    }

    /// The keys it reads; `None`: it reads the whole keyspace (`DBSIZE`, `SCAN`, `INFO`'s key
    /// counts), so every write conflicts with it.
    pub fn keys(&self) -> Option<&[Vec<u8>]> {
        match self.kind {
            ReadKind::Get | ReadKind::Type | ReadKind::Ttl { .. } => self.args.get(1..2),
            ReadKind::MGet | ReadKind::Exists => self.args.get(1..),
            ReadKind::DbSize | ReadKind::Scan(_) | ReadKind::Info => None,
        }
    }

    /// Whether it needs the read barrier: every read of the keyspace does; `INFO` reports this
    /// node's own view, and answers without a quorum.
    pub fn needs_barrier(&self) -> bool {
        !matches!(self.kind, ReadKind::Info)
    }

    /// The reply, read from this node's replica at `now` (the caller made that linearizable).
    pub fn run(&self, shared: &Shared, now: u64) -> Reply {
        match self.evaluate(shared, now) {
            Ok(r) | Err(r) => r,
        }
    }

    fn evaluate(&self, shared: &Shared, now: u64) -> Result<Reply, Reply> {
        let args = &self.args;
        Ok(match &self.kind {
            ReadKind::Get => Reply::bulk_or_null(get(shared, &args[1], now)?.map(|e| e.value)),
            ReadKind::MGet => {
                let mut out = Vec::with_capacity(args.len() - 1);
                for k in &args[1..] {
                    out.push(Reply::bulk_or_null(get(shared, k, now)?.map(|e| e.value)));
                }
                Reply::Array(out)
            }
            ReadKind::Exists => {
                let mut n = 0;
                for k in &args[1..] {
                    n += i64::from(get(shared, k, now)?.is_some());
                }
                Reply::Int(n)
            }
            ReadKind::Type => Reply::Simple(
                if get(shared, &args[1], now)?.is_some() {
                    "string"
                } else {
                    "none"
                }
                .into(),
            ),
            ReadKind::Ttl { millis } => Reply::Int(match get(shared, &args[1], now)? {
                None => -2,
                Some(KvEntry {
                    expires_at_ms: None,
                    ..
                }) => -1,
                Some(KvEntry {
                    expires_at_ms: Some(at),
                    ..
                }) => {
                    let left = at.saturating_sub(now);
                    let left = if *millis { left } else { (left + 500) / 1000 };
                    i64::try_from(left).unwrap_or(i64::MAX)
                }
            }),
            ReadKind::DbSize => {
                Reply::Int(i64::try_from(shared.cluster.sm.kv_keys()).unwrap_or(i64::MAX))
            }
            ReadKind::Scan(s) => {
                let keep = |k: &[u8]| {
                    s.only_strings && s.pattern.as_deref().is_none_or(|p| glob::matches(p, k))
                };
                let (found, next) = shared
                    .cluster
                    .sm
                    .kv_scan(s.cursor, s.count, now, keep)
                    .map_err(storage_error)?;
                Reply::Array(vec![
                    Reply::text(next.to_string()),
                    Reply::Array(found.into_iter().map(|(k, _)| Reply::Bulk(k)).collect()),
                ])
            }
            ReadKind::Info => info(shared, args),
        })
    }
}

/// Count one command's outcome (`sessionraft_resp_commands_total`, the dashboard's rate).
pub fn record(shared: &Shared, name: &str, reply: &Reply) {
    let outcome = match reply {
        Reply::Error(e) if e.starts_with("TRYAGAIN") || e.starts_with("CLUSTERDOWN") => {
            "unavailable"
        }
        Reply::Error(_) => "error",
        _ => "ok",
    };
    let label = if KNOWN.contains(&name) {
        name
    } else {
        "unknown"
    };
    shared
        .metrics
        .resp_commands
        .with_label_values(&[label, outcome])
        .inc();
    shared
        .metrics
        .resp_ops
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The keys the write command `name` (see [`is_write`]) with `args` may change: every argument
/// after the name for `DEL` / `UNLINK`, else the first.
pub fn written_keys<'a>(name: &str, args: &'a [Vec<u8>]) -> &'a [Vec<u8>] {
    match name {
        "DEL" | "UNLINK" => args.get(1..).unwrap_or_default(),
        _ => args.get(1..2).unwrap_or_default(),
    }
}

/// Whether the command `name` may change the keyspace (then it waits for the reads before it
/// in a pipeline: see `pipeline.rs`).
pub fn is_write(name: &str) -> bool {
    matches!(
        name,
        "SET"
            | "SETEX"
            | "PSETEX"
            | "GETDEL"
            | "GETEX"
            | "DEL"
            | "UNLINK"
            | "EXPIRE"
            | "PEXPIRE"
            | "EXPIREAT"
            | "PEXPIREAT"
            | "PERSIST"
    )
}

/// The commands served (for `COMMAND`, and metric labels).
pub const KNOWN: &[&str] = &[
    "HELLO",
    "AUTH",
    "PING",
    "ECHO",
    "QUIT",
    "SELECT",
    "CLIENT",
    "INFO",
    "COMMAND",
    "GET",
    "SET",
    "SETEX",
    "PSETEX",
    "GETDEL",
    "GETEX",
    "DEL",
    "UNLINK",
    "EXISTS",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "TTL",
    "PTTL",
    "PERSIST",
    "MGET",
    "SCAN",
    "DBSIZE",
    "TYPE",
];

/// Decide what the command `args` (non-empty; `name` is its first word in upper case) needs.
/// Never fails: every problem is an error reply. What it changes of the connection (`HELLO`,
/// `AUTH`, `CLIENT SETNAME`, `QUIT`) is changed now, for the commands after it.
pub fn plan(shared: &Shared, conn: &mut Conn, name: &str, args: Vec<Vec<u8>>) -> Step {
    let argc = args.len();
    if !conn.authed && !matches!(name, "AUTH" | "HELLO" | "QUIT") {
        return Step::Now(err("NOAUTH Authentication required."));
    }
    let now = |r: Reply| Step::Now(r);
    match name {
        "PING" => now(match argc {
            1 => Reply::Simple("PONG".into()),
            2 => Reply::Bulk(args[1].clone()),
            _ => arity("ping"),
        }),
        "ECHO" if argc == 2 => now(Reply::Bulk(args[1].clone())),
        "QUIT" => {
            conn.quit = true;
            now(Reply::ok())
        }
        "HELLO" => now(hello(shared, conn, &args)),
        "AUTH" => now(match argc {
            2 => auth(shared, conn, b"default", &args[1]),
            3 => auth(shared, conn, &args[1], &args[2]),
            _ => arity("auth"),
        }),
        "SELECT" if argc == 2 => now(match int(&args[1]) {
            Ok(0) => Reply::ok(),
            Ok(_) => err("ERR DB index is out of range"),
            Err(e) => e,
        }),
        "CLIENT" if argc >= 2 => now(client(conn, &args)),
        "INFO" => ReadOp::step(ReadKind::Info, args),
        "COMMAND" => now(command(conn, &args)),
        "GET" if argc == 2 => ReadOp::step(ReadKind::Get, args),
        "MGET" if argc >= 2 => ReadOp::step(ReadKind::MGet, args),
        "EXISTS" if argc >= 2 => ReadOp::step(ReadKind::Exists, args),
        "TYPE" if argc == 2 => ReadOp::step(ReadKind::Type, args),
        "TTL" | "PTTL" if argc == 2 => ReadOp::step(
            ReadKind::Ttl {
                millis: name == "PTTL",
            },
            args,
        ),
        "DBSIZE" if argc == 1 => ReadOp::step(ReadKind::DbSize, args),
        "SCAN" if argc >= 2 => match scan(&args) {
            Ok(s) => ReadOp::step(ReadKind::Scan(s), args),
            Err(e) => now(e),
        },
        "SET" if argc >= 3 => write(shared, set(args)),
        "SETEX" | "PSETEX" if argc == 4 => {
            let lower = name.to_ascii_lowercase();
            let at = match int(&args[2]) {
                Ok(n) if n > 0 => relative_expiry(n, name == "SETEX", &lower),
                Ok(_) => Err(invalid_expire(&lower)),
                Err(e) => Err(e),
            };
            let cmd = at.map(|at| {
                let mut args = args;
                let cmd = KvCommand::Set {
                    value: args.swap_remove(3),
                    key: args.swap_remove(1),
                    condition: SetCondition::Always,
                    expiry: SetExpiry::At(at),
                    now_ms: now_ms(),
                };
                (cmd, Answer::Ok)
            });
            write(shared, cmd)
        }
        "GETDEL" if argc == 2 => {
            let mut args = args;
            let cmd = KvCommand::GetDelete {
                key: args.swap_remove(1),
                now_ms: now_ms(),
            };
            write(shared, Ok((cmd, Answer::Value)))
        }
        "GETEX" if argc >= 2 => match getex(&args) {
            Ok(None) => ReadOp::step(ReadKind::Get, args),
            Ok(Some(expiry)) => {
                let mut args = args;
                let cmd = KvCommand::GetExpire {
                    key: args.swap_remove(1),
                    expiry,
                    now_ms: now_ms(),
                };
                write(shared, Ok((cmd, Answer::Value)))
            }
            Err(e) => now(e),
        },
        "DEL" | "UNLINK" if argc >= 2 => {
            let mut args = args;
            let cmd = KvCommand::Delete {
                keys: args.split_off(1),
                now_ms: now_ms(),
            };
            write(shared, Ok((cmd, Answer::Int)))
        }
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" if argc >= 3 => {
            write(shared, expire(name, args))
        }
        "PERSIST" if argc == 2 => {
            let mut args = args;
            let cmd = KvCommand::Persist {
                key: args.swap_remove(1),
                now_ms: now_ms(),
            };
            write(shared, Ok((cmd, Answer::Int)))
        }
        known if KNOWN.contains(&known) => now(arity(&known.to_ascii_lowercase())),
        _ => now(unknown_command(&args)),
    }
}

fn unknown_command(args: &Args) -> Reply {
    let mut text = format!(
        "ERR unknown command '{}', with args beginning with: ",
        printable(&args[0])
    );
    for a in args.iter().skip(1).take(20) {
        text.push_str(&format!("'{}' ", printable(a)));
    }
    err(text)
}

/// At most 128 characters of `b`, without CR/LF (an error reply is one line).
fn printable(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(128)])
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

fn storage_error(e: sessionraft_raft::Error) -> Reply {
    tracing::error!(error = %e, "keyspace read failed");
    err(format!("ERR storage error: {e}"))
}

fn get(shared: &Shared, key: &[u8], now: u64) -> Result<Option<KvEntry>, Reply> {
    shared.cluster.sm.kv_get(key, now).map_err(storage_error)
}

/// A write step for `cmd` (or the error found in its arguments). A cluster with a member of an
/// older release (a rolling upgrade under way) has no keyspace yet: refused at once, named as
/// such, not as a lost quorum.
fn write(shared: &Shared, cmd: Result<(KvCommand, Answer), Reply>) -> Step {
    let (cmd, answer) = match cmd {
        Ok(c) => c,
        Err(e) => return Step::Now(e),
    };
    let cmd = Command::Kv(cmd);
    if let Some(refused) = shared.cluster.refuse_unsupported(&cmd) {
        return Step::Now(no_quorum(&refused));
    }
    Step::Write(cmd, answer)
}

/// `now + n` seconds (or milliseconds), checked.
fn relative_expiry(n: i64, seconds: bool, cmd: &str) -> Result<u64, Reply> {
    let ms = if seconds {
        n.checked_mul(1000)
    } else {
        Some(n)
    };
    ms.and_then(|ms| i64::try_from(now_ms()).ok()?.checked_add(ms))
        .map(|at| u64::try_from(at).unwrap_or(0))
        .ok_or_else(|| invalid_expire(cmd))
}

/// The expiry option of `SET`/`GETEX` (`EX|PX|EXAT|PXAT n`) as an instant.
fn expiry_option(opt: &str, n: &[u8], cmd: &str) -> Result<u64, Reply> {
    let n = int(n)?;
    if n <= 0 {
        return Err(invalid_expire(cmd));
    }
    match opt {
        "EX" => relative_expiry(n, true, cmd),
        "PX" => relative_expiry(n, false, cmd),
        "EXAT" => n
            .checked_mul(1000)
            .map(|v| v as u64)
            .ok_or_else(|| invalid_expire(cmd)),
        _ => Ok(n as u64),
    }
}

fn set(args: Vec<Vec<u8>>) -> Result<(KvCommand, Answer), Reply> {
    let mut condition = SetCondition::Always;
    let mut expiry = SetExpiry::Clear;
    let mut expiry_given = false;
    let mut want_old = false;
    let mut i = 3;
    while i < args.len() {
        let opt = upper(&args[i]);
        match opt.as_str() {
            "NX" | "XX" if condition == SetCondition::Always => {
                condition = if opt == "NX" {
                    SetCondition::IfAbsent
                } else {
                    SetCondition::IfPresent
                };
            }
            "GET" if !want_old => want_old = true,
            "KEEPTTL" if !expiry_given => {
                expiry = SetExpiry::Keep;
                expiry_given = true;
            }
            "EX" | "PX" | "EXAT" | "PXAT" if !expiry_given && i + 1 < args.len() => {
                expiry = SetExpiry::At(expiry_option(&opt, &args[i + 1], "set")?);
                expiry_given = true;
                i += 1;
            }
            _ => return Err(syntax()),
        }
        i += 1;
    }
    let mut args = args;
    args.truncate(3);
    let cmd = KvCommand::Set {
        value: args.swap_remove(2),
        key: args.swap_remove(1),
        condition,
        expiry,
        now_ms: now_ms(),
    };
    Ok((cmd, Answer::Set { want_old }))
}

/// `GETEX`'s option: `None` (a plain read) or the expiry to set.
fn getex(args: &Args) -> Result<Option<SetExpiry>, Reply> {
    match args.len() {
        2 => Ok(None),
        3 if upper(&args[2]) == "PERSIST" => Ok(Some(SetExpiry::Clear)),
        4 => {
            let opt = upper(&args[2]);
            if !matches!(opt.as_str(), "EX" | "PX" | "EXAT" | "PXAT") {
                return Err(syntax());
            }
            Ok(Some(SetExpiry::At(expiry_option(&opt, &args[3], "getex")?)))
        }
        _ => Err(syntax()),
    }
}

fn expire(name: &str, args: Vec<Vec<u8>>) -> Result<(KvCommand, Answer), Reply> {
    let lower = name.to_ascii_lowercase();
    let n = int(&args[2])?;
    let now = now_ms();
    let at = match name {
        "EXPIRE" => relative_expiry(n, true, &lower),
        "PEXPIRE" => relative_expiry(n, false, &lower),
        "EXPIREAT" => n
            .checked_mul(1000)
            .map(|v| u64::try_from(v).unwrap_or(0))
            .ok_or_else(|| invalid_expire(&lower)),
        _ => Ok(u64::try_from(n).unwrap_or(0)),
    }?;
    let mut flags = Vec::new();
    for a in &args[3..] {
        let f = upper(a);
        if !matches!(f.as_str(), "NX" | "XX" | "GT" | "LT") {
            return Err(err(format!("ERR Unsupported option {}", printable(a))));
        }
        flags.push(f);
    }
    let has = |f: &str| flags.iter().any(|x| x == f);
    if has("NX") && (has("XX") || has("GT") || has("LT")) {
        return Err(err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if has("GT") && has("LT") {
        return Err(err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let condition = if has("NX") {
        ExpireCondition::IfNone
    } else if has("GT") {
        // `XX GT` is `GT` (GT already needs an expiry to be later than)
        ExpireCondition::IfLater
    } else if has("LT") && has("XX") {
        ExpireCondition::IfSomeAndEarlier
    } else if has("LT") {
        ExpireCondition::IfEarlier
    } else if has("XX") {
        ExpireCondition::IfSome
    } else {
        ExpireCondition::Always
    };
    let mut args = args;
    let cmd = KvCommand::Expire {
        key: args.swap_remove(1),
        at_ms: at,
        condition,
        now_ms: now,
    };
    Ok((cmd, Answer::Int))
}

fn scan(args: &Args) -> Result<ScanArgs, Reply> {
    let cursor = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| err("ERR invalid cursor"))?;
    let mut pattern: Option<Vec<u8>> = None;
    let mut count = 10usize;
    let mut only_strings = true;
    let mut i = 2;
    while i < args.len() {
        let opt = upper(&args[i]);
        let Some(value) = args.get(i + 1) else {
            return Err(syntax());
        };
        match opt.as_str() {
            "MATCH" => pattern = Some(value.clone()),
            "COUNT" => match int(value)? {
                n if n >= 1 => count = usize::try_from(n).unwrap_or(usize::MAX).min(100_000),
                _ => return Err(syntax()),
            },
            "TYPE" => only_strings = upper(value) == "STRING",
            _ => return Err(syntax()),
        }
        i += 2;
    }
    Ok(ScanArgs {
        cursor,
        count,
        pattern,
        only_strings,
    })
}

fn auth(shared: &Shared, conn: &mut Conn, user: &[u8], password: &[u8]) -> Reply {
    if shared.password.is_none() {
        return err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
    }
    if user == b"default" && shared.password_matches(password) {
        conn.authed = true;
        Reply::ok()
    } else {
        err("WRONGPASS invalid username-password pair or user is disabled.")
    }
}

fn hello(shared: &Shared, conn: &mut Conn, args: &Args) -> Reply {
    let mut proto = conn.proto;
    if let Some(v) = args.get(1) {
        match int(v) {
            Ok(v @ 2..=3) => proto = v as u8,
            Ok(_) => return err("NOPROTO unsupported protocol version"),
            Err(_) => return err("ERR Protocol version is not an integer or out of range"),
        }
    }
    let mut i = 2;
    let mut name = None;
    while i < args.len() {
        match upper(&args[i]).as_str() {
            "AUTH" if i + 2 < args.len() => {
                let r = auth(shared, conn, &args[i + 1], &args[i + 2]);
                if r.is_error() {
                    return r;
                }
                i += 3;
            }
            "SETNAME" if i + 1 < args.len() => {
                name = Some(args[i + 1].clone());
                i += 2;
            }
            _ => {
                return err(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    printable(&args[i])
                ))
            }
        }
    }
    if !conn.authed {
        return err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(n) = name {
        if let Err(e) = set_name(conn, n) {
            return e;
        }
    }
    conn.proto = proto;
    // Every node takes writes and serves linearizable reads: a master to a client (INFO).
    let role = "master";
    Reply::Map(vec![
        (Reply::text("server"), Reply::text("redis")),
        (Reply::text("version"), Reply::text(REDIS_COMPAT_VERSION)),
        (Reply::text("proto"), Reply::Int(i64::from(proto))),
        (
            Reply::text("id"),
            Reply::Int(i64::try_from(conn.id).unwrap_or(i64::MAX)),
        ),
        (Reply::text("mode"), Reply::text("standalone")),
        (Reply::text("role"), Reply::text(role)),
        (Reply::text("modules"), Reply::Array(Vec::new())),
    ])
}

fn set_name(conn: &mut Conn, name: Vec<u8>) -> Result<(), Reply> {
    if name.iter().any(|b| *b <= b' ' || *b > b'~') {
        return Err(err(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    conn.name = (!name.is_empty()).then_some(name);
    Ok(())
}

fn client(conn: &mut Conn, args: &Args) -> Reply {
    let sub = upper(&args[1]);
    match (sub.as_str(), args.len()) {
        ("SETINFO", 4) => match upper(&args[2]).as_str() {
            "LIB-NAME" | "LIB-VER" => Reply::ok(),
            _ => err(format!("ERR Unrecognized option '{}'", printable(&args[2]))),
        },
        ("SETNAME", 3) => match set_name(conn, args[2].clone()) {
            Ok(()) => Reply::ok(),
            Err(e) => e,
        },
        ("GETNAME", 2) => Reply::bulk_or_null(conn.name.clone()),
        ("ID", 2) => Reply::Int(i64::try_from(conn.id).unwrap_or(i64::MAX)),
        ("SETINFO" | "SETNAME" | "GETNAME" | "ID", _) => err(format!(
            "ERR wrong number of arguments for 'client|{}' command",
            sub.to_ascii_lowercase()
        )),
        _ => err(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            printable(&args[1])
        )),
    }
}

fn info(shared: &Shared, args: &Args) -> Reply {
    let sections: Vec<String> = args[1..].iter().map(|a| upper(a)).collect();
    let want = |s: &str| {
        sections.is_empty()
            || sections
                .iter()
                .any(|x| x == s || x == "ALL" || x == "DEFAULT" || x == "EVERYTHING")
    };
    let c = &shared.cluster;
    let mut out = String::new();
    if want("SERVER") {
        out.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_COMPAT_VERSION}\r\nredis_mode:standalone\r\nsessionraft_version:{}\r\nsessionraft_node_id:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            c.id,
            std::process::id(),
            shared.port,
            shared.started.elapsed().as_secs()
        ));
    }
    if want("CLIENTS") {
        out.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
            shared.connections.load(Ordering::Relaxed),
            shared.max_connections
        ));
    }
    if want("REPLICATION") {
        // Every node takes writes (forwarded to the Raft leader) and serves linearizable reads:
        // to a client each is a master. The Raft role is reported beside it.
        let raft_role = if c.is_leader() { "leader" } else { "follower" };
        let leader = c
            .leader()
            .map_or("none".to_string(), |(id, _)| id.to_string());
        out.push_str(&format!(
            "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nsessionraft_raft_role:{raft_role}\r\nsessionraft_raft_leader:{leader}\r\n\r\n"
        ));
    }
    if want("KEYSPACE") {
        out.push_str("# Keyspace\r\n");
        match c.sm.kv_keys() {
            0 => {}
            n => out.push_str(&format!("db0:keys={n},expires=0,avg_ttl=0\r\n")),
        }
        out.push_str("\r\n");
    }
    Reply::Bulk(out.trim_end().as_bytes().to_vec())
}

/// `COMMAND`, `COMMAND COUNT|DOCS|INFO`: enough for `redis-cli` and clients that look.
fn command(conn: &Conn, args: &Args) -> Reply {
    let info = |name: &str| -> Reply {
        let (arity, write, first, last): (i64, bool, i64, i64) = match name {
            "GET" | "TTL" | "PTTL" | "TYPE" | "GETEX" => (2, name == "GETEX", 1, 1),
            "SET" => (-3, true, 1, 1),
            "SETEX" | "PSETEX" => (4, true, 1, 1),
            "GETDEL" | "PERSIST" => (2, true, 1, 1),
            "DEL" | "UNLINK" => (-2, true, 1, -1),
            "EXISTS" | "MGET" => (-2, false, 1, -1),
            "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => (-3, true, 1, 1),
            "SCAN" => (-2, false, 0, 0),
            "DBSIZE" => (1, false, 0, 0),
            "PING" | "INFO" | "HELLO" | "COMMAND" => (-1, false, 0, 0),
            "AUTH" | "CLIENT" => (-2, false, 0, 0),
            "ECHO" | "SELECT" => (2, false, 0, 0),
            _ => (1, false, 0, 0),
        };
        let flags = if write { "write" } else { "readonly" };
        Reply::Array(vec![
            Reply::text(name.to_ascii_lowercase()),
            Reply::Int(arity),
            Reply::Array(vec![Reply::Simple(flags.into())]),
            Reply::Int(first),
            Reply::Int(last),
            Reply::Int(i64::from(first != 0)),
        ])
    };
    match args.get(1).map(|a| upper(a)).as_deref() {
        None => Reply::Array(KNOWN.iter().map(|n| info(n)).collect()),
        Some("COUNT") => Reply::Int(KNOWN.len() as i64),
        Some("DOCS") => {
            if conn.proto >= 3 {
                Reply::Map(Vec::new())
            } else {
                Reply::Array(Vec::new())
            }
        }
        Some("INFO") => Reply::Array(
            args[2..]
                .iter()
                .map(|a| {
                    let n = upper(a);
                    if KNOWN.contains(&n.as_str()) {
                        info(&n)
                    } else {
                        Reply::Null
                    }
                })
                .collect(),
        ),
        Some(_) => err(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            printable(&args[1])
        )),
    }
}

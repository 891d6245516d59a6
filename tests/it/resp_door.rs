//! The Redis-protocol door of real `sessionraft serve` processes, spoken to in raw RESP over TCP
//! and checked byte for byte against Redis 7's replies: every command's reply shape in RESP2 and
//! RESP3, expiry, pipelining, binary-safe keys and values, a write through one node read through
//! the others (and equal digests), a seeded random run against an in-test model, no quorum
//! (errors, never a wrong answer), AUTH, and the limits and bad input (a clear error or a
//! closed connection, the node unharmed, nothing half-written): oversized bulks and arrays,
//! garbage, half a frame, the connection cap and the idle timeout.
//!
//! Three clusters, started in parallel by the test threads: a 3-node one for the commands, a
//! 1-node one with a password and small limits, a 1-node one with a 1 s idle timeout.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{http, TestCluster, Tuning};

const READY: Duration = Duration::from_secs(30);
/// How long any single reply may take (a write without quorum waits `request_deadline_ms`).
const REPLY: Duration = Duration::from_secs(10);
const PASSWORD: &str = "door-password-0123456789";

// ---- a tiny RESP2/RESP3 client ------------------------------------------------------------------

/// A decoded reply.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Verbatim(String, Vec<u8>),
    Null,
    Array(Vec<V>),
    Map(Vec<(V, V)>),
    Set(Vec<V>),
    Bool(bool),
    Double(String),
}

impl V {
    fn bulk(s: &str) -> V {
        V::Bulk(s.as_bytes().to_vec())
    }
}

/// `b` with control and non-ASCII bytes escaped, for assertion messages.
fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// The next line at `buf[at..]` (without its CRLF) and the index after the CRLF.
fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let cr = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..cr], at + cr + 2))
}

/// One complete reply at `buf[at..]` and the index after it; `Ok(None)`: incomplete.
fn parse_at(buf: &[u8], at: usize) -> Result<Option<(V, usize)>, String> {
    let Some((l, next)) = line(buf, at) else {
        return Ok(None);
    };
    let Some((&kind, body)) = l.split_first() else {
        return Err(format!("empty line at {at} in {}", show(buf)));
    };
    let text = String::from_utf8_lossy(body).into_owned();
    let num = || {
        text.parse::<i64>()
            .map_err(|_| format!("bad number {text:?} in {}", show(buf)))
    };
    let v = match kind {
        b'+' => V::Simple(text),
        b'-' => V::Error(text),
        b':' => V::Int(num()?),
        b'_' => V::Null,
        b'#' => V::Bool(text == "t"),
        b',' => V::Double(text),
        b'$' | b'=' => {
            let n = num()?;
            if n < 0 {
                return Ok(Some((V::Null, next)));
            }
            let end = next + n as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(format!("bulk not ended by CRLF in {}", show(buf)));
            }
            let data = buf[next..end].to_vec();
            if kind == b'=' {
                if data.len() < 4 || data[3] != b':' {
                    return Err(format!("bad verbatim string in {}", show(buf)));
                }
                let format = String::from_utf8_lossy(&data[..3]).into_owned();
                return Ok(Some((V::Verbatim(format, data[4..].to_vec()), end + 2)));
            }
            return Ok(Some((V::Bulk(data), end + 2)));
        }
        b'*' | b'~' | b'>' | b'%' => {
            let n = num()?;
            if n < 0 {
                return Ok(Some((V::Null, next)));
            }
            let count = if kind == b'%' { 2 * n } else { n };
            let mut items = Vec::new();
            let mut pos = next;
            for _ in 0..count {
                match parse_at(buf, pos)? {
                    Some((v, p)) => {
                        items.push(v);
                        pos = p;
                    }
                    None => return Ok(None),
                }
            }
            let v = match kind {
                b'%' => {
                    let mut pairs = Vec::new();
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    V::Map(pairs)
                }
                b'~' => V::Set(items),
                _ => V::Array(items),
            };
            return Ok(Some((v, pos)));
        }
        other => {
            return Err(format!(
                "unexpected type byte {:?} in {}",
                char::from(other),
                show(buf)
            ))
        }
    };
    Ok(Some((v, next)))
}

/// A command as a RESP array of bulk strings.
fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One client connection to a door.
struct Door {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Door {
    async fn connect(addr: SocketAddr) -> Door {
        let s = tokio::time::timeout(REPLY, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("connect {addr}: timed out"))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_nodelay(true).expect("nodelay");
        Door { s, buf: Vec::new() }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.expect("write to the door");
    }

    async fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        self.send_raw(&encode(args)).await;
    }

    /// Read more bytes into the buffer: `Ok(0)` at EOF.
    async fn fill(&mut self, within: Duration) -> Result<usize, String> {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(within, self.s.read(&mut chunk)).await {
            Err(_) => Err(format!("nothing read in {within:?}")),
            Ok(Err(e)) => Err(format!("read: {e}")),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
        }
    }

    /// The next reply, or `None` when the connection closed (EOF or reset) before one was
    /// complete.
    async fn next_reply(&mut self) -> Option<(V, Vec<u8>)> {
        loop {
            match parse_at(&self.buf, 0) {
                Err(e) => panic!("unparsable reply: {e}"),
                Ok(Some((v, n))) => {
                    let raw: Vec<u8> = self.buf.drain(..n).collect();
                    return Some((v, raw));
                }
                Ok(None) => {}
            }
            match self.fill(REPLY).await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if e.starts_with("read:") => return None,
                Err(e) => panic!("no reply: {e} (have {})", show(&self.buf)),
            }
        }
    }

    async fn reply(&mut self) -> (V, Vec<u8>) {
        let buffered = show(&self.buf);
        self.next_reply()
            .await
            .unwrap_or_else(|| panic!("the door closed the connection (buffered: {buffered})"))
    }

    /// A command given as space-separated words: its decoded reply and raw bytes.
    async fn call(&mut self, cmd: &str) -> (V, Vec<u8>) {
        let args: Vec<&str> = cmd.split(' ').collect();
        self.send(&args).await;
        self.reply().await
    }

    async fn v(&mut self, cmd: &str) -> V {
        self.call(cmd).await.0
    }

    async fn raw(&mut self, cmd: &str) -> Vec<u8> {
        self.call(cmd).await.1
    }

    /// Assert the exact bytes of the reply to `cmd`.
    async fn is(&mut self, cmd: &str, want: &str) {
        let got = self.raw(cmd).await;
        assert_eq!(
            show(&got),
            show(want.as_bytes()),
            "reply to {cmd:?}: got {}, want {}",
            show(&got),
            show(want.as_bytes())
        );
    }

    /// Assert an error reply that starts with `-{prefix}`.
    async fn err(&mut self, cmd: &str, prefix: &str) {
        let got = self.raw(cmd).await;
        assert!(
            got.starts_with(format!("-{prefix}").as_bytes()) && got.ends_with(b"\r\n"),
            "reply to {cmd:?}: got {}, want an error starting with -{prefix}",
            show(&got)
        );
    }

    async fn int(&mut self, cmd: &str) -> i64 {
        match self.call(cmd).await {
            (V::Int(n), _) => n,
            (_, raw) => panic!("reply to {cmd:?}: got {}, want an integer", show(&raw)),
        }
    }

    /// Read until the server closes the connection (EOF or reset) within `within`: everything
    /// it sent first. Panics when it stays open.
    async fn until_closed(&mut self, within: Duration) -> Vec<u8> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.fill(left).await {
                Ok(0) => return std::mem::take(&mut self.buf),
                Ok(_) => {}
                Err(e) if e.starts_with("read:") => return std::mem::take(&mut self.buf),
                Err(e) => panic!(
                    "the door kept the connection open ({e}); received {}",
                    show(&self.buf)
                ),
            }
        }
    }

    /// Assert nothing arrives within `wait` (and the connection stays open).
    async fn silent(&mut self, wait: Duration) {
        match self.fill(wait).await {
            Err(e) if e.starts_with("nothing read") => {}
            other => panic!("expected silence, got {other:?} with {}", show(&self.buf)),
        }
    }
}

// ---- clusters with doors -------------------------------------------------------------------------

/// Start `n` nodes, each with a `resp_addr`, with `resp_section` appended to the config; wait
/// until every node is ready and every door answers.
async fn start_doors(
    n: usize,
    tuning: Tuning,
    resp_section: &str,
) -> (TestCluster, Vec<SocketAddr>) {
    let (c, ports) = TestCluster::start_with_doors(n, tuning, resp_section);
    let addrs: Vec<SocketAddr> = ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    c.wait_ready(READY).await;
    for (i, addr) in addrs.iter().enumerate() {
        let deadline = Instant::now() + READY;
        loop {
            let answered = match TcpStream::connect(addr).await {
                Ok(mut s) => {
                    let _ = s.write_all(b"*1\r\n$4\r\nPING\r\n").await;
                    let mut b = [0u8; 64];
                    matches!(
                        tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await,
                        Ok(Ok(n)) if n > 0
                    )
                }
                Err(_) => false,
            };
            if answered {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "door of node {} not answering:\n{}",
                i + 1,
                c.log(i as u64 + 1)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (c, addrs)
}

async fn readyz(c: &TestCluster, id: u64) -> u16 {
    match http().get(c.url(id, "/readyz")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// A TTL (seconds) or PTTL (milliseconds, every one checked here is above 10 000) within
/// `lo..=hi`, less 5 s of slack: the commands run back to back, but a loaded machine can stall.
fn in_range(what: &str, got: i64, lo: i64, hi: i64) {
    let lo = lo - if hi >= 10_000 { 5_000 } else { 5 };
    assert!(
        (lo..=hi).contains(&got),
        "{what}: {got} not within {lo}..={hi}"
    );
}

/// The expected `HELLO` reply in `proto` for a connection with `id`.
fn hello_bytes(proto: u8, id: i64, version: &str) -> String {
    let head = if proto == 3 { "%7\r\n" } else { "*14\r\n" };
    format!(
        "{head}$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n${}\r\n{version}\r\n\
         $5\r\nproto\r\n:{proto}\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
         $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
        version.len()
    )
}

/// Every key matching `pattern` (and `TYPE`, if given) by SCAN from cursor 0 back to 0.
async fn scan_all(d: &mut Door, pattern: &str, count: usize, ty: Option<&str>) -> BTreeSet<String> {
    let mut cursor = "0".to_string();
    let mut keys = BTreeSet::new();
    let mut rounds = 0;
    loop {
        let mut cmd = format!("SCAN {cursor} MATCH {pattern} COUNT {count}");
        if let Some(t) = ty {
            let _ = write!(cmd, " TYPE {t}");
        }
        let (v, raw) = d.call(&cmd).await;
        let V::Array(parts) = v else {
            panic!("SCAN: {}", show(&raw))
        };
        assert_eq!(parts.len(), 2, "SCAN: {}", show(&raw));
        let V::Bulk(next) = &parts[0] else {
            panic!("SCAN cursor is not a bulk string: {}", show(&raw))
        };
        let next = String::from_utf8(next.clone()).expect("cursor text");
        next.parse::<u64>().expect("numeric cursor");
        let V::Array(found) = &parts[1] else {
            panic!("SCAN keys are not an array: {}", show(&raw))
        };
        for k in found {
            let V::Bulk(k) = k else {
                panic!("SCAN key is not a bulk string: {}", show(&raw))
            };
            keys.insert(String::from_utf8_lossy(k).into_owned());
        }
        if next == "0" {
            return keys;
        }
        cursor = next;
        rounds += 1;
        assert!(rounds < 10_000, "SCAN never returned to cursor 0");
    }
}

// ---- every command's reply, RESP2 and RESP3 -----------------------------------------------------

/// Every command's reply on connection `d` speaking `proto`; keys start with `p`.
async fn reply_shapes(d: &mut Door, proto: u8, p: &str) {
    let nil = if proto == 3 { "_\r\n" } else { "$-1\r\n" };

    // HELLO: the map of Redis 7 (a flat array in RESP2); other versions refused
    let id = d.int("CLIENT ID").await;
    assert!(id > 0);
    let (v, raw) = d.call(&format!("HELLO {proto}")).await;
    let version = match &v {
        V::Map(pairs) => {
            assert_eq!(proto, 3, "a map in RESP2: {}", show(&raw));
            pairs[1].1.clone()
        }
        V::Array(items) => {
            assert_eq!(proto, 2, "an array in RESP3: {}", show(&raw));
            items[3].clone()
        }
        _ => panic!("HELLO: {}", show(&raw)),
    };
    let V::Bulk(version) = version else {
        panic!("HELLO version: {}", show(&raw))
    };
    let version = String::from_utf8(version).expect("version");
    assert!(version.starts_with("7."), "HELLO version {version}");
    assert_eq!(
        show(&raw),
        show(hello_bytes(proto, id, &version).as_bytes())
    );
    d.is("HELLO 4", "-NOPROTO unsupported protocol version\r\n")
        .await;
    d.is("HELLO 1", "-NOPROTO unsupported protocol version\r\n")
        .await;
    d.is(
        "HELLO x",
        "-ERR Protocol version is not an integer or out of range\r\n",
    )
    .await;
    d.is(
        &format!("HELLO {proto} BOGUS"),
        "-ERR Syntax error in HELLO option 'BOGUS'\r\n",
    )
    .await;
    // HELLO without a version: the same map, the protocol unchanged
    assert_eq!(
        show(&d.raw("HELLO").await),
        show(hello_bytes(proto, id, &version).as_bytes())
    );

    // PING, ECHO, SELECT
    d.is("PING", "+PONG\r\n").await;
    d.is("ping hello", "$5\r\nhello\r\n").await;
    d.is(
        "PING a b",
        "-ERR wrong number of arguments for 'ping' command\r\n",
    )
    .await;
    d.is("ECHO hi", "$2\r\nhi\r\n").await;
    d.is(
        "ECHO",
        "-ERR wrong number of arguments for 'echo' command\r\n",
    )
    .await;
    d.is("SELECT 0", "+OK\r\n").await;
    d.err("SELECT 1", "ERR ").await;
    d.is(
        "SELECT x",
        "-ERR value is not an integer or out of range\r\n",
    )
    .await;

    // CLIENT
    d.is("CLIENT SETINFO LIB-NAME resp-door-test", "+OK\r\n")
        .await;
    d.is("CLIENT SETINFO lib-ver 1.2.3", "+OK\r\n").await;
    d.err("CLIENT SETINFO BOGUS x", "ERR ").await;
    d.is("CLIENT GETNAME", nil).await;
    d.is("CLIENT SETNAME tester", "+OK\r\n").await;
    d.is("CLIENT GETNAME", "$6\r\ntester\r\n").await;
    d.err("CLIENT SETNAME", "ERR wrong number of arguments")
        .await;
    d.send(&["CLIENT", "SETNAME", "has space"]).await;
    let (_, raw) = d.reply().await;
    assert!(
        raw.starts_with(b"-ERR Client names cannot contain spaces"),
        "{}",
        show(&raw)
    );
    d.send(&["CLIENT", "SETNAME", ""]).await;
    assert_eq!(show(&d.reply().await.1), "+OK\\r\\n");
    d.is("CLIENT GETNAME", nil).await;
    d.is("CLIENT ID", &format!(":{id}\r\n")).await;
    d.is(
        "CLIENT NOSUCHSUB",
        "-ERR unknown subcommand 'NOSUCHSUB'. Try CLIENT HELP.\r\n",
    )
    .await;
    d.is(
        "CLIENT",
        "-ERR wrong number of arguments for 'client' command\r\n",
    )
    .await;
    // HELLO … SETNAME names the connection
    let (v, _) = d.call(&format!("HELLO {proto} SETNAME named")).await;
    assert!(matches!(v, V::Map(_) | V::Array(_)), "{v:?}");
    d.is("CLIENT GETNAME", "$5\r\nnamed\r\n").await;

    // INFO: one text with the sections Redis clients look for
    let (v, raw) = d.call("INFO").await;
    let text = match v {
        V::Bulk(b) => b,
        V::Verbatim(format, b) if proto == 3 => {
            assert_eq!(format, "txt");
            b
        }
        _ => panic!("INFO: {}", show(&raw)),
    };
    let text = String::from_utf8(text).expect("INFO is text");
    for want in ["# Server", "redis_version:", "role:master", "# Keyspace"] {
        assert!(text.contains(want), "INFO lacks {want:?}:\n{text}");
    }
    let (v, _) = d.call("INFO keyspace").await;
    let (V::Bulk(t) | V::Verbatim(_, t)) = v else {
        panic!("INFO keyspace: {v:?}")
    };
    let t = String::from_utf8(t).expect("text");
    assert!(t.contains("# Keyspace") && !t.contains("# Server"), "{t}");

    // COMMAND: COUNT, DOCS (what redis-cli asks at start), INFO, the list
    let count = d.int("COMMAND COUNT").await;
    assert!(count >= 25, "COMMAND COUNT {count}");
    d.is("COMMAND DOCS", if proto == 3 { "%0\r\n" } else { "*0\r\n" })
        .await;
    let (v, raw) = d.call("COMMAND").await;
    let V::Array(all) = v else {
        panic!("COMMAND: {}", show(&raw))
    };
    assert_eq!(all.len() as i64, count);
    let names: BTreeSet<Vec<u8>> = all
        .iter()
        .map(|c| match c {
            V::Array(info) => match &info[0] {
                V::Bulk(n) => n.clone(),
                other => panic!("COMMAND name {other:?}"),
            },
            other => panic!("COMMAND entry {other:?}"),
        })
        .collect();
    for n in ["get", "set", "del", "scan", "expire", "hello", "auth"] {
        assert!(names.contains(n.as_bytes()), "COMMAND lacks {n}");
    }
    let (v, raw) = d.call("COMMAND INFO get nosuchcommand").await;
    match &v {
        V::Array(items) if items.len() == 2 => {
            let V::Array(get) = &items[0] else {
                panic!("COMMAND INFO: {}", show(&raw))
            };
            assert_eq!(get[0], V::bulk("get"));
            assert_eq!(get[1], V::Int(2));
            assert_eq!(items[1], V::Null);
        }
        _ => panic!("COMMAND INFO: {}", show(&raw)),
    }

    // GET, SET and its options
    d.is(&format!("GET {p}missing"), nil).await;
    d.is(&format!("SET {p}k v1"), "+OK\r\n").await;
    d.is(&format!("get {p}k"), "$2\r\nv1\r\n").await;
    d.is(&format!("TTL {p}k"), ":-1\r\n").await;
    d.is(&format!("PTTL {p}k"), ":-1\r\n").await;
    d.is(&format!("TTL {p}missing"), ":-2\r\n").await;
    d.is(&format!("PTTL {p}missing"), ":-2\r\n").await;

    d.is(&format!("SET {p}k v2 EX 100"), "+OK\r\n").await;
    in_range(
        "TTL after EX 100",
        d.int(&format!("TTL {p}k")).await,
        98,
        100,
    );
    in_range(
        "PTTL after EX 100",
        d.int(&format!("PTTL {p}k")).await,
        95_000,
        100_000,
    );
    d.is(&format!("SET {p}k v3 PX 200000"), "+OK\r\n").await;
    in_range(
        "PTTL after PX 200000",
        d.int(&format!("PTTL {p}k")).await,
        195_000,
        200_000,
    );
    let at = now_ms() / 1000 + 300;
    d.is(&format!("SET {p}k v4 EXAT {at}"), "+OK\r\n").await;
    in_range(
        "TTL after EXAT",
        d.int(&format!("TTL {p}k")).await,
        295,
        301,
    );
    let at = now_ms() + 400_000;
    d.is(&format!("SET {p}k v5 PXAT {at}"), "+OK\r\n").await;
    in_range(
        "PTTL after PXAT",
        d.int(&format!("PTTL {p}k")).await,
        395_000,
        400_000,
    );
    d.is(&format!("SET {p}k v6 KEEPTTL"), "+OK\r\n").await;
    d.is(&format!("GET {p}k"), "$2\r\nv6\r\n").await;
    in_range(
        "TTL after KEEPTTL",
        d.int(&format!("TTL {p}k")).await,
        390,
        400,
    );
    d.is(&format!("SET {p}k v7"), "+OK\r\n").await;
    d.is(&format!("TTL {p}k"), ":-1\r\n").await;

    // NX / XX / GET
    d.is(&format!("SET {p}absent v XX"), nil).await;
    d.is(&format!("EXISTS {p}absent"), ":0\r\n").await;
    d.is(&format!("SET {p}k other NX"), nil).await;
    d.is(&format!("GET {p}k"), "$2\r\nv7\r\n").await;
    d.is(&format!("SET {p}nx v NX"), "+OK\r\n").await;
    d.is(&format!("SET {p}nx w XX"), "+OK\r\n").await;
    d.is(&format!("GET {p}nx"), "$1\r\nw\r\n").await;
    d.is(&format!("SET {p}k v8 GET"), "$2\r\nv7\r\n").await;
    d.is(&format!("GET {p}k"), "$2\r\nv8\r\n").await;
    d.is(&format!("SET {p}fresh v GET"), nil).await;
    d.is(&format!("GET {p}fresh"), "$1\r\nv\r\n").await;
    // NX GET (Redis 7): the old value, nothing written
    d.is(&format!("SET {p}k v9 NX GET"), "$2\r\nv8\r\n").await;
    d.is(&format!("GET {p}k"), "$2\r\nv8\r\n").await;
    d.is(&format!("SET {p}absent v XX GET"), nil).await;
    d.is(&format!("EXISTS {p}absent"), ":0\r\n").await;
    d.is(&format!("SET {p}k v10 XX GET EX 100"), "$2\r\nv8\r\n")
        .await;
    in_range(
        "TTL after XX GET EX",
        d.int(&format!("TTL {p}k")).await,
        98,
        100,
    );

    // SET errors
    for bad in ["EX 0", "EX -5", "PX 0", "EXAT 0", "PXAT -1"] {
        d.is(
            &format!("SET {p}k v {bad}"),
            "-ERR invalid expire time in 'set' command\r\n",
        )
        .await;
    }
    d.is(
        &format!("SET {p}k v EX abc"),
        "-ERR value is not an integer or out of range\r\n",
    )
    .await;
    for bad in [
        "NX XX",
        "EX 10 PX 10",
        "KEEPTTL EX 10",
        "EX 10 KEEPTTL",
        "EX",
        "BOGUS",
    ] {
        d.is(&format!("SET {p}k v {bad}"), "-ERR syntax error\r\n")
            .await;
    }
    d.is(
        &format!("SET {p}k"),
        "-ERR wrong number of arguments for 'set' command\r\n",
    )
    .await;
    d.is(&format!("GET {p}k"), "$3\r\nv10\r\n").await;

    // SETEX, PSETEX
    d.is(&format!("SETEX {p}sx 100 v"), "+OK\r\n").await;
    in_range(
        "TTL after SETEX",
        d.int(&format!("TTL {p}sx")).await,
        98,
        100,
    );
    d.is(&format!("GET {p}sx"), "$1\r\nv\r\n").await;
    d.is(&format!("PSETEX {p}psx 100000 v"), "+OK\r\n").await;
    in_range(
        "PTTL after PSETEX",
        d.int(&format!("PTTL {p}psx")).await,
        95_000,
        100_000,
    );
    d.is(
        &format!("SETEX {p}sx 0 v"),
        "-ERR invalid expire time in 'setex' command\r\n",
    )
    .await;
    d.is(
        &format!("PSETEX {p}sx -1 v"),
        "-ERR invalid expire time in 'psetex' command\r\n",
    )
    .await;
    d.is(
        &format!("SETEX {p}sx x v"),
        "-ERR value is not an integer or out of range\r\n",
    )
    .await;
    d.is(
        &format!("SETEX {p}sx 10"),
        "-ERR wrong number of arguments for 'setex' command\r\n",
    )
    .await;

    // GETDEL
    d.is(&format!("SET {p}gd val"), "+OK\r\n").await;
    d.is(&format!("GETDEL {p}gd"), "$3\r\nval\r\n").await;
    d.is(&format!("GETDEL {p}gd"), nil).await;
    d.is(&format!("EXISTS {p}gd"), ":0\r\n").await;
    d.is(
        &format!("GETDEL {p}gd x"),
        "-ERR wrong number of arguments for 'getdel' command\r\n",
    )
    .await;

    // GETEX
    d.is(&format!("SET {p}gx val"), "+OK\r\n").await;
    d.is(&format!("GETEX {p}gx"), "$3\r\nval\r\n").await;
    d.is(&format!("TTL {p}gx"), ":-1\r\n").await;
    d.is(&format!("GETEX {p}gx EX 100"), "$3\r\nval\r\n").await;
    in_range(
        "TTL after GETEX EX",
        d.int(&format!("TTL {p}gx")).await,
        98,
        100,
    );
    d.is(&format!("GETEX {p}gx PERSIST"), "$3\r\nval\r\n").await;
    d.is(&format!("TTL {p}gx"), ":-1\r\n").await;
    d.is(&format!("GETEX {p}gx PX 50000"), "$3\r\nval\r\n")
        .await;
    in_range(
        "PTTL after GETEX PX",
        d.int(&format!("PTTL {p}gx")).await,
        45_000,
        50_000,
    );
    d.is(&format!("GETEX {p}missing EX 10"), nil).await;
    d.is(&format!("EXISTS {p}missing"), ":0\r\n").await;
    d.is(&format!("GETEX {p}gx BOGUS"), "-ERR syntax error\r\n")
        .await;
    d.is(&format!("GETEX {p}gx EX"), "-ERR syntax error\r\n")
        .await;
    d.is(
        &format!("GETEX {p}gx EX 0"),
        "-ERR invalid expire time in 'getex' command\r\n",
    )
    .await;
    d.is(
        "GETEX",
        "-ERR wrong number of arguments for 'getex' command\r\n",
    )
    .await;

    // DEL, UNLINK: how many were removed
    for i in 0..5 {
        d.is(&format!("SET {p}del{i} x"), "+OK\r\n").await;
    }
    d.is(
        &format!("DEL {p}del0 {p}del1 {p}del2 {p}nosuch {p}del0"),
        ":3\r\n",
    )
    .await;
    d.is(&format!("UNLINK {p}del3 {p}del4 {p}nosuch"), ":2\r\n")
        .await;
    d.is(&format!("DEL {p}del0"), ":0\r\n").await;
    d.is(
        "DEL",
        "-ERR wrong number of arguments for 'del' command\r\n",
    )
    .await;
    d.is(
        "UNLINK",
        "-ERR wrong number of arguments for 'unlink' command\r\n",
    )
    .await;

    // EXISTS counts a key as often as it is named
    d.is(&format!("SET {p}e x"), "+OK\r\n").await;
    d.is(&format!("EXISTS {p}e {p}e {p}nosuch {p}e"), ":3\r\n")
        .await;
    d.is(
        "EXISTS",
        "-ERR wrong number of arguments for 'exists' command\r\n",
    )
    .await;

    // EXPIRE and its conditions (0 or 1)
    d.is(&format!("EXPIRE {p}nosuch 100"), ":0\r\n").await;
    d.is(&format!("SET {p}x x"), "+OK\r\n").await;
    d.is(&format!("EXPIRE {p}x 100 XX"), ":0\r\n").await; // no TTL yet
    d.is(&format!("EXPIRE {p}x 100 GT"), ":0\r\n").await; // no TTL counts as infinite
    d.is(&format!("EXPIRE {p}x 100 NX"), ":1\r\n").await;
    d.is(&format!("EXPIRE {p}x 200 NX"), ":0\r\n").await;
    d.is(&format!("EXPIRE {p}x 50 GT"), ":0\r\n").await;
    d.is(&format!("EXPIRE {p}x 300 GT"), ":1\r\n").await;
    in_range("TTL after GT", d.int(&format!("TTL {p}x")).await, 298, 300);
    d.is(&format!("EXPIRE {p}x 400 LT"), ":0\r\n").await;
    d.is(&format!("EXPIRE {p}x 150 LT"), ":1\r\n").await;
    d.is(&format!("EXPIRE {p}x 160 XX"), ":1\r\n").await;
    in_range("TTL after XX", d.int(&format!("TTL {p}x")).await, 158, 160);
    d.is(&format!("PEXPIRE {p}x 500000"), ":1\r\n").await;
    in_range(
        "PTTL after PEXPIRE",
        d.int(&format!("PTTL {p}x")).await,
        495_000,
        500_000,
    );
    let at = now_ms() / 1000 + 1000;
    d.is(&format!("EXPIREAT {p}x {at}"), ":1\r\n").await;
    in_range(
        "TTL after EXPIREAT",
        d.int(&format!("TTL {p}x")).await,
        995,
        1001,
    );
    let at = now_ms() + 2_000_000;
    d.is(&format!("PEXPIREAT {p}x {at} GT"), ":1\r\n").await;
    in_range(
        "PTTL after PEXPIREAT",
        d.int(&format!("PTTL {p}x")).await,
        1_995_000,
        2_000_000,
    );
    d.is(
        &format!("EXPIRE {p}x 10 NX XX"),
        "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
    )
    .await;
    d.is(
        &format!("EXPIRE {p}x 10 GT LT"),
        "-ERR GT and LT options at the same time are not compatible\r\n",
    )
    .await;
    d.is(
        &format!("EXPIRE {p}x 10 BOGUS"),
        "-ERR Unsupported option BOGUS\r\n",
    )
    .await;
    d.is(
        &format!("EXPIRE {p}x abc"),
        "-ERR value is not an integer or out of range\r\n",
    )
    .await;
    d.is(
        &format!("EXPIRE {p}x"),
        "-ERR wrong number of arguments for 'expire' command\r\n",
    )
    .await;
    // LT on a key without TTL sets one (no TTL counts as infinite)
    d.is(&format!("SET {p}y y"), "+OK\r\n").await;
    d.is(&format!("EXPIRE {p}y 100 LT"), ":1\r\n").await;
    // a past instant deletes the key
    d.is(&format!("EXPIRE {p}y -1"), ":1\r\n").await;
    d.is(&format!("EXISTS {p}y"), ":0\r\n").await;
    d.is(&format!("SET {p}z z"), "+OK\r\n").await;
    d.is(&format!("EXPIREAT {p}z 1"), ":1\r\n").await;
    d.is(&format!("GET {p}z"), nil).await;

    // PERSIST
    d.is(&format!("PERSIST {p}x"), ":1\r\n").await;
    d.is(&format!("TTL {p}x"), ":-1\r\n").await;
    d.is(&format!("PERSIST {p}x"), ":0\r\n").await;
    d.is(&format!("PERSIST {p}nosuch"), ":0\r\n").await;

    // MGET: nulls in place
    d.is(&format!("SET {p}m1 a"), "+OK\r\n").await;
    d.is(&format!("SET {p}m2 bb"), "+OK\r\n").await;
    d.is(
        &format!("MGET {p}m1 {p}nosuch {p}m2"),
        &format!("*3\r\n$1\r\na\r\n{nil}$2\r\nbb\r\n"),
    )
    .await;
    d.is(
        "MGET",
        "-ERR wrong number of arguments for 'mget' command\r\n",
    )
    .await;

    // TYPE
    d.is(&format!("TYPE {p}m1"), "+string\r\n").await;
    d.is(&format!("TYPE {p}nosuch"), "+none\r\n").await;

    // SCAN: MATCH, COUNT, TYPE, back to cursor 0 with every key
    let want: BTreeSet<String> = (0..25).map(|i| format!("{p}scan:{i}")).collect();
    for k in &want {
        d.is(&format!("SET {k} x"), "+OK\r\n").await;
    }
    d.is(&format!("SET {p}scanx x"), "+OK\r\n").await;
    assert_eq!(scan_all(d, &format!("{p}scan:*"), 5, None).await, want);
    assert_eq!(scan_all(d, &format!("{p}scan:*"), 1000, None).await, want);
    assert_eq!(
        scan_all(d, &format!("{p}scan:*"), 7, Some("string")).await,
        want
    );
    assert!(scan_all(d, &format!("{p}scan:*"), 7, Some("hash"))
        .await
        .is_empty());
    assert_eq!(
        scan_all(d, &format!("{p}scan:1?"), 10, None).await,
        (10..20).map(|i| format!("{p}scan:{i}")).collect()
    );
    d.is("SCAN abc", "-ERR invalid cursor\r\n").await;
    d.is("SCAN 0 COUNT 0", "-ERR syntax error\r\n").await;
    d.is("SCAN 0 MATCH", "-ERR syntax error\r\n").await;
    d.is("SCAN 0 BOGUS x", "-ERR syntax error\r\n").await;
    d.is(
        "SCAN",
        "-ERR wrong number of arguments for 'scan' command\r\n",
    )
    .await;

    // DBSIZE counts new keys
    let before = d.int("DBSIZE").await;
    for i in 0..3 {
        d.is(&format!("SET {p}db{i} x"), "+OK\r\n").await;
    }
    d.is("DBSIZE", &format!(":{}\r\n", before + 3)).await;
    d.is(
        "DBSIZE x",
        "-ERR wrong number of arguments for 'dbsize' command\r\n",
    )
    .await;

    // wrong arity, unknown commands: an error, the connection still usable
    d.is(
        "GET",
        "-ERR wrong number of arguments for 'get' command\r\n",
    )
    .await;
    d.is(
        "GET a b",
        "-ERR wrong number of arguments for 'get' command\r\n",
    )
    .await;
    d.is(
        "NOSUCHCMD a b",
        "-ERR unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' \r\n",
    )
    .await;
    d.is(
        "HSET h f v",
        "-ERR unknown command 'HSET', with args beginning with: 'h' 'f' 'v' \r\n",
    )
    .await;
    d.is("PING", "+PONG\r\n").await;

    // binary-safe keys and values: NUL, CR LF, high bytes
    let key = format!("{p}bin\0\r\nkey\u{7f}").into_bytes();
    let mut value = b"\x00\r\n\xff\xfe\r\n$3\r\n*1\r\n".to_vec();
    value.extend((0..=255u8).collect::<Vec<u8>>());
    d.send(&[b"SET".as_slice(), &key, &value]).await;
    assert_eq!(show(&d.reply().await.1), "+OK\\r\\n");
    d.send(&[b"GET".as_slice(), &key]).await;
    let (v, raw) = d.reply().await;
    assert_eq!(v, V::Bulk(value.clone()));
    let mut want_raw = format!("${}\r\n", value.len()).into_bytes();
    want_raw.extend_from_slice(&value);
    want_raw.extend_from_slice(b"\r\n");
    assert_eq!(show(&raw), show(&want_raw));
    d.send(&[b"EXISTS".as_slice(), &key, &key]).await;
    assert_eq!(d.reply().await.0, V::Int(2));
    d.send(&[b"GET".as_slice(), &key[..key.len() - 1]]).await;
    assert_eq!(d.reply().await.0, V::Null, "a prefix of a binary key");
    let scanned = scan_all(d, &format!("{p}bin*"), 100, None).await;
    assert_eq!(scanned, [String::from_utf8_lossy(&key).into_owned()].into());
    d.send(&[b"DEL".as_slice(), &key]).await;
    assert_eq!(d.reply().await.0, V::Int(1));
    // an empty value is a value
    d.send(&[b"SET".as_slice(), format!("{p}empty").as_bytes(), b""])
        .await;
    assert_eq!(show(&d.reply().await.1), "+OK\\r\\n");
    d.is(&format!("GET {p}empty"), "$0\r\n\r\n").await;
    d.is(&format!("EXISTS {p}empty"), ":1\r\n").await;

    // inline commands (as typed into nc)
    d.send_raw(format!("SET {p}inline  v\r\nGET {p}inline\nPING\r\n").as_bytes())
        .await;
    assert_eq!(show(&d.reply().await.1), "+OK\\r\\n");
    assert_eq!(show(&d.reply().await.1), "$1\\r\\nv\\r\\n");
    assert_eq!(show(&d.reply().await.1), "+PONG\\r\\n");
}

/// Commands written in one `write()` are answered in order.
async fn pipelining(addr: SocketAddr) {
    let mut d = Door::connect(addr).await;
    let mut batch = Vec::new();
    let mut want: Vec<String> = Vec::new();
    let mut present = BTreeSet::new();
    for i in 0..100 {
        let k = format!("pipe:{i}");
        let v = format!("v{i}");
        batch.extend(encode(&["SET", &k, &v]));
        want.push("+OK\r\n".into());
        present.insert(k.clone());
        batch.extend(encode(&["GET", &k]));
        want.push(format!("${}\r\n{v}\r\n", v.len()));
        if i % 10 == 0 {
            batch.extend(encode(&["NOPE"]));
            want.push("-ERR unknown command 'NOPE', with args beginning with: \r\n".into());
            batch.extend(encode(&["GET"]));
            want.push("-ERR wrong number of arguments for 'get' command\r\n".into());
        }
        batch.extend(encode(&["ECHO", &i.to_string()]));
        want.push(format!("${}\r\n{i}\r\n", i.to_string().len()));
        let gone = format!("pipe:{}", i / 2);
        batch.extend(encode(&["DEL", &gone]));
        want.push(format!(":{}\r\n", i64::from(present.remove(&gone))));
        batch.extend(encode(&["EXISTS", &k, &gone]));
        want.push(format!(":{}\r\n", usize::from(present.contains(&k))));
    }
    batch.extend(b"PING\r\n");
    want.push("+PONG\r\n".into());
    d.send_raw(&batch).await;
    for (i, w) in want.iter().enumerate() {
        let (_, raw) = d.reply().await;
        assert_eq!(show(&raw), show(w.as_bytes()), "pipelined reply {i}");
    }
}

/// A key set with PX 300 reads as absent once it expired, on every node.
async fn expiry(addrs: &[SocketAddr]) {
    let mut d = Door::connect(addrs[0]).await;
    d.is("SET exp:k v PX 300", "+OK\r\n").await;
    let pttl = d.int("PTTL exp:k").await;
    assert!((-2..=300).contains(&pttl) && pttl != -1, "PTTL {pttl}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match d.v("GET exp:k").await {
            V::Null => break,
            V::Bulk(b) if b == b"v" => {}
            other => panic!("GET exp:k: {other:?}"),
        }
        assert!(Instant::now() < deadline, "exp:k still there after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.is("EXISTS exp:k", ":0\r\n").await;
    d.is("TTL exp:k", ":-2\r\n").await;
    d.is("TYPE exp:k", "+none\r\n").await;
    d.is("SET exp:k w XX", "$-1\r\n").await;
    d.is("MGET exp:k", "*1\r\n$-1\r\n").await;
    assert!(!scan_all(&mut d, "exp:*", 100, None).await.contains("exp:k"));
    for addr in &addrs[1..] {
        let mut o = Door::connect(*addr).await;
        o.is("GET exp:k", "$-1\r\n").await;
    }
}

/// A write through node 1's door is read through nodes 2 and 3 at once; digests converge.
async fn replication(c: &TestCluster, addrs: &[SocketAddr]) {
    let mut doors = Vec::new();
    for a in addrs {
        doors.push(Door::connect(*a).await);
    }
    for round in 0..5 {
        let v = format!("value-{round}");
        doors[0].is(&format!("SET repl:k {v}"), "+OK\r\n").await;
        for d in doors.iter_mut().skip(1) {
            d.is("GET repl:k", &format!("${}\r\n{v}\r\n", v.len()))
                .await;
        }
        // and the other way round
        let w = format!("from-3-{round}");
        doors[2].is(&format!("SET repl:j {w}"), "+OK\r\n").await;
        doors[0]
            .is("GET repl:j", &format!("${}\r\n{w}\r\n", w.len()))
            .await;
        doors[1].is("DEL repl:j", ":1\r\n").await;
        doors[2].is("EXISTS repl:j", ":0\r\n").await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let digests = [c.digest(1).await, c.digest(2).await, c.digest(3).await];
        let same = digests.iter().all(|d| {
            d["digest"] == digests[0]["digest"] && d["applied_index"] == digests[0]["applied_index"]
        });
        if same && digests[0]["digest"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "digests differ: {digests:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random SET (NX/XX/GET)/GET/DEL/EXISTS/GETDEL/MGET through random doors against a model map.
async fn model_run(addrs: &[SocketAddr], seed: u64, ops: usize) {
    let mut rng = Rng(seed | 1);
    let mut doors = Vec::new();
    for a in addrs {
        doors.push(Door::connect(*a).await);
    }
    let keys: Vec<String> = (0..5).map(|i| format!("model{seed}:{i}")).collect();
    let mut model: BTreeMap<String, String> = BTreeMap::new();
    let bulk = |v: Option<&String>| match v {
        Some(v) => format!("${}\r\n{v}\r\n", v.len()),
        None => "$-1\r\n".to_string(),
    };
    for op in 0..ops {
        let d = &mut doors[rng.below(addrs.len() as u64) as usize];
        let k = keys[rng.below(keys.len() as u64) as usize].clone();
        let k2 = keys[rng.below(keys.len() as u64) as usize].clone();
        let val = format!("v{}", rng.below(1000));
        let (cmd, want) = match rng.below(8) {
            0 | 1 => {
                model.insert(k.clone(), val.clone());
                (format!("SET {k} {val}"), "+OK\r\n".to_string())
            }
            2 => {
                let absent = !model.contains_key(&k);
                if absent {
                    model.insert(k.clone(), val.clone());
                }
                (
                    format!("SET {k} {val} NX"),
                    if absent { "+OK\r\n" } else { "$-1\r\n" }.to_string(),
                )
            }
            3 => {
                let old = model.get(&k).cloned();
                if old.is_some() {
                    model.insert(k.clone(), val.clone());
                }
                (format!("SET {k} {val} XX GET"), bulk(old.as_ref()))
            }
            4 => (format!("GET {k}"), bulk(model.get(&k))),
            5 => {
                let n = [&k, &k2]
                    .iter()
                    .collect::<BTreeSet<_>>()
                    .iter()
                    .filter(|x| model.remove(x.as_str()).is_some())
                    .count();
                (format!("DEL {k} {k2}"), format!(":{n}\r\n"))
            }
            6 => {
                let n = [&k, &k2]
                    .iter()
                    .filter(|x| model.contains_key(x.as_str()))
                    .count();
                (format!("EXISTS {k} {k2}"), format!(":{n}\r\n"))
            }
            _ => {
                let old = model.remove(&k);
                (format!("GETDEL {k}"), bulk(old.as_ref()))
            }
        };
        let got = d.raw(&cmd).await;
        assert_eq!(
            show(&got),
            show(want.as_bytes()),
            "seed {seed} op {op}: {cmd} (model {model:?})"
        );
    }
    // the final state, read through every door
    let all = format!("MGET {}", keys.join(" "));
    let mut want = format!("*{}\r\n", keys.len());
    for k in &keys {
        want.push_str(&bulk(model.get(k)));
    }
    for d in &mut doors {
        d.is(&all, &want).await;
    }
}

/// Node `survivor` alone: writes and reads answer an error, never a success or a wrong answer.
async fn no_quorum(addr: SocketAddr) {
    let mut d = Door::connect(addr).await;
    let t = Instant::now();
    let (v, raw) = d.call("SET quorum:k after").await;
    assert!(
        matches!(&v, V::Error(e) if e.starts_with("TRYAGAIN") || e.starts_with("CLUSTERDOWN")),
        "SET without quorum: {}",
        show(&raw)
    );
    assert!(t.elapsed() < REPLY, "SET took {:?}", t.elapsed());
    eprintln!(
        "without quorum, SET answered {} in {:?}",
        show(&raw),
        t.elapsed()
    );
    let t = Instant::now();
    let (v, raw) = d.call("GET quorum:k").await;
    assert!(
        matches!(&v, V::Error(e) if e.starts_with("TRYAGAIN") || e.starts_with("CLUSTERDOWN")),
        "GET without quorum: {}",
        show(&raw)
    );
    assert!(t.elapsed() < REPLY, "GET took {:?}", t.elapsed());
    eprintln!(
        "without quorum, GET answered {} in {:?}",
        show(&raw),
        t.elapsed()
    );
    let (v, raw) = d.call("EXISTS quorum:k").await;
    assert!(
        matches!(v, V::Error(_)),
        "EXISTS without quorum: {}",
        show(&raw)
    );
    // commands that need no quorum still answer, on the same connection
    d.is("PING", "+PONG\r\n").await;
}

/// Every command's reply in RESP2 and RESP3, expiry, pipelining, replication, a random run
/// against a model, then no quorum — on one 3-node cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_replication_and_no_quorum() {
    let t0 = Instant::now();
    let (mut c, addrs) = start_doors(3, Tuning::default(), "").await;
    eprintln!("3-node cluster ready in {:?}", t0.elapsed());

    // RESP2 on node 1, RESP3 (after HELLO 3) on node 2
    let mut d2 = Door::connect(addrs[0]).await;
    reply_shapes(&mut d2, 2, "r2:").await;
    let mut d3 = Door::connect(addrs[1]).await;
    let (v, raw) = d3.call("HELLO 3").await;
    assert!(matches!(v, V::Map(_)), "HELLO 3: {}", show(&raw));
    reply_shapes(&mut d3, 3, "r3:").await;
    // a RESP3 connection can go back to RESP2
    let (v, _) = d3.call("HELLO 2").await;
    assert!(matches!(v, V::Array(_)));
    d3.is("GET r3:nosuch", "$-1\r\n").await;
    // QUIT: +OK, then closed
    d3.send(&["QUIT"]).await;
    assert_eq!(show(&d3.until_closed(REPLY).await), "+OK\\r\\n");
    eprintln!("reply shapes checked at {:?}", t0.elapsed());

    expiry(&addrs).await;
    pipelining(addrs[2]).await;
    replication(&c, &addrs).await;
    let t = Instant::now();
    model_run(&addrs, 0x5EED_0001, 100).await;
    model_run(&addrs, 0x5EED_0002, 100).await;
    eprintln!("200 model operations in {:?}", t.elapsed());

    // no quorum: the leader is left alone
    let leader = c.leader(READY).await;
    for id in 1..=3 {
        if id != leader {
            c.kill(id);
        }
    }
    no_quorum(addrs[leader as usize - 1]).await;
    eprintln!("whole test {:?}", t0.elapsed());
}

// ---- AUTH, limits and bad input ------------------------------------------------------------------

/// A connection that has passed AUTH.
async fn authed(addr: SocketAddr) -> Door {
    let mut d = Door::connect(addr).await;
    d.is(&format!("AUTH {PASSWORD}"), "+OK\r\n").await;
    d
}

/// The node still serves: PING on a new connection, `/readyz` 200.
async fn unharmed(c: &TestCluster, addr: SocketAddr, what: &str) {
    let mut d = authed(addr).await;
    d.is("PING", "+PONG\r\n").await;
    assert_eq!(readyz(c, 1).await, 200, "/readyz after {what}");
}

/// The resident memory of process `pid` (`VmRSS`), in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// `n` open, authenticated connections, retried until the door has let go of earlier ones.
async fn open_authed(addr: SocketAddr, n: usize) -> Vec<Door> {
    let deadline = Instant::now() + Duration::from_secs(10);
    'retry: loop {
        let mut doors = Vec::new();
        for _ in 0..n {
            let mut d = Door::connect(addr).await;
            d.send(&["AUTH", PASSWORD]).await;
            match d.next_reply().await {
                Some((_, raw)) if raw == b"+OK\r\n" => doors.push(d),
                other => {
                    assert!(
                        Instant::now() < deadline,
                        "only {} of {n} connections accepted: {other:?}",
                        doors.len()
                    );
                    drop(doors);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'retry;
                }
            }
        }
        return doors;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_limits_and_bad_input() {
    let t0 = Instant::now();
    let section = format!(
        "\n[resp]\npassword = \"{PASSWORD}\"\nmax_connections = 4\nmax_bulk_bytes = 64\n\
         max_array_len = 8\nidle_timeout_secs = 0\n"
    );
    let (c, addrs) = start_doors(1, Tuning::default(), &section).await;
    let addr = addrs[0];

    // ---- the connection cap: the 5th is refused, and a freed slot is taken again
    let mut four = open_authed(addr, 4).await;
    let mut fifth = Door::connect(addr).await;
    assert_eq!(
        show(&fifth.until_closed(REPLY).await),
        show(b"-ERR max number of clients reached\r\n")
    );
    for d in &mut four {
        d.is("PING", "+PONG\r\n").await;
    }
    drop(four.pop());
    let mut again = open_authed(addr, 1).await;
    again[0].is("PING", "+PONG\r\n").await;
    drop(again);
    drop(four);
    // the door lets go of a closed connection when it reads its EOF: wait until only the
    // asking one is left, so that the checks below each find a free slot
    let mut d = open_authed(addr, 1).await.remove(0);
    let deadline = Instant::now() + REPLY;
    loop {
        let (v, raw) = d.call("INFO clients").await;
        let (V::Bulk(text) | V::Verbatim(_, text)) = v else {
            panic!("INFO clients: {}", show(&raw))
        };
        let text = String::from_utf8(text).expect("text");
        assert!(text.contains("maxclients:4"), "{text}");
        if text.contains("connected_clients:1\r\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "closed connections still counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(d);
    eprintln!("connection cap checked at {:?}", t0.elapsed());

    // ---- AUTH
    let mut d = Door::connect(addr).await;
    d.is("PING", "-NOAUTH Authentication required.\r\n").await;
    d.is("GET k", "-NOAUTH Authentication required.\r\n").await;
    d.is("SET k v", "-NOAUTH Authentication required.\r\n")
        .await;
    d.is("CLIENT ID", "-NOAUTH Authentication required.\r\n")
        .await;
    d.is(
        "AUTH wrong-password-0123456789",
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    )
    .await;
    d.is(
        &format!("AUTH someone {PASSWORD}"),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    )
    .await;
    d.err("HELLO 3", "NOAUTH ").await;
    d.is(
        "HELLO 3 AUTH default wrong",
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    )
    .await;
    d.is("PING", "-NOAUTH Authentication required.\r\n").await;
    d.is(
        "AUTH",
        "-ERR wrong number of arguments for 'auth' command\r\n",
    )
    .await;
    d.is(&format!("AUTH {PASSWORD}"), "+OK\r\n").await;
    d.is("PING", "+PONG\r\n").await;
    d.is("SET k v", "+OK\r\n").await;
    d.is("GET k", "$1\r\nv\r\n").await;
    drop(d);
    // AUTH default <password>
    let mut d = Door::connect(addr).await;
    d.is(&format!("AUTH default {PASSWORD}"), "+OK\r\n").await;
    d.is("GET k", "$1\r\nv\r\n").await;
    drop(d);
    // HELLO 3 AUTH default <password>: authenticated and in RESP3 at once
    let mut d = Door::connect(addr).await;
    let (v, raw) = d.call(&format!("HELLO 3 AUTH default {PASSWORD}")).await;
    let V::Map(pairs) = v else {
        panic!("HELLO 3 AUTH: {}", show(&raw))
    };
    assert_eq!(pairs[2], (V::bulk("proto"), V::Int(3)));
    d.is("GET nosuch", "_\r\n").await;
    d.is("GET k", "$1\r\nv\r\n").await;
    drop(d);
    // QUIT is allowed before AUTH
    let mut d = Door::connect(addr).await;
    d.send(&["QUIT"]).await;
    assert_eq!(show(&d.until_closed(REPLY).await), "+OK\\r\\n");
    eprintln!("AUTH checked at {:?}", t0.elapsed());

    // ---- an oversized bulk: a protocol error, closed, nothing written (also not what came
    // before it in the same frame)
    let big = "x".repeat(65);
    let mut d = authed(addr).await;
    d.is(&format!("SET fits {}", "y".repeat(64)), "+OK\r\n")
        .await;
    let mut batch = encode(&["SET", "before", "1"]);
    batch.extend(encode(&["SET", "oversized", &big]));
    batch.extend(encode(&["SET", "after", "1"]));
    d.send_raw(&batch).await;
    let got = d.until_closed(REPLY).await;
    assert!(
        got.starts_with(b"+OK\r\n-ERR Protocol error: invalid bulk length")
            && got.ends_with(b"\r\n"),
        "oversized bulk: {}",
        show(&got)
    );
    assert_eq!(
        got.iter().filter(|b| **b == b'\n').count(),
        2,
        "{}",
        show(&got)
    );
    // an oversized key
    let mut d = authed(addr).await;
    d.send(&["SET", &big, "v"]).await;
    let got = d.until_closed(REPLY).await;
    assert!(
        got.starts_with(b"-ERR Protocol error: invalid bulk length"),
        "oversized key: {}",
        show(&got)
    );
    // announced but never sent: refused on the header alone
    let mut d = authed(addr).await;
    d.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nh\r\n$999999999999\r\n")
        .await;
    let got = d.until_closed(REPLY).await;
    assert!(
        got.starts_with(b"-ERR Protocol error: invalid bulk length"),
        "huge bulk header: {}",
        show(&got)
    );
    let mut d = authed(addr).await;
    d.is("GET oversized", "$-1\r\n").await;
    d.is("GET after", "$-1\r\n").await;
    d.is("GET before", "$1\r\n1\r\n").await;
    d.is("EXISTS h", ":0\r\n").await;
    drop(d);
    unharmed(&c, addr, "oversized bulks").await;

    // ---- a huge or too long array: refused on its header, closed, nothing allocated for it
    let pid = c.pid(1).expect("node 1 runs");
    let rss_before = rss_kib(pid);
    for header in [
        "*99999999999\r\n",
        "*9\r\n",
        "*-99999999999999999999999\r\n",
    ] {
        let mut d = authed(addr).await;
        d.send_raw(header.as_bytes()).await;
        let got = d.until_closed(REPLY).await;
        assert!(
            got.starts_with(b"-ERR Protocol error: invalid multibulk length")
                && got.ends_with(b"\r\n"),
            "{header:?}: {}",
            show(&got)
        );
    }
    // 9 elements sent whole: the same, and nothing deleted
    let mut d = authed(addr).await;
    d.send(&["DEL", "k", "fits", "before", "a", "b", "c", "d", "e"])
        .await;
    let got = d.until_closed(REPLY).await;
    assert!(
        got.starts_with(b"-ERR Protocol error: invalid multibulk length"),
        "9 elements: {}",
        show(&got)
    );
    // 8 elements are fine
    let mut d = authed(addr).await;
    d.is("EXISTS k fits before a b c d", ":3\r\n").await;
    drop(d);
    unharmed(&c, addr, "huge arrays").await;
    let rss_after = rss_kib(pid);
    assert!(
        rss_after < rss_before + 64 * 1024,
        "the node grew from {rss_before} KiB to {rss_after} KiB"
    );

    // ---- malformed frames: an error, then closed
    for bad in [
        b"*1\r\n+PING\r\n".as_slice(),
        b"*1\r\n$abc\r\n",
        b"*1\r\n$4\r\nPINGxx",
        b"*abc\r\n",
        b"*1\r\n$-1\r\n",
    ] {
        let mut d = authed(addr).await;
        d.send_raw(bad).await;
        let got = d.until_closed(REPLY).await;
        assert!(
            got.starts_with(b"-ERR Protocol error") && got.ends_with(b"\r\n"),
            "{}: {}",
            show(bad),
            show(&got)
        );
    }
    // an endless inline line
    let mut d = authed(addr).await;
    d.send_raw(&vec![b'a'; 70 * 1024]).await;
    let got = d.until_closed(REPLY).await;
    assert!(
        got.starts_with(b"-ERR Protocol error: too big inline request"),
        "{}",
        show(&got)
    );
    unharmed(&c, addr, "malformed frames").await;

    // ---- garbage: only errors (or a closed connection), never a write
    let size_before = authed(addr).await.int("DBSIZE").await;
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let len = 64 + rng.below(4096) as usize;
        let mut garbage: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if seed % 2 == 0 {
            // a leading '*' makes it a (broken) multibulk
            garbage[0] = b'*';
        }
        let mut d = authed(addr).await;
        d.send_raw(&garbage).await;
        d.send_raw(b"\r\nPING\r\n").await;
        loop {
            match d.next_reply().await {
                None => break,
                Some((V::Simple(s), _)) if s == "PONG" => break,
                Some((V::Error(_), _)) => {}
                Some((_, raw)) => panic!("garbage seed {seed} answered {}", show(&raw)),
            }
        }
    }
    let mut d = authed(addr).await;
    d.is("DBSIZE", &format!(":{size_before}\r\n")).await;
    drop(d);
    unharmed(&c, addr, "garbage").await;

    // ---- half a frame, then the socket dropped: nothing written
    let mut d = authed(addr).await;
    d.send_raw(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$5\r\nva")
        .await;
    d.silent(Duration::from_millis(300)).await;
    drop(d);
    // also half a frame behind a whole one
    let mut d = authed(addr).await;
    let mut batch = encode(&["SET", "whole", "1"]);
    batch.extend(b"*3\r\n$3\r\nSET\r\n$5\r\nhalf2\r\n$5\r\nva");
    d.send_raw(&batch).await;
    assert_eq!(show(&d.reply().await.1), "+OK\\r\\n");
    drop(d);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut d = authed(addr).await;
    d.is("GET half", "$-1\r\n").await;
    d.is("GET half2", "$-1\r\n").await;
    d.is("GET whole", "$1\r\n1\r\n").await;
    drop(d);
    unharmed(&c, addr, "half a frame").await;
    eprintln!("whole test {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let (c, addrs) = start_doors(1, Tuning::default(), "\n[resp]\nidle_timeout_secs = 1\n").await;
    let addr = addrs[0];
    // no password configured: AUTH says so
    let mut d = Door::connect(addr).await;
    d.is(
        "AUTH whatever",
        "-ERR AUTH <password> called without any password configured for the default user. \
         Are you sure your configuration is correct?\r\n",
    )
    .await;
    // an idle connection is closed by the server
    let t = Instant::now();
    d.is("PING", "+PONG\r\n").await;
    let rest = d.until_closed(Duration::from_secs(10)).await;
    assert!(rest.is_empty(), "{}", show(&rest));
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "closed after {:?}, before the idle timeout",
        t.elapsed()
    );
    // also one idling in the middle of a frame
    let mut d = Door::connect(addr).await;
    d.send_raw(b"*3\r\n$3\r\nSET\r\n$4\r\nidle\r\n$5\r\nva")
        .await;
    let rest = d.until_closed(Duration::from_secs(10)).await;
    assert!(rest.is_empty(), "{}", show(&rest));
    // a busy connection stays open
    let mut d = Door::connect(addr).await;
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(2500) {
        d.is("PING", "+PONG\r\n").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.is("GET idle", "$-1\r\n").await;
    assert_eq!(readyz(&c, 1).await, 200);
}

// ---- pipelines against a real redis-server ------------------------------------------------------

/// A throwaway `redis-server` on a free port (nothing persisted: only its answers matter),
/// stopped by its pid when dropped.
struct RedisServer {
    child: std::process::Child,
    addr: SocketAddr,
}

impl RedisServer {
    async fn start(dir: &std::path::Path) -> RedisServer {
        let port = common::free_port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server not found: run `scripts/install-deps.sh --resp-clients`");
        let server = RedisServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + READY;
        loop {
            if let Ok(Ok(mut s)) =
                tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(server.addr)).await
            {
                let _ = s.write_all(b"PING\r\n").await;
                let mut b = [0u8; 16];
                if matches!(
                    tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await,
                    Ok(Ok(n)) if b[..n].starts_with(b"+PONG")
                ) {
                    return server;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One random command on `keys`, from what session stores send (`GET`, `SET … EX|NX|XX|GET`,
/// `EXPIRE`, `DEL`) and the rest of the door's keyspace commands. Expiries are days away, so
/// none passes during the test; `EXPIRE k 0` deletes at once, as on Redis.
fn random_command(rng: &mut Rng, keys: &[String]) -> Vec<String> {
    let k = keys[rng.below(keys.len() as u64) as usize].clone();
    let k2 = keys[rng.below(keys.len() as u64) as usize].clone();
    let v = format!("v{}", rng.below(1000));
    let words: &[&str] = match rng.below(24) {
        0..=2 => &["SET", &k, &v],
        3 => &["SET", &k, &v, "NX"],
        4 => &["SET", &k, &v, "XX"],
        5 => &["SET", &k, &v, "GET"],
        6 => &["SET", &k, &v, "NX", "GET"],
        7 => &["SET", &k, &v, "EX", "100000"],
        8 => &["SET", &k, &v, "XX", "KEEPTTL"],
        9 => &["SETEX", &k, "200000", &v],
        10..=12 => &["GET", &k],
        13 => &["MGET", &k, &k2],
        14 => &["EXISTS", &k, &k2],
        15 => &["DEL", &k, &k2],
        16 => &["GETDEL", &k],
        17 => match rng.below(3) {
            0 => &["GETEX", &k],
            1 => &["GETEX", &k, "PERSIST"],
            _ => &["GETEX", &k, "EX", "300000"],
        },
        18 => match rng.below(6) {
            0 => &["EXPIRE", &k, "100000"],
            1 => &["EXPIRE", &k, "150000", "NX"],
            2 => &["EXPIRE", &k, "250000", "XX"],
            3 => &["EXPIRE", &k, "400000", "GT"],
            4 => &["PEXPIRE", &k, "50000000", "LT"],
            _ => &["EXPIRE", &k, "0"],
        },
        19 => &["PERSIST", &k],
        20 => &["TTL", &k],
        21 => &["PTTL", &k],
        22 => &["TYPE", &k],
        _ => match rng.below(4) {
            0 => &["DBSIZE"],
            1 => &["PING"],
            2 => &["ECHO", &v],
            _ => &["SET", &k, &v, "EX", "0"],
        },
    };
    words.iter().map(|w| (*w).to_string()).collect()
}

/// A reply made comparable between two servers: the remaining time of a `TTL`/`PTTL` that has
/// one is only "some" (the two servers set it a few milliseconds apart).
fn comparable(cmd: &[String], raw: Vec<u8>) -> String {
    if matches!(cmd[0].as_str(), "TTL" | "PTTL") && raw.starts_with(b":") && !raw.starts_with(b":-")
    {
        return ":<positive>".into();
    }
    show(&raw)
}

/// Send `cmds` in one write and read one reply per command.
async fn pipeline_replies(d: &mut Door, cmds: &[Vec<String>]) -> Vec<String> {
    let mut bytes = Vec::new();
    for c in cmds {
        bytes.extend(encode(c));
    }
    d.send_raw(&bytes).await;
    let mut out = Vec::with_capacity(cmds.len());
    for c in cmds {
        out.push(comparable(c, d.reply().await.1));
    }
    out
}

/// Send `chunks`, each in one write, 5 ms apart, without reading a reply in between; then read
/// one reply per command.
async fn streamed_replies(d: &mut Door, chunks: &[Vec<Vec<String>>]) -> Vec<String> {
    for chunk in chunks {
        let bytes: Vec<u8> = chunk.iter().flat_map(|c| encode(c)).collect();
        d.send_raw(&bytes).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut out = Vec::new();
    for c in chunks.iter().flatten() {
        out.push(comparable(c, d.reply().await.1));
    }
    out
}

/// Seeded random pipelines on a few keys, each sent in one write to a node (the leader and the
/// followers in turn: the forwarded path too) and to a real redis-server: every reply equal,
/// byte for byte. Then the final values through every node, and one log entry for a pipeline
/// of writes, through the leader and through a follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_answer_as_redis_does() {
    let t0 = Instant::now();
    let dir = tempfile::TempDir::new().expect("temp dir");
    let redis = RedisServer::start(dir.path()).await;
    let (c, addrs) = start_doors(3, Tuning::default(), "").await;
    let mut reference = Door::connect(redis.addr).await;
    let mut doors = Vec::new();
    for a in &addrs {
        doors.push(Door::connect(*a).await);
    }
    let keys: Vec<String> = (0..3).map(|i| format!("pipe-redis:{i}")).collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut commands = 0;
    for round in 0..60 {
        let n = 10 + rng.below(50) as usize;
        let cmds: Vec<Vec<String>> = (0..n).map(|_| random_command(&mut rng, &keys)).collect();
        commands += n;
        let node = round % doors.len();
        let got = pipeline_replies(&mut doors[node], &cmds).await;
        let want = pipeline_replies(&mut reference, &cmds).await;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g,
                w,
                "round {round} (node {}), command {i} {:?}; the pipeline: {:?}",
                node + 1,
                cmds[i],
                cmds
            );
        }
    }
    eprintln!(
        "{commands} pipelined commands equal to redis-server's in {:?}",
        t0.elapsed()
    );
    let all: Vec<String> = std::iter::once("MGET".to_string())
        .chain(keys.iter().cloned())
        .collect();
    let want = pipeline_replies(&mut reference, std::slice::from_ref(&all)).await;
    for (i, d) in doors.iter_mut().enumerate() {
        let got = pipeline_replies(d, std::slice::from_ref(&all)).await;
        assert_eq!(got, want, "final values through node {}", i + 1);
    }

    // A stream of commands sent in many writes without waiting for replies (as node-redis
    // sends the requests of an Express app): later writes are read, queued and committed while
    // earlier ones are in flight, on the leader with more than one batch in flight, and every
    // reply still equals redis-server's for the same stream.
    for (node, d) in doors.iter_mut().enumerate() {
        let k = |j: usize| format!("stream:{node}:{}", j % 5);
        // Writes, then reads alone: a segment without writes of its own must still see the
        // writes of the segments before it. 30 KB values make a chunk of writes span a few
        // batches, still committing when the reads after it arrive; the replies stay small
        // (the test reads them only at the end).
        let chunks: Vec<Vec<Vec<String>>> = (0..40)
            .map(|c: usize| {
                if c % 2 == 1 {
                    return (0..5)
                        .flat_map(|j| {
                            [
                                vec!["EXISTS".into(), k(c + j)],
                                vec!["TTL".into(), k(c + j)],
                                vec!["GET".into(), format!("small:{}", k(c + j))],
                            ]
                        })
                        .collect();
                }
                (c * 40..(c + 1) * 40)
                    .flat_map(|i| {
                        let v = format!("{i}:{}", "v".repeat(30_000));
                        let mut cmds = vec![
                            vec!["SET".into(), k(i), v],
                            vec!["SET".into(), format!("small:{}", k(i)), format!("{i}")],
                        ];
                        if i % 7 == 0 {
                            cmds.push(vec!["EXPIRE".into(), k(i + 2), "100000".into()]);
                        }
                        if i % 11 == 0 {
                            cmds.push(vec!["DEL".into(), k(i + 3)]);
                        }
                        cmds
                    })
                    .collect()
            })
            .collect();
        let stream: Vec<Vec<String>> = chunks.concat();
        let got = streamed_replies(d, &chunks).await;
        let want = streamed_replies(&mut reference, &chunks).await;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g,
                w,
                "node {}: streamed command {i} {:?}",
                node + 1,
                stream[i]
            );
        }
    }

    // A pipeline of writes shares one log entry, through the leader and through a follower
    // (the cluster is otherwise idle: no expiry is due, nothing else proposes).
    let leader = c.leader(READY).await;
    let follower = if leader == 1 { 2 } else { 1 };
    for via in [leader, follower] {
        let last = || async {
            c.status(leader).await.expect("leader status")["last_log_index"]
                .as_u64()
                .expect("last_log_index")
        };
        let before = last().await;
        let sets: Vec<Vec<String>> = (0..50)
            .map(|i| vec!["SET".into(), format!("one-entry:{via}:{i}"), format!("{i}")])
            .collect();
        let replies = pipeline_replies(&mut doors[via as usize - 1], &sets).await;
        assert!(replies.iter().all(|r| r == "+OK\\r\\n"), "{replies:?}");
        let after = last().await;
        assert_eq!(
            after - before,
            1,
            "50 pipelined SETs through node {via} took {} log entries",
            after - before
        );
    }
    eprintln!("whole test {:?}", t0.elapsed());
}

//! The Redis-protocol door over TLS, with real `sessionraft serve` processes and real clients.
//!
//! `scripts/dev-certs.sh` makes a development CA and node certificates for configurations whose
//! nodes have a `resp_addr`; the `[tls]` snippet it prints is appended. Asserted:
//!
//! - a 3-node cluster: `redis-cli --tls --cacert CA` PING, SET … EX, GET and TTL on every node
//!   (each node's write read back through all three); the log says "serving the Redis protocol
//!   over TLS"; a plaintext RESP client gets no reply (the handshake fails: a TLS alert or
//!   nothing, then the connection is closed), what it sent is not executed, and the node is
//!   unharmed; `redis-cli` without `--tls`, and with `--tls` but without the CA, get no answer;
//!   a rustls client reconnecting to a node resumes its TLS session;
//! - a 1-node cluster with `tls_auth_clients = "yes"`, a password, `max_connections = 2` and a
//!   6 s idle timeout: a client without a certificate, or with one of another CA, is refused
//!   (and its command not executed); one with the client certificate `dev-certs.sh --client app`
//!   issued works, and still needs `AUTH`; two silent TCP connections fill the
//!   slots (a TLS client is told "max number of clients reached") and are closed once the
//!   handshake time (the idle timeout) is up;
//! - `tls_auth_clients = "optional"`: served with no certificate or the CA's, refused with
//!   another CA's;
//! - `check-config` refuses a bad `tls_auth_clients`, and one without `[tls]`, naming the key.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{binary, free_port, TestCluster, Tuning};

const READY: Duration = Duration::from_secs(30);
const PASSWORD: &str = "door-password-0123456789";

/// A cluster of `n` nodes, each with a door (`resp_addr` on a free port), `[tls]` from
/// `scripts/dev-certs.sh` (which also issues the client certificate `certs/client-app.{crt,key}`)
/// and `extra` appended; the doors' ports.
fn tls_cluster(n: usize, extra: &str) -> (TestCluster, Vec<u16>) {
    let doors: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let c = TestCluster::start_prepared(n, Tuning::default(), |dir, config| {
        let mut text = std::fs::read_to_string(config).expect("config");
        for (i, port) in doors.iter().enumerate() {
            let at = format!("[[node]]\nid = {}\n", i + 1);
            assert!(text.contains(&at), "{text}");
            text = text.replacen(&at, &format!("{at}resp_addr = \"127.0.0.1:{port}\"\n"), 1);
        }
        std::fs::write(config, &text).expect("write config");
        common::add_dev_certs(config, &dir.join("certs"), &["--client", "app"]);
        // After the certificates: `extra` may need `[tls]` (tls_auth_clients).
        let mut text = std::fs::read_to_string(config).expect("config");
        text.push_str(extra);
        std::fs::write(config, text).expect("write config");
    });
    (c, doors)
}

/// What a `redis-cli` run printed (stdout, then stderr) and whether it exited 0.
struct Cli {
    ok: bool,
    out: String,
}

/// `redis-cli -h 127.0.0.1 -p PORT CONN… ARGS…` with stdin closed, bounded by `timeout` (the
/// binary's own: a refused handshake must not hang it).
fn redis_cli(port: u16, conn: &[&str], args: &[&str]) -> Cli {
    let out = Command::new("timeout")
        .args([
            "20",
            "redis-cli",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(conn)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli (scripts/install-deps.sh --resp-clients installs redis-tools)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Cli {
        ok: out.status.success(),
        out: text.trim_end().to_string(),
    }
}

/// `redis-cli` that must succeed with a reply satisfying `want`; its output.
fn expect(port: u16, conn: &[&str], args: &[&str], want: impl Fn(&str) -> bool) -> String {
    let r = redis_cli(port, conn, args);
    assert!(
        r.ok && want(&r.out) && !r.out.contains("ERR"),
        "redis-cli -p {port} {conn:?} {args:?}: exit ok {} printed {:?}",
        r.ok,
        r.out
    );
    r.out
}

/// Until `redis-cli … SET ready 1` answers OK through `port` (a leader is elected, the door
/// is up), at most [`READY`].
fn wait_writable(c: &TestCluster, id: u64, port: u16, conn: &[&str]) {
    let t = Instant::now();
    loop {
        let r = redis_cli(port, conn, &["SET", "ready", "1"]);
        if r.ok && r.out == "OK" {
            return;
        }
        assert!(
            t.elapsed() < READY,
            "node {id}: no write through the TLS door in {READY:?}: {:?}\n{}",
            r.out,
            c.log(id)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A plaintext RESP client: sends `frame` on a plain TCP connection and reads until the server
/// closes it (at most 5 s); what came back. Panics if the server keeps it open.
fn plaintext(port: u16, frame: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may close before everything is written: that is a refusal too.
    let _ = s.write_all(frame);
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            // Reset by the server (after its alert): closed.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!(
                "plaintext client on {port}: {e} after {:?} (the door kept the connection open)",
                got.escape_ascii().to_string()
            ),
        }
    }
}

/// Asserts `got` (what a plaintext client read) is no RESP reply: nothing, or a TLS alert
/// record (content type 21).
fn assert_refused(what: &str, got: &[u8]) {
    assert!(
        got.is_empty() || got[0] == 0x15,
        "{what}: the TLS door answered a plaintext client with {:?}",
        got.escape_ascii().to_string()
    );
}

fn resp_frame(args: &[&str]) -> Vec<u8> {
    let mut frame = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        frame.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    frame
}

/// PING over a rustls client connection to 127.0.0.1:`port` with `config` (its session cache
/// is the config's); how the handshake went.
fn rustls_ping(config: &Arc<rustls::ClientConfig>, port: u16) -> rustls::HandshakeKind {
    let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")
        .expect("server name")
        .to_owned();
    let conn = rustls::ClientConnection::new(config.clone(), name).expect("client connection");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(&resp_frame(&["PING"])).expect("PING");
    let mut got = [0u8; 7];
    tls.read_exact(&mut got).expect("a reply over TLS");
    assert_eq!(&got, b"+PONG\r\n");
    tls.conn.handshake_kind().expect("handshake done")
}

#[test]
fn door_speaks_tls_only_on_every_node() {
    let started = Instant::now();
    let (c, doors) = tls_cluster(3, "");
    let ca = c.dir.path().join("certs/ca.crt");
    let ca_arg = ca.to_str().expect("utf-8 path").to_owned();
    let tls: &[&str] = &["--tls", "--cacert", &ca_arg];
    for (i, &port) in doors.iter().enumerate() {
        wait_writable(&c, i as u64 + 1, port, tls);
    }
    eprintln!(
        "writable through every TLS door after {:?}",
        started.elapsed()
    );
    for id in 1..=3u64 {
        assert!(
            c.log(id).contains("serving the Redis protocol over TLS"),
            "node {id} does not say it serves TLS:\n{}",
            c.log(id)
        );
    }

    // redis-cli --tls --cacert: PING, SET … EX, GET, TTL on every node; each write read back
    // through all three.
    for (i, &port) in doors.iter().enumerate() {
        let (key, value) = (format!("key-{}", i + 1), format!("value-{}", i + 1));
        expect(port, tls, &["PING"], |s| s == "PONG");
        expect(port, tls, &["SET", &key, &value, "EX", "100"], |s| {
            s == "OK"
        });
        for &other in &doors {
            expect(other, tls, &["GET", &key], |s| s == value);
            expect(other, tls, &["TTL", &key], |s| {
                s.parse::<i64>().is_ok_and(|t| (90..=100).contains(&t))
            });
        }
    }

    // A plaintext RESP client: no reply, the connection closed, nothing executed.
    for &port in &doors {
        let got = plaintext(port, &resp_frame(&["PING"]));
        assert_refused("PING", &got);
        let got = plaintext(port, &resp_frame(&["SET", "plaintext", "written"]));
        assert_refused("SET", &got);
        // An inline command too (what `telnet`/`nc` users type).
        let got = plaintext(port, b"PING\r\n");
        assert_refused("inline PING", &got);
    }
    for &port in &doors {
        expect(port, tls, &["EXISTS", "plaintext"], |s| s == "0");
    }
    // redis-cli without --tls gets no PONG either.
    let plain = redis_cli(doors[0], &[], &["PING"]);
    assert!(
        !plain.out.contains("PONG"),
        "plaintext redis-cli got {:?}",
        plain.out
    );
    // With --tls but without the CA (the system's roots only): the certificate is refused.
    let stranger = redis_cli(doors[0], &["--tls"], &["PING"]);
    assert!(
        !stranger.ok && !stranger.out.contains("PONG"),
        "a client that does not trust the cluster CA got {:?}",
        stranger.out
    );
    eprintln!(
        "redis-cli without the CA: {:?}",
        stranger.out.lines().next()
    );
    // The nodes are unharmed.
    for &port in &doors {
        expect(port, tls, &["PING"], |s| s == "PONG");
        expect(port, tls, &["GET", "key-1"], |s| s == "value-1");
    }

    // Session resumption (rustls's server cache): the second connection of a client to a node
    // resumes the first one's session.
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&ca).expect("ca.crt");
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let config = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(versions)
                .expect("versions")
                .with_root_certificates(roots.clone())
                .with_no_client_auth(),
        );
        assert_eq!(rustls_ping(&config, doors[1]), rustls::HandshakeKind::Full);
        assert_eq!(
            rustls_ping(&config, doors[1]),
            rustls::HandshakeKind::Resumed,
            "{versions:?}"
        );
    }
    eprintln!("done in {:?}", started.elapsed());
}

/// Makes `dir/stranger.{crt,key}` (self-signed, not of the cluster CA) with openssl; the
/// cluster's own client certificate is `certs/client-app.{crt,key}` from dev-certs.sh.
fn stranger_cert(dir: &Path) {
    let script = r#"
set -euo pipefail
cd "$1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=stranger" -keyout stranger.key -out stranger.crt 2>/dev/null
"#;
    let out = Command::new("bash")
        .args(["-c", script, "stranger-cert"])
        .arg(dir)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn client_certificates_when_required_and_limits_over_tls() {
    let (c, doors) = tls_cluster(
        1,
        &format!(
            "\n[resp]\ntls_auth_clients = \"yes\"\npassword = \"{PASSWORD}\"\n\
             max_connections = 2\nidle_timeout_secs = 6\n"
        ),
    );
    let port = doors[0];
    let dir = c.dir.path();
    stranger_cert(dir);
    let path = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_owned();
    let (ca, crt, key) = (
        path("certs/ca.crt"),
        path("certs/client-app.crt"),
        path("certs/client-app.key"),
    );
    let (stranger_crt, stranger_key) = (path("stranger.crt"), path("stranger.key"));
    let with_cert: &[&str] = &[
        "--tls",
        "--cacert",
        &ca,
        "--cert",
        &crt,
        "--key",
        &key,
        "-a",
        PASSWORD,
        "--no-auth-warning",
    ];
    wait_writable(&c, 1, port, with_cert);
    assert!(
        c.log(1).contains("serving the Redis protocol over TLS")
            && c.log(1).contains("client_certs")
            && c.log(1).contains("\"required\""),
        "{}",
        c.log(1)
    );

    // A certificate signed by the cluster CA, and the password: served.
    expect(port, with_cert, &["PING"], |s| s == "PONG");
    expect(port, with_cert, &["SET", "k", "v", "EX", "100"], |s| {
        s == "OK"
    });
    expect(port, with_cert, &["GET", "k"], |s| s == "v");
    // The password still applies to a client with a certificate.
    let no_auth = redis_cli(
        port,
        &["--tls", "--cacert", &ca, "--cert", &crt, "--key", &key],
        &["GET", "k"],
    );
    assert!(
        no_auth.out.contains("NOAUTH"),
        "GET without AUTH: {:?}",
        no_auth.out
    );

    // No certificate: refused in the handshake, the command not executed.
    let none = redis_cli(
        port,
        &[
            "--tls",
            "--cacert",
            &ca,
            "-a",
            PASSWORD,
            "--no-auth-warning",
        ],
        &["SET", "uncertified", "1"],
    );
    assert!(
        !none.out.contains("OK"),
        "a client without a certificate was served: {:?}",
        none.out
    );
    eprintln!("redis-cli without a certificate: {:?}", none.out);
    // A certificate of another CA: refused too.
    let stranger = redis_cli(
        port,
        &[
            "--tls",
            "--cacert",
            &ca,
            "--cert",
            &stranger_crt,
            "--key",
            &stranger_key,
            "-a",
            PASSWORD,
            "--no-auth-warning",
        ],
        &["SET", "uncertified", "2"],
    );
    assert!(
        !stranger.out.contains("OK"),
        "a client with a certificate of another CA was served: {:?}",
        stranger.out
    );
    // Plaintext: refused.
    assert_refused(
        "plaintext AUTH",
        &plaintext(port, &resp_frame(&["AUTH", PASSWORD])),
    );
    expect(port, with_cert, &["EXISTS", "uncertified"], |s| s == "0");

    // Two silent TCP connections (no handshake) take both slots: a TLS client is told so ...
    // (The node may not yet have seen an earlier redis-cli leave, which then holds a slot a
    // silent connection did not get, and frees it for the third: if the third is served, the
    // silent ones are dropped, everything given a second to settle, and it is tried again.)
    let mut attempts = Vec::new();
    let mut silent: Vec<TcpStream> = loop {
        let silent: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let full = redis_cli(port, with_cert, &["PING"]);
        if full.out.contains("max number of clients reached") {
            break silent;
        }
        attempts.push(full.out);
        assert!(
            attempts.len() < 5,
            "a third connection with two slots taken, 5 times: {attempts:?}"
        );
        drop(silent);
        std::thread::sleep(Duration::from_secs(1));
    };
    if !attempts.is_empty() {
        eprintln!(
            "the third connection was served {} time(s) first",
            attempts.len()
        );
    }
    // ... and they are closed when the handshake time (the 6 s idle timeout: wide enough that a
    // slow CI machine still starts the third client inside it) is up.
    let t = Instant::now();
    for s in &mut silent {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut b = [0u8; 16];
        match s.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a silent connection was not closed: {other:?}"),
        }
    }
    let waited = t.elapsed();
    assert!(waited < Duration::from_secs(10), "closed after {waited:?}");
    eprintln!("silent connections closed {waited:?} after the third client");
    expect(port, with_cert, &["PING"], |s| s == "PONG");
    expect(port, with_cert, &["GET", "k"], |s| s == "v");
}

#[test]
fn client_certificates_when_optional() {
    let (c, doors) = tls_cluster(1, "\n[resp]\ntls_auth_clients = \"optional\"\n");
    let port = doors[0];
    let dir = c.dir.path();
    stranger_cert(dir);
    let path = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_owned();
    let ca = path("certs/ca.crt");
    let no_cert: &[&str] = &["--tls", "--cacert", &ca];
    wait_writable(&c, 1, port, no_cert);
    // Without a certificate, and with one of the cluster CA: served.
    expect(port, no_cert, &["SET", "k", "v"], |s| s == "OK");
    let (crt, key) = (path("certs/client-app.crt"), path("certs/client-app.key"));
    let with_cert: &[&str] = &["--tls", "--cacert", &ca, "--cert", &crt, "--key", &key];
    expect(port, with_cert, &["GET", "k"], |s| s == "v");
    // A certificate that is presented must be the CA's.
    let (s_crt, s_key) = (path("stranger.crt"), path("stranger.key"));
    let stranger = redis_cli(
        port,
        &["--tls", "--cacert", &ca, "--cert", &s_crt, "--key", &s_key],
        &["SET", "k", "stranger"],
    );
    assert!(
        !stranger.out.contains("OK"),
        "a certificate of another CA was accepted: {:?}",
        stranger.out
    );
    expect(port, no_cert, &["GET", "k"], |s| s == "v");
}

#[test]
fn check_config_names_a_bad_tls_auth_clients() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = common::write_config(dir.path(), &[free_port()], &Tuning::default(), None);
    let text = std::fs::read_to_string(&base).expect("config");
    let check = |extra: &str| {
        let config = dir.path().join("check.toml");
        std::fs::write(&config, format!("{text}{extra}")).expect("write");
        let out = Command::new(binary())
            .args(["check-config", "--config"])
            .arg(&config)
            .output()
            .expect("run sessionraft check-config");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let tls = "\n[tls]\ncert_dir = \"certs\"\nca = \"certs/ca.crt\"\n";
    let (ok, out) = check(&format!("{tls}\n[resp]\ntls_auth_clients = \"required\"\n"));
    assert!(!ok, "accepted: {out}");
    assert!(
        out.contains("resp.tls_auth_clients")
            && out.contains("\"required\"")
            && out.contains("\"no\", \"optional\" or \"yes\""),
        "{out}"
    );
    let (ok, out) = check("\n[resp]\ntls_auth_clients = \"yes\"\n");
    assert!(!ok, "accepted: {out}");
    assert!(
        out.contains("resp.tls_auth_clients") && out.contains("no [tls] section"),
        "{out}"
    );
    let (ok, out) = check(&format!("{tls}\n[resp]\ntls_auth_clients = \"optional\"\n"));
    assert!(ok, "refused: {out}");
}

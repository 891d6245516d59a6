//! What the configuration's unit tests share: a valid `cluster.toml` to edit, a named
//! (StatefulSet-like) one, and the assertion that a text is refused with a given message.

use std::path::Path;

use super::parse;

/// A small valid configuration with every section spelled out.
pub(crate) const VALID: &str = r#"
[cluster]
name = "test-cluster"
secret = "0123456789abcdef0123456789abcdef-test"
admin_token = "admin-token-0123456789"

[session]
cookie_name = "sid"
idle_ttl_secs = 60
absolute_ttl_secs = 600
max_state_bytes = 4096
cookie_secure = true

[raft]
heartbeat_ms = 50
election_timeout_min_ms = 300
election_timeout_max_ms = 600
snapshot_logs_since_last = 100
max_in_snapshot_log_to_keep = 10
install_snapshot_timeout_ms = 5000
request_deadline_ms = 2000
rpc_timeout_ms = 500

[[node]]
id = 1
http_addr = "127.0.0.1:8001"
data_dir = "data/n1"

[[node]]
id = 2
http_addr = "127.0.0.1:8002"
raft_addr = "127.0.0.1:9002"
data_dir = "data/n2"

[[node]]
id = 3
http_addr = "127.0.0.1:8003"
data_dir = "/abs/n3"
"#;

/// `VALID` with the first occurrence of `from` replaced by `to`.
pub(crate) fn edit(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "test bug: {from:?} is not in VALID");
    VALID.replacen(from, to, 1)
}

pub(crate) fn base() -> &'static Path {
    Path::new("/base")
}

/// The error message for `text`, which must be rejected.
pub(crate) fn error(text: &str) -> String {
    parse(text, base())
        .expect_err("configuration should be rejected")
        .to_string()
}

/// Asserts that `text` is rejected with a message containing every one of `needles`.
pub(crate) fn assert_rejected(text: &str, needles: &[&str]) {
    let message = error(text);
    for needle in needles {
        assert!(
            message.contains(needle),
            "error {message:?} does not contain {needle:?}"
        );
    }
    assert!(
        !message.contains('\n'),
        "error {message:?} is not a single line"
    );
}

/// Three nodes known by name on three hosts, as a StatefulSet's pods: the same data dir on
/// every host, bound on every interface.
pub(crate) const NAMED: &str = r#"
[cluster]
name = "k8s"
secret = "0123456789abcdef0123456789abcdef-test"
admin_token = "admin-token-0123456789"

[listen]
ip = "0.0.0.0"

[load_balancer]
addr = "sessionraft:7100"

[[node]]
id = 1
http_addr = "sessionraft-0.sessionraft:7101"
resp_addr = "sessionraft-0.sessionraft:7201"
data_dir = "/data"

[[node]]
id = 2
http_addr = "sessionraft-1.sessionraft:7101"
raft_addr = "sessionraft-1.sessionraft:7102"
raft_listen = "10.0.0.2:7102"
data_dir = "/data"

[[node]]
id = 3
http_addr = "[fd00::3]:7101"
data_dir = "/data"
"#;

pub(crate) fn named() -> String {
    NAMED.to_owned()
}

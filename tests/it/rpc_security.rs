//! Security of the internal RPC against a real 3-node cluster (debug logging on):
//! - a captured, correctly signed request is refused when replayed — to the node it was sent to
//!   and to any other — and nothing is applied twice (a replayed `DeleteUser` would delete the
//!   user's newer sessions; a replayed admin op would run again);
//! - a request stamped 10 minutes in the past or the future is refused;
//! - on every `/raft/*` path of a leader and a follower: no authentication, the old MAC-only
//!   format, a wrong secret, a MAC for another path or body (401) and garbage, truncated,
//!   trailing and absurd-length bodies (400) leave term, log and state untouched; the cluster
//!   then still serves sessions;
//! - neither the cluster secret nor the admin token (raw, hex, base64 or as a byte list)
//!   appears in any node's log, `/metrics`, `/cluster/status`, `/cluster/digest`, `/api/nodes`,
//!   the dashboard feed, the pages, or the admin API's answers.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{increment, user, ClusterOptions, TestCluster, Tuning, ADMIN_TOKEN, SECRET};
use base64::Engine;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use serde_json::Value;
use sessionraft_raft::transport::auth::{PeerAuth, RequestSigner, SignedHeaders};
use sessionraft_raft::transport::network::paths;
use sessionraft_raft::transport::wire::{
    self, AdminOp, AdminReply, ForwardedWrite, PreVoteRequest, WriteReply, WriteReplyV1,
};
use sessionraft_raft::version::WIRE_HEADER;
use sessionraft_raft::{Command, Response, TypeConfig};

const READY: Duration = Duration::from_secs(30);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// A cluster whose nodes log at debug level, so the leak check sees as much as possible.
fn start() -> TestCluster {
    TestCluster::start_with(
        3,
        ClusterOptions {
            tuning: Tuning::default(),
            env: vec![("SESSIONRAFT_LOG".into(), "debug".into())],
            ..ClusterOptions::default()
        },
    )
}

/// A node's address as its peers dial it (its Raft address, here its HTTP address).
fn addr(c: &TestCluster, id: u64) -> String {
    c.url(id, "")
        .split("://")
        .nth(1)
        .expect("url has a scheme")
        .to_string()
}

/// Sign as a node of a cluster at cluster version 0.2 does: wire format 2, which [`post`]
/// names in its header.
fn sign(signer: &RequestSigner, to: &str, path: &str, body: &[u8]) -> SignedHeaders {
    signer.sign(to, &wire::signed_path(path, 2), body)
}

/// POST `body` to `path` on node `id` with the given authentication headers, in wire format 2.
async fn post(
    c: &TestCluster,
    id: u64,
    path: &str,
    headers: Option<&SignedHeaders>,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    post_in(c, id, path, Some("2"), headers, body).await
}

/// [`post`] with the `sessionraft-wire` header `wire` (`None`: no header, format 1).
async fn post_in(
    c: &TestCluster,
    id: u64,
    path: &str,
    wire: Option<&str>,
    headers: Option<&SignedHeaders>,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut r = common::http()
        .post(c.url(id, path))
        .header("content-type", "application/octet-stream");
    for (name, value) in headers.iter().flat_map(|h| h.pairs()) {
        r = r.header(name, value);
    }
    if let Some(w) = wire {
        r = r.header(WIRE_HEADER, w);
    }
    let resp = r.body(body.to_vec()).send().await.expect("an answer");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("a body").to_vec();
    (status, String::from_utf8_lossy(&bytes).into_owned(), bytes)
}

async fn last_log_index(c: &TestCluster, id: u64) -> u64 {
    c.status(id).await.expect("status")["last_log_index"]
        .as_u64()
        .unwrap_or(0)
}

/// The live sessions of `user`, through the admin API of node `id`.
async fn sessions_of(c: &TestCluster, id: u64, user: &str) -> usize {
    let v: Value = common::http()
        .get(c.url(id, &format!("/admin/users/{user}/sessions")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin answer")
        .json()
        .await
        .expect("admin json");
    v["sessions"].as_array().map_or(0, Vec::len)
}

/// The body of a forwarded write of `cmd` to the leader of `term`.
fn forwarded(term: u64, cmd: Command) -> Vec<u8> {
    wire::encode(&ForwardedWrite { term, cmd }).expect("encode")
}

async fn term_of(c: &TestCluster, id: u64) -> u64 {
    c.status(id).await.expect("status")["term"]
        .as_u64()
        .expect("a term")
}

fn create(key: &str, user: &str) -> Command {
    let now = now_ms();
    Command::Batch(vec![Command::Create {
        key: key.to_string(),
        state: BTreeMap::from([("counter".to_string(), "1".to_string())]),
        user: Some(user.to_string()),
        now_ms: now,
        expires_at_ms: now + 3_600_000,
    }])
}

/// Send a request the node must refuse with 401 (saying `why` in the body) and check that the
/// leader's log does not move. The purger appends an entry every 5 s on its own, so a moving log
/// is only a failure when it moves on three tries in a row (a refused request may be re-sent:
/// refusals are not remembered, and a replay stays a replay).
async fn refused_leaving_the_log(
    c: &TestCluster,
    leader: u64,
    target: u64,
    path: &str,
    request: (&SignedHeaders, &[u8]),
    why: &str,
) {
    for _ in 0..3 {
        let before = last_log_index(c, leader).await;
        let (status, text, _) = post(c, target, path, Some(request.0), request.1).await;
        assert_eq!(status, 401, "{why}: {text}");
        assert!(text.contains(why), "401 says why ({why}): {text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        if last_log_index(c, leader).await == before {
            return;
        }
    }
    panic!("{why}: the leader's log moved on three tries in a row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_security_captured_requests_cannot_be_replayed_or_delayed() {
    let c = start();
    c.wait_ready(READY).await;
    let leader = c.leader(READY).await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    // what a follower's PeerClient would send: one signer (epoch) for the whole "process"
    let signer = PeerAuth::new(SECRET.as_bytes()).signer();
    let to_leader = addr(&c, leader);
    let victim = "replay-victim";

    // (a) a forwarded write, captured on the wire: applied once...
    let term = term_of(&c, leader).await;
    let body = forwarded(term, create("replay-key-1", victim));
    let captured = sign(&signer, &to_leader, paths::WRITE, &body);
    let before = last_log_index(&c, leader).await;
    let (status, text, bytes) = post(&c, leader, paths::WRITE, Some(&captured), &body).await;
    assert_eq!(status, 200, "the genuine request: {text}");
    let reply: WriteReply = wire::decode(&bytes).expect("a write reply");
    let committed = reply.expect("committed");
    assert_eq!(
        committed.response,
        Response::Batch(vec![Response::Written { version: 1 }])
    );
    let after = last_log_index(&c, leader).await;
    assert!(after > before, "it was logged");
    assert!(
        committed.index > before && committed.index <= after,
        "the reply names the entry that carried it: {} in ({before}, {after}]",
        committed.index
    );
    assert_eq!(sessions_of(&c, leader, victim).await, 1, "it was applied");

    // Wire format 1, what a 0.1.x node sends: the bare command, no header, the MAC over the
    // bare path; answered in format 1 (no index).
    let v1 = wire::encode(&create("wire-one-key", "wire-one")).expect("encode");
    let h = signer.sign(&to_leader, paths::WRITE, &v1);
    let (status, text, bytes) = post_in(&c, leader, paths::WRITE, None, Some(&h), &v1).await;
    assert_eq!(status, 200, "a format-1 forwarded write: {text}");
    let reply: WriteReplyV1 = wire::decode(&bytes).expect("a format-1 reply");
    assert_eq!(
        reply.expect("applied"),
        Response::Batch(vec![Response::Written { version: 1 }])
    );
    // The header is covered by the MAC: a format-2 request with its header removed is read
    // as format 1 and its MAC no longer checks out.
    let body2 = forwarded(term, create("wire-two-key", "wire-two"));
    let h = sign(&signer, &to_leader, paths::WRITE, &body2);
    let (status, text, _) = post_in(&c, leader, paths::WRITE, None, Some(&h), &body2).await;
    assert_eq!(status, 401, "a stripped wire header: {text}");
    // A format this release does not know is refused by name.
    let h = sign(&signer, &to_leader, paths::WRITE, &body2);
    for unknown in ["3", "0", "two"] {
        let (status, text, _) =
            post_in(&c, leader, paths::WRITE, Some(unknown), Some(&h), &body2).await;
        assert_eq!(status, 400, "wire {unknown}: {text}");
        assert!(text.contains("wire format"), "{text}");
    }
    // ...and refused when replayed byte for byte, to the same node or to another one
    refused_leaving_the_log(
        &c,
        leader,
        leader,
        paths::WRITE,
        (&captured, &body),
        "replayed",
    )
    .await;
    refused_leaving_the_log(
        &c,
        leader,
        follower,
        paths::WRITE,
        (&captured, &body),
        "addressed to another node",
    )
    .await;
    assert_eq!(sessions_of(&c, leader, victim).await, 1);

    // A forwarded write addressed to the leader of another term (a copy held up in the network
    // across a leader change) is refused as not-leader, and not applied.
    for stale in [term - 1, term + 1] {
        let body = forwarded(stale, create("stale-term-key", "stale-term-user"));
        let h = sign(&signer, &to_leader, paths::WRITE, &body);
        let (status, text, bytes) = post(&c, leader, paths::WRITE, Some(&h), &body).await;
        assert_eq!(status, 200, "{text}");
        let reply: WriteReply = wire::decode(&bytes).expect("a write reply");
        assert!(
            matches!(reply, Err(wire::PeerRefusal::NotLeader { .. })),
            "term {stale} while the leader leads in {term}: {reply:?}"
        );
    }
    assert_eq!(sessions_of(&c, leader, "stale-term-user").await, 0);

    // A captured `DeleteUser` replayed after the user signed in again would delete the new
    // session: refused, the new session stays.
    let delete = forwarded(
        term,
        Command::DeleteUser {
            user: victim.to_string(),
        },
    );
    let captured_delete = sign(&signer, &to_leader, paths::WRITE, &delete);
    let (status, text, bytes) =
        post(&c, leader, paths::WRITE, Some(&captured_delete), &delete).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        wire::decode::<WriteReply>(&bytes)
            .expect("reply")
            .map(|c| c.response),
        Ok(Response::Count(1))
    );
    assert_eq!(sessions_of(&c, leader, victim).await, 0);
    let again = forwarded(term, create("replay-key-2", victim));
    let h = sign(&signer, &to_leader, paths::WRITE, &again);
    let (status, text, _) = post(&c, leader, paths::WRITE, Some(&h), &again).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(sessions_of(&c, leader, victim).await, 1);
    refused_leaving_the_log(
        &c,
        leader,
        leader,
        paths::WRITE,
        (&captured_delete, &delete),
        "replayed",
    )
    .await;
    assert_eq!(
        sessions_of(&c, leader, victim).await,
        1,
        "the replayed DeleteUser was not applied"
    );

    // An admin op (a harmless one: a snapshot) runs once; its replay is refused.
    let op = wire::encode(&AdminOp::Snapshot).expect("encode");
    let captured_op = sign(&signer, &to_leader, paths::ADMIN, &op);
    let (status, text, bytes) = post(&c, leader, paths::ADMIN, Some(&captured_op), &op).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        wire::decode::<AdminReply>(&bytes)
            .expect("admin reply")
            .is_ok(),
        "the snapshot ran"
    );
    let (status, text, _) = post(&c, leader, paths::ADMIN, Some(&captured_op), &op).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("replayed"), "{text}");

    // (b) stamped 10 minutes ago (a request held back) or 10 minutes ahead: refused, and
    // refused again (a refusal is not remembered as seen), nothing applied
    let late = forwarded(term, create("replay-key-3", victim));
    for ts in [now_ms() - 600_000, now_ms() + 600_000] {
        let h = signer.sign_at(&to_leader, &wire::signed_path(paths::WRITE, 2), &late, ts);
        refused_leaving_the_log(
            &c,
            leader,
            leader,
            paths::WRITE,
            (&h, &late),
            "outside the replay window",
        )
        .await;
    }
    assert_eq!(
        sessions_of(&c, leader, victim).await,
        1,
        "no stale write applied"
    );

    // The cluster itself is unaffected: sessions through every node.
    let u = user();
    for (i, id) in [follower, leader, follower].into_iter().enumerate() {
        let (status, counter, _) = increment(&u, &c.url(id, "/api/counter")).await;
        assert_eq!((status, counter), (200, Some(i as i64 + 1)));
    }
    // the refusals were logged, with the reason
    let logs: String = (1..=3).map(|id| c.log(id)).collect();
    assert!(
        logs.contains("internal request refused"),
        "refusals are logged"
    );
    assert!(logs.contains("replayed request"));
    assert_no_secret_leaks(&c).await;
}

/// A valid body for `path`. Only ever sent damaged (truncated, with a trailing byte): a valid
/// vote or append would be acted upon.
fn valid_body(path: &str) -> Vec<u8> {
    let log_id = LogId::new(CommittedLeaderId::new(1, 1), 1);
    match path {
        paths::APPEND => wire::encode(&AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(1, 1),
            prev_log_id: Some(log_id),
            entries: vec![Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), 2),
                payload: EntryPayload::Normal(create("k", "u")),
            }],
            leader_commit: Some(log_id),
        }),
        paths::VOTE => wire::encode(&VoteRequest::<u64>::new(Vote::new(1, 1), Some(log_id))),
        paths::SNAPSHOT => wire::encode(&InstallSnapshotRequest::<TypeConfig> {
            vote: Vote::new_committed(1, 1),
            meta: openraft::SnapshotMeta::<u64, BasicNode> {
                last_log_id: Some(log_id),
                snapshot_id: "s-1".into(),
                ..Default::default()
            },
            offset: 0,
            data: vec![7; 32],
            done: true,
        }),
        paths::WRITE => wire::encode(&ForwardedWrite {
            term: 1,
            cmd: create("k", "u"),
        }),
        paths::PRE_VOTE => wire::encode(&PreVoteRequest {
            candidate: 9,
            term: 1,
            last_log: Some(log_id),
        }),
        paths::ADMIN => wire::encode(&AdminOp::AddLearner {
            id: 99,
            addr: "127.0.0.1:9".into(),
        }),
        _ => wire::encode(&()),
    }
    .expect("encode")
}

/// Send node `id`, on every `/raft/*` path, each request it must refuse: 401 before the MAC
/// checks out, 400 after it when the body does not decode.
async fn sweep(c: &TestCluster, signer: &RequestSigner, id: u64) {
    let wrong = PeerAuth::new(b"not-the-cluster-secret-not-the-cluster").signer();
    let to = addr(c, id);
    for path in paths::ALL {
        let valid = valid_body(path);
        let garbage = vec![0xffu8; 64];
        // 401: not authenticated
        let (status, text, _) = post(c, id, path, None, &garbage).await;
        assert_eq!(status, 401, "{path} without authentication: {text}");
        // the format before replay protection: a MAC over path and body only
        let r = common::http()
            .post(c.url(id, path))
            .header(
                sessionraft_raft::transport::auth::MAC_HEADER,
                "00".repeat(32),
            )
            .body(garbage.clone())
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{path} with only a MAC header");
        for (why, headers, body) in [
            ("a wrong secret", sign(&wrong, &to, path, &valid), &valid),
            (
                "a MAC for another path",
                sign(
                    signer,
                    &to,
                    if path == paths::VOTE {
                        paths::APPEND
                    } else {
                        paths::VOTE
                    },
                    &valid,
                ),
                &valid,
            ),
            (
                "a MAC for another body",
                sign(signer, &to, path, &garbage),
                &valid,
            ),
        ] {
            let (status, text, _) = post(c, id, path, Some(&headers), body).await;
            assert_eq!(status, 401, "{path} with {why}: {text}");
            assert!(text.contains("bad request MAC"), "{text}");
        }
        // 400: authenticated, undecodable
        let mut bodies = vec![
            garbage.clone(),
            vec![0x01],
            vec![0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            [valid.as_slice(), &[0]].concat(),
        ];
        if !valid.is_empty() {
            bodies.push(Vec::new());
            bodies.push(valid[..valid.len() - 1].to_vec());
            bodies.push(valid[..valid.len() / 2].to_vec());
        }
        if path == paths::WRITE {
            // a batch claiming 2^64 - 1 commands
            let mut absurd = forwarded(1, Command::Batch(Vec::new()));
            absurd.pop();
            absurd.extend([0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
            bodies.push(absurd);
        }
        for body in bodies {
            let h = sign(signer, &to, path, &body);
            let (status, text, _) = post(c, id, path, Some(&h), &body).await;
            assert_eq!(status, 400, "{path} on node {id} with {body:?}: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_security_unauthenticated_or_undecodable_requests_touch_nothing_and_secrets_stay_secret(
) {
    let c = start();
    c.wait_ready(READY).await;
    let leader = c.leader(READY).await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let u = user();
    let (status, _, _) = increment(&u, &c.url(follower, "/api/counter")).await;
    assert_eq!(status, 200);
    let signer = PeerAuth::new(SECRET.as_bytes()).signer();
    let terms: Vec<Value> = futures_util::future::join_all((1..=3).map(|id| c.status(id)))
        .await
        .into_iter()
        .map(|s| s.expect("status")["term"].clone())
        .collect();
    let digest = c.digest(leader).await;

    // (c) The sweep over every path of the leader and a follower, until one ran without the
    // log moving (the purger appends an entry every 5 s on its own).
    let mut log_untouched = false;
    for _ in 0..3 {
        let before = last_log_index(&c, leader).await;
        sweep(&c, &signer, leader).await;
        sweep(&c, &signer, follower).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if last_log_index(&c, leader).await == before {
            log_untouched = true;
            break;
        }
    }
    assert!(
        log_untouched,
        "refused requests moved the log on three sweeps in a row"
    );
    for id in 1..=3 {
        let r = common::http()
            .get(c.url(id, "/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(r.status().as_u16(), 200, "node {id} healthy");
        let s = c.status(id).await.expect("status");
        assert_eq!(s["term"], terms[id as usize - 1], "node {id} kept its term");
    }
    assert_eq!(c.leader(READY).await, leader, "no election");
    let after = c.digest(leader).await;
    assert_eq!(
        (&after["sessions"], &after["digest"]),
        (&digest["sessions"], &digest["digest"]),
        "no session changed"
    );
    // a normal session write still works, through a follower and the leader
    let (status, counter, _) = increment(&u, &c.url(follower, "/api/counter")).await;
    assert_eq!((status, counter), (200, Some(2)));
    let (status, counter, _) = increment(&u, &c.url(leader, "/api/counter")).await;
    assert_eq!((status, counter), (200, Some(3)));

    // (d) after all of it, no secret anywhere
    assert_no_secret_leaks(&c).await;
}

/// The forms in which a secret could leak: raw, hex, base64, and `Debug` of its bytes.
fn leak_forms(name: &str, secret: &str) -> Vec<(String, String)> {
    vec![
        (format!("{name} (raw)"), secret.to_string()),
        (format!("{name} (hex)"), hex_lower(secret.as_bytes())),
        (
            format!("{name} (base64)"),
            base64::engine::general_purpose::STANDARD.encode(secret),
        ),
        (
            format!("{name} (bytes)"),
            format!("{:?}", secret.as_bytes())
                .trim_end_matches(']')
                .to_string(),
        ),
    ]
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a node shows: `GET path` as text ("" when it does not answer).
async fn text_of(c: &TestCluster, id: u64, path: &str, token: Option<&str>) -> String {
    let mut r = common::http().get(c.url(id, path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    match r.send().await {
        Ok(resp) => resp.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The first events of the dashboard feed (Server-Sent Events), read for up to 1.5 s.
async fn dashboard_feed(c: &TestCluster, id: u64) -> String {
    let mut seen = String::new();
    let Ok(mut resp) = common::http()
        .get(c.url(id, "/cluster/events"))
        .send()
        .await
    else {
        return seen;
    };
    let _ = tokio::time::timeout(Duration::from_millis(1500), async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.matches("data:").count() >= 2 {
                break;
            }
        }
    })
    .await;
    seen
}

async fn assert_no_secret_leaks(c: &TestCluster) {
    let mut forms = leak_forms("the cluster secret", SECRET);
    forms.extend(leak_forms("the admin token", ADMIN_TOKEN));
    // (surface, what it showed, whether it must show something)
    let mut surfaces: Vec<(String, String, bool)> = Vec::new();
    for id in c.alive() {
        for (path, nonempty) in [
            ("/metrics", true),
            ("/cluster/status", true),
            ("/cluster/digest", true),
            ("/api/nodes", true),
            ("/healthz", false),
            ("/readyz", false),
            ("/", true),
            ("/cluster", true),
            ("/app.js", true),
            ("/dashboard.js", true),
        ] {
            let text = text_of(c, id, path, None).await;
            surfaces.push((format!("node {id} {path}"), text, nonempty));
        }
        let admin = "/admin/users/replay-victim/sessions";
        for (who, token, nonempty) in [
            ("the admin token", ADMIN_TOKEN, true),
            ("a wrong token", "wrong-admin-token-0123456789", false),
        ] {
            let text = text_of(c, id, admin, Some(token)).await;
            surfaces.push((format!("node {id} {admin} with {who}"), text, nonempty));
        }
        let feed = dashboard_feed(c, id).await;
        surfaces.push((format!("node {id} /cluster/events"), feed, true));
        // last: the log, after everything above was served
        surfaces.push((format!("node {id} log"), c.log(id), true));
    }
    for (surface, text, nonempty) in &surfaces {
        assert!(
            !*nonempty || !text.is_empty(),
            "{surface} is empty: nothing was checked"
        );
        for (what, needle) in &forms {
            assert!(
                !text.contains(needle.as_str()),
                "{what} appears in {surface}"
            );
        }
    }
    let metrics = &surfaces
        .iter()
        .find(|(s, _, _)| s.ends_with("/metrics"))
        .expect("metrics")
        .1;
    assert!(metrics.contains("sessionraft"), "the metrics were served");
}

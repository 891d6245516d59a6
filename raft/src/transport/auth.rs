//! Authentication of internal (node-to-node) requests with the cluster secret, and replay
//! protection.
//!
//! # What a request carries
//! Every internal request (`/raft/*`) carries four headers, all covered by one MAC:
//! - `x-sessionraft-to`: the address the sender dialed (a node's Raft address);
//! - `x-sessionraft-sender`: `EPOCH-SEQ`, where `EPOCH` (16 hex digits) is drawn from the OS
//!   CSPRNG once per [`RequestSigner`] (once per process in a node: `PeerClient::new`) and `SEQ`
//!   (decimal) counts that signer's requests from 1 (all its clones share the counter);
//! - `x-sessionraft-ts`: the sender's wall clock, ms since the Unix epoch;
//! - `x-sessionraft-mac`: hex HMAC-SHA256 under the cluster secret of
//!   `"sessionraft-rpc-v2\n" path "\n" to "\n" sender "\n" ts "\n" body` (header values hold no
//!   newline, the body comes last: the encoding is unambiguous).
//!
//! # What the receiver checks, in this order
//! 1. The MAC, in constant time, before anything else is parsed or remembered: a request without
//!    the right MAC cannot move the replay state (nobody can poison a window with made-up
//!    sequence numbers) and is refused before its body is decoded.
//! 2. The destination, where the caller knows its own address (`raft_rpc` does so for forwarded
//!    writes, read index and admin ops): a request captured on its way to node A is refused by
//!    node B, e.g. a forwarded `DeleteUser` replayed to the next leader.
//! 3. The timestamp: more than [`REPLAY_WINDOW`] (5 minutes) away from the receiver's clock is
//!    refused. Clocks need only agree within that (the chaos tests skew them by ±90 s).
//! 4. The sequence number, per epoch, in a sliding window like IPsec's anti-replay: the highest
//!    sequence seen and a bitmap of the [`SEQ_WINDOW`] (4096) sequences below it. A sequence seen
//!    before is refused; one below the window's floor is refused as too old; anything else is
//!    accepted once, in any order (concurrent requests overtake each other).
//!
//! Only a request that passes all four is remembered. Memory is bounded: at most
//! [`MAX_TRACKED_SENDERS`] epochs (about 600 bytes each) are tracked, the least recently seen is
//! evicted beyond that, and an epoch is forgotten once its newest timestamp is older than
//! [`REPLAY_WINDOW`] — from then on every request of it fails the timestamp check anyway.
//!
//! # Residual risk
//! - A receiver keeps its windows in memory. After it restarts, a request captured within the
//!   last [`REPLAY_WINDOW`] that this node never received (it went to another node, or it was
//!   captured in flight and dropped) can be delivered to it once. The destination check limits
//!   this to requests addressed to the restarted node itself.
//! - The destination is only enforced on our own messages (`/raft/write`, `/raft/read-index`,
//!   `/raft/admin`) and only once a node knows its address from its membership: a new learner
//!   does not until it has received the membership log. Replaying openraft's own messages
//!   (`/raft/append`, `/raft/vote`, `/raft/snapshot`) to any node is harmless: Raft's term and
//!   log-id checks refuse or ignore a stale append, vote or snapshot chunk. Forwarded writes and
//!   admin ops are the paths where a replay would act twice, and these are the ones covered
//!   completely (MAC, destination, time, sequence).
//! - An epoch evicted because more than [`MAX_TRACKED_SENDERS`] senders were active within the
//!   window, or a receiver clock stepped back by more than the window, reopens that epoch's
//!   window. Only holders of the cluster secret create epochs, and a cluster has a handful.
//! - The MAC authenticates the cluster, not a node: any holder of the secret can sign anything.
//!   The body is not encrypted (use TLS for confidentiality).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Header carrying the MAC of an internal request.
pub const MAC_HEADER: &str = "x-sessionraft-mac";
/// Header carrying the sender's `EPOCH-SEQ`.
pub const SENDER_HEADER: &str = "x-sessionraft-sender";
/// Header carrying the sender's wall clock (ms since the Unix epoch).
pub const TS_HEADER: &str = "x-sessionraft-ts";
/// Header carrying the address the sender dialed.
pub const TO_HEADER: &str = "x-sessionraft-to";

/// How far a request's timestamp may be from the receiver's clock, either way.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);
/// How many sequence numbers below the highest one seen are tracked per sender epoch.
pub const SEQ_WINDOW: u64 = 4096;
/// How many sender epochs a receiver tracks at most.
pub const MAX_TRACKED_SENDERS: usize = 1024;

/// Domain separation: a MAC of another format or purpose never verifies here.
const DOMAIN: &[u8] = b"sessionraft-rpc-v2\n";
const WINDOW_MS: u64 = REPLAY_WINDOW.as_millis() as u64;
const WORDS: usize = (SEQ_WINDOW / 64) as usize;

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies internal requests and remembers what it accepted (replay protection).
/// Cheap to clone; clones share the replay state.
#[derive(Clone)]
pub struct PeerAuth {
    key: Arc<Vec<u8>>,
    seen: Arc<Mutex<ReplayWindows>>,
    refused: Arc<AtomicU64>,
}

impl std::fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerAuth(***)")
    }
}

/// The authentication headers of one request as sent. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    pub to: String,
    pub sender: String,
    pub ts: String,
    pub mac: String,
}

impl SignedHeaders {
    /// `(header name, value)` pairs to put on the request.
    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            (TO_HEADER, &self.to),
            (SENDER_HEADER, &self.sender),
            (TS_HEADER, &self.ts),
            (MAC_HEADER, &self.mac),
        ]
    }

    /// The same headers as a receiver sees them.
    pub fn presented(&self) -> PresentedHeaders<'_> {
        PresentedHeaders {
            to: Some(&self.to),
            sender: Some(&self.sender),
            ts: Some(&self.ts),
            mac: Some(&self.mac),
        }
    }
}

/// The authentication headers of a received request, unverified; `None` where absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PresentedHeaders<'a> {
    pub to: Option<&'a str>,
    pub sender: Option<&'a str>,
    pub ts: Option<&'a str>,
    pub mac: Option<&'a str>,
}

/// The four MAC-covered values, all present.
struct Parts<'a> {
    to: &'a str,
    sender: &'a str,
    ts: &'a str,
}

/// Who sent an accepted request: the sender's epoch and the request's sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderSeq {
    pub epoch: u64,
    pub seq: u64,
}

impl std::fmt::Display for SenderSeq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}-{}", self.epoch, self.seq)
    }
}

/// Why a request was not authenticated. Every case is answered with 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// An authentication header is absent (or not visible ASCII); names the header.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The MAC does not match the request (wrong secret, tampered path, header or body).
    #[error("bad request MAC")]
    BadMac,
    /// A MAC-covered header does not parse; names the header.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// The request was addressed to another node.
    #[error("request addressed to another node")]
    WrongDestination,
    /// The timestamp is more than [`REPLAY_WINDOW`] away from the receiver's clock.
    #[error("request timestamp outside the replay window")]
    OutsideWindow,
    /// This (epoch, sequence) was accepted before.
    #[error("replayed request")]
    Replayed,
    /// The sequence is below the floor of the sender's window: cannot tell, refused.
    #[error("request sequence too old")]
    TooOld,
}

impl AuthFailure {
    /// The 401 body: a fixed, clear message.
    pub fn message(&self) -> &'static str {
        match self {
            AuthFailure::Missing(MAC_HEADER) => "missing request MAC",
            AuthFailure::Missing(_) => {
                "missing request authentication header (x-sessionraft-to/-sender/-ts)"
            }
            AuthFailure::BadMac => "bad request MAC",
            AuthFailure::Malformed(_) => "malformed request authentication header",
            AuthFailure::WrongDestination => "request addressed to another node",
            AuthFailure::OutsideWindow => {
                "request timestamp outside the replay window (clocks more than 300 s apart?)"
            }
            AuthFailure::Replayed => "replayed request",
            AuthFailure::TooOld => "request sequence below the replay window",
        }
    }
}

impl PeerAuth {
    /// A signer and verifier over the cluster secret, with empty replay windows.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: Arc::new(secret.to_vec()),
            seen: Arc::new(Mutex::new(ReplayWindows::default())),
            refused: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A signer with a fresh random epoch and its sequence at 0. Call once per process (or
    /// per client) and clone it: clones share the sequence counter.
    pub fn signer(&self) -> RequestSigner {
        RequestSigner {
            auth: self.clone(),
            epoch: rand::rngs::OsRng.next_u64(),
            last_seq: Arc::new(AtomicU64::new(0)),
        }
    }

    fn mac(&self, path: &str, h: &Parts<'_>, body: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length; new_from_slice cannot fail for HMAC.
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable_hmac(),
        };
        mac.update(DOMAIN);
        for part in [path, h.to, h.sender, h.ts] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac.update(body);
        mac
    }

    /// Authenticate one request to `path` carrying `body`, received at `now_ms` (the receiver's
    /// wall clock): the MAC (constant time), then, with `own_addr`, that the request was
    /// addressed to it, then the timestamp and the sender's replay window. The request is
    /// remembered only when it passes every check.
    ///
    /// # Errors
    /// [`AuthFailure`] saying which check failed; each failure is counted
    /// ([`PeerAuth::refused_count`]).
    pub fn check(
        &self,
        path: &str,
        body: &[u8],
        h: PresentedHeaders<'_>,
        own_addr: Option<&str>,
        now_ms: u64,
    ) -> Result<SenderSeq, AuthFailure> {
        self.check_inner(path, body, h, own_addr, now_ms)
            .inspect_err(|_| {
                self.refused.fetch_add(1, Ordering::Relaxed);
            })
    }

    fn check_inner<'a>(
        &self,
        path: &str,
        body: &[u8],
        h: PresentedHeaders<'a>,
        own_addr: Option<&str>,
        now_ms: u64,
    ) -> Result<SenderSeq, AuthFailure> {
        let present = |v: Option<&'a str>, name| v.ok_or(AuthFailure::Missing(name));
        let mac = present(h.mac, MAC_HEADER)?;
        let parts = Parts {
            to: present(h.to, TO_HEADER)?,
            sender: present(h.sender, SENDER_HEADER)?,
            ts: present(h.ts, TS_HEADER)?,
        };
        let given = hex::decode(mac).map_err(|_| AuthFailure::BadMac)?;
        self.mac(path, &parts, body)
            .verify_slice(&given)
            .map_err(|_| AuthFailure::BadMac)?;
        // Authenticated from here on: only a holder of the secret wrote these values.
        let sender = parse_sender(parts.sender).ok_or(AuthFailure::Malformed(SENDER_HEADER))?;
        let ts: u64 = parts
            .ts
            .parse()
            .map_err(|_| AuthFailure::Malformed(TS_HEADER))?;
        if own_addr.is_some_and(|own| own != parts.to) {
            return Err(AuthFailure::WrongDestination);
        }
        if now_ms.abs_diff(ts) > WINDOW_MS {
            return Err(AuthFailure::OutsideWindow);
        }
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .accept(sender, ts, now_ms)?;
        Ok(sender)
    }

    /// How many requests this verifier (and its clones) refused since it was made.
    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// How many sender epochs are tracked now (at most [`MAX_TRACKED_SENDERS`]).
    pub fn tracked_senders(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .senders
            .len()
    }
}

/// Signs outgoing requests under one random epoch with increasing sequence numbers. Cheap to
/// clone; clones share the sequence counter, so a process never signs one (epoch, seq) twice.
#[derive(Clone)]
pub struct RequestSigner {
    auth: PeerAuth,
    epoch: u64,
    last_seq: Arc<AtomicU64>,
}

impl std::fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestSigner(epoch {:016x})", self.epoch)
    }
}

impl RequestSigner {
    /// The headers for a request to `http://{to}{path}` carrying `body`, stamped now.
    pub fn sign(&self, to: &str, path: &str, body: &[u8]) -> SignedHeaders {
        self.sign_at(to, path, body, crate::clock::now_ms())
    }

    /// [`RequestSigner::sign`] with the timestamp `ts_ms` (tests make stale requests with it).
    pub fn sign_at(&self, to: &str, path: &str, body: &[u8], ts_ms: u64) -> SignedHeaders {
        let seq = self.last_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let sender = SenderSeq {
            epoch: self.epoch,
            seq,
        }
        .to_string();
        let ts = ts_ms.to_string();
        let parts = Parts {
            to,
            sender: &sender,
            ts: &ts,
        };
        let mac = hex::encode(self.auth.mac(path, &parts, body).finalize().into_bytes());
        SignedHeaders {
            to: to.to_string(),
            sender,
            ts,
            mac,
        }
    }

    /// This signer's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// `EPOCH-SEQ`: exactly 16 lowercase hex digits, a dash, a decimal sequence.
fn parse_sender(s: &str) -> Option<SenderSeq> {
    let (epoch, seq) = s.split_once('-')?;
    if epoch.len() != 16
        || !epoch
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(SenderSeq {
        epoch: u64::from_str_radix(epoch, 16).ok()?,
        seq: seq.parse().ok()?,
    })
}

/// The replay state of a receiver: one window per sender epoch.
#[derive(Default)]
struct ReplayWindows {
    senders: HashMap<u64, SeqWindow>,
}

/// The anti-replay window of one sender epoch.
struct SeqWindow {
    /// Highest sequence accepted.
    top: u64,
    /// Bit `s % SEQ_WINDOW` is set when sequence `s` (in `top - SEQ_WINDOW + 1 ..= top`) was
    /// accepted.
    bits: [u64; WORDS],
    /// Newest timestamp accepted (the sender's clock): once the receiver's clock is more than
    /// the window past it, every request of this epoch fails the timestamp check.
    newest_ts_ms: u64,
    /// When this epoch was last accepted (the receiver's clock), for eviction.
    last_seen_ms: u64,
}

impl SeqWindow {
    fn new(seq: u64, ts_ms: u64, now_ms: u64) -> Self {
        let mut w = Self {
            top: seq,
            bits: [0; WORDS],
            newest_ts_ms: ts_ms,
            last_seen_ms: now_ms,
        };
        w.set(seq, true);
        w
    }

    fn slot(seq: u64) -> (usize, u64) {
        let bit = seq % SEQ_WINDOW;
        ((bit / 64) as usize, 1u64 << (bit % 64))
    }

    fn get(&self, seq: u64) -> bool {
        let (word, mask) = Self::slot(seq);
        self.bits[word] & mask != 0
    }

    fn set(&mut self, seq: u64, on: bool) {
        let (word, mask) = Self::slot(seq);
        if on {
            self.bits[word] |= mask;
        } else {
            self.bits[word] &= !mask;
        }
    }

    /// Accept `seq` once; refuse a repeat or a sequence below the window.
    fn accept(&mut self, seq: u64, ts_ms: u64, now_ms: u64) -> Result<(), AuthFailure> {
        if seq > self.top {
            if seq - self.top >= SEQ_WINDOW {
                self.bits = [0; WORDS];
            } else {
                // The slots of the sequences the window slides over are reused: clear them.
                for s in self.top + 1..seq {
                    self.set(s, false);
                }
            }
            self.top = seq;
        } else if self.top - seq >= SEQ_WINDOW {
            return Err(AuthFailure::TooOld);
        } else if self.get(seq) {
            return Err(AuthFailure::Replayed);
        }
        self.set(seq, true);
        self.newest_ts_ms = self.newest_ts_ms.max(ts_ms);
        self.last_seen_ms = now_ms;
        Ok(())
    }
}

impl ReplayWindows {
    fn accept(&mut self, sender: SenderSeq, ts_ms: u64, now_ms: u64) -> Result<(), AuthFailure> {
        if let Some(w) = self.senders.get_mut(&sender.epoch) {
            return w.accept(sender.seq, ts_ms, now_ms);
        }
        // A new epoch (a process started): make room first. Both passes are O(tracked), and
        // only run when an authenticated new sender appears.
        self.senders
            .retain(|_, w| now_ms.saturating_sub(w.newest_ts_ms) <= WINDOW_MS);
        if self.senders.len() >= MAX_TRACKED_SENDERS {
            let oldest = self
                .senders
                .iter()
                .min_by_key(|(_, w)| w.last_seen_ms)
                .map(|(epoch, _)| *epoch);
            if let Some(epoch) = oldest {
                self.senders.remove(&epoch);
            }
        }
        self.senders
            .insert(sender.epoch, SeqWindow::new(sender.seq, ts_ms, now_ms));
        Ok(())
    }
}

#[cold]
fn unreachable_hmac() -> ! {
    // `Hmac::new_from_slice` only fails for MACs with a fixed key size; HMAC has none.
    panic!("HMAC-SHA256 rejected a key, which it never does")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000_000;
    const TO: &str = "127.0.0.11:7001";
    const PATH: &str = "/raft/write";

    fn check(a: &PeerAuth, h: &SignedHeaders, body: &[u8]) -> Result<SenderSeq, AuthFailure> {
        a.check(PATH, body, h.presented(), Some(TO), NOW)
    }

    #[test]
    fn sign_verify_and_wrong_secret() {
        let a = PeerAuth::new(SECRET);
        let s = a.signer();
        let h = s.sign_at(TO, PATH, b"body", NOW);
        assert_eq!(
            check(&a, &h, b"body"),
            Ok(SenderSeq {
                epoch: s.epoch(),
                seq: 1
            })
        );
        assert_eq!(h.sender, format!("{:016x}-1", s.epoch()));
        assert_eq!(h.ts, NOW.to_string());
        // a receiver that does not know its address does not check the destination
        let h = s.sign_at("elsewhere:1", PATH, b"body", NOW);
        assert!(a.check(PATH, b"body", h.presented(), None, NOW).is_ok());

        let other = PeerAuth::new(b"another-secret-another-secret-xx");
        let h = other.signer().sign_at(TO, PATH, b"body", NOW);
        assert_eq!(check(&a, &h, b"body"), Err(AuthFailure::BadMac));
        assert_eq!(a.refused_count(), 1);
        assert!(!format!("{a:?}").contains("0123"));
        assert!(!format!("{s:?}").contains("0123"));
    }

    #[test]
    fn a_replayed_request_is_refused() {
        let a = PeerAuth::new(SECRET);
        let s = a.signer();
        let h = s.sign_at(TO, PATH, b"cmd", NOW);
        assert!(check(&a, &h, b"cmd").is_ok());
        assert_eq!(check(&a, &h, b"cmd"), Err(AuthFailure::Replayed));
        // still refused later (within the window), and by a clone of the verifier
        let later = a
            .clone()
            .check(PATH, b"cmd", h.presented(), Some(TO), NOW + 299_000);
        assert_eq!(later, Err(AuthFailure::Replayed));
        // the next request of the same sender goes through
        assert!(check(&a, &s.sign_at(TO, PATH, b"cmd", NOW), b"cmd").is_ok());
    }

    #[test]
    fn out_of_order_sequences_are_accepted_once_each() {
        let a = PeerAuth::new(SECRET);
        let s = a.signer();
        let signed: Vec<SignedHeaders> = (0..200)
            .map(|i| s.sign_at(TO, PATH, format!("b{i}").as_bytes(), NOW))
            .collect();
        // deliver in a scrambled order (reverse runs, odd ones first), then all again
        let mut order: Vec<usize> = (0..200).rev().filter(|i| i % 2 == 1).collect();
        order.extend((0..200).filter(|i| i % 2 == 0));
        for &i in &order {
            let body = format!("b{i}");
            assert!(check(&a, &signed[i], body.as_bytes()).is_ok(), "first {i}");
        }
        for &i in &order {
            let body = format!("b{i}");
            assert_eq!(
                check(&a, &signed[i], body.as_bytes()),
                Err(AuthFailure::Replayed),
                "again {i}"
            );
        }
        // a clone of the signer continues the sequence: nothing it signs collides
        let h = s.clone().sign_at(TO, PATH, b"x", NOW);
        assert_eq!(check(&a, &h, b"x").map(|v| v.seq), Ok(201));
    }

    #[test]
    fn a_sequence_below_the_window_is_refused() {
        let a = PeerAuth::new(SECRET);
        let s = a.signer();
        let first = s.sign_at(TO, PATH, b"", NOW);
        let mut edge = None;
        for seq in 2..=SEQ_WINDOW + 1 {
            let h = s.sign_at(TO, PATH, b"", NOW);
            if seq == 2 {
                edge = Some(h); // held back: delivered last, exactly at the floor
            } else if seq == SEQ_WINDOW + 1 {
                assert!(check(&a, &h, b"").is_ok());
            }
        }
        // top is SEQ_WINDOW + 1: seq 1 is SEQ_WINDOW below it, out of the window
        assert_eq!(check(&a, &first, b""), Err(AuthFailure::TooOld));
        // seq 2 is the floor of the window: never seen, accepted once
        let edge = edge.expect("held back");
        assert!(check(&a, &edge, b"").is_ok());
        assert_eq!(check(&a, &edge, b""), Err(AuthFailure::Replayed));
        // a jump far ahead clears the window: the old top is now too old
        let mut far = None;
        for _ in 0..3 * SEQ_WINDOW {
            far = Some(s.sign_at(TO, PATH, b"", NOW));
        }
        assert!(check(&a, &far.expect("signed"), b"").is_ok());
        assert_eq!(check(&a, &edge, b""), Err(AuthFailure::TooOld));
    }

    #[test]
    fn a_timestamp_outside_the_window_is_refused_and_not_remembered() {
        let a = PeerAuth::new(SECRET);
        let s = a.signer();
        let w = REPLAY_WINDOW.as_millis() as u64;
        for ts in [NOW - w - 1, NOW + w + 1, 0, u64::MAX] {
            let h = s.sign_at(TO, PATH, b"b", ts);
            assert_eq!(check(&a, &h, b"b"), Err(AuthFailure::OutsideWindow), "{ts}");
        }
        assert_eq!(a.tracked_senders(), 0, "refused requests leave no state");
        for ts in [NOW - w, NOW + w, NOW - 90_000, NOW + 90_000] {
            let h = s.sign_at(TO, PATH, b"b", ts);
            assert!(check(&a, &h, b"b").is_ok(), "{ts}");
        }
    }

    #[test]
    fn tampering_with_any_part_is_refused() {
        let a = PeerAuth::new(SECRET);
        let s = a.signer();
        let h = s.sign_at(TO, PATH, b"body", NOW);
        let other_seq = s.sign_at(TO, PATH, b"body", NOW);
        let other_epoch = a.signer().sign_at(TO, PATH, b"body", NOW);
        let later_ts = (NOW + 1).to_string();
        let (sender, ts, mac) = (h.sender.as_str(), h.ts.as_str(), h.mac.as_str());
        let tampered = [
            ("127.0.0.12:7001", sender, ts, mac),
            (TO, other_seq.sender.as_str(), ts, mac),
            (TO, other_epoch.sender.as_str(), ts, mac),
            (TO, sender, later_ts.as_str(), mac),
            (TO, sender, ts, other_seq.mac.as_str()),
            (TO, sender, ts, "zz"),
            (TO, sender, ts, ""),
        ]
        .map(|(to, sender, ts, mac)| SignedHeaders {
            to: to.into(),
            sender: sender.into(),
            ts: ts.into(),
            mac: mac.into(),
        });
        for t in &tampered {
            assert_eq!(check(&a, t, b"body"), Err(AuthFailure::BadMac), "{t:?}");
        }
        assert_eq!(check(&a, &h, b"bodY"), Err(AuthFailure::BadMac));
        let full = h.presented();
        for (p, name) in [
            (PresentedHeaders { mac: None, ..full }, MAC_HEADER),
            (PresentedHeaders { to: None, ..full }, TO_HEADER),
            (
                PresentedHeaders {
                    sender: None,
                    ..full
                },
                SENDER_HEADER,
            ),
            (PresentedHeaders { ts: None, ..full }, TS_HEADER),
        ] {
            assert_eq!(
                a.check(PATH, b"body", p, Some(TO), NOW),
                Err(AuthFailure::Missing(name))
            );
        }
        assert_eq!(
            a.check("/raft/admin", b"body", h.presented(), Some(TO), NOW),
            Err(AuthFailure::BadMac)
        );
        // unauthenticated attempts did not poison the window: the genuine request passes once
        assert_eq!(a.tracked_senders(), 0);
        assert!(check(&a, &h, b"body").is_ok());
        assert_eq!(check(&a, &h, b"body"), Err(AuthFailure::Replayed));
        // a request for another node is refused by a receiver that knows its address
        let elsewhere = s.sign_at("127.0.0.12:7001", PATH, b"body", NOW);
        assert_eq!(
            check(&a, &elsewhere, b"body"),
            Err(AuthFailure::WrongDestination)
        );
        // headers only a key holder could write, but that do not parse
        for (sender, ts, expected) in [
            ("1-1", "5", SENDER_HEADER),
            ("00000000000000zz-1", "5", SENDER_HEADER),
            ("000000000000000A-1", "5", SENDER_HEADER),
            ("0000000000000001-", "5", SENDER_HEADER),
            ("0000000000000001-+1", "5", SENDER_HEADER),
            ("0000000000000001", "5", SENDER_HEADER),
            ("0000000000000001-1", "-5", TS_HEADER),
            ("0000000000000001-1", "", TS_HEADER),
        ] {
            let parts = Parts { to: TO, sender, ts };
            let mac = hex::encode(a.mac(PATH, &parts, b"").finalize().into_bytes());
            let p = PresentedHeaders {
                to: Some(TO),
                sender: Some(sender),
                ts: Some(ts),
                mac: Some(&mac),
            };
            assert_eq!(
                a.check(PATH, b"", p, Some(TO), NOW),
                Err(AuthFailure::Malformed(expected)),
                "{sender} {ts}"
            );
        }
    }

    #[test]
    fn tracked_epochs_are_bounded_and_forgotten_after_the_window() {
        let a = PeerAuth::new(SECRET);
        let first = a.signer();
        let h = first.sign_at(TO, PATH, b"", NOW);
        assert!(check(&a, &h, b"").is_ok());
        let mut last = None;
        for i in 0..MAX_TRACKED_SENDERS + 50 {
            let s = a.signer();
            let h = s.sign_at(TO, PATH, b"", NOW);
            let now = NOW + 1 + i as u64;
            assert!(a.check(PATH, b"", h.presented(), Some(TO), now).is_ok());
            last = Some(h);
        }
        assert_eq!(a.tracked_senders(), MAX_TRACKED_SENDERS);
        // the most recent sender is still tracked: its replay is refused
        let last = last.expect("signed");
        assert_eq!(
            a.check(PATH, b"", last.presented(), Some(TO), NOW + 5_000),
            Err(AuthFailure::Replayed)
        );
        // the least recently seen (the first) was evicted to make room
        assert!(check(&a, &h, b"").is_ok(), "evicted epoch starts afresh");

        // once the receiver's clock is past every tracked timestamp by the window, a new
        // sender finds the table emptied of them
        let later = NOW + REPLAY_WINDOW.as_millis() as u64 + 10_000;
        let h = a.signer().sign_at(TO, PATH, b"", later);
        assert!(a.check(PATH, b"", h.presented(), Some(TO), later).is_ok());
        assert_eq!(a.tracked_senders(), 1);
        // and the forgotten epochs' requests fail the timestamp check instead
        assert_eq!(
            a.check(PATH, b"", last.presented(), Some(TO), later),
            Err(AuthFailure::OutsideWindow)
        );
    }
}

//! Releases and the cluster version (etcd's rule): every member reports the release it runs,
//! the leader records the lowest `MAJOR.MINOR` among the members in the log
//! ([`crate::Command::SetClusterVersion`]) once every member has answered it, and behaviour that
//! an older member cannot understand is switched on only from the cluster version that brought
//! it ([`Feature::since`]). The cluster version only ever rises: a release is never asked to
//! read what it does not know, and a feature once on stays on.
//!
//! - A peer's release travels in the [`VERSION_HEADER`] of every reply to an internal request;
//!   0.1.0 sent none, so a reply without it is 0.1 ([`ClusterVersion::UNVERSIONED`]).
//! - The format of an internal request's body is named by its [`WIRE_HEADER`] (absent: 1, the
//!   format of 0.1.0), covered by the request's MAC; a node sends format 2 only once the cluster
//!   version says every member reads it ([`ClusterVersionCell::wire`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The release this binary is (`CARGO_PKG_VERSION`).
pub const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// Reply header naming the release of the node that answered an internal request.
pub const VERSION_HEADER: &str = "sessionraft-version";
/// Request header naming the wire format of an internal request's body (absent: 1).
pub const WIRE_HEADER: &str = "sessionraft-wire";
/// AppendEntries header in which a leader names the cluster version it acts on now (the lowest
/// line among the members it heard from, or the applied one once a member stayed silent), or
/// `pending` while it is still hearing from them: followers act on the same version before the
/// record reaches them, and are not ready while it is pending. A 0.1.x leader sends none.
pub const TARGET_HEADER: &str = "sessionraft-cluster-target";
/// The [`TARGET_HEADER`] value of a leader still hearing from its members.
pub const TARGET_PENDING: &str = "pending";
/// The newest wire format this release reads and writes.
pub const WIRE: u32 = 2;

/// A release line, `MAJOR.MINOR`: what the cluster version and feature gates compare.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterVersion {
    pub major: u32,
    pub minor: u32,
}

impl ClusterVersion {
    /// What a cluster that never recorded a version runs, and what a peer that sends no
    /// version header runs: 0.1, the releases before versions were negotiated.
    pub const UNVERSIONED: Self = Self::new(0, 1);

    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// This binary's release line.
    pub fn current() -> Self {
        Self::of_release(RELEASE).unwrap_or(Self::UNVERSIONED)
    }

    /// The line of a release string such as `0.2.0` or `1.4.2-rc.1`; `None` when it is not one.
    pub fn of_release(release: &str) -> Option<Self> {
        let mut parts = release.trim().splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        // The patch: digits, then nothing or a pre-release (`-`) or build (`+`) suffix.
        let patch = parts.next()?;
        let digits = patch.bytes().take_while(u8::is_ascii_digit).count();
        let suffix = &patch[digits..];
        (digits > 0 && (suffix.is_empty() || suffix.starts_with(['-', '+'])))
            .then(|| Self::new(major, minor))
    }

    /// A line as printed (`0.2`), as in the [`TARGET_HEADER`].
    pub fn parse_line(text: &str) -> Option<Self> {
        let (major, minor) = text.trim().split_once('.')?;
        Some(Self::new(major.parse().ok()?, minor.parse().ok()?))
    }

    fn pack(self) -> u64 {
        (u64::from(self.major) << 32) | u64::from(self.minor)
    }

    fn unpack(v: u64) -> Self {
        // Both halves fit: `pack` put them there.
        Self::new(
            u32::try_from(v >> 32).unwrap_or(u32::MAX),
            u32::try_from(v & u64::from(u32::MAX)).unwrap_or(u32::MAX),
        )
    }

    /// Whether a cluster at this version may use `feature`.
    pub fn allows(self, feature: Feature) -> bool {
        self >= feature.since()
    }
}

impl fmt::Display for ClusterVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Behaviour that an older release cannot understand, each switched on from one cluster version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Session-token cookies `<sid>.<index>` (0.1 reads bare ids only).
    SessionTokens,
    /// The Redis-protocol keyspace: `Command::Kv` log entries (0.1 cannot decode them).
    Keyspace,
    /// Wire format 2: a forwarded write carries the leader's term and its reply the entry's
    /// index (0.1 refuses both bodies).
    WireV2,
}

impl Feature {
    /// Every feature, for tables and tests.
    pub const ALL: [Feature; 3] = [Feature::SessionTokens, Feature::Keyspace, Feature::WireV2];

    /// The cluster version from which it is on.
    pub const fn since(self) -> ClusterVersion {
        match self {
            Feature::SessionTokens | Feature::Keyspace | Feature::WireV2 => {
                ClusterVersion::new(0, 2)
            }
        }
    }

    /// Its name in logs, errors and `/cluster/status`.
    pub const fn name(self) -> &'static str {
        match self {
            Feature::SessionTokens => "session tokens",
            Feature::Keyspace => "keyspace",
            Feature::WireV2 => "wire format 2",
        }
    }
}

/// The cluster version this node has applied from the log (or installed from a snapshot),
/// readable without a lock on every request. Set by the state machine only.
#[derive(Debug)]
pub struct ClusterVersionCell(AtomicU64);

impl ClusterVersionCell {
    /// A cell holding `v`.
    pub fn new(v: ClusterVersion) -> Self {
        Self(AtomicU64::new(v.pack()))
    }

    /// The cluster version as applied here.
    pub fn get(&self) -> ClusterVersion {
        ClusterVersion::unpack(self.0.load(Ordering::Acquire))
    }

    /// Record an applied (higher) version; a lower one is ignored.
    pub fn raise(&self, v: ClusterVersion) {
        self.0.fetch_max(v.pack(), Ordering::AcqRel);
    }

    /// Whether the cluster, as this node knows it, may use `feature`. A node that has not yet
    /// applied the entry that switched it on answers no: it errs on the old side.
    pub fn allows(&self, feature: Feature) -> bool {
        self.get().allows(feature)
    }

    /// The wire format to send internal requests in.
    pub fn wire(&self) -> u32 {
        if self.allows(Feature::WireV2) {
            WIRE
        } else {
            1
        }
    }
}

/// A reported release older than this is forgotten: a member not heard from holds the cluster
/// version where it is.
pub const HEARD_WITHIN: Duration = Duration::from_secs(5);

/// The releases peers reported in their replies, by the address this node called them at;
/// and the cluster version a leader announces, or its followers heard announced.
#[derive(Debug, Default)]
pub struct PeerVersions {
    heard: Mutex<HashMap<String, (String, Instant)>>,
    /// As leader: the version this node acts on and announces (`None`: still pending).
    announced: Mutex<Option<ClusterVersion>>,
    /// As follower: what its leader announced (`None`: pending), in which term, and when.
    leader_said: Mutex<Option<(Option<ClusterVersion>, u64, Instant)>>,
}

impl PeerVersions {
    /// A reply from the node at `addr` named `release` (`None`: no header, a 0.1.x node).
    pub fn heard(&self, addr: &str, release: Option<&str>) {
        let release = release.unwrap_or("0.1.0 or older").to_owned();
        if let Ok(mut heard) = self.heard.lock() {
            match heard.get_mut(addr) {
                Some(entry) => {
                    if entry.0 != release {
                        entry.0 = release;
                    }
                    entry.1 = Instant::now();
                }
                None => {
                    heard.insert(addr.to_owned(), (release, Instant::now()));
                }
            }
        }
    }

    /// As leader: act on and announce `version` (`None`: pending).
    pub fn announce(&self, version: Option<ClusterVersion>) {
        if let Ok(mut a) = self.announced.lock() {
            *a = version;
        }
    }

    /// What this node announces as leader (`None`: pending).
    pub fn announced(&self) -> Option<ClusterVersion> {
        self.announced.lock().ok().and_then(|a| *a)
    }

    /// The [`TARGET_HEADER`] value this node sends with its AppendEntries.
    pub fn target_header(&self) -> String {
        self.announced()
            .map_or_else(|| TARGET_PENDING.to_owned(), |v| v.to_string())
    }

    /// As follower: the leader of `term` sent `header` (the [`TARGET_HEADER`], `None` when
    /// absent) with an AppendEntries this node accepted. No header: a 0.1.x leader, whose
    /// cluster runs 0.1. An unreadable value counts as pending.
    pub fn leader_sent(&self, term: u64, header: Option<&str>) {
        let said = match header {
            None => Some(ClusterVersion::UNVERSIONED),
            Some(v) => ClusterVersion::parse_line(v),
        };
        if let Ok(mut l) = self.leader_said.lock() {
            *l = Some((said, term, Instant::now()));
        }
    }

    /// What the leader of `term` announced within [`HEARD_WITHIN`]: `None` when nothing was
    /// heard, `Some(None)` while it is pending.
    pub fn leader_target(&self, term: u64) -> Option<Option<ClusterVersion>> {
        let l = self.leader_said.lock().ok()?;
        l.filter(|(_, t, at)| *t == term && at.elapsed() <= HEARD_WITHIN)
            .map(|(v, _, _)| v)
    }

    /// The release the node at `addr` reported within [`HEARD_WITHIN`], if it did.
    pub fn release_of(&self, addr: &str) -> Option<String> {
        let heard = self.heard.lock().ok()?;
        heard
            .get(addr)
            .filter(|(_, at)| at.elapsed() <= HEARD_WITHIN)
            .map(|(r, _)| r.clone())
    }

    /// The release line of the node at `addr`, if heard recently; a release string that is not
    /// a version (the "older" placeholder) counts as [`ClusterVersion::UNVERSIONED`].
    pub fn line_of(&self, addr: &str) -> Option<ClusterVersion> {
        self.release_of(addr)
            .map(|r| ClusterVersion::of_release(&r).unwrap_or(ClusterVersion::UNVERSIONED))
    }
}

/// What the cluster version should be, given this node's own line and each other member's
/// (`None`: not heard from recently): the lowest, once every member is known.
pub fn lowest_of(
    own: ClusterVersion,
    members: &[Option<ClusterVersion>],
) -> Option<ClusterVersion> {
    members.iter().try_fold(own, |low, m| m.map(|v| low.min(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_lines() {
        assert_eq!(
            ClusterVersion::of_release("0.2.0"),
            Some(ClusterVersion::new(0, 2))
        );
        assert_eq!(
            ClusterVersion::of_release("1.14.3-rc.1"),
            Some(ClusterVersion::new(1, 14))
        );
        for bad in ["", "0.2", "x.y.z", "0.2.x", "0.1.0 or older"] {
            assert_eq!(ClusterVersion::of_release(bad), None, "{bad}");
        }
        assert_eq!(ClusterVersion::new(0, 2).to_string(), "0.2");
        assert_eq!(
            ClusterVersion::parse_line("0.2"),
            Some(ClusterVersion::new(0, 2))
        );
        assert_eq!(ClusterVersion::parse_line("0.2.0"), None);
        assert!(ClusterVersion::new(1, 0) > ClusterVersion::new(0, 12));
        assert!(ClusterVersion::current() >= ClusterVersion::new(0, 2));
    }

    #[test]
    fn the_cell_only_rises() {
        let cell = ClusterVersionCell::new(ClusterVersion::UNVERSIONED);
        assert_eq!(cell.wire(), 1);
        assert!(Feature::ALL.iter().all(|f| !cell.allows(*f)));
        cell.raise(ClusterVersion::new(0, 2));
        cell.raise(ClusterVersion::new(0, 1));
        assert_eq!(cell.get(), ClusterVersion::new(0, 2));
        assert_eq!(cell.wire(), WIRE);
        assert!(Feature::ALL.iter().all(|f| cell.allows(*f)));
    }

    #[test]
    fn lowest_needs_every_member() {
        let v = ClusterVersion::new;
        assert_eq!(lowest_of(v(0, 2), &[]), Some(v(0, 2)));
        assert_eq!(
            lowest_of(v(0, 2), &[Some(v(0, 2)), Some(v(0, 1))]),
            Some(v(0, 1))
        );
        assert_eq!(lowest_of(v(0, 2), &[Some(v(0, 2)), None]), None);
    }

    #[test]
    fn peers_without_a_header_are_unversioned() {
        let p = PeerVersions::default();
        assert_eq!(p.line_of("a:1"), None);
        p.heard("a:1", None);
        assert_eq!(p.line_of("a:1"), Some(ClusterVersion::UNVERSIONED));
        p.heard("a:1", Some("0.2.0"));
        assert_eq!(p.line_of("a:1"), Some(ClusterVersion::new(0, 2)));
        assert_eq!(p.release_of("a:1").as_deref(), Some("0.2.0"));
    }
}

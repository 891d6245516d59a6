//! What to do with one key found on both sides: the rule of which copy wins.
//!
//! Every session store the door serves gives a session its full lifetime again on every write
//! (connect-redis `SET … EX ttl` and `EXPIRE` on touch, Flask-Session `SET … EX`, actix-session
//! `SET … XX EX` / `EXPIRE`), so of two copies of a session the one written or touched last is
//! the one that expires last. Hence:
//!
//! - absent on the destination → copy it (`SET … NX`: a copy the destination gained meanwhile
//!   stays);
//! - the same value on both sides → nothing to do, unless the source's copy expires more than
//!   [`NEWER_MARGIN_MS`] later (it was touched since): then its lifetime is copied;
//! - different values → the source's copy replaces the destination's (`SET … XX`), unless the
//!   destination's expires more than [`NEWER_MARGIN_MS`] later than the source's: then the
//!   destination's copy is newer (an app already writes there) and is kept.
//!
//! "Expires" is measured on this machine's clock alone: each side's `PTTL` is added to the
//! instant the question was sent, so neither server's clock matters. The margin absorbs the
//! time between the two questions; no expiry counts as the latest of all.

/// How much later a copy must expire to count as newer, in ms.
pub const NEWER_MARGIN_MS: u64 = 1000;

/// One side's copy of a key, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub value: Vec<u8>,
    /// When it expires, in ms after the run's reference instant (`None`: never).
    pub expires_at_ms: Option<u64>,
}

/// The decision for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Absent on the destination: write it there if it still is (`NX`).
    Create,
    /// Another value on the destination, not newer: replace it if it is still there (`XX`).
    Replace,
    /// The same value, but the source's copy lives longer: write its lifetime (`XX`).
    Extend,
    /// The same value and lifetime on both sides.
    Unchanged,
    /// The destination's copy is newer: kept.
    DestinationNewer,
}

/// Whether expiry `a` is later than `b` by more than the margin (`None` = never expires).
fn later(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (None, Some(_)) => true,
        (Some(_), None) | (None, None) => false,
        (Some(a), Some(b)) => a > b.saturating_add(NEWER_MARGIN_MS),
    }
}

/// The rule of the module docs.
pub fn decide(source: &Observed, destination: Option<&Observed>) -> Plan {
    let Some(dest) = destination else {
        return Plan::Create;
    };
    if source.value == dest.value {
        if later(source.expires_at_ms, dest.expires_at_ms) {
            Plan::Extend
        } else {
            Plan::Unchanged
        }
    } else if later(dest.expires_at_ms, source.expires_at_ms) {
        Plan::DestinationNewer
    } else {
        Plan::Replace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(value: &str, expires_at_ms: Option<u64>) -> Observed {
        Observed {
            value: value.as_bytes().to_vec(),
            expires_at_ms,
        }
    }

    #[test]
    fn absent_is_created() {
        assert_eq!(decide(&o("a", Some(5)), None), Plan::Create);
        assert_eq!(decide(&o("a", None), None), Plan::Create);
    }

    #[test]
    fn the_same_copy_is_left_alone_within_the_margin() {
        let s = o("a", Some(60_000));
        assert_eq!(decide(&s, Some(&o("a", Some(60_000)))), Plan::Unchanged);
        assert_eq!(decide(&s, Some(&o("a", Some(59_200)))), Plan::Unchanged);
        assert_eq!(decide(&s, Some(&o("a", Some(70_000)))), Plan::Unchanged);
        assert_eq!(decide(&s, Some(&o("a", None))), Plan::Unchanged);
        assert_eq!(decide(&o("a", None), Some(&o("a", None))), Plan::Unchanged);
    }

    #[test]
    fn a_touch_on_the_source_moves_the_lifetime() {
        let s = o("a", Some(60_000));
        assert_eq!(decide(&s, Some(&o("a", Some(58_000)))), Plan::Extend);
        assert_eq!(decide(&o("a", None), Some(&o("a", Some(1)))), Plan::Extend);
    }

    #[test]
    fn a_changed_source_replaces_unless_the_destination_is_newer() {
        let s = o("new", Some(60_000));
        // written later on the source: replaces (also within the margin, either way)
        assert_eq!(decide(&s, Some(&o("old", Some(30_000)))), Plan::Replace);
        assert_eq!(decide(&s, Some(&o("old", Some(60_900)))), Plan::Replace);
        assert_eq!(decide(&s, Some(&o("old", None))), Plan::DestinationNewer);
        // written later on the destination (an app already uses it): kept
        assert_eq!(
            decide(&s, Some(&o("other", Some(90_000)))),
            Plan::DestinationNewer
        );
        assert_eq!(
            decide(&o("new", None), Some(&o("old", None))),
            Plan::Replace
        );
    }
}

//! Which keys `import` and `export` copy: Redis glob patterns (`*`, `?`, `[a-z]`, `\x`), matched
//! on the client with the door's own matcher. By default, the keys of the three session stores
//! whose apps the Redis-protocol door serves, as their sources name them:
//!
//! - connect-redis (express-session's store), `connect-redis` 9: `this.prefix = opts.prefix ==
//!   null ? "sess:" : opts.prefix`, the key `this.prefix + sid`;
//! - Flask-Session 0.8, `flask_session/defaults.py`: `SESSION_KEY_PREFIX = "session:"`;
//! - actix-session 0.11's `RedisSessionStore` (`src/storage/redis_rs.rs`): `cache_keygen` is
//!   `str::to_owned` — no prefix — over `generate_session_key()` (`src/storage/utils.rs`): 64
//!   characters of `Alphanumeric`. Its pattern is 64 × `[a-zA-Z0-9]`, which any other key of
//!   exactly 64 letters and digits matches too.

use sessionraft_web::resp::glob;

/// connect-redis's default key prefix, as a pattern.
pub const CONNECT_REDIS: &str = "sess:*";
/// Flask-Session's default key prefix, as a pattern.
pub const FLASK_SESSION: &str = "session:*";
/// Length of an actix-session key (`generate_session_key`).
const ACTIX_KEY_LEN: usize = 64;

/// actix-session's `RedisSessionStore` keys: 64 ASCII letters and digits, nothing else.
pub fn actix_session() -> String {
    "[a-zA-Z0-9]".repeat(ACTIX_KEY_LEN)
}

/// The default patterns: connect-redis, Flask-Session, actix-session.
pub fn defaults() -> Vec<String> {
    vec![
        CONNECT_REDIS.to_string(),
        FLASK_SESSION.to_string(),
        actix_session(),
    ]
}

/// A set of patterns; a key is copied when any of them matches it.
#[derive(Clone, Debug)]
pub struct Patterns(Vec<Vec<u8>>);

impl Patterns {
    /// `patterns`, or [`defaults`] when there are none.
    pub fn new(patterns: &[String]) -> Self {
        let list = if patterns.is_empty() {
            defaults()
        } else {
            patterns.to_vec()
        };
        Self(list.into_iter().map(String::into_bytes).collect())
    }

    /// Whether some pattern matches `key`.
    pub fn matches(&self, key: &[u8]) -> bool {
        self.0.iter().any(|p| glob::matches(p, key))
    }

    /// The patterns as written, for the summary (the actix one abbreviated).
    pub fn describe(&self) -> String {
        let actix = actix_session();
        self.0
            .iter()
            .map(|p| {
                if *p == actix.as_bytes() {
                    "[a-zA-Z0-9]×64 (actix-session)".to_string()
                } else {
                    String::from_utf8_lossy(p).into_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_match_the_three_stores_keys_only() {
        let p = Patterns::new(&[]);
        assert!(p.matches(b"sess:9Lx2k-abc"));
        assert!(p.matches(b"session:4f1c2d"));
        let actix = "aB3".repeat(21) + "x";
        assert_eq!(actix.len(), 64);
        assert!(p.matches(actix.as_bytes()));
        assert!(!p.matches(&actix.as_bytes()[..63]));
        assert!(!p.matches(format!("{actix}y").as_bytes()));
        assert!(!p.matches(format!("{}-", &actix[..63]).as_bytes()));
        assert!(!p.matches(b"user:1"));
        assert!(!p.matches(b"sess"));
    }

    #[test]
    fn given_patterns_replace_the_defaults() {
        let p = Patterns::new(&["app:*".to_string()]);
        assert!(p.matches(b"app:1"));
        assert!(!p.matches(b"sess:1"));
    }
}

//! `[session]`: the session cookie (name, `Secure`, key ring) and session lifetimes and limits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::secret::{deserialize_secrets, MIN_SECRET_BYTES};
use super::{ConfigError, Secret};

/// Smallest accepted `session.max_state_bytes`.
const MIN_STATE_BYTES: usize = 64;

/// Largest accepted `session.max_state_bytes` (1 MiB).
const MAX_STATE_BYTES: usize = 1_048_576;

/// Most cookie secrets in the ring.
const MAX_COOKIE_SECRETS: usize = 16;

/// `[session]`: session cookie and lifetime settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The cookie name: non-empty, RFC 6265 token characters only.
    pub cookie_name: String,
    /// A session unused for this long expires (> 0).
    pub idle_ttl: Duration,
    /// A session expires this long after creation, however active (>= `idle_ttl`).
    pub absolute_ttl: Duration,
    /// The largest serialized session state accepted, in bytes (64 ..= 1 MiB).
    pub max_state_bytes: usize,
    /// Whether the cookie carries the `Secure` attribute (and then the `__Host-` name prefix).
    pub cookie_secure: bool,
    /// The cookie key ring, newest first: the first encrypts, every one decrypts (a cookie under
    /// an older one is re-issued under the first). Empty: one key derived from the cluster
    /// secret.
    pub cookie_secrets: Vec<Secret>,
    /// At most this many live sessions per signed-in user (the oldest are evicted); 0 = no cap.
    pub max_sessions_per_user: u32,
}

/// `[session]` as written; missing keys take the defaults of [`RawSessionConfig::default`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSessionConfig {
    /// `cookie_name` (default `"id"`).
    pub cookie_name: String,
    /// `idle_ttl_secs` (default 1800).
    pub idle_ttl_secs: u64,
    /// `absolute_ttl_secs` (default 86400).
    pub absolute_ttl_secs: u64,
    /// `max_state_bytes` (default 16384).
    pub max_state_bytes: usize,
    /// `cookie_secure` (default `false`).
    pub cookie_secure: bool,
    /// `cookie_secrets`: the cookie key ring inline, newest first (default: none).
    #[serde(deserialize_with = "deserialize_secrets")]
    pub cookie_secrets: Option<Vec<Secret>>,
    /// `cookie_secrets_file`: a file with one cookie secret per line, newest first.
    pub cookie_secrets_file: Option<PathBuf>,
    /// `max_sessions_per_user` (default 0: no cap).
    pub max_sessions_per_user: u32,
}

impl Default for RawSessionConfig {
    fn default() -> Self {
        Self {
            cookie_name: "id".to_owned(),
            idle_ttl_secs: 1800,
            absolute_ttl_secs: 86_400,
            max_state_bytes: 16_384,
            cookie_secure: false,
            cookie_secrets: None,
            cookie_secrets_file: None,
            max_sessions_per_user: 0,
        }
    }
}

pub(super) fn validate_session(
    raw: RawSessionConfig,
    base_dir: &Path,
) -> Result<SessionConfig, ConfigError> {
    let RawSessionConfig {
        cookie_name,
        idle_ttl_secs,
        absolute_ttl_secs,
        max_state_bytes,
        cookie_secure,
        cookie_secrets,
        cookie_secrets_file,
        max_sessions_per_user,
    } = raw;
    if cookie_name.starts_with("__Host-") || cookie_name.starts_with("__Secure-") {
        return Err(ConfigError::invalid(
            "session.cookie_name",
            format!(
                "{cookie_name:?}: leave the prefix out; with cookie_secure = true the name \
                 gets the `__Host-` prefix by itself"
            ),
        ));
    }
    let cookie_secrets = resolve_cookie_secrets(cookie_secrets, cookie_secrets_file, base_dir)?;
    if cookie_name.is_empty() {
        return Err(ConfigError::invalid(
            "session.cookie_name",
            "must not be empty",
        ));
    }
    if let Some(c) = cookie_name.chars().find(|&c| !is_cookie_token_char(c)) {
        return Err(ConfigError::invalid(
            "session.cookie_name",
            format!(
                "{cookie_name:?} contains {c:?}, which is not allowed in a cookie name \
                 (only RFC 6265 token characters: visible ASCII except separators)"
            ),
        ));
    }
    if idle_ttl_secs == 0 {
        return Err(ConfigError::invalid(
            "session.idle_ttl_secs",
            "must be greater than 0",
        ));
    }
    if absolute_ttl_secs < idle_ttl_secs {
        return Err(ConfigError::invalid(
            "session.absolute_ttl_secs",
            format!("{absolute_ttl_secs} must be at least session.idle_ttl_secs ({idle_ttl_secs})"),
        ));
    }
    if !(MIN_STATE_BYTES..=MAX_STATE_BYTES).contains(&max_state_bytes) {
        return Err(ConfigError::invalid(
            "session.max_state_bytes",
            format!(
                "{max_state_bytes} is out of range; it must be between {MIN_STATE_BYTES} and \
                 {MAX_STATE_BYTES}"
            ),
        ));
    }
    Ok(SessionConfig {
        cookie_name,
        idle_ttl: Duration::from_secs(idle_ttl_secs),
        absolute_ttl: Duration::from_secs(absolute_ttl_secs),
        max_state_bytes,
        cookie_secure,
        cookie_secrets,
        max_sessions_per_user,
    })
}

/// The cookie key ring from at most one of `cookie_secrets` and `cookie_secrets_file`: each
/// secret at least 32 bytes, no duplicates, at most [`MAX_COOKIE_SECRETS`].
fn resolve_cookie_secrets(
    inline: Option<Vec<Secret>>,
    file: Option<PathBuf>,
    base_dir: &Path,
) -> Result<Vec<Secret>, ConfigError> {
    let (field, secrets) = match (inline, file) {
        (None, None) => return Ok(Vec::new()),
        (Some(v), None) => ("session.cookie_secrets", v),
        (None, Some(file)) => {
            let field = "session.cookie_secrets_file";
            let path = base_dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid(field, format!("cannot read {}: {e}", path.display()))
            })?;
            let secrets = text
                .lines()
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .map(|l| Secret(l.as_bytes().to_vec()))
                .collect();
            (field, secrets)
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                "session.cookie_secrets",
                "set at most one of `cookie_secrets` and `cookie_secrets_file`",
            ))
        }
    };
    if secrets.is_empty() || secrets.len() > MAX_COOKIE_SECRETS {
        return Err(ConfigError::invalid(
            field,
            format!(
                "{} secrets given; the ring holds 1 to {MAX_COOKIE_SECRETS} (newest first)",
                secrets.len()
            ),
        ));
    }
    for (i, s) in secrets.iter().enumerate() {
        if s.expose().len() < MIN_SECRET_BYTES {
            return Err(ConfigError::invalid(
                field,
                format!(
                    "secret #{} is {} bytes long, but at least {MIN_SECRET_BYTES} bytes are required",
                    i + 1,
                    s.expose().len()
                ),
            ));
        }
        if secrets[..i].iter().any(|o| o.expose() == s.expose()) {
            return Err(ConfigError::invalid(
                field,
                format!("secret #{} repeats an earlier one", i + 1),
            ));
        }
    }
    Ok(secrets)
}

/// An RFC 6265 `token` character (RFC 2616): visible ASCII except separators.
fn is_cookie_token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c)
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::config::test_support::*;
    use crate::config::Secret;

    #[test]
    fn cookie_key_ring_and_user_cap_are_checked() {
        // extra keys in VALID's [session] table
        let session = |extra: &str| {
            VALID.replace(
                "cookie_secure = true\n",
                &format!("cookie_secure = true\n{extra}"),
            )
        };
        let a = "a".repeat(32);
        let b = "b".repeat(40);
        let ring = session(&format!(
            "cookie_secrets = [\"{a}\", \"{b}\"]\nmax_sessions_per_user = 3\n"
        ));
        let s = parse(&ring, base()).unwrap().session;
        let got: Vec<&[u8]> = s.cookie_secrets.iter().map(Secret::expose).collect();
        assert_eq!(got, vec![a.as_bytes(), b.as_bytes()]);
        assert_eq!(s.max_sessions_per_user, 3);
        assert!(
            !format!("{s:?}").contains(&a),
            "Debug shows a cookie secret"
        );
        let short = session(&format!("cookie_secrets = [\"{a}\", \"short\"]\n"));
        assert_rejected(
            &short,
            &["session.cookie_secrets", "secret #2", "at least 32"],
        );
        let dup = session(&format!("cookie_secrets = [\"{a}\", \"{a}\"]\n"));
        assert_rejected(&dup, &["session.cookie_secrets", "repeats"]);
        let empty = session("cookie_secrets = []\n");
        assert_rejected(&empty, &["session.cookie_secrets", "1 to 16"]);
        let both = session(&format!(
            "cookie_secrets = [\"{a}\"]\ncookie_secrets_file = \"x\"\n"
        ));
        assert_rejected(&both, &["at most one"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ring"),
            format!("# newest first\n{b}\n\n{a}\n"),
        )
        .unwrap();
        let file = session("cookie_secrets_file = \"ring\"\n");
        let s = parse(&file, dir.path()).unwrap().session;
        let got: Vec<&[u8]> = s.cookie_secrets.iter().map(Secret::expose).collect();
        assert_eq!(got, vec![b.as_bytes(), a.as_bytes()]);
        let missing = session("cookie_secrets_file = \"nope\"\n");
        assert_rejected(&missing, &["session.cookie_secrets_file", "cannot read"]);
        let prefixed = VALID.replace("cookie_name = \"sid\"", "cookie_name = \"__Host-id\"");
        assert_rejected(&prefixed, &["session.cookie_name", "prefix"]);
    }

    #[test]
    fn session_limits_are_checked() {
        assert_rejected(
            &edit("idle_ttl_secs = 60", "idle_ttl_secs = 0"),
            &["session.idle_ttl_secs", "greater than 0"],
        );
        assert_rejected(
            &edit("absolute_ttl_secs = 600", "absolute_ttl_secs = 30"),
            &["session.absolute_ttl_secs", "session.idle_ttl_secs"],
        );
        assert_rejected(
            &edit("max_state_bytes = 4096", "max_state_bytes = 10"),
            &["session.max_state_bytes"],
        );
        assert_rejected(
            &edit("cookie_name = \"sid\"", "cookie_name = \"my sid\""),
            &["session.cookie_name", "RFC 6265"],
        );
        assert_rejected(
            &edit("cookie_name = \"sid\"", "cookie_name = \"\""),
            &["session.cookie_name", "must not be empty"],
        );
    }
}

//! [`Secret`]: bytes that are never printed (the cluster secret, the admin token, cookie secrets,
//! the RESP password), and how a secret is read: inline, from a file or from the environment,
//! checked for length without ever showing it.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use super::ConfigError;

/// Minimum length of the cluster secret, in bytes.
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// Minimum length of the admin token, in bytes.
pub(crate) const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// Secret bytes (the cluster secret, the admin token).
///
/// `Debug` prints `Secret(***)`, and there is no `Display`: the bytes are only reachable
/// through [`Secret::expose`], which makes every use visible.
#[derive(Clone)]
pub struct Secret(pub(super) Vec<u8>);

impl Secret {
    /// The secret bytes. Never log or display them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// Constant-time in the contents (only the lengths may leak), so that a comparison of secrets
/// never becomes a timing oracle, wherever it is used.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Deserializes a TOML string straight into a [`Secret`].
pub(crate) fn deserialize_secret<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<Secret>, D::Error> {
    String::deserialize(de).map(|s| Some(Secret(s.into_bytes())))
}

/// Deserializes a TOML array of strings into [`Secret`]s.
pub(crate) fn deserialize_secrets<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<Vec<Secret>>, D::Error> {
    Vec::<String>::deserialize(de)
        .map(|v| Some(v.into_iter().map(|s| Secret(s.into_bytes())).collect()))
}

/// The reason for a "set exactly one of" error, given which of the forms were set.
pub(super) fn exactly_one_reason(forms: &str, given: &[Option<&str>]) -> String {
    let given: Vec<&str> = given.iter().flatten().copied().collect();
    if given.is_empty() {
        format!("is missing: set exactly one of {forms}")
    } else {
        format!(
            "set exactly one of {forms}, but {} are set",
            given.join(" and ")
        )
    }
}

/// Checks that `value` is at least `min` bytes long, without ever printing it.
pub(crate) fn check_length(
    field: &str,
    what: &str,
    value: Secret,
    min: usize,
) -> Result<Secret, ConfigError> {
    let len = value.expose().len();
    if len < min {
        return Err(ConfigError::invalid(
            field,
            format!("{what} is {len} bytes long, but at least {min} bytes are required"),
        ));
    }
    Ok(value)
}

/// Reads a secret file; one trailing newline (`\n` or `\r\n`) is not part of the secret.
pub(super) fn read_secret_file(field: &str, path: &Path) -> Result<Secret, ConfigError> {
    let mut bytes = std::fs::read(path).map_err(|e| {
        ConfigError::invalid(
            field,
            format!("cannot read secret file {}: {e}", path.display()),
        )
    })?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Ok(Secret(bytes))
}

/// Reads a secret from the environment variable `var`, which must be set and non-empty.
pub(crate) fn read_secret_env(field: &str, var: &str) -> Result<Secret, ConfigError> {
    if var.is_empty() || var.contains(['=', '\0']) {
        return Err(ConfigError::invalid(
            field,
            format!("{var:?} is not a valid environment variable name"),
        ));
    }
    match std::env::var(var) {
        Ok(value) if value.is_empty() => Err(ConfigError::invalid(
            field,
            format!("environment variable {var} is empty"),
        )),
        Ok(value) => Ok(Secret(value.into_bytes())),
        Err(std::env::VarError::NotPresent) => Err(ConfigError::invalid(
            field,
            format!("environment variable {var} is not set"),
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::invalid(
            field,
            format!("environment variable {var} is not valid UTF-8"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;
    use crate::config::{parse, RawConfig};

    #[test]
    fn secret_debug_does_not_reveal_it() {
        let secret = Secret(b"super-secret-value".to_vec());
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        let config = parse(VALID, base()).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("0123456789abcdef0123456789abcdef-test"));
        assert!(!debug.contains("admin-token-0123456789"));
        let raw: RawConfig = toml::from_str(VALID).unwrap();
        assert!(!format!("{raw:?}").contains("admin-token-0123456789"));
    }
}

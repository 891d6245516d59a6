//! `[cluster]`: the cluster's name, its shared secret and the admin token.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::secret::{
    check_length, deserialize_secret, exactly_one_reason, read_secret_env, read_secret_file,
    MIN_ADMIN_TOKEN_BYTES, MIN_SECRET_BYTES,
};
use super::{ConfigError, Secret};

/// `[cluster]`: cluster identity and secrets.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The cluster name (non-empty); also the openraft cluster name.
    pub name: String,
    /// The shared cluster secret, at least 32 bytes.
    pub secret: Secret,
    /// The admin API bearer token, at least 16 bytes.
    pub admin_token: Secret,
}

/// `[cluster]` as written. Secrets are held as [`Secret`] so that `Debug` never shows them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClusterConfig {
    /// `name`: the cluster name.
    pub name: String,
    /// `secret`: the cluster secret, inline.
    #[serde(default, deserialize_with = "deserialize_secret")]
    pub secret: Option<Secret>,
    /// `secret_file`: a file holding the cluster secret.
    pub secret_file: Option<PathBuf>,
    /// `secret_env`: an environment variable holding the cluster secret.
    pub secret_env: Option<String>,
    /// `admin_token`: the admin API token, inline.
    #[serde(default, deserialize_with = "deserialize_secret")]
    pub admin_token: Option<Secret>,
    /// `admin_token_env`: an environment variable holding the admin API token.
    pub admin_token_env: Option<String>,
}

pub(super) fn validate_cluster(
    raw: RawClusterConfig,
    base_dir: &Path,
) -> Result<ClusterConfig, ConfigError> {
    let RawClusterConfig {
        name,
        secret,
        secret_file,
        secret_env,
        admin_token,
        admin_token_env,
    } = raw;
    if name.trim().is_empty() {
        return Err(ConfigError::invalid("cluster.name", "must not be empty"));
    }
    let secret = resolve_secret(secret, secret_file, secret_env, base_dir)?;
    let admin_token = resolve_admin_token(admin_token, admin_token_env)?;
    Ok(ClusterConfig {
        name,
        secret,
        admin_token,
    })
}

/// The cluster secret from exactly one of `secret`, `secret_file`, `secret_env`.
fn resolve_secret(
    secret: Option<Secret>,
    file: Option<PathBuf>,
    env: Option<String>,
    base_dir: &Path,
) -> Result<Secret, ConfigError> {
    let (field, what, value) = match (secret, file, env) {
        (Some(secret), None, None) => ("cluster.secret", "the secret".to_owned(), secret),
        (None, Some(file), None) => {
            let path = base_dir.join(file);
            let value = read_secret_file("cluster.secret_file", &path)?;
            let what = format!("the secret in {}", path.display());
            ("cluster.secret_file", what, value)
        }
        (None, None, Some(var)) => {
            let value = read_secret_env("cluster.secret_env", &var)?;
            let what = format!("the value of environment variable {var}");
            ("cluster.secret_env", what, value)
        }
        (secret, file, env) => {
            let given = [
                secret.is_some().then_some("`secret`"),
                file.is_some().then_some("`secret_file`"),
                env.is_some().then_some("`secret_env`"),
            ];
            return Err(ConfigError::invalid(
                "cluster.secret",
                exactly_one_reason("`secret`, `secret_file` or `secret_env`", &given),
            ));
        }
    };
    check_length(field, &what, value, MIN_SECRET_BYTES)
}

/// The admin token from exactly one of `admin_token`, `admin_token_env`.
fn resolve_admin_token(token: Option<Secret>, env: Option<String>) -> Result<Secret, ConfigError> {
    let (field, what, value) = match (token, env) {
        (Some(token), None) => ("cluster.admin_token", "the admin token".to_owned(), token),
        (None, Some(var)) => {
            let value = read_secret_env("cluster.admin_token_env", &var)?;
            let what = format!("the value of environment variable {var}");
            ("cluster.admin_token_env", what, value)
        }
        (token, env) => {
            let given = [
                token.is_some().then_some("`admin_token`"),
                env.is_some().then_some("`admin_token_env`"),
            ];
            return Err(ConfigError::invalid(
                "cluster.admin_token",
                exactly_one_reason("`admin_token` or `admin_token_env`", &given),
            ));
        }
    };
    check_length(field, &what, value, MIN_ADMIN_TOKEN_BYTES)
}

#[cfg(test)]
mod tests {
    use crate::config::load;
    use crate::config::test_support::*;

    #[test]
    fn short_secret_is_rejected_without_printing_it() {
        let message = error(&edit(
            "secret = \"0123456789abcdef0123456789abcdef-test\"",
            "secret = \"too-short-secret\"",
        ));
        assert!(message.contains("cluster.secret"), "{message}");
        assert!(message.contains("16 bytes"), "{message}");
        assert!(message.contains("at least 32"), "{message}");
        assert!(!message.contains("too-short-secret"), "{message}");
    }

    #[test]
    fn short_admin_token_is_rejected() {
        let message = error(&edit("\"admin-token-0123456789\"", "\"tiny\""));
        assert!(message.contains("cluster.admin_token"), "{message}");
        assert!(message.contains("at least 16"), "{message}");
        assert!(!message.contains("tiny"), "{message}");
    }

    #[test]
    fn two_secret_forms_are_rejected() {
        assert_rejected(
            &edit("admin_token =", "secret_env = \"SOME_VAR\"\nadmin_token ="),
            &["cluster.secret", "exactly one", "`secret` and `secret_env`"],
        );
        assert_rejected(
            &edit(
                "admin_token =",
                "admin_token_env = \"SOME_VAR\"\nadmin_token =",
            ),
            &["cluster.admin_token", "`admin_token` and `admin_token_env`"],
        );
    }

    #[test]
    fn missing_secret_is_rejected() {
        let text = edit("secret = \"0123456789abcdef0123456789abcdef-test\"\n", "");
        assert_rejected(&text, &["cluster.secret", "is missing"]);
        let text = edit("admin_token = \"admin-token-0123456789\"\n", "");
        assert_rejected(&text, &["cluster.admin_token", "is missing"]);
    }

    #[test]
    fn missing_secret_env_variable_is_rejected() {
        let var = "SESSIONRAFT_TEST_SURELY_UNSET_SECRET_VAR";
        assert!(std::env::var_os(var).is_none());
        let text = edit(
            "secret = \"0123456789abcdef0123456789abcdef-test\"",
            &format!("secret_env = \"{var}\""),
        );
        assert_rejected(&text, &["cluster.secret_env", var, "not set"]);
        let text = edit(
            "admin_token = \"admin-token-0123456789\"",
            &format!("admin_token_env = \"{var}\""),
        );
        assert_rejected(&text, &["cluster.admin_token_env", var, "not set"]);
    }

    #[test]
    fn unreadable_secret_file_is_rejected() {
        let text = edit(
            "secret = \"0123456789abcdef0123456789abcdef-test\"",
            "secret_file = \"no/such/secret\"",
        );
        assert_rejected(&text, &["cluster.secret_file", "/base/no/such/secret"]);
    }

    #[test]
    fn secret_file_resolves_against_base_dir() {
        let dir =
            std::env::temp_dir().join(format!("sessionraft-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = "file-secret-0123456789abcdef0123456789";
        std::fs::write(dir.join("secret.txt"), format!("{secret}\n")).unwrap();
        let text = edit(
            "secret = \"0123456789abcdef0123456789abcdef-test\"",
            "secret_file = \"secret.txt\"",
        );
        let config_path = dir.join("cluster.toml");
        std::fs::write(&config_path, &text).unwrap();
        let result = load(Some(&config_path));
        std::fs::remove_dir_all(&dir).unwrap();
        let config = result.unwrap();
        assert_eq!(config.cluster.secret.expose(), secret.as_bytes());
        assert_eq!(config.node(1).unwrap().data_dir, dir.join("data/n1"));
    }
}

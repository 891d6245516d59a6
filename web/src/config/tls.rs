//! `[tls]`: HTTPS for every listener and client: where the certificates and the CA are, and
//! reading them (when a node starts or a CLI command connects, not when the file is parsed).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// `[tls]`: every node serves HTTPS only (client and Raft listeners), peers and the CLI connect
/// with `https://` and trust the CA `ca` alone. Only the paths are checked when the file is
/// parsed; the files are read by [`TlsConfig::read_ca`] and [`TlsConfig::read_node_identity`]
/// (when a node starts, or a CLI command connects), so that `sessionraft nodes` works before the
/// certificates exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `cert_dir`: holds `node<ID>.crt` (PEM chain, leaf first) and `node<ID>.key` (PEM private
    /// key) of each node; resolved against the base directory.
    pub cert_dir: PathBuf,
    /// `ca`: the PEM certificate(s) of the CA that signed every node's certificate; resolved
    /// against the base directory.
    pub ca: PathBuf,
}

/// A node's TLS certificate chain (leaf first) and private key, read from `tls.cert_dir`.
pub struct NodeIdentity {
    /// The certificate chain, leaf first (at least one certificate).
    pub chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The private key of the leaf certificate.
    pub key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl TlsConfig {
    /// `cert_dir/node<id>.crt`.
    pub fn cert_file(&self, id: u64) -> PathBuf {
        self.cert_dir.join(format!("node{id}.crt"))
    }

    /// `cert_dir/node<id>.key`.
    pub fn key_file(&self, id: u64) -> PathBuf {
        self.cert_dir.join(format!("node{id}.key"))
    }

    /// The PEM text of `ca`, checked to hold at least one certificate, all of them parsable.
    ///
    /// # Errors
    /// The file cannot be read or holds no (or a malformed) certificate; the error names
    /// `tls.ca` and the file.
    pub fn read_ca(&self) -> Result<Vec<u8>, ConfigError> {
        let field = "tls.ca";
        let pem = read_tls_file(field, &self.ca)?;
        let certs = parse_certs(field, &self.ca, &pem)?;
        if certs.is_empty() {
            return Err(ConfigError::invalid(
                field,
                format!("{} holds no PEM certificate", self.ca.display()),
            ));
        }
        Ok(pem)
    }

    /// Node `id`'s certificate chain and key: `cert_dir/node<id>.crt` and `node<id>.key`.
    ///
    /// # Errors
    /// `cert_dir` is not a directory, or a file cannot be read or holds no certificate / private
    /// key; the error names `tls.cert_dir` and the file.
    pub fn read_node_identity(&self, id: u64) -> Result<NodeIdentity, ConfigError> {
        use rustls::pki_types::pem::PemObject;
        let field = "tls.cert_dir";
        if !self.cert_dir.is_dir() {
            return Err(ConfigError::invalid(
                field,
                format!(
                    "{} is not a directory (make the certificates with scripts/dev-certs.sh)",
                    self.cert_dir.display()
                ),
            ));
        }
        let (cert_file, key_file) = (self.cert_file(id), self.key_file(id));
        let chain = parse_certs(field, &cert_file, &read_tls_file(field, &cert_file)?)?;
        if chain.is_empty() {
            return Err(ConfigError::invalid(
                field,
                format!("{} holds no PEM certificate", cert_file.display()),
            ));
        }
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(&read_tls_file(field, &key_file)?)
                .map_err(|e| {
                    ConfigError::invalid(
                        field,
                        format!(
                            "{} holds no usable PEM private key: {e}",
                            key_file.display()
                        ),
                    )
                })?;
        Ok(NodeIdentity { chain, key })
    }
}

/// `[tls]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsConfig {
    /// `cert_dir`: the directory of `node<ID>.crt` and `node<ID>.key`.
    pub cert_dir: String,
    /// `ca`: the CA certificate (PEM) every node and CLI trusts.
    pub ca: String,
}

/// `[tls]`: both paths non-empty, resolved against `base_dir` (like `data_dir`). The files are
/// read later (see [`TlsConfig`]).
pub(super) fn validate_tls(
    raw: Option<RawTlsConfig>,
    base_dir: &Path,
) -> Result<Option<TlsConfig>, ConfigError> {
    let Some(RawTlsConfig { cert_dir, ca }) = raw else {
        return Ok(None);
    };
    for (field, value) in [("tls.cert_dir", &cert_dir), ("tls.ca", &ca)] {
        if value.trim().is_empty() {
            return Err(ConfigError::invalid(field, "must not be empty"));
        }
    }
    Ok(Some(TlsConfig {
        cert_dir: base_dir.join(cert_dir),
        ca: base_dir.join(ca),
    }))
}

/// Reads a `[tls]` file; the error names `field` and the path.
fn read_tls_file(field: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| {
        ConfigError::invalid(
            field,
            format!(
                "cannot read {}: {e} (make the certificates with scripts/dev-certs.sh)",
                path.display()
            ),
        )
    })
}

/// Every PEM `CERTIFICATE` in `pem` (other blocks are skipped); a malformed one is an error.
fn parse_certs(
    field: &str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ConfigError> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ConfigError::invalid(field, format!("{} is not valid PEM: {e}", path.display()))
        })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::config::test_support::*;
    use crate::config::{load, parse};

    #[test]
    fn tls_is_optional_and_paths_resolve_against_base_dir() {
        assert_eq!(parse(VALID, base()).unwrap().tls, None);
        let text = format!("{VALID}\n[tls]\ncert_dir = \"certs\"\nca = \"/etc/pki/ca.crt\"\n");
        assert_eq!(
            parse(&text, base()).unwrap().tls,
            Some(TlsConfig {
                cert_dir: PathBuf::from("/base/certs"),
                ca: PathBuf::from("/etc/pki/ca.crt"),
            })
        );
        let tls = parse(&text, base()).unwrap().tls.unwrap();
        assert_eq!(tls.cert_file(2), Path::new("/base/certs/node2.crt"));
        assert_eq!(tls.key_file(2), Path::new("/base/certs/node2.key"));
    }

    #[test]
    fn tls_keys_are_checked() {
        let missing_ca = format!("{VALID}\n[tls]\ncert_dir = \"certs\"\n");
        assert_rejected(&missing_ca, &["tls", "missing field `ca`"]);
        let missing_dir = format!("{VALID}\n[tls]\nca = \"ca.crt\"\n");
        assert_rejected(&missing_dir, &["tls", "missing field `cert_dir`"]);
        let empty = format!("{VALID}\n[tls]\ncert_dir = \"\"\nca = \"ca.crt\"\n");
        assert_rejected(&empty, &["tls.cert_dir", "must not be empty"]);
        let unknown = format!("{VALID}\n[tls]\ncert_dir = \"c\"\nca = \"ca.crt\"\ncert = \"x\"\n");
        assert_rejected(&unknown, &["tls.cert", "unknown field"]);
    }

    #[test]
    fn missing_or_bad_tls_files_are_reported_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{VALID}\n[tls]\ncert_dir = \"certs\"\nca = \"certs/ca.crt\"\n");
        let config_path = dir.path().join("cluster.toml");
        std::fs::write(&config_path, &text).unwrap();
        // Parsing does not need the files (`sessionraft nodes` runs before they exist) ...
        let tls = load(Some(&config_path)).unwrap().tls.unwrap();
        // ... reading them names the field and the path.
        let message = tls.read_ca().err().unwrap().to_string();
        assert!(message.contains("tls.ca"), "{message}");
        assert!(message.contains("certs/ca.crt"), "{message}");
        assert!(message.contains("cannot read"), "{message}");
        let message = tls.read_node_identity(1).err().unwrap().to_string();
        assert!(message.contains("tls.cert_dir"), "{message}");
        assert!(message.contains("not a directory"), "{message}");

        std::fs::create_dir(dir.path().join("certs")).unwrap();
        std::fs::write(dir.path().join("certs/ca.crt"), "not a certificate\n").unwrap();
        let message = tls.read_ca().err().unwrap().to_string();
        assert!(message.contains("tls.ca"), "{message}");
        assert!(message.contains("holds no PEM certificate"), "{message}");
        let message = tls.read_node_identity(1).err().unwrap().to_string();
        assert!(message.contains("tls.cert_dir"), "{message}");
        assert!(message.contains("node1.crt"), "{message}");

        let garbled = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join("certs/node1.crt"), garbled).unwrap();
        let message = tls.read_node_identity(1).err().unwrap().to_string();
        assert!(message.contains("tls.cert_dir"), "{message}");
        assert!(message.contains("not valid PEM"), "{message}");
    }
}

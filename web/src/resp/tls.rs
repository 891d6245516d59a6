//! The door over TLS (`[tls]` in `cluster.toml`): the rustls server configuration of a node's
//! Redis-protocol listener.
//!
//! The same certificate chain and key as the node's HTTP listeners (`tls.cert_dir/node<ID>.crt`
//! and `.key`), ring as the crypto provider (as everywhere in sessionraft: the workspace links
//! aws-lc too, through a test dependency), TLS 1.2 and 1.3. Client certificates as Redis's
//! `tls-auth-clients` (`[resp] tls_auth_clients`), verified against the cluster CA `tls.ca`.
//!
//! Session resumption is rustls's default: an in-memory cache of 256 sessions per node (TLS 1.2
//! session ids; TLS 1.3 stateful tickets, two sent after each full handshake), so a client that
//! reconnects to the same node skips the certificate exchange and its signatures.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::settings::TlsAuthClients;
use crate::config::{ConfigError, NodeIdentity, TlsConfig};

/// The door's TLS: its rustls configuration and whether it asks clients for certificates.
#[derive(Clone, Debug)]
pub struct DoorTls {
    pub config: Arc<rustls::ServerConfig>,
    pub client_auth: TlsAuthClients,
}

/// The door's rustls configuration for node `id`: its certificate from `tls.cert_dir`, and a
/// client-certificate verifier on `tls.ca` unless `auth` is [`TlsAuthClients::No`]. ALPN is not
/// negotiated (Redis clients send none).
///
/// # Errors
/// A file cannot be read or parsed, or the certificate and key do not belong together; the
/// error names `tls.ca` or `tls.cert_dir` and the file.
pub fn server_config(
    tls: &TlsConfig,
    id: u64,
    auth: TlsAuthClients,
) -> Result<DoorTls, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let NodeIdentity { chain, key } = tls.read_node_identity(id)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::invalid("tls", format!("rustls: {e}")))?;
    let builder = match auth {
        TlsAuthClients::No => builder.with_no_client_auth(),
        TlsAuthClients::Optional | TlsAuthClients::Yes => {
            let field = "tls.ca";
            let pem = tls.read_ca()?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    ConfigError::invalid(field, format!("{}: {e}", tls.ca.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    ConfigError::invalid(
                        field,
                        format!("{}: not a usable CA certificate: {e}", tls.ca.display()),
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == TlsAuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| {
                ConfigError::invalid(
                    field,
                    format!(
                        "{}: cannot verify client certificates with it \
                         (resp.tls_auth_clients): {e}",
                        tls.ca.display()
                    ),
                )
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        ConfigError::invalid(
            "tls.cert_dir",
            format!(
                "{} and {} are not a usable certificate and key: {e}",
                tls.cert_file(id).display(),
                tls.key_file(id).display()
            ),
        )
    })?;
    Ok(DoorTls {
        config: Arc::new(config),
        client_auth: auth,
    })
}

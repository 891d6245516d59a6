//! TLS (`[tls]` in `cluster.toml`): the rustls configuration of a node's listeners and the
//! HTTPS clients of the CLI. Without `[tls]` everything stays plain HTTP.
//!
//! One CA (`tls.ca`) signs the certificate of every node (`tls.cert_dir/node<ID>.crt`, with IP
//! SANs: nodes are addressed by `IP:PORT`). Peers and the CLI trust that CA alone, never the
//! system roots. `scripts/dev-certs.sh` makes a development CA and the node certificates.
//!
//! The Redis-protocol door serves the same certificate over TLS; its rustls configuration (with
//! the optional client-certificate verifier of `[resp] tls_auth_clients`) is made where the
//! door is started, by `sessionraft_web::resp::tls::server_config`, so that a node embedded
//! without this binary gets a TLS door from `[tls]` too. [`server_config`] checks the
//! certificate for the door's host as well.
//!
//! The crypto provider is ring, chosen explicitly: a workspace build also links aws-lc (through
//! the browser tests' fantoccini), and with two providers rustls has no default of its own.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::RootCertStore;

use crate::config::{Config, NodeConfig, NodeIdentity, TlsConfig};

/// `https` when the configuration has `[tls]`, else `http`.
pub fn scheme(cfg: &Config) -> &'static str {
    if cfg.tls.is_some() {
        "https"
    } else {
        "http"
    }
}

/// `{scheme}://{addr}{path}` for a node address of the configuration.
pub fn url(cfg: &Config, addr: impl Display, path: &str) -> String {
    format!("{}://{addr}{path}", scheme(cfg))
}

/// A client builder for the CLI: with `[tls]` it speaks HTTPS (rustls) and trusts the CA of
/// `tls.ca` alone; without, a plain builder.
///
/// # Errors
/// When `tls.ca` cannot be read or holds no certificate (the error names `tls.ca`).
pub fn client_builder(cfg: &Config) -> anyhow::Result<reqwest::ClientBuilder> {
    let builder = reqwest::Client::builder();
    let Some(tls) = &cfg.tls else {
        return Ok(builder);
    };
    let ca = tls.read_ca()?;
    sessionraft_raft::transport::network::trust_only(builder, &ca)
        .with_context(|| format!("tls.ca: {} is not usable", tls.ca.display()))
}

/// Installs ring as the process-wide default crypto provider, for code that asks rustls for
/// "the default" (ambiguous when a build links several providers). One installed earlier is
/// kept.
pub fn install_crypto_provider() {
    // Err only when a provider is already installed: that one stays, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls server configuration of node `me`'s listeners (client and Raft): its certificate
/// chain and key from `tls.cert_dir`. `None` without `[tls]`.
///
/// Checked here, at startup, so that a bad file stops the node with a clear error instead of
/// every peer failing its handshakes later: the CA parses, the certificate and key parse and
/// belong together, and the certificate is signed by the CA and valid now for the node's IPs.
///
/// # Errors
/// A missing or unparsable file, a key that does not match, or a certificate the peers would
/// refuse; the error names `tls.ca` or `tls.cert_dir` and the file.
pub fn server_config(
    cfg: &Config,
    me: &NodeConfig,
) -> anyhow::Result<Option<rustls::ServerConfig>> {
    let Some(tls) = &cfg.tls else {
        return Ok(None);
    };
    install_crypto_provider();
    let ca = tls.read_ca()?;
    let NodeIdentity { chain, key } = tls.read_node_identity(me.id)?;
    verify_node_cert(tls, &ca, &chain, me)?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("rustls: no usable protocol version")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "tls.cert_dir: {} and {} are not a usable certificate and key",
                tls.cert_file(me.id).display(),
                tls.key_file(me.id).display()
            )
        })?;
    Ok(Some(config))
}

/// Verifies `chain` the way a peer, the CLI or a Redis client will: against the CA alone, for
/// each host the node is reached at (its advertised HTTP, Raft and Redis-protocol addresses: IPs
/// as IP SANs, names as DNS SANs; an unspecified address such as `0.0.0.0` is not one a client
/// dials). The door serves the same certificate (`sessionraft_web::resp::tls`), so a
/// `rediss://` client that verifies the host it dials needs the `resp_addr` host named too.
fn verify_node_cert(
    tls: &TlsConfig,
    ca_pem: &[u8],
    chain: &[CertificateDer<'static>],
    me: &NodeConfig,
) -> anyhow::Result<()> {
    let ca_field = || format!("tls.ca: {}", tls.ca.display());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.with_context(|| format!("{}: not a PEM certificate", ca_field()))?;
        roots
            .add(cert)
            .with_context(|| format!("{}: not a usable CA certificate", ca_field()))?;
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .with_context(ca_field)?;
    let Some((leaf, intermediates)) = chain.split_first() else {
        anyhow::bail!(
            "tls.cert_dir: {} holds no certificate",
            tls.cert_file(me.id).display()
        );
    };
    // Every host the node is reached at: IPs as IP SANs, names as DNS SANs.
    let hosts: BTreeSet<String> = [
        Some(&me.http_addr),
        Some(&me.raft_addr),
        me.resp_addr.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter(|a| !a.ip().is_some_and(|ip: IpAddr| ip.is_unspecified()))
    .map(|a| a.ip().map_or_else(|| a.host(), |ip| ip.to_string()))
    .collect();
    for host in hosts {
        let (name, san) = match host.parse::<IpAddr>() {
            Ok(ip) => (ServerName::IpAddress(ip.into()), "an IP SAN"),
            Err(_) => (
                ServerName::try_from(host.clone())
                    .with_context(|| format!("{host} is not a DNS name a certificate can carry"))?,
                "a DNS SAN",
            ),
        };
        verifier
            .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
            .with_context(|| {
                format!(
                    "tls.cert_dir: {} would be refused by peers and clients for node {} at \
                     {host} (it must be signed by tls.ca, be valid now and name {host} as {san}; \
                     scripts/dev-certs.sh makes such certificates)",
                    tls.cert_file(me.id).display(),
                    me.id
                )
            })?;
    }
    Ok(())
}

//! Whom the measurement tools trust over HTTPS: `sessionraft load`, `check`, `bench` and
//! `staleness` take base URLs, `https://` ones included, and verify every node certificate
//! against one CA — `--ca FILE`, else the `[tls] ca` of `--config` (or `$SESSIONRAFT_CONFIG`).
//! Never the system roots, never "accept invalid".
//!
//! The CA is set once per process by [`init`] (the CLI's `main`), before any client is built;
//! every client of these tools starts from [`builder`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;

/// The CA the tools' clients trust, with the file it came from.
struct Trusted {
    certs: Vec<reqwest::Certificate>,
    source: String,
}

static TRUSTED: OnceLock<Trusted> = OnceLock::new();

/// Decides the CA of this process from `--ca` and `--config` and checks it against `targets`.
///
/// # Errors
/// An unreadable or certificate-less CA file, an unloadable configuration, or an `https://`
/// target with no CA to trust.
pub fn init(ca: Option<&Path>, config: Option<&Path>, targets: &[String]) -> anyhow::Result<()> {
    let https: Vec<&String> = targets
        .iter()
        .filter(|t| t.starts_with("https://"))
        .collect();
    let (pem, source) = if let Some(ca) = ca {
        let pem =
            std::fs::read(ca).with_context(|| format!("--ca {}: unreadable", ca.display()))?;
        (Some(pem), format!("--ca {}", ca.display()))
    } else {
        // $SESSIONRAFT_CONFIG only when it is needed: plain http:// runs never read it.
        let config: Option<PathBuf> = config.map(Path::to_path_buf).or_else(|| {
            std::env::var_os(crate::config::CONFIG_FILE_ENV)
                .filter(|p| !p.is_empty() && !https.is_empty())
                .map(PathBuf::from)
        });
        match config {
            Some(path) => {
                let cfg = crate::config::load(Some(&path))
                    .with_context(|| format!("--config {}", path.display()))?;
                match &cfg.tls {
                    Some(tls) => (
                        Some(tls.read_ca()?),
                        format!("the [tls] ca of {} ({})", path.display(), tls.ca.display()),
                    ),
                    None => (None, String::new()),
                }
            }
            None => (None, String::new()),
        }
    };
    let Some(pem) = pem else {
        if let Some(t) = https.first() {
            anyhow::bail!(
                "{t} is an https:// target but there is no CA to trust: pass --ca FILE (the \
                 CA that signed the node certificates, the cluster's [tls] ca) or --config with \
                 a [tls] section"
            );
        }
        return Ok(());
    };
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("{source}: not PEM certificates"))?;
    anyhow::ensure!(!certs.is_empty(), "{source}: holds no PEM certificate");
    let _ = TRUSTED.set(Trusted { certs, source });
    Ok(())
}

/// A client builder that verifies `https://` against the CA of [`init`] alone (rustls, no
/// system roots). Without a CA, a plain builder (plain `http://` targets only: [`init`]
/// refused https ones).
pub fn builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    let Some(t) = TRUSTED.get() else {
        return builder;
    };
    let mut builder = builder.use_rustls_tls().tls_built_in_root_certs(false);
    for c in &t.certs {
        builder = builder.add_root_certificate(c.clone());
    }
    builder
}

/// The TLS failure behind a request error, named (`invalid peer certificate: UnknownIssuer`),
/// or `None` when the error is not a TLS one.
pub fn tls_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(why) = rustls_inside(e) {
            return Some(why);
        }
        cur = e.source();
    }
    None
}

/// `e` itself a rustls error, or io errors wrapping one (hyper's connector nests two; an
/// io::Error's `source()` skips the error it wraps, so look inside).
fn rustls_inside(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r.to_string());
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_inside(inner)
}

/// A request error for humans: a TLS failure named as one, else the whole chain.
pub fn describe(err: &reqwest::Error) -> String {
    match tls_failure(err) {
        Some(why) => format!("TLS failure: {why}"),
        None => {
            let mut s = err.to_string();
            let mut cur = std::error::Error::source(err);
            while let Some(e) = cur {
                s.push_str(": ");
                s.push_str(&e.to_string());
                cur = e.source();
            }
            s
        }
    }
}

/// Before a run: each `https://` target is asked for `/readyz` once, and a TLS failure (a
/// certificate the CA did not sign, a name it does not carry, a node that speaks plain HTTP)
/// stops the tool with the failure named. Targets that are down or answer an error pass: the
/// tools record those.
///
/// # Errors
/// The first target whose TLS handshake failed.
pub async fn preflight(targets: &[String]) -> anyhow::Result<()> {
    let https: Vec<&String> = targets
        .iter()
        .filter(|t| t.starts_with("https://"))
        .collect();
    if https.is_empty() {
        return Ok(());
    }
    let client = builder()
        .timeout(Duration::from_secs(3))
        .build()
        .context("building an HTTPS client")?;
    for t in https {
        if let Err(e) = client.get(format!("{t}/readyz")).send().await {
            if let Some(why) = tls_failure(&e) {
                let trusted = TRUSTED.get().map_or("no CA", |t| t.source.as_str());
                anyhow::bail!(
                    "{t}: TLS failure: {why} (trusting {trusted}: the node's certificate must be \
                     signed by that CA and name the host of the URL)"
                );
            }
        }
    }
    Ok(())
}

/// [`preflight`] from synchronous code (its own current-thread runtime).
///
/// # Errors
/// As [`preflight`], or when the runtime cannot start.
pub fn preflight_blocking(targets: &[String]) -> anyhow::Result<()> {
    if !targets.iter().any(|t| t.starts_with("https://")) {
        return Ok(());
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(preflight(targets))
}

//! systemd's readiness protocol (`Type=notify`): `READY=1` once the node can serve, as its
//! `/readyz` would say, and `STOPPING=1` when it starts to stop. Without `$NOTIFY_SOCKET` (not
//! started by systemd) nothing is sent.

use std::time::Duration;

use sessionraft_web::handlers::readiness;
use sessionraft_web::Server;

/// How often readiness is checked until the node is ready.
const READY_POLL: Duration = Duration::from_millis(200);

/// Sends `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET`, if set. A failure is logged, never
/// fatal: the node serves either way.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&path, state) {
        tracing::warn!(error = %e, state, "could not notify systemd");
    }
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    // `@name` is an abstract socket (Linux).
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(std::path::Path::new(path))?,
    };
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// Waits until the node is ready, then sends `READY=1` (once). Returns at once when not run
/// by systemd.
pub async fn notify_when_ready(node: Server) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    loop {
        if readiness(node.cluster(), node.metrics()).await.0 {
            notify("READY=1");
            tracing::info!(node = node.id(), "ready: told systemd");
            return;
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

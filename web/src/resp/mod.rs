//! The Redis-protocol door: RESP2/RESP3 on a node's `resp_addr`, for session stores written for
//! Redis (connect-redis, Flask-Session, actix-session's `RedisSessionStore`, …).
//!
//! - [`frame`]: commands from the byte stream, limits checked on the headers.
//! - [`commands`]: what each command needs and answers.
//! - `pipeline`: the commands buffered on a connection, run concurrently where Redis's order
//!   allows (consecutive writes share a commit), answered in order.
//! - [`reply`]: replies in RESP2 or RESP3.
//! - [`glob`]: `SCAN … MATCH` patterns.
//! - [`tls`]: the door's rustls configuration, with `[tls]`.
//!
//! The server runs on a runtime of its own (two threads), so that client connections never
//! compete with Raft's heartbeats on the consensus runtime. Each connection reads commands as
//! they come (pipelined or not), runs everything buffered as one pipeline (`pipeline`) and
//! writes the replies in order. Closed: after a protocol error (answered first, as Redis does),
//! `QUIT`, an idle timeout, or the node's shutdown.
//!
//! With `[tls]` the door speaks TLS only (rediss://): every connection starts with a rustls
//! handshake, which must finish within [`HANDSHAKE_TIMEOUT`] (or the idle timeout, if shorter);
//! a plaintext client fails it (its first bytes are not a TLS record) and is closed before
//! anything it sent is read as a command. The connection code after the handshake is the same
//! for both kinds of stream (see `serve`), so the limits, the password and the idle timeout
//! apply alike. A connection counts against `max_connections` from its accept, handshake
//! included; one over the cap gets at most 2 s to finish its handshake and be told so.

pub mod commands;
pub mod frame;
pub mod glob;
mod pipeline;
pub mod reply;
pub mod settings;
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use commands::Shared;

use commands::Conn;
use pipeline::Pipeline;
use reply::Reply;
use settings::TlsAuthClients;

/// Read buffer granularity.
const READ_CHUNK: usize = 16 * 1024;

/// The longest a TLS handshake may take (shorter if the idle timeout is): a client that opens
/// a TCP connection and says nothing holds a connection slot this long at most.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The handshake time of a connection over `max_connections`, which holds no slot: long enough
/// for a client to be told `max number of clients reached` over TLS, short enough that silent
/// connections over the cap do not pile up.
const OVER_CAP_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// A running door; stops when dropped.
pub struct RespServer {
    runtime: Option<tokio::runtime::Runtime>,
    local_addr: SocketAddr,
}

impl RespServer {
    /// Bind `addr` now (so a taken port fails the node's start) and serve on a runtime of its
    /// own: over TLS only with `tls` (see [`tls::server_config`]), in plaintext without.
    ///
    /// # Errors
    /// The address cannot be bound, or the runtime cannot start.
    pub fn start(
        addr: SocketAddr,
        shared: Shared,
        tls: Option<tls::DoorTls>,
    ) -> std::io::Result<Self> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let local_addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("resp")
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        match tls {
            Some(tls::DoorTls {
                config,
                client_auth,
            }) => {
                let client_certs = match client_auth {
                    TlsAuthClients::No => "not asked for",
                    TlsAuthClients::Optional => "optional",
                    TlsAuthClients::Yes => "required",
                };
                let handshake = handshake_timeout(shared.idle_timeout);
                runtime.spawn(accept_loop(
                    listener,
                    Arc::new(shared),
                    Some((TlsAcceptor::from(config), handshake)),
                ));
                tracing::info!(
                    %local_addr,
                    client_certs,
                    ?handshake,
                    "serving the Redis protocol over TLS (plaintext clients are refused)"
                );
            }
            None => {
                runtime.spawn(accept_loop(listener, Arc::new(shared), None));
                tracing::info!(%local_addr, "serving the Redis protocol");
            }
        }
        Ok(Self {
            runtime: Some(runtime),
            local_addr,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for RespServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Connections are dropped (closed) with their tasks.
            rt.shutdown_background();
        }
    }
}

/// How long a TLS handshake may take: [`HANDSHAKE_TIMEOUT`], or the idle timeout if shorter.
fn handshake_timeout(idle: Duration) -> Duration {
    if idle.is_zero() {
        HANDSHAKE_TIMEOUT
    } else {
        idle.min(HANDSHAKE_TIMEOUT)
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<(TlsAcceptor, Duration)>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                tracing::warn!(error = %e, "RESP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let open = shared.connections.fetch_add(1, Ordering::AcqRel) + 1;
        let over = open > shared.max_connections;
        if over {
            shared.connections.fetch_sub(1, Ordering::AcqRel);
        } else {
            shared.metrics.resp_connections.inc();
        }
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => connection(stream, over, &shared).await,
                Some((acceptor, limit)) => {
                    let limit = if over {
                        limit.min(OVER_CAP_HANDSHAKE_TIMEOUT)
                    } else {
                        limit
                    };
                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, over, &shared).await,
                        // A plaintext client, a client that does not trust the node's
                        // certificate or presents none (when required): nothing was read as a
                        // command.
                        Ok(Err(e)) => Err(std::io::Error::other(format!("TLS handshake: {e}"))),
                        Err(_) => Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no TLS handshake within {limit:?}"),
                        )),
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "RESP connection ended");
            }
            if !over {
                shared.connections.fetch_sub(1, Ordering::AcqRel);
                shared.metrics.resp_connections.dec();
            }
        });
    }
}

/// One accepted connection (after its TLS handshake, with `[tls]`): refused with Redis's error
/// when it is one more than `max_connections`, else served.
async fn connection<S>(mut stream: S, over: bool, shared: &Shared) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if over {
        stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await?;
        stream.flush().await?;
        return stream.shutdown().await;
    }
    serve(stream, shared).await
}

/// Serve one connection until it closes: a [`tokio::net::TcpStream`], or a TLS stream over one. Every
/// write is flushed (a TLS stream may hold the records it made until then).
async fn serve<S>(mut stream: S, shared: &Shared) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Conn::new(shared);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut pipeline = Pipeline::new(shared);
    loop {
        // Every complete command buffered, planned into the pipeline: what one read brought is
        // one segment (or more), sent at once.
        let mut used = 0;
        let mut protocol_error = None;
        while !conn.quit {
            match frame::next_command(&buf[used..], shared.limits) {
                Ok(Some((args, n))) => {
                    used += n;
                    if args.is_empty() {
                        continue;
                    }
                    // A write held back for the reads before it drains the pipeline, reading
                    // meanwhile into `buf` past `used`.
                    if pipeline
                        .plan(&mut conn, args, &mut stream, &mut buf, &mut out)
                        .await?
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    protocol_error = Some(e);
                    break;
                }
            }
        }
        buf.drain(..used);
        pipeline.send();
        if conn.quit || protocol_error.is_some() {
            // A protocol error is answered after the commands before it, then the connection
            // closes (as Redis does); nothing after a QUIT runs.
            if pipeline
                .drain(&mut stream, &mut buf, &mut out)
                .await?
                .is_err()
            {
                return Ok(());
            }
            if let (Some(e), false) = (protocol_error, conn.quit) {
                Reply::error(format!("ERR {e}")).encode(conn.proto, &mut out);
                pipeline::write_out(&mut stream, &mut out).await?;
            }
            return stream.shutdown().await;
        }
        if !matches!(frame::next_command(&buf, shared.limits), Ok(None)) {
            // Commands (or bad bytes) arrived while the pipeline drained: plan them before
            // reading more.
            continue;
        }
        // Wait for the next answers or more commands, whichever comes first; an idle
        // connection (nothing in flight) is closed after the idle timeout.
        if pipeline
            .round(&mut stream, &mut buf, &mut out, shared.idle_timeout)
            .await?
            .is_err()
        {
            return Ok(());
        }
    }
}

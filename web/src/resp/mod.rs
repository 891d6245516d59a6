//! The Redis-protocol door: RESP2/RESP3 on a node's `resp_addr`, for session stores written for
//! Redis (connect-redis, Flask-Session, actix-session's `RedisSessionStore`, …).
//!
//! - [`frame`]: commands from the byte stream, limits checked on the headers.
//! - [`commands`]: what each command does and answers.
//! - [`reply`]: replies in RESP2 or RESP3.
//! - [`glob`]: `SCAN … MATCH` patterns.
//!
//! The server runs on a runtime of its own (two threads), so that client connections never
//! compete with Raft's heartbeats on the consensus runtime. Each connection reads commands as
//! they come (pipelined or not), runs them in order and writes the replies of everything that
//! was buffered in one write. Closed: after a protocol error (answered first, as Redis does),
//! `QUIT`, an idle timeout, or the node's shutdown.

pub mod commands;
pub mod frame;
pub mod glob;
pub mod reply;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use commands::Shared;
use commands::{execute, Conn};
use reply::Reply;

/// Read buffer granularity.
const READ_CHUNK: usize = 16 * 1024;

/// A running door; stops when dropped.
pub struct RespServer {
    runtime: Option<tokio::runtime::Runtime>,
    local_addr: SocketAddr,
}

impl RespServer {
    /// Bind `addr` now (so a taken port fails the node's start) and serve on a runtime of its
    /// own.
    ///
    /// # Errors
    /// The address cannot be bound, or the runtime cannot start.
    pub fn start(addr: SocketAddr, shared: Shared) -> std::io::Result<Self> {
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
        runtime.spawn(accept_loop(listener, Arc::new(shared)));
        tracing::info!(%local_addr, "serving the Redis protocol");
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

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
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
        let shared = shared.clone();
        if open > shared.max_connections {
            shared.connections.fetch_sub(1, Ordering::AcqRel);
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
                let _ = stream.shutdown().await;
            });
            continue;
        }
        shared.metrics.resp_connections.inc();
        tokio::spawn(async move {
            if let Err(e) = serve(stream, &shared).await {
                tracing::debug!(%peer, error = %e, "RESP connection ended");
            }
            shared.connections.fetch_sub(1, Ordering::AcqRel);
            shared.metrics.resp_connections.dec();
        });
    }
}

/// Serve one connection until it closes.
async fn serve(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut conn = Conn::new(shared);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        // Run every complete command buffered, in order.
        let mut used = 0;
        loop {
            match frame::next_command(&buf[used..], shared.limits) {
                Ok(Some((args, n))) => {
                    used += n;
                    if args.is_empty() {
                        continue;
                    }
                    execute(shared, &mut conn, args)
                        .await
                        .encode(conn.proto, &mut out);
                    if conn.quit {
                        stream.write_all(&out).await?;
                        return stream.shutdown().await;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    Reply::error(format!("ERR {e}")).encode(conn.proto, &mut out);
                    stream.write_all(&out).await?;
                    return stream.shutdown().await;
                }
            }
        }
        buf.drain(..used);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        buf.reserve(READ_CHUNK);
        let read = stream.read_buf(&mut buf);
        let n = if shared.idle_timeout.is_zero() {
            read.await?
        } else {
            match tokio::time::timeout(shared.idle_timeout, read).await {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            }
        };
        if n == 0 {
            // Closed by the client (possibly mid-frame: a partial command is dropped unrun).
            return Ok(());
        }
    }
}

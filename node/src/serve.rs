//! `sessionraft serve`: build the node from the validated config, serve HTTP, shut down in order
//! (HTTP, then Raft, then storage) on SIGTERM/SIGINT.

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use sessionraft_web::handlers::configure_api;
use sessionraft_web::server::{cores, UNSAFE_SKIP_READ_BARRIER_ENV};
use sessionraft_web::{Server, ServerOptions};

use crate::config::{Address, Config, NodeConfig};

/// Where a node outside the configuration (one being added to a running cluster) listens and
/// keeps its data: `serve --node N --http H --raft R --data-dir D`.
#[derive(Debug, Clone)]
pub struct JoiningNode {
    pub http_addr: Address,
    pub raft_addr: Option<Address>,
    pub data_dir: std::path::PathBuf,
}

/// This process's node: the configuration's `[[node]]` entry, or — for a node outside the
/// initial membership — the addresses given on the command line. A joining node never
/// initializes a cluster: it waits to be added (`sessionraft cluster add-node`).
///
/// # Errors
/// An unknown id without `--http`/`--data-dir`, flags given for a configured node, or a joining
/// node whose address or data dir is already a configured node's.
pub fn resolve_node(
    cfg: &Config,
    node_id: u64,
    joining: Option<JoiningNode>,
) -> anyhow::Result<NodeConfig> {
    let configured = cfg.nodes.iter().find(|n| n.id == node_id);
    match (configured, joining) {
        (Some(n), None) => Ok(n.clone()),
        (Some(_), Some(_)) => anyhow::bail!(
            "--node {node_id} is in the configuration: drop --http/--raft/--data-dir (they are \
             only for a node joining from outside the configuration)"
        ),
        (None, None) => {
            let known: Vec<String> = cfg.node_ids().map(|i| i.to_string()).collect();
            anyhow::bail!(
                "--node {node_id}: no such node in the cluster configuration (known node ids: {}); \
                 a node joining a running cluster from outside it needs --http and --data-dir \
                 (and optionally --raft)",
                known.join(", ")
            )
        }
        (None, Some(j)) => {
            anyhow::ensure!(node_id != 0, "--node: node ids must be at least 1");
            let raft_addr = j.raft_addr.unwrap_or_else(|| j.http_addr.clone());
            if let Some(n) = cfg.nodes.iter().find(|n| {
                let theirs = [&n.http_addr, &n.raft_addr];
                theirs.contains(&&j.http_addr)
                    || theirs.contains(&&raft_addr)
                    || (n.data_dir == j.data_dir && n.http_addr.same_host(&j.http_addr))
            }) {
                anyhow::bail!(
                    "node {node_id}: address or data dir already used by configured node {}",
                    n.id
                );
            }
            Ok(NodeConfig {
                id: node_id,
                http_addr: j.http_addr,
                raft_addr,
                data_dir: j.data_dir,
                resp_addr: None,
                http_listen: None,
                raft_listen: None,
                resp_listen: None,
            })
        }
    }
}

/// Bound glibc's heap growth before any thread starts: without it every thread that touches the
/// heap may get its own 64 MiB arena, and the adaptive mmap threshold climbs to 32 MiB after the
/// first large free, so the multi-MiB buffers of AppendEntries and snapshots are carved from
/// (and fragment) the heap instead of being returned to the OS. Measured with 1M sessions: the
/// node that caught up stayed at 793 MiB RSS without these settings.
fn bound_malloc() {
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists (the runtimes start later), as glibc requires for M_ARENA_MAX.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Hand freed heap pages back to the OS every second. Applying a restore or a catch-up
/// decodes millions of small session objects; freed in another order than allocated they leave
/// holes that glibc only returns from the top of the heap, so RSS would stay at its peak.
/// `malloc_trim` releases the free pages inside the heap too (cost: a walk of the free lists).
/// With a trim every 5 s, one full benchmark run sampled the node that had just caught up on
/// 1M sessions at 262 MiB (2 s after the cluster was whole; peak 462 MiB), where eight earlier
/// runs, sampling after a trim, saw 48–72 MiB.
fn spawn_malloc_trimmer() {
    let spawned = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| loop {
            std::thread::sleep(MALLOC_TRIM_PERIOD);
            // SAFETY: malloc_trim is thread-safe (it takes each arena's lock).
            unsafe {
                libc::malloc_trim(0);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the malloc trimmer; RSS may stay at its peak");
    }
}

/// How often [`spawn_malloc_trimmer`] trims.
const MALLOC_TRIM_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

pub fn run(cfg: Config, node_id: u64, joining: Option<JoiningNode>) -> anyhow::Result<()> {
    bound_malloc();
    let me = resolve_node(&cfg, node_id, joining)?;
    let (http_workers, raft_threads) = cfg.threads_per_node(&me, cores());
    tracing::info!(
        node = me.id,
        http_workers,
        raft_threads,
        "threads ([runtime] in the configuration; automatic: cores / nodes on this host)"
    );
    // [tls]: the certificate, key and CA are checked before storage is opened (and before the
    // options read them again for the Redis-protocol door, which then speaks TLS only).
    let tls = crate::tls::server_config(&cfg, &me)?;
    let opts = ServerOptions::from_config(&cfg, &me)?;
    if opts.store.unsafe_skip_read_barrier {
        tracing::warn!(
            node = me.id,
            "!!! {UNSAFE_SKIP_READ_BARRIER_ENV}=1: TEST-ONLY PLANTED BUG — session reads skip the \
             read barrier and may be STALE. Never run this in production. !!!"
        );
    }
    if !opts.consensus.initial_members.contains_key(&me.id) {
        tracing::info!(
            node = me.id,
            "not in the initial membership: waiting to be added (sessionraft cluster add-node)"
        );
    }
    spawn_malloc_trimmer();
    let node = Server::start_with(opts).with_context(|| {
        format!(
            "starting node {} (data dir {})",
            me.id,
            me.data_dir.display()
        )
    })?;

    // Where the listeners bind: the listen addresses, or the advertised ones resolved now.
    // (The HTTP one was resolved once, for the options; the node keeps it.)
    let mut addrs = vec![node.http_addr()];
    if let Some(raft_bind) = me.raft_bind_addr()?.filter(|a| !addrs.contains(a)) {
        addrs.push(raft_bind);
    }
    let served = actix_web::rt::System::new().block_on(async {
        let app = node.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .configure(app.routes())
                .configure(app.frontend_routes())
                .service(web::scope("").wrap(app.sessions()).configure(configure_api))
        })
        // In-flight requests get 5 s to finish once the server stops; it stops on SIGTERM or
        // SIGINT through `stop_on_signal`, not actix's own handler (see `Listeners`).
        .shutdown_timeout(5)
        .disable_signals();
        server = server.workers(http_workers);
        let mut ours = Vec::new();
        for a in &addrs {
            let (listener, handle) = listen_on(*a).with_context(|| format!("binding {a}"))?;
            ours.push(handle);
            server = match &tls {
                Some(tls) => server.listen_rustls_0_23(listener, tls.clone()),
                None => server.listen(listener),
            }
            .with_context(|| format!("serving on {a}"))?;
        }
        let listeners = std::sync::Arc::new(Listeners(ours));
        tracing::info!(
            node = me.id,
            http = %me.http_addr,
            raft = %me.raft_addr,
            listen = ?addrs,
            tls = tls.is_some(),
            "serving"
        );
        let server = server.run();
        // systemd (`Type=notify`): ready once a leader is known and this node applied what it
        // committed, as /readyz says.
        let notify = actix_web::rt::spawn(crate::systemd::notify_when_ready(node.clone()));
        let on_signal = actix_web::rt::spawn(stop_on_signal(server.handle(), listeners.clone()));
        // A Raft core that stopped on a fatal error (a storage write failed, e.g. a full disk)
        // never recovers in this process: stop serving and exit non-zero, so the node does not
        // sit there unready and a supervisor (or the operator) restarts it on its intact log.
        let fatal = actix_web::rt::spawn(watch_raft_core(
            node.cluster().raft.metrics(),
            server.handle(),
            listeners,
        ));
        server.await.context("HTTP server")?;
        notify.abort();
        on_signal.abort();
        fatal.abort();
        match fatal.await {
            Ok(Some(e)) => Err(anyhow::anyhow!("raft core stopped: {e}")),
            _ => Ok(()),
        }
    });
    tracing::info!(node = me.id, "HTTP stopped; shutting down raft");
    node.shutdown();
    served
}

/// Wait until the Raft core stops on a fatal error; then stop the HTTP server and return the
/// error. Pending forever while the core runs.
///
/// Polled, not woken by every change of the metrics: openraft publishes new metrics several
/// times per log entry (append, each follower's acknowledgement, commit, apply), and a task
/// awaiting `changed()` on this thread cost one cross-thread wakeup — two context switches —
/// for each of them (bench/PROFILE.md, round 5). An exit 100 ms later is as good.
async fn watch_raft_core(
    metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, openraft::BasicNode>>,
    server: actix_web::dev::ServerHandle,
    listeners: std::sync::Arc<Listeners>,
) -> Option<String> {
    let mut tick = tokio::time::interval(CORE_WATCH_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Copied out: the borrow must not be held across the `await` below.
        let stopped = metrics
            .borrow()
            .running_state
            .as_ref()
            .err()
            .map(ToString::to_string);
        if let Some(e) = stopped {
            tracing::error!(error = %e, "raft core stopped; exiting so the node can be restarted");
            listeners.stop_serving(&server).await;
            return Some(e);
        }
        if metrics.has_changed().is_err() {
            // The core is gone without reporting an error: a normal shutdown.
            return None;
        }
    }
}

/// Our own handles on the listening sockets the HTTP server accepts on (duplicated file
/// descriptors of the same sockets).
///
/// actix-server's own stop races its accept thread against its workers: it tells both at once,
/// an idle worker is gone at once, and a connection the accept thread takes in between has no
/// worker to go to — it is closed unanswered ("No workers" in the log). A load balancer that
/// sent a request on it can neither get an answer nor retry it elsewhere: a client behind it
/// saw its request fail during a rolling restart (`tests/it/operations.rs`, 1 run in 20; the
/// node's log said "No workers"). So a node stops
/// listening first — `shutdown(2)` of each listening socket, after which a new connection is
/// refused (the load balancer retries it on another node) — lets a connection accepted just
/// before reach its worker, and only then stops the server, which finishes what is in flight.
struct Listeners(Vec<std::net::TcpListener>);

/// Set once this process closed its listening sockets to stop ([`Listeners::stop_serving`]).
static LISTENERS_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process closed its listening sockets to stop: the log then drops the accept
/// thread's report of them (`main.rs`).
pub fn listeners_closed() -> bool {
    LISTENERS_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Time for a connection the accept thread took just before the listeners closed to reach its
/// worker, before the workers are told to stop.
const HANDOVER: std::time::Duration = std::time::Duration::from_millis(50);

impl Listeners {
    /// Refuse new connections, then stop the server gracefully (in-flight requests finish).
    async fn stop_serving(&self, server: &actix_web::dev::ServerHandle) {
        use std::os::fd::AsRawFd;
        LISTENERS_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
        for l in &self.0 {
            // SAFETY: shutdown(2) on a descriptor this struct owns; it only changes the
            // socket's state (a listening socket stops listening), it frees nothing.
            let rc = unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RD) };
            if rc != 0 {
                tracing::warn!(error = %std::io::Error::last_os_error(), "could not close a listening socket");
            }
        }
        tokio::time::sleep(HANDOVER).await;
        server.stop(true).await;
    }
}

/// A listening socket on `addr` as actix makes one (address reuse, backlog 1024, non-blocking)
/// and a duplicate of it that stays ours (see [`Listeners`]).
fn listen_on(
    addr: std::net::SocketAddr,
) -> std::io::Result<(std::net::TcpListener, std::net::TcpListener)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    let listener = std::net::TcpListener::from(socket);
    let ours = listener.try_clone()?;
    Ok((listener, ours))
}

/// On SIGTERM or SIGINT: stop listening, then stop the server gracefully ([`Listeners`]).
async fn stop_on_signal(
    server: actix_web::dev::ServerHandle,
    listeners: std::sync::Arc<Listeners>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot handle SIGTERM/SIGINT; stop the node with SIGKILL");
            return;
        }
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = name,
        "stopping: new connections are refused, requests in flight finish"
    );
    crate::systemd::notify("STOPPING=1");
    listeners.stop_serving(&server).await;
}

/// How often [`watch_raft_core`] looks at the core's state.
const CORE_WATCH_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);

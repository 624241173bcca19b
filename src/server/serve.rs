//! The hyper serve loop: listeners ([`bind_all`]), [`ServeOptions`], the accept loop and
//! one task per connection (TLS handshake, first-request deadline, graceful close).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::sync::Semaphore;

use super::connections::{ConnHandle, ConnTable, IdleWhenDone, Phase, Unregister};

/// Binds every listen address, failing with the address named when one cannot be bound.
///
/// The IPv6 wildcard `[::]:port` (what `:port` means) is bound dual-stack, IPV6_V6ONLY off,
/// so it serves IPv4 (as v4-mapped addresses) and IPv6 whatever the host's
/// `net.ipv6.bindv6only`; on a host without IPv6 it falls back to `0.0.0.0:port` with one
/// info log. Every other address is bound as given.
pub async fn bind_all(addrs: &[SocketAddr]) -> std::io::Result<Vec<tokio::net::TcpListener>> {
    let mut out = Vec::new();
    for a in addrs {
        let named =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("cannot listen on {a}: {e}"));
        let l = if a.is_ipv6() && a.ip().is_unspecified() {
            match bind_dual_stack(*a) {
                Ok(l) => l,
                Err(e) if ipv6_unavailable(&e) => {
                    let v4 = SocketAddr::from(([0, 0, 0, 0], a.port()));
                    tracing::info!(address = %v4, error = %e, "no IPv6 on this host, listening on IPv4 only");
                    tokio::net::TcpListener::bind(v4).await.map_err(named)?
                }
                Err(e) => return Err(named(e)),
            }
        } else {
            tokio::net::TcpListener::bind(a).await.map_err(named)?
        };
        out.push(l);
    }
    Ok(out)
}

fn bind_dual_stack(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(false)?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// The errors of a host (or container) without IPv6.
fn ipv6_unavailable(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::Unsupported
    ) || matches!(e.raw_os_error(), Some(97) | Some(99))
}

/// Limits of the HTTP server itself (not of the handlers).
///
/// # Connection floods
///
/// The connection cap is shared by every client, so the server decides who keeps a slot:
///
/// * a connection that has not completed its first request head (and, with TLS, its
///   handshake) within [`first_request_timeout`](Self::first_request_timeout) is closed:
///   slowloris connections are short-lived;
/// * at the cap, a new connection does not wait in the kernel's accept queue behind held
///   slots: the server takes one back, first from the connection idle longest between
///   requests (keep-alive; closed gracefully, as hyper does on shutdown), else from the
///   oldest connection that has not finished a first request; if no slot is free within
///   100 ms another is asked. A connection in the middle of a request is never taken; when
///   all are, the new one waits for the first to finish.
///
/// The slot is taken from the client address (an IPv6 /64) holding the most connections
/// that are not serving a request, so a flood from one address makes room from its own
/// connections, never from Prometheus' one kept-alive connection. There is no hard
/// per-address cap (Prometheus servers behind one NAT, or sidecars on one node, share an
/// address). An attacker on the scraper's own address competes with it: a legitimate scraper
/// sends its request head within milliseconds, so it is rarely the oldest unfinished
/// connection, but under a reconnecting flood on a busy host it can be (see
/// docs/reliability.md).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A client must send each further request head within this time once it has started
    /// it, else the connection is closed.
    pub header_read_timeout: std::time::Duration,
    /// A new connection must finish the TLS handshake and send its first request head
    /// within this time, else it is closed.
    pub first_request_timeout: std::time::Duration,
    /// Largest request head accepted; larger ones get 431. hyper's minimum is 8 KiB.
    pub max_header_bytes: usize,
    /// Most header fields in a request; more get 431.
    pub max_headers: usize,
    /// Open connections at most; at the cap an idle or unfinished connection makes room.
    pub max_connections: usize,
    /// `--web.config.file`: TLS, basic auth, headers, rate limit.
    pub web_config: Option<Arc<crate::web::WebConfigRuntime>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: std::time::Duration::from_secs(10),
            first_request_timeout: std::time::Duration::from_secs(3),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_connections: crate::sys::fds::DEFAULT_MAX_CONNECTIONS,
            web_config: None,
        }
    }
}

/// Serves `router` on every listener until `shutdown` resolves, then drains for at most
/// `grace`. Plain HTTP with the default [`ServeOptions`].
pub async fn serve(
    listeners: Vec<tokio::net::TcpListener>,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
) -> std::io::Result<()> {
    serve_with(listeners, router, shutdown, grace, ServeOptions::default()).await
}

/// [`serve`] with explicit limits and an optional web configuration (TLS, auth).
pub async fn serve_with(
    listeners: Vec<tokio::net::TcpListener>,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
    opts: ServeOptions,
) -> std::io::Result<()> {
    let router = match &opts.web_config {
        Some(wc) => crate::web::middleware::layer(wc, router),
        None => router,
    };
    let max_conns = opts.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let conns = Arc::new(Semaphore::new(max_conns));
    let table = Arc::new(ConnTable::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let opts = Arc::new(opts);
    let mut accept_loops = Vec::new();
    for l in listeners {
        accept_loops.push(tokio::spawn(accept_loop(
            l,
            router.clone(),
            opts.clone(),
            conns.clone(),
            table.clone(),
            stop_rx.clone(),
        )));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    let drain = async {
        for a in accept_loops {
            let _ = a.await;
        }
        // Every open connection holds a permit: having them all means all are closed.
        let _ = conns.acquire_many(max_conns as u32).await;
    };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; exiting anyway");
    }
    Ok(())
}

/// How long the accept loop waits for a slot after asking a connection to make room before
/// asking another.
const EVICTION_WAIT: std::time::Duration = std::time::Duration::from_millis(100);
/// How long an idle connection asked to make room may take to finish writing.
const IDLE_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    opts: Arc<ServeOptions>,
    conns: Arc<Semaphore>,
    table: Arc<ConnTable>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        // Accept first: a new connection is what asks a held slot to be given back.
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        let Some(permit) = slot(&conns, &table, peer, &mut stop).await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let handle = table.insert(peer);
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            opts.clone(),
            handle,
            stop.clone(),
            permit,
        ));
    }
}

/// A connection slot for `peer`; `None` once shutdown has been asked for.
///
/// At the cap: asks a connection to make room, and asks another if no slot is free soon (a
/// victim may be slow to close); when all are serving a request, this just waits for the
/// first to finish.
async fn slot(
    conns: &Arc<Semaphore>,
    table: &ConnTable,
    peer: SocketAddr,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(p) = conns.clone().try_acquire_owned() {
        return Some(p);
    }
    loop {
        if table.evict_one() {
            tracing::debug!(%peer, "at the connection cap: closing an idle or unfinished connection");
        }
        tokio::select! {
            p = conns.clone().acquire_owned() => return p.ok(),
            _ = tokio::time::sleep(EVICTION_WAIT) => continue,
            _ = stopped(stop) => return None,
        }
    }
}

/// One accepted connection's task: TLS handshake when configured, then HTTP, closed early
/// when it has not finished a first request by the deadline or is asked to make room.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    opts: Arc<ServeOptions>,
    handle: ConnHandle,
    stop: tokio::sync::watch::Receiver<bool>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let _permit = permit;
    let _unregister = Unregister(handle.clone());
    let deadline = tokio::time::Instant::now() + opts.first_request_timeout;
    let work = async {
        match opts.web_config.as_ref().filter(|w| w.tls_enabled()) {
            Some(wc) => {
                let handshake = async {
                    let start = tokio_rustls::LazyConfigAcceptor::new(
                        rustls::server::Acceptor::default(),
                        stream,
                    )
                    .await?;
                    // Read per connection, so rotated certificates apply at once.
                    let config = wc.server_config().map_err(|e| {
                        tracing::error!(error = %e, "web configuration: TLS");
                        std::io::Error::other(e.to_string())
                    })?;
                    start.into_stream(config).await
                };
                match handshake.await {
                    Ok(tls) => serve_connection(tls, peer, router, &opts, &handle, stop).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                }
            }
            None => serve_connection(stream, peer, router, &opts, &handle, stop).await,
        }
    };
    tokio::select! {
        _ = work => {}
        why = fresh_end(&handle, deadline) => {
            tracing::debug!(%peer, why, "connection closed before its first request");
        }
    }
}

/// Resolves while the connection is still [`Phase::Fresh`] at its first-request deadline or
/// when asked to make room; never once it has started a request.
async fn fresh_end(conn: &ConnHandle, deadline: tokio::time::Instant) -> &'static str {
    let why = tokio::select! {
        _ = tokio::time::sleep_until(deadline) => "no request within the first-request timeout",
        _ = conn.evict.notified() => "making room at the connection cap",
    };
    if conn.phase() == Some(Phase::Fresh) {
        return why;
    }
    // Past its first request: an eviction from now on is served by `serve_connection`.
    if why != "no request within the first-request timeout" {
        conn.evict.notify_one();
    }
    std::future::pending().await
}

/// Resolves once shutdown has been asked for.
async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    opts: &ServeOptions,
    conn_handle: &ConnHandle,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handle = conn_handle.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let router = router.clone();
            let handle = handle.clone();
            async move {
                handle.set(Phase::Busy);
                let _idle = IdleWhenDone(handle);
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                tower::ServiceExt::oneshot(router, req).await
            }
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .max_buf_size(opts.max_header_bytes.max(8192))
        .max_headers(opts.max_headers);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    let res = tokio::select! {
        r = conn.as_mut() => r,
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        _ = conn_handle.evict.notified() => {
            if conn_handle.phase() == Some(Phase::Fresh) {
                // Left to `fresh_end`, which closes it.
                conn_handle.evict.notify_one();
                std::future::pending::<()>().await;
            }
            // Closes it now if idle, else after the request in progress. An idle one gets a
            // moment to finish writing its last answer, then is dropped.
            let idle = conn_handle.phase() == Some(Phase::Idle);
            conn.as_mut().graceful_shutdown();
            if idle {
                match tokio::time::timeout(IDLE_CLOSE_GRACE, conn.as_mut()).await {
                    Ok(r) => r,
                    Err(_) => Ok(()),
                }
            } else {
                conn.await
            }
        }
    };
    if let Err(e) = res {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_ipv6_wildcard_is_bound_dual_stack() {
        let any = crate::config::parse_listen_address(":0").unwrap();
        assert_eq!(any, "[::]:0".parse::<SocketAddr>().unwrap());
        let l = bind_all(&[any]).await.unwrap();
        let port = l[0].local_addr().unwrap().port();
        assert!(l[0].local_addr().unwrap().is_ipv6());
        for host in ["127.0.0.1", "[::1]"] {
            let peer = format!("{host}:{port}");
            tokio::net::TcpStream::connect(&peer)
                .await
                .unwrap_or_else(|e| panic!("{peer}: {e}"));
            let (_, from) = l[0].accept().await.unwrap();
            assert_eq!(from.ip().to_canonical().is_ipv4(), host == "127.0.0.1");
        }
        // Explicit addresses are bound as given.
        let v4 = bind_all(&["127.0.0.1:0".parse().unwrap()]).await.unwrap();
        assert!(v4[0].local_addr().unwrap().is_ipv4());
    }
}

//! The exporter's HTTP side: `/metrics`, `/probe`, `/-/healthy`, `/-/ready`, `/-/reload` and
//! the landing page. [`router`] builds the router (tested with `oneshot`), [`serve`] runs it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tower_http::compression::CompressionLayer;

use crate::app::Runtime;
use crate::metrics::cache::{self, ExporterCache, ExporterSource, Exposition};
use crate::metrics::{ExporterCollector, TargetCollector};

pub use crate::metrics::{render, Format, OPENMETRICS, TEXT_004};

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The shared runtime: the current targets and the outcome of the last (re)load.
    pub runtime: Arc<Runtime>,
    /// The path `/metrics` is served at (`--web.telemetry-path`).
    pub telemetry_path: String,
    limiter: Arc<Semaphore>,
    /// `/metrics` as served: see [`crate::metrics::cache`].
    cache: Arc<ExporterCache>,
    source: ExporterSource,
}

/// Builds the router.
pub fn router(runtime: Arc<Runtime>, telemetry_path: &str, max_requests: usize) -> Router {
    let state = AppState {
        source: ExporterSource {
            status: runtime.reload_status.clone(),
            targets: runtime.targets.clone(),
            store: runtime.store().clone(),
        },
        cache: Arc::new(ExporterCache::default()),
        runtime,
        telemetry_path: telemetry_path.to_string(),
        limiter: Arc::new(Semaphore::new(max_requests.max(1))),
    };
    Router::new()
        .route("/", get(landing))
        .route(telemetry_path, get(metrics))
        .route("/probe", get(probe))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .route("/upgrade", get(upgrade_page))
        .route("/api/v1/targets", get(api_targets))
        .route("/api/v1/targets/{name}/upgrade", get(api_upgrade))
        .fallback(not_found)
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .no_br()
                .no_deflate()
                .no_zstd(),
        )
        .layer(middleware::from_fn_with_state(state.clone(), limit))
        .with_state(state)
}

async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match state.limiter.clone().try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "too many concurrent requests\n",
        )
            .into_response(),
    }
}

/// Picks the format from `Accept`: OpenMetrics 1.0.0 when preferred (by q-value) over the
/// classic text format, else text 0.0.4.
pub fn negotiate(headers: &HeaderMap) -> Format {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Format::Text004;
    };
    let mut best_om: f32 = -1.0;
    let mut best_text: f32 = -1.0;
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut version_ok = true;
        for p in params {
            if let Some(v) = p.strip_prefix("q=") {
                q = v.parse().unwrap_or(0.0);
            } else if let Some(v) = p.strip_prefix("version=") {
                if media == "application/openmetrics-text" {
                    version_ok = v == "1.0.0" || v == "0.0.1";
                }
            }
        }
        if media == "application/openmetrics-text" && version_ok && q > 0.0 {
            best_om = best_om.max(q);
        } else if (media == "text/plain" || media == "*/*" || media == "text/*") && q > 0.0 {
            best_text = best_text.max(q);
        }
    }
    if best_om > 0.0 && best_om >= best_text {
        Format::OpenMetrics
    } else {
        Format::Text004
    }
}

/// Whether the response is to be gzip-compressed, decided from `Accept-Encoding` as the
/// router's `CompressionLayer` decides it for every other response: gzip (or x-gzip) with the
/// highest q-value above 0, ties going to gzip over identity; unknown codings and malformed
/// q-values are ignored.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip: u16 = 0;
    let mut identity: u16 = 0;
    for v in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let mut it = part.splitn(2, ';');
            let coding = it.next().unwrap_or("").trim();
            let slot =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut gzip
                } else if coding.eq_ignore_ascii_case("identity") {
                    &mut identity
                } else {
                    continue;
                };
            let q = match it.next() {
                None => Some(1000),
                Some(q) => q_value(q.trim()),
            };
            if let Some(q) = q {
                *slot = (*slot).max(q);
            }
        }
    }
    gzip > 0 && gzip >= identity
}

/// A q-value `q=0`…`q=1.000` in thousandths; None when malformed.
fn q_value(s: &str) -> Option<u16> {
    let rest = s.strip_prefix("q=").or_else(|| s.strip_prefix("Q="))?;
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let mut v: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    if frac.len() > 3 {
        return None;
    }
    let mut factor = 100;
    for b in frac.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v += factor * u16::from(b - b'0');
        factor /= 10;
    }
    (v <= 1000).then_some(v)
}

/// A body written as a few prebuilt pieces, with its exact length known.
struct Pieces {
    pieces: std::vec::IntoIter<Bytes>,
    remaining: u64,
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        std::task::Poll::Ready(this.pieces.next().map(|b| {
            this.remaining -= b.len() as u64;
            Ok(http_body::Frame::data(b))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// The response for a cached exposition: its prebuilt plain or gzip bytes, with
/// `Content-Type`, `Content-Length`, `Vary: accept-encoding` and, for gzip,
/// `Content-Encoding: gzip` (so the `CompressionLayer` leaves it alone).
fn exposition(exp: &Exposition, headers: &HeaderMap) -> Response {
    let gzipped = if accepts_gzip(headers) {
        exp.gzip()
    } else {
        None
    };
    let gzip = gzipped.is_some();
    let pieces: Vec<Bytes> = gzipped
        .unwrap_or_else(|| exp.plain())
        .into_iter()
        .filter(|b| !b.is_empty())
        .collect();
    let len: u64 = pieces.iter().map(|b| b.len() as u64).sum();
    let mut resp = Response::new(axum::body::Body::new(Pieces {
        pieces: pieces.into_iter(),
        remaining: len,
    }));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(exp.format().content_type()),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::VARY,
        HeaderValue::from_static(header::ACCEPT_ENCODING.as_str()),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

/// A registry with what `/metrics` serves: the exporter's own metrics, plus the target's when
/// there is exactly one. The handler serves the same from [`crate::metrics::cache`]; this is
/// the reference it is tested against.
pub fn metrics_registry(runtime: &Runtime) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(ExporterCollector {
        status: runtime.reload_status.clone(),
        targets: runtime.targets.clone(),
        store: runtime.store().clone(),
    }));
    let targets = runtime.targets.load();
    if targets.len() == 1 {
        r.register_collector(Box::new(TargetCollector::new(targets[0].clone())));
    }
    r
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let exp = state
        .cache
        .metrics(&state.source, negotiate(&headers), Instant::now());
    exposition(&exp, &headers)
}

#[derive(Debug, Deserialize)]
struct ProbeParams {
    target: Option<String>,
}

async fn probe(
    State(state): State<AppState>,
    Query(params): Query<ProbeParams>,
    headers: HeaderMap,
) -> Response {
    let names = || {
        state
            .runtime
            .targets
            .load()
            .iter()
            .map(|t| t.config.load().name().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(name) = params.target.filter(|t| !t.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "'target' parameter is missing; configured targets: {}\n",
                names()
            ),
        )
            .into_response();
    };
    let Some(shared) = state.runtime.target(&name) else {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "unknown target {:?}; configured targets: {} (targets are names from --config.file, not URLs: credentials stay in the exporter)\n",
                truncate_for_message(&name),
                names()
            ),
        )
            .into_response();
    };
    let exp = cache::probe(&shared, negotiate(&headers), Instant::now());
    exposition(&exp, &headers)
}

fn truncate_for_message(s: &str) -> String {
    s.chars().take(100).collect()
}

async fn healthy() -> &'static str {
    "Healthy.\n"
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.runtime.ready() {
        (StatusCode::OK, "Ready.\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: the first poll of every target has not finished yet.\n",
        )
            .into_response()
    }
}

async fn reload(State(state): State<AppState>) -> Response {
    match state.runtime.reload().await {
        Ok(()) => (StatusCode::OK, "Configuration reloaded.\n").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "Not found. See / for the endpoints.\n",
    )
        .into_response()
}

/// `GET /upgrade`: the live upgrade page.
async fn upgrade_page(State(state): State<AppState>) -> Html<String> {
    Html(crate::upgrade_page::render(&state.runtime))
}

/// `GET /api/v1/targets`: every target with its state.
async fn api_targets(State(state): State<AppState>) -> Response {
    let targets = state.runtime.targets.load();
    axum::Json(crate::upgrade_view::list(&targets)).into_response()
}

/// `GET /api/v1/targets/{name}/upgrade`: one target's upgrade (see `upgrade_view`).
async fn api_upgrade(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    match state.runtime.target(&name) {
        Some(t) => axum::Json(crate::upgrade_view::view(&t)).into_response(),
        None => {
            let targets = state.runtime.targets.load();
            let names: Vec<String> = targets.iter().map(|t| t.name()).collect();
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({
                    "error": "unknown target",
                    "targets": names,
                })),
            )
                .into_response()
        }
    }
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    Html(crate::status_page::page(&state.runtime, &state.telemetry_path).render())
}

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
    /// Largest request head accepted; larger ones get 431. hyper's floor is 8 KiB.
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
            max_connections: 512,
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
        Some(wc) => wc.layer(router),
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

/// Where a connection is in its life, for choosing which one makes room at the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, no request finished reading yet (TLS handshake or first head pending).
    Fresh,
    /// A request is being served.
    Busy,
    /// Between requests (keep-alive).
    Idle,
}

/// One open connection as the table sees it.
#[derive(Debug)]
struct ConnEntry {
    phase: Phase,
    /// When it entered `phase`.
    since: std::time::Instant,
    /// Asked to make room (already told: not chosen again).
    evicting: bool,
    /// The client, as the bcrypt queue sees it (an address, an IPv6 /64).
    client: std::net::IpAddr,
    /// Tells the connection to make room.
    evict: Arc<tokio::sync::Notify>,
}

/// Every open connection: what it is doing and since when.
#[derive(Debug, Default)]
struct ConnTable {
    conns: std::sync::Mutex<std::collections::HashMap<u64, ConnEntry>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl ConnTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, ConnEntry>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(self: &Arc<Self>, peer: SocketAddr) -> ConnHandle {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let evict = Arc::new(tokio::sync::Notify::new());
        self.lock().insert(
            id,
            ConnEntry {
                phase: Phase::Fresh,
                since: std::time::Instant::now(),
                evicting: false,
                client: crate::web::basic_auth::client_key(peer.ip()),
                evict: evict.clone(),
            },
        );
        ConnHandle {
            table: self.clone(),
            id,
            evict,
        }
    }

    /// Asks one connection to make room: of the client holding the most connections that
    /// are not serving a request, the longest idle one, else the oldest fresh one. False
    /// when every connection is busy serving a request.
    fn evict_one(&self) -> bool {
        let mut conns = self.lock();
        // Few distinct clients in practice: a small list beats a map (this runs once per
        // connection accepted at the cap, i.e. thousands of times a second under a flood);
        // a map once there are many.
        let mut few: Vec<(std::net::IpAddr, usize)> = Vec::with_capacity(8);
        let mut many: std::collections::HashMap<std::net::IpAddr, usize> = Default::default();
        for c in conns
            .values()
            .filter(|c| c.phase != Phase::Busy && !c.evicting)
        {
            if let Some((_, n)) = few.iter_mut().find(|(ip, _)| *ip == c.client) {
                *n += 1;
            } else if few.len() < 16 {
                few.push((c.client, 1));
            } else {
                *many.entry(c.client).or_default() += 1;
            }
        }
        let held = few.into_iter().chain(many);
        let Some((client, _)) = held.into_iter().max_by_key(|(_, n)| *n) else {
            return false;
        };
        let Some(id) =
            oldest(&conns, client, Phase::Idle).or_else(|| oldest(&conns, client, Phase::Fresh))
        else {
            return false;
        };
        let Some(c) = conns.get_mut(&id) else {
            return false;
        };
        c.evicting = true;
        // notify_one keeps a permit if the connection is not waiting right now.
        c.evict.notify_one();
        true
    }
}

/// `client`'s connection in `phase` longest, not already asked to make room.
fn oldest(
    conns: &std::collections::HashMap<u64, ConnEntry>,
    client: std::net::IpAddr,
    phase: Phase,
) -> Option<u64> {
    conns
        .iter()
        .filter(|(_, c)| c.client == client && c.phase == phase && !c.evicting)
        .min_by_key(|(_, c)| c.since)
        .map(|(id, _)| *id)
}

/// A connection's entry in the [`ConnTable`]; removed when dropped.
#[derive(Debug, Clone)]
struct ConnHandle {
    table: Arc<ConnTable>,
    id: u64,
    evict: Arc<tokio::sync::Notify>,
}

impl ConnHandle {
    fn set(&self, phase: Phase) {
        if let Some(c) = self.table.lock().get_mut(&self.id) {
            c.phase = phase;
            c.since = std::time::Instant::now();
        }
    }

    fn phase(&self) -> Option<Phase> {
        self.table.lock().get(&self.id).map(|c| c.phase)
    }

    fn remove(&self) {
        self.table.lock().remove(&self.id);
    }
}

/// Removes the connection from the table when its task ends, however it ends.
struct Unregister(ConnHandle);

impl Drop for Unregister {
    fn drop(&mut self) {
        self.0.remove();
    }
}

/// Marks the connection idle again when its request's handler is done (or dropped).
struct IdleWhenDone(ConnHandle);

impl Drop for IdleWhenDone {
    fn drop(&mut self) {
        self.0.set(Phase::Idle);
    }
}

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
        let permit = match conns.clone().try_acquire_owned() {
            Ok(p) => p,
            // At the cap: ask a connection to make room, and ask another if no slot is free
            // soon (a victim may be slow to close); when all are serving a request, this
            // just waits for the first to finish.
            Err(_) => loop {
                if table.evict_one() {
                    tracing::debug!(%peer, "at the connection cap: closing an idle or unfinished connection");
                }
                tokio::select! {
                    p = conns.clone().acquire_owned() => match p { Ok(p) => break p, Err(_) => return },
                    _ = tokio::time::sleep(EVICTION_WAIT) => continue,
                    _ = stopped(&mut stop) => return,
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let opts = opts.clone();
        let stop = stop.clone();
        let handle = table.insert(peer);
        tokio::spawn(async move {
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
                            Ok(tls) => {
                                serve_connection(tls, peer, router, &opts, &handle, stop).await
                            }
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
        });
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

    fn h(accept: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        m
    }

    #[test]
    fn negotiation_follows_q_values() {
        assert_eq!(negotiate(&HeaderMap::new()), Format::Text004);
        assert_eq!(
            negotiate(&h("application/openmetrics-text")),
            Format::OpenMetrics
        );
        // What Prometheus 2.x sends.
        assert_eq!(
            negotiate(&h("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(&h(
                "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"
            )),
            Format::Text004
        );
        assert_eq!(
            negotiate(&h("application/openmetrics-text;version=2.0.0")),
            Format::Text004
        );
        assert_eq!(negotiate(&h("*/*")), Format::Text004);
        assert_eq!(negotiate(&h("garbage;;;q=x")), Format::Text004);
    }

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

    #[test]
    fn room_is_made_from_the_heaviest_client_idle_first_never_busy() {
        let table = Arc::new(ConnTable::default());
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1000".parse().unwrap();
        let prom_idle = table.insert(a);
        prom_idle.set(Phase::Idle);
        let flood_fresh = table.insert(b);
        let flood_idle = table.insert(b);
        flood_idle.set(Phase::Idle);
        let flood_busy = table.insert(b);
        flood_busy.set(Phase::Busy);
        let chosen = |h: &ConnHandle| table.lock().get(&h.id).is_some_and(|c| c.evicting);
        // b holds two connections not serving a request, a one: b's idle one goes first.
        assert!(table.evict_one());
        assert!(chosen(&flood_idle) && !chosen(&prom_idle) && !chosen(&flood_fresh));
        // Then b's fresh one and a's idle one tie at one each; either may go, busy never.
        assert!(table.evict_one());
        assert!(table.evict_one());
        assert!(chosen(&flood_fresh) && chosen(&prom_idle));
        assert!(!table.evict_one(), "only a busy connection is left");
        assert!(!chosen(&flood_busy));
        flood_busy.remove();
        assert!(table.lock().get(&flood_busy.id).is_none());
    }
}

//! The exporter's HTTP side: `/metrics`, `/probe`, `/-/healthy`, `/-/ready`, `/-/reload` and
//! the landing page. [`router`] builds the router (tested with `oneshot`), [`serve`] runs it.
//!
//! This file holds the router and its handlers; `serve` the hyper serve loop and its
//! listeners, `connections` the table of open connections that makes room at the cap.

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
pub use serve::{bind_all, serve, serve_with, ServeOptions};

pub mod assets;
mod connections;
pub mod lifecycle;
mod serve;

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
        .merge(assets::routes())
        .fallback(not_found)
        .layer(middleware::map_response(assets::default_csp))
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

async fn reload(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(refused) = lifecycle::refuse_browsers(&headers) {
        return refused;
    }
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
}

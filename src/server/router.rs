//! The router: every route and the concurrent-request limit.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::compression::CompressionLayer;

use super::handlers::{
    api_targets, api_upgrade, healthy, landing, metrics, not_found, probe, ready, reload,
    upgrade_page,
};
use super::state::AppState;
use crate::app::Exporter;

/// Builds the router.
pub fn router(runtime: Arc<Exporter>, telemetry_path: &str, max_requests: usize) -> Router {
    router_with(AppState::new(runtime, telemetry_path, max_requests))
}

/// Builds the router over `state` (the caller keeps a handle on its cache).
pub fn router_with(state: AppState) -> Router {
    let telemetry_path = state.telemetry_path.clone();
    Router::new()
        .route("/", get(landing))
        .route(&telemetry_path, get(metrics))
        .route("/probe", get(probe))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .route("/upgrade", get(upgrade_page))
        .route("/api/v1/targets", get(api_targets))
        .route("/api/v1/targets/{name}/upgrade", get(api_upgrade))
        .merge(super::assets::routes())
        .fallback(not_found)
        .layer(middleware::map_response(super::assets::default_csp))
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

//! The route handlers: one function per route of [`super::router`].

use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use prometheus_client::registry::Registry;
use serde::Deserialize;

use super::negotiate::{exposition, negotiate};
use super::state::AppState;
use crate::app::Exporter;
use crate::metrics::{ExporterCollector, TargetCollector};

/// A registry with what `/metrics` serves: the exporter's own metrics, plus the target's when
/// there is exactly one. The handler serves the same from [`crate::metrics::cache`]; this is
/// the reference it is tested against.
pub fn metrics_registry(runtime: &Exporter) -> Registry {
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

pub(super) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let exp = state.cache.metrics(negotiate(&headers), Instant::now());
    exposition(&exp, &headers)
}

#[derive(Debug, Deserialize)]
pub(super) struct ProbeParams {
    target: Option<String>,
}

pub(super) async fn probe(
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
    let exp = state
        .cache
        .probe(&shared, negotiate(&headers), Instant::now());
    exposition(&exp, &headers)
}

fn truncate_for_message(s: &str) -> String {
    s.chars().take(100).collect()
}

pub(super) async fn healthy() -> &'static str {
    "Healthy.\n"
}

pub(super) async fn ready(State(state): State<AppState>) -> Response {
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

pub(super) async fn reload(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = super::lifecycle::refuse_browsers(&headers) {
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

pub(super) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "Not found. See / for the endpoints.\n",
    )
        .into_response()
}

/// `GET /upgrade`: the live upgrade page.
pub(super) async fn upgrade_page(State(state): State<AppState>) -> Html<String> {
    Html(crate::pages::upgrade::render(&state.runtime))
}

/// `GET /api/v1/targets`: every target with its state.
pub(super) async fn api_targets(State(state): State<AppState>) -> Response {
    let targets = state.runtime.targets.load();
    axum::Json(crate::api::list(&targets)).into_response()
}

/// `GET /api/v1/targets/{name}/upgrade`: one target's upgrade (see [`crate::api`]).
pub(super) async fn api_upgrade(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    match state.runtime.target(&name) {
        Some(t) => axum::Json(crate::api::view(&t)).into_response(),
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

pub(super) async fn landing(State(state): State<AppState>) -> Html<String> {
    Html(crate::pages::landing::page(&state.runtime, &state.telemetry_path).render())
}

//! The per-request part of the web configuration as axum middleware: the rate limit
//! (429), basic auth (401; 429 when too many bcrypt checks from the client's address wait,
//! 503 when too many wait in all), and the configured
//! response headers, set on refusals too, as the exporter-toolkit does.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::basic_auth::{self, AuthResult};
use super::runtime::WebConfigRuntime;

/// Wraps `router` with [`middleware`] for `rt`: rate limit, headers, basic auth.
pub fn layer(rt: &Arc<WebConfigRuntime>, router: axum::Router) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(rt.clone(), middleware))
}

/// Rate limit, then basic auth, then the handler; the configured headers on every answer.
/// A web config that no longer parses answers 500 until it is fixed.
pub async fn middleware(
    State(rt): State<Arc<WebConfigRuntime>>,
    req: Request,
    next: Next,
) -> Response {
    let settings = match rt.request_settings() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, path = %rt.path().display(), "unable to parse the web configuration");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n").into_response();
        }
    };
    if let Some(l) = rt.limiter() {
        if !l.allow() {
            return (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response();
        }
    }
    let mut resp = if settings.users.is_empty() {
        next.run(req).await
    } else {
        let result = match basic_auth::credentials(req.headers()) {
            Some((u, p)) => {
                let client = req
                    .extensions()
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                    .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
                rt.authenticator()
                    .check_from(client, &settings.users, &u, &p)
                    .await
            }
            None => AuthResult::Denied,
        };
        match result {
            AuthResult::Allowed => next.run(req).await,
            AuthResult::Denied => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic")],
                "Unauthorized\n",
            )
                .into_response(),
            AuthResult::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "too many authentication checks in progress\n",
            )
                .into_response(),
            AuthResult::TooMany => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                "too many authentication checks in progress from this address\n",
            )
                .into_response(),
        }
    };
    for (k, v) in &settings.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

//! The page assets served as files, so that the pages need no inline script or style and
//! work under a strict Content-Security-Policy; and the default policy itself, sent on
//! every answer unless the web config's `http_server_config.headers` sets its own.
//!
//! | path | what |
//! |---|---|
//! | `/-/static/upgrade.js` | the `/upgrade` page's in-place refresh |
//! | `/-/static/upgrade.css` | the `/upgrade` page's style |
//! | `/-/static/landing.css` | the landing page's style |

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The policy sent when the web config sets none: nothing but same-origin scripts, styles,
/// images and fetches; no plugins, frames, forms or base URL changes.
pub const DEFAULT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The landing page's style (linked from `web/landing.html`).
const LANDING_CSS: &str = "body{font-family:sans-serif;margin:2em;max-width:70em}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
.up{color:#1a7f37}.down{color:#cf222e}";

fn asset(content_type: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The asset routes, to be merged into the exporter's router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/-/static/upgrade.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    crate::pages::upgrade::script(),
                )
            }),
        )
        .route(
            "/-/static/upgrade.css",
            get(|| async {
                asset(
                    "text/css; charset=utf-8",
                    crate::pages::upgrade::stylesheet(),
                )
            }),
        )
        .route(
            "/-/static/landing.css",
            get(|| async { asset("text/css; charset=utf-8", LANDING_CSS.to_string()) }),
        )
}

/// Adds [`DEFAULT_CSP`] to an answer that has no policy (the web config's headers are set
/// after this, over it).
pub async fn default_csp(mut resp: Response) -> Response {
    resp.headers_mut()
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(DEFAULT_CSP));
    resp
}

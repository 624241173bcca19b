//! `/-/reload` is for operators' tools (curl, config management, the kubelet), never for a
//! web page. A browser marks every cross-site or scripted request it sends: `Origin` on
//! every POST and PUT (forms and `fetch` alike), and `Sec-Fetch-Site` on every request of a
//! current browser. A request carrying either is refused (403), web config or not, so a
//! page elsewhere cannot make a visitor's browser reload the exporter (CSRF), nor can one
//! whose host name was rebound to the exporter's address (DNS rebinding). Tools send
//! neither header.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// `Some(403 answer)` when `headers` show a browser's request.
pub fn refuse_browsers(headers: &HeaderMap) -> Option<Response> {
    let from_browser = headers.contains_key("origin") || headers.contains_key("sec-fetch-site");
    from_browser.then(|| {
        (
            StatusCode::FORBIDDEN,
            "/-/reload does not accept requests from web pages (Origin or Sec-Fetch-Site \
             present); use curl, your configuration tool, or SIGHUP\n",
        )
            .into_response()
    })
}

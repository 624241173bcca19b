//! HTTP requests to what the tests start: raw HTTP/1.1 over TCP or any stream (to control
//! every byte, or to talk to a server under abuse), a blocking variant for tests without a
//! runtime, and a reqwest GET; plus waiting until a condition holds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A reply read to the end of the connection.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The status line and headers, lower-cased.
    pub head: String,
    /// The body, as text.
    pub body: String,
    /// The server's certificate (DER), when the caller spoke TLS and kept it.
    pub server_cert: Option<Vec<u8>>,
}

/// A request with `Connection: close` and the given extra header lines (each without CRLF).
pub fn request_text(method: &str, path: &str, headers: &[String]) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("Connection: close\r\nContent-Length: 0\r\n\r\n");
    r
}

/// Parses a raw reply.
pub fn parse_reply(raw: &[u8]) -> std::io::Result<Reply> {
    let text = String::from_utf8_lossy(raw).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::other(format!("no HTTP reply: {:?}", &text[..text.len().min(64)]))
        })?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok(Reply {
        status,
        head: head.to_lowercase(),
        body: body.to_string(),
        server_cert: None,
    })
}

/// Writes `request` on `s` and reads the reply to the end (a close without TLS
/// close_notify after a full reply is accepted).
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &str,
) -> std::io::Result<Reply> {
    s.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    if let Err(e) = s.read_to_end(&mut buf).await {
        if buf.is_empty() {
            return Err(e);
        }
    }
    parse_reply(&buf)
}

/// `GET path` on a fresh TCP connection to `addr`, with extra header lines.
pub async fn http_get(addr: SocketAddr, path: &str, headers: &[String]) -> std::io::Result<Reply> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    exchange(s, &request_text("GET", path, headers)).await
}

/// A blocking request to `127.0.0.1:port` (for tests without an async runtime); None when
/// nothing answers.
pub fn http_blocking(method: &str, port: u16, path: &str) -> Option<Reply> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request_text(method, path, &[]).as_bytes())
        .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    parse_reply(&out).ok()
}

/// Blocks until `GET path` on `port` answers 200 with a body `want` accepts (20 s at most);
/// returns that body.
pub fn wait_for_body(port: u16, path: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(r) = http_blocking("GET", port, path) {
            if r.status == 200 && want(&r.body) {
                return r.body;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {path}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET url` with reqwest (no proxy, 20 s timeout): status and body, None when it fails.
pub async fn get(url: &str) -> Option<(u16, String)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .no_proxy()
        .build()
        .ok()?;
    let r = client.get(url).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

/// Polls `f` every 200 ms until it is true; panics after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}: not within {timeout:?}");
}

/// One request through `router` (no socket): the status, the headers and the body.
pub async fn oneshot(
    router: &axum::Router,
    uri: &str,
    headers: &[(&str, &str)],
) -> (axum::http::StatusCode, axum::http::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = router
        .clone()
        .oneshot(req.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

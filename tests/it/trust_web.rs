//! Trust boundaries of the served web layer (issue 18): a web configuration that loses its
//! authentication while serving is refused and the previous one kept.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use axum::routing::get;
use axum::Router;
use bitbucket_zdu_exporter::server::{self, ServeOptions};
use bitbucket_zdu_exporter::web::{runtime, WebConfigRuntime};

fn users_fixture() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/web-config/users.good.yml");
    std::fs::read_to_string(p).unwrap()
}

/// Serves a tiny router behind the web config `yaml` (written to a temp dir).
async fn serve(yaml: &str) -> (SocketAddr, PathBuf, tempfile::TempDir) {
    bitbucket_zdu_exporter::client::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(&path, yaml).unwrap();
    let wc = WebConfigRuntime::load(&path).expect("valid config");
    let router = Router::new().route("/metrics", get(|| async { "up 1\n" }));
    let listeners = server::bind_all(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let opts = ServeOptions {
        web_config: Some(wc),
        ..ServeOptions::default()
    };
    tokio::spawn(server::serve_with(
        listeners,
        router,
        std::future::pending::<()>(),
        Duration::from_secs(2),
        opts,
    ));
    (addr, path, dir)
}

async fn status(addr: SocketAddr, auth: Option<&str>) -> u16 {
    let headers: Vec<String> = auth
        .map(|a| format!("Authorization: Basic {a}"))
        .into_iter()
        .collect();
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    exchange(s, &request_text("GET", "/metrics", &headers))
        .await
        .unwrap()
        .status
}

/// Issue 18 item 1: emptying the file, leaving a comment, or `basic_auth_users: {}` while
/// serving used to turn authentication off on every endpoint without a log line.
#[tokio::test]
async fn a_web_config_that_loses_basic_auth_at_runtime_is_refused() {
    let (addr, path, _dir) = serve(&users_fixture()).await;
    assert_eq!(status(addr, None).await, 401);
    let before = runtime::auth_drops_refused_total();
    for (n, lossy) in ["", "# about to be rewritten\n", "basic_auth_users: {}\n"]
        .into_iter()
        .enumerate()
    {
        std::fs::write(&path, lossy).unwrap();
        assert_eq!(status(addr, None).await, 401, "auth lost with {lossy:?}");
        assert_eq!(status(addr, None).await, 401, "auth lost with {lossy:?}");
        // Each distinct content is counted once (other tests may count too: at least).
        assert!(runtime::auth_drops_refused_total() > before + n as u64);
    }
    // bob:bob-secret still works: the previous users are in force.
    assert_eq!(status(addr, Some("Ym9iOmJvYi1zZWNyZXQ=")).await, 200);
    // A rewrite that keeps users is taken.
    let only_alice: String = users_fixture()
        .lines()
        .filter(|l| !l.contains("bob"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, only_alice).unwrap();
    assert_eq!(status(addr, Some("Ym9iOmJvYi1zZWNyZXQ=")).await, 401);
}

/// The operator's way out: a restart without users serves without authentication.
#[tokio::test]
async fn starting_without_users_serves_without_auth() {
    let (addr, path, _dir) = serve("").await;
    assert_eq!(status(addr, None).await, 200);
    std::fs::write(&path, "# still none\n").unwrap();
    assert_eq!(status(addr, None).await, 200);
}

/// Starts the exporter binary with `args` on a free port; returns it and the port.
fn exporter(args: &[String]) -> (Proc, u16) {
    let port = free_port();
    let mut all = vec![
        "--bitbucket.url=http://127.0.0.1:9".to_string(),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    all.extend_from_slice(args);
    let p = Proc::spawn(&all, &[]);
    wait_for_body(port, "/-/healthy", |_| true);
    (p, port)
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.head
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

/// Item 13: no CSP was sent by default, and the toolkit-allowed
/// `Content-Security-Policy: default-src 'self'` blocked the page's inline script and style,
/// so it stopped refreshing. The page now has neither; its script and style are files.
#[test]
fn the_upgrade_page_needs_no_inline_code_and_a_safe_csp_is_the_default() {
    let (_p, port) = exporter(&[]);
    let page = http_blocking("GET", port, "/upgrade").unwrap();
    assert_eq!(page.status, 200);
    let csp = header(&page, "content-security-policy").expect("a default CSP");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!page.body.contains("<script>") && !page.body.contains("<style"));
    assert!(!page.body.contains("style=\""), "inline style attribute");
    for (path, kind) in [
        ("/-/static/upgrade.js", "text/javascript"),
        ("/-/static/upgrade.css", "text/css"),
        ("/-/static/landing.css", "text/css"),
    ] {
        assert!(
            page.body.contains(path) || path.contains("landing"),
            "{path}"
        );
        let r = http_blocking("GET", port, path).unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert!(
            header(&r, "content-type").unwrap().starts_with(kind),
            "{path}"
        );
        assert!(!r.body.is_empty());
    }
    let landing = http_blocking("GET", port, "/").unwrap();
    assert!(!landing.body.contains("<style") && !landing.body.contains("<script>"));
}

/// A web config's `Content-Security-Policy` replaces the default.
#[test]
fn a_web_config_csp_overrides_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "http_server_config:\n  headers:\n    Content-Security-Policy: default-src 'self'\n",
    )
    .unwrap();
    let (_p, port) = exporter(&[format!("--web.config.file={}", web.display())]);
    let page = http_blocking("GET", port, "/upgrade").unwrap();
    let csps: Vec<&str> = page
        .head
        .lines()
        .filter(|l| l.starts_with("content-security-policy:"))
        .collect();
    assert_eq!(csps, ["content-security-policy: default-src 'self'"]);
}

/// Also seen: `/-/reload` had no CSRF or DNS-rebinding protection without a web config. A
/// request a browser sends (it carries `Origin` or `Sec-Fetch-Site`) is now refused; tools
/// (curl, config management) send neither and still reload.
#[test]
fn reload_refuses_requests_from_web_pages() {
    let (_p, port) = exporter(&[]);
    let post = |headers: &[&str]| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        let req = request_text("POST", "/-/reload", &headers);
        std::io::Write::write_all(&mut s, req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut out);
        parse_reply(&out).unwrap().status
    };
    assert_eq!(post(&["Origin: http://evil.example"]), 403);
    assert_eq!(post(&["Origin: null"]), 403);
    assert_eq!(post(&["Sec-Fetch-Site: same-origin"]), 403);
    assert_eq!(post(&[]), 200, "a tool's reload still works");
}

//! Helper servers for `scripts/bench.sh`. Two modes:
//!
//! - `serve-file --content-type CT [--content-encoding gzip] FILE`: answers every `GET` with the
//!   exact bytes of FILE (read once, kept in memory) and those headers. The benchmark fetches
//!   the exporter's own `/metrics` body once and serves it here: the "static bytes" baseline
//!   that the exporter is measured against, with the same HTTP stack (axum on hyper, tokio's
//!   multi-threaded runtime, as the exporter).
//! - `upstream --nodes N`: a fixed Bitbucket ZDU API, `GET /rest/zdu/cluster` and
//!   `GET /rest/zdu/state`, for N nodes (one upgraded, so the cluster is `MIXED`), with any HTTP
//!   Basic credentials. The built-in `simulate` command caps a cluster at 12 nodes
//!   (`clamp(2, 12)`), and the benchmark needs 1000 and 5000; the bodies are built once at
//!   start, so the upstream costs the exporter's polls nothing but the transfer.
//!
//! Both print `listening on http://ADDR` on stdout once bound (`--listen 127.0.0.1:0` picks a
//! free port) and run until killed.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "Static-bytes server and fixed ZDU upstream for scripts/bench.sh")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Serve FILE's bytes, unchanged, on every GET.
    ServeFile {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        #[arg(long)]
        content_type: String,
        #[arg(long)]
        content_encoding: Option<String>,
        file: PathBuf,
    },
    /// A fixed N-node Bitbucket ZDU API (MIXED: node 0 is on the next version).
    Upstream {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        #[arg(long)]
        nodes: usize,
    },
}

#[derive(Clone)]
struct StaticBody {
    body: Bytes,
    content_type: HeaderValue,
    content_encoding: Option<HeaderValue>,
}

async fn serve_static(State(s): State<StaticBody>) -> Response {
    let mut resp = Response::new(Body::from(s.body.clone()));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, s.content_type.clone());
    if let Some(enc) = &s.content_encoding {
        h.insert(header::CONTENT_ENCODING, enc.clone());
    }
    resp
}

#[derive(Clone)]
struct Upstream {
    cluster: Bytes,
    state: Bytes,
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Basic "))
}

fn json_response(headers: &HeaderMap, body: &Bytes) -> Response {
    if !authorized(headers) {
        return (StatusCode::UNAUTHORIZED, "Basic credentials required\n").into_response();
    }
    ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
}

const BASE: &str = "http://bitbucket.bench.example:7990";
const VERSION: &str = "8.19.0";
const NEXT: &str = "8.19.1";

/// Node `i` as Bitbucket's `/rest/zdu/cluster` lists it (the simulator's shape).
fn node_json(i: usize, local: bool) -> Value {
    let version = if i == 0 { NEXT } else { VERSION };
    let build = if i == 0 { "8019001" } else { "8019000" };
    let id = format!(
        "{:08x}-0000-4000-8000-{:012x}",
        0x5eed_0000u32 + i as u32,
        i + 1
    );
    json!({
        "id": id,
        "name": format!("bitbucket-{i}"),
        "ipAddress": format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
        "state": "ACTIVE",
        "tasksTotal": 3 + (i % 50) as u64,
        "activeUserCount": 20 + (7 * i % 500) as u64,
        "buildNumber": build,
        "version": version,
        "local": local,
        "portNumber": 5701,
        "links": [{"rel": "self", "href": format!("{BASE}/rest/zdu/nodes/{id}")}],
    })
}

fn upstream_bodies(nodes: usize) -> anyhow::Result<Upstream> {
    anyhow::ensure!(
        nodes >= 2,
        "--nodes must be at least 2 (one upgraded, one not)"
    );
    let cluster = json!({
        "upgradeModeEnabled": true,
        "state": "MIXED",
        "originalVersion": VERSION,
        "nodes": (0..nodes).map(|i| node_json(i, i == 1)).collect::<Vec<_>>(),
        "links": [{"rel": "self", "href": format!("{BASE}/rest/zdu/cluster")}],
    });
    let state = json!({"state": "MIXED", "buildInfo": node_json(1, true)});
    Ok(Upstream {
        cluster: Bytes::from(serde_json::to_vec(&cluster)?),
        state: Bytes::from(serde_json::to_vec(&state)?),
    })
}

async fn run(listen: SocketAddr, app: Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.mode {
        Mode::ServeFile {
            listen,
            content_type,
            content_encoding,
            file,
        } => {
            let body =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let state = StaticBody {
                body: Bytes::from(body),
                content_type: HeaderValue::from_str(&content_type)?,
                content_encoding: content_encoding
                    .map(|e| HeaderValue::from_str(&e))
                    .transpose()?,
            };
            let app = Router::new().fallback(get(serve_static)).with_state(state);
            rt.block_on(run(listen, app))
        }
        Mode::Upstream { listen, nodes } => {
            let up = upstream_bodies(nodes)?;
            let app = Router::new()
                .route(
                    "/rest/zdu/cluster",
                    get(|State(u): State<Upstream>, h: HeaderMap| async move {
                        json_response(&h, &u.cluster)
                    }),
                )
                .route(
                    "/rest/zdu/state",
                    get(|State(u): State<Upstream>, h: HeaderMap| async move {
                        json_response(&h, &u.state)
                    }),
                )
                .with_state(up);
            rt.block_on(run(listen, app))
        }
    }
}

//! The one test harness every integration test uses (`use crate::common::*;`):
//!
//! - here: an in-process simulator on loopback, target configs pointing at it, one-shot
//!   polls and rendering;
//! - [`upstream`]: the mock Bitbucket (raw TCP, TLS optional) that answers well or fails in
//!   a chosen way, and records every request;
//! - [`process`]: the real binary as a child process ([`Proc`]), [`free_port`];
//! - [`http`]: HTTP requests to what the tests start;
//! - [`exposition`]: reading sample values out of an exposition, golden files, the
//!   catalogue check;
//! - [`promtool`]: the promtool lookup, which fails loudly when promtool is missing.

pub mod exposition;
pub mod http;
pub mod process;
pub mod promtool;
pub mod upstream;

pub use exposition::*;
pub use http::*;
pub use process::*;
pub use promtool::*;
pub use upstream::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitbucket_zdu_exporter::client::ZduClient;
use bitbucket_zdu_exporter::config::TargetConfig;
use bitbucket_zdu_exporter::metrics::TargetCollector;
use bitbucket_zdu_exporter::poller::Poller;
use bitbucket_zdu_exporter::server::{render, Format};
use bitbucket_zdu_exporter::simulator::{SimulateArgs, Simulator};
use bitbucket_zdu_exporter::snapshot::TargetShared;
use bitbucket_zdu_exporter::tracker::{StateStore, Tracker};
use prometheus_client::registry::Registry;

/// A simulator served on 127.0.0.1 with its scenario script NOT running (tests set states).
pub struct Sim {
    pub sim: Arc<Simulator>,
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Sim {
    pub async fn start(args: SimulateArgs) -> Sim {
        let sim = Simulator::new(&args).expect("simulator");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = sim.router();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Sim { sim, addr, server }
    }

    pub async fn stable(nodes: usize) -> Sim {
        Sim::start(SimulateArgs {
            nodes,
            responder: 0,
            ..SimulateArgs::default()
        })
        .await
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// Waits (up to 5 s) until `rt` has finished its first polls.
pub async fn wait_ready(rt: &bitbucket_zdu_exporter::app::Exporter) {
    for _ in 0..250 {
        if rt.ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A target config for `url` with short timings.
pub fn target(name: &str, url: &str) -> TargetConfig {
    TargetConfig::builder(name, url)
        .timeout(Duration::from_secs(2))
        .poll_interval(Duration::from_secs(5))
        .max_age(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// A poller for `target` with an in-memory state store.
pub fn poller(target: TargetConfig) -> (Arc<TargetShared>, Poller) {
    poller_with_store(target, Arc::new(StateStore::in_memory()))
}

pub fn poller_with_store(
    target: TargetConfig,
    store: Arc<StateStore>,
) -> (Arc<TargetShared>, Poller) {
    let shared = TargetShared::new(target.clone(), &Tracker::default());
    let client = ZduClient::new(target).unwrap();
    let poller = Poller::new(client, shared.clone(), store);
    (shared, poller)
}

/// One target's metrics as `/probe` serves them: from the scrape cache.
pub fn render_target(shared: &Arc<TargetShared>, format: Format) -> String {
    bitbucket_zdu_exporter::metrics::cache::ScrapeCache::of_target(shared.clone())
        .probe(shared, format, std::time::Instant::now())
        .to_text()
}

/// One target's metrics rendered directly, without the scrape cache (the reference).
pub fn render_target_uncached(shared: &Arc<TargetShared>, format: Format) -> String {
    let mut r = Registry::default();
    r.register_collector(Box::new(TargetCollector::new(shared.clone())));
    render(&r, format)
}

/// An exporter started on `targets` (at most 8 concurrent requests, an in-memory state file),
/// once every target's first poll has finished.
pub async fn started(targets: Vec<TargetConfig>) -> Arc<bitbucket_zdu_exporter::app::Exporter> {
    let cfg = bitbucket_zdu_exporter::config::Config::builder(targets)
        .max_requests(8)
        .build()
        .unwrap();
    let rt = bitbucket_zdu_exporter::app::Exporter::start(
        &cfg,
        Arc::new(StateStore::in_memory()),
        None,
        None,
    )
    .unwrap();
    wait_ready(&rt).await;
    rt
}

/// What `bitbucket-zdu-exporter --config.file PATH` parses into: the validated flags (kept
/// for reloads) and the configuration read from the file (environment: the process's).
pub fn from_config_file(
    path: &std::path::Path,
) -> (
    bitbucket_zdu_exporter::config::ExporterArgs,
    bitbucket_zdu_exporter::config::Config,
) {
    let args = bitbucket_zdu_exporter::cli::Cli::try_parse_checked_from([
        "bitbucket-zdu-exporter",
        "--config.file",
        path.to_str().expect("a UTF-8 path"),
    ])
    .expect("the flags parse")
    .exporter;
    let config = bitbucket_zdu_exporter::config::Config::from_args(
        &args,
        &bitbucket_zdu_exporter::config::ProcessEnv,
    )
    .expect("the config file is valid");
    (args, config)
}

/// Standard base64 of `input`.
pub fn b64(input: impl AsRef<[u8]>) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

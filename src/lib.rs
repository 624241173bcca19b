//! bitbucket-zdu-exporter: a Prometheus exporter and alerting sidecar for Bitbucket Data
//! Center rolling upgrades (ZDU).
//!
//! Flow: [`config`] validates flags and files into a [`config::Config`]; [`app::Runtime`]
//! starts one [`poller::Poller`] per target, which reads the API through [`client`] into
//! [`model`] types and publishes immutable snapshots; [`server`] serves them, rendered by
//! [`metrics`] once per snapshot and format ([`metrics::cache`]), behind the
//! exporter-toolkit style [`web`] layer (TLS, basic auth, headers, rate limit, landing page).
//! [`run`] is the start-up sequence `main` calls and [`cli`] the command line it parses.
//! With the default `simulator` feature, `simulator` is a fake ZDU API for demos and tests,
//! and `demo` runs both in one process; nothing else depends on them. [`cli_docs`] writes
//! shell completions and man pages from the clap definitions.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod build;
pub mod cli;
pub mod cli_docs;
pub mod client;
pub mod config;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod duration;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod poller;
pub mod progress;
pub mod rollout;
pub mod rollout_safety;
pub mod run;
pub mod safe_file;
pub mod secret;
pub mod server;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod status;
pub mod status_page;
pub mod tracker;
pub mod upgrade_page;
pub mod upgrade_view;
pub mod upstream_tls;
pub mod web;

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

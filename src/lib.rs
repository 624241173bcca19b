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

pub mod api;
pub mod app;
pub mod cli;
pub mod client;
pub mod config;
pub mod duration;
pub mod metrics;
pub mod model;
pub mod pages;
pub mod poller;
pub mod reload;
pub mod secret;
pub mod server;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod snapshot;
pub mod tracker;
pub mod version;
pub mod web;

//! bitbucket-zdu-exporter: a Prometheus exporter and alerting sidecar for Bitbucket Data
//! Center rolling upgrades (ZDU).
//!
//! # Module map
//!
//! Listed from the command line down; a module imports only modules below it (no import
//! cycle). The data's path: [`client`] reads `/rest/zdu/cluster` and `/rest/zdu/state` into
//! [`model`] values; [`poller`] folds them into the [`tracker`] and publishes one
//! [`snapshot::TargetSnapshot`] per target; every reader renders the snapshot, judged by
//! [`snapshot::TargetSnapshot::health`]: [`metrics`] (cached per snapshot and format by
//! [`metrics::cache`]), and [`api`]'s projection for the JSON API, [`pages`] and the
//! `status` command.
//!
//! | module | what it is |
//! |---|---|
//! | [`cli`] | the command line and every mode: the exporter ([`cli::exporter`]), `demo`, `simulate`, `status`, `completions`/`man` ([`cli::docs`]), logging set-up |
//! | [`server`] | the HTTP side: router, handlers, content negotiation, serve loop |
//! | [`pages`] | the HTML pages: the landing page (`/`) and the live upgrade page (`/upgrade`) |
//! | [`app`] | the running exporter ([`app::Exporter`]): targets, their pollers, reload |
//! | [`api`] | the JSON API's shapes and the projection every reader renders |
//! | [`metrics`] | the metric catalogue, the groups that encode it, the scrape cache |
//! | [`poller`] | one poll loop per target: backoff, its own counters, publishing |
//! | [`snapshot`] | what a poll publishes, and the one reading of a target (pending / up / down) |
//! | [`tracker`] | what is remembered across polls (entered times, transitions, upgrade progress) and the state file |
//! | [`client`] | the upstream HTTP client, its errors, TLS towards the upstream ([`client::tls`]) and the calls and failure reasons per product ([`client::product`]) |
//! | [`model`] | the ZDU payloads and their lenient decoding; the product ([`model::Product`]), Jira's API ([`model::jira`]) and Confluence's and Jira's extra fields ([`model::extras`]) |
//! | [`config`] | flags and files validated into a [`config::Config`] |
//! | [`web`] | the exporter-toolkit web layer: TLS, basic auth, headers, rate limit |
//! | [`reload`] | the outcome of the last configuration (re)load |
//! | [`secret`] | credentials that never print |
//! | [`sys`] | what comes from the system: durations and the Unix clock, files read safely (a FIFO never blocks), the build's version |
//! | `simulator` | (default feature) a fake ZDU API for `demo`, `simulate` and tests; nothing else depends on it |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod cli;
pub mod client;
pub mod config;
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
pub mod sys;
pub mod tracker;
pub mod web;

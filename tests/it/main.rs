//! The integration tests, one binary: each module is one former test file, and `common` is
//! the harness they share. One binary links once instead of once per file.

mod common;

mod abuse;
mod cli;
mod cli_docs;
mod exporter;
mod faults;
mod fleet;
mod fuzz_regressions;
mod golden;
mod metrics_contract;
mod products;
mod readers_agree;
mod router;
mod scenarios;
mod scrape_cache;
mod secrets;
mod simulator_api;
mod status;
mod trust_config;
mod trust_fifo;
mod trust_series;
mod trust_state;
mod trust_status;
mod trust_web;
mod upgrade_api;
mod web_config;

//! Rendering: turns the latest [`crate::snapshot::TargetSnapshot`] into
//! Prometheus metrics; [`cache`] does that once per snapshot and format and serves the bytes.
//!
//! We use the Prometheus org's `prometheus-client` crate: its [`Collector`](prometheus_client::collector::Collector) trait lets a
//! scrape encode straight from an immutable snapshot (no mutable metric objects to keep in
//! sync, no stale label sets to delete when a node leaves), and it encodes both OpenMetrics
//! 1.0.0 and the classic text format 0.0.4. See `docs/design.md`.
//!
//! Every family is described once in [`catalogue`]; one module per group encodes it
//! ([`cluster`], [`nodes`], [`responder`], [`polls`], [`exporter`], and [`process`]),
//! supplying only label values and sample values.

//! This file is the module's face: it declares the groups and hands their names on. The
//! shared encoding helpers are in [`encode`], one target's families in [`target`].

pub mod cache;
pub mod catalogue;
pub mod cluster;
pub mod contract;
pub mod encode;
pub mod exporter;
pub mod exposition;
pub mod family;
pub mod nodes;
pub mod polls;
pub mod process;
pub mod responder;
pub mod target;
pub mod upgrade;

pub use catalogue::{Family, Group, Kind};
pub use encode::{
    bit, counters, gauges, named_one_hot, one_hot, sanitize_state, unlabelled, Sample,
};
pub use exporter::ExporterCollector;
pub use exposition::{render, render_families, Format, OPENMETRICS, TEXT_004};
pub use family::Descriptor;
pub use target::{encode_target, SnapshotCollector, TargetCollector};

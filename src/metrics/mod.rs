//! Rendering: turns the latest [`TargetSnapshot`] into
//! Prometheus metrics; [`cache`] does that once per snapshot and format and serves the bytes.
//!
//! We use the Prometheus org's `prometheus-client` crate: its [`Collector`] trait lets a
//! scrape encode straight from an immutable snapshot (no mutable metric objects to keep in
//! sync, no stale label sets to delete when a node leaves), and it encodes both OpenMetrics
//! 1.0.0 and the classic text format 0.0.4. See `docs/design.md`.
//!
//! Every family is described once in [`catalogue`]; one module per group encodes it
//! ([`cluster`], [`nodes`], [`responder`], [`polls`], [`exporter`], and [`process`]),
//! supplying only label values and sample values.

use std::fmt;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeCounterValue, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::config::TargetConfig;
use crate::model::NodeState;
use crate::poller::{TargetShared, TargetSnapshot};

pub mod cache;
pub mod catalogue;
pub mod cluster;
pub mod exporter;
pub mod exposition;
pub mod nodes;
pub mod polls;
pub mod process;
pub mod responder;
pub mod upgrade;

pub use catalogue::{Family, Group, Kind};
pub use exporter::ExporterCollector;
pub use exposition::{render, render_families, Format, OPENMETRICS, TEXT_004};

/// One sample: the label values (in the order of [`Family::labels`]) and the value.
pub type Sample<T> = (Vec<String>, T);

/// A sample without labels.
pub fn unlabelled<T>(v: T) -> Vec<Sample<T>> {
    vec![(Vec::new(), v)]
}

/// 1.0 for true, 0.0 for false.
pub fn bit(v: bool) -> f64 {
    if v {
        1.0
    } else {
        0.0
    }
}

fn label_set(family: &Family, values: &[String]) -> Vec<(&'static str, String)> {
    debug_assert_eq!(
        family.labels.len(),
        values.len(),
        "{}: label values do not match the catalogue's label names",
        family.name
    );
    family
        .labels
        .iter()
        .copied()
        .zip(values.iter().cloned())
        .collect()
}

/// Writes one family of the catalogue, each sample's value made a metric by `metric`;
/// nothing when there are no samples.
fn encode_family<T: Copy, M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    family: &Family,
    samples: &[Sample<T>],
    metric: impl Fn(T) -> M,
) -> fmt::Result {
    if samples.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(family.name, family.help, None, family.kind.metric_type())?;
    for (values, v) in samples {
        metric(*v).encode(m.encode_family(&label_set(family, values))?)?;
    }
    Ok(())
}

/// Writes one gauge family of the catalogue; nothing when there are no samples.
pub fn gauges(
    enc: &mut DescriptorEncoder<'_>,
    family: &Family,
    samples: &[Sample<f64>],
) -> fmt::Result {
    debug_assert_eq!(family.kind, Kind::Gauge, "{}", family.name);
    encode_family(enc, family, samples, ConstGauge::new)
}

/// Writes one counter family of the catalogue (the encoder adds `_total`); nothing when there
/// are no samples.
pub fn counters<N: EncodeCounterValue + Copy>(
    enc: &mut DescriptorEncoder<'_>,
    family: &Family,
    samples: &[Sample<N>],
) -> fmt::Result {
    debug_assert_eq!(family.kind, Kind::Counter, "{}", family.name);
    encode_family(enc, family, samples, ConstCounter::new)
}

/// A `state`-labelled one-hot family: one sample per known value (1 for `current`, 0 for
/// the others), then `OTHER` at 1 for an unknown `current`.
pub fn one_hot<S: PartialEq>(
    known: &[S],
    current: Option<&S>,
    as_str: fn(&S) -> &str,
    is_unknown: fn(&S) -> bool,
) -> Vec<Sample<f64>> {
    let mut out: Vec<Sample<f64>> = known
        .iter()
        .map(|s| (vec![as_str(s).to_string()], bit(current == Some(s))))
        .collect();
    if let Some(raw) = current.filter(|c| is_unknown(c)) {
        out.push((vec![sanitize_state(as_str(raw))], 1.0));
    }
    out
}

/// The label value of an unknown enum value: always
/// [`OTHER_STATE`](crate::model::keys::OTHER_STATE), one bucket kept apart from the known
/// names and bounded whatever the upstream invents (the raw value is not a label).
pub fn sanitize_state(_raw: &str) -> String {
    crate::model::keys::OTHER_STATE.to_string()
}

/// The `state` label of a node state this version does not list in [`NodeState::KNOWN`]:
/// an unknown value (sanitised) or `UNKNOWN` for null; `None` for a known state.
pub(crate) fn extra_state_label(state: &Option<NodeState>) -> Option<String> {
    match state {
        Some(NodeState::Unknown(raw)) => Some(sanitize_state(raw)),
        None => Some("UNKNOWN".to_string()),
        Some(_) => None,
    }
}

/// The metrics of one target, rendered from its latest snapshot.
#[derive(Debug)]
pub struct TargetCollector {
    shared: std::sync::Arc<TargetShared>,
}

impl TargetCollector {
    /// A collector reading `shared`'s latest snapshot at every scrape.
    pub fn new(shared: std::sync::Arc<TargetShared>) -> Self {
        TargetCollector { shared }
    }
}

impl Collector for TargetCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let config = self.shared.config.load();
        encode_target(
            &mut enc,
            &self.shared.snapshot.load(),
            &config,
            Instant::now(),
        )
    }
}

/// Writes the metrics of one target from `snap` and its `config` as seen at `now`. The output
/// depends on `now` only through the freshness verdict ([`cache::Verdict`]): that is what
/// lets [`cache`] keep it until the snapshot, the config or the verdict changes. A family
/// may read the snapshot and the config (e.g. the poll interval); one whose value depends
/// on the scrape time itself does not belong here.
pub fn encode_target(
    enc: &mut DescriptorEncoder<'_>,
    snap: &TargetSnapshot,
    config: &TargetConfig,
    now: Instant,
) -> fmt::Result {
    let fresh = snap.fresh_cluster(now);
    cluster::encode(enc, snap, fresh, now)?;
    if let Some(view) = fresh {
        nodes::encode(enc, view)?;
    }
    if let Some(r) = snap.fresh_responder(now) {
        responder::encode(enc, r)?;
    }
    polls::encode(enc, snap, config.poll_interval())?;
    upgrade::encode(enc, &snap.progress, fresh.is_some())
}

/// The metrics of one fixed snapshot and config at a fixed instant (what [`cache`] renders).
#[derive(Debug)]
pub struct SnapshotCollector {
    /// The target's snapshot.
    pub(crate) snapshot: std::sync::Arc<TargetSnapshot>,
    /// The target's configuration.
    pub(crate) config: std::sync::Arc<TargetConfig>,
    /// The instant freshness is judged at.
    pub(crate) now: Instant,
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        encode_target(&mut enc, &self.snapshot, &self.config, self.now)
    }
}

//! The upgrade group: the rolling upgrade in flight (start, nodes, nodes done, ETA) while the
//! cluster data is fresh, and the finished upgrades (per result, last duration, per-node
//! duration histogram) always, from the persisted [`Progress`].

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::catalogue::{
    LAST_UPGRADE_DURATION, NODE_UPGRADE_DURATION, UPGRADES, UPGRADE_ETA, UPGRADE_NODES,
    UPGRADE_NODES_DONE, UPGRADE_STARTED,
};
use super::{counters, gauges, unlabelled, Kind};
use crate::model::Product;
use crate::tracker::progress::{DurationHistogram, Progress, UpgradeResult};

/// Writes the upgrade group of a target of `product`; `fresh` says whether the cluster data
/// is fresh (the in-flight figures are served only then).
pub fn encode(
    enc: &mut DescriptorEncoder<'_>,
    product: Product,
    progress: &Progress,
    fresh: bool,
) -> fmt::Result {
    if let Some(u) = progress.current.as_ref().filter(|_| fresh) {
        gauges(
            enc,
            UPGRADE_STARTED.describe(product),
            &unlabelled(u.started),
        )?;
        gauges(
            enc,
            UPGRADE_NODES.describe(product),
            &unlabelled(u.nodes_total() as f64),
        )?;
        gauges(
            enc,
            UPGRADE_NODES_DONE.describe(product),
            &unlabelled(u.nodes_done() as f64),
        )?;
        if let Some(eta) = u.estimated_completion() {
            gauges(enc, UPGRADE_ETA.describe(product), &unlabelled(eta))?;
        }
    }
    let results: Vec<(Vec<String>, u64)> = UpgradeResult::ALL
        .iter()
        .map(|r| (vec![r.as_str().to_string()], progress.results.get(*r)))
        .collect();
    counters(enc, UPGRADES.describe(product), &results)?;
    if let Some(last) = progress.last() {
        gauges(
            enc,
            LAST_UPGRADE_DURATION.describe(product),
            &unlabelled(last.duration_seconds()),
        )?;
    }
    histogram(enc, product, &progress.node_durations)
}

/// A histogram read from persisted counts.
struct ConstHistogram<'a>(&'a DurationHistogram);

impl EncodeMetric for ConstHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        encoder.encode_histogram::<NoLabelSet>(self.0.sum, self.0.count, &self.0.pairs(), None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn histogram(
    enc: &mut DescriptorEncoder<'_>,
    product: Product,
    h: &DurationHistogram,
) -> fmt::Result {
    let Some(d) = NODE_UPGRADE_DURATION.describe(product) else {
        return Ok(());
    };
    debug_assert_eq!(d.family.kind, Kind::Histogram);
    let m = enc.encode_descriptor(&d.name, &d.help, None, d.family.kind.metric_type())?;
    ConstHistogram(h).encode(m)
}

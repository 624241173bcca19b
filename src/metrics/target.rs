//! One target's families, in the order they are exposed: cluster, nodes, responder, polls,
//! upgrade; as a collector reading the latest snapshot, or one fixed snapshot (the cache's).

use std::fmt;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{cluster, nodes, polls, responder, upgrade};
use crate::config::TargetConfig;
use crate::snapshot::{TargetShared, TargetSnapshot};

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

/// Writes the metrics of one target from `snap` and its `config` as seen at `now`, each
/// family named and described for the target's product and only if the product has it
/// ([`super::Family::describe`]). The output
/// depends on `now` only through the freshness verdict ([`super::cache::Verdict`]): that is what
/// lets [`super::cache`] keep it until the snapshot, the config or the verdict changes. A family
/// may read the snapshot and the config (e.g. the poll interval); one whose value depends
/// on the scrape time itself does not belong here.
pub fn encode_target(
    enc: &mut DescriptorEncoder<'_>,
    snap: &TargetSnapshot,
    config: &TargetConfig,
    now: Instant,
) -> fmt::Result {
    let product = config.product();
    let health = snap.health(now);
    cluster::encode(enc, product, health)?;
    if let Some(view) = health.cluster() {
        nodes::encode(enc, product, view)?;
    }
    if let Some(r) = snap.fresh_responder(now) {
        responder::encode(enc, product, r)?;
    }
    polls::encode(enc, product, snap, config.poll_interval())?;
    upgrade::encode(enc, product, &snap.progress, health.is_up())
}

/// The metrics of one fixed snapshot and config at a fixed instant (what [`super::cache`] renders).
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

//! The exporter group: the exporter's own build, targets, reload status and state-file errors, followed by the
//! process group ([`super::process`]).

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::catalogue::{
    EXPORTER_BUILD_INFO, EXPORTER_RELOAD_SUCCESSFUL, EXPORTER_RELOAD_SUCCESS_TIMESTAMP,
    EXPORTER_STATE_FILE_ERRORS, EXPORTER_TARGETS, EXPORTER_WEB_CONFIG_REFUSED,
};
use super::{bit, counters, gauges, unlabelled};
use crate::snapshot::TargetShared;

/// The exporter's own metrics: build info, targets, reloads and the process.
#[derive(Debug)]
pub struct ExporterCollector {
    /// The outcome of the last configuration (re)load.
    pub status: Arc<crate::reload::ReloadStatus>,
    /// The configured targets.
    pub targets: Arc<arc_swap::ArcSwap<Vec<Arc<TargetShared>>>>,
    /// The state file (its error count).
    pub store: Arc<crate::tracker::StateStore>,
}

impl Collector for ExporterCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let build = vec![
            crate::sys::version::VERSION.to_string(),
            crate::sys::version::REVISION.to_string(),
            crate::sys::version::RUSTC.to_string(),
        ];
        gauges(&mut enc, EXPORTER_BUILD_INFO.own(), &[(build, 1.0)])?;
        let targets = self.targets.load().len() as f64;
        gauges(&mut enc, EXPORTER_TARGETS.own(), &unlabelled(targets))?;
        let (ok, ts) = self.status.get();
        gauges(
            &mut enc,
            EXPORTER_RELOAD_SUCCESSFUL.own(),
            &unlabelled(bit(ok)),
        )?;
        gauges(
            &mut enc,
            EXPORTER_RELOAD_SUCCESS_TIMESTAMP.own(),
            &unlabelled(ts),
        )?;
        counters(
            &mut enc,
            EXPORTER_STATE_FILE_ERRORS.own(),
            &unlabelled(self.store.errors_total()),
        )?;
        let refused = crate::web::runtime::auth_drops_refused_total();
        counters(
            &mut enc,
            EXPORTER_WEB_CONFIG_REFUSED.own(),
            &unlabelled(refused),
        )?;
        super::process::encode(&mut enc)
    }
}

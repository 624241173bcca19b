//! The cluster group: `up`, the last error, upgrade mode, the cluster state and the original
//! version.

use std::fmt;
use std::time::Instant;

use prometheus_client::encoding::DescriptorEncoder;

use super::catalogue::{
    CLUSTER_STATE, CLUSTER_STATE_ENTERED, LAST_ERROR_INFO, ORIGINAL_VERSION_INFO, UP,
    UPGRADE_MODE_ENABLED,
};
use super::{bit, gauges, sanitize_state, unlabelled, Sample};
use crate::model::{Cluster, ClusterState};
use crate::poller::{ClusterView, TargetSnapshot};

/// Writes the cluster group; `fresh` is the snapshot's fresh cluster view, if any.
pub fn encode(
    enc: &mut DescriptorEncoder<'_>,
    snap: &TargetSnapshot,
    fresh: Option<&ClusterView>,
    now: Instant,
) -> fmt::Result {
    gauges(enc, &UP, &unlabelled(bit(fresh.is_some())))?;
    if snap.first_poll_done {
        if let Some(reason) = snap.down_reason(now) {
            gauges(enc, &LAST_ERROR_INFO, &[(vec![reason.to_string()], 1.0)])?;
        }
    }
    let Some(view) = fresh else {
        return Ok(());
    };
    let c = &view.cluster;
    if let Some(enabled) = c.upgrade_mode_enabled {
        gauges(enc, &UPGRADE_MODE_ENABLED, &unlabelled(bit(enabled)))?;
    }
    gauges(enc, &CLUSTER_STATE, &state_samples(c))?;
    if let Some(since) = view.cluster_since {
        gauges(enc, &CLUSTER_STATE_ENTERED, &unlabelled(since))?;
    }
    if let Some(v) = &c.original_version {
        gauges(enc, &ORIGINAL_VERSION_INFO, &[(vec![v.clone()], 1.0)])?;
    }
    Ok(())
}

/// One sample per known cluster state (the current one 1), plus the sanitised unknown one.
fn state_samples(c: &Cluster) -> Vec<Sample<f64>> {
    let mut states: Vec<Sample<f64>> = ClusterState::KNOWN
        .iter()
        .map(|s| {
            (
                vec![s.as_str().to_string()],
                bit(c.state.as_ref() == Some(s)),
            )
        })
        .collect();
    if let Some(ClusterState::Unknown(raw)) = &c.state {
        states.push((vec![sanitize_state(raw)], 1.0));
    }
    states
}

//! The cluster group: `up`, the last error, upgrade mode, the cluster state and the original
//! version.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::catalogue::{
    CLUSTER_STATE, CLUSTER_STATE_ENTERED, LAST_ERROR_INFO, NODE_STATE_LAST_CHANGE,
    ORIGINAL_VERSION_INFO, UP, UPGRADE_MODE_ENABLED,
};
use super::{bit, gauges, one_hot, unlabelled};
use crate::model::{ClusterState, Product};
use crate::snapshot::Health;

/// Writes the cluster group of a target of `product` that reads `health`.
pub fn encode(
    enc: &mut DescriptorEncoder<'_>,
    product: Product,
    health: Health<'_>,
) -> fmt::Result {
    gauges(enc, UP.describe(product), &unlabelled(bit(health.is_up())))?;
    let view = match health {
        Health::Pending => return Ok(()),
        Health::Down(reason) => {
            return gauges(
                enc,
                LAST_ERROR_INFO.describe(product),
                &[(vec![reason.to_string()], 1.0)],
            );
        }
        Health::Up(view) => view,
    };
    let c = &view.cluster;
    if let Some(enabled) = c.upgrade_mode_enabled {
        gauges(
            enc,
            UPGRADE_MODE_ENABLED.describe(product),
            &unlabelled(bit(enabled)),
        )?;
    }
    let states = one_hot(
        ClusterState::KNOWN,
        c.state.as_ref(),
        ClusterState::as_str,
        ClusterState::is_unknown,
    );
    gauges(enc, CLUSTER_STATE.describe(product), &states)?;
    if let Some(since) = view.cluster_since {
        gauges(
            enc,
            CLUSTER_STATE_ENTERED.describe(product),
            &unlabelled(since),
        )?;
    }
    gauges(
        enc,
        NODE_STATE_LAST_CHANGE.describe(product),
        &unlabelled(view.last_node_change),
    )?;
    if let Some(v) = &c.original_version {
        gauges(
            enc,
            ORIGINAL_VERSION_INFO.describe(product),
            &[(vec![v.clone()], 1.0)],
        )?;
    }
    Ok(())
}

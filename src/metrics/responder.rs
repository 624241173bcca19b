//! The responder group: the node that answered `GET /rest/zdu/state` and its state.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::catalogue::{RESPONDER_INFO, RESPONDER_STATE};
use super::{gauges, one_hot};
use crate::model::{NodeState, StateResponse};

/// Writes the responder group from a fresh `/state` answer (nothing without build info).
pub fn encode(enc: &mut DescriptorEncoder<'_>, r: &StateResponse) -> fmt::Result {
    let Some(node) = &r.build_info else {
        return Ok(());
    };
    let info = vec![
        node.id.clone().unwrap_or_default(),
        node.name.clone().unwrap_or_default(),
        node.version.clone().unwrap_or_default(),
    ];
    gauges(enc, &RESPONDER_INFO, &[(info, 1.0)])?;
    let states = one_hot(
        NodeState::KNOWN,
        node.state.as_ref(),
        NodeState::as_str,
        NodeState::is_unknown,
    );
    gauges(enc, &RESPONDER_STATE, &states)
}

//! The responder group: the node that answered `GET /rest/zdu/state` and its state, for the
//! products whose state answer names a node (the catalogue's product table: not Jira).

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::catalogue::{RESPONDER_INFO, RESPONDER_STATE};
use super::encode::named_one_hot;
use super::gauges;
use crate::model::{NodeState, Product, StateResponse};

/// Writes the responder group of a target of `product` from a fresh `/state` answer (nothing
/// without build info); its state over the product's node states.
pub fn encode(enc: &mut DescriptorEncoder<'_>, product: Product, r: &StateResponse) -> fmt::Result {
    let Some(node) = &r.build_info else {
        return Ok(());
    };
    let info = vec![
        node.id.clone().unwrap_or_default(),
        node.name.clone().unwrap_or_default(),
        node.version.clone().unwrap_or_default(),
    ];
    gauges(enc, RESPONDER_INFO.describe(product), &[(info, 1.0)])?;
    let states = named_one_hot(
        product.node_states(),
        node.state.as_ref().map(NodeState::as_str),
        None,
    );
    gauges(enc, RESPONDER_STATE.describe(product), &states)
}

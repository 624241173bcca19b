//! The nodes group: node entries per state, one series set per node entry, and the figures
//! derived from them (distinct versions, upgraded nodes, ghosts).

use std::collections::BTreeMap;
use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::catalogue::{
    DISTINCT_VERSIONS, GHOST_NODES, HAS_FINALIZATION_TASKS, NODES, NODES_UPGRADED,
    NODE_ACTIVE_TASKS, NODE_ACTIVE_USERS, NODE_ALIVE, NODE_FINALIZATION_ERRORS, NODE_GHOST,
    NODE_INFO, NODE_NAME_OFFLINE_SINCE, NODE_STATE, NODE_STATE_ENTERED,
};
use super::encode::named_one_hot;
use super::{bit, gauges, unlabelled, Sample};
use crate::model::{Cluster, NodeState, Product};
use crate::snapshot::ClusterObservation;

/// The `state` label of a node whose state is null.
const NULL_STATE: &str = "UNKNOWN";

/// Writes the nodes group of a target of `product` from a fresh cluster view: the state
/// families over the product's node states ([`Product::node_states`]), and every family the
/// catalogue's product table gives the product.
pub fn encode(
    enc: &mut DescriptorEncoder<'_>,
    product: Product,
    view: &ClusterObservation,
) -> fmt::Result {
    let c = &view.cluster;
    gauges(enc, NODES.describe(product), &per_state(product, c))?;
    let ids = node_ids(c);
    gauges(enc, NODE_INFO.describe(product), &info(c, &ids))?;
    gauges(
        enc,
        NODE_STATE.describe(product),
        &node_state(product, c, &ids),
    )?;
    let entered: Vec<Sample<f64>> = view
        .node_since
        .iter()
        .zip(&ids)
        .map(|(since, id)| (id.clone(), *since))
        .collect();
    gauges(enc, NODE_STATE_ENTERED.describe(product), &entered)?;
    let ghost: Vec<Sample<f64>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), bit(view.figures.ghosts.contains(&i))))
        .collect();
    gauges(enc, NODE_GHOST.describe(product), &ghost)?;
    let offline_names: Vec<Sample<f64>> = view
        .names_offline
        .iter()
        .map(|(name, since)| (vec![name.clone()], *since))
        .collect();
    gauges(
        enc,
        NODE_NAME_OFFLINE_SINCE.describe(product),
        &offline_names,
    )?;
    let per_node = |count: fn(&crate::model::Node) -> Option<u64>| -> Vec<Sample<f64>> {
        c.nodes
            .iter()
            .zip(&ids)
            .filter_map(|(n, id)| count(n).map(|v| (id.clone(), v as f64)))
            .collect()
    };
    gauges(
        enc,
        NODE_ACTIVE_TASKS.describe(product),
        &per_node(|n| n.tasks_total),
    )?;
    gauges(
        enc,
        NODE_ACTIVE_USERS.describe(product),
        &per_node(|n| n.active_user_count),
    )?;
    let f = &view.figures;
    let figure = |v: usize| unlabelled(v as f64);
    gauges(
        enc,
        DISTINCT_VERSIONS.describe(product),
        &figure(f.distinct_versions),
    )?;
    gauges(
        enc,
        NODES_UPGRADED.describe(product),
        &figure(f.nodes_upgraded),
    )?;
    gauges(enc, GHOST_NODES.describe(product), &figure(f.ghosts.len()))?;
    extras(enc, product, view, &ids)
}

/// The families of what only some products report, from the observation's extras (the
/// product table names the products; Bitbucket has no extras, hence no samples).
fn extras(
    enc: &mut DescriptorEncoder<'_>,
    product: Product,
    view: &ClusterObservation,
    ids: &[Vec<String>],
) -> fmt::Result {
    let x = &view.extras;
    let has: Vec<Sample<f64>> = x
        .has_finalization_tasks
        .map(bit)
        .into_iter()
        .map(|v| (Vec::new(), v))
        .collect();
    gauges(enc, HAS_FINALIZATION_TASKS.describe(product), &has)?;
    let per_node = |get: fn(&crate::model::extras::NodeExtras) -> Option<f64>| -> Vec<Sample<f64>> {
        ids.iter()
            .enumerate()
            .filter_map(|(i, id)| get(&x.node(i)).map(|v| (id.clone(), v)))
            .collect()
    };
    gauges(
        enc,
        NODE_FINALIZATION_ERRORS.describe(product),
        &per_node(|e| e.finalization_errors.map(|n| n as f64)),
    )?;
    gauges(
        enc,
        NODE_ALIVE.describe(product),
        &per_node(|e| e.alive.map(bit)),
    )
}

/// The `node_id`, `node_name` label values of each node entry, in entry order.
fn node_ids(c: &Cluster) -> Vec<Vec<String>> {
    c.node_keys()
        .into_iter()
        .zip(&c.nodes)
        .map(|(key, n)| vec![key, n.name.clone().unwrap_or_default()])
        .collect()
}

/// The one-hot `state` samples of one node entry over `product`'s node states.
fn one_node(product: Product, state: &Option<NodeState>) -> Vec<Sample<f64>> {
    named_one_hot(
        product.node_states(),
        state.as_ref().map(NodeState::as_str),
        Some(NULL_STATE),
    )
}

/// Node entries per state of `product` (every one present), then per other label (a value
/// the product does not list, sanitised, or the null state), in label order.
fn per_state(product: Product, c: &Cluster) -> Vec<Sample<f64>> {
    let known = product.node_states();
    let mut counts = vec![0usize; known.len()];
    let mut other: BTreeMap<String, usize> = BTreeMap::new();
    for n in &c.nodes {
        for (i, (label, on)) in one_node(product, &n.state).into_iter().enumerate() {
            match counts.get_mut(i) {
                Some(count) => *count += usize::from(on > 0.0),
                None => *other.entry(label.concat()).or_insert(0) += 1,
            }
        }
    }
    let known = known
        .iter()
        .zip(counts)
        .map(|(s, n)| (vec![s.to_string()], n as f64));
    let other = other.into_iter().map(|(label, n)| (vec![label], n as f64));
    known.chain(other).collect()
}

fn info(c: &Cluster, ids: &[Vec<String>]) -> Vec<Sample<f64>> {
    c.nodes
        .iter()
        .zip(ids)
        .map(|(n, id)| {
            let mut l = id.clone();
            l.push(n.address());
            l.push(n.version.clone().unwrap_or_default());
            l.push(n.build_number.clone().unwrap_or_default());
            l.push(n.local.map(|b| b.to_string()).unwrap_or_default());
            (l, 1.0)
        })
        .collect()
}

/// One sample per node entry and state of `product`, then the node's other label if any.
fn node_state(product: Product, c: &Cluster, ids: &[Vec<String>]) -> Vec<Sample<f64>> {
    c.nodes
        .iter()
        .zip(ids)
        .flat_map(|(n, id)| {
            one_node(product, &n.state)
                .into_iter()
                .map(move |(state, v)| ([id.as_slice(), &state].concat(), v))
        })
        .collect()
}

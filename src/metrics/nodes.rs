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
use super::{bit, extra_state_label, gauges, unlabelled, Sample};
use crate::model::{Cluster, NodeState, Product};
use crate::snapshot::ClusterObservation;

/// Writes the nodes group from a fresh cluster view.
pub fn encode(enc: &mut DescriptorEncoder<'_>, view: &ClusterObservation) -> fmt::Result {
    let c = &view.cluster;
    gauges(enc, &NODES, &per_state(c))?;
    let ids = node_ids(c);
    gauges(enc, &NODE_INFO, &info(c, &ids))?;
    gauges(enc, &NODE_STATE, &node_state(c, &ids))?;
    let entered: Vec<Sample<f64>> = view
        .node_since
        .iter()
        .zip(&ids)
        .map(|(since, id)| (id.clone(), *since))
        .collect();
    gauges(enc, &NODE_STATE_ENTERED, &entered)?;
    let ghost: Vec<Sample<f64>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), bit(view.figures.ghosts.contains(&i))))
        .collect();
    gauges(enc, &NODE_GHOST, &ghost)?;
    let offline_names: Vec<Sample<f64>> = view
        .names_offline
        .iter()
        .map(|(name, since)| (vec![name.clone()], *since))
        .collect();
    gauges(enc, &NODE_NAME_OFFLINE_SINCE, &offline_names)?;
    let per_node = |count: fn(&crate::model::Node) -> Option<u64>| -> Vec<Sample<f64>> {
        c.nodes
            .iter()
            .zip(&ids)
            .filter_map(|(n, id)| count(n).map(|v| (id.clone(), v as f64)))
            .collect()
    };
    gauges(enc, &NODE_ACTIVE_TASKS, &per_node(|n| n.tasks_total))?;
    gauges(enc, &NODE_ACTIVE_USERS, &per_node(|n| n.active_user_count))?;
    let f = &view.figures;
    gauges(
        enc,
        &DISTINCT_VERSIONS,
        &unlabelled(f.distinct_versions as f64),
    )?;
    gauges(enc, &NODES_UPGRADED, &unlabelled(f.nodes_upgraded as f64))?;
    gauges(enc, &GHOST_NODES, &unlabelled(f.ghosts.len() as f64))?;
    extras(enc, view, &ids)
}

/// Confluence's and Jira's own families, from the observation's extras: nothing for
/// Bitbucket (no extras, no samples, no family).
fn extras(
    enc: &mut DescriptorEncoder<'_>,
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
    gauges(enc, &HAS_FINALIZATION_TASKS, &has)?;
    let per_node = |get: fn(&crate::model::extras::NodeExtras) -> Option<f64>| -> Vec<Sample<f64>> {
        ids.iter()
            .enumerate()
            .filter_map(|(i, id)| get(&x.node(i)).map(|v| (id.clone(), v)))
            .collect()
    };
    gauges(
        enc,
        &NODE_FINALIZATION_ERRORS,
        &per_node(|e| e.finalization_errors.map(|n| n as f64)),
    )?;
    gauges(enc, &NODE_ALIVE, &per_node(|e| e.alive.map(bit)))
}

/// The `node_id`, `node_name` label values of each node entry, in entry order.
fn node_ids(c: &Cluster) -> Vec<Vec<String>> {
    c.node_keys()
        .into_iter()
        .zip(&c.nodes)
        .map(|(key, n)| vec![key, n.name.clone().unwrap_or_default()])
        .collect()
}

/// Node entries per known state (every known state present), then per extra state label.
/// The `state` label of a node for `product`: `None` when the product knows the state
/// (listed in [`crate::model::Product::node_states`]), else the sanitised value or `UNKNOWN`.
fn product_extra_label(product: Product, state: &Option<NodeState>) -> Option<String> {
    match state {
        Some(s) if product.node_states().contains(&s.as_str()) => None,
        Some(s) => Some(super::sanitize_state(s.as_str())),
        None => Some("UNKNOWN".to_string()),
    }
}

fn per_state(c: &Cluster) -> Vec<Sample<f64>> {
    let product = super::encode::current_product();
    if product != Product::Bitbucket {
        let mut out: Vec<Sample<f64>> = product
            .node_states()
            .iter()
            .map(|s| {
                let n = c
                    .nodes
                    .iter()
                    .filter(|n| n.state.as_ref().map(NodeState::as_str) == Some(*s))
                    .count();
                (vec![s.to_string()], n as f64)
            })
            .collect();
        let mut extra: BTreeMap<String, usize> = BTreeMap::new();
        for label in c
            .nodes
            .iter()
            .filter_map(|n| product_extra_label(product, &n.state))
        {
            *extra.entry(label).or_insert(0) += 1;
        }
        out.extend(extra.into_iter().map(|(label, n)| (vec![label], n as f64)));
        return out;
    }
    let mut out: Vec<Sample<f64>> = NodeState::KNOWN
        .iter()
        .map(|s| {
            let n = c
                .nodes
                .iter()
                .filter(|n| n.state.as_ref() == Some(s))
                .count();
            (vec![s.as_str().to_string()], n as f64)
        })
        .collect();
    let mut extra: BTreeMap<String, usize> = BTreeMap::new();
    for label in c.nodes.iter().filter_map(|n| extra_state_label(&n.state)) {
        *extra.entry(label).or_insert(0) += 1;
    }
    out.extend(extra.into_iter().map(|(label, n)| (vec![label], n as f64)));
    out
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

fn node_state(c: &Cluster, ids: &[Vec<String>]) -> Vec<Sample<f64>> {
    let with_state = |id: &[String], state: String| {
        let mut l = id.to_vec();
        l.push(state);
        l
    };
    let mut out = Vec::new();
    let product = super::encode::current_product();
    if product != Product::Bitbucket {
        for (n, id) in c.nodes.iter().zip(ids) {
            for s in product.node_states() {
                let on = bit(n.state.as_ref().map(NodeState::as_str) == Some(*s));
                out.push((with_state(id, s.to_string()), on));
            }
            if let Some(label) = product_extra_label(product, &n.state) {
                out.push((with_state(id, label), 1.0));
            }
        }
        return out;
    }
    for (n, id) in c.nodes.iter().zip(ids) {
        for s in NodeState::KNOWN {
            let on = bit(n.state.as_ref() == Some(s));
            out.push((with_state(id, s.as_str().to_string()), on));
        }
        if let Some(label) = extra_state_label(&n.state) {
            out.push((with_state(id, label), 1.0));
        }
    }
    out
}

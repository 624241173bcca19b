//! Rendering: turns the latest [`TargetSnapshot`](crate::poller::TargetSnapshot) into Prometheus metrics at scrape time.
//!
//! We use the Prometheus org's `prometheus-client` crate: its [`Collector`] trait lets a
//! scrape encode straight from an immutable snapshot (no mutable metric objects to keep in
//! sync, no stale label sets to delete when a node leaves), and it encodes both OpenMetrics
//! 1.0.0 and the classic text format 0.0.4. See `docs/design.md`.

use std::fmt;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::client::Reason;
use crate::model::{ClusterState, NodeState};
use crate::poller::{Endpoint, TargetShared};

/// Label pairs of one sample.
pub type Labels = Vec<(&'static str, String)>;

const POLL_NOTE: &str = "(from the exporter's background poll of Bitbucket's ZDU API)";

/// Writes one gauge family; nothing when there are no samples.
pub fn gauges(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[(Labels, f64)],
) -> fmt::Result {
    if samples.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

/// Writes one counter family (`name` without `_total`; the encoder adds it).
pub fn counters(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[(Labels, u64)],
) -> fmt::Result {
    if samples.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn one(v: f64) -> Vec<(Labels, f64)> {
    vec![(Vec::new(), v)]
}

fn b(v: bool) -> f64 {
    if v {
        1.0
    } else {
        0.0
    }
}

/// Makes an unknown enum value safe and bounded as a label value.
pub fn sanitize_state(raw: &str) -> String {
    let s: String = raw
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "UNKNOWN".into()
    } else {
        s
    }
}

/// The `state` label of a node state this version does not list in [`NodeState::KNOWN`]:
/// an unknown value (sanitised) or `UNKNOWN` for null; `None` for a known state.
fn extra_state_label(state: &Option<NodeState>) -> Option<String> {
    match state {
        Some(NodeState::Unknown(raw)) => Some(sanitize_state(raw)),
        None => Some("UNKNOWN".to_string()),
        Some(_) => None,
    }
}

/// The `(from, to)` samples of `bitbucket_zdu_cluster_state_transitions_total`: every ordered
/// pair of distinct known cluster states (in [`ClusterState::KNOWN`] order, 0 until seen), so
/// each first transition is an increase from 0 that `increase()` can see, then pairs with an
/// unknown state as seen (sanitised; raw values that sanitise alike are summed).
pub fn transition_samples(
    seen: &std::collections::BTreeMap<(String, String), u64>,
) -> Vec<((String, String), u64)> {
    let mut out: Vec<((String, String), u64)> = Vec::new();
    for from in ClusterState::KNOWN {
        for to in ClusterState::KNOWN {
            if from != to {
                out.push(((from.as_str().to_string(), to.as_str().to_string()), 0));
            }
        }
    }
    for ((from, to), n) in seen {
        let key = (sanitize_state(from), sanitize_state(to));
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v += n,
            None => out.push((key, *n)),
        }
    }
    out
}

/// The metrics of one target, rendered from its latest snapshot.
#[derive(Debug)]
pub struct TargetCollector {
    shared: std::sync::Arc<TargetShared>,
}

impl TargetCollector {
    pub fn new(shared: std::sync::Arc<TargetShared>) -> Self {
        TargetCollector { shared }
    }
}

impl Collector for TargetCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let snap = self.shared.snapshot.load();
        let now = Instant::now();
        let fresh = snap.fresh_cluster(now);

        gauges(
            &mut enc,
            "bitbucket_zdu_up",
            &format!("1 when the last poll of /rest/zdu/cluster succeeded and is fresh, else 0 {POLL_NOTE}."),
            &one(b(fresh.is_some())),
        )?;
        if snap.first_poll_done {
            if let Some(reason) = snap.down_reason(now) {
                gauges(
                    &mut enc,
                    "bitbucket_zdu_last_error_info",
                    "Why bitbucket_zdu_up is 0: the failure reason of the last /rest/zdu/cluster poll, or stale.",
                    &[(vec![("reason", reason.to_string())], 1.0)],
                )?;
            }
        }

        if let Some(view) = fresh {
            let c = &view.cluster;
            if let Some(enabled) = c.upgrade_mode_enabled {
                gauges(
                    &mut enc,
                    "bitbucket_zdu_upgrade_mode_enabled",
                    &format!("1 when rolling-upgrade mode is enabled {POLL_NOTE}."),
                    &one(b(enabled)),
                )?;
            }
            let mut states: Vec<(Labels, f64)> = ClusterState::KNOWN
                .iter()
                .map(|s| {
                    (
                        vec![("state", s.as_str().to_string())],
                        b(c.state.as_ref() == Some(s)),
                    )
                })
                .collect();
            if let Some(ClusterState::Unknown(raw)) = &c.state {
                states.push((vec![("state", sanitize_state(raw))], 1.0));
            }
            gauges(
                &mut enc,
                "bitbucket_zdu_cluster_state",
                &format!("1 for the cluster's current ZDU state, 0 for the others {POLL_NOTE}."),
                &states,
            )?;
            if let Some(since) = view.cluster_since {
                gauges(
                    &mut enc,
                    "bitbucket_zdu_cluster_state_entered_timestamp_seconds",
                    &format!("Unix time the cluster entered its current state, as first seen by the exporter (kept across restarts with --state.file) {POLL_NOTE}."),
                    &one(since),
                )?;
            }
            gauges(
                &mut enc,
                "bitbucket_zdu_node_state_last_change_timestamp_seconds",
                &format!("Unix time a node entry of the cluster last changed state, appeared or disappeared, as first seen by the exporter (kept across restarts with --state.file): the upgrade's last progress {POLL_NOTE}."),
                &one(view.last_node_change),
            )?;
            if let Some(v) = &c.original_version {
                gauges(
                    &mut enc,
                    "bitbucket_zdu_original_version_info",
                    &format!(
                        "The version the cluster ran when upgrade mode was enabled {POLL_NOTE}."
                    ),
                    &[(vec![("version", v.clone())], 1.0)],
                )?;
            }
            let mut per_state: Vec<(Labels, f64)> = NodeState::KNOWN
                .iter()
                .map(|s| {
                    let n = c
                        .nodes
                        .iter()
                        .filter(|n| n.state.as_ref() == Some(s))
                        .count();
                    (vec![("state", s.as_str().to_string())], n as f64)
                })
                .collect();
            let mut extra: std::collections::BTreeMap<String, usize> = Default::default();
            for label in c.nodes.iter().filter_map(|n| extra_state_label(&n.state)) {
                *extra.entry(label).or_insert(0) += 1;
            }
            per_state.extend(
                extra
                    .into_iter()
                    .map(|(label, n)| (vec![("state", label)], n as f64)),
            );
            gauges(
                &mut enc,
                "bitbucket_zdu_nodes",
                &format!("Number of cluster node entries per node state, ghost entries included {POLL_NOTE}."),
                &per_state,
            )?;

            let ids: Vec<(String, String)> = c
                .node_keys()
                .into_iter()
                .zip(&c.nodes)
                .map(|(key, n)| (key, n.name.clone().unwrap_or_default()))
                .collect();
            let node_labels = |i: usize| -> Labels {
                vec![
                    ("node_id", ids[i].0.clone()),
                    ("node_name", ids[i].1.clone()),
                ]
            };
            let info: Vec<(Labels, f64)> = c
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let mut l = node_labels(i);
                    l.push(("address", n.address()));
                    l.push(("version", n.version.clone().unwrap_or_default()));
                    l.push(("build_number", n.build_number.clone().unwrap_or_default()));
                    l.push(("local", n.local.map(|b| b.to_string()).unwrap_or_default()));
                    (l, 1.0)
                })
                .collect();
            gauges(
                &mut enc,
                "bitbucket_zdu_node_info",
                &format!("One series per cluster node entry with its address, version and build number {POLL_NOTE}."),
                &info,
            )?;
            let mut node_state = Vec::new();
            for (i, n) in c.nodes.iter().enumerate() {
                for s in NodeState::KNOWN {
                    let mut l = node_labels(i);
                    l.push(("state", s.as_str().to_string()));
                    node_state.push((l, b(n.state.as_ref() == Some(s))));
                }
                if let Some(label) = extra_state_label(&n.state) {
                    let mut l = node_labels(i);
                    l.push(("state", label));
                    node_state.push((l, 1.0));
                }
            }
            gauges(
                &mut enc,
                "bitbucket_zdu_node_state",
                &format!("1 for the node's current state, 0 for the others {POLL_NOTE}."),
                &node_state,
            )?;
            let entered: Vec<(Labels, f64)> = view
                .node_since
                .iter()
                .enumerate()
                .map(|(i, since)| (node_labels(i), *since))
                .collect();
            gauges(
                &mut enc,
                "bitbucket_zdu_node_state_entered_timestamp_seconds",
                &format!("Unix time the node entered its current state, as first seen by the exporter {POLL_NOTE}."),
                &entered,
            )?;
            let ghost: Vec<(Labels, f64)> = (0..c.nodes.len())
                .map(|i| (node_labels(i), b(view.figures.ghosts.contains(&i))))
                .collect();
            gauges(
                &mut enc,
                "bitbucket_zdu_node_ghost",
                &format!("1 when this OFFLINE entry is a ghost: a live node with the same name exists (a pod back with a new IP) {POLL_NOTE}."),
                &ghost,
            )?;
            let offline_names: Vec<(Labels, f64)> = view
                .names_offline
                .iter()
                .map(|(name, since)| (vec![("node_name", name.clone())], *since))
                .collect();
            gauges(
                &mut enc,
                "bitbucket_zdu_node_name_offline_since_timestamp_seconds",
                &format!("Per node name with entries but no live (not OFFLINE) one: Unix time since which no live entry with that name has been seen, as first seen by the exporter (kept across restarts with --state.file); absent while the name has a live entry {POLL_NOTE}."),
                &offline_names,
            )?;
            let tasks: Vec<(Labels, f64)> = c
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.tasks_total.map(|t| (node_labels(i), t as f64)))
                .collect();
            gauges(
                &mut enc,
                "bitbucket_zdu_node_active_tasks",
                &format!(
                    "Active tasks on the node (absent when Bitbucket reports null) {POLL_NOTE}."
                ),
                &tasks,
            )?;
            let users: Vec<(Labels, f64)> = c
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.active_user_count.map(|u| (node_labels(i), u as f64)))
                .collect();
            gauges(
                &mut enc,
                "bitbucket_zdu_node_active_users",
                &format!(
                    "Active users on the node (absent when Bitbucket reports null) {POLL_NOTE}."
                ),
                &users,
            )?;
            gauges(
                &mut enc,
                "bitbucket_zdu_distinct_versions",
                &format!("Distinct product versions among nodes that are not OFFLINE {POLL_NOTE}."),
                &one(view.figures.distinct_versions as f64),
            )?;
            gauges(
                &mut enc,
                "bitbucket_zdu_nodes_upgraded",
                &format!("Nodes not OFFLINE known to run a version other than the original version (a null version is not upgraded; 0 without an original version) {POLL_NOTE}."),
                &one(view.figures.nodes_upgraded as f64),
            )?;
            gauges(
                &mut enc,
                "bitbucket_zdu_ghost_nodes",
                &format!("OFFLINE node entries whose name matches a live node {POLL_NOTE}."),
                &one(view.figures.ghosts.len() as f64),
            )?;
        }

        if let Some(r) = snap.fresh_responder(now) {
            if let Some(node) = &r.build_info {
                gauges(
                    &mut enc,
                    "bitbucket_zdu_responder_info",
                    &format!("The node that answered GET /rest/zdu/state (a sidecar on localhost sees its own node) {POLL_NOTE}."),
                    &[(
                        vec![
                            ("node_id", node.id.clone().unwrap_or_default()),
                            ("node_name", node.name.clone().unwrap_or_default()),
                            ("version", node.version.clone().unwrap_or_default()),
                        ],
                        1.0,
                    )],
                )?;
                let mut rs: Vec<(Labels, f64)> = NodeState::KNOWN
                    .iter()
                    .map(|s| {
                        (
                            vec![("state", s.as_str().to_string())],
                            b(node.state.as_ref() == Some(s)),
                        )
                    })
                    .collect();
                if let Some(NodeState::Unknown(raw)) = &node.state {
                    rs.push((vec![("state", sanitize_state(raw))], 1.0));
                }
                gauges(
                    &mut enc,
                    "bitbucket_zdu_responder_state",
                    &format!("1 for the state of the node that answered GET /rest/zdu/state {POLL_NOTE}."),
                    &rs,
                )?;
            }
        }

        let transitions: Vec<(Labels, u64)> = transition_samples(&snap.transitions)
            .into_iter()
            .map(|((from, to), n)| (vec![("from", from), ("to", to)], n))
            .collect();
        counters(
            &mut enc,
            "bitbucket_zdu_cluster_state_transitions",
            &format!("Cluster state changes seen by the exporter, every pair of known states present from the start (0) so increase() sees each first transition {POLL_NOTE}."),
            &transitions,
        )?;
        let unknown: Vec<(Labels, u64)> = ["cluster_state", "node_state", "responder_state"]
            .iter()
            .map(|f| {
                (
                    vec![("field", f.to_string())],
                    snap.unknown_values.get(f).copied().unwrap_or(0),
                )
            })
            .collect();
        counters(
            &mut enc,
            "bitbucket_zdu_unknown_enum_values",
            "State values this exporter version does not know, seen in polls (exported verbatim, sanitised).",
            &unknown,
        )?;

        let ep_labels = |ep: Endpoint| vec![("endpoint", ep.as_str().to_string())];
        let durations: Vec<(Labels, f64)> = Endpoint::ALL
            .iter()
            .filter_map(|ep| {
                snap.endpoints[*ep as usize]
                    .last_duration_seconds
                    .map(|d| (ep_labels(*ep), d))
            })
            .collect();
        gauges(
            &mut enc,
            "bitbucket_zdu_poll_interval_seconds",
            "The configured interval between polls of this target (--poll.interval or the target's poll_interval); backoff after failures can make the real gap longer.",
            &one(self.shared.config.load().poll_interval.as_secs_f64()),
        )?;
        gauges(
            &mut enc,
            "bitbucket_zdu_poll_duration_seconds",
            "Duration of the last poll of each ZDU endpoint.",
            &durations,
        )?;
        let polls: Vec<(Labels, u64)> = Endpoint::ALL
            .iter()
            .map(|ep| (ep_labels(*ep), snap.endpoints[*ep as usize].polls_total))
            .collect();
        counters(
            &mut enc,
            "bitbucket_zdu_polls",
            "Polls of each ZDU endpoint.",
            &polls,
        )?;
        let mut errors: Vec<(Labels, u64)> = Vec::new();
        for ep in Endpoint::ALL {
            for (i, reason) in Reason::ALL.iter().enumerate() {
                let mut l = ep_labels(ep);
                l.push(("reason", reason.as_str().to_string()));
                errors.push((l, snap.endpoints[ep as usize].errors_total[i]));
            }
        }
        counters(
            &mut enc,
            "bitbucket_zdu_poll_errors",
            "Failed polls of each ZDU endpoint by reason.",
            &errors,
        )?;
        let success: Vec<(Labels, f64)> = Endpoint::ALL
            .iter()
            .filter_map(|ep| {
                snap.endpoints[*ep as usize]
                    .last_success_timestamp
                    .map(|t| (ep_labels(*ep), t))
            })
            .collect();
        gauges(
            &mut enc,
            "bitbucket_zdu_last_poll_success_timestamp_seconds",
            "Unix time of the last successful poll of each ZDU endpoint.",
            &success,
        )?;
        Ok(())
    }
}

/// The exporter's own metrics: build info, targets, reloads and the process.
#[derive(Debug)]
pub struct ExporterCollector {
    pub status: std::sync::Arc<crate::app::ReloadStatus>,
    pub targets: std::sync::Arc<arc_swap::ArcSwap<Vec<std::sync::Arc<TargetShared>>>>,
}

impl Collector for ExporterCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        gauges(
            &mut enc,
            "bitbucket_zdu_exporter_build_info",
            "A metric with a constant '1' value labeled by version, revision and rustc of the exporter.",
            &[(
                vec![
                    ("version", crate::build::VERSION.to_string()),
                    ("revision", crate::build::REVISION.to_string()),
                    ("rustc", crate::build::RUSTC.to_string()),
                ],
                1.0,
            )],
        )?;
        gauges(
            &mut enc,
            "bitbucket_zdu_exporter_targets",
            "Number of Bitbucket targets configured.",
            &one(self.targets.load().len() as f64),
        )?;
        let (ok, ts) = self.status.get();
        gauges(
            &mut enc,
            "bitbucket_zdu_exporter_config_last_reload_successful",
            "1 when the last configuration reload succeeded.",
            &one(b(ok)),
        )?;
        gauges(
            &mut enc,
            "bitbucket_zdu_exporter_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration (re)load.",
            &one(ts),
        )?;
        crate::process::encode(&mut enc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn every_known_transition_is_present_at_zero_and_seen_ones_count() {
        let none = transition_samples(&BTreeMap::new());
        let n = ClusterState::KNOWN.len();
        assert_eq!(none.len(), n * (n - 1));
        assert!(none.iter().all(|(_, v)| *v == 0));
        assert!(none.iter().all(|((f, t), _)| f != t));
        let mut seen = BTreeMap::new();
        seen.insert(("STABLE".to_string(), "READY_TO_UPGRADE".to_string()), 2);
        seen.insert(("MIXED".to_string(), "new state".to_string()), 1);
        seen.insert(("MIXED".to_string(), "NEW-STATE".to_string()), 1);
        let got = transition_samples(&seen);
        assert_eq!(got.len(), n * (n - 1) + 1);
        let get = |f: &str, t: &str| {
            got.iter()
                .find(|((a, b), _)| a == f && b == t)
                .map(|(_, v)| *v)
        };
        assert_eq!(get("STABLE", "READY_TO_UPGRADE"), Some(2));
        assert_eq!(get("MIXED", "STABLE"), Some(0));
        assert_eq!(get("MIXED", "NEW_STATE"), Some(2));
    }
}

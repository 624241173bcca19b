//! Upgrade progress and history: the rolling upgrade in flight (when upgrade mode went on,
//! the nodes at that moment, each node's phase times as they happen, nodes done, an ETA) and
//! a bounded history of finished upgrades with their result and per-node durations.
//!
//! Folded in on every successful `/cluster` poll from [`crate::snapshot::ClusterObservation::observe`]
//! and kept in [`crate::tracker::Tracker::progress`], so with `--state.file` an exporter
//! restarted mid-upgrade continues the same upgrade: nothing is lost and nothing counted
//! twice (a node's duration enters the histogram once, when its `active_at` is first set).
//!
//! Nodes are tracked by **name**: on Kubernetes a pod that comes back with a new IP shows as
//! a new live entry plus an OFFLINE ghost with the same name; both are the same node here, so
//! ghosts never count as nodes. A name with only OFFLINE entries since the upgrade started
//! (Jira's stale OFFLINE entries, which linger for up to two days; any product's node that
//! is gone for good) is tracked but takes no part ([`NodeProgress::took_part`]): it counts in
//! neither the nodes nor the nodes done, so the upgrade can reach all its nodes done.
//!
//! The unit tests are in `progress/tests.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Cluster, ClusterState, Node, NodeState};

/// How many finished upgrades are kept.
pub const HISTORY_LIMIT: usize = 20;
/// How many recent cluster state transitions are kept.
pub const RECENT_TRANSITIONS_LIMIT: usize = 20;
/// How many state changes are kept per node and upgrade (the timeline's lane).
pub const TIMELINE_LIMIT: usize = 64;
/// Upper bounds (seconds) of the per-node upgrade duration histogram; `+Inf` follows.
pub const NODE_DURATION_BUCKETS: [f64; 10] = [
    30.0, 60.0, 120.0, 180.0, 300.0, 450.0, 600.0, 900.0, 1800.0, 3600.0,
];

/// How a finished upgrade ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeResult {
    /// Upgrade mode went off with the cluster on a new version.
    Completed,
    /// Upgrade mode went off with every node still on the original version.
    Cancelled,
    /// Upgrade mode went off in UPGRADE_TASKS_FAILED.
    FailedFinalization,
}

impl UpgradeResult {
    /// Every result, in the order the `result` label lists them.
    pub const ALL: [UpgradeResult; 3] = [
        UpgradeResult::Completed,
        UpgradeResult::Cancelled,
        UpgradeResult::FailedFinalization,
    ];

    /// The `result` label value (and JSON value).
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeResult::Completed => "completed",
            UpgradeResult::Cancelled => "cancelled",
            UpgradeResult::FailedFinalization => "failed_finalization",
        }
    }
}

/// A state and when it was entered (unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// The state's name as Bitbucket spells it.
    pub state: String,
    /// When it was entered (unix seconds).
    pub since: f64,
}

/// A cluster state transition and when it was seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// The state before.
    pub from: String,
    /// The state after.
    pub to: String,
    /// When the change was seen (unix seconds).
    pub at: f64,
}

/// One node of the upgrade in flight (all times unix seconds, as first seen).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeProgress {
    /// The node's name (its key when it has none).
    pub name: String,
    /// Seen DRAINING.
    #[serde(default)]
    pub drain_at: Option<f64>,
    /// Seen TERMINATING.
    #[serde(default)]
    pub terminate_at: Option<f64>,
    /// Seen with no live entry (OFFLINE).
    #[serde(default)]
    pub offline_at: Option<f64>,
    /// Seen STARTING.
    #[serde(default)]
    pub start_at: Option<f64>,
    /// Seen live on a version other than the original: the node is done.
    #[serde(default)]
    pub done_at: Option<f64>,
    /// Seen ACTIVE on a version other than the original: the end of its duration.
    #[serde(default)]
    pub active_at: Option<f64>,
    /// The state last seen.
    #[serde(default)]
    pub state: Option<String>,
    /// The version last seen on a live entry.
    #[serde(default)]
    pub version: Option<String>,
    /// State changes since the upgrade started (bounded by [`TIMELINE_LIMIT`]).
    #[serde(default)]
    pub timeline: Vec<Phase>,
}

impl NodeProgress {
    /// True once the node was seen with a live (not OFFLINE) entry since the upgrade started.
    /// A name with only OFFLINE entries (a stale entry, a ghost-equivalent under its own
    /// name) takes no part in the upgrade's counts. The timeline keeps its first phases, and
    /// a node's phases alternate, so a live phase is never cut off by [`TIMELINE_LIMIT`].
    pub fn took_part(&self) -> bool {
        self.timeline
            .iter()
            .any(|p| p.state != NodeState::Offline.as_str())
    }

    /// When the node's upgrade began: the first phase seen (drain, terminate, offline, start).
    pub fn began_at(&self) -> Option<f64> {
        [
            self.drain_at,
            self.terminate_at,
            self.offline_at,
            self.start_at,
        ]
        .into_iter()
        .flatten()
        .reduce(f64::min)
    }

    /// Drain start (or the first phase seen) to ACTIVE on the new version, in seconds.
    pub fn duration_seconds(&self) -> Option<f64> {
        Some((self.active_at? - self.began_at()?).max(0.0))
    }

    /// True once seen live on a version other than the original.
    pub fn is_done(&self) -> bool {
        self.done_at.is_some()
    }
}

/// The upgrade in flight.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Upgrade {
    /// When upgrade mode was first seen on (unix seconds).
    pub started: f64,
    /// `originalVersion` when it started.
    #[serde(default)]
    pub from_version: Option<String>,
    /// The nodes at start (ghosts excluded), in Bitbucket's order.
    #[serde(default)]
    pub nodes: Vec<NodeProgress>,
    /// True once READY_TO_RUN_UPGRADE_TASKS or RUNNING_UPGRADE_TASKS was seen.
    #[serde(default)]
    pub all_upgraded_seen: bool,
}

impl Upgrade {
    /// Nodes taking part: seen live since the upgrade started ([`NodeProgress::took_part`]).
    pub fn nodes_total(&self) -> usize {
        self.nodes.iter().filter(|n| n.took_part()).count()
    }

    /// Nodes live on a version other than the original.
    pub fn nodes_done(&self) -> usize {
        self.nodes.iter().filter(|n| n.is_done()).count()
    }

    /// The estimated completion time: the mean time per node done since the start, from the
    /// start, times the number of nodes (the last node done plus that mean per node still to
    /// go). Nodes already done when the upgrade was first seen (an exporter started late
    /// without a state file) give no rate. None until one node is done.
    pub fn estimated_completion(&self) -> Option<f64> {
        let seen_done: Vec<f64> = self
            .nodes
            .iter()
            .filter_map(|n| n.done_at)
            .filter(|t| *t > self.started)
            .collect();
        let last = seen_done.iter().copied().reduce(f64::max)?;
        let per_node = (last - self.started).max(0.0) / seen_done.len() as f64;
        let to_go = self.nodes_total().saturating_sub(self.nodes_done());
        Some(last + per_node * to_go as f64).filter(|t| t.is_finite())
    }
}

/// One node's duration in a finished upgrade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDuration {
    /// The node's name (its key when it has none).
    pub name: String,
    /// Drain start to ACTIVE on the new version; None when not seen.
    pub duration_seconds: Option<f64>,
}

/// A finished upgrade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletedUpgrade {
    /// When upgrade mode was first seen on (unix seconds).
    pub started: f64,
    /// When the upgrade was seen to end (unix seconds).
    pub ended: f64,
    /// How it ended.
    pub result: UpgradeResult,
    /// `originalVersion` when it started.
    #[serde(default)]
    pub from_version: Option<String>,
    /// The version the nodes were upgraded to; None when cancelled or not known.
    #[serde(default)]
    pub to_version: Option<String>,
    /// Each node's duration, in the upgrade's node order.
    #[serde(default)]
    pub nodes: Vec<NodeDuration>,
}

impl CompletedUpgrade {
    /// End minus start, in seconds.
    pub fn duration_seconds(&self) -> f64 {
        (self.ended - self.started).max(0.0)
    }
}

/// Finished upgrades per result (not bounded like the history).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResultCounts {
    /// Upgrades that completed.
    #[serde(default)]
    pub completed: u64,
    /// Upgrades that were cancelled.
    #[serde(default)]
    pub cancelled: u64,
    /// Upgrades whose finalization failed.
    #[serde(default)]
    pub failed_finalization: u64,
}

impl ResultCounts {
    /// The count of `result`.
    pub fn get(&self, result: UpgradeResult) -> u64 {
        match result {
            UpgradeResult::Completed => self.completed,
            UpgradeResult::Cancelled => self.cancelled,
            UpgradeResult::FailedFinalization => self.failed_finalization,
        }
    }

    fn bump(&mut self, result: UpgradeResult) {
        match result {
            UpgradeResult::Completed => self.completed += 1,
            UpgradeResult::Cancelled => self.cancelled += 1,
            UpgradeResult::FailedFinalization => self.failed_finalization += 1,
        }
    }
}

/// A classic histogram with the fixed [`NODE_DURATION_BUCKETS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DurationHistogram {
    /// The sum of all observations, in seconds.
    pub sum: f64,
    /// The number of observations.
    pub count: u64,
    /// Observations per bucket (not cumulative), one more than the bounds (`+Inf`).
    pub buckets: Vec<u64>,
}

impl Default for DurationHistogram {
    fn default() -> Self {
        DurationHistogram {
            sum: 0.0,
            count: 0,
            buckets: vec![0; NODE_DURATION_BUCKETS.len() + 1],
        }
    }
}

impl DurationHistogram {
    /// Counts one observation.
    pub fn observe(&mut self, v: f64) {
        if self.buckets.len() != NODE_DURATION_BUCKETS.len() + 1 {
            self.buckets.resize(NODE_DURATION_BUCKETS.len() + 1, 0);
        }
        let i = NODE_DURATION_BUCKETS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(NODE_DURATION_BUCKETS.len());
        self.buckets[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// `(upper bound, count in that bucket)` pairs, `+Inf` last, as the encoder takes them.
    pub fn pairs(&self) -> Vec<(f64, u64)> {
        NODE_DURATION_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, b)| (b, self.buckets.get(i).copied().unwrap_or(0)))
            .collect()
    }
}

/// Progress and history of one target (persisted in the state file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The upgrade in flight, if upgrade mode is on.
    #[serde(default)]
    pub current: Option<Upgrade>,
    /// Finished upgrades, oldest first, at most [`HISTORY_LIMIT`].
    #[serde(default)]
    pub history: Vec<CompletedUpgrade>,
    /// Finished upgrades per result, since the state file began.
    #[serde(default)]
    pub results: ResultCounts,
    /// Per-node upgrade durations (drain start → ACTIVE on the new version).
    #[serde(default)]
    pub node_durations: DurationHistogram,
    /// The cluster state last seen.
    #[serde(default)]
    pub last_state: Option<String>,
    /// Recent cluster state transitions, oldest first.
    #[serde(default)]
    pub recent_transitions: Vec<Transition>,
}

/// The entries of `cluster` grouped by node name (key when unnamed), in answer order.
fn by_name(cluster: &Cluster) -> Vec<(String, Vec<&Node>)> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<&Node>> = BTreeMap::new();
    for (n, key) in cluster.nodes.iter().zip(cluster.node_keys()) {
        let name = n.name.clone().filter(|s| !s.is_empty()).unwrap_or(key);
        if !groups.contains_key(&name) {
            order.push(name.clone());
        }
        groups.entry(name).or_default().push(n);
    }
    order
        .into_iter()
        .map(|name| {
            let entries = groups.remove(&name).unwrap_or_default();
            (name, entries)
        })
        .collect()
}

/// The entry that stands for a node: its first live entry, else its first entry.
fn representative<'a>(entries: &[&'a Node]) -> Option<&'a Node> {
    entries
        .iter()
        .find(|n| !n.is_offline())
        .or_else(|| entries.first())
        .copied()
}

impl Progress {
    /// Folds one successful `/cluster` answer in at unix time `now`; returns whether anything
    /// changed that is worth persisting.
    pub fn observe(&mut self, cluster: &Cluster, now: f64) -> bool {
        let before = self.clone();
        if let Some(state) = cluster.state.as_ref().map(|s| s.as_str().to_string()) {
            if let Some(prev) = self.last_state.as_ref().filter(|p| **p != state) {
                self.recent_transitions.push(Transition {
                    from: prev.clone(),
                    to: state.clone(),
                    at: now,
                });
                let excess = self
                    .recent_transitions
                    .len()
                    .saturating_sub(RECENT_TRANSITIONS_LIMIT);
                self.recent_transitions.drain(..excess);
            }
            self.last_state = Some(state);
        }
        match cluster.upgrade_mode_enabled {
            Some(true) => {
                // A new original version without upgrade mode seen off: the old one is over.
                if let Some(u) = &self.current {
                    if cluster.original_version.is_some()
                        && u.from_version.is_some()
                        && cluster.original_version != u.from_version
                    {
                        self.finish(cluster, now);
                    }
                }
                if self.current.is_none() {
                    self.current = Some(begin(cluster, now));
                }
                self.update_nodes(cluster, now);
            }
            Some(false) if self.current.is_some() => {
                self.update_nodes(cluster, now);
                self.finish(cluster, now);
            }
            _ => {}
        }
        *self != before
    }

    fn update_nodes(&mut self, cluster: &Cluster, now: f64) {
        let Some(u) = self.current.as_mut() else {
            return;
        };
        if matches!(
            cluster.state,
            Some(ClusterState::ReadyToRunUpgradeTasks) | Some(ClusterState::RunningUpgradeTasks)
        ) {
            u.all_upgraded_seen = true;
        }
        let groups = by_name(cluster);
        rename::follow_renames(u, &groups);
        for np in &mut u.nodes {
            let Some((_, entries)) = groups.iter().find(|(name, _)| *name == np.name) else {
                continue;
            };
            let Some(rep) = representative(entries) else {
                continue;
            };
            let state = rep
                .state
                .as_ref()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            if np.state.as_deref() != Some(state.as_str()) {
                match rep.state {
                    Some(NodeState::Draining) => {
                        np.drain_at.get_or_insert(now);
                    }
                    Some(NodeState::Terminating) => {
                        np.terminate_at.get_or_insert(now);
                    }
                    Some(NodeState::Offline) => {
                        np.offline_at.get_or_insert(now);
                    }
                    Some(NodeState::Starting) => {
                        np.start_at.get_or_insert(now);
                    }
                    _ => {}
                }
                if np.timeline.len() < TIMELINE_LIMIT {
                    np.timeline.push(Phase {
                        state: state.clone(),
                        since: now,
                    });
                }
                np.state = Some(state);
            }
            if rep.is_offline() {
                continue;
            }
            if rep.version.is_some() {
                np.version = rep.version.clone();
            }
            let on_new = match (&rep.version, &u.from_version) {
                (Some(v), Some(orig)) => v != orig,
                _ => false,
            };
            if on_new {
                np.done_at.get_or_insert(now);
                if rep.state == Some(NodeState::Active) && np.active_at.is_none() {
                    np.active_at = Some(now);
                    if let Some(d) = np.duration_seconds() {
                        self.node_durations.observe(d);
                    }
                }
            } else if rep.version.is_some() && rep.version == u.from_version {
                // Rolled back: no longer done.
                np.done_at = None;
                np.active_at = None;
            }
        }
    }

    fn finish(&mut self, cluster: &Cluster, now: f64) {
        let Some(u) = self.current.take() else {
            return;
        };
        let live_versions: Vec<&str> = cluster
            .nodes
            .iter()
            .filter(|n| !n.is_offline())
            .filter_map(|n| n.version.as_deref())
            .collect();
        let to_version = most_common(&live_versions)
            .filter(|v| u.from_version.as_deref() != Some(*v))
            .map(str::to_string)
            .or_else(|| {
                u.nodes
                    .iter()
                    .filter(|n| n.is_done())
                    .find_map(|n| n.version.clone())
            });
        let result = if cluster.state == Some(ClusterState::UpgradeTasksFailed) {
            UpgradeResult::FailedFinalization
        } else if to_version.is_some() || u.all_upgraded_seen || u.nodes_done() > 0 {
            UpgradeResult::Completed
        } else {
            UpgradeResult::Cancelled
        };
        let to_version = match result {
            UpgradeResult::Cancelled => None,
            _ => to_version,
        };
        self.results.bump(result);
        self.history.push(CompletedUpgrade {
            started: u.started,
            ended: now,
            result,
            from_version: u.from_version.clone(),
            to_version,
            nodes: u
                .nodes
                .iter()
                .filter(|n| n.took_part())
                .map(|n| NodeDuration {
                    name: n.name.clone(),
                    duration_seconds: n.duration_seconds(),
                })
                .collect(),
        });
        let excess = self.history.len().saturating_sub(HISTORY_LIMIT);
        self.history.drain(..excess);
    }

    /// The last finished upgrade, if any.
    pub fn last(&self) -> Option<&CompletedUpgrade> {
        self.history.last()
    }
}

fn begin(cluster: &Cluster, now: f64) -> Upgrade {
    Upgrade {
        started: now,
        from_version: cluster.original_version.clone(),
        nodes: by_name(cluster)
            .into_iter()
            .map(|(name, _)| NodeProgress {
                name,
                ..NodeProgress::default()
            })
            .collect(),
        all_upgraded_seen: false,
    }
}

fn most_common<'a>(values: &[&'a str]) -> Option<&'a str> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_insert(0) += 1;
    }
    counts.into_iter().max_by_key(|(_, c)| *c).map(|(v, _)| v)
}

/// The next node to stop: live, not a ghost, still on the original version, fewest users +
/// tasks (unknown counts as busy). Returns its index in `cluster.nodes` and whether it is
/// safe to stop (both users and tasks known to be 0).
pub fn next_to_stop(cluster: &Cluster) -> Option<(usize, bool)> {
    let orig = cluster.original_version.as_deref()?;
    cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.is_offline() && n.version.as_deref() == Some(orig))
        .filter(|(_, n)| n.state == Some(NodeState::Active))
        .min_by_key(|(_, n)| {
            n.active_user_count
                .unwrap_or(u64::MAX / 4)
                .saturating_add(n.tasks_total.unwrap_or(u64::MAX / 4))
        })
        .map(|(i, n)| {
            (
                i,
                n.active_user_count == Some(0) && n.tasks_total == Some(0),
            )
        })
}

mod rename;
#[cfg(test)]
mod tests;

//! What the exporter knows about one target's rolling upgrade, as one serialisable value:
//! the JSON API (`GET /api/v1/targets/{name}/upgrade`), the live page (`/upgrade`) and
//! `bitbucket-zdu-exporter status` all read the same [`UpgradeView`]. The field names are
//! the API's contract: snake_case, times as unix seconds, durations as seconds; a field is
//! `null` when not known, never left out.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::model::ClusterState;
use crate::snapshot::TargetShared;
use crate::tracker::progress::{self, Phase, Transition};

/// The actions Bitbucket allows from `state` (each is legal from one state only).
pub fn allowed_actions(state: Option<&ClusterState>) -> Vec<String> {
    let action = match state {
        Some(ClusterState::Stable) => Some("start"),
        Some(ClusterState::ReadyToUpgrade) => Some("cancel"),
        Some(ClusterState::ReadyToRunUpgradeTasks) => Some("approve"),
        Some(ClusterState::UpgradeTasksFailed) => Some("retry"),
        _ => None,
    };
    action.into_iter().map(str::to_string).collect()
}

/// One node entry as the cluster reports it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Bitbucket's node id.
    pub id: String,
    /// The node's name; null when Bitbucket gives none.
    pub name: Option<String>,
    /// `ip:port` (just `ip`, or empty, when Bitbucket omits them): the identity Bitbucket
    /// matches nodes by.
    pub address: String,
    /// The node state (`ACTIVE`, `DRAINING`, `OFFLINE`, ...); null when absent.
    pub state: Option<String>,
    /// The node's Bitbucket version; null when absent.
    pub version: Option<String>,
    /// Users active on the node; null when not reported.
    pub active_users: Option<u64>,
    /// Tasks running on the node; null when not reported.
    pub tasks: Option<u64>,
    /// An OFFLINE entry whose name matches a live node (a pod back with a new IP).
    pub ghost: bool,
    /// When the node entry entered its current state, as first seen (unix seconds); null when
    /// not known.
    pub state_since: Option<f64>,
}

/// The node to stop next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextNode {
    /// Bitbucket's node id.
    pub id: String,
    /// The node's name; null when Bitbucket gives none.
    pub name: Option<String>,
    /// `ip:port` (just `ip`, or empty, when Bitbucket omits them).
    pub address: String,
    /// Users active on the node; null when not reported.
    pub active_users: Option<u64>,
    /// Tasks running on the node; null when not reported.
    pub tasks: Option<u64>,
    /// True when both users and tasks are known to be 0.
    pub safe: bool,
}

/// One node of the upgrade in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpgradeNodeView {
    /// The node's name (its key when it has none).
    pub name: String,
    /// The state last seen; null before any.
    pub state: Option<String>,
    /// The version last seen on a live entry; null before any.
    pub version: Option<String>,
    /// True once seen live on a version other than the original.
    pub done: bool,
    /// When first seen DRAINING (unix seconds).
    pub drain_at: Option<f64>,
    /// When first seen TERMINATING (unix seconds).
    pub terminate_at: Option<f64>,
    /// When first seen OFFLINE, with no live entry (unix seconds).
    pub offline_at: Option<f64>,
    /// When first seen STARTING (unix seconds).
    pub start_at: Option<f64>,
    /// When first seen live on a version other than the original (unix seconds).
    pub done_at: Option<f64>,
    /// When first seen ACTIVE on a version other than the original (unix seconds).
    pub active_at: Option<f64>,
    /// Drain start (or the first phase seen) to ACTIVE on the new version, in seconds; null until
    /// both are seen.
    pub duration_seconds: Option<f64>,
    /// State changes since the upgrade started, oldest first.
    pub timeline: Vec<Phase>,
}

/// The upgrade in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlightView {
    /// When upgrade mode was first seen on (unix seconds).
    pub started_at: f64,
    /// Seconds since `started_at` (never negative).
    pub elapsed_seconds: f64,
    /// `originalVersion` when the upgrade started; null when not reported.
    pub from_version: Option<String>,
    /// Nodes taking part (ghosts excluded).
    pub nodes_total: usize,
    /// Nodes live on a version other than the original.
    pub nodes_done: usize,
    /// Absent (null) until one node is done.
    pub estimated_completion_at: Option<f64>,
    /// Seconds from now to `estimated_completion_at` (never negative); null when that is.
    pub remaining_seconds: Option<f64>,
    /// The nodes taking part, in Bitbucket's order.
    pub nodes: Vec<UpgradeNodeView>,
}

/// One finished upgrade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryView {
    /// When upgrade mode was first seen on (unix seconds).
    pub started_at: f64,
    /// When the upgrade was seen to end (unix seconds).
    pub ended_at: f64,
    /// `ended_at` minus `started_at`, in seconds.
    pub duration_seconds: f64,
    /// `completed`, `cancelled` or `failed_finalization`.
    pub result: String,
    /// `originalVersion` when the upgrade started; null when not known.
    pub from_version: Option<String>,
    /// The version the nodes were upgraded to; null when cancelled or not known.
    pub to_version: Option<String>,
    /// Each node's upgrade duration.
    pub nodes: Vec<progress::NodeDuration>,
}

/// Finished upgrades per result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResultsView {
    /// Upgrades that completed.
    pub completed: u64,
    /// Upgrades that were cancelled.
    pub cancelled: u64,
    /// Upgrades whose finalization failed.
    pub failed_finalization: u64,
}

/// Everything about one target's upgrade (`GET /api/v1/targets/{name}/upgrade`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpgradeView {
    /// The target's configured name.
    pub target: String,
    /// When this view was made (unix seconds).
    pub generated_at: f64,
    /// True when the last `/cluster` poll succeeded and is fresh; the cluster fields below
    /// are null (and lists empty) otherwise.
    pub up: bool,
    /// Why not up (`pending` before the first poll, a failure reason, or `stale`).
    pub down_reason: Option<String>,
    /// The cluster state (`STABLE`, `MIXED`, ...).
    pub cluster_state: Option<String>,
    /// When the cluster entered its current state, as first seen (unix seconds).
    pub cluster_state_since: Option<f64>,
    /// Bitbucket's `upgradeModeEnabled`: true while rolling upgrade mode is on.
    pub upgrade_mode_enabled: Option<bool>,
    /// Bitbucket's `originalVersion`: the version the upgrade started from.
    pub original_version: Option<String>,
    /// Distinct versions among live (not OFFLINE) nodes.
    pub versions: Vec<String>,
    /// What Bitbucket allows now: `start`, `cancel`, `approve` or `retry` (at most one).
    pub allowed_actions: Vec<String>,
    /// Every node entry Bitbucket reports, ghosts included.
    pub nodes: Vec<NodeView>,
    /// The live, non-ghost ACTIVE node still on the original version with the fewest users +
    /// tasks; null when there is none.
    pub next_node: Option<NextNode>,
    /// The upgrade in flight (null when none is).
    pub upgrade: Option<InFlightView>,
    /// Recent cluster state transitions, newest first.
    pub recent_transitions: Vec<Transition>,
    /// Finished upgrades, newest first (at most 20).
    pub history: Vec<HistoryView>,
    /// Finished upgrades per result (not bounded like `history`).
    pub results: ResultsView,
}

impl UpgradeView {
    /// True when the cluster is STABLE with every live node on one version.
    pub fn is_settled(&self) -> bool {
        self.up && self.cluster_state.as_deref() == Some("STABLE") && self.versions.len() <= 1
    }

    /// True when a node entry is in ERROR.
    pub fn has_node_in_error(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| n.state.as_deref() == Some("ERROR"))
    }
}

/// A summary row of `GET /api/v1/targets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSummary {
    /// The target's configured name.
    pub name: String,
    /// Bitbucket's URL without credentials.
    pub url: String,
    /// True when the last `/cluster` poll succeeded and is fresh.
    pub up: bool,
    /// The cluster state; null while down.
    pub cluster_state: Option<String>,
    /// True while an upgrade is in flight (and the target up).
    pub upgrade_in_flight: bool,
    /// Path of this target's upgrade view.
    pub upgrade_url: String,
}

/// `GET /api/v1/targets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetList {
    /// One row per configured target.
    pub targets: Vec<TargetSummary>,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A path segment with everything but unreserved characters percent-encoded.
pub fn path_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The view of one target now.
pub fn view(t: &TargetShared) -> UpgradeView {
    let snap = t.snapshot.load();
    let now = Instant::now();
    let wall = unix_now();
    let fresh = snap.fresh_cluster(now);
    let p = &snap.progress;
    let down_reason = match (fresh, snap.first_poll_done) {
        (Some(_), _) => None,
        (None, false) => Some("pending".to_string()),
        (None, true) => snap.down_reason(now).map(str::to_string),
    };
    let mut v = UpgradeView {
        target: t.config.load().name().to_string(),
        generated_at: wall,
        up: fresh.is_some(),
        down_reason,
        cluster_state: None,
        cluster_state_since: None,
        upgrade_mode_enabled: None,
        original_version: None,
        versions: Vec::new(),
        allowed_actions: Vec::new(),
        nodes: Vec::new(),
        next_node: None,
        upgrade: None,
        recent_transitions: p.recent_transitions.iter().rev().cloned().collect(),
        history: p.history.iter().rev().map(history_view).collect(),
        results: ResultsView {
            completed: p.results.completed,
            cancelled: p.results.cancelled,
            failed_finalization: p.results.failed_finalization,
        },
    };
    let Some(cv) = fresh else {
        return v;
    };
    fill_cluster(&mut v, cv);
    v.upgrade = p.current.as_ref().map(|u| in_flight(u, wall));
    v
}

/// One finished upgrade as the API shows it.
fn history_view(h: &progress::CompletedUpgrade) -> HistoryView {
    HistoryView {
        started_at: h.started,
        ended_at: h.ended,
        duration_seconds: h.duration_seconds(),
        result: h.result.as_str().to_string(),
        from_version: h.from_version.clone(),
        to_version: h.to_version.clone(),
        nodes: h.nodes.clone(),
    }
}

/// The fields of `v` read from a fresh `/cluster` poll.
fn fill_cluster(v: &mut UpgradeView, cv: &crate::snapshot::ClusterView) {
    let c = &cv.cluster;
    v.cluster_state = c.state.as_ref().map(|s| s.as_str().to_string());
    v.cluster_state_since = cv.cluster_since;
    v.upgrade_mode_enabled = c.upgrade_mode_enabled;
    v.original_version = c.original_version.clone();
    let mut versions: Vec<String> = c
        .nodes
        .iter()
        .filter(|n| !n.is_offline())
        .filter_map(|n| n.version.clone())
        .collect();
    versions.sort();
    versions.dedup();
    v.versions = versions;
    v.allowed_actions = allowed_actions(c.state.as_ref());
    let keys = c.node_keys();
    v.nodes = c
        .nodes
        .iter()
        .zip(&keys)
        .enumerate()
        .map(|(i, (n, key))| NodeView {
            id: key.clone(),
            name: n.name.clone(),
            address: n.address(),
            state: n.state.as_ref().map(|s| s.as_str().to_string()),
            version: n.version.clone(),
            active_users: n.active_user_count,
            tasks: n.tasks_total,
            ghost: cv.figures.ghosts.contains(&i),
            state_since: cv.node_since.get(i).copied(),
        })
        .collect();
    if c.upgrade_mode_enabled == Some(true) {
        v.next_node = progress::next_to_stop(c).map(|(i, safe)| {
            let n = &c.nodes[i];
            NextNode {
                id: keys[i].clone(),
                name: n.name.clone(),
                address: n.address(),
                active_users: n.active_user_count,
                tasks: n.tasks_total,
                safe,
            }
        });
    }
}

/// The upgrade in flight, `wall` being now in unix seconds.
fn in_flight(u: &progress::Upgrade, wall: f64) -> InFlightView {
    let eta = u.estimated_completion();
    InFlightView {
        started_at: u.started,
        elapsed_seconds: (wall - u.started).max(0.0),
        from_version: u.from_version.clone(),
        nodes_total: u.nodes_total(),
        nodes_done: u.nodes_done(),
        estimated_completion_at: eta,
        remaining_seconds: eta.map(|e| (e - wall).max(0.0)),
        nodes: u
            .nodes
            .iter()
            .map(|n| UpgradeNodeView {
                name: n.name.clone(),
                state: n.state.clone(),
                version: n.version.clone(),
                done: n.is_done(),
                drain_at: n.drain_at,
                terminate_at: n.terminate_at,
                offline_at: n.offline_at,
                start_at: n.start_at,
                done_at: n.done_at,
                active_at: n.active_at,
                duration_seconds: n.duration_seconds(),
                timeline: n.timeline.clone(),
            })
            .collect(),
    }
}

/// The summary of every target.
pub fn list(targets: &[std::sync::Arc<TargetShared>]) -> TargetList {
    let now = Instant::now();
    TargetList {
        targets: targets
            .iter()
            .map(|t| {
                let cfg = t.config.load();
                let snap = t.snapshot.load();
                let fresh = snap.fresh_cluster(now);
                TargetSummary {
                    name: cfg.name().to_string(),
                    url: cfg.display_url(),
                    up: fresh.is_some(),
                    cluster_state: fresh
                        .and_then(|v| v.cluster.state.as_ref())
                        .map(|s| s.as_str().to_string()),
                    upgrade_in_flight: fresh.is_some() && snap.progress.current.is_some(),
                    upgrade_url: format!("/api/v1/targets/{}/upgrade", path_segment(cfg.name())),
                }
            })
            .collect(),
    }
}

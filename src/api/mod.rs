//! The JSON API's shapes: what the exporter knows about one target's rolling upgrade, as
//! one serialisable value. The field names are the API's contract: snake_case, times as unix
//! seconds, durations as seconds; a field is `null` when not known, never left out.
//!
//! [`project`] makes them from a target's snapshot: the JSON API
//! (`GET /api/v1/targets/{name}/upgrade`), the live page (`/upgrade`), the landing page and
//! `bitbucket-zdu-exporter status` all render the same [`TargetView`].

use serde::{Deserialize, Serialize};

use crate::model::Product;
use crate::tracker::progress::{self, Phase, Transition};

pub mod project;

pub use project::{allowed_actions, list, path_segment, view};

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
    /// not known. Jira's own `lastStateChangeTimestamp` when it gives one.
    pub state_since: Option<f64>,
    /// The node's heartbeat (Jira's `alive`; ACTIVE and false is "no heartbeat"); null for
    /// the products without one (Bitbucket, Confluence) and when Jira leaves it out. Read
    /// as null from an exporter that did not send it.
    #[serde(default)]
    pub alive: Option<bool>,
    /// Errors of the node's last finalization run (Confluence's `finalization.errors`);
    /// null for the products without one (Bitbucket, Jira) and when Confluence leaves it
    /// out. Read as null from an exporter that did not send it.
    #[serde(default)]
    pub finalization_errors: Option<u64>,
}

impl NodeView {
    /// What a reader appends to the node's name, the same on the landing page, `/upgrade`
    /// and in `status`: ` (ghost)`, ` (no heartbeat)` for a node not OFFLINE whose heartbeat
    /// is false, ` (N finalization errors)` when there are some; empty for none of these (so
    /// a Bitbucket node reads as it always did).
    pub fn marks(&self) -> String {
        let mut out = String::new();
        if self.ghost {
            out.push_str(" (ghost)");
        }
        if self.alive == Some(false) && self.state.as_deref() != Some("OFFLINE") {
            out.push_str(" (no heartbeat)");
        }
        match self.finalization_errors {
            Some(1) => out.push_str(" (1 finalization error)"),
            Some(n) if n > 1 => out.push_str(&format!(" ({n} finalization errors)")),
            _ => {}
        }
        out
    }
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
    /// Seconds since `started_at` (never negative); null when the start was not seen (the
    /// `status` command joining an upgrade already under way).
    pub elapsed_seconds: Option<f64>,
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
pub struct TargetView {
    /// The target's configured name.
    pub target: String,
    /// The target's product: `bitbucket`, `confluence` or `jira`.
    #[serde(default)]
    pub product: Product,
    /// When this view was made (unix seconds).
    pub generated_at: f64,
    /// True when the last `/cluster` poll succeeded and is fresh; the cluster fields below
    /// are null (and lists empty) otherwise.
    pub up: bool,
    /// Why not up (`pending` before the first poll, a failure reason, or `stale`).
    pub down_reason: Option<String>,
    /// The last `/cluster` poll's error; null when it succeeded or none was made.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the last successful `/cluster` poll finished (unix seconds); null before one.
    #[serde(default)]
    pub last_success_at: Option<f64>,
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

impl TargetView {
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
    /// The target's product: `bitbucket`, `confluence` or `jira`.
    #[serde(default)]
    pub product: Product,
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

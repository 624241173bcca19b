//! The one projection of a target's snapshot that every reader renders: the JSON API, the
//! landing page, the live upgrade page and the `status` command. Up or down comes from
//! [`crate::snapshot::TargetSnapshot::health`] alone.

use std::time::Instant;

use super::{
    HistoryView, InFlightView, NextNode, NodeView, ResultsView, TargetList, TargetSummary,
    TargetView, UpgradeNodeView,
};
use crate::model::ClusterState;
use crate::snapshot::{ClusterObservation, Endpoint, TargetShared};
use crate::sys::duration::unix_now;
use crate::tracker::progress;

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
pub fn view(t: &TargetShared) -> TargetView {
    let snap = t.snapshot.load();
    let wall = unix_now();
    let health = snap.health(Instant::now());
    let p = &snap.progress;
    let cluster_ep = &snap.endpoints[Endpoint::Cluster];
    let mut v = TargetView {
        target: t.config.load().name().to_string(),
        product: t.config.load().product(),
        generated_at: wall,
        up: health.is_up(),
        down_reason: health.down_reason().map(str::to_string),
        last_error: cluster_ep.last_error.as_ref().map(|e| e.to_string()),
        last_success_at: cluster_ep.last_success_timestamp,
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
    let Some(cv) = health.cluster() else {
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
fn fill_cluster(v: &mut TargetView, cv: &ClusterObservation) {
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
            // Confluence's null state (a per-node call timed out) reads `unknown`.
            state: match (&n.state, cv.extras.node(i).state_null) {
                (Some(s), _) => Some(s.as_str().to_string()),
                (None, true) => Some("unknown".into()),
                (None, false) => None,
            },
            version: n.version.clone(),
            active_users: n.active_user_count,
            tasks: n.tasks_total,
            ghost: cv.figures.ghosts.contains(&i),
            state_since: cv.node_since.get(i).copied(),
            alive: cv.extras.node(i).alive,
            finalization_errors: cv.extras.node(i).finalization_errors,
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
        elapsed_seconds: Some((wall - u.started).max(0.0)),
        from_version: u.from_version.clone(),
        nodes_total: u.nodes_total(),
        nodes_done: u.nodes_done(),
        estimated_completion_at: eta,
        remaining_seconds: eta.map(|e| (e - wall).max(0.0)),
        nodes: u
            .nodes
            .iter()
            .filter(|n| n.took_part())
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
                let fresh = snap.health(now).cluster();
                TargetSummary {
                    name: cfg.name().to_string(),
                    product: cfg.product(),
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

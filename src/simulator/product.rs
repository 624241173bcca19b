//! The simulator's Confluence and Jira faces: the same simulated cluster, served in each
//! product's shape with its quirks.
//!
//! - Confluence: the `/rest/zdu` paths as Bitbucket's, with `hasFinalizationTasks`, per-node
//!   `finalization {lastRequested, errors[]}` (one error per node after a failed
//!   finalization), no `portNumber`, no DRAINING (a draining node still reads ACTIVE), a
//!   `null` state for a node being stopped (TERMINATING: Confluence's per-node call times
//!   out), RUNNING_FINALIZE_UPGRADE_TASKS on nodes while finalization runs and
//!   UPGRADE_TASKS_FAILED after it failed.
//! - Jira: `GET /rest/api/2/cluster/zdu/state` (`{state, build}`: the original version while
//!   in upgrade mode) and `GET /rest/api/2/cluster/nodes` (ACTIVATING while starting,
//!   PASSIVATING while draining, ACTIVE with `alive: false` while stopping or in error,
//!   OFFLINE when down), plus one stale OFFLINE entry that lingers as in a real cluster.

use serde_json::{json, Value};

use super::cluster::{Finalization, SimCluster};
use crate::model::{ClusterState, NodeState};

/// The time the simulated finalization was last requested (epoch milliseconds).
const REQUESTED_MS: u64 = 1_700_000_000_000;

/// The `/rest/zdu/cluster` answer in Confluence's shape, from Bitbucket's `bitbucket` JSON.
pub fn confluence_cluster(c: &SimCluster, mut bitbucket: Value) -> Value {
    let failed = c.finalization == Finalization::Failed;
    let running = c.finalization == Finalization::Running;
    if let Some(nodes) = bitbucket.get_mut("nodes").and_then(Value::as_array_mut) {
        for n in nodes {
            confluence_node(n, running, failed);
        }
    }
    if let Some(o) = bitbucket.as_object_mut() {
        o.insert("hasFinalizationTasks".into(), json!(running || failed));
    }
    bitbucket
}

fn confluence_node(n: &mut Value, running: bool, failed: bool) {
    let Some(o) = n.as_object_mut() else { return };
    o.remove("portNumber");
    let state = o.get("state").and_then(Value::as_str).map(str::to_string);
    let live = matches!(state.as_deref(), Some("ACTIVE") | Some("DRAINING"));
    let new_state = match state.as_deref() {
        Some("DRAINING") => json!("ACTIVE"),
        Some("TERMINATING") => Value::Null,
        Some("ACTIVE") if running => json!("RUNNING_FINALIZE_UPGRADE_TASKS"),
        Some("ACTIVE") if failed => json!("UPGRADE_TASKS_FAILED"),
        other => json!(other),
    };
    o.insert("state".into(), new_state);
    let errors: Vec<Value> = if failed && live {
        vec![
            json!({"clusterUpgradeTask": true, "exceptionMessage": "Upgrade task failed (simulated)", "errors": []}),
        ]
    } else {
        Vec::new()
    };
    o.insert(
        "finalization".into(),
        json!({"lastRequested": (running || failed).then_some(REQUESTED_MS), "errors": errors}),
    );
}

/// Jira's build number for a version: major, minor, then the patch in four digits
/// (`9.4.30` → 940030, `9.12.24` → 9120024).
fn jira_build(version: &str) -> u64 {
    let p: Vec<u64> = version.split('.').map(|s| s.parse().unwrap_or(0)).collect();
    let at = |i: usize| p.get(i).copied().unwrap_or(0);
    format!("{}{}{:04}", at(0), at(1), at(2))
        .parse()
        .unwrap_or(0)
}

/// The cluster's version: the original one in upgrade mode, else the live nodes' newest.
fn cluster_version(c: &SimCluster) -> String {
    if let (true, Some(v)) = (c.upgrade_mode, &c.original_version) {
        return v.clone();
    }
    c.nodes
        .iter()
        .filter(|n| n.state != NodeState::Offline)
        .filter_map(|n| n.version.clone())
        .max()
        .unwrap_or_default()
}

/// `GET /rest/api/2/cluster/zdu/state`.
pub fn jira_state(c: &SimCluster) -> Value {
    let version = cluster_version(c);
    let state: ClusterState = c.state();
    json!({"state": state.as_str(), "build": {"buildNumber": jira_build(&version), "version": version}})
}

/// `GET /rest/api/2/cluster/nodes`, with one lingering OFFLINE entry.
pub fn jira_nodes(c: &SimCluster) -> Value {
    let mut out: Vec<Value> = c
        .nodes
        .iter()
        .map(|n| {
            let (state, alive) = match n.state {
                NodeState::Starting => ("ACTIVATING", true),
                NodeState::Draining => ("PASSIVATING", true),
                NodeState::Terminating | NodeState::Error => ("ACTIVE", false),
                NodeState::Offline => ("OFFLINE", false),
                _ => ("ACTIVE", true),
            };
            let version = n.version.clone().unwrap_or_default();
            json!({
                "nodeId": n.name, "state": state, "alive": alive, "ip": n.ip,
                "cacheListenerPort": 40001, "nodeBuildNumber": jira_build(&version),
                "nodeVersion": version, "lastStateChangeTimestamp": REQUESTED_MS,
            })
        })
        .collect();
    out.push(json!({
        "nodeId": "jira-stale", "state": "OFFLINE", "alive": false, "ip": "10.0.9.9",
        "cacheListenerPort": 40001, "nodeBuildNumber": 9_000_000, "nodeVersion": "9.0.0",
        "lastStateChangeTimestamp": REQUESTED_MS - 86_400_000,
    }));
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confluence_shape_and_quirks() {
        let mut c = SimCluster::for_product(crate::model::Product::Confluence, 3, "9.2.13");
        c.nodes[0].state = NodeState::Draining;
        c.nodes[1].state = NodeState::Terminating;
        c.finalization = Finalization::Failed;
        let v = confluence_cluster(&c, c.cluster_json(None, ""));
        assert_eq!(v["hasFinalizationTasks"], true);
        let nodes = v["nodes"].as_array().unwrap();
        assert!(nodes.iter().all(|n| n.get("portNumber").is_none()));
        assert_eq!(nodes[2]["name"], "confluence-2");
        let states: Vec<&Value> = nodes.iter().map(|n| &n["state"]).collect();
        assert!(states.contains(&&Value::Null), "{states:?}");
        assert!(!states.contains(&&json!("DRAINING")), "{states:?}");
        let errors: usize = nodes
            .iter()
            .map(|n| n["finalization"]["errors"].as_array().unwrap().len())
            .sum();
        assert_eq!(errors, 2, "one per live node after a failed finalization");
    }

    #[test]
    fn jira_shape_and_quirks() {
        let mut c = SimCluster::for_product(crate::model::Product::Jira, 2, "9.4.30");
        c.start().unwrap();
        c.nodes[0].version = Some("9.12.24".into());
        c.nodes[1].state = NodeState::Terminating;
        let s = jira_state(&c);
        assert_eq!(
            s["build"]["version"], "9.4.30",
            "the original while in upgrade mode"
        );
        assert_eq!(s["build"]["buildNumber"], 940030);
        let n = jira_nodes(&c);
        let n = n.as_array().unwrap();
        assert_eq!(n.len(), 3, "with the lingering OFFLINE entry");
        assert_eq!(
            (&n[0]["nodeId"], &n[1]["nodeId"]),
            (&json!("jira-0"), &json!("jira-1"))
        );
        assert_eq!(n[0]["nodeBuildNumber"], 9120024);
        assert_eq!(
            (&n[1]["state"], &n[1]["alive"]),
            (&json!("ACTIVE"), &json!(false))
        );
        assert_eq!(n[2]["state"], "OFFLINE");
    }
}

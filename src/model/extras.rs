//! What Confluence and Jira report beyond the fields Bitbucket's [`Cluster`](super::Cluster)
//! has, kept beside the cluster answer (one entry per node, in the order of
//! `Cluster::nodes`) so that Bitbucket's model and exposition stay as they are.
//!
//! - Confluence: `hasFinalizationTasks`, and per node `finalization {lastRequested,
//!   errors[]}` (the count of errors of the node's last finalization run).
//! - Jira: per node `alive` (heartbeat; an ACTIVE node with `alive: false` is "no heartbeat")
//!   and `lastStateChangeTimestamp` (when the node entered its state, used for time in state
//!   instead of the time the exporter first saw it).

use serde::Deserialize;
use serde_json::Value;

/// A product's extra per-node fields. Every field is `None` when the product has no such
/// field or the upstream left it out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeExtras {
    /// Jira: the node's heartbeat (`alive`).
    pub alive: Option<bool>,
    /// Jira: when the node entered its state (`lastStateChangeTimestamp`, unix seconds).
    pub state_changed_at: Option<f64>,
    /// Confluence: errors of the node's last finalization run (`finalization.errors`).
    pub finalization_errors: Option<u64>,
    /// Confluence: when finalization was last requested (`finalization.lastRequested`,
    /// unix seconds).
    pub finalization_requested_at: Option<f64>,
    /// Confluence: the node's `state` was JSON `null` (a per-node call timed out), shown as
    /// `unknown`.
    pub state_null: bool,
}

/// A product's extra fields of one cluster answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterExtras {
    /// Confluence: `hasFinalizationTasks`.
    pub has_finalization_tasks: Option<bool>,
    /// One entry per node, in the order of `Cluster::nodes` (empty for Bitbucket).
    pub nodes: Vec<NodeExtras>,
}

impl ClusterExtras {
    /// The extras of the node at `index`; all `None` when there are none.
    pub fn node(&self, index: usize) -> NodeExtras {
        self.nodes.get(index).cloned().unwrap_or_default()
    }
}

/// Epoch milliseconds as unix seconds; `None` for anything but a non-negative number.
pub(crate) fn millis(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
        .filter(|m| m.is_finite() && *m >= 0.0)
        .map(|m| m / 1000.0)
}

#[derive(Deserialize)]
struct ConfluenceBody {
    #[serde(default, rename = "hasFinalizationTasks")]
    has_finalization_tasks: Option<Value>,
    #[serde(default)]
    nodes: Option<Value>,
}

/// Reads Confluence's extra fields from a `/rest/zdu/cluster` body that already decoded as
/// a [`Cluster`](super::Cluster) (so the node entries are those the cluster kept: objects
/// that are nodes, in order). Lenient like the rest of the model: a field of the wrong type
/// is `None`.
pub fn confluence(body: &[u8]) -> ClusterExtras {
    let Ok(b) = serde_json::from_slice::<ConfluenceBody>(body) else {
        return ClusterExtras::default();
    };
    let nodes = match b.nodes {
        Some(Value::Array(items)) => items
            .iter()
            .filter(|v| v.is_object())
            .filter(|v| serde_json::from_value::<super::Node>((*v).clone()).is_ok())
            .map(confluence_node)
            .collect(),
        _ => Vec::new(),
    };
    ClusterExtras {
        has_finalization_tasks: b.has_finalization_tasks.and_then(|v| v.as_bool()),
        nodes,
    }
}

fn confluence_node(v: &Value) -> NodeExtras {
    let fin = v.get("finalization").filter(|f| f.is_object());
    NodeExtras {
        finalization_errors: fin
            .and_then(|f| f.get("errors"))
            .and_then(Value::as_array)
            .map(|e| e.len() as u64),
        finalization_requested_at: millis(fin.and_then(|f| f.get("lastRequested"))),
        state_null: matches!(v.get("state"), Some(Value::Null)),
        ..NodeExtras::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Answer, Cluster, Limits};

    #[test]
    fn confluence_finalization_fields_null_state_and_no_port() {
        let body = br#"{"upgradeModeEnabled":true,"state":"UPGRADE_TASKS_FAILED","originalVersion":"9.2.13",
          "hasFinalizationTasks":true,
          "nodes":[
            {"id":"a","name":"n1","ipAddress":"10.0.0.1","state":"UPGRADE_TASKS_FAILED","version":"9.2.21",
             "buildNumber":"9116","finalization":{"lastRequested":1700000000000,
             "errors":[{"clusterUpgradeTask":true,"exceptionMessage":"boom","errors":[]},{"exceptionMessage":"x"}]}},
            7,
            {"id":"b","name":"n2","ipAddress":"10.0.0.2","state":null,"version":"9.2.21"},
            {"id":"c","name":"n3","state":"RUNNING_FINALIZE_UPGRADE_TASKS","finalization":{"lastRequested":null,"errors":[]}}
          ]}"#;
        let c = Cluster::from_json(body, Limits::default()).unwrap();
        let x = confluence(body);
        assert_eq!(c.nodes.len(), 3);
        assert_eq!(
            x.nodes.len(),
            3,
            "one extras entry per node the cluster kept"
        );
        assert_eq!(x.has_finalization_tasks, Some(true));
        assert_eq!(x.nodes[0].finalization_errors, Some(2));
        assert_eq!(x.nodes[0].finalization_requested_at, Some(1_700_000_000.0));
        assert_eq!(c.nodes[1].state, None);
        assert!(x.nodes[1].state_null && !x.nodes[0].state_null);
        assert_eq!(x.nodes[1].finalization_errors, None);
        assert_eq!(x.nodes[2].finalization_errors, Some(0));
        assert!(c.nodes[2].state.as_ref().unwrap().is_unknown());
        assert_eq!(c.nodes[0].address(), "10.0.0.1", "no portNumber");
        assert_eq!(x.node(9), NodeExtras::default());
        assert_eq!(confluence(b"not json"), ClusterExtras::default());
    }
}

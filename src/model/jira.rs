//! Jira Data Center's cluster API, read into the same [`Cluster`] Bitbucket's answer gives.
//!
//! Jira answers two calls: `GET /rest/api/2/cluster/zdu/state`
//! (`{"state", "build": {"buildNumber": int, "version"}}`) and `GET /rest/api/2/cluster/nodes`
//! (`[{nodeId, state, alive, ip, cacheListenerPort, nodeBuildNumber, nodeVersion,
//! lastStateChangeTimestamp}]`). [`assemble`] folds them into one [`Cluster`] plus
//! [`ClusterExtras`], with these semantics (decided once, documented in the README):
//!
//! - upgrade mode is on when the state is not `STABLE` (Jira has no flag);
//! - the original version is `build.version` while in upgrade mode (Jira keeps the cluster's
//!   build, the original one, until the upgrade is finalized); `None` when STABLE;
//! - a node's id and name are its `nodeId` (Jira's `jira.node.id`, stable configuration), its
//!   address `ip:cacheListenerPort`, its version `nodeVersion`, its build `nodeBuildNumber`;
//! - node states are kept as Jira spells them (ACTIVE, PASSIVE, ACTIVATING, PASSIVATING,
//!   OFFLINE): ACTIVE and OFFLINE are the model's; the others, and any unknown value, are
//!   counted as values the Bitbucket model does not know, never fatal;
//! - `alive` and `lastStateChangeTimestamp` go to [`NodeExtras`] (an ACTIVE node with
//!   `alive: false` is "no heartbeat");
//! - OFFLINE entries linger for up to two days: like Bitbucket's ghosts, they never count in
//!   version skew or upgraded nodes ([`Cluster::figures`] skips OFFLINE entries).
//!
//! Decoding is lenient like the rest of the model: wrong-typed leaves are `None`, extra fields
//! are ignored, non-object entries are skipped; only a body of the wrong overall shape fails.

use serde::Deserialize;
use serde_json::Value;

use super::extras::{millis, ClusterExtras, NodeExtras};
use super::{Answer, Cluster, ClusterState, DecodeError, Limits, Node, NodeState, StateResponse};

/// `GET /rest/api/2/cluster/zdu/state`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JiraState {
    /// `state`: one of the six cluster states Bitbucket also has.
    pub state: Option<ClusterState>,
    /// `build.version`: the cluster's version (the original one until finalization).
    pub version: Option<String>,
    /// `build.buildNumber`: the cluster's build number (an int encoding the version).
    pub build_number: Option<u64>,
}

/// `GET /rest/api/2/cluster/nodes`: the node list, as [`Node`]s and their extras.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JiraNodes {
    /// The nodes, in Jira's order.
    pub nodes: Vec<Node>,
    /// `alive` and `lastStateChangeTimestamp` of each node, in the same order.
    pub extras: Vec<NodeExtras>,
}

#[derive(Deserialize)]
struct StateBody {
    #[serde(default)]
    state: Option<Value>,
    #[serde(default)]
    build: Option<Value>,
}

fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

fn count(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64)
}

fn check_label(limits: Limits, field: &'static str, v: Option<&str>) -> Result<(), DecodeError> {
    match v {
        Some(s) if s.len() > limits.max_label_bytes => Err(DecodeError::LabelTooLong {
            field,
            max: limits.max_label_bytes,
        }),
        _ => Ok(()),
    }
}

impl Answer for JiraState {
    fn from_json(body: &[u8], limits: Limits) -> Result<Self, DecodeError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| DecodeError::Shape(e.to_string()))?;
        if !v.is_object() {
            return Err(DecodeError::Shape(
                "the cluster state is not a JSON object".into(),
            ));
        }
        let b: StateBody =
            serde_json::from_value(v).map_err(|e| DecodeError::Shape(e.to_string()))?;
        let state = string(b.state.as_ref());
        let build = b.build.as_ref().filter(|v| v.is_object());
        let version = string(build.and_then(|v| v.get("version")));
        check_label(limits, "state", state.as_deref())?;
        check_label(limits, "build.version", version.as_deref())?;
        Ok(JiraState {
            state: state.map(|s| ClusterState::parse(&s)),
            version,
            build_number: count(build.and_then(|v| v.get("buildNumber"))),
        })
    }
}

impl Answer for JiraNodes {
    fn from_json(body: &[u8], limits: Limits) -> Result<Self, DecodeError> {
        let items: Vec<Value> = serde_json::from_slice(body)
            .map_err(|e| DecodeError::Shape(format!("the node list: {e}")))?;
        if items.len() > limits.max_nodes {
            return Err(DecodeError::TooManyNodes(limits.max_nodes));
        }
        let mut out = JiraNodes::default();
        for v in items.iter().filter(|v| v.is_object()) {
            let node = jira_node(v);
            check_label(limits, "nodeId", node.id.as_deref())?;
            check_label(limits, "ip", node.ip_address.as_deref())?;
            check_label(limits, "state", node.state.as_ref().map(NodeState::as_str))?;
            check_label(limits, "nodeVersion", node.version.as_deref())?;
            out.nodes.push(node);
            out.extras.push(NodeExtras {
                alive: v.get("alive").and_then(Value::as_bool),
                state_changed_at: millis(v.get("lastStateChangeTimestamp")),
                ..NodeExtras::default()
            });
        }
        Ok(out)
    }
}

fn jira_node(v: &Value) -> Node {
    let id = string(v.get("nodeId"));
    Node {
        name: id.clone(),
        id,
        ip_address: string(v.get("ip")),
        state: string(v.get("state")).map(|s| NodeState::parse(&s)),
        tasks_total: None,
        active_user_count: None,
        build_number: count(v.get("nodeBuildNumber")).map(|b| b.to_string()),
        version: string(v.get("nodeVersion")),
        local: None,
        port_number: count(v.get("cacheListenerPort")),
    }
}

/// True while Jira is in an upgrade: any state other than `STABLE` (an unknown state too).
pub fn in_upgrade_mode(state: Option<&ClusterState>) -> Option<bool> {
    state.map(|s| *s != ClusterState::Stable)
}

/// The two answers as one cluster answer and its extras.
pub fn assemble(state: JiraState, nodes: JiraNodes) -> (Cluster, ClusterExtras) {
    let upgrade_mode_enabled = in_upgrade_mode(state.state.as_ref());
    let original_version = match upgrade_mode_enabled {
        Some(true) => state.version.clone(),
        _ => None,
    };
    let cluster = Cluster {
        upgrade_mode_enabled,
        state: state.state,
        original_version,
        nodes: nodes.nodes,
    };
    let extras = ClusterExtras {
        has_finalization_tasks: None,
        nodes: nodes.extras,
    };
    (cluster, extras)
}

/// The `/zdu/state` answer in the shape of Bitbucket's `/rest/zdu/state`: the cluster state
/// and, as build info, the cluster's version and build (Jira names no responding node).
pub fn state_response(state: &JiraState) -> StateResponse {
    let build_info = (state.version.is_some() || state.build_number.is_some()).then(|| Node {
        version: state.version.clone(),
        build_number: state.build_number.map(|b| b.to_string()),
        ..Node::default()
    });
    StateResponse {
        state: state.state.clone(),
        build_info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &[u8] = br#"{"state":"MIXED","build":{"buildNumber":940030,"version":"9.4.30"}}"#;
    const NODES: &[u8] = br#"[
      {"nodeId":"node1","state":"ACTIVE","alive":true,"ip":"10.0.0.1","cacheListenerPort":40001,
       "nodeBuildNumber":9120024,"nodeVersion":"9.12.24","lastStateChangeTimestamp":1551080754927},
      {"nodeId":"node2","state":"ACTIVE","alive":false,"ip":"10.0.0.2","cacheListenerPort":40001,
       "nodeBuildNumber":940030,"nodeVersion":"9.4.30","lastStateChangeTimestamp":1551080000000},
      {"nodeId":"old","state":"OFFLINE","alive":false,"ip":"10.0.0.9","nodeVersion":"9.2.0"},
      {"nodeId":"node3","state":"PASSIVATING","alive":true,"ip":"10.0.0.3","nodeVersion":"9.4.30",
       "nodeBuildNumber":"wrong type","extra":1},
      "not a node"
    ]"#;

    fn decoded() -> (Cluster, ClusterExtras) {
        let s = JiraState::from_json(STATE, Limits::default()).unwrap();
        let n = JiraNodes::from_json(NODES, Limits::default()).unwrap();
        assemble(s, n)
    }

    #[test]
    fn upgrade_mode_and_original_version_come_from_the_state() {
        let (c, _) = decoded();
        assert_eq!(c.state, Some(ClusterState::Mixed));
        assert_eq!(c.upgrade_mode_enabled, Some(true));
        assert_eq!(c.original_version.as_deref(), Some("9.4.30"));
        let stable = JiraState::from_json(
            br#"{"state":"STABLE","build":{"buildNumber":9120024,"version":"9.12.24"}}"#,
            Limits::default(),
        )
        .unwrap();
        let (c, _) = assemble(stable.clone(), JiraNodes::default());
        assert_eq!(c.upgrade_mode_enabled, Some(false));
        assert_eq!(c.original_version, None);
        let r = state_response(&stable);
        assert_eq!(
            r.build_info.unwrap().build_number.as_deref(),
            Some("9120024")
        );
    }

    #[test]
    fn nodes_keep_jira_states_alive_and_state_change_times() {
        let (c, x) = decoded();
        assert_eq!(c.nodes.len(), 4, "the string entry is skipped");
        assert_eq!(c.nodes[0].key(), "node1");
        assert_eq!(c.nodes[0].address(), "10.0.0.1:40001");
        assert_eq!(c.nodes[0].build_number.as_deref(), Some("9120024"));
        assert_eq!(
            c.nodes[3].state,
            Some(NodeState::Unknown("PASSIVATING".into()))
        );
        assert_eq!(
            c.nodes[3].build_number, None,
            "a wrong type is dropped, not fatal"
        );
        assert_eq!(x.nodes[1].alive, Some(false), "ACTIVE without heartbeat");
        assert_eq!(x.nodes[0].state_changed_at, Some(1_551_080_754.927));
        assert_eq!(x.nodes[2].state_changed_at, None);
    }

    #[test]
    fn lingering_offline_entries_count_in_neither_skew_nor_upgraded() {
        let (c, _) = decoded();
        let f = c.figures();
        // node1 9.12.24, node2 and node3 9.4.30; the OFFLINE 9.2.0 entry is not counted.
        assert_eq!(f.distinct_versions, 2);
        assert_eq!(f.nodes_upgraded, 1);
    }

    #[test]
    fn wrong_shapes_and_limits_fail_the_answer() {
        assert!(JiraNodes::from_json(br#"{"nodes":[]}"#, Limits::default()).is_err());
        assert!(JiraState::from_json(b"[]", Limits::default()).is_err());
        let small = Limits {
            max_nodes: 2,
            max_label_bytes: 8,
        };
        assert_eq!(
            JiraNodes::from_json(NODES, small),
            Err(DecodeError::TooManyNodes(2))
        );
        let long = Limits {
            max_nodes: 10,
            max_label_bytes: 3,
        };
        assert!(matches!(
            JiraNodes::from_json(NODES, long),
            Err(DecodeError::LabelTooLong { .. })
        ));
        let s = JiraState::from_json(br#"{"state":"NEW_STATE","build":null}"#, Limits::default())
            .unwrap();
        assert!(
            s.state.unwrap().is_unknown(),
            "unknown values are kept, not fatal"
        );
    }
}

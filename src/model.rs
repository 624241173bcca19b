//! The ZDU payload model: what `GET /rest/zdu/cluster` and `GET /rest/zdu/state` return.
//!
//! Parsing is deliberately lenient below the top level. Bitbucket reports `null` for the
//! version, build number and counts of ghost or unreachable nodes, may omit `portNumber`, and a
//! later release may add enum values. None of that may fail a poll: unknown enum values are
//! kept as their raw string, wrong-typed leaf values become `None`, extra fields are ignored.
//! Only a body that is not a JSON object of the right overall shape is a decode error.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($variant,)+
            /// A value this version of the exporter does not know, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// Every value this version knows, in lifecycle order.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            /// The wire form (`"MIXED"`), or the raw string for an unknown value.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown(s) => s,
                }
            }

            /// Parses the wire form; anything else becomes `Unknown`.
            pub fn parse(s: &str) -> Self {
                match s {
                    $($text => $name::$variant,)+
                    other => $name::Unknown(other.to_string()),
                }
            }

            /// True for a value this version does not know.
            pub fn is_unknown(&self) -> bool {
                matches!(self, $name::Unknown(_))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok($name::parse(&s))
            }
        }
    };
}

string_enum! {
    /// The cluster-wide upgrade state, derived by Bitbucket on every request.
    ClusterState {
        Stable => "STABLE",
        ReadyToUpgrade => "READY_TO_UPGRADE",
        Mixed => "MIXED",
        ReadyToRunUpgradeTasks => "READY_TO_RUN_UPGRADE_TASKS",
        RunningUpgradeTasks => "RUNNING_UPGRADE_TASKS",
        UpgradeTasksFailed => "UPGRADE_TASKS_FAILED",
    }
}

string_enum! {
    /// The state of one cluster node.
    NodeState {
        Starting => "STARTING",
        Active => "ACTIVE",
        Draining => "DRAINING",
        Terminating => "TERMINATING",
        Offline => "OFFLINE",
        Error => "ERROR",
    }
}

/// One node as Bitbucket reports it. Every field may be absent or null.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub ip_address: Option<String>,
    #[serde(default, deserialize_with = "lenient_node_state")]
    pub state: Option<NodeState>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub tasks_total: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub active_user_count: Option<u64>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub build_number: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub version: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub local: Option<bool>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub port_number: Option<u64>,
}

impl Node {
    /// `ip:port`, `ip` or empty: the identity Bitbucket matches nodes by.
    pub fn address(&self) -> String {
        match (&self.ip_address, self.port_number) {
            (Some(ip), Some(port)) => format!("{ip}:{port}"),
            (Some(ip), None) => ip.clone(),
            (None, Some(port)) => format!(":{port}"),
            (None, None) => String::new(),
        }
    }

    /// A stable key for this node: its id, else name and address.
    pub fn key(&self) -> String {
        match &self.id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => format!(
                "{}@{}",
                self.name.as_deref().unwrap_or_default(),
                self.address()
            ),
        }
    }

    /// True when the node is reported OFFLINE (it takes no part in the version check).
    pub fn is_offline(&self) -> bool {
        self.state == Some(NodeState::Offline)
    }
}

/// `GET /rest/zdu/cluster`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub upgrade_mode_enabled: Option<bool>,
    #[serde(default, deserialize_with = "lenient_cluster_state")]
    pub state: Option<ClusterState>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub original_version: Option<String>,
    /// Required: a `/cluster` answer without a node list is not one.
    #[serde(deserialize_with = "lenient_nodes")]
    pub nodes: Vec<Node>,
}

/// `GET /rest/zdu/state`: the cluster state and the node that answered.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateResponse {
    #[serde(default, deserialize_with = "lenient_cluster_state")]
    pub state: Option<ClusterState>,
    #[serde(default, deserialize_with = "lenient_node")]
    pub build_info: Option<Node>,
}

/// Bitbucket's error body: `{"errors":[{"context":null,"message":"...","exceptionName":null}]}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub errors: Vec<ErrorEntry>,
}

/// One entry of [`ErrorBody`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorEntry {
    #[serde(default, deserialize_with = "lenient_string")]
    pub message: Option<String>,
}

impl ErrorBody {
    /// All messages joined with `; `, if the body has any.
    pub fn messages(&self) -> Option<String> {
        let msgs: Vec<&str> = self
            .errors
            .iter()
            .filter_map(|e| e.message.as_deref())
            .collect();
        (!msgs.is_empty()).then(|| msgs.join("; "))
    }
}

/// Derived figures the metrics and alerts are built on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterFigures {
    /// Distinct versions among nodes that are not OFFLINE.
    pub distinct_versions: usize,
    /// Non-OFFLINE nodes known to run a version other than `originalVersion` (a null version
    /// is not upgraded; 0 without an original version).
    pub nodes_upgraded: usize,
    /// Indexes (into `nodes`) of OFFLINE entries whose name matches a live node.
    pub ghosts: Vec<usize>,
}

impl Cluster {
    /// One key per node entry, unique within this answer: the node's [`Node::key`], with
    /// `#2`, `#3`, … appended to repeats (a broken upstream may repeat an id). Used as the
    /// `node_id` label and by the state tracker, so repeats never collide.
    pub fn node_keys(&self) -> Vec<String> {
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        self.nodes
            .iter()
            .map(|n| {
                let key = n.key();
                let count = seen.entry(key.clone()).or_insert(0);
                *count += 1;
                if *count == 1 {
                    key
                } else {
                    format!("{key}#{count}")
                }
            })
            .collect()
    }

    /// Computes the derived figures of this answer.
    pub fn figures(&self) -> ClusterFigures {
        let live: Vec<&Node> = self.nodes.iter().filter(|n| !n.is_offline()).collect();
        let mut versions: Vec<&str> = live.iter().filter_map(|n| n.version.as_deref()).collect();
        versions.sort_unstable();
        versions.dedup();
        let nodes_upgraded = match &self.original_version {
            Some(orig) => live
                .iter()
                .filter(|n| n.version.as_deref().is_some_and(|v| v != orig))
                .count(),
            None => 0,
        };
        let ghosts = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                n.is_offline() && n.name.is_some() && live.iter().any(|l| l.name == n.name)
            })
            .map(|(i, _)| i)
            .collect();
        ClusterFigures {
            distinct_versions: versions.len(),
            nodes_upgraded,
            ghosts,
        }
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    })
}

fn lenient_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1e15)
                .map(|f| f as u64)
        }),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => Some(b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    })
}

fn lenient_cluster_state<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<ClusterState>, D::Error> {
    Ok(lenient_string(d)?.map(|s| ClusterState::parse(&s)))
}

fn lenient_node_state<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NodeState>, D::Error> {
    Ok(lenient_string(d)?.map(|s| NodeState::parse(&s)))
}

fn lenient_node<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Node>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(v @ Value::Object(_)) => serde_json::from_value(v).ok(),
        _ => None,
    })
}

fn lenient_nodes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Node>, D::Error> {
    // `nodes: null` is treated as an empty list; a non-array is a decode error. Entries that
    // are not objects are skipped rather than failing the whole answer.
    match Option::<Value>::deserialize(d)? {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items
            .into_iter()
            .filter_map(|v| match v {
                Value::Object(_) => serde_json::from_value(v).ok(),
                _ => None,
            })
            .collect()),
        Some(_) => Err(serde::de::Error::custom("`nodes` is not an array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let body = r#"{ "upgradeModeEnabled": true, "state": "STABLE", "originalVersion": "string", "nodes": [ { "id": "string", "name": "string", "ipAddress": "string", "state": "STARTING", "tasksTotal": 0, "activeUserCount": 0, "buildNumber": "string", "version": "string", "local": true, "portNumber": 0, "links": [ { "rel": "string", "href": "http://example.com" } ] } ], "links": [ { "rel": "string", "href": "http://example.com" } ] }"#;
        let c: Cluster = serde_json::from_str(body).unwrap();
        assert_eq!(c.state, Some(ClusterState::Stable));
        assert_eq!(c.nodes.len(), 1);
        assert_eq!(c.nodes[0].state, Some(NodeState::Starting));
        assert_eq!(c.nodes[0].address(), "string:0");
    }

    #[test]
    fn nulls_missing_fields_unknown_enums_and_wrong_types_do_not_fail() {
        let body = r#"{"upgradeModeEnabled":null,"state":"PAUSED","originalVersion":null,
            "nodes":[{"id":"a","name":"n1","state":"HIBERNATING","tasksTotal":null,
            "activeUserCount":"7","version":null,"buildNumber":8019001,"local":"yes"},
            {"id":"b"}, 42, {"id":"c","tasksTotal":-3,"activeUserCount":[1],"portNumber":7990.0}],
            "extra":{"x":1}}"#;
        let c: Cluster = serde_json::from_str(body).unwrap();
        assert_eq!(c.state, Some(ClusterState::Unknown("PAUSED".into())));
        assert_eq!(c.nodes.len(), 3);
        let n = &c.nodes[0];
        assert_eq!(n.state, Some(NodeState::Unknown("HIBERNATING".into())));
        assert_eq!(n.tasks_total, None);
        assert_eq!(n.active_user_count, Some(7));
        assert_eq!(n.build_number.as_deref(), Some("8019001"));
        assert_eq!(n.local, None);
        assert_eq!(c.nodes[2].tasks_total, None);
        assert_eq!(c.nodes[2].active_user_count, None);
        assert_eq!(c.nodes[2].port_number, Some(7990));
    }

    #[test]
    fn shape_errors_are_decode_errors() {
        assert!(serde_json::from_str::<Cluster>("[]").is_err());
        assert!(serde_json::from_str::<Cluster>(r#"{"state":"STABLE"}"#).is_err());
        assert!(serde_json::from_str::<Cluster>(r#"{"nodes":{}}"#).is_err());
        assert!(serde_json::from_str::<Cluster>(r#"{"nodes":null}"#).is_ok());
    }

    fn node(name: &str, ip: &str, state: NodeState, version: Option<&str>) -> Node {
        Node {
            id: Some(format!("{name}-{ip}")),
            name: Some(name.into()),
            ip_address: Some(ip.into()),
            state: Some(state),
            version: version.map(Into::into),
            ..Node::default()
        }
    }

    #[test]
    fn figures_follow_the_domain_rules() {
        let c = Cluster {
            upgrade_mode_enabled: Some(true),
            state: Some(ClusterState::Mixed),
            original_version: Some("8.19.0".into()),
            nodes: vec![
                node("bb-0", "10.0.0.1", NodeState::Active, Some("8.19.1")),
                node("bb-0", "10.0.0.9", NodeState::Offline, None),
                node("bb-1", "10.0.0.2", NodeState::Active, Some("8.19.0")),
                node("bb-2", "10.0.0.3", NodeState::Offline, None),
            ],
        };
        let f = c.figures();
        assert_eq!(f.distinct_versions, 2);
        assert_eq!(f.nodes_upgraded, 1);
        assert_eq!(f.ghosts, vec![1]);
    }

    #[test]
    fn a_live_node_without_a_version_is_not_upgraded() {
        let c = Cluster {
            upgrade_mode_enabled: Some(true),
            state: Some(ClusterState::ReadyToUpgrade),
            original_version: Some("8.19.0".into()),
            nodes: vec![
                node("bb-0", "10.0.0.1", NodeState::Starting, None),
                node("bb-1", "10.0.0.2", NodeState::Active, Some("8.19.0")),
                node("bb-2", "10.0.0.3", NodeState::Active, Some("8.19.1")),
            ],
        };
        assert_eq!(c.figures().nodes_upgraded, 1);
    }
}

//! The ZDU payload model: what `GET /rest/zdu/cluster` and `GET /rest/zdu/state` return.
//!
//! Parsing is deliberately lenient below the top level. Bitbucket reports `null` for the
//! version, build number and counts of ghost or unreachable nodes, may omit `portNumber`, and a
//! later release may add enum values. None of that may fail a poll: unknown enum values are
//! kept as their raw string, wrong-typed leaf values become `None`, extra fields are ignored.
//! Only a body that is not a JSON object of the right overall shape is a decode error.
//!
//! No type is converted into another: a string field takes only a JSON string, a count only
//! a JSON number that is a non-negative integer (`7`, `7.0` and `7e0` are all 7; `-1`, `1.5`
//! and `"7"` are dropped), a flag only `true` or `false` (`"true"` is dropped). The one
//! accepted spelling beyond the exact type is an integral float for a count, because JSON
//! itself does not tell `7` from `7.0`.
//!
//! An answer is also bounded ([`Limits`]): at most `max_nodes` entries in `nodes` (counted
//! while parsing, so a body of 170,000 tiny entries never becomes 170,000 nodes) and at most
//! [`MAX_LABEL_BYTES`] bytes in any string that becomes a label value. Beyond either the whole
//! answer is refused ([`DecodeError::TooManyNodes`], [`DecodeError::LabelTooLong`]).
//!
//! The unit tests are in `model/tests.rs`.

pub mod keys;
#[cfg(test)]
mod keys_tests;

use std::cell::Cell;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub mod extras;
pub mod jira;
pub mod product;
pub use product::Product;

/// Node entries accepted in one `/cluster` answer unless configured otherwise
/// (`--bitbucket.max-nodes`): far above any real cluster (Bitbucket clusters have a handful).
pub const DEFAULT_MAX_NODES: usize = 1000;

/// Longest string (in bytes) accepted for a value that becomes a label: node id, name,
/// address, state, version, build number, the original version and the cluster state.
pub const MAX_LABEL_BYTES: usize = 256;

/// Bounds on what one upstream answer may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries in the `nodes` array.
    pub max_nodes: usize,
    /// Longest label-bound string, in bytes.
    pub max_label_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nodes: DEFAULT_MAX_NODES,
            max_label_bytes: MAX_LABEL_BYTES,
        }
    }
}

/// Why an answer body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not of the ZDU shape.
    #[error("{0}")]
    Shape(String),
    /// More node entries than [`Limits::max_nodes`].
    #[error("more than {0} node entries (the cap, --bitbucket.max-nodes)")]
    TooManyNodes(usize),
    /// A label-bound string longer than [`Limits::max_label_bytes`].
    #[error("{field} is longer than {max} bytes")]
    LabelTooLong {
        /// The JSON field.
        field: &'static str,
        /// The cap.
        max: usize,
    },
}

/// A ZDU answer that can be decoded within [`Limits`].
pub trait Answer: Sized {
    /// Decodes a body, refusing it whole when it breaks a limit.
    fn from_json(body: &[u8], limits: Limits) -> Result<Self, DecodeError>;
}

/// Parses `body` with `seed`; a limit the seed recorded in `hit` wins over the JSON error
/// it raised to stop the parser.
fn parse_bounded<'a, S: DeserializeSeed<'a>>(
    body: &'a [u8],
    seed: S,
    hit: &Cell<Option<DecodeError>>,
) -> Result<S::Value, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let out = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match (out, hit.take()) {
        (_, Some(limit)) => Err(limit),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(DecodeError::Shape(e.to_string())),
    }
}

/// The limits of one parse, and where a broken one is recorded.
#[derive(Clone, Copy)]
struct Bounds<'h> {
    limits: Limits,
    hit: &'h Cell<Option<DecodeError>>,
}

impl Bounds<'_> {
    /// Records `why` and returns the error that stops the parser.
    fn fail<E: serde::de::Error>(&self, why: DecodeError) -> E {
        let e = E::custom(&why);
        self.hit.set(Some(why));
        e
    }

    fn label<E: serde::de::Error>(&self, field: &'static str, v: Option<&str>) -> Result<(), E> {
        match v {
            Some(s) if s.len() > self.limits.max_label_bytes => {
                Err(self.fail(DecodeError::LabelTooLong {
                    field,
                    max: self.limits.max_label_bytes,
                }))
            }
            _ => Ok(()),
        }
    }

    fn node<E: serde::de::Error>(&self, n: &Node) -> Result<(), E> {
        self.label("id", n.id.as_deref())?;
        self.label("name", n.name.as_deref())?;
        self.label("ipAddress", n.ip_address.as_deref())?;
        self.label("state", n.state.as_ref().map(NodeState::as_str))?;
        self.label("buildNumber", n.build_number.as_deref())?;
        self.label("version", n.version.as_deref())
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(#[doc = concat!("`", $text, "`.")] $variant,)+
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
    /// `id`: Bitbucket's node id.
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    /// `name`: the node's name.
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: Option<String>,
    /// `ipAddress`: the node's cluster address, without port.
    #[serde(default, deserialize_with = "lenient_string")]
    pub ip_address: Option<String>,
    /// `state`: the node state.
    #[serde(default, deserialize_with = "lenient_node_state")]
    pub state: Option<NodeState>,
    /// `tasksTotal`: tasks running on the node.
    #[serde(default, deserialize_with = "lenient_count")]
    pub tasks_total: Option<u64>,
    /// `activeUserCount`: users active on the node.
    #[serde(default, deserialize_with = "lenient_count")]
    pub active_user_count: Option<u64>,
    /// `buildNumber`: the node's Bitbucket build number.
    #[serde(default, deserialize_with = "lenient_string")]
    pub build_number: Option<String>,
    /// `version`: the node's Bitbucket version.
    #[serde(default, deserialize_with = "lenient_string")]
    pub version: Option<String>,
    /// `local`: true for the node that answered the request.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub local: Option<bool>,
    /// `portNumber`: the node's cluster port.
    #[serde(default, deserialize_with = "lenient_count")]
    pub port_number: Option<u64>,
}

impl Node {
    /// `ip:port`, `ip` or empty: the identity Bitbucket matches nodes by.
    pub fn address(&self) -> String {
        keys::cap_label(match (&self.ip_address, self.port_number) {
            (Some(ip), Some(port)) => format!("{ip}:{port}"),
            (Some(ip), None) => ip.clone(),
            (None, Some(port)) => format!(":{port}"),
            (None, None) => String::new(),
        })
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

/// `GET /rest/zdu/cluster`. Its `Deserialize` applies the default [`Limits`]; the client
/// decodes with the target's through [`Answer::from_json`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// `upgradeModeEnabled`: true while rolling upgrade mode is on.
    pub upgrade_mode_enabled: Option<bool>,
    /// `state`: the cluster state.
    pub state: Option<ClusterState>,
    /// `originalVersion`: the version the cluster ran when upgrade mode was turned on.
    pub original_version: Option<String>,
    /// Required, and an array: a `/cluster` answer without a node list (absent or `null`) is
    /// not one, so node alerts see a failed poll rather than an empty cluster.
    pub nodes: Vec<Node>,
}

impl<'de> Deserialize<'de> for Cluster {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let hit = Cell::new(None);
        ClusterSeed(Bounds {
            limits: Limits::default(),
            hit: &hit,
        })
        .deserialize(d)
    }
}

impl Answer for Cluster {
    fn from_json(body: &[u8], limits: Limits) -> Result<Self, DecodeError> {
        let hit = Cell::new(None);
        parse_bounded(body, ClusterSeed(Bounds { limits, hit: &hit }), &hit)
    }
}

impl Answer for StateResponse {
    fn from_json(body: &[u8], limits: Limits) -> Result<Self, DecodeError> {
        let s: StateResponse =
            serde_json::from_slice(body).map_err(|e| DecodeError::Shape(e.to_string()))?;
        let hit = Cell::new(None);
        let b = Bounds { limits, hit: &hit };
        let checked: Result<(), serde_json::Error> = b
            .label("state", s.state.as_ref().map(ClusterState::as_str))
            .and_then(|()| s.build_info.as_ref().map_or(Ok(()), |n| b.node(n)));
        match (checked, hit.take()) {
            (Ok(()), _) => Ok(s),
            (Err(_), Some(limit)) => Err(limit),
            (Err(e), None) => Err(DecodeError::Shape(e.to_string())),
        }
    }
}

/// The `/cluster` object, field by field, so that `nodes` can be counted as it is read.
struct ClusterSeed<'h>(Bounds<'h>);

impl<'de> DeserializeSeed<'de> for ClusterSeed<'_> {
    type Value = Cluster;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cluster, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClusterSeed<'_> {
    type Value = Cluster;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a ZDU cluster object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cluster, A::Error> {
        use serde::de::Error as _;
        let b = self.0;
        let mut upgrade_mode_enabled = None;
        let mut state = None;
        let mut original_version = None;
        let mut nodes = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let dup = |seen: bool| {
                if seen {
                    Err(A::Error::custom(format!("duplicate field `{key}`")))
                } else {
                    Ok(())
                }
            };
            match &*key {
                "upgradeModeEnabled" => {
                    dup(upgrade_mode_enabled.is_some())?;
                    upgrade_mode_enabled = Some(map.next_value::<Lenient<bool>>()?.0);
                }
                "state" => {
                    dup(state.is_some())?;
                    let s = map.next_value::<Lenient<String>>()?.0;
                    b.label("state", s.as_deref())?;
                    state = Some(s.map(|s| ClusterState::parse(&s)));
                }
                "originalVersion" => {
                    dup(original_version.is_some())?;
                    let v = map.next_value::<Lenient<String>>()?.0;
                    b.label("originalVersion", v.as_deref())?;
                    original_version = Some(v);
                }
                "nodes" => {
                    dup(nodes.is_some())?;
                    nodes = Some(map.next_value_seed(NodesSeed(b))?);
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Cluster {
            upgrade_mode_enabled: upgrade_mode_enabled.flatten(),
            state: state.flatten(),
            original_version: original_version.flatten(),
            nodes: nodes.ok_or_else(|| A::Error::missing_field("nodes"))?,
        })
    }
}

/// The `nodes` array: entries are counted as they are read and the parse stops at the first
/// one beyond the cap; entries that are not objects are skipped (and counted).
struct NodesSeed<'h>(Bounds<'h>);

impl<'de> DeserializeSeed<'de> for NodesSeed<'_> {
    type Value = Vec<Node>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Node>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodesSeed<'_> {
    type Value = Vec<Node>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("`nodes` as an array of node entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Node>, A::Error> {
        let b = self.0;
        let mut out = Vec::new();
        let mut entries = 0usize;
        while let Some(v) = seq.next_element::<Value>()? {
            entries += 1;
            if entries > b.limits.max_nodes {
                return Err(b.fail(DecodeError::TooManyNodes(b.limits.max_nodes)));
            }
            if let Value::Object(_) = v {
                if let Ok(n) = serde_json::from_value::<Node>(v) {
                    b.node(&n)?;
                    out.push(n);
                }
            }
        }
        Ok(out)
    }
}

/// A leaf of type `T`, or `None` when it is null or of another type.
struct Lenient<T>(Option<T>);

impl<'de> Deserialize<'de> for Lenient<bool> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient_bool(d).map(Lenient)
    }
}

impl<'de> Deserialize<'de> for Lenient<String> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient_string(d).map(Lenient)
    }
}

/// `GET /rest/zdu/state`: the cluster state and the node that answered.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateResponse {
    /// `state`: the cluster state.
    #[serde(default, deserialize_with = "lenient_cluster_state")]
    pub state: Option<ClusterState>,
    /// `buildInfo`: the node that answered.
    #[serde(default, deserialize_with = "lenient_node")]
    pub build_info: Option<Node>,
}

/// Bitbucket's error body: `{"errors":[{"context":null,"message":"...","exceptionName":null}]}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    /// The error entries; empty when the body has none.
    #[serde(default)]
    pub errors: Vec<ErrorEntry>,
}

/// One entry of [`ErrorBody`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorEntry {
    /// The entry's `message`.
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
    /// One key per node entry, unique within this answer and within the label cap: the
    /// node's [`Node::key`], with the lowest free `#N` appended to repeats (a broken upstream
    /// may repeat an id, or send `x#2` itself), see [`keys::unique_keys`]. Used as the
    /// `node_id` label and by the state tracker, so repeats never collide.
    pub fn node_keys(&self) -> Vec<String> {
        keys::unique_keys(self.nodes.iter().map(Node::key).collect())
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
        _ => None,
    })
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => Some(b),
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

#[cfg(test)]
mod tests;

//! Remembers when the cluster and each node entered their current state, and counts cluster
//! state transitions. With `--state.file` this survives an exporter restart, so a sidecar
//! restarted in the middle of a stuck upgrade still says "MIXED since 03:12", not "since now".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::model::Cluster;

/// What is tracked for one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    /// The cluster state last seen and when it was entered (unix seconds).
    #[serde(default)]
    pub cluster: Option<Entered>,
    /// Per node key: state last seen and when it was entered.
    #[serde(default)]
    pub nodes: BTreeMap<String, Entered>,
    /// `(from, to)` → count.
    #[serde(default, with = "transitions_as_list")]
    pub transitions: BTreeMap<(String, String), u64>,
    /// When a node entry last changed state, appeared or disappeared (unix seconds); the
    /// first answer seen counts as a change. The cluster's "last progress".
    #[serde(default)]
    pub last_node_change: Option<f64>,
    /// Per node name that has entries but no live (not OFFLINE) one: since when no live entry
    /// with that name has been seen (unix seconds). A name with a live entry is not listed.
    #[serde(default)]
    pub names_offline: BTreeMap<String, f64>,
    /// The upgrade in flight and the finished ones (see [`crate::progress`]).
    #[serde(default)]
    pub progress: crate::progress::Progress,
}

/// A state and when it was entered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entered {
    pub state: String,
    pub since: f64,
}

mod transitions_as_list {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Row {
        from: String,
        to: String,
        count: u64,
    }

    pub fn serialize<S: serde::Serializer>(
        m: &BTreeMap<(String, String), u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let rows: Vec<Row> = m
            .iter()
            .map(|((from, to), count)| Row {
                from: from.clone(),
                to: to.clone(),
                count: *count,
            })
            .collect();
        rows.serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<(String, String), u64>, D::Error> {
        let rows = Vec::<Row>::deserialize(d)?;
        Ok(rows
            .into_iter()
            .map(|r| ((r.from, r.to), r.count))
            .collect())
    }
}

/// Entered-times computed for one `/cluster` answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// When the cluster entered its state (None when Bitbucket reported no state).
    pub cluster_since: Option<f64>,
    /// Per node, in the answer's order.
    pub node_since: Vec<f64>,
    /// When a node entry last changed state, appeared or disappeared.
    pub last_node_change: f64,
    /// Node names without a live entry and since when, sorted by name (see
    /// [`Tracked::names_offline`]). A node without a name is named by its key.
    pub names_offline: Vec<(String, f64)>,
}

impl Tracked {
    /// Folds one successful `/cluster` answer in at time `now`. Returns the entered times and
    /// whether anything changed that is worth persisting.
    pub fn observe(&mut self, cluster: &Cluster, now: f64) -> (Observed, bool) {
        let mut changed = false;
        let cluster_since = cluster.state.as_ref().map(|state| {
            let state = state.as_str();
            match &self.cluster {
                Some(e) if e.state == state => e.since,
                prev => {
                    if let Some(prev) = prev {
                        *self
                            .transitions
                            .entry((prev.state.clone(), state.to_string()))
                            .or_insert(0) += 1;
                    }
                    self.cluster = Some(Entered {
                        state: state.to_string(),
                        since: now,
                    });
                    changed = true;
                    now
                }
            }
        });
        let mut nodes = BTreeMap::new();
        let mut node_changed = false;
        let mut node_since = Vec::with_capacity(cluster.nodes.len());
        for (n, key) in cluster.nodes.iter().zip(cluster.node_keys()) {
            let state = n
                .state
                .as_ref()
                .map(|s| s.as_str())
                .unwrap_or("")
                .to_string();
            let entered = match self.nodes.get(&key) {
                Some(e) if e.state == state => e.clone(),
                _ => {
                    node_changed = true;
                    Entered { state, since: now }
                }
            };
            node_since.push(entered.since);
            nodes.insert(key, entered);
        }
        if nodes.len() != self.nodes.len() {
            node_changed = true;
        }
        self.nodes = nodes;
        let last_node_change = match self.last_node_change {
            Some(t) if !node_changed => t,
            _ => {
                node_changed = true;
                self.last_node_change = Some(now);
                now
            }
        };
        let mut live_names = std::collections::BTreeSet::new();
        let mut all_names = std::collections::BTreeSet::new();
        for (n, key) in cluster.nodes.iter().zip(cluster.node_keys()) {
            let name = n.name.clone().unwrap_or(key);
            if !n.is_offline() {
                live_names.insert(name.clone());
            }
            all_names.insert(name);
        }
        let names_offline: BTreeMap<String, f64> = all_names
            .difference(&live_names)
            .map(|name| {
                let since = self.names_offline.get(name).copied().unwrap_or(now);
                (name.clone(), since)
            })
            .collect();
        if names_offline != self.names_offline {
            changed = true;
            self.names_offline = names_offline;
        }
        (
            Observed {
                cluster_since,
                node_since,
                last_node_change,
                names_offline: self
                    .names_offline
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
            },
            changed || node_changed,
        )
    }
}

/// Errors of the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read state file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt ({message}); starting afresh")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot write state file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    targets: BTreeMap<String, Tracked>,
}

/// The persisted state of all targets, written atomically (temp file, fsync, rename).
#[derive(Debug)]
pub struct StateStore {
    path: Option<PathBuf>,
    targets: Mutex<BTreeMap<String, Tracked>>,
}

impl StateStore {
    /// A store that keeps nothing across restarts.
    pub fn in_memory() -> Self {
        StateStore {
            path: None,
            targets: Mutex::new(BTreeMap::new()),
        }
    }

    /// Opens (or starts) a state file. A corrupt file is reported and replaced, never fatal:
    /// losing entered-times is better than not exporting at all.
    pub fn open(path: &Path) -> (Self, Option<StateFileError>) {
        let (targets, err) = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<FileFormat>(&bytes) {
                Ok(f) => (f.targets, None),
                Err(e) => (
                    BTreeMap::new(),
                    Some(StateFileError::Corrupt {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    }),
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (BTreeMap::new(), None),
            Err(source) => (
                BTreeMap::new(),
                Some(StateFileError::Read {
                    path: path.to_path_buf(),
                    source,
                }),
            ),
        };
        (
            StateStore {
                path: Some(path.to_path_buf()),
                targets: Mutex::new(targets),
            },
            err,
        )
    }

    /// The tracked state of one target (empty if unknown).
    pub fn get(&self, target: &str) -> Tracked {
        self.lock().get(target).cloned().unwrap_or_default()
    }

    /// Replaces one target's state and, with a file, writes it out.
    pub fn put(&self, target: &str, tracked: Tracked) -> Result<(), StateFileError> {
        let snapshot = {
            let mut map = self.lock();
            map.insert(target.to_string(), tracked);
            map.clone()
        };
        match &self.path {
            Some(path) => write_atomic(path, &snapshot),
            None => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Tracked>> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn write_atomic(path: &Path, targets: &BTreeMap<String, Tracked>) -> Result<(), StateFileError> {
    use std::io::Write;
    let werr = |source| StateFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let body = serde_json::to_vec_pretty(&FileFormat {
        version: 1,
        targets: targets.clone(),
    })
    .expect("serializable");
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    let mut f = std::fs::File::create(&tmp).map_err(werr)?;
    f.write_all(&body).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(werr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClusterState, Node, NodeState};

    fn cluster(state: ClusterState, node_state: NodeState) -> Cluster {
        Cluster {
            upgrade_mode_enabled: Some(true),
            state: Some(state),
            original_version: Some("1".into()),
            nodes: vec![Node {
                id: Some("n1".into()),
                state: Some(node_state),
                ..Node::default()
            }],
        }
    }

    #[test]
    fn entered_times_hold_until_the_state_changes() {
        let mut t = Tracked::default();
        let (o, changed) = t.observe(&cluster(ClusterState::Stable, NodeState::Active), 100.0);
        assert!(changed);
        assert_eq!(o.cluster_since, Some(100.0));
        let (o, changed) = t.observe(&cluster(ClusterState::Stable, NodeState::Active), 130.0);
        assert!(!changed);
        assert_eq!(o.cluster_since, Some(100.0));
        assert_eq!(o.node_since, vec![100.0]);
        let (o, _) = t.observe(&cluster(ClusterState::Mixed, NodeState::Draining), 160.0);
        assert_eq!(o.cluster_since, Some(160.0));
        assert_eq!(o.node_since, vec![160.0]);
        assert_eq!(t.transitions[&("STABLE".into(), "MIXED".into())], 1);
    }

    #[test]
    fn last_node_change_moves_only_when_a_node_changes() {
        let mut t = Tracked::default();
        let (o, _) = t.observe(&cluster(ClusterState::Mixed, NodeState::Active), 100.0);
        assert_eq!(o.last_node_change, 100.0);
        let (o, changed) = t.observe(&cluster(ClusterState::Mixed, NodeState::Active), 200.0);
        assert!(!changed);
        assert_eq!(o.last_node_change, 100.0);
        let (o, changed) = t.observe(&cluster(ClusterState::Mixed, NodeState::Draining), 300.0);
        assert!(changed);
        assert_eq!(o.last_node_change, 300.0);
        // a node entry appearing is progress too
        let mut two = cluster(ClusterState::Mixed, NodeState::Draining);
        two.nodes.push(Node {
            id: Some("n2".into()),
            state: Some(NodeState::Starting),
            ..Node::default()
        });
        let (o, _) = t.observe(&two, 400.0);
        assert_eq!(o.last_node_change, 400.0);
        // and it survives a restart through the state file format
        let json = serde_json::to_string(&t).unwrap();
        let mut back: Tracked = serde_json::from_str(&json).unwrap();
        let (o, changed) = back.observe(&two, 500.0);
        assert!(!changed);
        assert_eq!(o.last_node_change, 400.0);
        // a state file written before this field existed still loads
        let old: Tracked =
            serde_json::from_str(r#"{"cluster":null,"nodes":{},"transitions":[]}"#).unwrap();
        assert_eq!(old.last_node_change, None);
    }

    fn named(id: &str, name: &str, state: NodeState) -> Node {
        Node {
            id: Some(id.into()),
            name: Some(name.into()),
            state: Some(state),
            ..Node::default()
        }
    }

    #[test]
    fn a_name_is_offline_from_when_its_last_live_entry_went() {
        let mut c = cluster(ClusterState::Mixed, NodeState::Active);
        // bb-0: an old OFFLINE entry plus its live replacement (a ghost); bb-1 live.
        c.nodes = vec![
            named("old", "bb-0", NodeState::Offline),
            named("new", "bb-0", NodeState::Active),
            named("b1", "bb-1", NodeState::Active),
        ];
        let mut t = Tracked::default();
        let (o, _) = t.observe(&c, 100.0);
        assert!(o.names_offline.is_empty(), "a ghost's name is live");
        // The replacement pod is deleted at 1000: from then on the name has no live entry,
        // however long the old entry has been OFFLINE.
        c.nodes[1].state = Some(NodeState::Offline);
        let (o, changed) = t.observe(&c, 1000.0);
        assert!(changed);
        assert_eq!(o.names_offline, vec![("bb-0".to_string(), 1000.0)]);
        let (o, changed) = t.observe(&c, 1030.0);
        assert!(!changed);
        assert_eq!(o.names_offline, vec![("bb-0".to_string(), 1000.0)]);
        // survives a restart
        let mut back: Tracked = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        let (o, _) = back.observe(&c, 2000.0);
        assert_eq!(o.names_offline, vec![("bb-0".to_string(), 1000.0)]);
        // back live: no longer listed; offline again later starts a new clock
        c.nodes[1].state = Some(NodeState::Starting);
        let (o, _) = back.observe(&c, 2100.0);
        assert!(o.names_offline.is_empty());
        c.nodes[1].state = Some(NodeState::Offline);
        let (o, _) = back.observe(&c, 2200.0);
        assert_eq!(o.names_offline, vec![("bb-0".to_string(), 2200.0)]);
    }

    #[test]
    fn state_file_survives_a_restart_and_corruption_is_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (store, err) = StateStore::open(&path);
        assert!(err.is_none());
        let mut t = Tracked::default();
        t.observe(&cluster(ClusterState::Mixed, NodeState::Active), 42.0);
        store.put("prod", t.clone()).unwrap();
        let (again, err) = StateStore::open(&path);
        assert!(err.is_none());
        assert_eq!(again.get("prod"), t);
        std::fs::write(&path, "{garbage").unwrap();
        let (fresh, err) = StateStore::open(&path);
        assert!(matches!(err, Some(StateFileError::Corrupt { .. })));
        assert_eq!(fresh.get("prod"), Tracked::default());
    }
}

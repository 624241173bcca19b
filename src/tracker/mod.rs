//! Remembers when the cluster and each node entered their current state, and counts cluster
//! state transitions. With `--state.file` this survives an exporter restart, so a sidecar
//! restarted in the middle of a stuck upgrade still says "MIXED since 03:12", not "since now".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::Cluster;

mod file;
pub mod progress;
pub mod validate;

/// What is tracked for one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
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
    /// The upgrade in flight and the finished ones (see [`crate::tracker::progress`]).
    #[serde(default)]
    pub progress: crate::tracker::progress::Progress,
}

/// A state and when it was entered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entered {
    /// The state's name as Bitbucket spells it.
    pub state: String,
    /// When it was entered (unix seconds).
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
    /// [`Tracker::names_offline`]). A node without a name is named by its key.
    pub names_offline: Vec<(String, f64)>,
}

impl Tracker {
    /// Folds one successful `/cluster` answer in at time `now`, the upgrade progress with it.
    /// Returns the entered times and whether anything changed that is worth persisting.
    pub fn observe(&mut self, cluster: &Cluster, now: f64) -> (Observed, bool) {
        let mut changed = self.progress.observe(cluster, now);
        let cluster_since = cluster.state.as_ref().map(|state| {
            let state = state.as_str();
            match &self.cluster {
                Some(e) if e.state == state => e.since,
                prev => {
                    if let Some(prev) = prev {
                        // Unknown states are one bucket here too: a hostile upstream
                        // cannot grow the (persisted) map by inventing states.
                        let fold = |s: &str| match crate::model::ClusterState::parse(s) {
                            st if st.is_unknown() => crate::model::keys::OTHER_STATE.to_string(),
                            _ => s.to_string(),
                        };
                        *self
                            .transitions
                            .entry((fold(&prev.state), fold(state)))
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
                // A null state (Confluence: the node's own call timed out) tells nothing new:
                // the node keeps its last known state and since, and it is no node change
                // (no progress to the stall alerts).
                Some(e) if n.state.is_none() => e.clone(),
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
        let names_offline = self.names_offline_now(cluster, now);
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

    /// Node names without a live entry in `cluster` and since when: kept from before, else
    /// `now`.
    fn names_offline_now(&self, cluster: &Cluster, now: f64) -> BTreeMap<String, f64> {
        let mut live_names = std::collections::BTreeSet::new();
        let mut all_names = std::collections::BTreeSet::new();
        for (n, key) in cluster.nodes.iter().zip(cluster.node_keys()) {
            let name = n.name.clone().unwrap_or(key);
            if !n.is_offline() {
                live_names.insert(name.clone());
            }
            all_names.insert(name);
        }
        all_names
            .difference(&live_names)
            .map(|name| {
                let since = self.names_offline.get(name).copied().unwrap_or(now);
                (name.clone(), since)
            })
            .collect()
    }
}

/// Errors of the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// The state file exists but cannot be read.
    #[error("cannot read state file {path}: {source}")]
    Read {
        /// The state file's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    #[error(
        "state file {path} is corrupt ({message}); moved aside to {moved_to}, starting afresh"
    )]
    /// The state file is not valid JSON of the expected shape; it is moved aside and the
    /// exporter starts afresh.
    Corrupt {
        /// The state file's path.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// Where the unreadable file now is (or why it could not be moved).
        moved_to: String,
    },
    /// The state file has a version this exporter does not know; it is moved aside and the
    /// exporter starts afresh.
    #[error("state file {path} has version {version}, which this exporter does not know (it writes version {FILE_VERSION}); moved aside to {moved_to}, starting afresh")]
    UnknownVersion {
        /// The state file's path.
        path: PathBuf,
        /// The version it has (`none` when it has none).
        version: String,
        /// Where the file now is (or why it could not be moved).
        moved_to: String,
    },
    /// Some values of the state file were invalid (out of range, too long, too many, or a
    /// target that does not parse): they were dropped, the rest kept, the file as read
    /// copied aside.
    #[error("state file {path} held {dropped} invalid value(s) (timestamps out of range, over-long strings, lists over their caps, or unreadable targets): dropped, the valid rest kept; the file as read is copied to {copied_to}")]
    Invalid {
        /// The state file's path.
        path: PathBuf,
        /// How many values (or whole targets) were dropped.
        dropped: usize,
        /// Where the file as read was copied (or why it could not be).
        copied_to: String,
    },
    /// Another process holds the state file's lock, or the lock file cannot be opened.
    #[error("state file {path} cannot be locked ({}): {}", lock.display(), match source {
        None => "another exporter is using it; give each exporter its own --state.file".to_string(),
        Some(e) => e.to_string(),
    })]
    Locked {
        /// The state file's path.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// Why the lock file could not be opened (`None`: another process holds it).
        source: Option<std::io::Error>,
    },
    /// The state file cannot be written.
    #[error("cannot write state file {path}: {source}")]
    Write {
        /// The state file's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The version of the state file this exporter reads and writes.
pub const FILE_VERSION: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    targets: BTreeMap<String, Tracker>,
}

/// Only the version of a state file, read before the rest.
#[derive(Deserialize)]
struct VersionOnly {
    #[serde(default)]
    version: Option<Value>,
}

/// The persisted state of all targets, written atomically (temp file, fsync, rename).
///
/// Failures of the file are counted ([`StateStore::errors_total`], the metric
/// `bitbucket_zdu_exporter_state_file_errors_total`) and logged by the store itself: at
/// `warn` the first time and whenever the error changes, at `debug` while it repeats, and
/// once at `info` when a write works again. A read-only directory is one warning, not one
/// per poll.
#[derive(Debug)]
pub struct StateStore {
    path: Option<PathBuf>,
    targets: Mutex<BTreeMap<String, Tracker>>,
    health: Mutex<Health>,
    /// Held while a snapshot is taken and written: one writer at a time in this process,
    /// and the last snapshot taken is the last written.
    writer: Mutex<()>,
    /// The advisory lock on `<file>.lock` ([`StateStore::open_exclusive`]), held until drop.
    _lock: Option<std::fs::File>,
}

#[derive(Debug, Default)]
struct Health {
    /// The error last logged at warn, while it lasts.
    failing: Option<String>,
    errors_total: u64,
}

impl StateStore {
    /// A store that keeps nothing across restarts.
    pub fn in_memory() -> Self {
        StateStore {
            path: None,
            targets: Mutex::new(BTreeMap::new()),
            health: Mutex::new(Health::default()),
            writer: Mutex::new(()),
            _lock: None,
        }
    }

    /// [`StateStore::open`], holding the state file's advisory lock (`<file>.lock`) for the
    /// life of the store: a second exporter on the same file is refused
    /// ([`StateFileError::Locked`]), and so is a lock file that cannot be opened.
    pub fn open_exclusive(path: &Path) -> Result<(Self, Option<StateFileError>), StateFileError> {
        let lock = file::lock(path).map_err(|source| StateFileError::Locked {
            path: path.to_path_buf(),
            lock: file::lock_path(path),
            source,
        })?;
        let (mut store, err) = StateStore::open(path);
        store._lock = Some(lock);
        Ok((store, err))
    }

    /// Opens (or starts) a state file. A corrupt file, or one of a version this exporter
    /// does not know (a newer exporter's), is reported and moved aside (renamed to
    /// `<name>.corrupt-<unix time>` or `<name>.unknown-version-<unix time>`), never
    /// silently replaced nor fatal: losing entered-times is better than not exporting at all.
    /// The error returned is counted in [`StateStore::errors_total`]; the caller logs it.
    pub fn open(path: &Path) -> (Self, Option<StateFileError>) {
        let (targets, err) = match crate::sys::safe_file::read(path) {
            Ok(bytes) => match serde_json::from_slice::<VersionOnly>(&bytes) {
                Ok(VersionOnly {
                    version: Some(Value::Number(n)),
                }) if n.as_u64() == Some(u64::from(FILE_VERSION)) => match validate::load(&bytes) {
                    Ok((targets, 0)) => (targets, None),
                    Ok((targets, dropped)) => (
                        targets,
                        Some(StateFileError::Invalid {
                            path: path.to_path_buf(),
                            dropped,
                            copied_to: copy_aside(path, &bytes),
                        }),
                    ),
                    Err(e) => (
                        BTreeMap::new(),
                        Some(StateFileError::Corrupt {
                            path: path.to_path_buf(),
                            message: e.to_string(),
                            moved_to: move_aside(path, "corrupt"),
                        }),
                    ),
                },
                Ok(VersionOnly { version }) => (
                    BTreeMap::new(),
                    Some(StateFileError::UnknownVersion {
                        path: path.to_path_buf(),
                        version: version.map_or_else(|| "none".into(), |v| v.to_string()),
                        moved_to: move_aside(path, "unknown-version"),
                    }),
                ),
                Err(e) => (
                    BTreeMap::new(),
                    Some(StateFileError::Corrupt {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                        moved_to: move_aside(path, "corrupt"),
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
        let health = Health {
            failing: None,
            errors_total: u64::from(err.is_some()),
        };
        (
            StateStore {
                path: Some(path.to_path_buf()),
                targets: Mutex::new(targets),
                health: Mutex::new(health),
                writer: Mutex::new(()),
                _lock: None,
            },
            err,
        )
    }

    /// Failed reads and writes of the state file since start.
    pub fn errors_total(&self) -> u64 {
        self.health().errors_total
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts and logs the outcome of a write: warn on a new error, debug on a repeat, info
    /// on the first success after errors.
    fn note(&self, result: &Result<(), StateFileError>) {
        let mut h = self.health();
        match result {
            Ok(()) => {
                if h.failing.take().is_some() {
                    tracing::info!("state file written again");
                }
            }
            Err(e) => {
                h.errors_total += 1;
                let text = crate::client::error_chain(e);
                if h.failing.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, "state not persisted (logged again only when the error changes)");
                    h.failing = Some(text);
                } else {
                    tracing::debug!(error = %text, "state not persisted, again");
                }
            }
        }
    }

    /// The tracked state of one target (empty if unknown).
    pub fn get(&self, target: &str) -> Tracker {
        self.lock().get(target).cloned().unwrap_or_default()
    }

    /// Replaces one target's state and, with a file, writes it out. A failure is counted and
    /// logged here (see [`StateStore`]); the caller need not log it again.
    pub fn put(&self, target: &str, tracked: Tracker) -> Result<(), StateFileError> {
        let _writing = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = {
            let mut map = self.lock();
            map.insert(target.to_string(), tracked);
            map.clone()
        };
        match &self.path {
            Some(path) => {
                let result = write_atomic(path, &snapshot);
                self.note(&result);
                result
            }
            None => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Tracker>> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Copies the file as read to a new `<path>.invalid-<unix time>` (created exclusively);
/// returns its name, or why not.
fn copy_aside(path: &Path, bytes: &[u8]) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".invalid-{ts}"));
    let to = PathBuf::from(name);
    match file::write_new(&to, bytes) {
        Ok(()) => to.display().to_string(),
        Err(e) => format!("nowhere (cannot write {}: {e})", to.display()),
    }
}

/// Renames `path` to `<path>.<what>-<unix time>`; returns the new name, or why not.
fn move_aside(path: &Path, what: &str) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{what}-{ts}"));
    let to = PathBuf::from(name);
    match std::fs::rename(path, &to) {
        Ok(()) => to.display().to_string(),
        Err(e) => format!("nowhere (cannot rename it: {e}; it will be overwritten)"),
    }
}

fn write_atomic(path: &Path, targets: &BTreeMap<String, Tracker>) -> Result<(), StateFileError> {
    let werr = |source| StateFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let body = serde_json::to_vec_pretty(&FileFormat {
        version: FILE_VERSION,
        targets: targets.clone(),
    })
    .expect("serializable");
    file::write_atomic(path, &body).map_err(werr)
}

#[cfg(test)]
mod tests;

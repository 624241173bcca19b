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
    let mut t = Tracker::default();
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
    let mut t = Tracker::default();
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
    let mut back: Tracker = serde_json::from_str(&json).unwrap();
    let (o, changed) = back.observe(&two, 500.0);
    assert!(!changed);
    assert_eq!(o.last_node_change, 400.0);
    // a state file written before this field existed still loads
    let old: Tracker =
        serde_json::from_str(r#"{"cluster":null,"nodes":{},"transitions":[]}"#).unwrap();
    assert_eq!(old.last_node_change, None);
}

/// Issue 17: Confluence answers `state: null` for a node whose own call timed out. That is
/// no news about the node: its last known state, since and the last node change hold, so a
/// timeout now and then is no progress to the stall alerts.
#[test]
fn a_null_node_state_keeps_the_last_known_state_and_is_no_change() {
    let mut t = Tracker::default();
    t.observe(&cluster(ClusterState::Mixed, NodeState::Active), 100.0);
    let mut null = cluster(ClusterState::Mixed, NodeState::Active);
    null.nodes[0].state = None;
    let (o, _) = t.observe(&null, 200.0);
    assert_eq!(
        (o.node_since.clone(), o.last_node_change),
        (vec![100.0], 100.0)
    );
    let (o, _) = t.observe(&cluster(ClusterState::Mixed, NodeState::Active), 300.0);
    assert_eq!(
        (o.node_since.clone(), o.last_node_change),
        (vec![100.0], 100.0),
        "back to the state it had: nothing changed"
    );
    let (o, _) = t.observe(&cluster(ClusterState::Mixed, NodeState::Offline), 400.0);
    assert_eq!((o.node_since, o.last_node_change), (vec![400.0], 400.0));
    // A node first seen with a null state is a new entry all the same.
    let mut fresh = Tracker::default();
    let (o, changed) = fresh.observe(&null, 500.0);
    assert!(changed);
    assert_eq!(o.node_since, vec![500.0]);
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
    let mut t = Tracker::default();
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
    let mut back: Tracker = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
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
    let mut t = Tracker::default();
    t.observe(&cluster(ClusterState::Mixed, NodeState::Active), 42.0);
    store.put("prod", t.clone()).unwrap();
    let (again, err) = StateStore::open(&path);
    assert!(err.is_none());
    assert_eq!(again.get("prod"), t);
    std::fs::write(&path, "{garbage").unwrap();
    let (fresh, err) = StateStore::open(&path);
    assert!(matches!(err, Some(StateFileError::Corrupt { .. })));
    assert_eq!(fresh.get("prod"), Tracker::default());
    assert_eq!(fresh.errors_total(), 1);
    assert!(!path.exists(), "the corrupt file is moved aside");
    assert_eq!(aside(dir.path(), "corrupt"), vec!["{garbage".to_string()]);
}

/// The contents of the files moved aside as `state.json.<what>-<time>`.
fn aside(dir: &Path, what: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("state.json.{what}-"))
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_state_file_of_an_unknown_version_is_moved_aside_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let newer = r#"{"version":2,"targets":{"prod":{"something":"new"}}}"#;
    std::fs::write(&path, newer).unwrap();
    let (store, err) = StateStore::open(&path);
    let err = err.expect("an unknown version is reported");
    assert!(
        matches!(&err, StateFileError::UnknownVersion { version, .. } if version == "2"),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("version 2") && text.contains("unknown-version-"),
        "{text}"
    );
    assert_eq!(store.errors_total(), 1);
    assert_eq!(
        aside(dir.path(), "unknown-version"),
        vec![newer.to_string()]
    );
    // Writing starts a fresh file; the moved one stays as it was.
    store.put("prod", Tracker::default()).unwrap();
    assert!(path.exists());
    assert_eq!(
        aside(dir.path(), "unknown-version"),
        vec![newer.to_string()]
    );
    // No version at all is unknown too.
    std::fs::write(&path, r#"{"targets":{}}"#).unwrap();
    let (_, err) = StateStore::open(&path);
    assert!(
        matches!(&err, Some(StateFileError::UnknownVersion { version, .. }) if version == "none"),
        "{err:?}"
    );
}

/// A log sink for one test.
#[derive(Clone, Default)]
struct Sink(std::sync::Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_persistent_write_failure_is_logged_once_per_distinct_error_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let (store, err) = StateStore::open(&path);
    assert!(err.is_none());
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        // Fails (the path is a directory; root may write anywhere else) on every poll.
        std::fs::create_dir(&path).unwrap();
        for _ in 0..3 {
            assert!(store.put("prod", Tracker::default()).is_err());
        }
        // Another error: the temp file cannot be created (its folder is gone).
        std::fs::remove_dir(&path).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "a failed write leaves no temp file");
        std::fs::remove_dir(dir.path()).unwrap();
        for _ in 0..2 {
            assert!(store.put("prod", Tracker::default()).is_err());
        }
        std::fs::create_dir(dir.path()).unwrap();
        for _ in 0..2 {
            store.put("prod", Tracker::default()).unwrap();
        }
    });
    let log = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let count = |level: &str, text: &str| {
        log.lines()
            .filter(|l| l.contains(level) && l.contains(text))
            .count()
    };
    assert_eq!(count("WARN", "state not persisted"), 2, "{log}");
    assert_eq!(count("DEBUG", "state not persisted, again"), 3, "{log}");
    assert_eq!(count("INFO", "state file written again"), 1, "{log}");
    assert_eq!(store.errors_total(), 5);
    assert!(path.is_file());
}

/// The poller skips the tracker for an answer equal to the last one when folding that answer
/// changed nothing (`Poller::view_of`). That holds only if the tracker stamps a time on
/// changes alone: an answer that changed nothing at one time changes nothing at any later
/// time, and gives the same entered times. Checked along a rolling upgrade, a node going
/// away and a cancelled second upgrade.
#[test]
fn an_answer_that_changed_nothing_changes_nothing_later() {
    let node = |name: &str, state: NodeState, version: &str| Node {
        id: Some(format!("id-{name}")),
        name: Some(name.into()),
        state: Some(state),
        version: Some(version.into()),
        ..Node::default()
    };
    let at = |mode: bool, state: ClusterState, nodes: Vec<Node>| Cluster {
        upgrade_mode_enabled: Some(mode),
        state: Some(state),
        original_version: Some("1".into()),
        nodes,
    };
    use ClusterState::*;
    use NodeState::*;
    let steps = vec![
        at(
            false,
            Stable,
            vec![node("a", Active, "1"), node("b", Active, "1")],
        ),
        at(
            true,
            ReadyToUpgrade,
            vec![node("a", Active, "1"), node("b", Active, "1")],
        ),
        at(
            true,
            ReadyToUpgrade,
            vec![node("a", Draining, "1"), node("b", Active, "1")],
        ),
        at(
            true,
            Mixed,
            vec![node("a", Offline, "1"), node("b", Active, "1")],
        ),
        at(
            true,
            Mixed,
            vec![node("a", Starting, "2"), node("b", Active, "1")],
        ),
        at(
            true,
            Mixed,
            vec![node("a", Active, "2"), node("b", Active, "1")],
        ),
        at(
            true,
            Mixed,
            vec![node("a", Active, "2"), node("b", Offline, "1")],
        ),
        at(
            true,
            Mixed,
            vec![node("a", Active, "2"), node("b", Active, "2")],
        ),
        at(
            true,
            ReadyToRunUpgradeTasks,
            vec![node("a", Active, "2"), node("b", Active, "2")],
        ),
        at(
            false,
            Stable,
            vec![node("a", Active, "2"), node("b", Active, "2")],
        ),
        at(false, Stable, vec![node("a", Active, "2")]),
        at(true, ReadyToUpgrade, vec![node("a", Active, "2")]),
        at(false, Stable, vec![node("a", Active, "2")]),
    ];
    let mut t = Tracker::default();
    for (i, c) in steps.iter().enumerate() {
        let now = 1000.0 * (i as f64 + 1.0);
        // Fold until a fold changes nothing (a change may take one more fold to settle).
        let mut settled = None;
        for k in 0..4 {
            let (o, changed) = t.observe(c, now + k as f64);
            if !changed {
                settled = Some(o);
                break;
            }
        }
        let settled = settled.unwrap_or_else(|| panic!("step {i} never settles"));
        let before = t.clone();
        let (later, changed) = t.observe(c, now + 500.0);
        assert!(
            !changed,
            "step {i}: the same answer changed the tracker later"
        );
        assert_eq!(t, before, "step {i}");
        assert_eq!(later, settled, "step {i}");
    }
}

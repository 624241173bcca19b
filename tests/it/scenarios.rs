//! The simulator's scripted scenarios, played fast and watched through the real poller and
//! metrics: the demo's rolling upgrade walks every state and returns to STABLE, and each
//! failure scenario ends where it should.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::*;
use bitbucket_zdu_exporter::server::Format;
use bitbucket_zdu_exporter::simulator::{Scenario, SimulateArgs};

/// Plays `scenario` at `speed`, polling every 50 ms until `done` says so or `limit` passes.
/// Returns every cluster state and node state seen, and the last exposition.
async fn watch(
    scenario: Scenario,
    speed: f64,
    limit: Duration,
    done: impl Fn(&BTreeSet<String>, &str) -> bool,
) -> (BTreeSet<String>, BTreeSet<String>, String) {
    let sim = Sim::start(SimulateArgs {
        scenario,
        speed,
        ..SimulateArgs::default()
    })
    .await;
    let driver = sim.sim.spawn_driver();
    let (shared, mut p) = poller(target("t", &sim.url()));
    let mut cluster_states = BTreeSet::new();
    let mut node_states = BTreeSet::new();
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < limit {
        p.poll_once().await;
        last = render_target(&shared, Format::Text004);
        for s in samples(&last) {
            let state = s
                .labels
                .iter()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.clone());
            match (s.name.as_str(), state) {
                ("bitbucket_zdu_cluster_state", Some(st)) if s.value == 1.0 => {
                    cluster_states.insert(st);
                }
                ("bitbucket_zdu_node_state", Some(st)) if s.value == 1.0 => {
                    node_states.insert(st);
                }
                _ => {}
            }
        }
        if done(&cluster_states, &last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver.abort();
    (cluster_states, node_states, last)
}

#[tokio::test]
async fn rolling_upgrade_walks_every_state_and_returns_to_stable() {
    let (seen, nodes, last) = watch(
        Scenario::RollingUpgrade,
        40.0,
        Duration::from_secs(40),
        |seen, text| {
            seen.contains("RUNNING_UPGRADE_TASKS")
                && value(text, "bitbucket_zdu_cluster_state", &[("state", "STABLE")]) == Some(1.0)
        },
    )
    .await;
    for s in [
        "STABLE",
        "READY_TO_UPGRADE",
        "MIXED",
        "READY_TO_RUN_UPGRADE_TASKS",
        "RUNNING_UPGRADE_TASKS",
    ] {
        assert!(seen.contains(s), "cluster state {s} never seen: {seen:?}");
    }
    for s in ["ACTIVE", "DRAINING", "TERMINATING", "OFFLINE", "STARTING"] {
        assert!(nodes.contains(s), "node state {s} never seen: {nodes:?}");
    }
    assert_eq!(
        value(&last, "bitbucket_zdu_cluster_state", &[("state", "STABLE")]),
        Some(1.0)
    );
    assert_eq!(
        value(&last, "bitbucket_zdu_distinct_versions", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &last,
            "bitbucket_zdu_cluster_state_transitions_total",
            &[("from", "RUNNING_UPGRADE_TASKS"), ("to", "STABLE")]
        ),
        Some(1.0)
    );
    assert!(
        last.contains("version=\"8.19.1\""),
        "every node on the new version"
    );
}

#[tokio::test]
async fn stuck_mixed_stays_mixed() {
    let (seen, _, last) = watch(
        Scenario::StuckMixed,
        40.0,
        Duration::from_secs(20),
        |_, text| {
            value(text, "bitbucket_zdu_nodes", &[("state", "ACTIVE")]) == Some(3.0)
                && value(text, "bitbucket_zdu_cluster_state", &[("state", "MIXED")]) == Some(1.0)
        },
    )
    .await;
    assert!(seen.contains("MIXED"), "{seen:?}");
    assert_eq!(
        value(&last, "bitbucket_zdu_distinct_versions", &[]),
        Some(2.0)
    );
    assert_eq!(value(&last, "bitbucket_zdu_nodes_upgraded", &[]), Some(1.0));
}

#[tokio::test]
async fn tasks_failed_ends_in_upgrade_tasks_failed() {
    let (seen, _, _) = watch(
        Scenario::TasksFailed,
        40.0,
        Duration::from_secs(40),
        |seen, _| seen.contains("UPGRADE_TASKS_FAILED"),
    )
    .await;
    assert!(
        seen.contains("RUNNING_UPGRADE_TASKS") && seen.contains("UPGRADE_TASKS_FAILED"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn node_error_holds_mixed() {
    let (_, nodes, last) = watch(
        Scenario::NodeError,
        40.0,
        Duration::from_secs(20),
        |_, text| value(text, "bitbucket_zdu_nodes", &[("state", "ERROR")]) == Some(1.0),
    )
    .await;
    assert!(nodes.contains("ERROR"), "{nodes:?}");
    assert_eq!(
        value(&last, "bitbucket_zdu_cluster_state", &[("state", "MIXED")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn ghost_nodes_appear_and_are_cleared_by_approval() {
    let max_ghosts = std::sync::Mutex::new(0.0f64);
    let (seen, _, last) = watch(
        Scenario::GhostNodes,
        40.0,
        Duration::from_secs(40),
        |seen, text| {
            let g = value(text, "bitbucket_zdu_ghost_nodes", &[]).unwrap_or(0.0);
            let mut m = max_ghosts.lock().unwrap();
            *m = m.max(g);
            seen.contains("RUNNING_UPGRADE_TASKS")
                && value(text, "bitbucket_zdu_cluster_state", &[("state", "STABLE")]) == Some(1.0)
        },
    )
    .await;
    assert!(
        seen.contains("READY_TO_RUN_UPGRADE_TASKS"),
        "ghosts do not block: {seen:?}"
    );
    assert_eq!(*max_ghosts.lock().unwrap(), 3.0, "every pod left a ghost");
    assert_eq!(value(&last, "bitbucket_zdu_ghost_nodes", &[]), Some(0.0));
    assert_eq!(count(&last, "bitbucket_zdu_node_info"), 3);
}

#[tokio::test]
async fn not_clustered_is_reported_as_such() {
    let (_, _, last) = watch(
        Scenario::NotClustered,
        1.0,
        Duration::from_secs(2),
        |_, _| true,
    )
    .await;
    assert_eq!(value(&last, "bitbucket_zdu_up", &[]), Some(0.0));
    assert_eq!(
        value(
            &last,
            "bitbucket_zdu_last_error_info",
            &[("reason", "not_clustered")]
        ),
        Some(1.0)
    );
}

/// The upgrade figures of one exposition: (nodes, nodes done, ETA present, started).
fn progress_of(text: &str) -> (Option<f64>, Option<f64>, bool, Option<f64>) {
    (
        value(text, "bitbucket_zdu_upgrade_nodes", &[]),
        value(text, "bitbucket_zdu_upgrade_nodes_done", &[]),
        value(
            text,
            "bitbucket_zdu_upgrade_estimated_completion_timestamp_seconds",
            &[],
        )
        .is_some(),
        value(text, "bitbucket_zdu_upgrade_started_timestamp_seconds", &[]),
    )
}

fn upgrades(text: &str, result: &str) -> Option<f64> {
    value(text, "bitbucket_zdu_upgrades_total", &[("result", result)])
}

#[tokio::test]
async fn rolling_upgrade_progress_eta_and_history() {
    let seen_progress = std::sync::Mutex::new(Vec::new());
    let (_, _, last) = watch(
        Scenario::RollingUpgrade,
        40.0,
        Duration::from_secs(40),
        |seen, text| {
            seen_progress.lock().unwrap().push(progress_of(text));
            seen.contains("RUNNING_UPGRADE_TASKS")
                && value(text, "bitbucket_zdu_cluster_state", &[("state", "STABLE")]) == Some(1.0)
        },
    )
    .await;
    let seen = seen_progress.into_inner().unwrap();
    let in_flight: Vec<_> = seen.iter().filter(|p| p.0.is_some()).collect();
    assert!(!in_flight.is_empty(), "an upgrade in flight was seen");
    for (total, done, eta, started) in &in_flight {
        assert_eq!(*total, Some(3.0));
        assert!(started.is_some());
        assert_eq!(
            *eta,
            done.unwrap() >= 1.0,
            "ETA exactly once a node is done"
        );
    }
    let dones: Vec<f64> = in_flight.iter().map(|p| p.1.unwrap()).collect();
    assert!(dones.windows(2).all(|w| w[0] <= w[1]), "{dones:?}");
    assert_eq!(dones.last(), Some(&3.0));
    // finished: no in-flight series, one completed upgrade, three node durations
    assert_eq!(progress_of(&last), (None, None, false, None));
    assert_eq!(upgrades(&last, "completed"), Some(1.0));
    assert_eq!(upgrades(&last, "cancelled"), Some(0.0));
    assert_eq!(upgrades(&last, "failed_finalization"), Some(0.0));
    assert_eq!(
        value(
            &last,
            "bitbucket_zdu_node_upgrade_duration_seconds_count",
            &[]
        ),
        Some(3.0)
    );
    let sum = value(
        &last,
        "bitbucket_zdu_node_upgrade_duration_seconds_sum",
        &[],
    )
    .unwrap();
    // each node takes 75 simulated seconds (drain 20 + terminate 5 + install 20 + start 30)
    assert!(
        sum > 3.0 * 75.0 / 40.0 * 0.8 && sum < 3.0 * 75.0 / 40.0 * 2.0,
        "{sum}"
    );
    let total = value(&last, "bitbucket_zdu_last_upgrade_duration_seconds", &[]).unwrap();
    assert!(
        total >= sum,
        "the upgrade lasts at least its nodes: {total} < {sum}"
    );
}

#[tokio::test]
async fn stuck_mixed_shows_one_of_three_done_with_an_eta() {
    let (_, _, last) = watch(
        Scenario::StuckMixed,
        40.0,
        Duration::from_secs(20),
        |_, text| {
            value(text, "bitbucket_zdu_nodes", &[("state", "ACTIVE")]) == Some(3.0)
                && value(text, "bitbucket_zdu_cluster_state", &[("state", "MIXED")]) == Some(1.0)
        },
    )
    .await;
    let (total, done, eta, started) = progress_of(&last);
    assert_eq!((total, done, eta), (Some(3.0), Some(1.0), true));
    let started = started.unwrap();
    let eta = value(
        &last,
        "bitbucket_zdu_upgrade_estimated_completion_timestamp_seconds",
        &[],
    )
    .unwrap();
    assert!(eta > started, "{eta} > {started}");
    assert_eq!(upgrades(&last, "completed"), Some(0.0));
    assert_eq!(
        value(
            &last,
            "bitbucket_zdu_node_upgrade_duration_seconds_count",
            &[]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn tasks_failed_is_counted_as_failed_finalization() {
    let (_, _, last) = watch(
        Scenario::TasksFailed,
        40.0,
        Duration::from_secs(40),
        |seen, _| seen.contains("UPGRADE_TASKS_FAILED"),
    )
    .await;
    assert_eq!(upgrades(&last, "failed_finalization"), Some(1.0));
    assert_eq!(upgrades(&last, "completed"), Some(0.0));
    assert_eq!(progress_of(&last).0, None, "no upgrade in flight");
}

#[tokio::test]
async fn ghost_nodes_do_not_count_as_upgrade_nodes() {
    let max_total = std::sync::Mutex::new(0.0f64);
    let (_, _, last) = watch(
        Scenario::GhostNodes,
        40.0,
        Duration::from_secs(40),
        |seen, text| {
            let t = progress_of(text).0.unwrap_or(0.0);
            let mut m = max_total.lock().unwrap();
            *m = m.max(t);
            seen.contains("RUNNING_UPGRADE_TASKS")
                && value(text, "bitbucket_zdu_cluster_state", &[("state", "STABLE")]) == Some(1.0)
        },
    )
    .await;
    assert_eq!(*max_total.lock().unwrap(), 3.0, "ghosts are not nodes");
    assert_eq!(upgrades(&last, "completed"), Some(1.0));
    assert_eq!(
        value(
            &last,
            "bitbucket_zdu_node_upgrade_duration_seconds_count",
            &[]
        ),
        Some(3.0)
    );
}

/// An exporter restarted with `--state.file` in the middle of an upgrade continues it: the
/// same start, no node counted twice, one completed upgrade.
#[tokio::test]
async fn a_restart_mid_upgrade_with_a_state_file_continues_the_upgrade() {
    use bitbucket_zdu_exporter::tracker::StateStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let sim = Sim::start(SimulateArgs {
        scenario: Scenario::RollingUpgrade,
        speed: 40.0,
        ..SimulateArgs::default()
    })
    .await;
    let driver = sim.sim.spawn_driver();
    let limit = Instant::now() + Duration::from_secs(40);
    let poll_until = |mut p: bitbucket_zdu_exporter::poller::Poller,
                      shared: std::sync::Arc<bitbucket_zdu_exporter::snapshot::TargetShared>,
                      done: fn(&str) -> bool| async move {
        let mut text = String::new();
        while Instant::now() < limit {
            p.poll_once().await;
            text = render_target(&shared, Format::Text004);
            if done(&text) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        text
    };
    let (store, err) = StateStore::open(&path);
    assert!(err.is_none());
    let (shared, p) = poller_with_store(target("t", &sim.url()), std::sync::Arc::new(store));
    let before = poll_until(p, shared, |t| progress_of(t).1 == Some(1.0)).await;
    let started = progress_of(&before).3.expect("in flight");
    // "restart": a new store from the file and a new poller
    let (store, err) = StateStore::open(&path);
    assert!(err.is_none());
    let (shared, p) = poller_with_store(target("t", &sim.url()), std::sync::Arc::new(store));
    let first = poll_until(p, shared.clone(), |_| true).await;
    assert_eq!(
        progress_of(&first).3,
        Some(started),
        "same upgrade after the restart"
    );
    assert!(
        progress_of(&first).1 >= Some(1.0),
        "nodes done are not lost"
    );
    let (_, p) = (
        (),
        bitbucket_zdu_exporter::poller::Poller::new(
            bitbucket_zdu_exporter::client::ZduClient::new(target("t", &sim.url())).unwrap(),
            shared.clone(),
            std::sync::Arc::new(StateStore::open(&path).0),
        ),
    );
    let last = poll_until(p, shared, |t| upgrades(t, "completed") == Some(1.0)).await;
    driver.abort();
    assert_eq!(upgrades(&last, "completed"), Some(1.0));
    assert_eq!(
        value(
            &last,
            "bitbucket_zdu_node_upgrade_duration_seconds_count",
            &[]
        ),
        Some(3.0),
        "each node counted once"
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let history = state["targets"]["t"]["progress"]["history"]
        .as_array()
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["started"].as_f64(), Some(started));
    assert_eq!(history[0]["result"], "completed");
}

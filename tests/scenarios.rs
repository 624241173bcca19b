//! The simulator's scripted scenarios, played fast and watched through the real poller and
//! metrics: the demo's rolling upgrade walks every state and returns to STABLE, and each
//! failure scenario ends where it should.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bitbucket_zdu_exporter::server::Format;
use bitbucket_zdu_exporter::simulator::{Scenario, SimulateArgs};
use common::*;

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

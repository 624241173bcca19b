//! End-to-end behaviour of poll → snapshot → metrics against a real HTTP upstream on
//! loopback: the built-in simulator for cluster and node states, a recording mock for the
//! odd payloads and for proving that only GETs are sent.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use bitbucket_zdu_exporter::client::Reason;
use bitbucket_zdu_exporter::config::TargetConfig;
use bitbucket_zdu_exporter::model::{ClusterState, NodeState};
use bitbucket_zdu_exporter::server::Format;
use bitbucket_zdu_exporter::simulator::{next_version, SimCluster};
use bitbucket_zdu_exporter::tracker::StateStore;

async fn poll_and_render(sim: &Sim) -> String {
    let (shared, mut p) = poller(target("t", &sim.url()));
    p.poll_once().await;
    render_target(&shared, Format::Text004)
}

fn upgrade(c: &mut SimCluster, i: usize) {
    let v = next_version(c.original_version.as_deref().unwrap());
    c.nodes[i].version = Some(v);
}

#[tokio::test]
async fn every_cluster_state_shows_exactly_once() {
    let sim = Sim::stable(3).await;
    type Step = fn(&mut SimCluster);
    let walk: Vec<(ClusterState, Step)> = vec![
        (ClusterState::Stable, |_| {}),
        (ClusterState::ReadyToUpgrade, |c| c.start().unwrap()),
        (ClusterState::Mixed, |c| upgrade(c, 0)),
        (ClusterState::ReadyToRunUpgradeTasks, |c| {
            upgrade(c, 1);
            upgrade(c, 2)
        }),
        (ClusterState::RunningUpgradeTasks, |c| c.approve().unwrap()),
        (ClusterState::UpgradeTasksFailed, |c| {
            c.finish_finalization(false)
        }),
    ];
    let (shared, mut p) = poller(target("t", &sim.url()));
    for (want, step) in walk {
        sim.sim.with_cluster(step);
        p.poll_once().await;
        let text = render_target(&shared, Format::Text004);
        assert_eq!(value(&text, "bitbucket_zdu_up", &[]), Some(1.0), "{want}");
        for s in ClusterState::KNOWN {
            let v = value(
                &text,
                "bitbucket_zdu_cluster_state",
                &[("state", s.as_str())],
            );
            assert_eq!(v, Some(if *s == want { 1.0 } else { 0.0 }), "{want}: {s}");
        }
    }
    let text = render_target(&shared, Format::Text004);
    // Every pair of the six known states is present (30 series), and
    // STABLE→RTU→MIXED→RTRUT→RUNNING→FAILED counted five transitions, one each.
    assert_eq!(
        count(&text, "bitbucket_zdu_cluster_state_transitions_total"),
        30
    );
    let total: f64 = samples(&text)
        .iter()
        .filter(|s| s.name == "bitbucket_zdu_cluster_state_transitions_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 5.0);
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_cluster_state_transitions_total",
            &[("from", "MIXED"), ("to", "READY_TO_RUN_UPGRADE_TASKS")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn every_node_state_shows_and_counts() {
    let sim = Sim::stable(6).await;
    sim.sim.with_cluster(|c| {
        for (n, s) in c.nodes.iter_mut().zip(NodeState::KNOWN) {
            n.state = s.clone();
        }
    });
    let text = poll_and_render(&sim).await;
    for s in NodeState::KNOWN {
        assert_eq!(
            value(&text, "bitbucket_zdu_nodes", &[("state", s.as_str())]),
            Some(1.0),
            "{s}"
        );
    }
    for (i, s) in NodeState::KNOWN.iter().enumerate() {
        let name = format!("bitbucket-{i}");
        for other in NodeState::KNOWN {
            let v = value(
                &text,
                "bitbucket_zdu_node_state",
                &[("node_name", &name), ("state", other.as_str())],
            );
            assert_eq!(
                v,
                Some(if other == s { 1.0 } else { 0.0 }),
                "{name} {other}"
            );
        }
    }
}

#[tokio::test]
async fn a_node_that_leaves_loses_its_series_on_the_next_poll() {
    let sim = Sim::stable(3).await;
    let (shared, mut p) = poller(target("t", &sim.url()));
    p.poll_once().await;
    let before = render_target(&shared, Format::Text004);
    assert!(before.contains("node_name=\"bitbucket-2\""));
    sim.sim.with_cluster(|c| {
        c.nodes.pop();
    });
    p.poll_once().await;
    let after = render_target(&shared, Format::Text004);
    assert!(!after.contains("bitbucket-2"), "{after}");
    assert_eq!(count(&after, "bitbucket_zdu_node_info"), 2);
}

#[tokio::test]
async fn ghosts_versions_and_null_counts() {
    let sim = Sim::stable(3).await;
    sim.sim.with_cluster(|c| {
        c.start().unwrap();
        // bitbucket-0 came back with a new IP: live entry on the new version plus a ghost.
        let mut live = c.nodes[0].clone();
        live.ip = "10.0.1.50".into();
        live.id = "new-id".into();
        live.version = Some("8.19.1".into());
        let ghost = &mut c.nodes[0];
        ghost.state = NodeState::Offline;
        ghost.version = None;
        ghost.users = None;
        ghost.tasks = None;
        c.nodes.push(live);
    });
    let text = poll_and_render(&sim).await;
    assert_eq!(value(&text, "bitbucket_zdu_ghost_nodes", &[]), Some(1.0));
    assert_eq!(
        value(&text, "bitbucket_zdu_distinct_versions", &[]),
        Some(2.0)
    );
    assert_eq!(value(&text, "bitbucket_zdu_nodes_upgraded", &[]), Some(1.0));
    assert_eq!(
        value(&text, "bitbucket_zdu_cluster_state", &[("state", "MIXED")]),
        Some(1.0)
    );
    let ghost_id = sim.sim.with_cluster(|c| c.nodes[0].id.clone());
    assert_eq!(
        value(&text, "bitbucket_zdu_node_ghost", &[("node_id", &ghost_id)]),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "bitbucket_zdu_node_ghost", &[("node_id", "new-id")]),
        Some(0.0)
    );
    // Null counts are absent, never 0.
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_node_active_users",
            &[("node_id", &ghost_id)]
        ),
        None
    );
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_node_active_tasks",
            &[("node_id", &ghost_id)]
        ),
        None
    );
    assert!(value(
        &text,
        "bitbucket_zdu_node_active_users",
        &[("node_id", "new-id")]
    )
    .is_some());
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_original_version_info",
            &[("version", "8.19.0")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_node_info",
            &[("node_id", &ghost_id), ("version", "")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn nulls_and_unknown_enum_values_do_not_fail_a_poll() {
    let m = Mock::answering(
        r#"{"upgradeModeEnabled":true,"state":"PAUSED_FOR_LUNCH","originalVersion":null,
        "nodes":[{"id":"a","name":"n-a","ipAddress":"10.1.1.1","state":"HIBERNATING","tasksTotal":null,
        "activeUserCount":null,"buildNumber":null,"version":null,"local":null},
        {"id":"b","name":"n-b","state":null,"version":"9.0.0"}],"brandNew":[1,2]}"#,
        r#"{"state":"PAUSED_FOR_LUNCH","buildInfo":null}"#,
    )
    .await;
    let (shared, mut p) = poller(target("t", &format!("http://{}/", m.addr)));
    p.poll_once().await;
    let text = render_target(&shared, Format::Text004);
    assert_eq!(value(&text, "bitbucket_zdu_up", &[]), Some(1.0), "{text}");
    assert_eq!(
        value(&text, "bitbucket_zdu_cluster_state", &[("state", "OTHER")]),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "bitbucket_zdu_cluster_state", &[("state", "MIXED")]),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "bitbucket_zdu_nodes", &[("state", "OTHER")]),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "bitbucket_zdu_nodes", &[("state", "UNKNOWN")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_node_state",
            &[("node_id", "a"), ("state", "OTHER")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_unknown_enum_values_total",
            &[("field", "cluster_state")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_unknown_enum_values_total",
            &[("field", "node_state")]
        ),
        Some(1.0),
        "a null state is not an unknown value"
    );
    assert_eq!(count(&text, "bitbucket_zdu_original_version_info"), 0);
    assert_eq!(count(&text, "bitbucket_zdu_responder_info"), 0);
    promtool_check_metrics(&text).unwrap();
}

#[tokio::test]
async fn only_gets_are_ever_sent() {
    let m = Mock::answering(r#"{"state":"STABLE","nodes":[]}"#, r#"{"state":"STABLE"}"#).await;
    let store = Arc::new(StateStore::in_memory());
    let target = TargetConfig::builder("t", format!("http://{}/ctx", m.addr))
        .poll_interval(Duration::from_millis(100))
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let cfg = bitbucket_zdu_exporter::config::Config::builder(vec![target])
        .max_requests(4)
        .build()
        .unwrap();
    let rt = bitbucket_zdu_exporter::app::Exporter::start(&cfg, store, None, None).unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    rt.shutdown();
    let seen: Vec<String> = m
        .seen()
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert!(seen.len() >= 6, "{seen:?}");
    for line in &seen {
        assert!(
            line == "GET /ctx/rest/zdu/cluster" || line == "GET /ctx/rest/zdu/state",
            "unexpected request {line}"
        );
    }
}

#[tokio::test]
async fn stale_data_is_never_served_as_fresh() {
    let sim = Sim::stable(2).await;
    let t = TargetConfig::builder("t", sim.url())
        .poll_interval(Duration::from_millis(100))
        .timeout(Duration::from_millis(100))
        .max_age(Duration::from_millis(300))
        .build()
        .unwrap();
    let (shared, mut p) = poller(t);
    p.poll_once().await;
    let fresh = render_target(&shared, Format::Text004);
    assert_eq!(value(&fresh, "bitbucket_zdu_up", &[]), Some(1.0));
    tokio::time::sleep(Duration::from_millis(450)).await;
    let stale = render_target(&shared, Format::Text004);
    assert_eq!(value(&stale, "bitbucket_zdu_up", &[]), Some(0.0));
    assert_eq!(
        value(
            &stale,
            "bitbucket_zdu_last_error_info",
            &[("reason", "stale")]
        ),
        Some(1.0)
    );
    for gone in [
        "bitbucket_zdu_cluster_state",
        "bitbucket_zdu_node_info",
        "bitbucket_zdu_nodes",
        "bitbucket_zdu_responder_info",
    ] {
        assert_eq!(count(&stale, gone), 0, "{gone} served stale");
    }
    // The counters stay: they are facts about the exporter, not about the cluster.
    assert_eq!(
        value(
            &stale,
            "bitbucket_zdu_polls_total",
            &[("endpoint", "cluster")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_failed_poll_drops_the_cluster_series_and_recovers() {
    let sim = Sim::stable(2).await;
    let (shared, mut p) = poller(target("t", &sim.url()));
    p.poll_once().await;
    sim.sim.with_cluster(|c| c.not_clustered = true);
    p.poll_once().await;
    let down = render_target(&shared, Format::Text004);
    assert_eq!(value(&down, "bitbucket_zdu_up", &[]), Some(0.0));
    assert_eq!(
        value(
            &down,
            "bitbucket_zdu_last_error_info",
            &[("reason", "not_clustered")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &down,
            "bitbucket_zdu_poll_errors_total",
            &[("endpoint", "cluster"), ("reason", "not_clustered")]
        ),
        Some(1.0)
    );
    assert_eq!(count(&down, "bitbucket_zdu_cluster_state"), 0);
    // Every reason is present from the start, at 0.
    assert_eq!(
        count(&down, "bitbucket_zdu_poll_errors_total"),
        2 * Reason::all().count()
    );
    sim.sim.with_cluster(|c| c.not_clustered = false);
    p.poll_once().await;
    let up = render_target(&shared, Format::Text004);
    assert_eq!(value(&up, "bitbucket_zdu_up", &[]), Some(1.0));
    assert_eq!(count(&up, "bitbucket_zdu_last_error_info"), 0);
}

#[tokio::test]
async fn responder_is_the_node_that_answered() {
    let sim = Sim::stable(3).await;
    let text = poll_and_render(&sim).await;
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_responder_info",
            &[("node_name", "bitbucket-0"), ("version", "8.19.0")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_responder_state",
            &[("state", "ACTIVE")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_node_info",
            &[("node_name", "bitbucket-0"), ("local", "true")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn first_cluster_transition_is_an_increase_from_zero() {
    // A counter series that appears at 1 is invisible to increase(); every known pair must
    // already be there at 0 before the first transition.
    let sim = Sim::stable(3).await;
    let (shared, mut p) = poller(target("t", &sim.url()));
    p.poll_once().await;
    let text = render_target(&shared, Format::Text004);
    let pair = [("from", "STABLE"), ("to", "READY_TO_UPGRADE")];
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_cluster_state_transitions_total",
            &pair
        ),
        Some(0.0)
    );
    sim.sim.with_cluster(|c| c.start().unwrap());
    p.poll_once().await;
    let text = render_target(&shared, Format::Text004);
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_cluster_state_transitions_total",
            &pair
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_live_node_with_a_null_version_is_not_counted_as_upgraded() {
    let sim = Sim::stable(3).await;
    sim.sim.with_cluster(|c| {
        c.start().unwrap();
        // bitbucket-1 is starting and does not report its version yet.
        c.nodes[1].state = NodeState::Starting;
        c.nodes[1].version = None;
    });
    let text = poll_and_render(&sim).await;
    assert_eq!(value(&text, "bitbucket_zdu_nodes_upgraded", &[]), Some(0.0));
    sim.sim
        .with_cluster(|c| c.nodes[1].version = Some("8.19.1".into()));
    let text = poll_and_render(&sim).await;
    assert_eq!(value(&text, "bitbucket_zdu_nodes_upgraded", &[]), Some(1.0));
}

#[tokio::test]
async fn the_poll_interval_is_a_metric_even_before_the_first_poll() {
    let sim = Sim::stable(1).await;
    let t = TargetConfig::builder("t", sim.url())
        .timeout(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(1500))
        .max_age(Duration::from_secs(15))
        .build()
        .unwrap();
    let (shared, mut p) = poller(t);
    let text = render_target(&shared, Format::Text004);
    assert_eq!(
        value(&text, "bitbucket_zdu_poll_interval_seconds", &[]),
        Some(1.5)
    );
    p.poll_once().await;
    let text = render_target(&shared, Format::Text004);
    assert_eq!(
        value(&text, "bitbucket_zdu_poll_interval_seconds", &[]),
        Some(1.5)
    );
}

#[tokio::test]
async fn node_names_without_a_live_entry_are_exported_with_their_offline_since() {
    const M: &str = "bitbucket_zdu_node_name_offline_since_timestamp_seconds";
    let sim = Sim::stable(3).await;
    sim.sim.with_cluster(|c| {
        c.start().unwrap();
        // bitbucket-0 came back with a new IP: the old entry is a ghost, the name is live.
        let mut live = c.nodes[0].clone();
        live.ip = "10.0.1.50".into();
        live.id = "new-id".into();
        c.nodes[0].state = NodeState::Offline;
        c.nodes.push(live);
    });
    let (shared, mut p) = poller(target("t", &sim.url()));
    p.poll_once().await;
    let text = render_target(&shared, Format::Text004);
    assert_eq!(count(&text, M), 0, "a ghost's name has a live entry");
    // The replacement pod is deleted: now the name has no live entry.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    sim.sim
        .with_cluster(|c| c.nodes[3].state = NodeState::Offline);
    p.poll_once().await;
    let text = render_target(&shared, Format::Text004);
    assert_eq!(count(&text, M), 1);
    let since = value(&text, M, &[("node_name", "bitbucket-0")]).unwrap();
    assert!(
        since >= before - 0.5,
        "counts from the replacement's loss, not the ghost's age"
    );
}

mod restart;

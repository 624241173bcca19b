//! Golden `/probe` output for fixed cluster situations, in both exposition formats, and
//! `promtool check metrics` on the real (unmasked) text output, whose families and labels
//! must be the catalogue's. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.

use crate::common::*;
use bitbucket_zdu_exporter::model::{NodeState, Product};
use bitbucket_zdu_exporter::server::Format;
use bitbucket_zdu_exporter::simulator::{SimCluster, SimulateArgs};

async fn scenario(name: &str, setup: fn(&mut SimCluster)) {
    scenario_as(Product::Bitbucket, name, setup).await;
}

/// The golden output of `name` for a target of `product` against the simulator speaking it;
/// its families are the catalogue's under the product's prefix.
async fn scenario_as(product: Product, name: &str, setup: fn(&mut SimCluster)) {
    let sim = Sim::start(SimulateArgs {
        nodes: 3,
        responder: 0,
        product,
        ..SimulateArgs::default()
    })
    .await;
    sim.sim.with_cluster(setup);
    let config = bitbucket_zdu_exporter::config::TargetConfig::builder("golden", sim.url())
        .timeout(std::time::Duration::from_secs(2))
        .poll_interval(std::time::Duration::from_secs(5))
        .max_age(std::time::Duration::from_secs(15))
        .product(product)
        .build()
        .unwrap();
    let (shared, mut p) = poller(config);
    p.poll_once().await;
    // The catalogue names families with Bitbucket's prefix.
    let as_catalogue =
        |t: &str| t.replace(&format!("{}_", product.metric_prefix()), "bitbucket_zdu_");
    let text = render_target(&shared, Format::Text004);
    promtool_check_metrics(&text).unwrap_or_else(|e| panic!("{name}: promtool: {e}\n{text}"));
    check_golden(&format!("tests/golden/{name}.prom"), &mask(&text));
    assert_matches_catalogue(&as_catalogue(&text));
    let om = render_target(&shared, Format::OpenMetrics);
    assert!(
        om.ends_with("# EOF\n"),
        "{name}: OpenMetrics must end with # EOF"
    );
    check_golden(&format!("tests/golden/{name}.om.txt"), &mask(&om));
    assert_matches_catalogue(&as_catalogue(&om));
}

#[tokio::test]
async fn golden_confluence_failed_finalization_with_a_null_node_state() {
    scenario_as(Product::Confluence, "confluence-tasks-failed", |c| {
        c.start().unwrap();
        for n in &mut c.nodes {
            n.version = Some("8.19.1".into());
            n.build_number = Some("8019001".into());
        }
        c.approve().unwrap();
        c.finish_finalization(false);
        c.nodes[2].state = NodeState::Terminating;
    })
    .await;
}

#[tokio::test]
async fn golden_jira_mixed_with_no_heartbeat_and_a_stale_offline_entry() {
    scenario_as(Product::Jira, "jira-mixed", |c| {
        c.start().unwrap();
        c.nodes[0].version = Some("8.19.1".into());
        c.nodes[1].state = NodeState::Draining;
        c.nodes[2].state = NodeState::Error;
    })
    .await;
}

#[tokio::test]
async fn golden_stable() {
    scenario("stable", |_| {}).await;
}

#[tokio::test]
async fn golden_mixed_with_ghost_and_draining() {
    scenario("mixed-ghost", |c| {
        c.start().unwrap();
        let mut live = c.nodes[0].clone();
        live.ip = "10.0.1.50".into();
        live.id = "5eed0000-0000-4000-8000-00000000000a".into();
        live.version = Some("8.19.1".into());
        live.build_number = Some("8019001".into());
        live.state = NodeState::Active;
        let ghost = &mut c.nodes[0];
        ghost.state = NodeState::Offline;
        ghost.version = None;
        ghost.build_number = None;
        ghost.users = None;
        ghost.tasks = None;
        c.nodes.push(live);
        c.nodes[1].state = NodeState::Draining;
        c.nodes[1].users = Some(2);
        c.nodes[1].tasks = Some(0);
    })
    .await;
}

#[tokio::test]
async fn golden_not_clustered() {
    scenario("not-clustered", |c| c.not_clustered = true).await;
}

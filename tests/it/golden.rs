//! Golden `/probe` output for fixed cluster situations, in both exposition formats, and
//! `promtool check metrics` on the real (unmasked) text output, whose families and labels
//! must be the catalogue's. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.

use crate::common::*;
use bitbucket_zdu_exporter::model::NodeState;
use bitbucket_zdu_exporter::server::Format;
use bitbucket_zdu_exporter::simulator::SimCluster;

async fn scenario(name: &str, setup: fn(&mut SimCluster)) {
    let sim = Sim::stable(3).await;
    sim.sim.with_cluster(setup);
    let (shared, mut p) = poller(target("golden", &sim.url()));
    p.poll_once().await;
    let text = render_target(&shared, Format::Text004);
    promtool_check_metrics(&text).unwrap_or_else(|e| panic!("{name}: promtool: {e}\n{text}"));
    check_golden(&format!("tests/golden/{name}.prom"), &mask(&text));
    assert_matches_catalogue(&text);
    let om = render_target(&shared, Format::OpenMetrics);
    assert!(
        om.ends_with("# EOF\n"),
        "{name}: OpenMetrics must end with # EOF"
    );
    check_golden(&format!("tests/golden/{name}.om.txt"), &mask(&om));
    assert_matches_catalogue(&om);
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

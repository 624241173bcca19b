//! One reading of a target: the metrics, the landing page, the live upgrade page, the JSON
//! API and the `status` command say the same of a target that is pending, up, stale and
//! down, because they all read `TargetSnapshot::health` (through `api::view`).

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use bitbucket_zdu_exporter::api;
use bitbucket_zdu_exporter::cli::status::{require_up, StatusError};
use bitbucket_zdu_exporter::config::TargetConfig;
use bitbucket_zdu_exporter::pages::template::Inline;
use bitbucket_zdu_exporter::pages::{landing, upgrade};
use bitbucket_zdu_exporter::server::Format;
use bitbucket_zdu_exporter::snapshot::TargetShared;

/// What each reader says: `None` for up, `Some(reason)` for not up.
#[derive(Debug, PartialEq)]
struct Readings {
    metrics: Option<String>,
    landing: Option<String>,
    upgrade_page: Option<String>,
    api: Option<String>,
    status: Option<String>,
}

fn metrics_reading(shared: &Arc<TargetShared>) -> Option<String> {
    let text = render_target_uncached(shared, Format::Text004);
    match value(&text, "bitbucket_zdu_up", &[]) {
        Some(1.0) => None,
        Some(0.0) => Some(
            samples(&text)
                .into_iter()
                .find(|s| s.name == "bitbucket_zdu_last_error_info")
                .and_then(|s| {
                    s.labels
                        .iter()
                        .find(|(k, _)| k == "reason")
                        .map(|(_, v)| v.clone())
                })
                // up 0 without an error: no poll finished yet.
                .unwrap_or_else(|| "pending".into()),
        ),
        other => panic!("bitbucket_zdu_up is {other:?}"),
    }
}

fn landing_reading(shared: &Arc<TargetShared>) -> Option<String> {
    let tables = landing::tables(std::slice::from_ref(shared));
    let Inline::Text(status) = &tables[0].rows[0][4].content else {
        panic!("the status cell is not text");
    };
    match status.as_str() {
        "up" => None,
        "pending" => Some("pending".into()),
        down => Some(
            down.strip_prefix("down (")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| panic!("status cell {down:?}"))
                .to_string(),
        ),
    }
}

fn upgrade_page_reading(shared: &Arc<TargetShared>) -> Option<String> {
    let html = upgrade::render_views(&[api::view(shared)]);
    let down = html.split("<p class=\"down\">Down (").nth(1)?;
    Some(down.split(')').next().unwrap().to_string())
}

fn status_reading(shared: &Arc<TargetShared>) -> Option<String> {
    match require_up(api::view(shared)) {
        Ok(_) => None,
        Err(StatusError::Down { reason, .. }) => Some(reason),
        Err(e) => panic!("{e}"),
    }
}

fn read(shared: &Arc<TargetShared>) -> Readings {
    Readings {
        metrics: metrics_reading(shared),
        landing: landing_reading(shared),
        upgrade_page: upgrade_page_reading(shared),
        api: api::view(shared).down_reason,
        status: status_reading(shared),
    }
}

fn all(reading: Option<&str>) -> Readings {
    let r = || reading.map(str::to_string);
    Readings {
        metrics: r(),
        landing: r(),
        upgrade_page: r(),
        api: r(),
        status: r(),
    }
}

#[tokio::test]
async fn every_reader_agrees_on_pending_up_stale_and_down() {
    let sim = Sim::stable(2).await;
    let max_age = Duration::from_millis(400);
    let t = TargetConfig::builder("t", sim.url())
        .timeout(Duration::from_millis(200))
        .poll_interval(Duration::from_millis(200))
        .max_age(max_age)
        .build()
        .unwrap();
    let (shared, mut p) = poller(t);
    assert_eq!(read(&shared), all(Some("pending")), "pending");

    p.poll_once().await;
    assert_eq!(read(&shared), all(None), "up");

    tokio::time::sleep(max_age + Duration::from_millis(100)).await;
    assert_eq!(read(&shared), all(Some("stale")), "stale");

    let closed = format!("http://127.0.0.1:{}", free_port());
    let (down, mut p) = poller(target("d", &closed));
    p.poll_once().await;
    let reading = read(&down);
    let reason = reading.api.clone().expect("down");
    assert!(!["pending", "stale"].contains(&reason.as_str()), "{reason}");
    assert_eq!(reading, all(Some(&reason)), "down");
}

/// The text of every cell of the landing page's tables.
fn landing_cells(shared: &Arc<TargetShared>) -> Vec<String> {
    landing::tables(std::slice::from_ref(shared))
        .iter()
        .flat_map(|t| t.rows.iter().flatten())
        .filter_map(|c| match &c.content {
            Inline::Text(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// For each product mid-upgrade: the JSON API gives every node `alive` and
/// `finalization_errors` (null where the product has no such field), and the landing page,
/// `/upgrade` and `status` mark the same nodes the same way (Jira's no-heartbeat node,
/// Confluence's finalization errors; Bitbucket's nodes unmarked).
#[tokio::test]
async fn every_reader_marks_the_same_nodes_for_each_product() {
    use bitbucket_zdu_exporter::cli::status::report;
    use bitbucket_zdu_exporter::model::{NodeState, Product};
    use bitbucket_zdu_exporter::simulator::SimulateArgs;

    for product in Product::ALL {
        let sim = Sim::start(SimulateArgs {
            nodes: 3,
            product,
            ..SimulateArgs::default()
        })
        .await;
        sim.sim.with_cluster(|c| {
            c.start().unwrap();
            for n in &mut c.nodes {
                n.version = Some("8.19.1".into());
            }
            c.approve().unwrap();
            c.finish_finalization(false);
            // Jira: ACTIVE without heartbeat; Confluence: a null state.
            c.nodes[1].state = NodeState::Terminating;
        });
        let t = TargetConfig::builder(product.as_str(), sim.url())
            .product(product)
            .build()
            .unwrap();
        let (shared, mut p) = poller(t);
        p.poll_once().await;
        let v = api::view(&shared);
        assert!(v.up, "{product}: {v:?}");
        let json = serde_json::to_value(&v).unwrap();
        for n in json["nodes"].as_array().unwrap() {
            let (alive, errors) = (&n["alive"], &n["finalization_errors"]);
            assert!(n.get("alive").is_some() && n.get("finalization_errors").is_some());
            assert_eq!(alive.is_null(), product != Product::Jira, "{product}: {n}");
            assert_eq!(
                errors.is_null(),
                product != Product::Confluence,
                "{product}: {n}"
            );
        }
        let marked: Vec<String> = v
            .nodes
            .iter()
            .map(|n| format!("{}{}", n.name.as_deref().unwrap_or(&n.id), n.marks()))
            .collect();
        let want_mark = match product {
            Product::Bitbucket => None,
            Product::Confluence => Some(" (1 finalization error)"),
            Product::Jira => Some(" (no heartbeat)"),
        };
        let with_mark = marked
            .iter()
            .filter(|m| want_mark.is_some_and(|w| m.ends_with(w)))
            .count();
        match want_mark {
            None => assert!(v.nodes.iter().all(|n| n.marks().is_empty()), "{marked:?}"),
            Some(_) => assert!(with_mark > 0, "{product}: {marked:?}"),
        }
        let cells = landing_cells(&shared);
        let page = upgrade::render_views(std::slice::from_ref(&v));
        let status = report(&v);
        for (n, m) in v.nodes.iter().zip(&marked) {
            assert!(
                cells.contains(m),
                "{product}: landing lacks {m:?}: {cells:?}"
            );
            assert!(
                page.contains(&format!(">{m}</td>")),
                "{product}: /upgrade lacks {m:?}"
            );
            // `status` ends the node's line with the marks.
            let name = n.name.as_deref().unwrap_or(&n.id);
            let line = status
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{name} ")));
            let ends = line.is_some_and(|l| {
                l.ends_with(&n.marks()) && (!n.marks().is_empty() || !l.ends_with(')'))
            });
            assert!(ends, "{product}: status line of {m:?}\n{status}");
        }
    }
}

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

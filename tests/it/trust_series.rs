//! Series identity under a hostile upstream (issue 18 items 2 and 3, and the label cap): no
//! exposition ever repeats a series, unknown states cannot add series without bound, and
//! every label value stays within the documented 256 bytes.

use std::collections::HashSet;

use crate::common::*;
use bitbucket_zdu_exporter::server::Format;

fn cluster_json(state: &str, nodes: &[(&str, &str)]) -> String {
    let nodes: Vec<String> = nodes
        .iter()
        .map(|(id, st)| {
            format!(
                r#"{{"id":"{id}","name":"bitbucket-{id}","ipAddress":"10.0.0.1","state":"{st}","version":"8.19.0","buildNumber":"1","portNumber":5701}}"#
            )
        })
        .collect();
    format!(
        r#"{{"upgradeModeEnabled":false,"state":"{state}","originalVersion":null,"nodes":[{}]}}"#,
        nodes.join(",")
    )
}

/// Every series (name and label set) appears once, every label value is within 256 bytes,
/// and (Prometheus text) the text passes promtool.
fn assert_no_repeated_series(text: &str, promtool: bool) {
    let mut seen = HashSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let series = line.rsplit_once(' ').map_or(line, |(s, _)| s);
        assert!(seen.insert(series.to_string()), "repeated series {series}");
        if let Some(labels) = series.split_once('{').map(|(_, l)| l) {
            for v in labels.split("=\"").skip(1) {
                let v = v.split('"').next().unwrap_or_default();
                assert!(
                    v.len() <= 256,
                    "label value of {} bytes in {series:.80}",
                    v.len()
                );
            }
        }
    }
    if promtool {
        promtool_check_metrics(text).unwrap();
    }
}

/// Item 2: `"stable"` used to sanitise to `STABLE` (repeating series in four families), and
/// node ids `x`, `x`, `x#2` gave two `node_id="x#2"` series sets.
#[tokio::test]
async fn unknown_states_and_repeated_ids_never_repeat_a_series() {
    let body = cluster_json(
        "stable",
        &[("x", "active"), ("x", "ACTIVE"), ("x#2", "Draining")],
    );
    let mock = Mock::answering(&body, STATE_JSON).await;
    let (shared, mut p) = poller(target("t", &mock.url()));
    p.poll_once().await;
    let text = render_target(&shared, Format::Text004);
    assert_no_repeated_series(&text, true);
    assert_eq!(
        value(&text, "bitbucket_zdu_cluster_state", &[("state", "STABLE")]),
        Some(0.0),
        "an unknown state is not a known one"
    );
    assert_eq!(
        value(&text, "bitbucket_zdu_cluster_state", &[("state", "OTHER")]),
        Some(1.0)
    );
    assert_no_repeated_series(&render_target(&shared, Format::OpenMetrics), false);
}

/// Item 3: each new unknown cluster state added a transitions pair forever (129 series
/// after 100 polls), persisted in the state file.
#[tokio::test]
async fn invented_states_cannot_grow_the_series_or_the_state_file() {
    let mock = Mock::scripted(|n, head| {
        let body = if head.contains("/cluster") {
            cluster_json(&format!("EVIL_{n}"), &[("a", "ACTIVE")])
        } else {
            STATE_JSON.to_string()
        };
        Canned {
            status: 200,
            content_type: Some("application/json".into()),
            extra_headers: String::new(),
            body,
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    let (store, err) = bitbucket_zdu_exporter::tracker::StateStore::open(&file);
    assert!(err.is_none(), "{err:?}");
    let store = std::sync::Arc::new(store);
    let (shared, mut p) = poller_with_store(target("t", &mock.url()), store);
    let mut sizes = Vec::new();
    for _ in 0..40 {
        p.poll_once().await;
        let text = render_target(&shared, Format::Text004);
        sizes.push(count(
            &text,
            "bitbucket_zdu_cluster_state_transitions_total",
        ));
    }
    let text = render_target(&shared, Format::Text004);
    assert_no_repeated_series(&text, true);
    assert!(
        sizes[39] <= 6 * 5 + 1,
        "transition series grew to {}",
        sizes[39]
    );
    assert_eq!(
        sizes[10], sizes[39],
        "transition series keep growing: {sizes:?}"
    );
    let saved = std::fs::read_to_string(&file).unwrap();
    // The persisted transition counts hold no invented state (the recent-transitions list
    // of the page keeps the raw names, but at most 20).
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    let rows = saved["targets"]["t"]["transitions"].as_array().unwrap();
    assert!(rows.len() <= 7 * 7, "{} transition rows", rows.len());
    assert!(
        !rows.iter().any(|r| r.to_string().contains("EVIL_")),
        "{rows:?}"
    );
    let recent = saved["targets"]["t"]["progress"]["recent_transitions"].as_array();
    assert!(recent.map_or(0, Vec::len) <= 20);
}

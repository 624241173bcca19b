//! Fuzz regressions (issue 4, part 5): every input under `tests/testdata/fuzz/<target>/`
//! (crashes found by `scripts/fuzz.sh`, kept here once fixed) and the seed corpus under
//! `fuzz/corpus/<target>/` goes through the same properties as the fuzz targets, as a plain
//! cargo test.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_zdu_exporter::config::{parse_targets_yaml, TargetConfig};
use bitbucket_zdu_exporter::metrics::TargetCollector;
use bitbucket_zdu_exporter::model::{Cluster, ErrorBody, StateResponse};
use bitbucket_zdu_exporter::poller::{ClusterView, TargetShared, TargetSnapshot};
use bitbucket_zdu_exporter::server::{render, Format};
use bitbucket_zdu_exporter::tracker::Tracked;
use prometheus_client::registry::Registry;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("tests/testdata/fuzz").join(target),
        root.join("fuzz/corpus").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn payload(data: &[u8]) {
    if let Ok(b) = serde_json::from_slice::<ErrorBody>(data) {
        let _ = b.messages();
    }
    let state = serde_json::from_slice::<StateResponse>(data).ok();
    let Ok(cluster) = serde_json::from_slice::<Cluster>(data) else {
        return;
    };
    let again = serde_json::to_vec(&cluster).unwrap();
    let back: Cluster = serde_json::from_slice(&again).unwrap();
    assert_eq!(back, cluster, "round trip changed the value");
    let mut tracked = Tracked::default();
    let (view, _) = ClusterView::observe(cluster, &mut tracked, 1_700_000_000.0);
    let cfg = TargetConfig::builder("fuzz", "http://127.0.0.1:7990/")
        .timeout(Duration::from_secs(1))
        .poll_interval(Duration::from_secs(30))
        .max_age(Duration::from_secs(90))
        .build()
        .unwrap();
    let shared = TargetShared::new(cfg.clone(), &tracked);
    let mut snap = TargetSnapshot::empty(&cfg, &tracked);
    snap.first_poll_done = true;
    snap.cluster = Some(Arc::new(view));
    snap.cluster_at = Some(Instant::now());
    snap.responder = state.map(Arc::new);
    snap.responder_at = Some(Instant::now());
    shared.snapshot.store(Arc::new(snap));
    for format in [Format::Text004, Format::OpenMetrics] {
        let mut r = Registry::default();
        r.register_collector(Box::new(TargetCollector::new(shared.clone())));
        let out = render(&r, format);
        for line in out.lines() {
            assert!(
                line.starts_with('#') || line.starts_with("bitbucket_zdu_"),
                "a label value broke the exposition: {line:?}"
            );
        }
    }
}

#[test]
fn zdu_payload_inputs() {
    let all = inputs("zdu_payload");
    assert!(!all.is_empty(), "the seed corpus is there");
    for (path, data) in all {
        let r = std::panic::catch_unwind(|| payload(&data));
        assert!(r.is_ok(), "{} fails", path.display());
    }
}

#[test]
fn config_yaml_inputs() {
    for (path, data) in inputs("config_yaml") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        let _ = bitbucket_zdu_exporter::duration::parse_duration(text);
        let _ = bitbucket_zdu_exporter::config::parse_listen_address(text);
        if let Err(e) = parse_targets_yaml(
            text,
            Path::new("/nonexistent-fuzz-dir/config.yml"),
            Duration::from_secs(10),
            Duration::from_secs(30),
            None,
        ) {
            assert!(!e.to_string().is_empty(), "{}", path.display());
        }
    }
}

#[test]
fn web_config_inputs() {
    for (path, data) in inputs("web_config") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        let _ = bitbucket_zdu_exporter::duration::parse_go_duration(text);
        if let Err(e) = bitbucket_zdu_exporter::web::WebSettings::parse(
            Path::new("/nonexistent-fuzz-dir/web.yml"),
            text,
        ) {
            assert!(!e.to_string().is_empty(), "{}", path.display());
        }
    }
}

/// Found by `scripts/fuzz.sh` (zdu_payload, first minute): two node entries with the same
/// `id` but different states make the tracker see a change on every identical answer, so
/// their `node_state_entered_timestamp_seconds` resets on every poll and the state file is
/// rewritten on every poll. Bitbucket's node ids are unique UUIDs, so this needs a broken
/// upstream. Fixed: `Cluster::node_keys` makes keys unique per answer (`id#2` for a repeat).
#[test]
fn tracker_is_stable_for_a_repeated_answer_with_duplicate_ids() {
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/testdata/fuzz/zdu_payload/tracker-duplicate-node-id.json"),
    )
    .unwrap();
    let cluster: Cluster = serde_json::from_slice(&data).unwrap();
    let mut tracked = Tracked::default();
    let (first, _) = tracked.observe(&cluster, 1_700_000_000.0);
    let (second, changed) = tracked.observe(&cluster, 1_700_000_100.0);
    assert!(!changed, "a repeated answer changed the tracker");
    assert_eq!(first, second);
}

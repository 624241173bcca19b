//! The fuzz properties, written once. Included with `#[path]` by the cargo-fuzz targets in
//! `fuzz/fuzz_targets/` and by `tests/fuzz_regressions.rs`, which runs them over the seed
//! corpus and the kept crash inputs as a plain cargo test. Each function panics when a
//! property does not hold for `data`.
// Each fuzz target calls one of these functions; the others are unused in its crate.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_zdu_exporter::config::{parse_listen_address, parse_targets_yaml, TargetConfig};
use bitbucket_zdu_exporter::metrics::TargetCollector;
use bitbucket_zdu_exporter::model::{Cluster, ErrorBody, StateResponse};
use bitbucket_zdu_exporter::server::{render, Format};
use bitbucket_zdu_exporter::snapshot::{ClusterObservation, TargetShared, TargetSnapshot};
use bitbucket_zdu_exporter::sys::duration::{format_duration, parse_duration, parse_go_duration};
use bitbucket_zdu_exporter::tracker::Tracker;
use bitbucket_zdu_exporter::web::WebSettings;
use prometheus_client::registry::Registry;

/// A folder that does not exist: secret, CA and certificate files named by an input are
/// never found.
const NOWHERE: &str = "/nonexistent-fuzz-dir";

/// The ZDU payload model (`GET /rest/zdu/cluster`, `/state`, error bodies) and the path a
/// payload takes to `/metrics`. Properties: nothing panics; a parsed `/cluster` answer
/// survives a serialise/parse round trip unchanged; ghost indexes point at node entries; a
/// repeated answer does not change the tracker; every rendered line is a comment or a
/// `bitbucket_zdu_` sample (no label value can break a line or the format), and OpenMetrics
/// ends with `# EOF`.
pub fn zdu_payload(data: &[u8]) {
    if let Ok(b) = serde_json::from_slice::<ErrorBody>(data) {
        let _ = b.messages();
    }
    let state = serde_json::from_slice::<StateResponse>(data).ok();
    let Ok(cluster) = serde_json::from_slice::<Cluster>(data) else {
        return;
    };
    // Round trip: what the model keeps, it keeps exactly.
    let again = serde_json::to_vec(&cluster).expect("a model value serialises");
    let back: Cluster = serde_json::from_slice(&again).expect("re-parses");
    assert_eq!(back, cluster, "round trip changed the value");
    for n in &cluster.nodes {
        let _ = (n.key(), n.address());
    }
    let mut tracked = Tracker::default();
    let (view, _) = ClusterObservation::observe(cluster, &mut tracked, 1_700_000_000.0);
    let nodes = view.cluster.nodes.len();
    assert!(
        view.figures.ghosts.iter().all(|i| *i < nodes),
        "ghost index"
    );
    // Seen twice at different times, nothing has changed.
    let (observed2, changed) = tracked.observe(&view.cluster, 1_700_000_100.0);
    assert!(!changed, "a repeated answer changed the tracker");
    assert_eq!(observed2.cluster_since, view.cluster_since);
    assert_eq!(observed2.node_since, view.node_since);
    render_checked(view, state, &tracked);
}

fn render_checked(view: ClusterObservation, state: Option<StateResponse>, tracked: &Tracker) {
    let cfg = TargetConfig::builder("fuzz", "http://127.0.0.1:7990/")
        .timeout(Duration::from_secs(1))
        .poll_interval(Duration::from_secs(30))
        .max_age(Duration::from_secs(90))
        .build()
        .expect("a valid target");
    let shared = TargetShared::new(cfg.clone(), tracked);
    let mut snap = TargetSnapshot::empty(&cfg, tracked);
    snap.first_poll_done = true;
    snap.cluster = Some(Arc::new(view));
    snap.cluster_at = Some(Instant::now());
    if let Some(s) = state {
        snap.responder = Some(Arc::new(s));
        snap.responder_at = Some(Instant::now());
    }
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
        if format == Format::OpenMetrics {
            assert!(out.ends_with("# EOF\n"), "{out}");
        }
    }
}

/// The `--config.file` YAML parser and the flag-value parsers (durations, listen
/// addresses). Properties: nothing panics; a printed duration parses back to the same
/// value; every error has a message; every accepted configuration satisfies the invariants
/// the rest of the exporter relies on.
pub fn config_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text) {
        let shown = format_duration(d);
        assert_eq!(
            parse_duration(&shown).ok(),
            Some(d),
            "{text:?} -> {shown:?}"
        );
    }
    if let Err(e) = parse_listen_address(text) {
        assert!(!e.to_string().is_empty());
    }
    let path = Path::new(NOWHERE).join("config.yml");
    match parse_targets_yaml(
        text,
        &path,
        Duration::from_secs(10),
        Duration::from_secs(30),
        None,
    ) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(targets) => {
            assert!(!targets.is_empty());
            for (i, t) in targets.iter().enumerate() {
                assert!(!t.name().is_empty());
                assert!(
                    targets[..i].iter().all(|o| o.name() != t.name()),
                    "duplicate name"
                );
                target_invariants(t);
            }
        }
    }
}

fn target_invariants(t: &TargetConfig) {
    assert!(t.timeout() <= t.poll_interval());
    assert!(t.poll_interval() <= t.max_age());
    assert!(matches!(t.base_url().scheme(), "http" | "https"));
    assert!(t.base_url().username().is_empty() && t.base_url().password().is_none());
    let ep = t.endpoint("cluster");
    assert!(ep.path().ends_with("/rest/zdu/cluster"), "{ep}");
    assert_eq!(ep.host_str(), t.base_url().host_str());
    let _ = (t.auth().describe(), t.display_url(), format!("{t:?}"));
}

/// The exporter-toolkit web configuration parser (`--web.config.file`) and its Go duration
/// parser. Properties: nothing panics and every error has a message.
pub fn web_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_go_duration(text);
    match WebSettings::parse(&Path::new(NOWHERE).join("web.yml"), text) {
        Ok(c) => {
            let _ = format!("{c:?}");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

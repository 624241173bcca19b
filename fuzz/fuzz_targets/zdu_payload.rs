//! Fuzzes the ZDU payload model (`GET /rest/zdu/cluster`, `/state`, error bodies) and the
//! path a payload takes to `/metrics`: parse, derived figures, state tracking, rendering in
//! both exposition formats.
//!
//! Properties: nothing panics; a parsed `/cluster` answer survives a serialise/parse round
//! trip unchanged; every rendered line is a comment or a `bitbucket_zdu_` sample (no label
//! value can break a line or the format).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bitbucket_zdu_exporter_fuzz_support::payload(data);
});

mod bitbucket_zdu_exporter_fuzz_support {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bitbucket_zdu_exporter::config::TargetConfig;
    use bitbucket_zdu_exporter::metrics::TargetCollector;
    use bitbucket_zdu_exporter::model::{Cluster, ErrorBody, StateResponse};
    use bitbucket_zdu_exporter::poller::{ClusterView, TargetShared, TargetSnapshot};
    use bitbucket_zdu_exporter::server::{render, Format};
    use bitbucket_zdu_exporter::tracker::Tracked;
    use prometheus_client::registry::Registry;

    pub fn payload(data: &[u8]) {
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
        let mut tracked = Tracked::default();
        let (view, _) = ClusterView::observe(cluster, &mut tracked, 1_700_000_000.0);
        assert!(view
            .figures
            .ghosts
            .iter()
            .all(|i| *i < view.cluster.nodes.len()));
        let (observed2, changed) = tracked.observe(&view.cluster, 1_700_000_100.0);
        // Seen twice at different times, nothing has changed.
        assert!(!changed, "a repeated answer changed the tracker");
        assert_eq!(observed2.cluster_since, view.cluster_since);
        assert_eq!(observed2.node_since, view.node_since);

        let cfg = TargetConfig::builder("fuzz", "http://127.0.0.1:7990/")
            .timeout(Duration::from_secs(1))
            .poll_interval(Duration::from_secs(30))
            .max_age(Duration::from_secs(90))
            .build()
            .expect("static");
        let shared = TargetShared::new(cfg.clone(), &tracked);
        let mut snap = TargetSnapshot::empty(&cfg, &tracked);
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
}

//! The scrape cache (issue 9): expositions are rendered once per snapshot and format and
//! served as prebuilt bytes, yet a scrape after a poll shows the new state, freshness running
//! out still drops the series at once, `/probe` and `/metrics` agree, every negotiated format
//! and gzip decode to the same samples, memory does not grow with scrapes, and a target a
//! reload removes frees its cache.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::common::*;
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use bitbucket_zdu_exporter::app::Exporter;
use bitbucket_zdu_exporter::config::{ProcessEnv, TargetConfig};
use bitbucket_zdu_exporter::metrics::cache::{ExporterSource, ScrapeCache};
use bitbucket_zdu_exporter::model::NodeState;
use bitbucket_zdu_exporter::server::{
    metrics_registry, render, router, router_with, AppState, Format, OPENMETRICS, TEXT_004,
};
use bitbucket_zdu_exporter::tracker::StateStore;
use tower::ServiceExt;

const PROM_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A target that polls only once in a test's lifetime (unless the test says otherwise).
fn slow_target(name: &str, url: &str) -> TargetConfig {
    TargetConfig::builder(name, url)
        .timeout(Duration::from_secs(2))
        .poll_interval(Duration::from_secs(600))
        .max_age(Duration::from_secs(1800))
        .build()
        .unwrap()
}

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    raw: Vec<u8>,
}

impl Got {
    /// The body, gunzipped when it says it is gzip.
    fn text(&self) -> String {
        if self
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v == "gzip")
        {
            let mut out = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(&self.raw[..]),
                &mut out,
            )
            .expect("a valid gzip body");
            out
        } else {
            String::from_utf8(self.raw.clone()).unwrap()
        }
    }
}

async fn fetch(app: &axum::Router, uri: &str, headers: &[(&str, &str)]) -> Got {
    let (status, headers, raw) = oneshot(app, uri, headers).await;
    Got {
        status,
        headers,
        raw,
    }
}

/// The samples that do not come from `/proc` (those are re-read at most once a second).
/// The samples without `process_*` (which move between scrapes), in a canonical order and
/// with histogram bounds as numbers: OpenMetrics writes `le="30.0"` and puts `_sum`/`_count`
/// before the buckets, text 0.0.4 writes `le="30"` after them; both mean the same samples.
fn stable_samples(text: &str) -> Vec<Sample> {
    let mut out: Vec<Sample> = samples(text)
        .into_iter()
        .filter(|s| !s.name.starts_with("process_"))
        .map(|mut s| {
            for (k, v) in &mut s.labels {
                if k == "le" && v != "+Inf" {
                    *v = v
                        .parse::<f64>()
                        .expect("a numeric bucket bound")
                        .to_string();
                }
            }
            s
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.name, &a.labels)
            .partial_cmp(&(&b.name, &b.labels))
            .expect("comparable")
    });
    out
}

fn names(text: &str) -> Vec<String> {
    let mut n: Vec<String> = samples(text).into_iter().map(|s| s.name).collect();
    n.sort();
    n.dedup();
    n
}

#[tokio::test]
async fn a_scrape_after_a_poll_serves_the_new_state() {
    let sim = Sim::stable(3).await;
    let (shared, mut p) = poller(slow_target("t", &sim.url()));
    p.poll_once().await;
    let cache = ScrapeCache::of_target(shared.clone());
    let now = Instant::now();
    let first = cache.probe(&shared, Format::Text004, now);
    // Until the next poll, every scrape serves that very exposition.
    let again = cache.probe(&shared, Format::Text004, Instant::now());
    assert!(Arc::ptr_eq(&first, &again), "not served from the cache");
    let before = first.to_text();
    assert_eq!(
        value(&before, "bitbucket_zdu_nodes", &[("state", "ACTIVE")]),
        Some(3.0)
    );

    sim.sim
        .with_cluster(|c| c.nodes[1].state = NodeState::Draining);
    p.poll_once().await;
    // The poller touches no cache: the new snapshot is a new key, so the next scrape renders.
    let renewed = cache.probe(&shared, Format::Text004, Instant::now());
    assert!(
        !Arc::ptr_eq(&first, &renewed),
        "served the old snapshot's exposition"
    );
    for format in Format::ALL {
        let after = cache.probe(&shared, format, Instant::now()).to_text();
        assert_eq!(
            value(&after, "bitbucket_zdu_nodes", &[("state", "ACTIVE")]),
            Some(2.0),
            "{format:?}: the old state was served after a poll"
        );
        assert_eq!(
            value(&after, "bitbucket_zdu_nodes", &[("state", "DRAINING")]),
            Some(1.0)
        );
        assert_eq!(
            value(
                &after,
                "bitbucket_zdu_polls_total",
                &[("endpoint", "cluster")]
            ),
            Some(2.0)
        );
        assert_eq!(after, render_target_uncached(&shared, format));
    }
}

#[tokio::test]
async fn through_the_router_a_poll_shows_up_in_the_next_scrape() {
    let sim = Sim::stable(2).await;
    let t = TargetConfig::builder("one", sim.url())
        .timeout(Duration::from_millis(200))
        .poll_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    let rt = started(vec![t]).await;
    let app = router(rt.clone(), "/metrics", 8);
    for headers in [
        vec![],
        vec![("accept", PROM_ACCEPT), ("accept-encoding", "gzip")],
    ] {
        let body = fetch(&app, "/metrics", &headers).await.text();
        assert_eq!(
            value(&body, "bitbucket_zdu_nodes", &[("state", "ACTIVE")]),
            Some(2.0)
        );
    }
    sim.sim
        .with_cluster(|c| c.nodes[0].state = NodeState::Offline);
    for uri in ["/metrics", "/probe?target=one"] {
        for headers in [
            vec![],
            vec![("accept", PROM_ACCEPT), ("accept-encoding", "gzip")],
        ] {
            wait_until(
                &format!("{uri} {headers:?} shows the new state"),
                Duration::from_secs(10),
                || {
                    let app = app.clone();
                    let headers = headers.clone();
                    async move {
                        let body = fetch(&app, uri, &headers).await.text();
                        value(&body, "bitbucket_zdu_nodes", &[("state", "OFFLINE")]) == Some(1.0)
                    }
                },
            )
            .await;
        }
    }
    rt.shutdown();
}

#[tokio::test]
async fn freshness_running_out_drops_the_series_on_time() {
    let sim = Sim::stable(2).await;
    let max_age = Duration::from_millis(300);
    let t = TargetConfig::builder("t", sim.url())
        .poll_interval(Duration::from_millis(100))
        .timeout(Duration::from_millis(100))
        .max_age(max_age)
        .build()
        .unwrap();
    let (shared, mut p) = poller(t);
    p.poll_once().await;
    let polled = shared
        .snapshot
        .load()
        .cluster_at
        .expect("a successful poll");
    let deadline = polled + max_age;
    let status = Arc::new(bitbucket_zdu_exporter::reload::ReloadStatus::new());
    let src = ExporterSource {
        status,
        targets: Arc::new(arc_swap::ArcSwap::from_pointee(vec![shared.clone()])),
        store: Arc::new(bitbucket_zdu_exporter::tracker::StateStore::in_memory()),
    };
    let cache = ScrapeCache::new(src);
    for format in Format::ALL {
        // Cached while fresh, up to the last instant of max age…
        for at in [polled, deadline] {
            for text in [
                cache.probe(&shared, format, at).to_text(),
                cache.metrics(format, at).to_text(),
            ] {
                assert_eq!(
                    value(&text, "bitbucket_zdu_up", &[]),
                    Some(1.0),
                    "{format:?}"
                );
                assert_eq!(count(&text, "bitbucket_zdu_node_info"), 2);
                assert_eq!(count(&text, "bitbucket_zdu_responder_info"), 1);
            }
        }
        // …and gone the moment after, although no poll landed.
        let after = deadline + Duration::from_millis(1);
        for text in [
            cache.probe(&shared, format, after).to_text(),
            cache.metrics(format, after).to_text(),
        ] {
            assert_eq!(
                value(&text, "bitbucket_zdu_up", &[]),
                Some(0.0),
                "{format:?}"
            );
            assert_eq!(
                value(
                    &text,
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
                assert_eq!(count(&text, gone), 0, "{format:?}: {gone} served stale");
            }
        }
        let gz = cache.probe(&shared, format, after).gzip().unwrap();
        let raw: Vec<u8> = gz.iter().flat_map(|b| b.to_vec()).collect();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&raw[..]), &mut text)
            .unwrap();
        assert_eq!(value(&text, "bitbucket_zdu_up", &[]), Some(0.0));
    }

    // In real time too: a scrape after max age, with nothing polled, is stale. (A scrape
    // rendered before the deadline is fresh; on a loaded machine the checks above may already
    // have used up the 300 ms, so freshness is asserted only for a render that began in time.)
    let began = Instant::now();
    let fresh = render_target(&shared, Format::OpenMetrics);
    if began < deadline {
        assert_eq!(value(&fresh, "bitbucket_zdu_up", &[]), Some(1.0));
    }
    tokio::time::sleep_until((deadline + Duration::from_millis(50)).into()).await;
    let stale = render_target(&shared, Format::OpenMetrics);
    assert_eq!(value(&stale, "bitbucket_zdu_up", &[]), Some(0.0));
    assert_eq!(
        count(&stale, "bitbucket_zdu_node_info"),
        0,
        "stale nodes served"
    );
}

#[tokio::test]
async fn probe_and_metrics_agree_and_match_the_uncached_rendering() {
    let sim = Sim::stable(4).await;
    let rt = started(vec![slow_target("one", &sim.url())]).await;
    let app = router(rt.clone(), "/metrics", 8);
    for (accept, format) in [("", Format::Text004), (PROM_ACCEPT, Format::OpenMetrics)] {
        let h = [("accept", accept)];
        let metrics = fetch(&app, "/metrics", &h).await.text();
        let probe = fetch(&app, "/probe?target=one", &h).await.text();
        // One target: /metrics is the exporter's own metrics followed by /probe's.
        assert!(
            metrics.ends_with(&probe),
            "{format:?}:\n{metrics}\n---\n{probe}"
        );
        assert!(probe.contains("bitbucket_zdu_node_info{"));
        assert!(!probe.contains("process_"));
        // The same samples as the registries the handlers used to build per scrape.
        let reference = render(&metrics_registry(&rt), format);
        assert_eq!(
            stable_samples(&metrics),
            stable_samples(&reference),
            "{format:?}"
        );
        assert_eq!(names(&metrics), names(&reference), "{format:?}");
        let shared = rt.target("one").unwrap();
        assert_eq!(probe, render_target_uncached(&shared, format));
        assert_matches_catalogue(&metrics);
    }

    // Several targets: /metrics is the exporter's alone, /probe each target's.
    let other = Sim::stable(2).await;
    let rt2 = started(vec![
        slow_target("a", &sim.url()),
        slow_target("b", &other.url()),
    ])
    .await;
    let app2 = router(rt2.clone(), "/metrics", 8);
    for (accept, format) in [("", Format::Text004), (PROM_ACCEPT, Format::OpenMetrics)] {
        let h = [("accept", accept)];
        let metrics = fetch(&app2, "/metrics", &h).await.text();
        assert_eq!(count(&metrics, "bitbucket_zdu_up"), 0);
        let reference = render(&metrics_registry(&rt2), format);
        assert_eq!(stable_samples(&metrics), stable_samples(&reference));
        assert_eq!(names(&metrics), names(&reference));
        for (name, nodes) in [("a", 4.0), ("b", 2.0)] {
            let probe = fetch(&app2, &format!("/probe?target={name}"), &h)
                .await
                .text();
            assert_eq!(
                value(&probe, "bitbucket_zdu_nodes", &[("state", "ACTIVE")]),
                Some(nodes)
            );
            assert_eq!(
                probe,
                render_target_uncached(&rt2.target(name).unwrap(), format)
            );
        }
    }
    rt.shutdown();
    rt2.shutdown();
}

#[tokio::test]
async fn every_negotiated_format_and_gzip_decode_to_the_same_samples() {
    let sim = Sim::stable(3).await;
    let rt = started(vec![slow_target("one", &sim.url())]).await;
    let app = router(rt.clone(), "/metrics", 8);
    let accepts = [
        ("", TEXT_004),
        ("text/plain", TEXT_004),
        ("*/*", TEXT_004),
        ("application/openmetrics-text", OPENMETRICS),
        (PROM_ACCEPT, OPENMETRICS),
    ];
    let encodings = [
        ("", false),
        ("gzip", true),
        ("x-gzip", true),
        ("gzip, deflate, br", true),
        ("br", false),
        ("gzip;q=0", false),
        ("identity;q=1, gzip;q=0.5", false),
        ("identity;q=0.5, gzip;q=0.8", true),
        ("gzip;q=2", false),
    ];
    for uri in ["/metrics", "/probe?target=one"] {
        let mut seen: Option<Vec<Sample>> = None;
        let mut seen_names: Option<Vec<String>> = None;
        for (accept, content_type) in accepts {
            for (encoding, gzip) in encodings {
                let mut h = vec![];
                if !accept.is_empty() {
                    h.push(("accept", accept));
                }
                if !encoding.is_empty() {
                    h.push(("accept-encoding", encoding));
                }
                let got = fetch(&app, uri, &h).await;
                let what = format!("{uri} accept={accept:?} accept-encoding={encoding:?}");
                assert_eq!(got.status, StatusCode::OK, "{what}");
                assert_eq!(got.headers[header::CONTENT_TYPE], content_type, "{what}");
                assert_eq!(
                    got.headers.get(header::CONTENT_ENCODING).is_some(),
                    gzip,
                    "{what}"
                );
                assert_eq!(got.headers[header::VARY], "accept-encoding", "{what}");
                assert_eq!(
                    got.headers[header::CONTENT_LENGTH],
                    got.raw.len().to_string().as_str(),
                    "{what}"
                );
                let text = got.text();
                assert_eq!(
                    text.ends_with("# EOF\n"),
                    content_type == OPENMETRICS,
                    "{what}"
                );
                let s = stable_samples(&text);
                assert!(!s.is_empty());
                match &seen {
                    None => seen = Some(s),
                    Some(first) => assert_eq!(first, &s, "{what}"),
                }
                let n = names(&text);
                match &seen_names {
                    None => seen_names = Some(n),
                    Some(first) => assert_eq!(first, &n, "{what}"),
                }
            }
        }
    }
    // promtool accepts the cached text served plain and gzipped.
    for enc in ["", "gzip"] {
        let text = fetch(&app, "/metrics", &[("accept-encoding", enc)])
            .await
            .text();
        promtool_check_metrics(&text).unwrap();
    }
    rt.shutdown();
}

#[tokio::test]
async fn memory_stays_at_one_snapshot_whatever_the_scrape_count() {
    let sim = Sim::stable(3).await;
    let rt = started(vec![slow_target("one", &sim.url())]).await;
    let state = AppState::new(rt.clone(), "/metrics", 8);
    let app = router_with(state.clone());
    let shared = rt.target("one").unwrap();
    let all = [
        vec![],
        vec![("accept-encoding", "gzip")],
        vec![("accept", PROM_ACCEPT)],
        vec![("accept", PROM_ACCEPT), ("accept-encoding", "gzip")],
    ];
    for h in &all {
        fetch(&app, "/metrics", h).await;
        fetch(&app, "/probe?target=one", h).await;
    }
    let held = state.cache().held_bytes("one");
    // Both formats' text and gzip of one snapshot.
    let text: usize = Format::ALL
        .iter()
        .map(|f| render_target_uncached(&shared, *f).len())
        .sum();
    assert!(
        held > text && held < 2 * text,
        "held {held} for {text} bytes of text"
    );
    for i in 0..300 {
        fetch(&app, "/metrics", &all[i % all.len()]).await;
        fetch(&app, "/probe?target=one", &all[(i + 1) % all.len()]).await;
    }
    assert_eq!(
        state.cache().held_bytes("one"),
        held,
        "the cache grew with scrapes"
    );
    rt.shutdown();
}

#[tokio::test]
async fn a_reload_replacing_a_target_frees_its_cache() {
    let sim = Sim::stable(3).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("targets.yml");
    let write = |name: &str| {
        std::fs::write(
            &cfg,
            format!(
                "targets:\n  - name: {name}\n    url: {}\n    poll_interval: 10m\n",
                sim.url()
            ),
        )
        .unwrap()
    };
    write("old");
    let (args, config) = crate::common::from_config_file(&cfg);
    let rt = Exporter::start(
        &config,
        Arc::new(StateStore::in_memory()),
        Some(args),
        Some(Box::new(ProcessEnv)),
    )
    .unwrap();
    wait_ready(&rt).await;
    let state = AppState::new(rt.clone(), "/metrics", 8);
    let app = router_with(state.clone());
    for h in [
        vec![],
        vec![("accept", PROM_ACCEPT), ("accept-encoding", "gzip")],
    ] {
        assert_eq!(
            fetch(&app, "/probe?target=old", &h).await.status,
            StatusCode::OK
        );
        fetch(&app, "/metrics", &h).await;
    }
    let old = rt.target("old").unwrap();
    let cache = state.cache();
    assert!(cache.held_bytes("old") > 0);
    let old_exposition = Arc::downgrade(&cache.probe(&old, Format::Text004, Instant::now()));
    let old_target: Weak<_> = Arc::downgrade(&old);
    drop(old);

    write("new");
    let resp = app
        .clone()
        .oneshot(Request::post("/-/reload").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    wait_ready(&rt).await;
    assert_eq!(
        fetch(&app, "/probe?target=old", &[]).await.status,
        StatusCode::BAD_REQUEST
    );
    let new = fetch(&app, "/metrics", &[]).await.text();
    assert_eq!(value(&new, "bitbucket_zdu_up", &[]), Some(1.0));
    assert_eq!(
        cache.held_bytes("old"),
        0,
        "the removed target's cache was kept"
    );
    // The aborted poller lets go of the old target shortly after the reload.
    wait_until("the old target is freed", Duration::from_secs(5), || {
        let gone = old_target.upgrade().is_none() && old_exposition.upgrade().is_none();
        async move { gone }
    })
    .await;
    rt.shutdown();
}

#[tokio::test]
async fn a_changed_target_config_is_rendered_anew_without_waiting_for_a_poll() {
    // Families may read the target's config (its poll interval, say): a reload that changes
    // it must not leave the old rendering cached until the next poll.
    let sim = Sim::stable(2).await;
    let (shared, mut p) = poller(slow_target("t", &sim.url()));
    p.poll_once().await;
    let cache = ScrapeCache::of_target(shared.clone());
    let before = cache.probe(&shared, Format::Text004, Instant::now());
    assert!(Arc::ptr_eq(
        &before,
        &cache.probe(&shared, Format::Text004, Instant::now())
    ));
    let changed = TargetConfig::builder("t", sim.url())
        .timeout(Duration::from_secs(2))
        .poll_interval(Duration::from_secs(900))
        .max_age(Duration::from_secs(1800))
        .build()
        .unwrap();
    shared.config.store(Arc::new(changed));
    let after = cache.probe(&shared, Format::Text004, Instant::now());
    assert!(
        !Arc::ptr_eq(&before, &after),
        "served the rendering of the old config"
    );
    assert_eq!(
        after.to_text(),
        render_target_uncached(&shared, Format::Text004)
    );
}

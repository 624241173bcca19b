//! Router tests with `oneshot`: content negotiation, gzip, `/probe` errors, health,
//! readiness, reload and the landing page.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use bitbucket_zdu_exporter::app::Exporter;
use bitbucket_zdu_exporter::config::{Config, TargetConfig};
use bitbucket_zdu_exporter::server::{router as app, OPENMETRICS, TEXT_004};
use bitbucket_zdu_exporter::tracker::StateStore;
use tower::ServiceExt;

fn config(targets: Vec<TargetConfig>) -> Config {
    Config::builder(targets).max_requests(8).build().unwrap()
}

async fn get(
    router: &axum::Router,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    oneshot(router, uri, headers).await
}

#[tokio::test]
async fn content_negotiation_and_gzip() {
    let sim = Sim::stable(2).await;
    let rt = started(vec![target("one", &sim.url())]).await;
    let router = app(rt.clone(), "/metrics", 8);

    let (s, h, body) = get(&router, "/metrics", &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], TEXT_004);
    let text = String::from_utf8(body).unwrap();
    assert!(!text.contains("# EOF"));
    // One target: /metrics carries it and the exporter's own metrics.
    assert_eq!(value(&text, "bitbucket_zdu_up", &[]), Some(1.0));
    assert!(text.contains("bitbucket_zdu_exporter_build_info{"));
    assert!(text.contains("process_resident_memory_bytes"));
    promtool_check_metrics(&text).unwrap();
    assert_matches_catalogue(&text);

    let prom_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (_, h, body) = get(&router, "/metrics", &[("accept", prom_accept)]).await;
    assert_eq!(h[header::CONTENT_TYPE], OPENMETRICS);
    assert!(String::from_utf8(body).unwrap().ends_with("# EOF\n"));

    let (_, h, body) = get(
        &router,
        "/metrics",
        &[("accept", "text/plain"), ("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(h[header::CONTENT_ENCODING], "gzip");
    assert_eq!(h[header::CONTENT_TYPE], TEXT_004);
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain)
        .unwrap();
    assert_eq!(value(&plain, "bitbucket_zdu_up", &[]), Some(1.0));
    rt.shutdown();
}

#[tokio::test]
async fn several_targets_use_probe() {
    let a = Sim::stable(2).await;
    let b = Sim::stable(3).await;
    let rt = started(vec![target("a", &a.url()), target("b", &b.url())]).await;
    let router = app(rt.clone(), "/metrics", 8);

    let (_, _, body) = get(&router, "/metrics", &[]).await;
    let text = String::from_utf8(body).unwrap();
    assert!(
        !text.contains("bitbucket_zdu_up"),
        "several targets: /metrics is the exporter's own"
    );
    assert_eq!(
        value(&text, "bitbucket_zdu_exporter_targets", &[]),
        Some(2.0)
    );

    let (s, _, body) = get(&router, "/probe?target=b", &[]).await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert_eq!(
        value(&text, "bitbucket_zdu_nodes", &[("state", "ACTIVE")]),
        Some(3.0)
    );
    assert!(
        !text.contains("process_"),
        "/probe has only the target's metrics"
    );

    let (s, _, body) = get(&router, "/probe?target=http://evil.example.com", &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let msg = String::from_utf8(body).unwrap();
    assert!(
        msg.contains("unknown target") && msg.contains("a, b"),
        "{msg}"
    );

    let (s, _, body) = get(&router, "/probe", &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("'target' parameter is missing"));
    rt.shutdown();
}

#[tokio::test]
async fn health_readiness_reload_and_errors() {
    // An upstream that accepts connections and never answers: the first poll takes the
    // whole timeout, so readiness is observable before it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        loop {
            if let Ok((c, _)) = silent.accept().await {
                conns.push(c);
            }
        }
    });
    let t = TargetConfig::builder("slow", format!("http://{addr}/"))
        .timeout(Duration::from_millis(1500))
        .poll_interval(Duration::from_secs(5))
        .max_age(Duration::from_secs(15))
        .build()
        .unwrap();
    let rt = Exporter::start(
        &config(vec![t]),
        Arc::new(StateStore::in_memory()),
        None,
        None,
    )
    .unwrap();
    let router = app(rt.clone(), "/metrics", 8);
    assert_eq!(get(&router, "/-/healthy", &[]).await.0, StatusCode::OK);
    assert_eq!(
        get(&router, "/-/ready", &[]).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // A scrape never waits for Bitbucket.
    let started = std::time::Instant::now();
    let (s, _, body) = get(&router, "/metrics", &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert_eq!(
        value(&String::from_utf8(body).unwrap(), "bitbucket_zdu_up", &[]),
        Some(0.0)
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(get(&router, "/-/ready", &[]).await.0, StatusCode::OK);
    let (_, _, body) = get(&router, "/metrics", &[]).await;
    let text = String::from_utf8(body).unwrap();
    assert_eq!(
        value(
            &text,
            "bitbucket_zdu_last_error_info",
            &[("reason", "timeout")]
        ),
        Some(1.0)
    );

    assert_eq!(
        get(&router, "/-/reload", &[]).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let resp = router
        .clone()
        .oneshot(Request::post("/-/reload").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(get(&router, "/nope", &[]).await.0, StatusCode::NOT_FOUND);

    let (s, h, body) = get(&router, "/", &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains(bitbucket_zdu_exporter::sys::version::VERSION));
    assert!(
        page.contains("slow") && page.contains("down (timeout)"),
        "{page}"
    );
    rt.shutdown();
    hold.abort();
}

//! The JSON API: `GET /api/v1/targets` and `GET /api/v1/targets/{name}/upgrade` report the
//! upgrade in flight (progress, ETA, per-node phases, the next node to stop, the allowed
//! action), the history loaded from `--state.file`, and sit behind the web config like
//! `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use bitbucket_zdu_exporter::api::{TargetList, TargetView};
use bitbucket_zdu_exporter::app::Exporter;
use bitbucket_zdu_exporter::config::{Config, TargetConfig};
use bitbucket_zdu_exporter::model::NodeState;
use bitbucket_zdu_exporter::server::{self, router, ServeOptions};
use bitbucket_zdu_exporter::simulator::SimCluster;
use bitbucket_zdu_exporter::tracker::StateStore;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A state file of an exporter that has seen one completed upgrade, written by hand in the
/// persisted format.
const STATE_WITH_HISTORY: &str = r#"{
  "version": 1,
  "targets": {
    "prod": {
      "cluster": null,
      "nodes": {},
      "transitions": [],
      "progress": {
        "history": [{
          "started": 1000.0, "ended": 1600.0, "result": "completed",
          "from_version": "8.18.0", "to_version": "8.19.0",
          "nodes": [{"name": "bitbucket-0", "duration_seconds": 120.0}]
        }],
        "results": {"completed": 1, "cancelled": 2, "failed_finalization": 0}
      }
    }
  }
}"#;

async fn runtime(
    targets: Vec<TargetConfig>,
    state: Option<&str>,
) -> (Arc<Exporter>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    if let Some(s) = state {
        std::fs::write(&path, s).unwrap();
    }
    let (store, err) = StateStore::open(&path);
    assert!(err.is_none(), "{err:?}");
    let config = Config::builder(targets).max_requests(8).build().unwrap();
    let rt = Exporter::start(&config, Arc::new(store), None, None).unwrap();
    wait_ready(&rt).await;
    (rt, dir)
}

async fn get_json(router: &axum::Router, uri: &str) -> (StatusCode, String, serde_json::Value) {
    let resp = router
        .clone()
        .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, ct, json)
}

/// Mid-upgrade: bitbucket-0 back on the new version with a new IP (leaving a ghost),
/// bitbucket-1 draining, bitbucket-2 idle on the old version.
fn mid_upgrade(c: &mut SimCluster) {
    c.start().unwrap();
    let mut live = c.nodes[0].clone();
    live.ip = "10.0.1.50".into();
    live.id = format!("{}-r", live.id);
    live.version = Some("8.19.1".into());
    live.state = NodeState::Active;
    c.nodes[0].state = NodeState::Offline;
    c.nodes[0].version = None;
    c.nodes[0].users = None;
    c.nodes[0].tasks = None;
    c.nodes.push(live);
    c.nodes[1].state = NodeState::Draining;
    c.nodes[2].users = Some(0);
    c.nodes[2].tasks = Some(0);
}

#[tokio::test]
async fn upgrade_view_reports_progress_next_node_and_history() {
    let sim = Sim::stable(3).await;
    sim.sim.with_cluster(mid_upgrade);
    let (rt, _dir) = runtime(vec![target("prod", &sim.url())], Some(STATE_WITH_HISTORY)).await;
    let r = router(rt, "/metrics", 8);
    let (status, ct, json) = get_json(&r, "/api/v1/targets/prod/upgrade").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: TargetView = serde_json::from_value(json.clone()).expect("the documented shape");
    assert!(v.up);
    assert_eq!(v.cluster_state.as_deref(), Some("MIXED"));
    assert!(v.allowed_actions.is_empty(), "MIXED allows nothing");
    assert_eq!(v.versions, vec!["8.19.0", "8.19.1"]);
    let u = v.upgrade.as_ref().expect("in flight");
    assert_eq!(
        (u.nodes_total, u.nodes_done),
        (3, 1),
        "the ghost is not a node"
    );
    // first seen mid-upgrade, bitbucket-0 already done: no rate, so no ETA yet (null)
    assert_eq!(u.estimated_completion_at, None);
    assert_eq!(
        json["upgrade"]["estimated_completion_at"],
        serde_json::Value::Null
    );
    assert_eq!(u.from_version.as_deref(), Some("8.19.0"));
    assert_eq!(u.nodes[1].state.as_deref(), Some("DRAINING"));
    assert!(u.nodes[1].drain_at.is_some());
    let next = v.next_node.as_ref().expect("a next node");
    assert_eq!(next.name.as_deref(), Some("bitbucket-2"));
    assert!(next.safe);
    assert_eq!(v.nodes.iter().filter(|n| n.ghost).count(), 1);
    // the history came from the state file
    assert_eq!(v.history.len(), 1);
    assert_eq!(v.history[0].result, "completed");
    assert_eq!(v.history[0].duration_seconds, 600.0);
    assert_eq!(v.history[0].to_version.as_deref(), Some("8.19.0"));
    assert_eq!((v.results.completed, v.results.cancelled), (1, 2));
    // stable field names: the documented keys are all there
    for key in [
        "target",
        "generated_at",
        "up",
        "down_reason",
        "cluster_state",
        "cluster_state_since",
        "upgrade_mode_enabled",
        "original_version",
        "versions",
        "allowed_actions",
        "nodes",
        "next_node",
        "upgrade",
        "recent_transitions",
        "history",
        "results",
    ] {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
    for key in [
        "started_at",
        "elapsed_seconds",
        "nodes_total",
        "nodes_done",
        "estimated_completion_at",
        "remaining_seconds",
    ] {
        assert!(json["upgrade"].get(key).is_some(), "upgrade.{key} missing");
    }
}

#[tokio::test]
async fn allowed_actions_follow_the_cluster_state() {
    let sim = Sim::stable(2).await;
    let (rt, _dir) = runtime(vec![target("t", &sim.url())], None).await;
    let r = router(rt.clone(), "/metrics", 8);
    let (_, _, json) = get_json(&r, "/api/v1/targets/t/upgrade").await;
    assert_eq!(json["allowed_actions"], serde_json::json!(["start"]));
    assert_eq!(json["upgrade"], serde_json::Value::Null);
    assert_eq!(json["next_node"], serde_json::Value::Null);
    assert_eq!(json["history"], serde_json::json!([]));
    assert_eq!(
        json["results"],
        serde_json::json!({"completed": 0, "cancelled": 0, "failed_finalization": 0})
    );
}

#[tokio::test]
async fn target_list_and_unknown_targets() {
    let sim = Sim::stable(2).await;
    let (rt, _dir) = runtime(
        vec![target("a", &sim.url()), target("b.b", &sim.url())],
        None,
    )
    .await;
    let r = router(rt, "/metrics", 8);
    let (status, _, json) = get_json(&r, "/api/v1/targets").await;
    assert_eq!(status, StatusCode::OK);
    let list: TargetList = serde_json::from_value(json).unwrap();
    assert_eq!(list.targets.len(), 2);
    assert!(list.targets.iter().all(|t| t.up && !t.upgrade_in_flight));
    assert_eq!(list.targets[0].cluster_state.as_deref(), Some("STABLE"));
    assert_eq!(list.targets[1].upgrade_url, "/api/v1/targets/b.b/upgrade");
    let (status, _, json) = get_json(&r, &list.targets[1].upgrade_url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["target"], "b.b");
    let (status, _, json) = get_json(&r, "/api/v1/targets/%3Cscript%3E/upgrade").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"], "unknown target");
    assert_eq!(json["targets"], serde_json::json!(["a", "b.b"]));
    assert!(
        !json.to_string().contains("script"),
        "the name is not echoed"
    );
}

#[tokio::test]
async fn the_api_is_behind_the_web_config() {
    bitbucket_zdu_exporter::client::install_crypto_provider();
    let sim = Sim::stable(2).await;
    let (rt, dir) = runtime(vec![target("t", &sim.url())], None).await;
    let users = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/testdata/web-config/users.good.yml"),
    )
    .unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, users).unwrap();
    let wc = bitbucket_zdu_exporter::web::WebConfigRuntime::load(&web).unwrap();
    let listeners = server::bind_all(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::serve_with(
        listeners,
        router(rt, "/metrics", 8),
        async {
            let _ = rx.await;
        },
        Duration::from_secs(2),
        ServeOptions {
            web_config: Some(wc),
            ..ServeOptions::default()
        },
    ));
    for path in ["/api/v1/targets", "/api/v1/targets/t/upgrade", "/metrics"] {
        let r = http_get(addr, path, &[]).await.unwrap();
        assert_eq!(r.status, 401, "{path}");
    }
    use base64::Engine as _;
    let auth = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bob:bob-secret")
    );
    let r = http_get(addr, "/api/v1/targets/t/upgrade", &[auth])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_upgrade_page_is_served_and_linked_from_the_landing_page() {
    let sim = Sim::stable(3).await;
    sim.sim.with_cluster(mid_upgrade);
    let (rt, _dir) = runtime(vec![target("prod", &sim.url())], Some(STATE_WITH_HISTORY)).await;
    let r = router(rt, "/metrics", 8);
    let page = |uri: &'static str| {
        let r = r.clone();
        async move {
            let resp = r
                .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, ct, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let (status, ct, html) = page("/upgrade").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(html.contains("<section class=\"target\" id=\"target-prod\""));
    assert!(html.contains("<progress max=\"3\" value=\"1\">"), "{html}");
    assert_eq!(html.matches("<g class=\"lane\"").count(), 3);
    assert!(html.contains("class=\"next-node\" data-node=\"bitbucket-2\" data-safe=\"true\""));
    assert_eq!(html.matches("<tr class=\"history-row\"").count(), 1);
    assert!(html.contains("(ghost)"), "the ghost entry is marked");
    let (_, _, landing) = page("/").await;
    assert!(landing.contains("href=\"/upgrade\""), "{landing}");
}

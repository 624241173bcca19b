//! The simulator's HTTP API as an admin rehearsing an upgrade would use it: Bitbucket's 409
//! rules for start/cancel/approve, a node upgraded by hand, Basic auth when required, and
//! the context path.

use std::time::{Duration, Instant};

use crate::common::*;
use bitbucket_zdu_exporter::simulator::SimulateArgs;

async fn json(r: reqwest::Response) -> serde_json::Value {
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

async fn state(http: &reqwest::Client, base: &str) -> String {
    let v = json(
        http.get(format!("{base}/rest/zdu/cluster"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    v["state"].as_str().unwrap().to_string()
}

async fn post(http: &reqwest::Client, url: String) -> (u16, String) {
    let r = http.post(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn rehearse_an_upgrade_with_the_real_409_rules() {
    bitbucket_zdu_exporter::client::install_crypto_provider();
    let sim = Sim::start(SimulateArgs {
        speed: 50.0,
        context_path: "/bitbucket".into(),
        ..SimulateArgs::default()
    })
    .await;
    let base = format!("http://{}/bitbucket", sim.addr);
    let http = reqwest::Client::new();
    assert_eq!(state(&http, &base).await, "STABLE");
    assert_eq!(
        post(&http, format!("{base}/rest/zdu/approve")).await,
        (409, String::new())
    );
    assert_eq!(post(&http, format!("{base}/rest/zdu/cancel")).await.0, 409);
    let (status, body) = post(&http, format!("{base}/rest/zdu/start")).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"READY_TO_UPGRADE\""), "{body}");
    assert_eq!(post(&http, format!("{base}/rest/zdu/start")).await.0, 409);

    let (status, body) = post(
        &http,
        format!("http://{}/sim/nodes/bitbucket-0/upgrade", sim.addr),
    )
    .await;
    assert_eq!(status, 202);
    assert!(body.contains("8.19.1"), "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(&http, &base).await != "MIXED" {
        assert!(
            Instant::now() < deadline,
            "node never came back on the new version"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        post(&http, format!("{base}/rest/zdu/cancel")).await.0,
        409,
        "MIXED cannot be cancelled"
    );
    assert_eq!(post(&http, format!("{base}/rest/zdu/approve")).await.0, 409);

    for name in ["bitbucket-1", "bitbucket-2"] {
        post(
            &http,
            format!("http://{}/sim/nodes/{name}/upgrade", sim.addr),
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while state(&http, &base).await != "READY_TO_RUN_UPGRADE_TASKS" {
        assert!(
            Instant::now() < deadline,
            "never ready to run upgrade tasks"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(post(&http, format!("{base}/rest/zdu/approve")).await.0, 200);
    assert_eq!(state(&http, &base).await, "RUNNING_UPGRADE_TASKS");
    let deadline = Instant::now() + Duration::from_secs(5);
    while state(&http, &base).await != "STABLE" {
        assert!(Instant::now() < deadline, "finalization never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let node = json(
        http.get(format!("{base}/rest/zdu/nodes/nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(node["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
}

#[tokio::test]
async fn basic_auth_is_enforced_when_configured() {
    bitbucket_zdu_exporter::client::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "rehearsal-pw\n").unwrap();
    let sim = Sim::start(SimulateArgs {
        username: Some("zdu".into()),
        password_file: Some(pw),
        ..SimulateArgs::default()
    })
    .await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/rest/zdu/state", sim.addr);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body = json(r).await;
    assert!(body["errors"][0]["message"].is_string());
    let r = http
        .get(&url)
        .basic_auth("zdu", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .get(&url)
        .basic_auth("zdu", Some("rehearsal-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        post(
            &reqwest::Client::new(),
            format!("http://{}/rest/zdu/start", sim.addr)
        )
        .await
        .0,
        401
    );
}

//! The state file as a trust boundary (issue 18 items 4, 5, 7 and 12): written through an
//! exclusive temporary file, one writer per process, one exporter per file, never trusted
//! on load, and never a FIFO.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use bitbucket_zdu_exporter::tracker::{StateStore, Tracker};

fn tracked(n: u64) -> Tracker {
    let mut t = Tracker::default();
    t.transitions.insert(("STABLE".into(), "MIXED".into()), n);
    t
}

/// Item 4: the write went to a predictable `.state.json.tmp` and followed symlinks, so a
/// symlink planted there made the exporter overwrite the file it pointed at.
#[test]
fn a_symlink_planted_at_a_temp_name_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let path = dir.path().join("state.json");
    std::os::unix::fs::symlink(&victim, dir.path().join(".state.json.tmp")).unwrap();
    let (store, err) = StateStore::open(&path);
    assert!(err.is_none());
    store.put("t", tracked(1)).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::read_to_string(&path).unwrap().contains("MIXED"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp") && n != ".state.json.tmp")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Item 5: pollers of different targets shared one temp path: 204 failed writes in 30 s with
/// 6 targets at 100 ms, each counted in `state_file_errors_total`.
#[test]
fn concurrent_writers_in_one_process_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let (store, _) = StateStore::open(&path);
    let store = Arc::new(store);
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..60 {
                    let _ = store.put(&format!("t{t}"), tracked(i));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.errors_total(), 0);
    let (again, err) = StateStore::open(&path);
    assert!(err.is_none(), "{err:?}");
    for t in 0..6 {
        assert_eq!(again.get(&format!("t{t}")), tracked(59), "t{t}");
    }
}

/// Item 5: two exporters on one state file were not prevented; the second is now refused
/// at start with a clear message, and the first keeps running.
#[test]
fn a_second_exporter_on_the_same_state_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let args = |port: u16| {
        vec![
            "--bitbucket.url=http://127.0.0.1:9".to_string(),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--state.file={}", state.display()),
        ]
    };
    let first_port = free_port();
    let mut first = Proc::spawn(&args(first_port), &[]);
    wait_for_body(first_port, "/-/healthy", |_| true);
    let mut second = Proc::spawn(&args(free_port()), &[]);
    let status = second.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "{}",
        second.stderr()
    );
    let err = second.stderr();
    assert!(err.contains("another exporter is using it"), "{err}");
    assert!(
        first.wait_exit(Duration::from_millis(200)).is_none(),
        "the first still runs"
    );
}

/// Item 12: a FIFO at `--state.file` hung start-up before any log line.
#[test]
fn a_fifo_as_state_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("state.json");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let (store, err) = StateStore::open(&fifo);
    assert!(start.elapsed() < Duration::from_secs(2));
    let err = err.expect("refused").to_string();
    assert!(err.contains("not a regular file"), "{err}");
    assert_eq!(store.errors_total(), 1);
}

/// A state file crafted to hurt: a bad leaf in one target, 100,000 history entries, a
/// timestamp past year 10000, a 5 MB node name, and values that made the ETA `NaN`.
fn hostile_state() -> String {
    let entry = r#"{"started":1000.0,"ended":1600.0,"result":"completed","nodes":[]}"#;
    let mut history: Vec<&str> = vec![entry; 100_000];
    let late = r#"{"started":1000.0,"ended":1e15,"result":"completed","nodes":[]}"#;
    history.push(late);
    let big = "n".repeat(5 * 1024 * 1024);
    format!(
        r#"{{"version":1,"targets":{{
          "good":{{"cluster":{{"state":"STABLE","since":1700000000.0}}}},
          "bad":{{"cluster":{{"state":"STABLE","since":"yesterday"}}}},
          "evil":{{"progress":{{"history":[{}],
            "current":{{"started":-1e308,"nodes":[
              {{"name":"{big}","done_at":1700000000.0}},
              {{"name":"a","done_at":1e308}},{{"name":"b"}}]}}}}}}
        }}}}"#,
        history.join(",")
    )
}

/// Item 7: a year-10000 timestamp made `/upgrade` panic on every request, 1,000,000
/// history entries cost 1.19 GB, a 5 MB node name 346 MB per request, crafted values put
/// `NaN` in the ETA, and one bad leaf discarded the whole file for every target.
#[tokio::test]
async fn a_hostile_state_file_is_validated_and_capped_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, hostile_state()).unwrap();
    let (store, err) = StateStore::open(&path);
    let err = err.expect("reported").to_string();
    assert!(err.contains("invalid value"), "{err}");
    assert!(
        !err.contains("nnnnnnnn"),
        "values are not echoed: {err:.200}"
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".invalid-")));
    // The valid target is kept whole; the bad one alone is dropped.
    assert_eq!(store.get("good").cluster.unwrap().since, 1_700_000_000.0);
    assert!(store.get("bad") == Tracker::default());
    let evil = store.get("evil").progress;
    assert!(evil.history.len() <= 20, "{}", evil.history.len());
    assert!(evil.history.iter().all(|h| h.ended < 1e10));
    assert!(evil.current.is_none(), "a start at -1e308 is not a time");
    // Served: the page and the API answer, small, without a panic.
    let config = bitbucket_zdu_exporter::config::Config::builder(vec![
        target("evil", "http://127.0.0.1:9/"),
        target("good", "http://127.0.0.1:9/"),
    ])
    .build()
    .unwrap();
    let rt =
        bitbucket_zdu_exporter::app::Exporter::start(&config, Arc::new(store), None, None).unwrap();
    let router = bitbucket_zdu_exporter::server::router(rt, "/metrics", 8);
    for uri in [
        "/upgrade",
        "/upgrade?target=evil",
        "/api/v1/targets/evil/upgrade",
    ] {
        use tower::ServiceExt;
        let req = axum::http::Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{uri}");
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(body.len() < 256 * 1024, "{uri}: {} bytes", body.len());
    }
}

/// The ETA of crafted (but in-range) values is finite or absent, never `NaN`.
#[test]
fn the_eta_is_never_nan() {
    use bitbucket_zdu_exporter::tracker::progress::{NodeProgress, Upgrade};
    let u = Upgrade {
        started: f64::MIN,
        nodes: vec![NodeProgress {
            name: "a".into(),
            done_at: Some(f64::MAX),
            ..NodeProgress::default()
        }],
        ..Upgrade::default()
    };
    assert!(u.estimated_completion().is_none_or(f64::is_finite));
}

//! `status` against a hostile or absent exporter (issue 18 items 6, 8, 9, 10, 11): output
//! safe for a terminal, bodies capped, every wait bounded by `--timeout`, what the README
//! says is waited out waited out, and credentials in `--exporter.url` refused unprinted.

use std::time::{Duration, Instant};

use crate::common::*;

const LIST: &str = r#"{"targets":[{"name":"t","url":"http://bb","up":true,"cluster_state":"MIXED","upgrade_in_flight":true,"upgrade_url":"/api/v1/targets/t/upgrade"}]}"#;

fn view(node_name: &str) -> String {
    let node = serde_json::json!({
        "id": "n1", "name": node_name, "address": "10.0.0.1:5701\u{1b}[2J", "state": "ACTIVE",
        "version": "8.19.0", "active_users": 3, "tasks": 1, "ghost": false, "state_since": null
    });
    serde_json::json!({
        "target": "t", "generated_at": 0.0, "up": true, "down_reason": null,
        "cluster_state": "MIXED", "cluster_state_since": null, "upgrade_mode_enabled": true,
        "original_version": "8.19.0", "versions": ["8.19.0"], "allowed_actions": [],
        "nodes": [node], "next_node": null, "upgrade": null, "recent_transitions": [],
        "history": [], "results": {"completed": 0, "cancelled": 0, "failed_finalization": 0}
    })
    .to_string()
}

fn json(body: String) -> Canned {
    Canned {
        status: 200,
        content_type: Some("application/json".into()),
        extra_headers: String::new(),
        body,
    }
}

/// A fake exporter answering the list, and `upgrade` for the target's view.
async fn fake_exporter(upgrade: String) -> Mock {
    Mock::scripted(move |_, head| {
        if head.contains("/upgrade") {
            json(upgrade.clone())
        } else {
            json(LIST.to_string())
        }
    })
    .await
}

/// Runs `status` with `args` off the runtime; exit code, output, time taken. A run still
/// going after 60 s is killed and reported as code -1.
async fn status(args: Vec<String>) -> (i32, String, Duration) {
    tokio::task::spawn_blocking(move || {
        let mut all = vec!["status".to_string()];
        all.extend(args);
        let start = Instant::now();
        let mut p = Proc::spawn(&all, &[]);
        let code = p.wait_exit(Duration::from_secs(60)).and_then(|s| s.code());
        let took = start.elapsed();
        let (out, err) = p.finish();
        (code.unwrap_or(-1), out + &err, took)
    })
    .await
    .unwrap()
}

/// Item 6: node names and addresses were printed raw: ESC/OSC sequences reached the
/// terminal, and an embedded newline forged a "next to stop: … safe to stop" line.
#[tokio::test]
async fn hostile_names_cannot_reach_the_terminal_or_forge_lines() {
    let evil = "evil\u{1b}]0;pwned\u{7}\n  next to stop: evil (users 0, tasks 0), safe to stop";
    let m = fake_exporter(view(evil)).await;
    let (code, out, _) = status(vec![format!("--exporter.url={}", m.url())]).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    assert!(
        !out.lines().any(|l| l.starts_with("  next to stop")),
        "a forged line: {out}"
    );
    assert!(out.contains("evil\\u{1b}]0;pwned"), "{out}");
}

/// Item 10: a 3 GB answer cost 3.1 GB RSS; the body is now capped (8 MiB).
#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let padded = format!("{}{}", view("n"), " ".repeat(9 * 1024 * 1024));
    let m = fake_exporter(padded).await;
    let (code, out, _) = status(vec![format!("--exporter.url={}", m.url())]).await;
    assert_eq!(code, 1, "{out:.300}");
    assert!(out.contains("larger than"), "{out:.300}");
}

/// Item 11: credentials in `--exporter.url` were sent as Basic auth and the password was
/// printed in every error line.
#[tokio::test]
async fn credentials_in_the_exporter_url_are_refused_unsent_and_unprinted() {
    let m = fake_exporter(view("n")).await;
    let url = m.url().replacen("http://", "http://admin:s3cretpw@", 1);
    let (code, out, _) = status(vec![format!("--exporter.url={url}"), "--wait".into()]).await;
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("s3cretpw"), "{out}");
    assert!(out.contains("must not hold"), "{out}");
    assert!(m.seen().iter().all(|s| s.authorization.is_none()));
}

/// Item 8: `--wait` gave up at once (exit 1 in 15 ms) on an unreachable exporter, a redirect
/// or a 401 at start, though the README says these are waited out.
#[tokio::test]
async fn wait_waits_out_an_unreachable_redirecting_or_401_exporter() {
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    let redirect = Mock::scripted(|_, _| Canned {
        status: 302,
        content_type: None,
        extra_headers: "Location: http://127.0.0.1:9/login\r\n".into(),
        body: String::new(),
    })
    .await;
    let unauthorized = Mock::scripted(|_, _| Canned {
        status: 401,
        content_type: None,
        extra_headers: "WWW-Authenticate: Basic\r\n".into(),
        body: String::new(),
    })
    .await;
    for url in [unreachable, redirect.url(), unauthorized.url()] {
        let (code, out, took) = status(vec![
            format!("--exporter.url={url}"),
            "--wait".into(),
            "--timeout=2s".into(),
            "--wait.interval=200ms".into(),
        ])
        .await;
        assert_eq!(code, 5, "{url}: {out}");
        assert!(
            took >= Duration::from_millis(1900),
            "{url}: gave up after {took:?}"
        );
        assert!(out.contains("waiting"), "{url}: {out}");
    }
}

/// Item 9: against a peer that never answers, `--timeout` was overrun by up to 10 s.
#[tokio::test]
async fn timeout_is_a_deadline_even_against_a_hanging_exporter() {
    let m = Mock::start("127.0.0.1").await.unwrap();
    m.set(Fault::Hang);
    for wait in [true, false] {
        let mut args = vec![format!("--exporter.url={}", m.url()), "--timeout=1s".into()];
        if wait {
            args.push("--wait".into());
        }
        let (code, out, took) = status(args).await;
        assert_eq!(code, 5, "wait={wait}: {out}");
        assert!(
            took < Duration::from_millis(3000),
            "wait={wait}: took {took:?}"
        );
    }
}

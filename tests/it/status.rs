//! `bitbucket-zdu-exporter status` against the simulator: from a running exporter
//! (`--exporter.url`) and straight from Bitbucket (`--bitbucket.url`); `--wait` exits 0 when
//! the rolling upgrade is back to STABLE on one version, 3 on UPGRADE_TASKS_FAILED, 4 on a
//! node in ERROR, 5 on `--timeout`, and 1 when the status cannot be read.

use std::time::{Duration, Instant};

use crate::common::*;

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// The simulator's `/rest/zdu/cluster` answer.
fn cluster(sim_port: u16) -> serde_json::Value {
    let r = http_blocking("GET", sim_port, "/rest/zdu/cluster").expect("simulator answers");
    serde_json::from_str(&r.body).unwrap()
}

/// Waits (up to 60 s) until the simulated cluster satisfies `want`.
fn wait_cluster(sim_port: u16, what: &str, want: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !want(&cluster(sim_port)) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mode_on(c: &serde_json::Value) -> bool {
    c["upgradeModeEnabled"] == true
}

/// An exporter polling `sim_url` every second; its base URL.
fn exporter(sim_url: &str) -> (Proc, String) {
    let port = free_port();
    let p = Proc::spawn(
        &[
            "--bitbucket.url",
            sim_url,
            "--poll.interval=1s",
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
        ],
        &[],
    );
    wait_for_body(port, "/api/v1/targets", |b| b.contains("\"up\":true"));
    (p, format!("http://127.0.0.1:{port}"))
}

/// Waits until the exporter at `url` has seen the upgrade start (it polls every second).
fn wait_in_flight(url: &str) {
    wait_for_body(port_of(url), "/api/v1/targets", |b| {
        b.contains("\"upgrade_in_flight\":true")
    });
}

/// Runs `status` with `args`; exit code, stdout + stderr, and how long it took.
fn status(args: &[&str]) -> (i32, String, Duration) {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    let start = Instant::now();
    let out = run_bin(&all, &[]);
    let took = start.elapsed();
    (out.status.code().expect("exited"), output_text(&out), took)
}

#[test]
fn wait_returns_0_once_the_upgrade_is_back_to_stable_on_one_version() {
    let (_sim, sim_url) = spawn_simulator(&[], &["--scenario", "rolling-upgrade", "--speed", "20"]);
    let sim_port = port_of(&sim_url);
    let (_exp, exp_url) = exporter(&sim_url);
    wait_cluster(sim_port, "MIXED", |c| c["state"] == "MIXED");
    wait_in_flight(&exp_url);
    let (code, out, _) = status(&[
        "--exporter.url",
        &exp_url,
        "--wait",
        "--timeout=90s",
        "--wait.interval=300ms",
    ]);
    assert_eq!(code, 0, "{out}");
    // plain progress lines (not a terminal), then the final report
    assert!(!out.contains('\r') && !out.contains("\x1b["), "{out:?}");
    assert!(out.contains("nodes upgraded"), "progress lines: {out}");
    let last = out
        .lines()
        .rfind(|l| l.starts_with("default: "))
        .expect("a summary");
    assert!(last.starts_with("default: STABLE"), "{out}");
    assert!(out.contains("bitbucket-2"), "the nodes are listed: {out}");
    // the cluster really is on one new version
    let c = cluster(sim_port);
    let versions: std::collections::BTreeSet<String> = c["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["version"].as_str().map(str::to_string))
        .collect();
    assert!(!versions.contains("8.19.0"), "{versions:?}");
}

#[test]
fn without_wait_it_prints_state_nodes_and_next_node_straight_from_bitbucket() {
    let (_sim, sim_url) = spawn_simulator(&[], &["--scenario", "stuck-mixed", "--speed", "20"]);
    wait_cluster(port_of(&sim_url), "MIXED", |c| {
        c["state"] == "MIXED"
            && c["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["state"] == "ACTIVE")
    });
    let (code, out, _) = status(&["--bitbucket.url", &sim_url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("default: MIXED"), "{out}");
    assert!(out.contains("next to stop: bitbucket-"), "{out}");
    assert_eq!(out.matches("  bitbucket-").count(), 3, "{out}");
}

#[test]
fn wait_fails_fast_with_3_on_upgrade_tasks_failed() {
    let (_sim, sim_url) = spawn_simulator(&[], &["--scenario", "tasks-failed", "--speed", "20"]);
    wait_cluster(port_of(&sim_url), "upgrade mode", mode_on);
    let (code, out, _) = status(&[
        "--bitbucket.url",
        &sim_url,
        "--wait",
        "--timeout=90s",
        "--wait.interval=300ms",
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("UPGRADE_TASKS_FAILED"), "{out}");
}

#[test]
fn wait_fails_fast_with_4_on_a_node_in_error() {
    let (_sim, sim_url) = spawn_simulator(&[], &["--scenario", "node-error", "--speed", "20"]);
    let (_exp, exp_url) = exporter(&sim_url);
    wait_cluster(port_of(&sim_url), "upgrade mode", mode_on);
    wait_in_flight(&exp_url);
    let (code, out, _) = status(&[
        "--exporter.url",
        &exp_url,
        "--target",
        "default",
        "--wait",
        "--timeout=90s",
        "--wait.interval=300ms",
    ]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("ERROR"), "{out}");
}

#[test]
fn wait_times_out_with_5() {
    let (_sim, sim_url) = spawn_simulator(&[], &["--scenario", "stuck-mixed", "--speed", "20"]);
    wait_cluster(port_of(&sim_url), "MIXED", |c| c["state"] == "MIXED");
    let (code, out, took) = status(&[
        "--bitbucket.url",
        &sim_url,
        "--wait",
        "--timeout=2s",
        "--wait.interval=500ms",
    ]);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("timed out after 2s"), "{out}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[test]
fn unreadable_status_exits_1() {
    let port = free_port();
    let (code, out, _) = status(&["--exporter.url", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot read"), "{out}");
    let (_sim, sim_url) = spawn_simulator(&[], &["--scenario", "stable"]);
    let (code, out, _) = status(&["--bitbucket.url", &sim_url, "--target", "nope"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unknown target \"nope\""), "{out}");
}

/// On a terminal the progress is one line rewritten in place; the final report follows on
/// a fresh line.
#[tokio::test]
async fn on_a_terminal_progress_is_rewritten_in_place() {
    use bitbucket_zdu_exporter::cli::status::{run, Outcome};
    use bitbucket_zdu_exporter::cli::{Cli, Command};
    let sim = Sim::stable(2).await;
    sim.sim.with_cluster(|c| c.start().unwrap());
    let url = sim.url();
    let cli = Cli::try_parse_checked_from([
        "x",
        "status",
        "--bitbucket.url",
        &url,
        "--wait",
        "--timeout=1s",
        "--wait.interval=200ms",
    ])
    .unwrap();
    let Some(Command::Status(args)) = cli.command else {
        panic!("not status");
    };
    let mut out = Vec::new();
    let outcome = run(&args, &mut out, true).await.unwrap();
    assert_eq!(outcome, Outcome::TimedOut);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.matches("\r\x1b[2Kdefault: READY_TO_UPGRADE").count() >= 2,
        "{text:?}"
    );
    assert!(
        text.ends_with("waiting for STABLE on one version\n"),
        "{text:?}"
    );
    assert!(
        !text.contains("elapsed"),
        "the start is unknown here: {text:?}"
    );
}

/// `status --wait` and `/upgrade` for a Confluence and a Jira target: the simulator speaks
/// the product, the exporter and `status` are told it with `--bitbucket.product`.
#[test]
fn wait_and_the_upgrade_page_for_confluence_and_jira() {
    for (product, title) in [("confluence", "Confluence"), ("jira", "Jira")] {
        let (_sim, sim_url) = spawn_simulator(
            &[],
            &[
                "--scenario",
                "rolling-upgrade",
                "--speed",
                "20",
                "--product",
                product,
            ],
        );
        let port = free_port();
        let _exp = Proc::spawn(
            &[
                "--bitbucket.url",
                &sim_url,
                "--bitbucket.product",
                product,
                "--poll.interval=1s",
                "--web.listen-address",
                &format!("127.0.0.1:{port}"),
            ],
            &[],
        );
        wait_for_body(port, "/api/v1/targets", |b| b.contains("\"up\":true"));
        let exp_url = format!("http://127.0.0.1:{port}");
        wait_in_flight(&exp_url);
        let page = http_blocking("GET", port, "/upgrade").expect("the page");
        assert!(
            page.body.contains(&format!("data-product=\"{product}\"")),
            "{}",
            page.body
        );
        // One timeline lane per node taking part; Jira's stale OFFLINE entry is listed among
        // the node entries but draws no lane.
        assert!(
            page.body
                .contains(&format!("class=\"lane\" data-node=\"{product}-1\"")),
            "{}",
            page.body
        );
        if product == "jira" {
            assert!(
                page.body.contains("data-node=\"jira-stale\""),
                "{}",
                page.body
            );
            assert!(
                !page
                    .body
                    .contains("class=\"lane\" data-node=\"jira-stale\""),
                "{}",
                page.body
            );
        }
        let (code, out, _) = status(&["--bitbucket.url", &sim_url, "--bitbucket.product", product]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(&format!("default ({title}): ")), "{out}");
        let (code, out, _) = status(&[
            "--exporter.url",
            &exp_url,
            "--wait",
            "--timeout=90s",
            "--wait.interval=300ms",
        ]);
        assert_eq!(code, 0, "{product}: {out}");
        let last = out
            .lines()
            .rfind(|l| l.starts_with("default ("))
            .expect("a summary");
        assert!(
            last.starts_with(&format!("default ({title}): STABLE")),
            "{out}"
        );
    }
}

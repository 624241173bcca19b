//! What the landing page (`/`) says about this exporter: its endpoints, the last reload
//! error, one row per target and a node table per target with fresh cluster data. The
//! page itself (HTML, escaping) is [`crate::web::landing`]; this file only fills it.

use std::time::Instant;

use crate::app::Runtime;
use crate::poller::TargetShared;
use crate::web::landing::{Cell, Inline, LandingPage, Table};

fn fmt_ts(ts: Option<f64>) -> String {
    match ts {
        Some(t) if t > 0.0 && t < 253_402_300_800.0 => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t),
        )
        .to_string(),
        _ => "never".into(),
    }
}

/// One row of the targets table: name, URL, auth, status, detail, last successful poll.
fn target_row(t: &TargetShared, now: Instant) -> Vec<Cell> {
    let cfg = t.config.load();
    let snap = t.snapshot.load();
    let cluster_ep = snap.endpoints.get(crate::poller::Endpoint::Cluster);
    let (status, detail) = match (snap.fresh_cluster(now), snap.first_poll_done) {
        (_, false) => ("pending".to_string(), "first poll not finished".to_string()),
        (Some(view), _) => (
            "up".to_string(),
            format!(
                "cluster {} · {} node entries · upgrade mode {}",
                view.cluster
                    .state
                    .as_ref()
                    .map(|s| s.as_str())
                    .unwrap_or("(none)"),
                view.cluster.nodes.len(),
                match view.cluster.upgrade_mode_enabled {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "unknown",
                }
            ),
        ),
        (None, true) => (
            format!("down ({})", snap.down_reason(now).unwrap_or("unknown")),
            cluster_ep
                .last_error
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "data older than the max age".into()),
        ),
    };
    let class = if status == "up" { "up" } else { "down" };
    vec![
        Cell::new(Inline::link(
            format!("/probe?target={}", cfg.name()),
            cfg.name().to_string(),
        )),
        Cell::text(cfg.display_url()),
        Cell::text(cfg.auth().describe()),
        Cell::text(status).with_class(class),
        Cell::text(detail),
        Cell::text(fmt_ts(cluster_ep.last_success_timestamp)),
    ]
}

/// The node table of a target with fresh cluster data.
fn node_table(t: &TargetShared, now: Instant) -> Option<Table> {
    let snap = t.snapshot.load();
    let view = snap.fresh_cluster(now)?;
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let count = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "–".into());
    let rows = view
        .cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let since = view.node_since.get(i).copied().unwrap_or(wall);
            let ghost = if view.figures.ghosts.contains(&i) {
                " (ghost)"
            } else {
                ""
            };
            let in_state = std::time::Duration::from_secs((wall - since).max(0.0) as u64);
            vec![
                Cell::text(format!("{}{ghost}", n.name.as_deref().unwrap_or(""))),
                Cell::text(n.address()),
                Cell::text(n.state.as_ref().map(|s| s.as_str()).unwrap_or("(none)")),
                Cell::text(n.version.as_deref().unwrap_or("–")),
                Cell::text(count(n.active_user_count)),
                Cell::text(count(n.tasks_total)),
                Cell::text(crate::duration::format_duration(in_state)),
            ]
        })
        .collect();
    Some(Table {
        heading: format!("Nodes of {}", t.config.load().name()),
        columns: columns(&[
            "node",
            "address",
            "state",
            "version",
            "users",
            "tasks",
            "in state for",
        ]),
        rows,
    })
}

fn columns(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// What the landing page shows: the endpoints, the last reload error, the targets and the
/// nodes of every target with fresh cluster data.
pub fn page(runtime: &Runtime, telemetry_path: &str) -> LandingPage {
    let now = Instant::now();
    let targets = runtime.targets.load();
    let first = targets
        .first()
        .map(|t| t.config.load().name().to_string())
        .unwrap_or_default();
    let mut tables = vec![Table {
        heading: "Targets".into(),
        columns: columns(&[
            "name",
            "Bitbucket URL",
            "auth",
            "status",
            "detail",
            "last successful poll",
        ]),
        rows: targets.iter().map(|t| target_row(t, now)).collect(),
    }];
    tables.extend(targets.iter().filter_map(|t| node_table(t, now)));
    let path = telemetry_path;
    LandingPage {
        title: "Bitbucket ZDU Exporter".into(),
        description: format!(
            "Prometheus exporter for Bitbucket Data Center rolling upgrades. Version {} (revision {}, rustc {}).",
            crate::build::VERSION,
            crate::build::REVISION,
            crate::build::RUSTC
        ),
        links: vec![
            vec![
                Inline::link(path, path),
                Inline::text(": metrics (with one target, that target's too)"),
            ],
            vec![
                Inline::link(format!("/probe?target={first}"), "/probe?target=NAME"),
                Inline::text(": one target's metrics"),
            ],
            vec![
                Inline::link("/upgrade", "/upgrade"),
                Inline::text(": the live upgrade page (progress, timeline, next node, history); JSON at "),
                Inline::link("/api/v1/targets", "/api/v1/targets"),
            ],
            vec![
                Inline::link("/-/healthy", "/-/healthy"),
                Inline::text(", "),
                Inline::link("/-/ready", "/-/ready"),
                Inline::text("; POST /-/reload re-reads the configuration"),
            ],
        ],
        notice: runtime
            .reload_status
            .last_error()
            .map(|e| format!("Last reload failed: {e}")),
        tables,
    }
}

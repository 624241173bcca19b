//! What the landing page (`/`) says about this exporter: its endpoints, the last reload
//! error, one row per target and a node table per target that is up, all from the same
//! projection as the API ([`crate::api::view`]). The page itself (HTML, escaping) is
//! [`crate::pages::template`]; this file only fills it.

use std::sync::Arc;

use crate::api::{self, TargetView};
use crate::app::Exporter;
use crate::pages::template::{Cell, Inline, LandingPage, Table};
use crate::snapshot::TargetShared;
use crate::sys::duration::format_timestamp;

fn fmt_ts(ts: Option<f64>) -> String {
    ts.and_then(format_timestamp)
        .unwrap_or_else(|| "never".into())
}

/// One row of the targets table: name, URL, auth, status, detail, last successful poll.
fn target_row(t: &TargetShared, v: &TargetView) -> Vec<Cell> {
    let cfg = t.config.load();
    let (status, detail) = match v.down_reason.as_deref() {
        None => (
            "up".to_string(),
            format!(
                "cluster {} · {} node entries · upgrade mode {}",
                v.cluster_state.as_deref().unwrap_or("(none)"),
                v.nodes.len(),
                match v.upgrade_mode_enabled {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "unknown",
                }
            ),
        ),
        Some("pending") => ("pending".to_string(), "first poll not finished".to_string()),
        Some(reason) => (
            format!("down ({reason})"),
            v.last_error
                .clone()
                .unwrap_or_else(|| "data older than the max age".into()),
        ),
    };
    let class = if v.up { "up" } else { "down" };
    vec![
        Cell::new(Inline::link(
            format!("/probe?target={}", cfg.name()),
            cfg.name().to_string(),
        )),
        Cell::text(cfg.product().title()),
        Cell::text(cfg.display_url()),
        Cell::text(cfg.auth().describe()),
        Cell::text(status).with_class(class),
        Cell::text(detail),
        Cell::text(fmt_ts(v.last_success_at)),
    ]
}

/// The node table of a target that is up.
fn node_table(v: &TargetView) -> Option<Table> {
    if !v.up {
        return None;
    }
    let count = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "–".into());
    let rows = v
        .nodes
        .iter()
        .map(|n| {
            let since = n.state_since.unwrap_or(v.generated_at);
            let marks = n.marks();
            let in_state = std::time::Duration::from_secs((v.generated_at - since).max(0.0) as u64);
            vec![
                Cell::text(format!("{}{marks}", n.name.as_deref().unwrap_or(""))),
                Cell::text(n.address.clone()),
                Cell::text(n.state.as_deref().unwrap_or("(none)")),
                Cell::text(n.version.as_deref().unwrap_or("–")),
                Cell::text(count(n.active_users)),
                Cell::text(count(n.tasks)),
                Cell::text(crate::sys::duration::format_duration(in_state)),
            ]
        })
        .collect();
    Some(Table {
        heading: format!("Nodes of {}", v.target),
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

/// The tables of the page: one row per target, then the nodes of every target that is up.
pub fn tables(targets: &[Arc<TargetShared>]) -> Vec<Table> {
    let views: Vec<TargetView> = targets.iter().map(|t| api::view(t)).collect();
    let mut tables = vec![Table {
        heading: "Targets".into(),
        columns: columns(&[
            "name",
            "product",
            "URL",
            "auth",
            "status",
            "detail",
            "last successful poll",
        ]),
        rows: targets
            .iter()
            .zip(&views)
            .map(|(t, v)| target_row(t, v))
            .collect(),
    }];
    tables.extend(views.iter().filter_map(node_table));
    tables
}

/// What the landing page shows: the endpoints, the last reload error, the targets and the
/// nodes of every target with fresh cluster data.
pub fn page(runtime: &Exporter, telemetry_path: &str) -> LandingPage {
    let targets = runtime.targets.load();
    let first = targets
        .first()
        .map(|t| t.config.load().name().to_string())
        .unwrap_or_default();
    let tables = tables(&targets);
    let path = telemetry_path;
    LandingPage {
        title: "Bitbucket ZDU Exporter".into(),
        description: format!(
            "Prometheus exporter for Bitbucket Data Center rolling upgrades. Version {} (revision {}, rustc {}).",
            crate::sys::version::VERSION,
            crate::sys::version::REVISION,
            crate::sys::version::RUSTC
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

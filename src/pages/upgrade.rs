//! The live upgrade page at `/upgrade`: per target the state and the action it allows, a
//! progress bar (N of M nodes on the new version), elapsed time and ETA, a per-node timeline
//! as inline SVG since the upgrade started (one lane per node, coloured by state), the next
//! node to stop, the recent transitions and the history of finished upgrades.
//!
//! Server-rendered from the same [`TargetView`] as the JSON API, with no external assets;
//! it reads fine without JavaScript (a `<noscript>` meta refresh reloads it) and with
//! JavaScript a small inline script refetches the page and swaps its `<main>` in place.
//! Every value is escaped with [`esc`].

use std::fmt::Write as _;

use crate::api::{self, TargetView};
use crate::app::Exporter;
use crate::pages::template::esc;
use crate::sys::duration::format_duration;

/// Seconds between two refreshes.
pub const REFRESH_SECONDS: u32 = 5;

/// The actions a rolling upgrade knows, with what they do, for the "allows" list.
const ACTIONS: [(&str, &str); 3] = [
    ("cancel", "cancel the upgrade"),
    ("approve", "approve: run the upgrade tasks"),
    ("retry", "retry the failed upgrade tasks"),
];

fn fmt_ts(t: f64) -> String {
    // RFC 3339 has four-digit years: humantime panics from year 10000 on.
    if t <= 0.0 || !t.is_finite() || t >= 253_402_300_800.0 {
        return "–".into();
    }
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t))
        .to_string()
}

fn fmt_secs(s: f64) -> String {
    if !s.is_finite() {
        return "–".into();
    }
    format_duration(std::time::Duration::from_secs(s.max(0.0) as u64))
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "–".into())
}

/// The fill colour of a node state in the timeline.
pub fn state_colour(state: &str) -> &'static str {
    match state {
        "ACTIVE" => "#2da44e",
        "DRAINING" => "#bf8700",
        "TERMINATING" => "#e16f24",
        "OFFLINE" => "#8c959f",
        "STARTING" => "#0969da",
        "ERROR" => "#cf222e",
        _ => "#6e7781",
    }
}

/// The states of the timeline's legend.
const LEGEND_STATES: [&str; 6] = [
    "ACTIVE",
    "DRAINING",
    "TERMINATING",
    "OFFLINE",
    "STARTING",
    "ERROR",
];

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:72em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
.state{font-weight:bold}.allowed{color:#1a7f37}.not-allowed{color:#6e7781}\
.safe{color:#1a7f37;font-weight:bold}.down{color:#cf222e}\
progress{width:30em;height:1.2em}.legend span{display:inline-block;padding:0 .5em;margin-right:.3em;color:#fff}\
section.target{border-top:2px solid #ddd;margin-top:1.5em}";

const SCRIPT: &str = "(function(){function r(){fetch(location.href,{headers:{Accept:'text/html'}})\
.then(function(x){return x.ok?x.text():null}).then(function(t){if(!t)return;\
var m=new DOMParser().parseFromString(t,'text/html').querySelector('main');\
var old=document.querySelector('main');if(m&&old){old.replaceWith(m);\
document.body.setAttribute('data-refreshed',String(Date.now()));}}).catch(function(){});}\
setInterval(r,REFRESH_MS);})();";

/// The whole page for every target.
pub fn render(runtime: &Exporter) -> String {
    let targets = runtime.targets.load();
    let views: Vec<TargetView> = targets.iter().map(|t| api::view(t)).collect();
    render_views(&views)
}

/// The page for `views` (one section per target).
pub fn render_views(views: &[TargetView]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Bitbucket ZDU upgrade</title>\
         <noscript><meta http-equiv=\"refresh\" content=\"{r}\"></noscript>\
         <link rel=\"stylesheet\" href=\"/-/static/upgrade.css\"></head><body>\n\
         <h1>Rolling upgrade</h1>\n<p><a href=\"/\">exporter home</a> · \
         <a href=\"/api/v1/targets\">JSON API</a> · refreshed every {r} s</p>\n<main>\n",
        r = REFRESH_SECONDS
    );
    if views.is_empty() {
        out.push_str("<p>No targets configured.</p>\n");
    }
    for v in views {
        section(&mut out, v);
    }
    out.push_str("</main>\n<script src=\"/-/static/upgrade.js\"></script>\n</body></html>\n");
    out
}

/// The page's script, served as `/-/static/upgrade.js` (no inline script: the page works
/// under `default-src 'self'`).
pub fn script() -> String {
    SCRIPT.replace("REFRESH_MS", &(REFRESH_SECONDS * 1000).to_string())
}

/// The page's style, served as `/-/static/upgrade.css`: the page's base style and one
/// legend class per state colour (no inline style attribute either).
pub fn stylesheet() -> String {
    let mut css = STYLE.to_string();
    for s in LEGEND_STATES {
        let _ = write!(css, ".legend .s-{s}{{background:{}}}", state_colour(s));
    }
    css
}

fn section(out: &mut String, v: &TargetView) {
    let name = esc(&v.target);
    let _ = writeln!(
        out,
        "<section class=\"target\" id=\"target-{name}\" data-target=\"{name}\" data-product=\"{}\">\n<h2>{name} <span class=\"product\">{}</span></h2>",
        v.product,
        v.product.title()
    );
    if !v.up {
        let _ = writeln!(
            out,
            "<p class=\"down\">Down ({}): no fresh cluster data.</p>",
            esc(v.down_reason.as_deref().unwrap_or("unknown"))
        );
    } else {
        let state = esc(v.cluster_state.as_deref().unwrap_or("(none)"));
        let _ = writeln!(
            out,
            "<p>Cluster state <span class=\"state\" data-state=\"{state}\">{state}</span>{} · versions {}</p>",
            v.cluster_state_since
                .map(|s| format!(" since {}", esc(&fmt_ts(s))))
                .unwrap_or_default(),
            esc(&v.versions.join(", "))
        );
        out.push_str("<ul class=\"actions\">");
        for (action, what) in ACTIONS {
            let allowed = v.allowed_actions.iter().any(|a| a == action);
            let _ = write!(
                out,
                "<li data-action=\"{action}\" class=\"{}\">{what}: {}</li>",
                if allowed { "allowed" } else { "not-allowed" },
                if allowed {
                    "possible now"
                } else {
                    "not possible in this state"
                }
            );
        }
        out.push_str("</ul>\n");
        match &v.upgrade {
            Some(u) => in_flight(out, v, u),
            None => out.push_str("<p class=\"no-upgrade\">No upgrade in flight.</p>\n"),
        }
        nodes_table(out, v);
    }
    transitions(out, v);
    history(out, v);
    out.push_str("</section>\n");
}

fn in_flight(out: &mut String, v: &TargetView, u: &api::InFlightView) {
    let _ = writeln!(
        out,
        "<p class=\"progress\" data-done=\"{d}\" data-total=\"{t}\">\
         <progress max=\"{t}\" value=\"{d}\">{d} of {t}</progress> \
         <strong>{d} of {t}</strong> nodes on the new version</p>",
        d = u.nodes_done,
        t = u.nodes_total
    );
    let _ = writeln!(
        out,
        "<p>Started {} from {} · elapsed <span class=\"elapsed\">{}</span> · ETA <span class=\"eta\">{}</span></p>",
        esc(&fmt_ts(u.started_at)),
        esc(&opt(&u.from_version)),
        esc(&u.elapsed_seconds.map_or_else(|| "–".into(), fmt_secs)),
        match (u.estimated_completion_at, u.remaining_seconds) {
            (Some(at), Some(left)) => esc(&format!("{} (in {})", fmt_ts(at), fmt_secs(left))),
            _ => "not yet known (no node done)".into(),
        }
    );
    match &v.next_node {
        Some(n) => {
            let label = n.name.clone().unwrap_or_else(|| n.id.clone());
            let _ = writeln!(
                out,
                "<p class=\"next-node\" data-node=\"{l}\" data-safe=\"{s}\">Next node to stop: \
                 <strong>{l}</strong> ({a}) · users {u} · tasks {k}{safe}</p>",
                l = esc(&label),
                a = esc(&n.address),
                s = n.safe,
                u = esc(&opt(&n.active_users)),
                k = esc(&opt(&n.tasks)),
                safe = if n.safe {
                    " · <span class=\"safe\">safe to stop</span>"
                } else {
                    // The next node is ACTIVE: nobody has started draining it yet.
                    " · still serving: drain it, then stop it at 0 users and 0 tasks"
                }
            );
        }
        None => out.push_str(
            "<p class=\"next-node\">Next node to stop: none (every live node is on the new version or busy changing)</p>\n",
        ),
    }
    timeline(out, v.generated_at, u);
}

/// The per-node timeline: one lane per node, a rectangle per state since the upgrade began.
fn timeline(out: &mut String, now: f64, u: &api::InFlightView) {
    const LEFT: f64 = 150.0;
    const WIDTH: f64 = 720.0;
    const LANE: f64 = 26.0;
    let start = u.started_at;
    let span = (now - start).max(1.0);
    let x = |t: f64| LEFT + ((t - start).clamp(0.0, span) / span) * WIDTH;
    let height = 30.0 + LANE * u.nodes.len() as f64;
    let _ = writeln!(
        out,
        "<svg class=\"timeline\" width=\"{w}\" height=\"{height}\" \
         viewBox=\"0 0 {w} {height}\" role=\"img\" aria-label=\"per-node timeline since the upgrade started\">",
        w = LEFT + WIDTH + 10.0
    );
    for (i, n) in u.nodes.iter().enumerate() {
        let y = 4.0 + LANE * i as f64;
        let name = esc(&n.name);
        let _ = write!(
            out,
            "<g class=\"lane\" data-node=\"{name}\"><text x=\"0\" y=\"{}\" font-size=\"13\">{name}</text>",
            y + 15.0
        );
        for (j, p) in n.timeline.iter().enumerate() {
            let end = n.timeline.get(j + 1).map(|q| q.since).unwrap_or(now);
            let (x0, x1) = (x(p.since), x(end));
            let state = esc(&p.state);
            let _ = write!(
                out,
                "<rect class=\"phase\" data-state=\"{state}\" x=\"{x0:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"20\" fill=\"{}\">\
                 <title>{name} {state} from {} for {}</title></rect>",
                (x1 - x0).max(1.0),
                state_colour(&p.state),
                esc(&fmt_ts(p.since)),
                esc(&fmt_secs(end - p.since))
            );
        }
        out.push_str("</g>");
    }
    let axis = 4.0 + LANE * u.nodes.len() as f64 + 14.0;
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"{axis}\" font-size=\"11\">{}</text>\
         <text x=\"{}\" y=\"{axis}\" font-size=\"11\" text-anchor=\"end\">now (+{})</text></svg>",
        esc(&fmt_ts(start)),
        LEFT + WIDTH,
        esc(&fmt_secs(span))
    );
    out.push_str("<p class=\"legend\">");
    for s in LEGEND_STATES {
        let _ = write!(out, "<span class=\"s-{s}\">{s}</span>");
    }
    out.push_str("</p>\n");
}

fn nodes_table(out: &mut String, v: &TargetView) {
    out.push_str(
        "<table class=\"nodes\"><caption>Node entries</caption><tr><th>node</th><th>address</th>\
         <th>state</th><th>version</th><th>users</th><th>tasks</th><th>in state since</th></tr>\n",
    );
    for n in &v.nodes {
        let _ = writeln!(
            out,
            "<tr class=\"node\" data-node=\"{name}\"><td>{name}{marks}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&n.address),
            esc(&opt(&n.state)),
            esc(&opt(&n.version)),
            esc(&opt(&n.active_users)),
            esc(&opt(&n.tasks)),
            esc(&n.state_since.map(fmt_ts).unwrap_or_else(|| "–".into())),
            name = esc(n.name.as_deref().unwrap_or(&n.id)),
            marks = esc(&n.marks()),
        );
    }
    out.push_str("</table>\n");
}

fn transitions(out: &mut String, v: &TargetView) {
    if v.recent_transitions.is_empty() {
        return;
    }
    out.push_str(
        "<table class=\"transitions\"><caption>Recent transitions</caption><tr><th>at</th><th>from</th><th>to</th></tr>\n",
    );
    for t in &v.recent_transitions {
        let _ = writeln!(
            out,
            "<tr class=\"transition\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&fmt_ts(t.at)),
            esc(&t.from),
            esc(&t.to)
        );
    }
    out.push_str("</table>\n");
}

fn history(out: &mut String, v: &TargetView) {
    let _ = writeln!(
        out,
        "<table class=\"history\"><caption>Upgrade history ({} completed, {} cancelled, {} failed finalization)</caption>\
         <tr><th>started</th><th>ended</th><th>duration</th><th>result</th><th>from</th><th>to</th><th>per node</th></tr>",
        v.results.completed, v.results.cancelled, v.results.failed_finalization
    );
    if v.history.is_empty() {
        out.push_str("<tr><td colspan=\"7\">No finished upgrade seen yet.</td></tr>\n");
    }
    for h in &v.history {
        let per_node: Vec<String> = h
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{} {}",
                    n.name,
                    n.duration_seconds
                        .map(fmt_secs)
                        .unwrap_or_else(|| "–".into())
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<tr class=\"history-row\" data-result=\"{r}\"><td>{}</td><td>{}</td><td>{}</td><td>{r}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&fmt_ts(h.started_at)),
            esc(&fmt_ts(h.ended_at)),
            esc(&fmt_secs(h.duration_seconds)),
            esc(&opt(&h.from_version)),
            esc(&opt(&h.to_version)),
            esc(&per_node.join(", ")),
            r = esc(&h.result),
        );
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> TargetView {
        serde_json::from_value(serde_json::json!({
            "target": "t<x>", "generated_at": 1100.0, "up": true, "down_reason": null,
            "cluster_state": "MIXED", "cluster_state_since": 1050.0, "upgrade_mode_enabled": true,
            "original_version": "1", "versions": ["1", "2"], "allowed_actions": [],
            "nodes": [{"id": "a", "name": "<b>n0</b>", "address": "1:1", "state": "ACTIVE",
                       "version": "2", "active_users": 1, "tasks": 0, "ghost": false, "state_since": 1060.0}],
            "next_node": {"id": "b", "name": "n1\"", "address": "2:1", "active_users": 0, "tasks": 0, "safe": true},
            "upgrade": {"started_at": 1000.0, "elapsed_seconds": 100.0, "from_version": "1",
                        "nodes_total": 2, "nodes_done": 1, "estimated_completion_at": 1200.0,
                        "remaining_seconds": 100.0,
                        "nodes": [{"name": "<b>n0</b>", "state": "ACTIVE", "version": "2", "done": true,
                                   "drain_at": 1010.0, "terminate_at": null, "offline_at": null, "start_at": null,
                                   "done_at": 1050.0, "active_at": 1060.0, "duration_seconds": 50.0,
                                   "timeline": [{"state": "ACTIVE", "since": 1000.0}, {"state": "DRAINING", "since": 1010.0},
                                                {"state": "<script>", "since": 1050.0}]},
                                  {"name": "n1", "state": "ACTIVE", "version": "1", "done": false,
                                   "drain_at": null, "terminate_at": null, "offline_at": null, "start_at": null,
                                   "done_at": null, "active_at": null, "duration_seconds": null,
                                   "timeline": [{"state": "ACTIVE", "since": 1000.0}]}]},
            "recent_transitions": [{"from": "READY_TO_UPGRADE", "to": "MIXED", "at": 1050.0}],
            "history": [{"started_at": 1.0, "ended_at": 61.0, "duration_seconds": 60.0, "result": "completed",
                         "from_version": "0", "to_version": "1", "nodes": [{"name": "n0", "duration_seconds": 20.0}]}],
            "results": {"completed": 1, "cancelled": 0, "failed_finalization": 0}
        }))
        .unwrap()
    }

    #[test]
    fn each_section_names_its_product() {
        let mut v = view();
        let html = render_views(std::slice::from_ref(&v));
        assert!(html.contains("data-product=\"bitbucket\""), "{html}");
        assert!(html.contains("<span class=\"product\">Bitbucket</span></h2>"));
        v.product = crate::model::Product::Confluence;
        let html = render_views(&[v]);
        assert!(html.contains("data-product=\"confluence\""), "{html}");
        assert!(html.contains("<span class=\"product\">Confluence</span></h2>"));
    }

    #[test]
    fn a_busy_next_node_is_not_said_to_be_draining() {
        // The next node is ACTIVE by construction: nobody has started draining it.
        let mut v = view();
        if let Some(n) = v.next_node.as_mut() {
            (n.active_users, n.safe) = (Some(3), false);
        }
        let html = render_views(&[v]);
        assert!(html.contains("data-safe=\"false\""), "{html}");
        assert!(!html.contains("draining"), "{html}");
        assert!(html.contains("still serving: drain it"));
    }

    #[test]
    fn the_page_shows_progress_lanes_next_node_and_history_escaped() {
        let html = render_views(&[view()]);
        assert!(html.contains("<progress max=\"2\" value=\"1\">"), "{html}");
        assert!(html.contains("<strong>1 of 2</strong> nodes on the new version"));
        assert_eq!(html.matches("<g class=\"lane\"").count(), 2);
        assert_eq!(html.matches("<rect class=\"phase\"").count(), 4);
        assert!(html.contains("data-safe=\"true\""));
        assert!(html.contains("safe to stop"));
        assert_eq!(html.matches("<tr class=\"history-row\"").count(), 1);
        assert!(html.contains("<li data-action=\"cancel\" class=\"not-allowed\">"));
        // everything from the cluster is escaped
        assert!(!html.contains("<b>n0</b>") && html.contains("&lt;b&gt;n0&lt;/b&gt;"));
        assert!(!html.contains("<x>") && !html.contains("data-state=\"<script>\""));
        assert!(html.contains("n1&quot;"));
        // no inline script or style (CSP `default-src 'self'`); same-origin files only
        assert!(!html.contains("<script>") && !html.contains("<style") && !html.contains("style="));
        assert_eq!(
            html.matches("<script src=\"/-/static/upgrade.js\">")
                .count(),
            1
        );
        assert!(!html.contains("http://") && !html.contains("https://"));
        // the timeline: the first rect starts at the left edge, the last ends at "now"
        assert!(html.contains("x=\"150.0\""));
    }

    #[test]
    fn a_down_target_says_so_and_keeps_its_history() {
        let mut v = view();
        v.up = false;
        v.down_reason = Some("timeout".into());
        let html = render_views(&[v]);
        assert!(html.contains("Down (timeout)"));
        assert!(!html.contains("<progress"));
        assert_eq!(html.matches("<tr class=\"history-row\"").count(), 1);
    }
}

//! The state file is not trusted on load: every target is parsed on its own (one bad leaf
//! costs that target, not the file), then every value is checked and capped — timestamps
//! finite and within [`MIN_TIMESTAMP`, `MAX_TIMESTAMP`], strings within the label cap,
//! lists and maps within the limits the exporter itself keeps to, unknown states folded as
//! the tracker folds them. What is valid is kept; what is not is dropped and counted.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{Entered, Tracker};
use crate::model::{keys::OTHER_STATE, ClusterState, DEFAULT_MAX_NODES, MAX_LABEL_BYTES};
use crate::tracker::progress::{
    CompletedUpgrade, NodeProgress, Progress, Upgrade, HISTORY_LIMIT, RECENT_TRANSITIONS_LIMIT,
    TIMELINE_LIMIT,
};

/// Earliest timestamp accepted (the Unix epoch).
pub const MIN_TIMESTAMP: f64 = 0.0;
/// Latest timestamp accepted: 2100-01-01T00:00:00Z. Far beyond any real upgrade, and far
/// below the year 10000 that RFC 3339 cannot print.
pub const MAX_TIMESTAMP: f64 = 4_102_444_800.0;
/// Most `(from, to)` transition pairs kept: every pair of the known states and `OTHER`.
const MAX_TRANSITIONS: usize = 64;

/// The file's targets, each still unparsed.
#[derive(Deserialize)]
struct Loose {
    targets: BTreeMap<String, Value>,
}

/// Parses and checks a state file's body (of the right version). Returns the valid
/// targets and how many values (or whole targets) were dropped; `Err` only when the body
/// is not a JSON object with a `targets` map.
pub(super) fn load(bytes: &[u8]) -> Result<(BTreeMap<String, Tracker>, usize), serde_json::Error> {
    let loose: Loose = serde_json::from_slice(bytes)?;
    let mut dropped = 0;
    let mut out = BTreeMap::new();
    for (name, value) in loose.targets {
        match serde_json::from_value::<Tracker>(value) {
            Ok(mut t) if name.len() <= MAX_LABEL_BYTES => {
                dropped += check(&mut t);
                out.insert(name, t);
            }
            _ => dropped += 1,
        }
    }
    Ok((out, dropped))
}

fn ts_ok(t: f64) -> bool {
    t.is_finite() && (MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&t)
}

fn str_ok(s: &str) -> bool {
    s.len() <= MAX_LABEL_BYTES
}

/// Clears an invalid optional timestamp; counts it.
fn opt_ts(t: &mut Option<f64>, dropped: &mut usize) {
    if t.is_some_and(|v| !ts_ok(v)) {
        *t = None;
        *dropped += 1;
    }
}

/// Clears an over-long optional string; counts it.
fn opt_str(s: &mut Option<String>, dropped: &mut usize) {
    if s.as_deref().is_some_and(|v| !str_ok(v)) {
        *s = None;
        *dropped += 1;
    }
}

/// Keeps the entries `ok` accepts, then at most the last `max`; counts what went.
fn keep<T>(v: &mut Vec<T>, max: usize, ok: impl FnMut(&mut T) -> bool, dropped: &mut usize) {
    let before = v.len();
    v.retain_mut(ok);
    if v.len() > max {
        v.drain(..v.len() - max);
    }
    *dropped += before - v.len();
}

/// Checks one target in place; returns how many values were dropped.
pub(super) fn check(t: &mut Tracker) -> usize {
    let mut dropped = 0;
    let entered_ok = |e: &Entered| str_ok(&e.state) && ts_ok(e.since);
    if t.cluster.as_ref().is_some_and(|e| !entered_ok(e)) {
        t.cluster = None;
        dropped += 1;
    }
    let before = t.nodes.len();
    t.nodes.retain(|k, e| str_ok(k) && entered_ok(e));
    while t.nodes.len() > DEFAULT_MAX_NODES {
        t.nodes.pop_last();
    }
    dropped += before - t.nodes.len();
    opt_ts(&mut t.last_node_change, &mut dropped);
    let before = t.names_offline.len();
    t.names_offline
        .retain(|k, since| str_ok(k) && ts_ok(*since));
    while t.names_offline.len() > DEFAULT_MAX_NODES {
        t.names_offline.pop_last();
    }
    dropped += before - t.names_offline.len();
    dropped += check_transitions(&mut t.transitions);
    dropped += check_progress(&mut t.progress);
    dropped
}

/// Folds unknown states into `OTHER` (as the tracker records them) and caps the pairs.
fn check_transitions(m: &mut BTreeMap<(String, String), u64>) -> usize {
    let fold = |s: String| match ClusterState::parse(&s) {
        st if st.is_unknown() => OTHER_STATE.to_string(),
        _ => s,
    };
    let before = m.len();
    let mut out: BTreeMap<(String, String), u64> = BTreeMap::new();
    for ((from, to), n) in std::mem::take(m) {
        let e = out.entry((fold(from), fold(to))).or_insert(0);
        *e = e.saturating_add(n);
    }
    while out.len() > MAX_TRANSITIONS {
        out.pop_last();
    }
    *m = out;
    before.saturating_sub(m.len())
}

fn check_node(n: &mut NodeProgress, dropped: &mut usize) -> bool {
    if !str_ok(&n.name) {
        *dropped += 1;
        return false;
    }
    for t in [
        &mut n.drain_at,
        &mut n.terminate_at,
        &mut n.offline_at,
        &mut n.start_at,
        &mut n.done_at,
        &mut n.active_at,
    ] {
        opt_ts(t, dropped);
    }
    opt_str(&mut n.state, dropped);
    opt_str(&mut n.version, dropped);
    let ok = |p: &mut crate::tracker::progress::Phase| str_ok(&p.state) && ts_ok(p.since);
    keep(&mut n.timeline, TIMELINE_LIMIT, ok, dropped);
    true
}

fn check_upgrade(u: &mut Upgrade, dropped: &mut usize) -> bool {
    if !ts_ok(u.started) {
        *dropped += 1;
        return false;
    }
    opt_str(&mut u.from_version, dropped);
    let mut inner = 0;
    keep(
        &mut u.nodes,
        DEFAULT_MAX_NODES,
        |n| check_node(n, &mut inner),
        dropped,
    );
    *dropped += inner;
    true
}

fn check_completed(c: &mut CompletedUpgrade, dropped: &mut usize) -> bool {
    if !ts_ok(c.started) || !ts_ok(c.ended) {
        *dropped += 1;
        return false;
    }
    opt_str(&mut c.from_version, dropped);
    opt_str(&mut c.to_version, dropped);
    let ok = |n: &mut crate::tracker::progress::NodeDuration| {
        str_ok(&n.name)
            && n.duration_seconds
                .is_none_or(|d| d.is_finite() && (0.0..=MAX_TIMESTAMP).contains(&d))
    };
    keep(&mut c.nodes, DEFAULT_MAX_NODES, ok, dropped);
    true
}

fn check_progress(p: &mut Progress) -> usize {
    let mut dropped = 0;
    if let Some(u) = p.current.as_mut() {
        if !check_upgrade(u, &mut dropped) {
            p.current = None;
        }
    }
    let mut inner = 0;
    keep(
        &mut p.history,
        HISTORY_LIMIT,
        |c| check_completed(c, &mut inner),
        &mut dropped,
    );
    dropped += inner;
    opt_str(&mut p.last_state, &mut dropped);
    let ok = |t: &mut crate::tracker::progress::Transition| {
        str_ok(&t.from) && str_ok(&t.to) && ts_ok(t.at)
    };
    keep(
        &mut p.recent_transitions,
        RECENT_TRANSITIONS_LIMIT,
        ok,
        &mut dropped,
    );
    let h = &p.node_durations;
    if !(h.sum.is_finite() && h.sum >= 0.0) || h.buckets.len() > 64 {
        p.node_durations = Default::default();
        dropped += 1;
    }
    dropped
}

//! Reads what promtool computed (the firing `ALERTS` at every minute), applies the shipped
//! Alertmanager inhibit rules and checks the invariants.

use std::collections::{BTreeMap, BTreeSet};

use crate::gen::{Fault, Timeline};

/// One firing alert's labels (without `__name__` and `alertstate`).
pub type Alert = BTreeMap<String, String>;

/// Per timeline index, per minute: the firing alerts.
pub type Firing = BTreeMap<usize, BTreeMap<u32, Vec<Alert>>>;

fn parse_duration(s: &str) -> u32 {
    let mut total = 0u64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            0
        } else {
            match c {
                'y' => 365 * 86400,
                'w' => 7 * 86400,
                'd' => 86400,
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => 0,
            }
        };
        total += num.parse::<u64>().unwrap_or(0) * unit;
        num.clear();
    }
    (total / 60) as u32
}

fn parse_labels(body: &str) -> Alert {
    let mut out = Alert::new();
    let mut rest = body;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim_start_matches([',', ' ']).to_string();
        let after = &rest[eq + 2..];
        let end = after.find('"').unwrap_or(after.len());
        out.insert(name, after[..end].to_string());
        rest = &after[(end + 1).min(after.len())..];
    }
    out.remove("__name__");
    out.remove("alertstate");
    out
}

/// Parses promtool's failure output of the per-minute `ALERTS{alertstate="firing"}` checks
/// of a merged test group: each alert goes to the timeline whose index follows `tag` in its
/// `namespace` label, and gets its own namespace back.
pub fn parse(output: &str, tag: &str, firing: &mut Firing) {
    let mut current: Option<u32> = None;
    for line in output.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("expr: ") {
            current = rest
                .rsplit("time: ")
                .next()
                .map(|t| parse_duration(t.trim_end_matches(',')));
        } else if let (Some(body), Some(m)) = (line.strip_prefix("got: "), current) {
            let alerts = body
                .split("} ")
                .filter_map(|chunk| chunk.split_once('{').map(|(_, l)| parse_labels(l)))
                .filter(|a| !a.is_empty());
            for mut a in alerts {
                let ns = a.get("namespace").cloned().unwrap_or_default();
                let (own, idx) = ns
                    .rsplit_once(tag)
                    .and_then(|(own, i)| Some((own.to_string(), i.parse::<usize>().ok()?)))
                    .unwrap_or_else(|| panic!("alert without a timeline tag: {a:?}"));
                a.insert("namespace".into(), own);
                firing.entry(idx).or_default().entry(m).or_default().push(a);
            }
        }
    }
}

/// One Alertmanager matcher.
struct Matcher {
    name: String,
    op: String,
    value: String,
}

impl Matcher {
    fn parse(s: &str) -> Option<Matcher> {
        for op in ["=~", "!~", "!=", "="] {
            if let Some((n, v)) = s.split_once(op) {
                return Some(Matcher {
                    name: n.trim().to_string(),
                    op: op.to_string(),
                    value: v.trim().trim_matches('"').to_string(),
                });
            }
        }
        None
    }

    fn matches(&self, a: &Alert) -> bool {
        let v = a.get(&self.name).map(String::as_str).unwrap_or("");
        let re_match = || self.value.split('|').any(|alt| alt == v);
        match self.op.as_str() {
            "=" => v == self.value,
            "!=" => v != self.value,
            "=~" => re_match(),
            _ => !re_match(),
        }
    }
}

/// One inhibit rule of the shipped Alertmanager config.
pub struct Inhibit {
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
}

/// The `inhibit_rules` of an alertmanager.yml (matchers as `name="v"` or `name=~"a|b"`:
/// regex alternatives of literal names only).
pub fn inhibit_rules(yaml: &str) -> Vec<Inhibit> {
    let doc: serde_json::Value = serde_norway::from_str(yaml).expect("alertmanager.yml parses");
    let list = |v: &serde_json::Value| -> Vec<Matcher> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().and_then(Matcher::parse))
                    .collect()
            })
            .unwrap_or_default()
    };
    doc["inhibit_rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| Inhibit {
                    source: list(&r["source_matchers"]),
                    target: list(&r["target_matchers"]),
                    equal: r["equal"]
                        .as_array()
                        .map(|e| {
                            e.iter()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn inhibited(a: &Alert, all: &[Alert], rules: &[Inhibit]) -> bool {
    rules.iter().any(|r| {
        r.target.iter().all(|m| m.matches(a))
            && all.iter().any(|s| {
                s != a
                    && r.source.iter().all(|m| m.matches(s))
                    && r.equal.iter().all(|k| s.get(k) == a.get(k))
            })
    })
}

fn notifies(a: &Alert) -> bool {
    matches!(
        a.get("severity").map(String::as_str),
        Some("warning" | "critical")
    )
}

fn name(a: &Alert) -> String {
    let labels: Vec<String> = a
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "{}{{{}}}",
        a.get("alertname").cloned().unwrap_or_default(),
        labels.join(",")
    )
}

/// Fault `f`'s bound in minutes from its start `fs`, counted in minutes in which Prometheus
/// saw the cluster: each minute of the window in which no scrape brought the product's
/// answer (a failed scrape, the product unreachable, the exporter down, every sidecar's pod
/// starting) extends it by one, since no rule can learn anything then. Not for the faults
/// whose blindness is the fault (Unreachable, ExporterDown). Found by alerts/verify.sh
/// (--seed 3 --only 0): failed tasks at 90, Bitbucket unreachable at 92 and a failed scrape
/// at 93 restarted TasksFailed's 2m `for:`, which fired at 96 against a bound of 95.
pub fn blind_extended(f: Fault, tl: &Timeline, fs: u32) -> u32 {
    let base = f.bound(tl.product);
    if matches!(f, Fault::Unreachable | Fault::ExporterDown) {
        return base;
    }
    let mut end = fs + base;
    let mut m = fs;
    while m < end {
        if !tl.world.seen.contains(&m) {
            end += 1;
        }
        m += 1;
    }
    end - fs
}

/// The invariant violations of one timeline (empty: all hold).
pub fn violations(
    tl: &Timeline,
    minutes: &BTreeMap<u32, Vec<Alert>>,
    rules: &[Inhibit],
) -> Vec<String> {
    let mut out = Vec::new();
    let end = tl.world.t;
    let (fault, fs, fe) = match tl.fault {
        Some((f, s, e)) => (Some(f), s, e),
        None => (None, u32::MAX, u32::MAX),
    };
    let bound = fault.map_or(u32::MAX, |f| fs + blind_extended(f, tl, fs));
    // The rules select each product's series by job and metric prefix: an alert of another
    // product on this cluster is a selector that reads the wrong product's series.
    let own = format!("{}Zdu", tl.product.title());
    let empty = Vec::new();
    let mut pages = BTreeSet::new();
    let mut first = None;
    for m in 0..end {
        let alerts = minutes.get(&m).unwrap_or(&empty);
        let loud: Vec<&Alert> = alerts.iter().filter(|a| notifies(a)).collect();
        let in_fault = m >= fs && m < fe;
        if in_fault && first.is_none() && !loud.is_empty() {
            first = Some(m);
        }
        for a in alerts {
            if !a.get("alertname").is_some_and(|n| n.starts_with(&own)) {
                out.push(format!(
                    "minute {m}: {} fires on a {} cluster",
                    name(a),
                    tl.product.title()
                ));
            }
        }
        let healthy_minute = m < fs || m >= fe.saturating_add(30);
        if healthy_minute {
            for a in &loud {
                out.push(format!("minute {m}: {} fires outside any fault", name(a)));
            }
        }
        if in_fault && m >= bound && loud.is_empty() {
            out.push(format!("minute {m}: no warning/critical alert during {:?} (an all-clear while the fault lasts)", fault.expect("fault")));
        }
        let mut per_cluster: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
        for a in alerts {
            let key = ["alertname", "job", "namespace", "cluster", "node_name"]
                .iter()
                .map(|k| a.get(*k).cloned().unwrap_or_default())
                .collect();
            per_cluster.entry(key).or_default().insert(name(a));
        }
        for (k, sets) in per_cluster {
            if sets.len() > 1 {
                out.push(format!(
                    "minute {m}: {} label sets of {} for one cluster: {sets:?}",
                    sets.len(),
                    k[0]
                ));
            }
        }
        for a in alerts {
            if a.get("severity").map(String::as_str) == Some("critical")
                && !inhibited(a, alerts, rules)
            {
                pages.insert(name(a));
            }
        }
    }
    if let Some(f) = fault {
        match first {
            Some(m) if m <= bound => {}
            Some(m) => out.push(format!(
                "{f:?} began at minute {fs}: first alert at {m}, later than the bound {}m ({}m of minutes in which Prometheus saw the cluster)",
                bound - fs,
                f.bound(tl.product)
            )),
            None => out.push(format!(
                "{f:?} from minute {fs} to {fe}: no warning/critical alert at all"
            )),
        }
    }
    if pages.len() > 1 {
        out.push(format!(
            "one root cause, {} pages after inhibition: {pages:?}",
            pages.len()
        ));
    }
    out
}

/// "alert: from-to, from-to" lines: which alert fired when.
pub fn alert_story(minutes: &BTreeMap<u32, Vec<Alert>>) -> Vec<String> {
    let mut spans: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
    for (m, alerts) in minutes {
        for a in alerts {
            let v = spans.entry(name(a)).or_default();
            match v.last_mut() {
                Some((_, e)) if *e + 1 == *m => *e = *m,
                _ => v.push((*m, *m)),
            }
        }
    }
    spans
        .into_iter()
        .map(|(k, v)| {
            let s: Vec<String> = v.iter().map(|(a, b)| format!("{a}m-{b}m")).collect();
            format!("{k}: firing {}", s.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bitbucket_zdu_exporter::model::Product;

    use super::*;
    use crate::gen::Fault;
    use crate::world::World;

    fn alert(name: &str, severity: &str) -> Alert {
        [("alertname", name), ("severity", severity), ("job", "x")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn timeline(product: Product, fault: Option<(Fault, u32, u32)>) -> Timeline {
        let mut world = World::new(product, "9.4.30", 2, (true, false), BTreeSet::new());
        world.t = 40;
        world.seen = (0..40).collect();
        Timeline {
            seed: 1,
            product,
            world,
            fault,
            branches: BTreeSet::new(),
        }
    }

    #[test]
    fn alerts_are_judged_with_the_products_names_and_bounds() {
        let tl = timeline(Product::Jira, None);
        let mut minutes = BTreeMap::from([(1, vec![alert("JiraZduUnknownClusterState", "info")])]);
        assert_eq!(violations(&tl, &minutes, &[]), Vec::<String>::new());
        minutes.insert(2, vec![alert("BitbucketZduUnknownClusterState", "info")]);
        let v = violations(&tl, &minutes, &[]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("fires on a Jira cluster"), "{v:?}");
        // The node-error fault pages at minute 12 of 30: within Jira's bound (no heartbeat
        // for 10m), later than Bitbucket's.
        let page: BTreeMap<u32, Vec<Alert>> = (22..30)
            .map(|m| (m, vec![alert("JiraZduNodeNoHeartbeat", "critical")]))
            .collect();
        let fault = Some((Fault::NodeError, 10, 30));
        assert_eq!(
            violations(&timeline(Product::Jira, fault), &page, &[]),
            Vec::<String>::new()
        );
        let late = violations(&timeline(Product::Bitbucket, fault), &page, &[]);
        assert!(
            late.iter().any(|v| v.contains("later than the bound 6m")),
            "{late:?}"
        );
    }

    #[test]
    fn minutes_prometheus_could_not_see_extend_a_bound_unless_blindness_is_the_fault() {
        // Finalization fails at 10 (bound 5m); minutes 12 and 13 were blind: the bound ends
        // at 17, so a first alert at 16 is in time and one at 18 is late.
        let mut tl = timeline(Product::Bitbucket, Some((Fault::FinalizationFails, 10, 30)));
        tl.world.seen.remove(&12);
        tl.world.seen.remove(&13);
        assert_eq!(blind_extended(Fault::FinalizationFails, &tl, 10), 7);
        let from = |m0: u32| -> BTreeMap<u32, Vec<Alert>> {
            (m0..30)
                .map(|m| (m, vec![alert("BitbucketZduUpgradeTasksFailed", "critical")]))
                .collect()
        };
        assert_eq!(violations(&tl, &from(16), &[]), Vec::<String>::new());
        let late = violations(&tl, &from(18), &[]);
        assert!(
            late.iter()
                .any(|v| v.contains("later than the bound 7m (5m")),
            "{late:?}"
        );
        // An unreachable product is the fault itself: its blind minutes count.
        assert_eq!(blind_extended(Fault::Unreachable, &tl, 10), 6);
    }
}

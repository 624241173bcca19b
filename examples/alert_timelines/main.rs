//! Alert verification by simulation (issues 15 and 17): generated rolling-upgrade timelines
//! of every product (Bitbucket, Confluence, Jira: a third each), driven through the
//! exporter's own pipeline under a virtual clock, evaluated by promtool against the shipped
//! all-products rules, checked against invariants. Run through `alerts/verify.sh`:
//!
//!   cargo run --release --example alert_timelines -- --count 300 --seed 1 \
//!       --rules alerts/examples/all-products/alerts.yaml \
//!       --alertmanager alerts/alertmanager.example.yml
//!
//! Timelines of every product share the batches (one rule file holds every product's
//! groups; each rule selects its product's series by metric prefix and job), so the
//! products cost no extra promtool run.
//! Per batch of timelines (`--batch`, default 25), one promtool test group: the scraped
//! series of every timeline as `input_series`, each timeline's `namespace` label tagged with
//! its index (the rules evaluate by namespace, so timelines stay apart while promtool
//! evaluates the rules once per minute for the whole batch) and, at every minute,
//! `ALERTS{alertstate="firing"}` expected empty; promtool's failure output is then the list
//! of firing alerts at each minute, split back per timeline by the tag. `--jobs` promtool
//! runs go in parallel (default: the number of cores). The last line is
//! `alert-verify: N timelines, V violations`.

mod check;
mod gen;
mod rng;
mod scrape;
mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bitbucket_zdu_exporter::model::Product;

struct Args {
    count: usize,
    seed: u64,
    rules: String,
    alertmanager: String,
    batch: usize,
    jobs: usize,
    keep: Option<String>,
    /// Only these timeline indices (a violation's seed minus `seed * 1_000_003`).
    only: Option<Vec<usize>>,
}

fn args() -> Args {
    let mut a = Args {
        count: 50,
        seed: 1,
        rules: "alerts/examples/all-products/alerts.yaml".into(),
        alertmanager: "alerts/alertmanager.example.yml".into(),
        batch: 25,
        jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        keep: None,
        only: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--count" => a.count = v.parse().expect("--count N"),
            "--seed" => a.seed = v.parse().expect("--seed S"),
            "--rules" => a.rules = v,
            "--alertmanager" => a.alertmanager = v,
            "--batch" => a.batch = v.parse().expect("--batch N"),
            "--jobs" => a.jobs = v.parse().expect("--jobs N"),
            "--keep" => a.keep = Some(v),
            "--only" => {
                a.only = Some(
                    v.split(',')
                        .map(|i| i.trim().parse().expect("--only I,J,..."))
                        .collect(),
                )
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

/// Metric names the rules read (and `up`), of every product: the store keeps only those.
fn wanted(rules: &str) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = BTreeSet::from(["up".to_string()]);
    for product in Product::ALL {
        let prefix = format!("{}_", product.metric_prefix());
        for (i, _) in rules.match_indices(&prefix) {
            let before = i.checked_sub(1).map(|j| rules.as_bytes()[j]);
            if before.is_some_and(|b| b == b':' || b == b'_' || b.is_ascii_alphanumeric()) {
                continue;
            }
            let name: String = rules[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if !name.contains(':') {
                out.insert(name);
            }
        }
    }
    out
}

/// The shipped rule file without the recording rules no alert reads (directly or through
/// another recording rule): dashboard-only aggregations cost promtool time and change no
/// alert. Written as JSON (which promtool reads as YAML).
fn alert_rules_only(rules: &str) -> String {
    let mut doc: serde_json::Value = serde_norway::from_str(rules).expect("rule file parses");
    let mut exprs: Vec<String> = Vec::new();
    for g in doc["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            if r.get("alert").is_some() {
                exprs.push(r["expr"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    let mut needed: BTreeSet<String> = BTreeSet::new();
    loop {
        let before = needed.len();
        for g in doc["groups"].as_array().expect("groups") {
            for r in g["rules"].as_array().expect("rules") {
                if let Some(name) = r["record"].as_str() {
                    if !needed.contains(name) && exprs.iter().any(|e| e.contains(name)) {
                        needed.insert(name.to_string());
                        exprs.push(r["expr"].as_str().unwrap_or_default().to_string());
                    }
                }
            }
        }
        if needed.len() == before {
            break;
        }
    }
    for g in doc["groups"].as_array_mut().expect("groups") {
        let rules = g["rules"].as_array_mut().expect("rules");
        rules.retain(|r| r["record"].as_str().is_none_or(|n| needed.contains(n)));
    }
    doc.to_string()
}

/// The `namespace` label value that tags the series of timeline `idx` inside a merged test
/// group. Every rule aggregates and joins `by`/`on (job, namespace, cluster, ...)`, so a
/// distinct namespace keeps each timeline's rule evaluation, `for:` state and `ALERTS`
/// series apart while promtool evaluates the rules once per minute for the whole batch.
fn tagged_namespace(ns: &str, idx: usize) -> String {
    format!("{ns}{TAG}{idx}")
}

/// Separator between a timeline's own namespace and its index (see [`tagged_namespace`]).
const TAG: &str = "@tl";

/// One generated timeline, ready for promtool: its `input_series` entries (namespace tagged
/// with `idx`) are rendered and its store dropped, so that every timeline can be generated
/// first and the batches then grouped by length.
struct Prepared {
    idx: usize,
    tl: gen::Timeline,
    series: String,
}

fn prepare(a: &Args, idx: usize, wanted: &BTreeSet<String>) -> Prepared {
    let mut tl = gen::timeline(
        a.seed.wrapping_mul(1_000_003).wrapping_add(idx as u64),
        wanted.clone(),
    );
    let mut series = String::new();
    for (name, values) in tl.world.store.input_series() {
        let name = tag_series(&name, idx);
        let _ = writeln!(
            series,
            "      - series: '{name}'\n        values: '{values}'"
        );
    }
    tl.world.store = scrape::Store::default();
    Prepared { idx, tl, series }
}

/// One promtool test group for a batch of timelines: their series side by side (namespace
/// tagged per timeline) and, at every minute up to the longest timeline,
/// `ALERTS{alertstate="firing"}` expected empty (promtool's failure output is the firing
/// list, each alert carrying its timeline's tag).
fn test_group(batch: &[Prepared]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  - name: 'timelines {}'\n    interval: 1m\n    input_series:",
        batch
            .iter()
            .map(|p| p.idx.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    for p in batch {
        s.push_str(&p.series);
    }
    let _ = writeln!(s, "    promql_expr_test:");
    let end = batch.iter().map(|p| p.tl.world.t).max().unwrap_or(0);
    for m in 0..end {
        let _ = writeln!(
            s,
            "      - expr: 'ALERTS{{alertstate=\"firing\"}}'\n        eval_time: {m}m\n        exp_samples: []"
        );
    }
    s
}

/// `series` with its `namespace="..."` value tagged for timeline `idx`.
fn tag_series(series: &str, idx: usize) -> String {
    const KEY: &str = "namespace=\"";
    let i = series
        .find(KEY)
        .expect("every scraped series has a namespace label")
        + KEY.len();
    let len = series[i..].find('"').expect("closed label value");
    format!(
        "{}{}{}",
        &series[..i],
        tagged_namespace(&series[i..i + len], idx),
        &series[i + len..]
    )
}

/// The `group_eval_order` line of a test file over `rules` (a JSON rule file): the alerting
/// groups first, then the recording groups, each in the file's order. Without it promtool
/// evaluates the groups of one instant in an order that changes from run to run (an
/// unstable sort over a map), so an alert read recording rules of this minute in one run and
/// of the last minute in the next: the same timeline passed and failed by turns (found by
/// alerts/verify.sh, `--only 247` of seed 1 on the rules before scrapeGapBridge). Alerts
/// first is the harder of the two: a Prometheus evaluates each group at its own offset in
/// the interval, so its alerts may read recording rules one evaluation old, and the rules
/// must hold then too.
fn eval_order(rules: &str) -> String {
    let text = std::fs::read_to_string(rules).expect("read the filtered rules");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("filtered rules are JSON");
    let groups = doc["groups"].as_array().expect("groups");
    let alerting = |g: &serde_json::Value| {
        g["rules"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r.get("alert").is_some()))
    };
    let names: Vec<String> = groups
        .iter()
        .filter(|g| alerting(g))
        .chain(groups.iter().filter(|g| !alerting(g)))
        .map(|g| serde_json::Value::from(g["name"].as_str().expect("group name")).to_string())
        .collect();
    format!("group_eval_order: [{}]", names.join(", "))
}

/// promtool's run of one batch: per timeline, the firing alerts at each minute.
fn run_batch(
    a: &Args,
    rules_abs: &str,
    batch: Vec<Prepared>,
) -> Vec<(gen::Timeline, BTreeMap<u32, Vec<check::Alert>>)> {
    let first = batch[0].idx;
    let mut file = format!(
        "rule_files: ['{rules_abs}']\nevaluation_interval: 1m\n{}\ntests:\n",
        eval_order(rules_abs)
    );
    file.push_str(&test_group(&batch));
    let dir = a
        .keep
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().to_string_lossy().into_owned());
    let path = format!(
        "{dir}/alert-verify-{}-{first}.test.yaml",
        std::process::id()
    );
    std::fs::write(&path, file).expect("write promtool test file");
    let mut cmd = Command::new("promtool");
    cmd.args(["test", "rules", &path]);
    if std::env::var_os("GOGC").is_none() {
        // promtool allocates a lot while evaluating a batch; collecting garbage less often
        // takes about a quarter less CPU for about twice the memory (~0.7 GB a batch).
        cmd.env("GOGC", "400");
    }
    let out = cmd
        .output()
        .expect("promtool runs (install the Debian package prometheus)");
    if a.keep.is_none() {
        let _ = std::fs::remove_file(&path);
    }
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // A batch with firing alerts fails (FAILED and the list); anything else than SUCCESS or
    // FAILED (killed, out of memory, a parse error), a rule that could not be evaluated or a
    // missing rule file must not read as "no alert fired".
    if !(text.contains("FAILED") || out.status.success() && text.contains("SUCCESS"))
        || text.contains(", err: ")
        || text.contains("WARNING: no file match")
    {
        panic!("promtool could not run the batch ({}): {text}", out.status);
    }
    let mut firing = check::Firing::new();
    check::parse(&text, TAG, &mut firing);
    batch
        .into_iter()
        .map(|p| {
            let mut f = firing.remove(&p.idx).unwrap_or_default();
            // Minutes after this timeline ended belong to the longer ones of the batch.
            f.retain(|m, _| *m < p.tl.world.t);
            (p.tl, f)
        })
        .collect()
}

/// The `--only` index of timeline `tl` in a run with `--seed seed` (its generator seed is
/// `seed * 1_000_003 + index`).
fn index_of(tl: &gen::Timeline, seed: u64) -> u64 {
    tl.seed.wrapping_sub(seed.wrapping_mul(1_000_003))
}

fn report(a: &Args, tl: &gen::Timeline, minutes: &BTreeMap<u32, Vec<check::Alert>>, v: &[String]) {
    // The index, not the generator seed, is what `--only` takes: reading one for the other
    // once sent a whole session after a "batch-dependent" violation that was not.
    println!(
        "=== VIOLATION seed {} product {} fault {:?} (alone: alerts/verify.sh --seed {} --only {})",
        tl.seed,
        tl.product,
        tl.fault,
        a.seed,
        index_of(tl, a.seed)
    );
    println!(
        "branches: {}",
        tl.branches.iter().cloned().collect::<Vec<_>>().join(" ")
    );
    for x in v {
        println!("  violated: {x}");
    }
    println!("events:");
    for (m, e) in &tl.world.log {
        println!("  {m:>4}m  {e}");
    }
    println!("alerts:");
    for line in check::alert_story(minutes) {
        println!("  {line}");
    }
}

/// Every timeline generated (in parallel), then grouped into batches of similar length,
/// longest first: promtool evaluates a batch up to its longest timeline, so a batch of
/// mixed lengths spends most of its minutes on timelines already over; longest first keeps
/// the jobs busy until the end.
fn prepare_batches(a: &Args, indices: &[usize], wanted: &BTreeSet<String>) -> Vec<Vec<Prepared>> {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(indices.len()));
    std::thread::scope(|s| {
        for _ in 0..a.jobs.max(1) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&idx) = indices.get(k) else {
                    break;
                };
                let p = prepare(a, idx, wanted);
                done.lock().expect("lock").push(p);
            });
        }
    });
    let mut all = done.into_inner().expect("lock");
    all.sort_by_key(|p| (std::cmp::Reverse(p.tl.world.t), p.idx));
    // At most `--batch` timelines and NODE_STATE_BUDGET node-state series a batch: promtool's
    // unit-test engine refuses a query that loads more than 10 000 samples, and the node
    // recording rules read every node-state series of the batch (12 sidecars of a 12-node
    // cluster report 144 entries each minute).
    let weight = |p: &Prepared| {
        p.series
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- series: '"))
            .filter(|s| scrape::is_node_state(s))
            .count()
    };
    let mut batches: Vec<Vec<Prepared>> = Vec::new();
    let mut load = 0;
    for p in all {
        let w = weight(&p);
        match batches.last_mut() {
            Some(b) if b.len() < a.batch.max(1) && load + w <= NODE_STATE_BUDGET => {
                load += w;
                b.push(p);
            }
            _ => {
                load = w;
                batches.push(vec![p]);
            }
        }
    }
    batches
}

/// Node-state input series per batch, at most (see [`prepare_batches`]).
const NODE_STATE_BUDGET: usize = 2000;

fn main() {
    let a = args();
    let rules_text = std::fs::read_to_string(&a.rules).expect("read the rule file");
    let filtered =
        std::env::temp_dir().join(format!("alert-verify-{}.rules.json", std::process::id()));
    std::fs::write(&filtered, alert_rules_only(&rules_text)).expect("write the filtered rules");
    let rules_abs = filtered.to_string_lossy().into_owned();
    let am = std::fs::read_to_string(&a.alertmanager).expect("read the alertmanager config");
    let inhibit = check::inhibit_rules(&am);
    let wanted = wanted(&std::fs::read_to_string(&filtered).expect("read the filtered rules"));
    let indices: Vec<usize> = a.only.clone().unwrap_or_else(|| (0..a.count).collect());
    let started = std::time::Instant::now();
    let batches = prepare_batches(&a, &indices, &wanted);
    let generated = started.elapsed().as_secs_f64();
    let next = AtomicUsize::new(0);
    let violations = AtomicUsize::new(0);
    let coverage = Mutex::new(BTreeSet::new());
    let print = Mutex::new(());
    let batches: Vec<Mutex<Option<Vec<Prepared>>>> =
        batches.into_iter().map(|b| Mutex::new(Some(b))).collect();
    std::thread::scope(|s| {
        for _ in 0..a.jobs.max(1) {
            s.spawn(|| loop {
                let b = next.fetch_add(1, Ordering::SeqCst);
                let Some(slot) = batches.get(b) else {
                    break;
                };
                let batch = slot.lock().expect("lock").take().expect("each batch once");
                for (tl, minutes) in run_batch(&a, &rules_abs, batch) {
                    coverage
                        .lock()
                        .expect("lock")
                        .extend(tl.branches.iter().cloned());
                    let v = check::violations(&tl, &minutes, &inhibit);
                    if !v.is_empty() {
                        violations.fetch_add(v.len(), Ordering::SeqCst);
                        let _g = print.lock().expect("lock");
                        report(&a, &tl, &minutes, &v);
                    }
                }
            });
        }
    });
    let _ = std::fs::remove_file(&filtered);
    let secs = started.elapsed().as_secs_f64();
    let cov = coverage.into_inner().expect("lock");
    println!(
        "branches covered ({}): {}",
        cov.len(),
        cov.into_iter().collect::<Vec<_>>().join(" ")
    );
    println!(
        "{:.1} s ({:.1} s generating), {:.0} timelines/min",
        secs,
        generated,
        indices.len() as f64 * 60.0 / secs.max(0.001)
    );
    println!(
        "alert-verify: {} timelines, {} violations",
        indices.len(),
        violations.load(Ordering::SeqCst)
    );
    std::process::exit(if violations.load(Ordering::SeqCst) == 0 {
        0
    } else {
        1
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_reads_every_products_metric_names_and_no_recorded_one() {
        let rules = r#"max by (job) (confluence_zdu_node_state{job=~".*confluence-zdu.*"}) and
            jira_zdu:node_name_active:max * jira_zdu_node_alive{} or bitbucket_zdu_up
            or xjira_zdu_not_a_name"#;
        let w = wanted(rules);
        let names: Vec<&str> = w.iter().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "bitbucket_zdu_up",
                "confluence_zdu_node_state",
                "jira_zdu_node_alive",
                "up"
            ]
        );
    }

    #[test]
    fn the_reported_index_is_what_only_takes() {
        let tl = gen::timeline(
            7u64.wrapping_mul(1_000_003).wrapping_add(247),
            BTreeSet::new(),
        );
        assert_eq!(index_of(&tl, 7), 247);
    }

    #[test]
    fn a_series_is_tagged_with_its_timeline() {
        assert_eq!(
            tag_series(
                "up{job=\"jira-zdu\", namespace=\"jira\", pod=\"jira-0\"}",
                7
            ),
            "up{job=\"jira-zdu\", namespace=\"jira@tl7\", pod=\"jira-0\"}"
        );
    }
}

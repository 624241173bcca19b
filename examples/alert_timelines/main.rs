//! Alert verification by simulation (issue 15): generated rolling-upgrade timelines, driven
//! through the exporter's own pipeline under a virtual clock, evaluated by promtool against
//! the shipped rules, checked against invariants. Run through `alerts/verify.sh`:
//!
//!   cargo run --release --example alert_timelines -- --count 300 --seed 1 \
//!       --rules alerts/bitbucket-zdu-alerts.yaml --alertmanager alerts/alertmanager.example.yml
//!
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

struct Args {
    count: usize,
    seed: u64,
    rules: String,
    alertmanager: String,
    batch: usize,
    jobs: usize,
    keep: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        count: 50,
        seed: 1,
        rules: "alerts/bitbucket-zdu-alerts.yaml".into(),
        alertmanager: "alerts/alertmanager.example.yml".into(),
        batch: 25,
        jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        keep: None,
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
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

/// Metric names the rules read (and `up`): the store keeps only those.
fn wanted(rules: &str) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = BTreeSet::from(["up".to_string()]);
    for (i, _) in rules.match_indices("bitbucket_zdu_") {
        if i > 0 && rules.as_bytes()[i - 1] == b':' {
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

/// One promtool test group for a batch of timelines: their series side by side (namespace
/// tagged per timeline) and, at every minute up to the longest timeline,
/// `ALERTS{alertstate="firing"}` expected empty (promtool's failure output is the firing
/// list, each alert carrying its timeline's tag).
fn test_group(first: usize, tls: &[gen::Timeline]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  - name: 'timelines {first}..{}'\n    interval: 1m\n    input_series:",
        first + tls.len()
    );
    for (k, tl) in tls.iter().enumerate() {
        for (series, values) in tl.world.store.input_series() {
            let series = tag_series(&series, first + k);
            let _ = writeln!(s, "      - series: '{series}'\n        values: '{values}'");
        }
    }
    let _ = writeln!(s, "    promql_expr_test:");
    let end = tls.iter().map(|tl| tl.world.t).max().unwrap_or(0);
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

fn run_batch(
    a: &Args,
    rules_abs: &str,
    first: usize,
    wanted: &BTreeSet<String>,
) -> Vec<(gen::Timeline, BTreeMap<u32, Vec<check::Alert>>)> {
    let last = (first + a.batch).min(a.count);
    let tls: Vec<gen::Timeline> = (first..last)
        .map(|i| {
            gen::timeline(
                a.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
                wanted.clone(),
            )
        })
        .collect();
    let mut file = format!("rule_files: ['{rules_abs}']\nevaluation_interval: 1m\ntests:\n");
    file.push_str(&test_group(first, &tls));
    let dir = a
        .keep
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().to_string_lossy().into_owned());
    let path = format!(
        "{dir}/alert-verify-{}-{first}.test.yaml",
        std::process::id()
    );
    std::fs::write(&path, file).expect("write promtool test file");
    let out = Command::new("promtool")
        .args(["test", "rules", &path])
        .output()
        .expect("promtool runs (install the Debian package prometheus)");
    if a.keep.is_none() {
        let _ = std::fs::remove_file(&path);
    }
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if text.contains("error") && !text.contains("FAILED") {
        panic!("promtool could not run the batch: {text}");
    }
    let mut firing = check::Firing::new();
    check::parse(&text, TAG, &mut firing);
    tls.into_iter()
        .enumerate()
        .map(|(k, tl)| {
            let mut f = firing.remove(&(first + k)).unwrap_or_default();
            // Minutes after this timeline ended belong to the longer ones of the batch.
            f.retain(|m, _| *m < tl.world.t);
            (tl, f)
        })
        .collect()
}

fn report(tl: &gen::Timeline, minutes: &BTreeMap<u32, Vec<check::Alert>>, v: &[String]) {
    println!("=== VIOLATION seed {} fault {:?}", tl.seed, tl.fault);
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
    let next = AtomicUsize::new(0);
    let violations = AtomicUsize::new(0);
    let coverage = Mutex::new(BTreeSet::new());
    let print = Mutex::new(());
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..a.jobs.max(1) {
            s.spawn(|| loop {
                let first = next.fetch_add(a.batch, Ordering::SeqCst);
                if first >= a.count {
                    break;
                }
                for (tl, minutes) in run_batch(&a, &rules_abs, first, &wanted) {
                    coverage
                        .lock()
                        .expect("lock")
                        .extend(tl.branches.iter().cloned());
                    let v = check::violations(&tl, &minutes, &inhibit);
                    if !v.is_empty() {
                        violations.fetch_add(v.len(), Ordering::SeqCst);
                        let _g = print.lock().expect("lock");
                        report(&tl, &minutes, &v);
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
        "{:.1} s, {:.0} timelines/min",
        secs,
        a.count as f64 * 60.0 / secs.max(0.001)
    );
    println!(
        "alert-verify: {} timelines, {} violations",
        a.count,
        violations.load(Ordering::SeqCst)
    );
    std::process::exit(if violations.load(Ordering::SeqCst) == 0 {
        0
    } else {
        1
    });
}

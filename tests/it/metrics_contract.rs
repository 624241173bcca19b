//! The metric contract: `docs/metrics.json` is generated from the catalogue
//! (`src/metrics/catalogue.rs`; rewrite with `UPDATE_GOLDEN=1 cargo test --test
//! metrics_contract`), and the README's metric table agrees with it.

use crate::common::{check_golden, count, value};
use bitbucket_zdu_exporter::metrics::catalogue;

#[test]
fn docs_metrics_json_is_generated_from_the_catalogue() {
    check_golden("docs/metrics.json", &catalogue::contract_json());
}

/// `(name, type, labels)` of one metric.
type Row = (String, String, Vec<String>);

fn contract() -> Vec<(Row, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["metrics"]
        .as_array()
        .expect("metrics array")
        .iter()
        .map(|m| {
            let labels = m["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap().to_string())
                .collect();
            let row = (
                m["name"].as_str().unwrap().to_string(),
                m["type"].as_str().unwrap().to_string(),
                labels,
            );
            (row, m["group"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The rows of the README's metric table (`| \`name\` | type | \`a\`, \`b\` | meaning |`).
fn readme_rows() -> Vec<Row> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let table = readme
        .split("| metric | type | labels | meaning |")
        .nth(1)
        .expect("README has the metric table");
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let unquote = |c: &str| c.trim_matches('`').to_string();
            let labels = cells[2]
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(unquote)
                .collect();
            (unquote(cells[0]), cells[1].to_string(), labels)
        })
        .collect()
}

#[test]
fn readme_metric_table_matches_docs_metrics_json() {
    let contract = contract();
    assert!(!contract.is_empty(), "docs/metrics.json lists no metric");
    let readme = readme_rows();
    let mut want: Vec<Row> = contract
        .iter()
        .filter(|(_, group)| group != "process")
        .map(|(row, _)| row.clone())
        .collect();
    if contract.iter().any(|(_, group)| group == "process") {
        want.push(("process_*".into(), String::new(), Vec::new()));
    }
    let missing: Vec<&Row> = want.iter().filter(|r| !readme.contains(r)).collect();
    let extra: Vec<&Row> = readme.iter().filter(|r| !want.contains(r)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README metric table and docs/metrics.json differ\n  not in README (or with other type/labels): {missing:?}\n  only in README: {extra:?}"
    );
    assert_eq!(readme.len(), want.len(), "README lists a metric twice");
}

/// The exposition reader every test uses reads values, not substrings (`} 1` must not
/// match `} 10`), and skips what is not a sample.
#[test]
fn sample_values_are_parsed_not_matched_as_substrings() {
    let text = "# HELP x_up bitbucket_zdu_up 1\nbitbucket_zdu_up 10\n<html>a b</html>\nm{a=\"x\\\"y\",b=\"\"} 2.5\n";
    assert_eq!(value(text, "bitbucket_zdu_up", &[]), Some(10.0));
    assert_eq!(value(text, "m", &[("a", "x\"y"), ("b", "")]), Some(2.5));
    assert_eq!(count(text, "x_up"), 0);
}

//! Fuzz regressions (issue 4, part 5): every input under `tests/testdata/fuzz/<target>/`
//! (crashes found by `scripts/fuzz.sh`, kept here once fixed) and the seed corpus under
//! `fuzz/corpus/<target>/` goes through the fuzz targets' own properties
//! (`fuzz/properties.rs`, included here as the targets include it), as a plain cargo test.
//! Each target's inputs must not be empty: a missing corpus fails the test.
#![forbid(unsafe_code)]

#[path = "../../fuzz/properties.rs"]
mod properties;

use std::path::{Path, PathBuf};

use bitbucket_zdu_exporter::model::Cluster;
use bitbucket_zdu_exporter::tracker::Tracker;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("tests/testdata/fuzz").join(target),
        root.join("fuzz/corpus").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Runs `property` on every input of `target`; fails on an empty corpus and names every
/// input that breaks the property.
fn check(target: &str, property: fn(&[u8])) {
    let all = inputs(target);
    assert!(
        !all.is_empty(),
        "no inputs for {target}: fuzz/corpus/{target}/ is missing or empty"
    );
    let failed: Vec<String> = all
        .iter()
        .filter(|(_, data)| std::panic::catch_unwind(|| property(data)).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: properties fail for {failed:#?}"
    );
}

#[test]
fn zdu_payload_inputs() {
    check("zdu_payload", properties::zdu_payload);
}

#[test]
fn config_yaml_inputs() {
    check("config_yaml", properties::config_yaml);
}

#[test]
fn web_config_inputs() {
    check("web_config", properties::web_config);
}

/// Found by `scripts/fuzz.sh` (zdu_payload, first minute): two node entries with the same
/// `id` but different states make the tracker see a change on every identical answer, so
/// their `node_state_entered_timestamp_seconds` resets on every poll and the state file is
/// rewritten on every poll. Bitbucket's node ids are unique UUIDs, so this needs a broken
/// upstream. Fixed: `Cluster::node_keys` makes keys unique per answer (`id#2` for a repeat).
#[test]
fn tracker_is_stable_for_a_repeated_answer_with_duplicate_ids() {
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/testdata/fuzz/zdu_payload/tracker-duplicate-node-id.json"),
    )
    .unwrap();
    let cluster: Cluster = serde_json::from_slice(&data).unwrap();
    let mut tracked = Tracker::default();
    let (first, _) = tracked.observe(&cluster, 1_700_000_000.0);
    let (second, changed) = tracked.observe(&cluster, 1_700_000_100.0);
    assert!(!changed, "a repeated answer changed the tracker");
    assert_eq!(first, second);
}

/// The guard above: a target without inputs fails rather than passing vacuously.
#[test]
#[should_panic(expected = "no inputs for no_such_target")]
fn an_empty_corpus_fails() {
    check("no_such_target", properties::web_config);
}

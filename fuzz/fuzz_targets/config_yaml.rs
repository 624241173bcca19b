//! Fuzzes the `--config.file` YAML parser and the flag-value parsers (durations, listen
//! addresses). Properties: nothing panics, every error has a message, and every accepted
//! configuration satisfies the invariants the rest of the exporter relies on.
#![no_main]

use std::path::Path;
use std::time::Duration;

use bitbucket_zdu_exporter::config::{parse_listen_address, parse_targets_yaml};
use bitbucket_zdu_exporter::duration::{format_duration, parse_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text) {
        // What we print, we parse back to the same value.
        let shown = format_duration(d);
        assert_eq!(
            parse_duration(&shown).ok(),
            Some(d),
            "{text:?} -> {shown:?}"
        );
    }
    if let Err(e) = parse_listen_address(text) {
        assert!(!e.to_string().is_empty());
    }
    // A folder that does not exist: secret and CA files named by the input are never found.
    let path = Path::new("/nonexistent-fuzz-dir/config.yml");
    match parse_targets_yaml(
        text,
        path,
        Duration::from_secs(10),
        Duration::from_secs(30),
        None,
    ) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(targets) => {
            assert!(!targets.is_empty());
            for (i, t) in targets.iter().enumerate() {
                assert!(!t.name().is_empty());
                assert!(
                    targets[..i].iter().all(|o| o.name() != t.name()),
                    "duplicate name"
                );
                assert!(t.timeout() <= t.poll_interval());
                assert!(t.poll_interval() <= t.max_age());
                assert!(matches!(t.base_url().scheme(), "http" | "https"));
                assert!(t.base_url().username().is_empty() && t.base_url().password().is_none());
                let ep = t.endpoint("cluster");
                assert!(ep.path().ends_with("/rest/zdu/cluster"), "{ep}");
                assert_eq!(ep.host_str(), t.base_url().host_str());
                let _ = (t.auth().describe(), t.display_url(), format!("{t:?}"));
            }
        }
    }
});
